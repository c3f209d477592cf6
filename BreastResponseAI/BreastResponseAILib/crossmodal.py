"""Cross-modal diagnosis in BreastResponseAI: mammogram volume node + pathology tiles → job → MRML results.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code. A mammogram in Slicer is a scalar
volume node with one slice; :meth:`CrossModalLogic.prepare_job` checks it (single slice,
single channel, finite, not constant, large enough) and the pathology path (a tile or a folder
of tiles) before writing anything, then builds a ``responseai predict crossmodal`` command.
Nothing is added to the scene until the job has succeeded; :meth:`import_results` then shows
the cross-attention heatmap over the mammogram (on its exact grid), the predicted lesion box as
a markups ROI on the mammogram's physical grid and a results table, reusing the previous run's
nodes.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk

from responseai.crossmodal.inference import DEFAULT as DEFAULT_WEIGHTS
from responseai.crossmodal.preprocess import check_mammogram, pathology_files
from responseai.errors import InvalidImageError, MissingPhaseError
from responseai.image import Image
from responseai.io import from_sitk, write_image
from responseai.slicer_bridge.jobs import PredictionJob, job_environment, python_executable, run_command
from responseai.slicer_bridge.nodes import volume_node_to_image
from responseai.slicer_bridge.outputs import require_in_scene, set_heatmap, set_results_table


@dataclass
class CrossModalJob(PredictionJob):
    """A cross-modal prediction job; keeps the mammogram node the heatmap will be drawn over."""

    case_name: str = ""
    mammogram: object | None = None


@dataclass
class CrossModalOutputs:
    """The MRML nodes a run produced (reused on the next run) and the parsed ``result.json``."""

    table: object  # vtkMRMLTableNode
    heatmap: object | None  # vtkMRMLScalarVolumeNode, None without pathology
    record: dict
    roi: object | None = None  # vtkMRMLMarkupsROINode of the lesion box, None when no lesion was localised
    gallery: object | None = None  # vtkMRMLVectorVolumeNode: the top-K evidence patches side by side (RGB)


class CrossModalLogic:
    def __init__(self, scene) -> None:
        self.scene = scene

    @staticmethod
    def read_mammogram(node) -> Image:
        """The node's one slice, checked as a mammogram (the core's messages)."""
        if node is None:
            raise MissingPhaseError("no mammogram selected: choose the 2D mammogram volume")
        image = volume_node_to_image(node)
        if image.array.shape[0] != 1:
            raise InvalidImageError(f"{node.GetName()}: a 2D mammogram (one slice) is needed, "
                                    f"got {image.array.shape[0]} slices")
        return image.with_array(check_mammogram(image.array[0], node.GetName())[None])

    def prepare_job(self, case_name: str, mammogram_node, pathology: str | Path | None = None,
                    weights: str | Path | None = None, folder: Path | None = None) -> CrossModalJob:
        """Validate the inputs, write the mammogram for the job, return its command."""
        image = self.read_mammogram(mammogram_node)
        if pathology:
            pathology_files(pathology)  # a missing file / empty folder is reported now, not by the job
        folder = Path(folder or tempfile.mkdtemp(prefix="responseai-cm-job-"))
        mammogram = write_image(image, folder / "input" / "mammogram.nrrd")
        command = [python_executable(), "-m", "responseai.cli", "predict", "crossmodal", "--mammogram", str(mammogram),
                   "--weights", str(weights or DEFAULT_WEIGHTS), "--case-id", case_name, "--out", str(folder / "out")]
        if pathology:
            command += ["--pathology", str(pathology)]
        return CrossModalJob(folder, command, job_environment(), case_name, mammogram_node)

    def import_results(self, job: CrossModalJob, previous: CrossModalOutputs | None = None) -> CrossModalOutputs:
        """Heatmap volume over the mammogram (when there was pathology) + results table."""
        require_in_scene(self.scene, job.mammogram, "the mammogram")
        record = json.loads((job.out / "result.json").read_text(encoding="utf-8"))
        heatmap = previous.heatmap if previous else None
        if record["heatmap"]:
            heat = from_sitk(sitk.ReadImage(str(job.out / record["heatmap"])))
            heatmap = set_heatmap(self.scene, heat, f"{job.case_name} cross-attention", heatmap, job.mammogram)
        table = set_results_table(self.scene, dict(result_rows(record)), f"{job.case_name} cross-modal results",
                                  previous.table if previous else None)
        roi = set_lesion_roi(self.scene, record["box"], job.mammogram, f"{job.case_name} lesion box",
                             previous.roi if previous else None)
        patches = [job.out / item["file"] for item in record.get("evidence") or []]
        gallery = set_evidence_gallery(self.scene, patches, f"{job.case_name} evidence patches",
                                       previous.gallery if previous else None)
        return CrossModalOutputs(table, heatmap, record, roi, gallery)

    def run(self, job: CrossModalJob, previous: CrossModalOutputs | None = None, timeout: float = 600) -> CrossModalOutputs:
        """Synchronous run of a prepared job (tests, scripting); raises with the job's ERROR line."""
        run_command(job.command, job.env, timeout)
        return self.import_results(job, previous)


