"""The viewer's MRML side: one scene, one set of nodes reused across cases and runs.

Loading a case checks its phases with the family's own ``preprocess.check_phases`` (as the
Slicer module's ``load_case`` does) before any node changes, then shows the reference phase.
A finished prediction's outputs are loaded with the ``slicer_bridge`` helpers the Slicer
module uses (``set_heatmap``, ``set_segment_mask``): the heatmap and tumour segmentation
nodes are created once and updated in place afterwards, so two runs in a row (or a run on
another case) leave the same number of nodes in the scene. A DCE kinetics run's
``kinetic_class.nrrd`` becomes one label-map node (reused likewise) drawn in the slice views'
label layer with the kinetics family's class colours (one colour table per scene).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from responseai.dynamic import dynamic_phases, parse_frames, read_dynamic
from responseai.errors import ResponseAIError
from responseai.io import TUMOUR_SEGMENT, read_image, read_segmentation
from responseai.reports.snapshots import tumour_centre_ras
from responseai.slicer_bridge.nodes import add_segmentation_node, add_volume_node, set_segment_mask, update_volume_node
from responseai.slicer_bridge.outputs import HEATMAP_OPACITY, label_color_table, set_heatmap
from responseai.slicer_bridge.render import FILL_OPACITY, OUTLINE_COLOR, OUTLINE_OPACITY, OUTLINE_WIDTH_PX
from responseai.viewer.cases import DYNAMIC, PHASES, REFERENCE_PHASE, CaseEntry, family_piece
from responseai.viewer.jobs import KINETICS_FAMILY

log = logging.getLogger(__name__)

VOLUME_NAME = "ResponseAI viewer post1"
SEGMENTATION_NAME = "ResponseAI viewer tumour"
HEATMAP_NAME = "ResponseAI viewer attention"
KINETICS_NAME = "ResponseAI viewer kinetic class"
KINETICS_OPACITY = 0.6  # the class colours over the anatomy, the anatomy still readable


def _kinetics(name: str):
    """A constant of the kinetics family by name (the base never imports a family)."""
    return family_piece(f"constants:{name}", KINETICS_FAMILY)


def kinetic_color_table(scene):
    """The scene's one colour table of the kinetic classes (created on first use): the family's names and
    colours, 'not assessed' transparent — the table the Slicer module's kinetics panel makes."""
    return label_color_table(scene, _kinetics("COLOR_TABLE_NAME"), _kinetics("CLASS_NAMES"), _kinetics("CLASS_COLORS"),
                             transparent=(_kinetics("NOT_ASSESSED"),))


@dataclass
class KineticsResult:
    """What the page shows of one finished DCE kinetics run (its ``result.json``)."""

    out: Path
    record: dict = field(default_factory=dict)

    @property
    def baseline(self) -> dict:
        return self.record.get("baseline") or {}

    @property
    def ftv_ml(self) -> float | None:
        value = self.baseline.get("ftv_ml")
        return None if value is None else float(value)

    @property
    def worst_curve(self) -> str:
        return self.baseline.get("worst_curve") or "none"

    @property
    def majority_class(self) -> str:
        return self.baseline.get("majority_class") or "none"


@dataclass
class Result:
    """What the page shows of one finished prediction."""

    case_id: str
    prediction: Path
    record: dict = field(default_factory=dict)

    @property
    def probability(self) -> float:
        return float(self.record["pcr_probability"])


