"""GradeGuidedFusion Logic: CT / MRI / PET volume nodes + tumour segment + clinical form → job → MRML results.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code.

The network runs in a separate process (``python -m responseai.inference.gradeguided``) so
Slicer's GUI stays responsive and Cancel can kill it. :meth:`GradeGuidedLogic.prepare_job`
checks everything first — modalities (overlap, PET in SUV, which ones the model can do
without), segment, clinical values, biopsy grade — before it writes anything, and nothing is
added to the scene until the job has succeeded: a bad input leaves the scene as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import responseai
from responseai.clinical import field_errors, validate_clinical
from responseai.errors import EmptyMaskError, GeometryMismatchError, MissingPhaseError, ResponseAIError
from responseai.gradeguided_preprocess import (
    CLINICAL_SCHEMA, RoiSpec, check_pet_suv, missing_modalities, parse_grade,
)
from responseai.image import Image
from responseai.io import align_to_reference, read_image, validate_mask, volumes_overlap, write_image
from responseai.pipeline import parse_progress
from responseai.slicer_bridge.nodes import add_volume_node, segment_to_mask, update_volume_node, volume_node_to_image
from responseai.synthetic.gradeguided import MODALITIES
from responseai.weights import read_card

MODALITY_ORDER = ("ct", "mr", "mri", "pet")
MODALITY_LABELS = {"ct_nc": "CT non-contrast", "ct_art": "CT arterial", "ct_pv": "CT portal-venous",
                   "mr_t1": "MRI T1", "mr_t2": "MRI T2", "pet": "PET"}
CLINICAL_FIELDS = tuple(CLINICAL_SCHEMA)  # age, pdl1, egfr, afp, stage, treatment
TUMOUR_SEGMENT = "Tumour"
MAP_COLOR_NAME = "ResponseAI GradeGuided map"
CORE_PARENT = Path(responseai.__file__).resolve().parents[1]  # so the job process imports the same core
# a few samples of matplotlib's perceptually uniform "inferno" map (no matplotlib needed in Slicer)
INFERNO = ((0.0, (0.0, 0.0, 0.016)), (0.25, (0.341, 0.063, 0.431)), (0.5, (0.735, 0.216, 0.330)),
           (0.75, (0.978, 0.557, 0.035)), (1.0, (0.988, 1.0, 0.643)))


def default_weights() -> Path:
    """The shipped model (``Resources/Models/gradeguided.safetensors``)."""
    from responseai.inference.gradeguided import DEFAULT

    return DEFAULT


def python_executable() -> str:
    """The interpreter for background jobs: Slicer's ``PythonSlicer`` when present, else this one."""
    return shutil.which("PythonSlicer") or sys.executable


@dataclass
class Job:
    """A prepared background prediction: inputs written to ``folder``, results expected in ``out``."""

    folder: Path
    command: list[str]
    env: dict[str, str]
    case_name: str
    missing: list[str]

    @property
    def out(self) -> Path:
        return self.folder / "out"


@dataclass
class GradeGuidedOutputs:
    """The MRML nodes a run produced (reused on the next run) and the parsed ``result.json``."""

    table: object  # vtkMRMLTableNode
    spatial_map: object  # vtkMRMLScalarVolumeNode
    record: dict


