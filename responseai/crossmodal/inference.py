"""Cross-modal diagnosis of one patient: mammogram and/or H&E tiles → class, grade, box, evidence.

    responseai predict crossmodal --mammogram MAMMO.png|.nrrd|.dcm [--pathology TILE.png|FOLDER] \
        [--domain siteA] [--mammogram-patient-id ID] [--pathology-patient-id ID] [--weights W] \
        [--case-id ID] --out DIR
    responseai predict crossmodal --manifest CSV --out DIR     # a cohort (COHORT, responseai.batch)

Either modality may be missing (the model was trained with modality dropout); the result then
says which one was used (``modalities_used``, ``missing_modality``) and there is no
cross-attention evidence, because that needs both. Several pathology tiles of one patient are
pooled (mean of their encodings). ``--domain`` names the site when it is one the model was
trained on (an unknown name is refused with the known list; a new site is simply omitted).
A DICOM mammogram is read with its pixel spacing and grey-scale convention
(:mod:`responseai.crossmodal.mammogram`). When the inputs name their patient (the DICOM
``PatientID``, ``--mammogram-patient-id`` / ``--pathology-patient-id``, or the manifest's
columns of the same names) and two of them differ, the case is refused before any prediction.

Outputs (through a staging folder, all or nothing): ``result.json`` (``family``: crossmodal,
class probabilities, grade, lesion box on the mammogram's pixel grid, conclusion, evidence),
``heatmap.nrrd`` (cross-attention on the mammogram's grid and geometry) and ``heatmap.png``,
``evidence/patch_<k>.png`` (the top-K pathology patches), ``model_card.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from responseai.batch import COHORT_EPILOG, CohortHook
from responseai.crossmodal.constants import CLASSES, FAMILY, GRADES, MALIGNANT, MANIFEST_SCHEMA, TASK, TOP_K
from responseai.crossmodal.explain import evidence
from responseai.crossmodal.mammogram import read_mammogram
from responseai.crossmodal.model import CrossModalNet, build_model, grade_probabilities
from responseai.crossmodal.preprocess import (
    check_domain, check_mammogram, check_pathology, check_same_patient, mammogram_tensor, pathology_files,
    pathology_tensor, read_pixels, stain_normalise,
)
from responseai.errors import InvalidImageError, MissingPhaseError
from responseai.image import Image
from responseai.io import write_image
from responseai.outputs import json_safe, staged_output_dir
from responseai.resources import model_path
from responseai.weights import load_model, load_once

log = logging.getLogger(__name__)

DEFAULT = model_path("crossmodal")
HEATMAP_NAME, HEATMAP_PNG, EVIDENCE_DIR, CARD_NAME = "heatmap.nrrd", "heatmap.png", "evidence", "model_card.json"
Progress = Callable[[int, str], None]


@dataclass
class CrossModalResult:
    """One patient's prediction; the box is (row0, col0, row1, col1) on the mammogram's pixel grid."""

    class_probabilities: dict[str, float]
    predicted_class: str
    grade_probabilities: dict[str, float]
    predicted_grade: str
    box: list[int] | None
    modalities_used: list[str]
    heatmap: Image | None
    evidence_patches: list[dict]
    patch_images: list[np.ndarray]
    conclusion: str
    domain: str | None
    model_name: str
    model_version: str
    notes: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        return self.class_probabilities[self.predicted_class]

    def record(self) -> dict:
        missing = [m for m in ("mammogram", "pathology") if m not in self.modalities_used]
        return json_safe({
            "class_probabilities": self.class_probabilities, "predicted_class": self.predicted_class,
            "confidence": self.confidence, "grade_probabilities": self.grade_probabilities,
            "predicted_grade": self.predicted_grade, "grade_applies": self.predicted_class in MALIGNANT,
            "box": self.box, "box_order": "row0, col0, row1, col1 (pixels of the input mammogram, end exclusive)",
            "modalities_used": self.modalities_used, "missing_modality": missing[0] if missing else None,
            "heatmap": HEATMAP_NAME if self.heatmap is not None else None,
            "evidence": self.evidence_patches, "conclusion": self.conclusion, "domain": self.domain,
            "model": {"name": self.model_name, "version": self.model_version}, "notes": self.notes,
            "research_use_only": True,
        })


def _load(path: Path) -> tuple[CrossModalNet, dict]:
    return load_model(path, build_model, expected_task=TASK)


def load_crossmodal(weights_path: str | Path = DEFAULT) -> tuple[CrossModalNet, dict]:
    """The cached, verified model and its card."""
    return load_once(weights_path, _load)


def _box(prob: np.ndarray) -> list[int] | None:
    rows, cols = np.nonzero(prob >= 0.5)
    return None if len(rows) == 0 else [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1]


def _upsample(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return F.interpolate(torch.as_tensor(grid, dtype=torch.float32)[None, None], size=shape, mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def _conclusion(result_class: str, confidence: float, grade: str, modalities: list[str], box, patches) -> str:
    """Class + confidence + what supports it, in one sentence a reader can check against the figures."""
    parts = [f"{result_class.replace('_', ' ')} (probability {confidence:.2f}) from {' and '.join(modalities)}"]
    if result_class in MALIGNANT:
        parts.append(f"grade {grade}")
    if box is not None:
        parts.append(f"lesion localised at rows {box[0]}–{box[2]}, columns {box[1]}–{box[3]}")
    elif "mammogram" in modalities:
        parts.append("no lesion localised on the mammogram")
    if patches:
        parts.append(f"the high-attention mammogram region is most associated with {len(patches)} pathology patches "
                     f"(mean attention {np.mean([p['attention'] for p in patches]):.3f}), shown as evidence")
    return "; ".join(parts) + ". Research use only."


@torch.no_grad()
def predict_crossmodal(mammogram: Image | None, tiles: Sequence[np.ndarray] = (), tile_names: Sequence[str] = (),
                       weights_path: str | Path = DEFAULT, domain: str | None = None,
                       progress: Progress | None = None) -> CrossModalResult:
    """Diagnosis, grade, box and cross-attention evidence for one patient (see the module docstring)."""
    progress = progress or (lambda pct, msg: None)
    if mammogram is None and not tiles:
        raise MissingPhaseError("give a mammogram, pathology tiles, or both")
    model, card = load_crossmodal(weights_path)
    check_domain(domain, tuple(card["inputs"]["domains"]))
    size, hidden = model.config.image_size, model.config.hidden_size
    tile_names = list(tile_names) or [f"tile {i + 1}" for i in range(len(tiles))]
    progress(20, "checking and normalising the inputs")
    m_array = None
    if mammogram is not None:
        if mammogram.array.shape[0] != 1:
            raise InvalidImageError(f"mammogram: a 2D image is needed, got {mammogram.array.shape[0]} slices")
        m_array = check_mammogram(mammogram.array[0])
    tiles = [stain_normalise(check_pathology(t, f"pathology ({n})")) for t, n in zip(tiles, tile_names)]
    progress(40, "encoding with the shared ViT")
    tokens_m = model.encode(mammogram_tensor(m_array, size)[None], "mammogram") if m_array is not None else None
    tokens_p = (model.encode(torch.stack([pathology_tensor(t, size, normalise_stain=False) for t in tiles]), "pathology")
                if tiles else None)
    z_m = tokens_m.mean(1) if tokens_m is not None else torch.zeros(1, hidden)
    z_p = tokens_p.mean(1).mean(0, keepdim=True) if tokens_p is not None else torch.zeros(1, hidden)
    out = model.heads(z_m, z_p, torch.tensor([tokens_m is not None]), torch.tensor([tokens_p is not None]))
    probs = out["logits"].softmax(1)[0].numpy()
    grades = grade_probabilities(model, out["grade_score"])[0].numpy()
    modalities = [m for m, t in (("mammogram", tokens_m), ("pathology", tokens_p)) if t is not None]
    notes = [] if len(modalities) == 2 else [f"only the {modalities[0]} was given: the prediction uses it alone "
                                             "(trained with modality dropout) and there is no cross-modal evidence"]
    box, heatmap, patches, patch_images = None, None, [], []
    if tokens_m is not None:
        progress(60, "localising the lesion")
        mask_prob = torch.sigmoid(model.mask_logits(tokens_m))[0, 0].numpy()
        box = _box(_upsample(mask_prob, m_array.shape))
    if tokens_m is not None and tokens_p is not None:
        progress(75, "cross-attention between mammogram and pathology patches")
        found = evidence(model, tokens_m[0], tokens_p, TOP_K)
        heatmap = mammogram.with_array(_upsample(found.heatmap, m_array.shape)[None].astype(np.float32))
        for rank, (tile, row, col, weight) in enumerate(found.top_patches, 1):
            h, w = tiles[tile].shape[:2]
            g = model.config.grid
            r0, r1, c0, c1 = row * h // g, (row + 1) * h // g, col * w // g, (col + 1) * w // g
            patches.append({"rank": rank, "tile": tile_names[tile], "pixel_box": [r0, c0, r1, c1], "attention": weight,
                            "file": f"{EVIDENCE_DIR}/patch_{rank}.png"})
            patch_images.append(tiles[tile][r0:r1, c0:c1])
    predicted = CLASSES[int(probs.argmax())]
    grade = GRADES[int(grades.argmax())]
    if predicted not in MALIGNANT:
        notes.append(f"grade probabilities are shown but a grade applies only to {' / '.join(MALIGNANT)}")
    return CrossModalResult(
        class_probabilities={c: float(p) for c, p in zip(CLASSES, probs)}, predicted_class=predicted,
        grade_probabilities={g: float(p) for g, p in zip(GRADES, grades)}, predicted_grade=grade, box=box,
        modalities_used=modalities, heatmap=heatmap, evidence_patches=patches, patch_images=patch_images,
        conclusion=_conclusion(predicted, float(probs.max()), grade, modalities, box, patches), domain=domain,
        model_name=str(card["name"]), model_version=str(card["version"]), notes=notes)


def _heatmap_png(mammogram: np.ndarray, result: CrossModalResult, path: Path) -> None:
    """Mammogram in grey, heatmap (inferno, 45 %) and the lesion box in cyan, at the input's pixel grid."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    h, w = mammogram.shape
    figure = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(mammogram, cmap="gray")
    if result.heatmap is not None:
        axes.imshow(result.heatmap.array[0], cmap="inferno", alpha=0.45, vmin=0, vmax=1)
    if result.box is not None:
        r0, c0, r1, c1 = result.box
        axes.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, edgecolor="cyan", linewidth=1))
    axes.set_axis_off()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_result(result: CrossModalResult, mammogram: Image | None, out: str | Path,
                 inputs: dict | None = None, card: dict | None = None, case_id: str | None = None,
                 patient_id: str | None = None) -> dict[str, Path]:
    """``result.json`` + heatmap NRRD / PNG + evidence patches (+ card) into ``out``, all or nothing."""
    from PIL import Image as PILImage

    out = Path(out)
    with staged_output_dir(out) as staging:
        if result.heatmap is not None:
            write_image(result.heatmap, staging / HEATMAP_NAME)
        if mammogram is not None:
            _heatmap_png(mammogram.array[0], result, staging / HEATMAP_PNG)
        if result.patch_images:
            (staging / EVIDENCE_DIR).mkdir()
            for patch, image in zip(result.evidence_patches, result.patch_images):
                PILImage.fromarray(image).save(staging / patch["file"])
        if card is not None:
            (staging / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        record = {"family": FAMILY, "case_id": case_id or out.name, "patient_id": patient_id, **result.record(),
                  "heatmap_png": HEATMAP_PNG if mammogram is not None else None, "inputs": dict(inputs or {})}
        (staging / "result.json").write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        names = [p.name for p in staging.iterdir()]
    return {name: out / name for name in names}


@dataclass
class CrossModalCase:
    """One patient read from files (either modality may be absent), the files it came from, its patient ID."""

    mammogram: Image | None
    tiles: list[np.ndarray]
    tile_names: list[str]
    files: dict[str, str]
    patient_id: str | None = None
    domain: str | None = None
    case_id: str | None = None


def read_case(mammogram: str | Path | None, pathology: str | Path | None, mammogram_patient_id: str | None = None,
              pathology_patient_id: str | None = None, domain: str | None = None,
              case_id: str | None = None) -> CrossModalCase:
    """Read and check one patient's files; the command line and a manifest row both come through here.

    The patient IDs are compared as soon as the mammogram's header is read, before any tile is
    decoded: a pair of two patients is the cheapest refusal and the most important one.
    """
    read = read_mammogram(mammogram) if mammogram else None
    patient = check_same_patient({"mammogram DICOM PatientID": read.patient_id if read else None,
                                  "mammogram patient id": mammogram_patient_id,
                                  "pathology patient id": pathology_patient_id})
    files = pathology_files(pathology) if pathology else []
    given = {"mammogram": mammogram, "pathology": pathology}
    return CrossModalCase(read.image if read else None, [read_pixels(f, "pathology") for f in files],
                          [f.name for f in files], {k: str(v) for k, v in given.items() if v}, patient, domain, case_id)


def predict_and_write(case: CrossModalCase, weights_path: str | Path, out: str | Path,
                      progress: Progress | None = None) -> CrossModalResult:
    """One patient end to end (the command and each cohort case): prediction, then its folder, all or nothing."""
    result = predict_crossmodal(case.mammogram, case.tiles, case.tile_names, weights_path, case.domain, progress)
    if progress:
        progress(90, "writing results")
    write_result(result, case.mammogram, out, case.files, load_crossmodal(weights_path)[1], case.case_id,
                 case.patient_id)
    return result


def _weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=str(DEFAULT), help="model weights (default: the shipped model)")


