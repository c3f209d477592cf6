"""One breast case end to end: phases (+ optional user mask) + clinical → mask, pCR, maps, files.

The same functions serve ``responseai demo``, ``responseai predict breast`` (:func:`main`) and
the Slicer module's background job, so the three can never disagree. Inputs are checked before any model runs;
outputs are written through a staging folder, so a failure leaves the output folder as it was.
:data:`COHORT` plugs the same functions into ``responseai predict breast --manifest`` (:mod:`responseai.batch`):
a manifest row's ``mask`` cell acts as ``--mask`` unless ``--segment`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from responseai.batch import COHORT_EPILOG, CohortHook
from responseai.breast.constants import (
    BREAST_SCHEMA,
    CAUTION_KEYS,
    CLOSE_CALL_CAUTION,
    EXTENT_CHOICE_CAUTION,
    FORM_SCHEMA,
    MANIFEST_SCHEMA,
    OUTLINE_CUT_CAUTION,
    OUTLINE_GROWN_CAUTION,
    REDRAWN_BAND,
    REFERENCE_PHASE,
    RUNNER_UP_COLOR,
    RUNNER_UP_FILE,
    RUNNER_UP_SEGMENT,
    SIDE_FIRST_CAUTION,
)
from responseai.breast.preprocess import check_mask, check_phases
from responseai.breast.segmentation.extent import check_diameters, extent_caution, principal_diameters_mm, yardstick
from responseai.clinical import read_clinical_record, validate_clinical
from responseai.dynamic import choice_record, dynamic_phases, frames_named, parse_frames, read_dynamic
from responseai.errors import MissingPhaseError, ResponseAIError
from responseai.image import Image
from responseai.io import read_image, read_mask, write_image, write_segmentation
from responseai.outputs import staged_output_dir
from responseai.progress import Progress, log_progress
from responseai.weights import read_card


@contextmanager
def _monai_without_transformers() -> Iterator[None]:
    """Make the first ``import monai`` skip its Hugging Face networks (Transchex).

    ``import monai`` imports every MONAI submodule; with ``transformers`` installed (the
    recurrence family's sentence-transformers brings it), ``monai.networks.nets.transchex``
    imports BERT, ``torch._dynamo`` and ``torch.distributed.tensor``: seconds of every breast
    prediction's start-up for a network nothing here builds. MONAI treats ``transformers`` as
    optional (a stub when it cannot be imported), so it is hidden only while MONAI is first
    imported; every later ``import transformers`` works as before.
    """
    if "monai" in sys.modules:
        yield
        return
    hidden = sys.modules.get("transformers")
    sys.modules["transformers"] = None  # None in sys.modules makes `import transformers` raise ImportError
    try:
        yield
    finally:
        if hidden is None:
            sys.modules.pop("transformers", None)
        else:
            sys.modules["transformers"] = hidden


with _monai_without_transformers():  # the first MONAI import of a breast prediction (the models need it)
    from responseai.breast.pcr.inference import DEFAULT as PCR_DEFAULT
    from responseai.breast.pcr.inference import PCRResult, load_pcr_model, predict_pcr
    from responseai.breast.segmentation.inference import DEFAULT as SEG_DEFAULT
    from responseai.breast.segmentation.inference import ExamSegmentation, load_segmentation_model, segment_exam
    from responseai.breast.segmentation.side import OTHER_SIDE, named_side, side_caution, side_of

log = logging.getLogger(__name__)

FAMILY = "breast"


@dataclass
class BreastCase:
    """Everything one prediction needs, already validated."""

    case_id: str
    phases: dict[str, Image]
    clinical: dict[str, object]
    mask: Image | None = None  # a user-drawn/edited tumour mask overrides segmentation
    sources: dict[str, str] = field(default_factory=dict)
    dynamic: dict = field(default_factory=dict)  # the frames taken from one dynamic series (dynamic.choice_record)


@dataclass
class BreastOutputs:
    """What the models returned for one case."""

    case: BreastCase
    mask: Image
    mask_source: str  # "user" or "model"
    result: PCRResult
    card: dict = field(default_factory=dict)  # the pCR model card, for the report
    findings: dict = field(default_factory=dict)  # tumour side, breast region, candidates (JSON-able)
    runner_up: Image | None = None  # the segmentation's second candidate (model masks only)


def make_case(
    case_id: str,
    phases: Mapping[str, Image | None],
    clinical: Mapping[str, object],
    mask: Image | None = None,
    resample: bool = False,
    sources: Mapping[str, str] | None = None,
) -> BreastCase:
    """Validate phases, mask and clinical record (the form's variables and measurements) before any model runs."""
    aligned = check_phases(phases, resample)
    if mask is not None:
        mask = check_mask(mask, aligned[REFERENCE_PHASE], resample)
    values = validate_clinical(dict(clinical), FORM_SCHEMA)
    check_diameters(values)
    return BreastCase(case_id, aligned, values, mask, dict(sources or {}))


def load_case(
    case_id: str,
    phase_paths: Mapping[str, str | Path | None],
    clinical: Mapping[str, object],
    mask_path: str | Path | None = None,
    resample: bool = False,
    dce: str | Path | None = None,
    dce_frames: str | None = None,
) -> BreastCase:
    """Read phase files / DICOM folders, or one dynamic series (``dce``: a 4D file or a DICOM folder, its frames
    chosen by :func:`responseai.dynamic.choose_frames` unless ``dce_frames`` names them), and an optional mask."""
    given = [name for name, path in phase_paths.items() if path]
    if dce and given:
        raise MissingPhaseError(f"both a DCE series and single phases ({', '.join(given)}) were given: give one or the "
                                "other (the series' frames are the phases)")
    dynamic = {}
    if dce:
        series = read_dynamic(dce, "DCE series")
        phases, choice = dynamic_phases(series, parse_frames(dce_frames))
        sources, dynamic = choice.sources(series), choice_record(series, choice)
    else:
        if dce_frames:
            raise MissingPhaseError(f"frames '{dce_frames}' were given without a DCE series to take them from")
        phases = {name: read_image(path, name) for name, path in phase_paths.items() if path}
        sources = {name: str(path) for name, path in phase_paths.items() if path}
    mask = read_mask(mask_path) if mask_path else None
    if not dynamic:
        return make_case(case_id, phases, clinical, mask, resample, sources)
    with frames_named(choice):
        return replace(make_case(case_id, phases, clinical, mask, resample, sources), dynamic=dynamic)


def run_case(
    case: BreastCase,
    seg_weights: str | Path | None = None,
    pcr_weights: str | Path | None = None,
    progress: Progress = log_progress,
) -> BreastOutputs:
    """Segment (unless the case has a mask), then predict pCR with explanations."""
    runner_up = None
    if case.mask is None:
        progress(10, "finding the breasts and segmenting the tumour")
        found = segment_exam(case.phases, seg_weights or SEG_DEFAULT, clinical=case.clinical)
        mask, source, runner_up = found.mask, "model", found.runner_up
        findings = segmentation_findings(found)
    else:
        mask, source = case.mask, "user"
        findings = {"tumour_side": side_of(mask)}
    caution = side_caution(findings["tumour_side"], named_side(case.clinical), model_mask=source == "model")
    if caution:
        findings["side_caution"] = caution
        log.warning("%s", caution)
    progress(55, "predicting pCR")
    model_inputs = {name: case.clinical.get(name) for name in BREAST_SCHEMA}  # the measurements are no model input
    result = predict_pcr(case.phases, mask, model_inputs, pcr_weights or PCR_DEFAULT)
    progress(90, "writing results")
    findings.update(mask_findings(mask, case.clinical))
    return BreastOutputs(case, mask, source, result, read_card(pcr_weights or PCR_DEFAULT), findings, runner_up)


def mask_findings(mask: Image, clinical: Mapping[str, object]) -> dict:
    """The tumour mask's volume and diameters, and its extent against the clinical size."""
    volume_ml = mask.volume_ml()
    return ({"tumour_volume_ml": round(volume_ml, 2), "mask_diameters_mm": [round(d, 1) for d in principal_diameters_mm(mask)]}
            | extent_findings(volume_ml, clinical))


def segmentation_findings(found: ExamSegmentation) -> dict:
    """What the segmentation step tells the user (``result.json``): the tumour's side, the candidates, the breast
    region's BPE and volume, the runner-up, and the cautions about the choice and the outline."""
    findings = {"tumour_side": found.side, "tumour_candidates": found.candidates,
                "candidates_outside_breasts": found.discarded_outside_breast,
                "segmentation_probability": round(found.probability, 4)}
    if found.named_side is not None:  # the form's side kept the search to one breast
        findings["candidates_in_other_breast_set_aside"] = found.set_aside_other_side
    if found.other_side_first and found.side == found.named_side:
        # a side typed wrong on the form would otherwise pass in silence whenever that breast holds a candidate
        findings["side_caution"] = SIDE_FIRST_CAUTION.format(other=OTHER_SIDE[found.named_side], named=found.named_side)
        log.warning("%s", findings["side_caution"])
    if found.bpe_percent is not None:
        findings["background_enhancement_index_percent"] = round(found.bpe_percent, 1)
        findings["breast_volume_ml"] = round(found.breast_volume_ml, 1)
    if found.runner_up is not None:
        findings["runner_up_candidate"] = {"volume_ml": round(found.runner_up.volume_ml(), 2),
                                           "side": side_of(found.runner_up, found.midline_mm),
                                           "score_margin": round(found.choice_margin, 3),
                                           "close_call": found.close_call,
                                           "model_first_choice": found.chosen_by_extent}
    if found.close_call or found.chosen_by_extent:
        findings["choice_caution"] = (EXTENT_CHOICE_CAUTION if found.chosen_by_extent
                                      else CLOSE_CALL_CAUTION.format(margin=found.choice_margin))
        log.warning("%s", findings["choice_caution"])
    if found.cut_from_ml is not None:
        findings["outline_cut_from_ml"] = round(found.cut_from_ml, 2)
        findings["outline_caution"] = OUTLINE_CUT_CAUTION.format(outline_ml=found.cut_from_ml,
                                                                 cut_ml=found.mask.volume_ml())
        log.warning("%s", findings["outline_caution"])
    if found.grown_from_ml is not None:
        findings["outline_grown_from_ml"] = round(found.grown_from_ml, 2)
        low, high = REDRAWN_BAND
        if not low <= found.mask.volume_ml() / found.grown_from_ml <= high:  # within the band: only its edge re-drawn
            findings["outline_caution"] = OUTLINE_GROWN_CAUTION.format(outline_ml=found.grown_from_ml,
                                                                       grown_ml=found.mask.volume_ml())
            log.warning("%s", findings["outline_caution"])
    return findings


def extent_findings(mask_volume_ml: float, clinical: Mapping[str, object]) -> dict:
    """The mask's volume against the clinical size's yardstick (sphere or ellipsoid) and, when it does not
    fit, the caution."""
    stick = yardstick(clinical)
    if stick is None:
        return {}
    caution = extent_caution(mask_volume_ml, clinical)
    if caution:
        log.warning("%s", caution)
    return {"mask_to_clinical_size_ratio": round(mask_volume_ml / stick.volume_ml, 2),
            "clinical_size_yardstick": stick.description, "extent_limits": list(stick.limits),
            **({"extent_caution": caution} if caution else {})}


def result_record(outputs: BreastOutputs) -> dict:
    """The JSON-able summary of a prediction (``result.json``)."""
    r = outputs.result
    return {
        "family": FAMILY,
        "case_id": outputs.case.case_id,
        "pcr_probability": round(float(r.probability), 4),
        "predicted_class": r.predicted_class,
        "threshold": float(r.threshold),
        "attention_in_mask": round(float(r.attention_in_mask), 4),
        "pointing_game_hit": bool(r.pointing_game_hit),
        "mask_source": outputs.mask_source,
        **outputs.findings,
        "model": {"name": r.model_name, "version": r.model_version},
        "clinical_used": outputs.case.clinical,
        "missing_clinical": list(r.missing_clinical),
        # what the image branch read off the tumour (a radiologist can check it against the curves)
        **({"pcr_image_features": {k: round(v, 4) for k, v in r.image_features.items()}} if r.image_features else {}),
        "inputs": outputs.case.sources,
        **({"dce_series": outputs.case.dynamic} if outputs.case.dynamic else {}),
        "research_use_only": True,
    }


def write_outputs(outputs: BreastOutputs, out: str | Path) -> dict[str, Path]:
    """Mask (.seg.nrrd), attention and Grad-CAM (.nrrd), result.json, model card: all or none."""
    out = Path(out)
    with staged_output_dir(out) as staging:
        write_segmentation(outputs.mask, staging / "tumour.seg.nrrd")
        if outputs.runner_up is not None:
            write_segmentation(outputs.runner_up, staging / RUNNER_UP_FILE, RUNNER_UP_SEGMENT, RUNNER_UP_COLOR)
        write_image(outputs.result.attention, staging / "attention.nrrd")
        write_image(outputs.result.gradcam, staging / "gradcam.nrrd")
        record = result_record(outputs)
        (staging / "result.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (staging / "model_card.json").write_text(json.dumps(outputs.card, indent=2) + "\n", encoding="utf-8")
        names = [p.name for p in staging.iterdir()]
    return {name: out / name for name in names}


def _weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resample", action="store_true", help="resample phases/mask onto the post1 grid")
    parser.add_argument("--seg-weights", help="segmentation weights (.safetensors, default: shipped)")
    parser.add_argument("--pcr-weights", help="pCR weights (.safetensors, default: shipped)")


def _cohort_arguments(parser: argparse.ArgumentParser) -> None:
    _weights_arguments(parser)
    parser.add_argument("--segment", action="store_true",
                        help="segment every case automatically, even where the manifest has a mask column")


def _load_models(args: argparse.Namespace) -> argparse.Namespace:
    """Verify and load both networks once (cached per file), before the first case."""
    load_segmentation_model(args.seg_weights or SEG_DEFAULT)
    load_pcr_model(args.pcr_weights or PCR_DEFAULT)
    return args


def _read_row(row: Mapping[str, object], args: argparse.Namespace) -> BreastCase:
    """A validated manifest row (absolute paths) → a checked case; a mask cell replaces segmentation (like --mask)."""
    clinical = {name: row.get(name) for name in FORM_SCHEMA}
    phases = {name: row.get(name) for name in ("pre", "post1", "post2")}
    mask = None if args.segment else row.get("mask")
    return load_case(str(row["patient_id"]), phases, clinical, mask, args.resample, row.get("dce"), row.get("dce_frames"))


def _predict_row(case: BreastCase, out: Path, models: argparse.Namespace) -> dict:
    """One cohort case: predict silently (the cohort reports progress), write its folder, main outputs.

    The progress calls mark the stage boundaries, so each row also says where its time went.
    """
    marks = [time.perf_counter()]
    outputs = run_case(case, models.seg_weights, models.pcr_weights,
                       progress=lambda percent, message: marks.append(time.perf_counter()))
    write_outputs(outputs, out)
    marks.append(time.perf_counter())
    record = result_record(outputs)
    stages = ("segment_s", "pcr_s", "write_s") if outputs.mask_source == "model" else ("pcr_s", "write_s")
    timings = {stage: round(end - begin, 3) for stage, begin, end in zip(stages, marks[1:], marks[2:])}
    # the review columns: a cohort table is read to decide which exams need a look (a suspect outline, or
    # a second candidate the reader may prefer)
    review = {**{key: record.get(key) for key in CAUTION_KEYS},
              "runner_up_volume_ml": (record.get("runner_up_candidate") or {}).get("volume_ml"),
              # which frames of a row's dynamic series were read (a reviewer spots an untimed ultrafast series here)
              "dce_frames_used": ",".join(str(i) for i in case.dynamic["frames"].values()) if case.dynamic else None}
    return {**{key: record.get(key) for key in ("pcr_probability", "predicted_class", "threshold", "mask_source",
                                                  "tumour_side", "tumour_volume_ml")}, **review, **timings}


COHORT = CohortHook(MANIFEST_SCHEMA, _cohort_arguments, _load_models, _read_row, _predict_row)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai predict breast",
                                     description="tumour mask + pCR probability + attention for one breast DCE-MRI case",
                                     epilog=COHORT_EPILOG.format(family=FAMILY))
    parser.add_argument("--pre", help="pre-contrast phase (NRRD/NIfTI file or DICOM folder)")
    parser.add_argument("--post1", help="first post-contrast phase (the reference grid)")
    parser.add_argument("--post2", help="later post-contrast phase (optional)")
    parser.add_argument("--dce", help="instead of the phases: one dynamic series (4D NIfTI/NRRD file, or a DICOM folder "
                                      "whose series repeats its slices per time point); frame 0 is read as pre-contrast, "
                                      "the frame nearest 120 s (frame 1 without times) as post1, the last as post2")
    parser.add_argument("--dce-frames", help="the frames to use from --dce: 'PRE,POST1[,POST2]' (0-based), e.g. '0,2,5'")
    parser.add_argument("--mask", help="tumour mask (.nrrd/.nii.gz/.seg.nrrd); skips automatic segmentation")
    parser.add_argument("--clinical", help="JSON file or object of clinical variables (missing ones are unknown)")
    parser.add_argument("--case-id", default="case", help="identifier written to the outputs")
    _weights_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``responseai predict breast``: 0 on success, 2 on an input error (logged as ERROR)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.dce and not (args.pre and args.post1):
        parser.error("give the DCE phases (--pre and --post1, optionally --post2) or one dynamic series (--dce)")
    phases = {"pre": args.pre, "post1": args.post1, "post2": args.post2}
    try:
        case = load_case(args.case_id, phases, read_clinical_record(args.clinical), args.mask, args.resample,
                         args.dce, args.dce_frames)
        outputs = run_case(case, args.seg_weights, args.pcr_weights)
        files = write_outputs(outputs, args.out)
    except ResponseAIError as exc:
        log.error("%s", exc)
        return 2
    log.info("pCR probability %.3f (%s) -> %s", outputs.result.probability, outputs.result.predicted_class,
             ", ".join(sorted(p.name for p in files.values())))
    return 0