class GradeGuidedLogic:
    """Reads whatever modalities the user selected; any may be missing, but not all."""

    def __init__(self, scene) -> None:
        self.scene = scene

    # ---------------------------------------------------------------- inputs
    def read_modalities(self, nodes: dict, reference: str | None = None) -> dict[str, Image]:
        """Volume nodes (name → node or None) → images resampled onto the reference modality grid.

        The reference is the first present modality in CT, MRI, PET order unless given: CT has
        the finest, most reliable geometry when present.
        """
        images = {name: volume_node_to_image(node) for name, node in nodes.items() if node is not None}
        if not images:
            raise MissingPhaseError("no imaging volume selected: choose at least one of CT, MRI or PET")
        reference = reference or self.reference_name(nodes)
        return align_to_reference(images, reference, resample=True)

    @staticmethod
    def reference_name(nodes: dict) -> str:
        """First selected modality in CT, MRI, PET order (the grid everything is shown on)."""
        present = [name for name, node in nodes.items() if node is not None]
        if not present:
            raise MissingPhaseError("no imaging volume selected: choose at least one of CT, MRI or PET")
        return next((n for n in present if n.split("_")[0] in MODALITY_ORDER), present[0])

    @staticmethod
    def modality_status(nodes: dict) -> str:
        """One line for the status label: which of the model's channels are given / missing."""
        given = [MODALITY_LABELS[m] for m in MODALITIES if nodes.get(m) is not None]
        missing = [MODALITY_LABELS[m] for m in MODALITIES if nodes.get(m) is None]
        if not given:
            return "No imaging volume selected: choose at least one of CT, MRI or PET."
        if not missing:
            return "All six channels given."
        return f"Given: {', '.join(given)}. Missing (zero channel, less reliable): {', '.join(missing)}."

    @staticmethod
    def clinical_errors(values: dict) -> dict[str, str]:
        """Per-field messages for the form (empty when each entry is valid or unknown)."""
        return field_errors(values, CLINICAL_SCHEMA)

    def read_mask(self, segmentation_node, reference_node) -> Image:
        """The tumour segment (named Tumour, or the only one) on the reference grid, user edits included."""
        if segmentation_node is None:
            raise EmptyMaskError("select a tumour segmentation (segment named Tumour, or a single segment)")
        segmentation = segmentation_node.GetSegmentation()
        segment_id = segmentation.GetSegmentIdBySegmentName(TUMOUR_SEGMENT)
        if not segment_id and segmentation.GetNumberOfSegments() == 1:
            segment_id = segmentation.GetNthSegmentID(0)
        if not segment_id:
            raise MissingPhaseError(f"segmentation '{segmentation_node.GetName()}' has no segment named "
                                    f"{TUMOUR_SEGMENT} (and more than one segment)")
        mask = segment_to_mask(segmentation_node, segment_id, reference_node)
        validate_mask(mask, "tumour segment")
        return mask

    def _check_against_model(self, images: dict[str, Image], mask: Image, weights: Path) -> list[str]:
        """What the model card allows: missing channels, PET in SUV, every volume overlapping the tumour."""
        card = read_card(weights)
        spec = RoiSpec.from_dict(card["preprocessing"]["roi"])
        allow = card["inputs"].get("missing_modalities") == "zero_channel"
        missing = missing_modalities({m: images.get(m) for m in spec.modalities}, spec, allow)
        if "pet" in images:
            check_pet_suv(images["pet"])
        for name, image in images.items():
            if not volumes_overlap(image, mask):
                raise GeometryMismatchError(f"{name}: the volume does not overlap the tumour segment")
        return missing

    def prepare_job(self, case_name: str, nodes: dict, segmentation_node, clinical: dict,
                    biopsy_grade: str | None = None, weights: str | Path | None = None,
                    folder: Path | None = None) -> Job:
        """Validate everything, write the inputs to a temporary folder, return the job's command."""
        weights = Path(weights or default_weights())
        reference = self.reference_name(nodes)
        images = self.read_modalities(nodes, reference)
        mask = self.read_mask(segmentation_node, nodes[reference])
        record = validate_clinical({k: v for k, v in clinical.items()}, CLINICAL_SCHEMA)
        grade = None if biopsy_grade in (None, "", "unknown") else biopsy_grade
        parse_grade(grade)
        missing = self._check_against_model(images, mask, weights)
        folder = Path(folder or tempfile.mkdtemp(prefix="responseai-gg-job-"))
        inputs = folder / "input"
        command = [python_executable(), "-m", "responseai.inference.gradeguided"]
        for name, image in images.items():
            command += [f"--{_option(name)}", str(write_image(image, inputs / f"{name}.nrrd"))]
        command += ["--mask", str(write_image(mask, inputs / "mask.nrrd")), "--weights", str(weights),
                    "--out", str(folder / "out")]
        clinical_path = inputs / "clinical.json"
        clinical_path.write_text(json.dumps({k: v for k, v in record.items() if v is not None}), encoding="utf-8")
        command += ["--clinical", str(clinical_path)]
        if grade is not None:
            command += ["--biopsy-grade", str(grade)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CORE_PARENT), os.environ.get("PYTHONPATH")]))}
        return Job(folder, command, env, case_name, missing)

    # ---------------------------------------------------------------- outputs
    def import_results(self, job: Job, previous: GradeGuidedOutputs | None = None) -> GradeGuidedOutputs:
        """Table + map nodes from the job's output; the previous run's nodes are reused when still present."""
        record = json.loads((job.out / "result.json").read_text(encoding="utf-8"))
        heat = read_image(job.out / record.get("spatial_map", "subtype_map.nrrd"), "subtype map")
        previous_map = previous.spatial_map if previous else None
        previous_table = previous.table if previous else None
        spatial_map = self._set_map(heat, f"{job.case_name} subtype map", previous_map)
        table = self._set_table(result_rows(record), f"{job.case_name} grade-guided results", previous_table)
        return GradeGuidedOutputs(table, spatial_map, record)

    def run(self, job: Job, previous: GradeGuidedOutputs | None = None, timeout: float = 600) -> GradeGuidedOutputs:
        """Synchronous run of a prepared job (tests, scripting); raises with the job's ERROR line."""
        done = subprocess.run(job.command, env=job.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise ResponseAIError(error_from_log((done.stdout + done.stderr).splitlines()))
        return self.import_results(job, previous)

    def _present(self, node) -> bool:
        return node is not None and self.scene.IsNodePresent(node)

    def map_color_node(self):
        """The scene's inferno colour node over [0, 1] (created once, then found by name)."""
        existing = self.scene.GetFirstNodeByName(MAP_COLOR_NAME)
        if existing is not None:
            return existing
        node = self.scene.AddNewNodeByClass("vtkMRMLProceduralColorNode", MAP_COLOR_NAME)
        function = node.GetColorTransferFunction()
        for value, (r, g, b) in INFERNO:
            function.AddRGBPoint(value, r, g, b)
        return node

    def _set_map(self, heat: Image, name: str, previous=None):
        image = heat.with_array(np.clip(heat.array.astype(np.float32), 0.0, 1.0))
        if self._present(previous):
            update_volume_node(previous, image)
            node = previous
        else:
            node = add_volume_node(self.scene, image, name)
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(self.map_color_node().GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.ApplyThresholdOn()
        display.SetLowerThreshold(0.05)  # near-zero sensitivity transparent: anatomy stays visible
        display.SetUpperThreshold(1.0)
        node.SetAttribute("ResponseAI.role", "gradeguided-map")
        return node

    def _set_table(self, rows: list[tuple[str, str]], name: str, previous=None):
        import vtk

        node = previous if self._present(previous) else self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        table = node.GetTable()
        table.Initialize()
        for title in ("Quantity", "Value"):
            column = vtk.vtkStringArray()
            column.SetName(title)
            table.AddColumn(column)
        for key, value in rows:
            row = table.InsertNextBlankRow()
            table.SetValue(row, 0, vtk.vtkVariant(key))
            table.SetValue(row, 1, vtk.vtkVariant(value))
        node.SetUseColumnTitleAsColumnHeader(True)
        node.Modified()
        return node


def _option(name: str) -> str:
    """Core modality name → the inference command's option (``mr_t1`` → ``mri-t1``)."""
    return name.replace("mr_", "mri-").replace("_", "-")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def result_rows(record: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows a clinician reads: grade, response, subtype, α, clinical drivers."""
    rows = [(f"P(grade {g})", _fmt(p)) for g, p in record["grade_probabilities"].items()]
    rows += [("Predicted grade", record["predicted_grade"]),
             ("Grade guiding the fusion", f"{record['grade_used']} ({record['grade_source']})"),
             ("Response probability", _fmt(record["response_probability"])),
             ("Response class", f"{record['response_class']} (threshold {_fmt(record['threshold'])})"),
             ("Subtype", record["subtype"])]
    rows += [(f"P(subtype {s})", _fmt(p)) for s, p in record["subtype_probabilities"].items()]
    rows += [(f"α {name} stream", _fmt(w)) for name, w in record["alpha"].items()]
    rows += [(f"Clinical contribution: {c['feature']}", f"{c['contribution']:+.3f}") for c in record["clinical_contributions"]]
    rows += [("Missing modalities", ", ".join(record["missing_modalities"]) or "none"),
             ("Unknown clinical variables", ", ".join(record["missing_clinical"]) or "none"),
             ("Model", f"{record['model']['name']} {record['model']['version']}"),
             ("Note", "α is per source stream (every stream sees all modalities); research use only")]
    return rows


def error_from_log(lines: list[str]) -> str:
    """The job's last ERROR message, else a generic one with the last line."""
    errors = [line.split(": ", 1)[-1] for line in lines if " ERROR " in line]
    if errors:
        return errors[-1]
    return "the prediction process failed" + (f": {lines[-1]}" if lines else "")


__all__ = ["GradeGuidedLogic", "GradeGuidedOutputs", "Job", "error_from_log", "parse_progress", "result_rows"]
