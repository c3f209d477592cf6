"""BreastResponseAI Logic: MRML nodes in, core calls, MRML nodes out.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from responseai.breast.constants import (
    FORM_SCHEMA,
    REFERENCE_PHASE,
    RUNNER_UP_COLOR,
    RUNNER_UP_FILE,
    RUNNER_UP_SEGMENT,
    runner_up_note,
)
from responseai.breast.preprocess import check_mask, check_phases
from responseai.breast.segmentation.extent import check_diameters
from responseai.clinical import validate_clinical
from responseai.errors import MissingSegmentError
from responseai.image import Image
from responseai.io import TUMOUR_SEGMENT, read_image, read_segmentation, write_image, write_segmentation
from responseai.slicer_bridge.nodes import (
    add_segmentation_node,
    add_sequence_phases,
    add_volume_node,
    read_tumour_segment,
    segment_to_mask,
    set_segment_mask,
    tumour_segment_id,
    volume_node_to_image,
)
from responseai.slicer_bridge.jobs import PredictionJob, job_environment, python_executable, run_command
from responseai.slicer_bridge.outputs import require_in_scene, set_heatmap, set_results_table
from responseai.breast.report import export_breast_report



@dataclass
class CaseNodes:
    """The MRML nodes of one loaded case."""

    case_id: str
    phases: dict = field(default_factory=dict)  # phase name -> vtkMRMLScalarVolumeNode
    segmentation: object | None = None  # vtkMRMLSegmentationNode


class BreastLogic:
    """Case loading and MRML ⇄ array conversion for the BreastResponseAI module."""

    def __init__(self, scene) -> None:
        self.scene = scene

    def load_case(self, case_id: str, phases: dict[str, Image], mask: Image | None = None) -> CaseNodes:
        """Add one volume node per phase (and the tumour segment) with the images' geometry.

        Phases and mask are both checked before the first node is added: a bad mask must not
        leave half a case in the scene.
        """
        images = check_phases(phases)
        if mask is not None:
            mask = check_mask(mask, images[REFERENCE_PHASE])
        nodes = CaseNodes(case_id)
        for name, image in images.items():
            nodes.phases[name] = add_volume_node(self.scene, image, f"{case_id} {name}")
        if mask is not None:
            nodes.segmentation = add_segmentation_node(
                self.scene, mask, nodes.phases[REFERENCE_PHASE], f"{case_id} segmentation", TUMOUR_SEGMENT
            )
        return nodes

    def phases_from_sequence(self, sequence_node, frames: str | None = None) -> tuple[dict, str]:
        """A dynamic series loaded as a sequence → one volume node per chosen phase, and the sentence saying which
        frames and why; the phases are checked (enhancement after contrast, one grid) before the first node is added."""
        return add_sequence_phases(self.scene, sequence_node, frames, check_phases)

    def read_phases(self, phase_nodes: dict, resample: bool = False) -> dict[str, Image]:
        """Volume nodes → images on the reference (post1) grid; a missing required phase is an error."""
        images = {name: volume_node_to_image(node) for name, node in phase_nodes.items() if node is not None}
        return check_phases(images, resample)

    def read_mask(self, segmentation_node, reference_node) -> Image:
        """The tumour segment (named Tumour, or the only one) on the reference grid, Segment Editor edits included."""
        return read_tumour_segment(segmentation_node, reference_node)

    def use_runner_up(self, segmentation, reference_node) -> None:
        """Make the runner-up candidate the tumour (the outlined one was not): its mask replaces the Tumour
        segment and the runner-up segment goes; predicting again then uses it as the user's mask."""
        segments = segmentation.GetSegmentation()
        runner_up = segments.GetSegmentIdBySegmentName(RUNNER_UP_SEGMENT)
        if not runner_up:
            raise MissingSegmentError(f"segmentation '{segmentation.GetName()}' has no {RUNNER_UP_SEGMENT} segment: the "
                                      "model found a single candidate, draw the tumour instead")
        mask = segment_to_mask(segmentation, runner_up, reference_node)
        segments.RemoveSegment(runner_up)
        set_segment_mask(segmentation, mask, TUMOUR_SEGMENT)


@dataclass
class Job(PredictionJob):
    """A breast prediction job; remembers the segmentation the user supplied, if any."""

    user_segmentation: object | None = None


