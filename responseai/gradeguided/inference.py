"""Grade-guided fusion for one patient: CT / MRI / PET + tumour mask + clinical (+ biopsy grade) → result.

    responseai predict gradeguided --ct-nc CT_NC.nrrd --ct-art ... --pet PET.nrrd \
        --mask MASK.nrrd --clinical clinical.json [--biopsy-grade G2] [--weights W] --out DIR

Every input is checked before the network runs, each problem with its own exception (PET not
in SUV, a modality that does not overlap the mask, an unknown grade label, a clinical variable
the model does not know), so the Slicer module can say what to fix. Any modality may be
missing *only* when the model card says it was trained for it (modality dropout,
``inputs.missing_modalities == "zero_channel"``): the channel is then zero (tumour mean after
z-scoring, i.e. no evidence) and the result names what was missing. A model without that
training refuses, naming the modalities it needs.

The grade that guides the fusion is the biopsy grade when the user gives one, else the
model's own predicted grade distribution (``grade_source`` says which). The α weights are per
*source stream* (ResNet / Direct / Encoded / clinical), not per CT / MRI / PET modality,
because every imaging stream sees every channel; ``modality_importance`` answers the
per-modality question instead: for each present modality, the absolute change of the response
probability when its channel is zeroed (the model's trained "missing" state, see
:func:`responseai.gradeguided.model.modality_importance`), normalised to sum to 1. The
spatial map (subtype sensitivity) is returned on the tumour mask's grid — the reference
volume's grid in Slicer — in [0, 1].

Outputs of the command (written through a staging folder, so all or nothing): ``result.json``
(NaN written as ``null``; ``case_id``, and ``inputs`` naming the files used, which the report
reads), ``subtype_map.nrrd`` and ``model_card.json`` (so the folder alone can be reported on);
progress as ``PROGRESS <pct> <msg>`` log lines, as :func:`responseai.progress.log_progress`
writes them for the Slicer job. :data:`COHORT` plugs the same functions into ``responseai predict
gradeguided --manifest`` (:mod:`responseai.batch`); there the predicted grade guides the fusion (a
manifest's ``grade`` column is a training label, not a biopsy result).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from responseai.batch import COHORT_EPILOG, CohortHook
from responseai.clinical import read_clinical_record, validate_clinical
from responseai.gradeguided.constants import MANIFEST_SCHEMA
from responseai.gradeguided.preprocess import (
    CLINICAL_SCHEMA, RoiSpec, check_clinical_columns, clinical_encoder_from_card, missing_modalities, parse_grade,
    preprocess_images, reference_grid,
)
from responseai.image import Image
from responseai.io import read_image, read_mask, resample_to, write_image
from responseai.gradeguided.model import (
    TASK, GradeGuidedNet, build_model, clinical_contributions, modality_importance, predict_arrays, subtype_map,
)
from responseai.outputs import json_safe, staged_output_dir
from responseai.resources import model_path
from responseai.clinical import ClinicalEncoder
from responseai.weights import load_model, load_once

log = logging.getLogger(__name__)

DEFAULT = model_path("gradeguided")
MODALITY_OPTIONS = {"ct_nc": "--ct-nc", "ct_art": "--ct-art", "ct_pv": "--ct-pv", "mr_t1": "--mri-t1",
                    "mr_t2": "--mri-t2", "pet": "--pet"}
FAMILY = "gradeguided"
MAP_NAME = "subtype_map.nrrd"
CARD_NAME = "model_card.json"
IMPORTANCE_METHOD = "|change of the response probability| when the modality's channel is zeroed, normalised to sum 1"
Progress = Callable[[int, str], None]


@dataclass
class GradeGuidedResult:
    """One case's prediction; probabilities in [0, 1], the map on the mask's grid in [0, 1]."""

    grade_probabilities: dict[str, float]
    predicted_grade: str
    grade_used: str  # the grade that guided the fusion
    grade_source: str  # "biopsy" or "predicted"
    response_probability: float
    response_class: str
    threshold: float
    subtype: str
    subtype_probabilities: dict[str, float]
    alpha: dict[str, float]  # per source stream (not per modality)
    modality_importance: dict[str, float]  # per present modality, sums to 1
    clinical_contributions: list[tuple[str, float]]
    spatial_map: Image
    missing_modalities: list[str]
    missing_clinical: list[str]
    model_name: str
    model_version: str
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """JSON-able summary (``result.json``); non-finite numbers become ``None``."""
        return json_safe({
            "grade_probabilities": self.grade_probabilities, "predicted_grade": self.predicted_grade,
            "grade_used": self.grade_used, "grade_source": self.grade_source,
            "response_probability": self.response_probability, "response_class": self.response_class,
            "threshold": self.threshold, "subtype": self.subtype, "subtype_probabilities": self.subtype_probabilities,
            "alpha": self.alpha, "alpha_scope": "per source stream (resnet, direct, encoded, clinical), not per modality",
            "modality_importance": self.modality_importance, "modality_importance_method": IMPORTANCE_METHOD,
            "clinical_contributions": [{"feature": f, "contribution": c} for f, c in self.clinical_contributions],
            "missing_modalities": self.missing_modalities, "missing_clinical": self.missing_clinical,
            "model": {"name": self.model_name, "version": self.model_version}, "notes": self.notes,
            "spatial_map": MAP_NAME, "research_use_only": True,
        })


@dataclass
class LoadedGradeGuided:
    """A verified network with its card, ROI spec and the training-time clinical encoder."""

    model: GradeGuidedNet
    card: dict
    spec: RoiSpec
    encoder: ClinicalEncoder

    @property
    def allows_missing(self) -> bool:
        return self.card["inputs"].get("missing_modalities") == "zero_channel"


def _load(path: Path) -> LoadedGradeGuided:
    model, card = load_model(path, build_model, expected_task=TASK)
    pre = card["preprocessing"]
    return LoadedGradeGuided(model, card, RoiSpec.from_dict(pre["roi"]), clinical_encoder_from_card(pre["clinical_encoder"]))


def load_gradeguided(weights_path: str | Path = DEFAULT) -> LoadedGradeGuided:
    """The cached model for ``weights_path`` (card and sha256 verified by ``load_model``)."""
    return load_once(weights_path, _load)


def _clinical_record(clinical: Mapping[str, object], encoder: ClinicalEncoder) -> dict:
    """Refuse unknown variables, validate values (units / ranges / categories); unknown → None."""
    known = [v.name for v in encoder.variables]
    check_clinical_columns(clinical, known)
    return validate_clinical(dict(clinical), {name: CLINICAL_SCHEMA[name] for name in known})


def _map_on_mask_grid(roi_map: np.ndarray, mask: Image, spec: RoiSpec) -> Image:
    """ROI-grid map → the mask's grid, trilinear, clipped to [0, 1]."""
    roi_grid = reference_grid(mask, spec)
    on_mask = resample_to(roi_grid.with_array(roi_map.astype(np.float32)), mask.with_array(np.zeros(mask.shape, np.float32)))
    return on_mask.with_array(np.clip(on_mask.array, 0.0, 1.0).astype(np.float32))


