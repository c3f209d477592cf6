"""GradeGuidedFusion Logic: CT / MRI / PET volume nodes + tumour segment + clinical form → job → MRML results.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code.

The network runs in a separate process (``responseai predict gradeguided``) so
Slicer's GUI stays responsive and Cancel can kill it. :meth:`GradeGuidedLogic.prepare_job`
checks everything first — modalities (overlap, PET in SUV, which ones the model can do
without), segment, clinical values, biopsy grade — before it writes anything, and nothing is
added to the scene until the job has succeeded: a bad input leaves the scene as it was.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from responseai.clinical import validate_clinical
from responseai.errors import GeometryMismatchError, MissingPhaseError
from responseai.gradeguided.constants import CLINICAL_SCHEMA, MODALITY_LABELS
from responseai.gradeguided.inference import DEFAULT as DEFAULT_WEIGHTS
from responseai.gradeguided.preprocess import RoiSpec, check_pet_suv, missing_modalities, parse_grade
from responseai.gradeguided.report import build_gradeguided_report, reference_modality
from responseai.image import Image
from responseai.io import (
    align_to_reference, read_image, validate_not_constant, validate_volume, volumes_overlap, write_image,
)
from responseai.reports.writer import write_report
from responseai.slicer_bridge.jobs import PredictionJob, job_environment, python_executable, run_command
from responseai.slicer_bridge.nodes import read_tumour_segment, volume_node_to_image
from responseai.slicer_bridge.outputs import require_in_scene, set_heatmap, set_results_table
from responseai.weights import read_card

MODALITY_ORDER = ("ct", "mr", "mri", "pet")
CLINICAL_FIELDS = tuple(CLINICAL_SCHEMA)  # age, pdl1, egfr, afp, stage, treatment


@dataclass
class Job(PredictionJob):
    """A grade-guided prediction job; knows its case name and the modalities it runs without."""

    case_name: str = ""
    missing: list[str] = field(default_factory=list)
    segmentation: object | None = None  # the input segment node: must still exist when results arrive


@dataclass
class GradeGuidedOutputs:
    """The MRML nodes a run produced (reused on the next run), the parsed ``result.json`` and model card."""

    table: object  # vtkMRMLTableNode
    spatial_map: object  # vtkMRMLScalarVolumeNode
    record: dict
    card: dict = field(default_factory=dict)


class GradeGuidedLogic:
    """Reads whatever modalities the user selected; any may be missing, but not all."""

    def __init__(self, scene) -> None:
        self.scene = scene

    # ---------------------------------------------------------------- inputs
    def read_modalities(self, nodes: dict, reference: str | None = None) -> dict[str, Image]:
        """Volume nodes (name → node or None) → images resampled onto the reference modality grid.

        The reference is the first present modality in CT, MRI, PET order unless given: CT has
        the finest, most reliable geometry when present. Each volume is checked for NaN / Inf
        voxels as it is, before resampling would smear them into its neighbours.
        """
        images = {name: volume_node_to_image(node) for name, node in nodes.items() if node is not None}
        if not images:
            raise MissingPhaseError("no imaging volume selected: choose at least one of CT, MRI or PET")
        for name, image in images.items():
            validate_volume(image, name)
        reference = reference or self.reference_name(nodes)
        return align_to_reference(images, reference, resample=True)

    @staticmethod
    def reference_name(nodes: dict) -> str:
        """First selected modality in CT, MRI, PET order (the grid everything is shown on)."""
        present = [name for name, node in nodes.items() if node is not None]
        if not present:
            raise MissingPhaseError("no imaging volume selected: choose at least one of CT, MRI or PET")
        return next((n for n in present if n.split("_")[0] in MODALITY_ORDER), present[0])

    def read_mask(self, segmentation_node, reference_node) -> Image:
        """The tumour segment (named Tumour, or the only one) on the reference grid, user edits included."""
        return read_tumour_segment(segmentation_node, reference_node)

    def _check_against_model(self, images: dict[str, Image], mask: Image, weights: Path) -> list[str]:
        """What the model card allows: missing channels, PET in SUV, every volume overlapping the tumour."""
        card = read_card(weights)
        spec = RoiSpec.from_dict(card["preprocessing"]["roi"])
        allow = card["inputs"].get("missing_modalities") == "zero_channel"
        missing = missing_modalities({m: images.get(m) for m in spec.modalities}, spec, allow)
        if "pet" in images:
            check_pet_suv(images["pet"])
        for name, image in images.items():
            validate_not_constant(image, name)
            if not volumes_overlap(image, mask):
                raise GeometryMismatchError(f"{name}: the volume does not overlap the tumour segment")
        return missing

    def prepare_job(self, case_name: str, nodes: dict, segmentation_node, clinical: dict,
                    biopsy_grade: str | None = None, weights: str | Path | None = None,
                    folder: Path | None = None) -> Job:
        """Validate everything, write the inputs to a temporary folder, return the job's command."""
        weights = Path(weights or DEFAULT_WEIGHTS)
        reference = self.reference_name(nodes)
        images = self.read_modalities(nodes, reference)
        mask = self.read_mask(segmentation_node, nodes[reference])
        record = validate_clinical({k: v for k, v in clinical.items()}, CLINICAL_SCHEMA)
        grade = None if biopsy_grade in (None, "", "unknown") else biopsy_grade
        parse_grade(grade)
        missing = self._check_against_model(images, mask, weights)
        folder = Path(folder or tempfile.mkdtemp(prefix="responseai-gg-job-"))
        inputs = folder / "input"
        command = [python_executable(), "-m", "responseai.cli", "predict", "gradeguided"]
        for name, image in images.items():
            command += [f"--{_option(name)}", str(write_image(image, inputs / f"{name}.nrrd"))]
        command += ["--mask", str(write_image(mask, inputs / "mask.nrrd")), "--weights", str(weights),
                    "--case-id", case_name, "--out", str(folder / "out")]
        clinical_path = inputs / "clinical.json"
        clinical_path.write_text(json.dumps({k: v for k, v in record.items() if v is not None}), encoding="utf-8")
        command += ["--clinical", str(clinical_path)]
        if grade is not None:
            command += ["--biopsy-grade", str(grade)]
        return Job(folder, command, job_environment(), case_name, missing, segmentation_node)

    # ---------------------------------------------------------------- outputs
    def import_results(self, job: Job, previous: GradeGuidedOutputs | None = None) -> GradeGuidedOutputs:
        """Table + map nodes from the job's output; the previous run's nodes are reused (renamed) when present."""
        require_in_scene(self.scene, job.segmentation, "the tumour segmentation")
        record = json.loads((job.out / "result.json").read_text(encoding="utf-8"))
        heat = read_image(job.out / record.get("spatial_map", "subtype_map.nrrd"), "subtype map")
        previous_map = previous.spatial_map if previous else None
        previous_table = previous.table if previous else None
        spatial_map = set_heatmap(self.scene, heat, f"{job.case_name} subtype map", previous_map)
        table = set_results_table(self.scene, dict(result_rows(record)), f"{job.case_name} grade-guided results",
                                  previous_table)
        card = json.loads((job.out / "model_card.json").read_text(encoding="utf-8"))
        return GradeGuidedOutputs(table, spatial_map, record, card)

    def run(self, job: Job, previous: GradeGuidedOutputs | None = None, timeout: float = 600) -> GradeGuidedOutputs:
        """Synchronous run of a prepared job (tests, scripting); raises with the job's ERROR line."""
        run_command(job.command, job.env, timeout)
        return self.import_results(job, previous)


