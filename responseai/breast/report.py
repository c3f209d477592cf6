"""Breast per-patient report: the pCR sections, and the export behind ``responseai report`` and the Slicer button.

Writes ``report.pdf`` + ``report.json`` (with overlay snapshots), the tumour mask as
``tumour.seg.nrrd`` and, when the input came from a DICOM series, as a DICOM SEG that
references it. Everything lands in the output folder together or not at all.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from responseai.breast.constants import BREAST_SCHEMA, CAUTION_KEYS, FORM_SCHEMA, runner_up_note
from responseai.breast.segmentation.extent import EXTENT_LIMITS
from responseai.dynamic import recorded_frame
from responseai.image import Image
from responseai.io import read_image, read_segmentation, write_segmentation
from responseai.outputs import staged_output_dir
from responseai.reports.snapshots import render_snapshots
from responseai.reports.writer import calibration_note, ci_text, make_report, write_report

log = logging.getLogger(__name__)

REPORT_TYPE = "breast"
OVERLAY_LEGEND = ("Heatmap: model attention (inferno; weak attention transparent) at 40 % opacity over "
                  "post-contrast 1. Cyan: tumour segment outline.")


def _card_rows(card: Mapping) -> list[tuple[str, object]]:
    """Model card summary: identity, training data, validation metrics, weights fingerprint."""
    train = card.get("training_data", {})
    val = card.get("metrics", {}).get("val", {})
    sites = ", ".join(train.get("sites", [])) or "?"
    return [
        ("Model", f"{card.get('name', '?')} {card.get('version', '?')} (created {card.get('created', '?')[:10]})"),
        ("Training data", f"{train.get('n_train', '?')} training + {train.get('n_val', '?')} validation cases, "
                          f"sites {sites}, pCR prevalence {train.get('prevalence_train', float('nan')):.0%}"),
        ("Validation AUC", ci_text(val.get("auc"))),
        ("Sensitivity / specificity", f"{ci_text(val.get('sensitivity'))} / {ci_text(val.get('specificity'))}"),
        ("Balanced accuracy", ci_text(val.get("balanced_accuracy"))),
        ("Threshold rule", card.get("threshold_rule", "?")),
        ("Weights sha256", f"{card.get('sha256', '')[:16]}…"),
    ]



def _clinical_label(name: str) -> str:
    """The form's label with units ('Ki-67 (%)'), as the clinician entered it, not the code name."""
    variable = FORM_SCHEMA.get(name)
    if variable is None:
        return name
    return f"{variable.label} ({variable.units})" if variable.units else variable.label


def _finding_rows(case: Mapping) -> list[tuple[str, object]]:
    """Where the tumour is and how the mask was found (older records lack these: 'not recorded')."""
    side, named = case.get("tumour_side"), (case.get("clinical_used") or {}).get("laterality")
    where = f"patient's {side} breast" if side else "not recorded"
    if named:  # the form's side kept the search to that breast (responseai.breast.segmentation.side)
        where += " (the form names it)" if named == side else f" (the form names the {named}: see the caution)"
    rows: list[tuple[str, object]] = [("Tumour side", where),
                                      ("Tumour volume (mask)", f"{case['tumour_volume_ml']:.1f} ml" if "tumour_volume_ml" in case
                                       else "not recorded")]
    if "mask_diameters_mm" in case:
        rows.append(("Mask diameters (principal axes)", " × ".join(f"{d:g}" for d in case["mask_diameters_mm"]) + " mm"))
    if "mask_to_clinical_size_ratio" in case:
        # records written before the three-diameter form were always against the sphere
        yardstick = case.get("clinical_size_yardstick", "a sphere of the clinical size")
        low, high = case.get("extent_limits", EXTENT_LIMITS)
        rows.append((f"Mask volume / {yardstick} (expected {low:g}-{high:g})",
                     f"{case['mask_to_clinical_size_ratio']:.2f}"
                     + (" - outside the expected range: check the outline (see the caution above)"
                        if case.get("extent_caution") else " (fits)")))
    if "background_enhancement_index_percent" in case:
        rows.append(("Background parenchymal enhancement index (p90 of post1 over pre, outside the tumour)",
                     f"{case['background_enhancement_index_percent']:.0f} %"))
        rows.append(("Breast volume (both breasts, model's breast region)", f"{case['breast_volume_ml']:.0f} ml"))
    if "tumour_candidates" in case:
        rows.append(("Enhancing candidates (outside the breasts, ignored)",
                     f"{case['tumour_candidates']} ({case.get('candidates_outside_breasts', 0)})"))
    if "runner_up_candidate" in case:
        second = case["runner_up_candidate"]
        note = runner_up_note(second)
        rows.append(("Runner-up candidate (use it if the outlined one is not the tumour)",
                     f"{second['volume_ml']:.1f} ml, patient's {second['side']} breast, score margin "
                     f"{second['score_margin']:.2f}" + note + (" (see the caution above)" if note else "")
                     + " (runner-up.seg.nrrd of the prediction; in Slicer, a hidden segment)"))
    return rows


def _caution(case: Mapping) -> dict:
    """The headline's caution: a mask outside the breast the form names, a suspect outline, a close call between
    candidates, an outline cut or grown to the clinical size (empty when none)."""
    said = [case[key] for key in CAUTION_KEYS if case.get(key)]
    return {"caution": "; ".join(said)} if said else {}