class BreastJobs:
    """Prepare a prediction job from MRML nodes; nothing is added to the scene until it succeeds.

    The models run in a separate process (``responseai predict breast``) so Slicer's GUI stays
    responsive and Cancel can kill the work; all checks happen here first, so a bad input
    is reported before anything starts and the scene is left as it was.
    """

    def __init__(self, logic: BreastLogic) -> None:
        self.logic = logic

    def prepare(self, case_id: str, phase_nodes: dict, clinical: dict, segmentation_node=None,
                folder: Path | None = None, resample: bool = False) -> Job:
        images = self.logic.read_phases(phase_nodes, resample)
        record = validate_clinical(clinical, FORM_SCHEMA)
        check_diameters(record)
        mask = None
        if segmentation_node is not None:
            mask = self.logic.read_mask(segmentation_node, phase_nodes[REFERENCE_PHASE])
        folder = Path(folder or tempfile.mkdtemp(prefix="responseai-job-"))
        inputs = folder / "input"
        paths = {name: write_image(image, inputs / f"{name}.nrrd") for name, image in images.items()}
        (inputs / "clinical.json").write_text(json.dumps({k: v for k, v in record.items() if v is not None}),
                                              encoding="utf-8")
        command = [python_executable(), "-m", "responseai.cli", "predict", "breast", "--case-id", case_id,
                   "--clinical", str(inputs / "clinical.json"), "--out", str(folder / "out")]
        for name, path in paths.items():
            command += [f"--{name}", str(path)]
        if mask is not None:
            command += ["--mask", str(write_segmentation(mask, inputs / "tumour.seg.nrrd"))]
        return Job(folder, command, job_environment(), segmentation_node)


@dataclass
class ResultNodes:
    """The MRML outputs of one prediction; passed back in on re-run so nodes are reused."""

    record: dict
    segmentation: object
    heatmap: object
    table: object
    gradcam: object | None = None
    reference: object | None = None
    card: dict = field(default_factory=dict)
    automatic: bool = True  # the segmentation is the model's (reusable), not the user's input


def import_results(scene, job: Job, reference_node, previous: ResultNodes | None = None,
                   with_gradcam: bool = False) -> ResultNodes:
    """Load a finished job's outputs as nodes: tumour segment, attention heatmap, table.

    A user-supplied segmentation is never modified nor reused as an output (it *was* an input);
    the model's mask becomes (or updates) the case's "tumour (automatic)" segmentation, and
    reused nodes are renamed for the current case.
    """
    require_in_scene(scene, reference_node, "the post-contrast 1 volume")
    record = json.loads((job.out / "result.json").read_text(encoding="utf-8"))
    card = json.loads((job.out / "model_card.json").read_text(encoding="utf-8"))
    case_id = record["case_id"]
    segmentation = job.user_segmentation
    if segmentation is None:
        mask = read_segmentation(job.out / "tumour.seg.nrrd", TUMOUR_SEGMENT)
        name = f"{case_id} tumour (automatic)"
        reusable = previous is not None and previous.automatic and scene.IsNodePresent(previous.segmentation)
        if reusable:
            segmentation = previous.segmentation
            segmentation.SetName(name)
            set_segment_mask(segmentation, mask, TUMOUR_SEGMENT)
        else:
            segmentation = add_segmentation_node(scene, mask, reference_node, name, TUMOUR_SEGMENT)
        show_runner_up(segmentation, job.out / RUNNER_UP_FILE)
    heatmap = set_heatmap(scene, read_image(job.out / "attention.nrrd", "attention"), f"{case_id} attention",
                          previous.heatmap if previous else None)
    gradcam = None
    if with_gradcam:
        gradcam = set_heatmap(scene, read_image(job.out / "gradcam.nrrd", "Grad-CAM"), f"{case_id} Grad-CAM",
                              previous.gradcam if previous else None)
    rows = {
        "pCR probability": record["pcr_probability"],
        "Predicted class": record["predicted_class"],
        "Decision threshold": record["threshold"],
        "Attention in tumour (fraction)": record["attention_in_mask"],
        "Pointing game hit": "yes" if record["pointing_game_hit"] else "no",
        "Tumour mask": record["mask_source"],
        "Tumour side": record.get("side_caution") or record.get("tumour_side", "not recorded"),
        "Tumour volume (ml)": record.get("tumour_volume_ml", "not recorded"),
        "Mask diameters (mm)": " x ".join(f"{d:g}" for d in record["mask_diameters_mm"]) if "mask_diameters_mm" in record
        else "not recorded",
        "Mask extent check": _extent_row(record),
        "Runner-up candidate": _runner_up_row(record.get("runner_up_candidate")),
        "Missing clinical": record["missing_clinical"],
        "Model": f"{record['model']['name']} {record['model']['version']}",
    }
    table = set_results_table(scene, rows, f"{case_id} pCR results", previous.table if previous else None)
    return ResultNodes(record, segmentation, heatmap, table, gradcam, reference_node, card,
                       automatic=job.user_segmentation is None)