def export_report(outputs: GradeGuidedOutputs, out_dir: str | Path, snapshots: dict[str, Path]) -> dict[str, Path]:
    """The per-patient report (PDF + JSON + the given slice-view snapshots) of a result in the scene."""
    report = build_gradeguided_report(outputs.record, outputs.card, reference_modality(outputs.record))
    return write_report(report, snapshots, out_dir)


def _option(name: str) -> str:
    """Core modality name → the inference command's option (``mr_t1`` → ``mri-t1``)."""
    return name.replace("mr_", "mri-").replace("_", "-")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def result_rows(record: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows a clinician reads: grade, response, subtype, modality importance, α, clinical drivers."""
    rows = [(f"P(grade {g})", _fmt(p)) for g, p in record["grade_probabilities"].items()]
    rows += [("Predicted grade", record["predicted_grade"]),
             ("Grade guiding the fusion", f"{record['grade_used']} ({record['grade_source']})"),
             ("Response probability", _fmt(record["response_probability"])),
             ("Response class", f"{record['response_class']} (threshold {_fmt(record['threshold'])})"),
             ("Subtype", record["subtype"])]
    rows += [(f"P(subtype {s})", _fmt(p)) for s, p in record["subtype_probabilities"].items()]
    rows += [(f"Modality importance: {MODALITY_LABELS.get(m, m)}", _fmt(w))
             for m, w in record["modality_importance"].items()]
    rows += [(f"α {name} stream", _fmt(w)) for name, w in record["alpha"].items()]
    rows += [(f"Clinical contribution: {c['feature']}", f"{c['contribution']:+.3f}") for c in record["clinical_contributions"]]
    rows += [("Missing modalities", ", ".join(record["missing_modalities"]) or "none"),
             ("Unknown clinical variables", ", ".join(record["missing_clinical"]) or "none"),
             ("Model", f"{record['model']['name']} {record['model']['version']}"),
             ("Note", "α is per source stream (every stream sees all modalities); research use only")]
    return rows