def box_geometry(box: list[int], ijk_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (RAS, mm), size (mm along the box's axes) and 3×3 orientation of a pixel box on a 2D grid.

    ``box`` is (row0, col0, row1, col1), end exclusive, as ``result.json`` gives it; rows are the
    j axis and columns the i axis. The box covers whole pixels, edge to edge, so its size is
    pixels × spacing (a one-pixel box is one spacing wide) and its third side is the slice
    thickness. A left-handed grid gets its slice normal flipped (the box is symmetric about it)
    so that the orientation is a rotation, as a markups ROI needs.
    """
    row0, col0, row1, col1 = box
    matrix = np.asarray(ijk_to_ras, dtype=float)
    centre = matrix @ np.array([(col0 + col1 - 1) / 2, (row0 + row1 - 1) / 2, 0.0, 1.0])
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    axes = matrix[:3, :3] / spacing
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1
    return centre[:3], np.array([col1 - col0, row1 - row0, 1]) * spacing, axes


GALLERY_GAP = 4  # white pixels between two evidence patches


def evidence_strip(patches: list[np.ndarray]) -> np.ndarray:
    """The top-K RGB patches side by side (rank 1 on the left), bottom-padded to one height, white gaps."""
    height = max(p.shape[0] for p in patches)
    padded = [np.pad(p[..., :3], ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in patches]
    gap = np.full((height, GALLERY_GAP, 3), 255, np.uint8)
    return np.concatenate([part for p in padded for part in (p, gap)][:-1], axis=1).astype(np.uint8)


def set_evidence_gallery(scene, patch_files: list[Path], name: str, previous=None):
    """The evidence patches as one RGB image node a slice view shows (reused; removed when there are none).

    The report has them as a strip too; in Slicer a reader sees them next to the heatmap without
    leaving the application.
    """
    import slicer

    if not patch_files:
        if previous is not None and scene.IsNodePresent(previous):
            scene.RemoveNode(previous)
        return None
    from PIL import Image as PILImage

    strip = evidence_strip([np.asarray(PILImage.open(path).convert("RGB")) for path in patch_files])
    node = previous if previous is not None and scene.IsNodePresent(previous) else None
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", name)
        node.CreateDefaultDisplayNodes()
    node.SetName(name)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(strip[::-1][None]))  # row 0 at the top in views
    return node


def set_lesion_roi(scene, box: list[int] | None, mammogram_node, name: str, previous=None):
    """The lesion box as a markups ROI on the mammogram's physical grid (``previous`` reused); None without a box.

    A run that localises nothing removes the previous run's ROI rather than leaving a stale box.
    """
    reusable = previous is not None and bool(scene.IsNodePresent(previous))
    if box is None:
        if reusable:
            scene.RemoveNode(previous)
        return None
    ijk_to_ras = vtk.vtkMatrix4x4()
    mammogram_node.GetIJKToRASMatrix(ijk_to_ras)
    centre, size, axes = box_geometry(box, [[ijk_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])
    roi = previous if reusable else scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
    roi.SetName(name)
    if roi.GetDisplayNode() is None:
        roi.CreateDefaultDisplayNodes()
    orientation = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            orientation.SetElement(r, c, float(axes[r, c]))
    roi.SetAndObserveObjectToNodeMatrix(orientation)
    roi.SetCenter(*map(float, centre))
    roi.SetSize(*map(float, size))
    roi.SetAndObserveTransformNodeID(mammogram_node.GetTransformNodeID())  # follows the mammogram if it is moved
    return roi


def result_rows(record: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows: class probabilities, grade, box, modalities, evidence, conclusion."""
    rows = [(f"P({c.replace('_', ' ')})", f"{p:.3f}") for c, p in record["class_probabilities"].items()]
    rows += [("Diagnosis", f"{record['predicted_class'].replace('_', ' ')} ({record['confidence']:.2f})"),
             ("Grade", record["predicted_grade"] if record["grade_applies"] else "not applicable"),
             ("Lesion box (row0, col0, row1, col1)", ", ".join(map(str, record["box"])) if record["box"] else "none"),
             ("Modalities used", ", ".join(record["modalities_used"]))]
    rows += [(f"Evidence patch {e['rank']}", f"{e['tile']} {e['pixel_box']} attention {e['attention']:.3f}")
             for e in record["evidence"]]
    rows += [("Conclusion", record["conclusion"])] + [("Note", n) for n in record["notes"]]
    return rows