def build_report(case: Mapping) -> dict:
    """The breast pCR report from a prediction record (``result.json`` fields + ``model_card``).

    Required keys: case_id, pcr_probability, predicted_class, threshold, attention_in_mask,
    pointing_game_hit, clinical_used, missing_clinical, inputs, model_card; optional:
    created, mask_source.
    """
    card = case["model_card"]
    probability, threshold = float(case["pcr_probability"]), float(case["threshold"])
    val = card.get("metrics", {}).get("val", {})
    missing = list(case["missing_clinical"])
    # only the model's variables: the report's 2nd / 3rd diameters show in the findings' extent row instead
    used = {k: v for k, v in case["clinical_used"].items()
            if v is not None and k not in missing and k in BREAST_SCHEMA}
    sections = [
        ("Inputs", [(name, source) for name, source in case["inputs"].items()]
         + ([("Frames of the DCE series", case["dce_series"]["choice"])] if case.get("dce_series") else [])
         + [("Tumour mask", case.get("mask_source", "not stated"))]),
        ("Prediction", [
            ("pCR probability", f"{probability:.3f}"),
            ("Predicted class", f"{case['predicted_class']} (threshold {threshold:.3f})"),
            ("Model validation AUC", ci_text(val.get("auc"))),
            ("Calibration", calibration_note(card)),
        ]),
        ("Findings", _finding_rows(case)),
        ("Clinical values used", [(_clinical_label(k), v) for k, v in used.items()]
         + [("Missing (model used missing indicators)", [_clinical_label(k) for k in missing])]),
        ("Attention and anatomy", [
            ("Attention inside the tumour mask", f"{float(case['attention_in_mask']):.1%}"),
            ("Pointing game (attention peak inside the tumour)", bool(case["pointing_game_hit"])),
        ]),
        ("Model card", _card_rows(card)),
    ]
    headline = {"label": "pCR probability", "value": f"{probability:.3f}",
                "detail": f"predicted {case['predicted_class']} at the model card threshold {threshold:.3f}",
                **_caution(case)}
    data = {"pcr_probability": probability, "predicted_class": str(case["predicted_class"]), "threshold": threshold,
            "attention_in_mask": float(case["attention_in_mask"]), "pointing_game_hit": bool(case["pointing_game_hit"]),
            "missing_clinical": missing, "clinical_used": used, "inputs": dict(case["inputs"]),
            "model": {"name": card.get("name"), "version": card.get("version"), "sha256": card.get("sha256")}}
    return make_report(REPORT_TYPE, "Breast DCE-MRI — pCR prediction", str(case["case_id"]), sections, headline, data,
                       created=case.get("created"), image_legend=OVERLAY_LEGEND)


def export_breast_report(
    record: Mapping, card: Mapping, mask: Image, snapshots: Mapping[str, Path], out_dir: str | Path,
    dicom_source: str | Path | list[str] | None = None,
) -> dict[str, Path]:
    """Report (PDF + JSON + snapshots), mask as .seg.nrrd, and DICOM SEG when the input was DICOM (a series folder,
    or the files of one frame of a dynamic series)."""
    out_dir = Path(out_dir)
    report = build_report({**record, "model_card": card})
    with staged_output_dir(out_dir) as staging:
        write_report(report, snapshots, staging)
        write_segmentation(mask, staging / "tumour.seg.nrrd")
        if isinstance(dicom_source, list) or (dicom_source is not None and Path(dicom_source).is_dir()):
            _write_dicom_seg(mask, dicom_source, staging)
        names = sorted(p.name for p in staging.iterdir())
    log.info("report for %s written to %s", record["case_id"], out_dir)
    return {name: out_dir / name for name in names}


def _write_dicom_seg(mask: Image, dicom_source: str | Path | list[str], staging: Path) -> None:
    """The DICOM SEG, or a note saying why this Python cannot write one (the rest of the report stands)."""
    from responseai.dicom_seg import DicomSegUnavailableError, write_dicom_seg

    try:
        write_dicom_seg(mask, dicom_source, staging / "tumour-seg.dcm")
    except DicomSegUnavailableError as exc:
        log.warning("%s", exc)
        (staging / "DICOM-SEG-NOT-WRITTEN.txt").write_text(f"{exc}\n", encoding="utf-8")


def report_from_prediction(prediction_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Everything ``responseai predict`` wrote for a case → the per-patient report folder."""
    prediction_dir = Path(prediction_dir)
    record = json.loads((prediction_dir / "result.json").read_text(encoding="utf-8"))
    card = json.loads((prediction_dir / "model_card.json").read_text(encoding="utf-8"))
    if record.get("dce_series"):  # phases taken from one dynamic series: read its post1 frame again
        background, dicom = recorded_frame(record["dce_series"], "post1")
        if dicom is None and Path(record["dce_series"]["path"]).is_dir():
            log.warning("no DICOM SEG: the DCE series is one enhanced multi-frame DICOM, and the SEG is written against "
                        "classic single-frame series only")
    else:
        post1_source = record["inputs"]["post1"]
        background = read_image(post1_source, "post1")
        dicom = post1_source if Path(post1_source).is_dir() else None
    mask = read_segmentation(prediction_dir / "tumour.seg.nrrd")
    attention = read_image(prediction_dir / "attention.nrrd", "attention")
    work = Path(tempfile.mkdtemp(prefix="responseai-snapshots-"))
    try:
        snapshots = render_snapshots(background, attention, mask, work)
        return export_breast_report(record, card, mask, snapshots, out_dir, dicom)
    finally:
        shutil.rmtree(work, ignore_errors=True)