def summary_text(record: dict, _=lambda text: text) -> str:
    """The module's status line for one result: the probability, then every caution in a few words.

    Why here and not in the widget: the line is read first, so what it says about each caution is tested on
    real results; ``_`` is Slicer's translation function in the module (named so that Slicer's string
    extraction finds these texts).
    """
    text = _("pCR probability {probability:.2f} ({label})").format(
        probability=record["pcr_probability"], label=record["predicted_class"])
    if record.get("side_caution"):
        named = (record.get("clinical_used") or {}).get("laterality")
        text += " - " + (_("the model's first choice was in the other breast: check the form's side")
                         if named == record.get("tumour_side")  # the mask follows the form; the model preferred the other breast
                         else _("the tumour mask is in the {side} breast, not the one on the form: check it").format(
                             side=record["tumour_side"]))
    if record.get("extent_caution"):  # the status line is read first: the outline check belongs there too
        text += " - " + _("check the tumour outline: its volume is {ratio:g} x {yardstick}").format(
            ratio=record["mask_to_clinical_size_ratio"],
            yardstick=record.get("clinical_size_yardstick", "a sphere of the clinical size"))
    if record.get("choice_caution"):  # a close call, or the clinical size set the model's first choice aside
        text += " - " + (_("the clinical size set the model's first choice aside: compare it with the runner-up")
                         if (record.get("runner_up_candidate") or {}).get("model_first_choice")
                         else _("close call: compare the outlined candidate with the runner-up"))
    if record.get("outline_caution"):  # the outline was cut down, or grown, to fit the clinical size
        text += " - " + (_("the outline was grown to the clinical tumour size: check it")
                         if "outline_grown_from_ml" in record
                         else _("the outline was cut to the clinical tumour size: check it"))
    return text


def _extent_row(record: dict) -> str:
    """The mask against the clinical size: the caution when it does not fit, or when it was cut or grown to fit it."""
    caution = record.get("extent_caution") or record.get("outline_caution")
    if caution:
        return caution
    if "clinical_size_yardstick" in record:
        return f"fits {record['clinical_size_yardstick']}"
    return "no clinical size given"


def _runner_up_row(second: dict | None) -> str:
    if second is None:
        return "none (a single candidate, or the user's mask)"
    return (f"{second['volume_ml']:g} ml, {second['side']} breast, score margin {second['score_margin']:g}"
            f"{runner_up_note(second)}: "
            "hidden segment; 'Use runner-up candidate' makes it the tumour")


def show_runner_up(segmentation, path: Path) -> None:
    """The segmentation's second candidate as a hidden segment beside the tumour (or none, when the job
    found no second candidate: a re-used node must not keep the previous case's)."""
    segments = segmentation.GetSegmentation()
    stale = segments.GetSegmentIdBySegmentName(RUNNER_UP_SEGMENT)
    if stale:
        segments.RemoveSegment(stale)
    if path.is_file():
        segment_id = set_segment_mask(segmentation, read_segmentation(path, RUNNER_UP_SEGMENT), RUNNER_UP_SEGMENT,
                                      RUNNER_UP_COLOR)
        segmentation.GetDisplayNode().SetSegmentVisibility(segment_id, False)


def export_report(results: ResultNodes, out_dir: str | Path, snapshots: dict, dicom_source: str | Path | None = None) -> dict:
    """The per-patient report of a result in the scene, with the segment as it is now (edits included)."""
    segmentation = results.segmentation
    mask = segment_to_mask(segmentation, tumour_segment_id(segmentation), results.reference)
    return export_breast_report(results.record, results.card, mask, snapshots, out_dir, dicom_source)


def run_job(job: Job) -> None:
    """Run a prepared job to completion (tests, scripting); the widget uses a QProcess instead."""
    run_command(job.command, job.env)


PHASE_PARAMETERS = {"pre": "prePhase", "post1": "post1Phase", "post2": "post2Phase"}
SEGMENTATION_PARAMETER = "tumourSegmentation"


def write_form(parameter_node, phase_nodes: dict, clinical: dict, segmentation_node=None) -> None:
    """Store inputs in a parameter node exactly as the module's parameterNodeWrapper does.

    (str fields via SetParameter, node fields as a parameter plus a node reference of the same
    name), so scripts, tests and the GUI share one on-disk format in saved scenes.
    """
    for phase, parameter in PHASE_PARAMETERS.items():
        node = phase_nodes.get(phase)
        parameter_node.SetParameter(parameter, "")
        parameter_node.SetNodeReferenceID(parameter, node.GetID() if node is not None else None)
    parameter_node.SetParameter(SEGMENTATION_PARAMETER, "")
    parameter_node.SetNodeReferenceID(SEGMENTATION_PARAMETER, segmentation_node.GetID() if segmentation_node else None)
    for name in FORM_SCHEMA:
        value = clinical.get(name)
        parameter_node.SetParameter(name, "" if value is None else str(value))


def read_form(parameter_node) -> tuple[dict, dict, object]:
    """Phase nodes, clinical values and segmentation node from a (possibly reloaded) parameter node."""
    phases = {phase: parameter_node.GetNodeReference(parameter) for phase, parameter in PHASE_PARAMETERS.items()}
    clinical = {name: parameter_node.GetParameter(name) for name in FORM_SCHEMA if parameter_node.HasParameter(name)}
    return phases, clinical, parameter_node.GetNodeReference(SEGMENTATION_PARAMETER)
