"""GradeGuidedFusion per-patient report: a grade-guided prediction in the shared report shape.

:func:`build_gradeguided_report` turns ``result.json`` (+ the model card the prediction
folder keeps) into sections for :func:`responseai.reports.writer.make_report`;
:func:`gradeguided_report_from_prediction` is what ``responseai report`` runs on a
grade-guided prediction folder: snapshots of the subtype map over the reference modality,
drawn by Slicer's slice views, then the PDF + JSON through the shared writer.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from responseai.gradeguided.constants import MODALITY_LABELS
from responseai.io import read_image, read_mask, resample_to
from responseai.reports.snapshots import render_snapshots
from responseai.reports.writer import calibration_note, make_report, write_report

log = logging.getLogger(__name__)

REPORT_TYPE = "gradeguided"
TITLE = "Grade-guided fusion — grade, response, subtype"
# The card's flat validation metrics, named for a reader.
METRIC_LABELS = {"val_response_auc": "Validation response AUC", "val_grade_accuracy": "Validation grade accuracy",
                 "val_grade_kappa": "Validation grade Cohen κ"}
MAP_LEGEND = ("Heatmap: subtype-sensitivity map (where the image most changes the subtype assignment; inferno, "
              "weak values transparent) at 40 % opacity over {background}. Cyan: tumour segment outline.")


def _label(modality: str) -> str:
    """'CT arterial', not 'ct_art': the report is read by clinicians, the code names stay in data."""
    return MODALITY_LABELS.get(modality, modality)


def _input_rows(record: Mapping) -> list[tuple[str, object]]:
    """Which channels were given, which were zero-filled, and what was unknown clinically."""
    given, missing = record["modality_importance"], record["missing_modalities"]
    rows: list[tuple[str, object]] = [(label, "given" if m in given else "missing (zero channel)")
                                      for m, label in MODALITY_LABELS.items() if m in given or m in missing]
    return rows + [("Unknown clinical variables", list(record["missing_clinical"]))] + [
        ("Note", note) for note in record["notes"]]


def _grade_rows(record: Mapping) -> list[tuple[str, object]]:
    """Grade probabilities and, explicitly, whether the biopsy or the model's guess guided the fusion."""
    source = {"biopsy": "biopsy grade given by the user", "predicted": "the model's predicted grade"}
    rows: list[tuple[str, object]] = [(f"P(grade {g})", float(p)) for g, p in record["grade_probabilities"].items()]
    return rows + [("Predicted grade", record["predicted_grade"]),
                   ("Grade guiding the fusion", f"{record['grade_used']} ({source[record['grade_source']]})")]


def _response_rows(record: Mapping, card: Mapping) -> list[tuple[str, object]]:
    """Probability, class at the card's threshold, and how good the model was on validation."""
    metrics = card.get("metrics", {})
    rows: list[tuple[str, object]] = [
        ("Response probability", f"{record['response_probability']:.3f}"),
        ("Response class", f"{record['response_class']} (threshold {record['threshold']:.3f})"),
    ]
    rows += [(label, float(metrics[key])) for key, label in METRIC_LABELS.items() if key in metrics]
    return rows + [("Calibration", calibration_note(card))]


def _subtype_rows(record: Mapping, card: Mapping) -> list[tuple[str, object]]:
    """The assigned subtype, its soft assignment (a near-tie should be visible, not hidden by argmax)
    and, from the card, each subtype's responder rate in training: how much a subtype says about
    response, which a reader cannot guess from a prototype's name."""
    rows: list[tuple[str, object]] = [("Assigned subtype", record["subtype"])]
    rows += [(f"Soft assignment: {s}", float(p)) for s, p in record["subtype_probabilities"].items()]
    rates = card.get("metrics", {}).get("train_subtype_responder_rate") or []
    return rows + [(f"Responder rate in training: {s}", "n/a" if r is None else float(r))
                   for s, r in zip(record["subtype_probabilities"], rates)]


def _contribution_rows(record: Mapping) -> list[tuple[str, object]]:
    """Modality importance (what CT / MRI / PET added) and α per stream (what the gate weighed)."""
    rows: list[tuple[str, object]] = [(f"Importance: {_label(m)}", float(w))
                                      for m, w in record["modality_importance"].items()]
    rows.append(("Importance method", record["modality_importance_method"]))
    rows += [(f"α {name} stream", float(w)) for name, w in record["alpha"].items()]
    return rows + [("α scope", record["alpha_scope"])]