class ViewerSession:
    """Nodes of the case on screen; ``views`` is a callable returning the slice views to draw in."""

    def __init__(self, app, views=None) -> None:
        self.app = app
        self.scene = app.scene
        self._views_given = views
        self._views = views or (lambda: app.view_manager.get_slice_views())
        self.volume = None
        self.segmentation = None
        self.heatmap = None
        self.kinetics = None  # the kinetic class label map
        self.case: CaseEntry | None = None
        self.opacity = HEATMAP_OPACITY

    # -- case -------------------------------------------------------------------------------------
    def load_case(self, entry: CaseEntry) -> str:
        """Check the case's phases, then show its reference phase (no node changes on a bad case). Returns the note
        the page shows under the case: which frames of a dynamic series were taken and why ("" for phase files)."""
        if entry.error:
            raise ResponseAIError(entry.error)
        check_phases = family_piece("preprocess:check_phases")
        note = ""
        if DYNAMIC in entry.files:
            series = read_dynamic(entry.confined(entry.files[DYNAMIC]), "DCE series")
            images, choice = dynamic_phases(series, parse_frames(entry.dce_frames))
            note = f"DCE series: {choice.reason}"
        else:
            images = {name: read_image(entry.confined(entry.files[name]), name) for name in PHASES if name in entry.files}
        images = check_phases(images)
        reference = images[REFERENCE_PHASE]
        if self.volume is not None and self.scene.IsNodePresent(self.volume):
            update_volume_node(self.volume, reference)
        else:
            self.volume = add_volume_node(self.scene, reference, VOLUME_NAME)
        self.volume.SetName(f"{entry.case_id} post1")
        self.case = entry
        self._show(results=False)
        for view in self._views():
            view.fit_view_to_content()
        log.info("viewer: case %s loaded", entry.case_id)
        return note

    # -- results ----------------------------------------------------------------------------------
    def import_outputs(self, prediction: Path) -> Result:
        """Load a prediction folder's result, tumour segment and attention map onto the scene."""
        prediction = Path(prediction)
        record = json.loads((prediction / "result.json").read_text(encoding="utf-8"))
        case_id = record.get("case_id", self.case.case_id if self.case else "case")
        mask = read_segmentation(prediction / "tumour.seg.nrrd", TUMOUR_SEGMENT)
        if self.segmentation is not None and self.scene.IsNodePresent(self.segmentation):
            self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
            set_segment_mask(self.segmentation, mask, TUMOUR_SEGMENT)
        else:
            self.segmentation = add_segmentation_node(self.scene, mask, self.volume, SEGMENTATION_NAME, TUMOUR_SEGMENT)
        self.segmentation.SetName(f"{case_id} tumour")
        self._style_segmentation()
        self.segmentation.CreateClosedSurfaceRepresentation()  # the 3D view shows the segment's surface
        self.heatmap = set_heatmap(self.scene, read_image(prediction / "attention.nrrd", "attention"),
                                   f"{case_id} attention", self.heatmap, self.volume)
        self._show(results=True)
        for view in self._views():
            view.fit_view_to_content()  # the views have their page size by now
        self.jump_to(tumour_centre_ras(mask))
        for view in self._threed_views():
            view.reset_focal_point()
            view.schedule_render()
        return Result(case_id, prediction, record)

    def import_kinetics(self, out: Path) -> KineticsResult:
        """Load a kinetics run's ``kinetic_class.nrrd`` as a coloured label map over the case (node reused)."""
        out = Path(out)
        record = json.loads((out / "result.json").read_text(encoding="utf-8"))
        classes = read_image(out / _kinetics("MAP_FILES")["class"], "kinetic class map")
        if self.kinetics is not None and self.scene.IsNodePresent(self.kinetics):
            update_volume_node(self.kinetics, classes)
        else:
            self.kinetics = add_volume_node(self.scene, classes, KINETICS_NAME, "vtkMRMLLabelMapVolumeNode")
        case_id = record.get("case_id", self.case.case_id if self.case else "case")
        self.kinetics.SetName(f"{case_id} kinetic class")
        self.kinetics.GetDisplayNode().SetAndObserveColorNodeID(kinetic_color_table(self.scene).GetID())
        self._show(results=True, kinetics=True)
        return KineticsResult(out, record)

    def show_kinetics(self, visible: bool) -> None:
        """Show or hide the kinetic class map (the prediction's overlays stay as they are)."""
        self._show(results=True, kinetics=bool(visible))

    def _composite(self, view):
        """The slice composite node of a view (its layers), found by the view's layout name."""
        name = view.get_view_node().GetLayoutName()
        nodes = self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        for index in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(index)
            if node.GetLayoutName() == name:
                return node
        return None

    def _threed_views(self) -> list:
        manager = getattr(self.app, "view_manager", None)
        return manager.get_threed_views() if manager is not None and self._views_given is None else []

    def jump_to(self, ras) -> None:
        """Every slice view through one RAS point (each keeps its own orientation and zoom)."""
        for view in self._views():
            view.get_view_node().JumpSliceByOffsetting(*(float(c) for c in ras))
            view.schedule_render()

    def _style_segmentation(self) -> None:
        """The report snapshots' style: a hint of fill and a cyan outline, so the heatmap stays readable."""
        display = self.segmentation.GetDisplayNode()
        display.SetOpacity2DFill(FILL_OPACITY)
        display.SetOpacity2DOutline(OUTLINE_OPACITY)
        display.SetSliceIntersectionThickness(OUTLINE_WIDTH_PX)
        segmentation = self.segmentation.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segmentation.GetNthSegment(index).SetColor(*OUTLINE_COLOR)

    def set_opacity(self, opacity: float) -> None:
        self.opacity = max(0.0, min(1.0, float(opacity)))
        for view in self._views():
            view.set_foreground_opacity(self.opacity)

    def _show(self, results: bool, kinetics: bool = False) -> None:
        """Background volume first (else Slicer draws the segment fill over black), then overlays."""
        label = self.kinetics.GetID() if kinetics and self.kinetics is not None else None
        for view in self._views():
            view.set_background_volume_id(self.volume.GetID() if self.volume is not None else None)
            view.set_foreground_volume_id(self.heatmap.GetID() if results and self.heatmap is not None else None)
            view.set_foreground_opacity(self.opacity)
            composite = self._composite(view)
            if composite is not None:
                composite.SetLabelVolumeID(label)
                composite.SetLabelOpacity(KINETICS_OPACITY)
        if self.segmentation is not None:
            display = self.segmentation.GetDisplayNode()
            if display is not None:
                display.SetVisibility(bool(results))
        for view in self._views():
            view.schedule_render()

    def node_count(self) -> int:
        return self.scene.GetNumberOfNodes()