def predict_gradeguided(images: Mapping[str, Image | None], mask: Image, clinical: Mapping[str, object],
                        biopsy_grade: object = None, weights_path: str | Path = DEFAULT,
                        progress: Progress | None = None) -> GradeGuidedResult:
    """Grade, response, subtype and explanations for one case (see the module docstring)."""
    progress = progress or (lambda pct, msg: None)
    loaded = load_gradeguided(weights_path)
    card, spec = loaded.card, loaded.spec
    classes = card["classes"]
    missing = missing_modalities(images, spec, loaded.allows_missing)
    record = _clinical_record(clinical, loaded.encoder)
    grade_index = parse_grade(biopsy_grade, classes["grade"])
    progress(20, "resampling the modalities onto the tumour ROI")
    image = preprocess_images({k: v for k, v in images.items() if v is not None}, mask, spec, allow_missing=True)[None]
    features = loaded.encoder.transform_one(record)[None].astype(np.float32)
    grade = np.array([-1 if grade_index is None else grade_index])
    progress(50, "running the grade-guided fusion")
    pred = predict_arrays(loaded.model, image, features, grade)
    image_t, features_t, grade_t = torch.as_tensor(image), torch.as_tensor(features), torch.as_tensor(grade)
    progress(70, "explaining: clinical contributions, modality importance and subtype map")
    contributions = clinical_contributions(loaded.model, image_t, features_t, grade_t,
                                           card["inputs"]["clinical_features"], top=5)[0]
    roi_map = subtype_map(loaded.model, image_t, features_t, grade_t)[0]
    present = [m for m in spec.modalities if m not in missing]
    importance = modality_importance(loaded.model, image, features, grade, spec.modalities, present)
    grade_probs = pred["grade_probs"][0]
    probability = float(pred["response_prob"][0])
    threshold = float(card["threshold"])
    predicted_grade = classes["grade"][int(grade_probs.argmax())]
    subtype_probs = pred["subtype_probs"][0]
    notes = []
    if missing:
        notes.append(f"missing modalities {', '.join(missing)} were given as zero channels (the model was trained "
                     "with modality dropout); expect less reliable results")
    if not loaded.allows_missing:
        notes.append("modality importance zeroes channels this model was not trained without (no modality "
                     "dropout): read it as indicative only")
    return GradeGuidedResult(
        grade_probabilities={g: float(p) for g, p in zip(classes["grade"], grade_probs)},
        predicted_grade=predicted_grade,
        grade_used=predicted_grade if grade_index is None else classes["grade"][grade_index],
        grade_source="predicted" if grade_index is None else "biopsy",
        response_probability=probability,
        response_class=classes["response"][int(probability >= threshold)],
        threshold=threshold,
        subtype=classes["subtype"][int(subtype_probs.argmax())],
        subtype_probabilities={s: float(p) for s, p in zip(classes["subtype"], subtype_probs)},
        alpha=dict(zip(card["architecture"]["sources"], map(float, pred["alpha"][0]))),
        modality_importance=importance,
        clinical_contributions=[(name, float(value)) for name, value in contributions],
        spatial_map=_map_on_mask_grid(roi_map, mask, spec),
        missing_modalities=missing,
        missing_clinical=[name for name, value in record.items() if value is None],
        model_name=str(card["name"]), model_version=str(card["version"]), notes=notes,
    )


