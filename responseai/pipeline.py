"""One breast case end to end: phases (+ optional user mask) + clinical → mask, pCR, maps, files.

The same function serves ``responseai demo``, ``responseai predict`` and the Slicer module's
background job, so the three can never disagree. Inputs are checked before any model runs;
outputs are written through a staging folder, so a failure leaves the output folder as it was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from responseai.clinical import validate_clinical
from responseai.errors import MissingPhaseError
from responseai.image import Image
from responseai.io import (
    align_to_reference,
    read_image,
    read_segmentation,
    validate_mask,
    validate_volume,
    write_image,
    write_segmentation,
)
from responseai.outputs import staged_output_dir
from responseai.weights import read_card

log = logging.getLogger(__name__)

REQUIRED_PHASES = ("pre", "post1")
OPTIONAL_PHASES = ("post2",)
REFERENCE_PHASE = "post1"

Progress = Callable[[int, str], None]


def log_progress(percent: int, message: str) -> None:
    """Default progress sink: one parseable log line per step (the Slicer job reads these)."""
    log.info("PROGRESS %d %s", percent, message)


@dataclass
class BreastCase:
    """Everything one prediction needs, already validated."""

    case_id: str
    phases: dict[str, Image]
    clinical: dict[str, object]
    mask: Image | None = None  # a user-drawn/edited tumour mask overrides segmentation
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class BreastOutputs:
    """What the models returned for one case."""

    case: BreastCase
    mask: Image
    mask_source: str  # "user" or "model"
    result: object  # responseai.inference.pcr.PCRResult
    card: dict = field(default_factory=dict)  # the pCR model card, for the report


def check_phases(phases: Mapping[str, Image | None], resample: bool = False) -> dict[str, Image]:
    """Required phases present, finite 3D volumes, all on the post1 grid (or resampled onto it)."""
    present = {name: image for name, image in phases.items() if image is not None}
    missing = [name for name in REQUIRED_PHASES if name not in present]
    if missing:
        raise MissingPhaseError(f"missing DCE phase(s): {', '.join(missing)} (required: {', '.join(REQUIRED_PHASES)})")
    for name, image in present.items():
        validate_volume(image, f"phase {name}")
    return align_to_reference(present, REFERENCE_PHASE, resample=resample)


def check_mask(mask: Image, reference: Image, resample: bool = False) -> Image:
    """A non-empty binary mask on the reference grid (resampled with nearest neighbour on request)."""
    validate_mask(mask)
    aligned = align_to_reference({"mask": mask, REFERENCE_PHASE: reference}, REFERENCE_PHASE, resample=resample)["mask"]
    binary = aligned.with_array((aligned.array > 0.5).astype("uint8"))
    validate_mask(binary, "tumour mask after resampling")
    return binary


def make_case(
    case_id: str,
    phases: Mapping[str, Image | None],
    clinical: Mapping[str, object],
    mask: Image | None = None,
    resample: bool = False,
    sources: Mapping[str, str] | None = None,
) -> BreastCase:
    """Validate phases, mask and clinical record before any model runs."""
    aligned = check_phases(phases, resample)
    if mask is not None:
        mask = check_mask(mask, aligned[REFERENCE_PHASE], resample)
    return BreastCase(case_id, aligned, validate_clinical(dict(clinical)), mask, dict(sources or {}))


def load_case(
    case_id: str,
    phase_paths: Mapping[str, str | Path | None],
    clinical: Mapping[str, object],
    mask_path: str | Path | None = None,
    resample: bool = False,
) -> BreastCase:
    """Read phase files / DICOM folders and an optional mask (.nrrd, .nii.gz or .seg.nrrd)."""
    phases = {name: read_image(path, name) for name, path in phase_paths.items() if path}
    mask = None
    if mask_path:
        mask = read_segmentation(mask_path) if str(mask_path).endswith(".seg.nrrd") else read_image(mask_path, "tumour mask")
    sources = {name: str(path) for name, path in phase_paths.items() if path}
    return make_case(case_id, phases, clinical, mask, resample, sources)


def run_case(
    case: BreastCase,
    seg_weights: str | Path | None = None,
    pcr_weights: str | Path | None = None,
    progress: Progress = log_progress,
) -> BreastOutputs:
    """Segment (unless the case has a mask), then predict pCR with explanations."""
    from responseai.inference.pcr import DEFAULT as PCR_DEFAULT
    from responseai.inference.pcr import predict_pcr

    if case.mask is None:
        from responseai.inference.segmentation import DEFAULT as SEG_DEFAULT
        from responseai.inference.segmentation import segment_tumour

        progress(10, "segmenting the tumour")
        mask, source = segment_tumour(case.phases, seg_weights or SEG_DEFAULT), "model"
    else:
        mask, source = case.mask, "user"
    progress(55, "predicting pCR")
    result = predict_pcr(case.phases, mask, case.clinical, pcr_weights or PCR_DEFAULT)
    progress(90, "writing results")
    return BreastOutputs(case, mask, source, result, read_card(pcr_weights or PCR_DEFAULT))


def result_record(outputs: BreastOutputs) -> dict:
    """The JSON-able summary of a prediction (``result.json``)."""
    r = outputs.result
    return {
        "case_id": outputs.case.case_id,
        "pcr_probability": round(float(r.probability), 4),
        "predicted_class": r.predicted_class,
        "threshold": float(r.threshold),
        "attention_in_mask": round(float(r.attention_in_mask), 4),
        "pointing_game_hit": bool(r.pointing_game_hit),
        "mask_source": outputs.mask_source,
        "model": {"name": r.model_name, "version": r.model_version},
        "clinical_used": outputs.case.clinical,
        "missing_clinical": list(r.missing_clinical),
        "inputs": outputs.case.sources,
        "research_use_only": True,
    }


def write_outputs(outputs: BreastOutputs, out: str | Path) -> dict[str, Path]:
    """Mask (.seg.nrrd), attention and Grad-CAM (.nrrd), result.json, model card: all or none."""
    out = Path(out)
    with staged_output_dir(out) as staging:
        write_segmentation(outputs.mask, staging / "tumour.seg.nrrd")
        write_image(outputs.result.attention, staging / "attention.nrrd")
        write_image(outputs.result.gradcam, staging / "gradcam.nrrd")
        record = result_record(outputs)
        (staging / "result.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (staging / "model_card.json").write_text(json.dumps(outputs.card, indent=2) + "\n", encoding="utf-8")
        names = [p.name for p in staging.iterdir()]
    return {name: out / name for name in names}


def parse_progress(line: str) -> tuple[int | None, str]:
    """Read a ``PROGRESS <percent> <message>`` line written by :func:`log_progress`."""
    _, marker, rest = line.partition("PROGRESS ")
    if not marker:
        return None, ""
    percent, _, message = rest.partition(" ")
    return (int(percent), message) if percent.isdigit() else (None, "")