def _load_models(args: argparse.Namespace) -> Path:
    """Verify and load the model once (cached per file), so a bad weights file stops the run before any case."""
    load_crossmodal(args.weights)
    return Path(args.weights)


def _read_row(row: Mapping[str, object], weights: Path) -> CrossModalCase:  # noqa: ARG001 - hook signature
    """A validated manifest row (absolute paths, None for empty cells) → a checked case."""
    text = {name: str(row[name]) if row.get(name) else None
            for name in ("mammogram", "pathology", "mammogram_patient_id", "pathology_patient_id", "domain")}
    return read_case(text["mammogram"], text["pathology"], text["mammogram_patient_id"], text["pathology_patient_id"],
                     text["domain"], str(row["patient_id"]))


def _predict_row(case: CrossModalCase, out: Path, weights: Path) -> dict:
    """One cohort case: its folder, and the table's columns."""
    result = predict_and_write(case, weights, out)
    return {"patient_id": case.patient_id, "predicted_class": result.predicted_class,
            "confidence": round(result.confidence, 6),
            "predicted_grade": result.predicted_grade if result.predicted_class in MALIGNANT else None,
            "box": " ".join(map(str, result.box)) if result.box else None,
            "modalities_used": " ".join(result.modalities_used)}


COHORT = CohortHook(MANIFEST_SCHEMA, _weights_argument, _load_models, _read_row, _predict_row)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai predict crossmodal", description=__doc__.split("\n\n")[0],
                                     epilog=COHORT_EPILOG.format(family=FAMILY))
    parser.add_argument("--mammogram", help="2D mammogram: PNG/TIFF/JPEG, NRRD/NIfTI or a DICOM file (may be omitted)")
    parser.add_argument("--pathology", help="one H&E tile (PNG/JPEG/TIFF) or a folder of tiles (may be omitted)")
    parser.add_argument("--domain", help="the acquisition site, when it is one the model was trained on")
    parser.add_argument("--mammogram-patient-id", help="patient of the mammogram (checked against its DICOM PatientID)")
    parser.add_argument("--pathology-patient-id", help="patient of the pathology tiles (must match the mammogram's)")
    parser.add_argument("--case-id", help="case identifier (default: the --out folder name)")
    _weights_argument(parser)
    parser.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Predict one patient from files; 0 on success, 2 on an input error (logged as ERROR)."""
    from responseai.progress import log_progress, run_case_command

    args = build_parser().parse_args(argv)

    def predict() -> str:
        log_progress(5, "reading the inputs")
        case = read_case(args.mammogram, args.pathology, args.mammogram_patient_id, args.pathology_patient_id,
                         args.domain, args.case_id)
        result = predict_and_write(case, args.weights, args.out, log_progress)
        return f"done: {result.predicted_class} ({result.confidence:.2f})"

    return run_case_command(predict)

if __name__ == "__main__":
    raise SystemExit(main())