def write_result(result: GradeGuidedResult, out: str | Path, inputs: Mapping[str, str] | None = None,
                 card: Mapping | None = None, case_id: str | None = None) -> dict[str, Path]:
    """``result.json`` + ``subtype_map.nrrd`` (+ ``model_card.json`` when given) into ``out``: all or none.

    ``case_id`` (default: the output folder's name) is what the report is filed under.
    """
    out = Path(out)
    with staged_output_dir(out) as staging:
        write_image(result.spatial_map, staging / MAP_NAME)
        if card is not None:
            (staging / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        record = {"family": FAMILY, "case_id": case_id or out.name, **result.record(), "inputs": dict(inputs or {})}
        (staging / "result.json").write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        names = [p.name for p in staging.iterdir()]
    return {name: out / name for name in names}


@dataclass
class CohortCase:
    """One manifest row read from disk: what :func:`predict_gradeguided` takes."""

    case_id: str
    images: dict[str, Image]
    mask: Image
    clinical: dict[str, object]
    inputs: dict[str, str]


def _weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=str(DEFAULT), help="weights (.safetensors, default: shipped)")


def _load_models(args: argparse.Namespace) -> argparse.Namespace:
    """Verify and load the network once (cached per file) before the first case."""
    load_gradeguided(args.weights)
    return args


def _read_row(row: Mapping[str, object], args: argparse.Namespace) -> CohortCase:  # noqa: ARG001 - hook signature
    """A validated manifest row (absolute paths; an empty modality cell is a missing modality)."""
    paths = {m: str(row[m]) for m in MODALITY_OPTIONS if row.get(m)}
    images = {name: read_image(path, name) for name, path in paths.items()}
    clinical = {name: row[name] for name in CLINICAL_SCHEMA if row.get(name) is not None}
    return CohortCase(str(row["patient_id"]), images, read_mask(row["mask"]), clinical, {**paths, "mask": str(row["mask"])})


def _predict_row(case: CohortCase, out: Path, args: argparse.Namespace) -> dict:
    """One cohort case with the predicted grade guiding the fusion (a manifest's grade is a label, not a biopsy)."""
    result = predict_gradeguided(case.images, case.mask, case.clinical, None, args.weights)
    write_result(result, out, case.inputs, load_gradeguided(args.weights).card, case.case_id)
    return {"predicted_grade": result.predicted_grade, "response_probability": round(result.response_probability, 4),
            "response_class": result.response_class, "subtype": result.subtype,
            "missing_modalities": " ".join(result.missing_modalities)}


COHORT = CohortHook(MANIFEST_SCHEMA, _weights_argument, _load_models, _read_row, _predict_row)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai predict gradeguided", description=__doc__.split("\n\n")[0],
                                     epilog=COHORT_EPILOG.format(family=FAMILY))
    for name, option in MODALITY_OPTIONS.items():
        parser.add_argument(option, dest=name, help=f"{name} volume (file or DICOM folder); may be omitted")
    parser.add_argument("--mask", required=True, help="tumour mask (.nrrd/.nii.gz or .seg.nrrd with a 'Tumour' segment)")
    parser.add_argument("--clinical", help="JSON file or object: age, pdl1, egfr, afp, stage, treatment")
    parser.add_argument("--biopsy-grade", help="G1/G2/G3 if known (else the predicted grade guides the fusion)")
    parser.add_argument("--case-id", help="case identifier for result.json and the report (default: the --out folder name)")
    _weights_argument(parser)
    parser.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Predict one case from files; 0 on success, 2 on an input error (logged as ERROR)."""
    from responseai.progress import log_progress, run_case_command

    args = build_parser().parse_args(argv)

    def predict() -> str:
        log_progress(5, "reading the inputs")
        paths = {name: getattr(args, name) for name in MODALITY_OPTIONS if getattr(args, name)}
        images = {name: read_image(path, name) for name, path in paths.items()}
        result = predict_gradeguided(images, read_mask(args.mask), read_clinical_record(args.clinical), args.biopsy_grade,
                                     args.weights, log_progress)
        log_progress(90, "writing results")
        write_result(result, args.out, {**paths, "mask": args.mask}, load_gradeguided(args.weights).card, args.case_id)
        if result.missing_modalities:
            log.warning("missing modalities: %s", ", ".join(result.missing_modalities))
        return f"done: response probability {result.response_probability:.2f} ({result.response_class})"

    return run_case_command(predict)

if __name__ == "__main__":
    raise SystemExit(main())