def _clinical_rows(record: Mapping) -> list[tuple[str, object]]:
    """Top signed clinical contributions, with how to read the sign."""
    rows: list[tuple[str, object]] = [(c["feature"], f"{c['contribution']:+.3f}")
                                      for c in record["clinical_contributions"]]
    return rows + [("Reading", "gradient × input on the response logit; positive pushes towards response")]


def _card_rows(card: Mapping) -> list[tuple[str, object]]:
    """Identity, training data size, threshold and weights fingerprint of the model that ran."""
    if not card:
        return [("Model card", "not available with this prediction")]
    splits = card.get("training_data", {}).get("splits", {})
    return [
        ("Model", f"{card.get('name', '?')} {card.get('version', '?')} (created {str(card.get('created', '?'))[:10]})"),
        ("Training data", f"{splits.get('train', '?')} training + {splits.get('val', '?')} validation cases"),
        ("Response threshold", f"{float(card.get('threshold', float('nan'))):.3f} (Youden on validation)"),
        ("Parameters", card.get("n_parameters", "?")),
        ("Weights sha256", f"{str(card.get('sha256', ''))[:16]}…"),
    ]


def build_gradeguided_report(record: Mapping, card: Mapping, background: str | None = None,
                             created: str | None = None) -> dict:
    """The GGF report from ``result.json`` fields (with ``case_id``) and the model card.

    ``card`` may be empty (a prediction folder without ``model_card.json``): the report then
    says so instead of inventing metrics. ``background`` names the modality the snapshots are
    drawn over, so the legend says what the heatmap lies on.
    """
    probability, threshold = float(record["response_probability"]), float(record["threshold"])
    sections = [
        ("Inputs", _input_rows(record)),
        ("Grade", _grade_rows(record)),
        ("Response", _response_rows(record, card)),
        ("Subtype", _subtype_rows(record, card)),
        ("Modality importance and fusion weights", _contribution_rows(record)),
        ("Top clinical contributions", _clinical_rows(record)),
        ("Model card", _card_rows(card)),
    ]
    headline = {"label": "Response probability", "value": f"{probability:.3f}",
                "detail": f"{record['response_class']} at the model card threshold {threshold:.3f}; grade "
                          f"{record['grade_used']} ({record['grade_source']}); subtype {record['subtype']}"}
    keys = ("grade_probabilities", "predicted_grade", "grade_used", "grade_source", "response_class", "subtype",
            "subtype_probabilities", "modality_importance", "alpha", "clinical_contributions", "missing_modalities",
            "missing_clinical")
    data = {"response_probability": probability, "threshold": threshold, **{k: record[k] for k in keys},
            "inputs": dict(record.get("inputs", {})),
            "model": {"name": card.get("name", record["model"]["name"]),
                      "version": card.get("version", record["model"]["version"]), "sha256": card.get("sha256")}}
    legend = MAP_LEGEND.format(background=_label(background) if background else "the reference volume")
    return make_report(REPORT_TYPE, TITLE, str(record["case_id"]), sections, headline, data, created=created,
                       image_legend=legend)


def reference_modality(record: Mapping) -> str:
    """The first present modality in the model's channel order (the Slicer module's reference grid too)."""
    return next(iter(record["modality_importance"]))


def gradeguided_report_from_prediction(prediction_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """A ``responseai predict gradeguided`` output folder → report.pdf + report.json + snapshots in ``out_dir``."""

    prediction_dir = Path(prediction_dir)
    record = json.loads((prediction_dir / "result.json").read_text(encoding="utf-8"))
    card_file = prediction_dir / "model_card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    background_name = reference_modality(record)
    background = read_image(record["inputs"][background_name], background_name)
    # The map and mask live on the mask's grid; Slicer's views draw overlays on the background's.
    mask = resample_to(read_mask(record["inputs"]["mask"]), background, is_label=True)
    spatial_map = resample_to(read_image(prediction_dir / record["spatial_map"], "subtype map"), background)
    work = Path(tempfile.mkdtemp(prefix="responseai-gg-snapshots-"))
    try:
        snapshots = render_snapshots(background, spatial_map, mask, work)
        report = build_gradeguided_report(record, card, background_name)
        files = write_report(report, snapshots, out_dir)
        log.info("report for %s written to %s", report["case_id"], out_dir)
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)
