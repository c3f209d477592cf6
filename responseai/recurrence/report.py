"""Recurrence per-patient report: risk score, group, RFS at 3 / 5 / 7 years, survival curve (PDF + JSON).

:func:`build_recurrence_report` turns ``result.json`` (+ the model card kept with the
prediction) into sections for the shared writer; :func:`recurrence_report_from_prediction` is
what ``responseai report`` runs on a recurrence prediction folder: it draws the predicted
survival curve as the report's figure. The writer validates the report against
``Resources/Schemas/recurrence_report.schema.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from responseai.recurrence.constants import MODALITY_LABELS
from responseai.reports.writer import make_report, write_report

log = logging.getLogger(__name__)

REPORT_TYPE = "recurrence"
TITLE = "Recurrence risk — multimodal cross-attention fusion"
CURVE_KEY = "survival_curve"
LEGEND = ("Predicted recurrence-free survival S(t) = exp(−H₀(t)·exp(risk score)), H₀ the Breslow baseline "
          "hazard of the model's training patients; dots: 3, 5 and 7 years.")


def _label(modality: str) -> str:
    return MODALITY_LABELS.get(modality, modality)


def _rows_inputs(record: Mapping) -> list[tuple[str, object]]:
    handling = {"compensated": "missing (learned compensation)", "masked": "missing (masked out)"}
    rows: list[tuple[str, object]] = [
        (_label(m), handling.get(record["missing_handling"], "missing") if m in record["missing_modalities"] else "given")
        for m in record["modality_weights"]]
    return rows + [("Unknown clinical variables", list(record["missing_clinical"]))] + [
        ("Note", note) for note in record["notes"]]


def _rows_risk(record: Mapping, card: Mapping) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("Risk score (Cox log-risk)", f"{record['risk_score']:+.3f}"),
                                      ("Risk group", f"{record['risk_group']} (tertiles of the training risk)")]
    rows += [(f"Recurrence-free probability at {h.rstrip('y')} years", float(p))
             for h, p in record["rfs_probability"].items()]
    val = card.get("metrics", {}).get("val", {})
    if "harrell_c" in val:
        rows.append(("Validation Harrell C", float(val["harrell_c"])))
    rows += [(f"Validation time-dependent AUC at {h}", float(a)) for h, a in val.get("td_auc", {}).items()]
    return rows + [("Calibration", "not assessed: read the probabilities as model estimates on the training "
                                   "population (a phantom for the shipped model), not as a patient's risk")]


def _rows_weights(record: Mapping) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [(f"Attention: {_label(m)}", float(w)) for m, w in record["modality_weights"].items()]
    return rows + [("Meaning", record["modality_weights_meaning"])]


def _rows_card(card: Mapping) -> list[tuple[str, object]]:
    if not card:
        return [("Model card", "not available with this prediction")]
    data = card.get("training_data", {})
    return [("Model", f"{card.get('name', '?')} {card.get('version', '?')} (created {str(card.get('created', '?'))[:10]})"),
            ("Training data", f"{data.get('n_train', '?')} training + {data.get('n_val', '?')} validation patients: "
                              f"{data.get('cohort', '?')}"),
            ("Report-text model", card.get("inputs", {}).get("text_model", "?")),
            ("Weights sha256", f"{str(card.get('sha256', ''))[:16]}…")]


def build_recurrence_report(record: Mapping, card: Mapping, created: str | None = None) -> dict:
    """The recurrence report from ``result.json`` fields (with ``case_id``) and the model card (may be empty)."""
    five = record["rfs_probability"].get("5y")
    sections = [("Inputs", _rows_inputs(record)), ("Recurrence risk", _rows_risk(record, card)),
                ("Modality attention", _rows_weights(record)), ("Model card", _rows_card(card))]
    headline = {"label": "Recurrence risk group", "value": record["risk_group"],
                "detail": (f"5-year recurrence-free probability {five:.2f}; " if five is not None else "")
                + f"risk score {record['risk_score']:+.2f}"}
    keys = ("risk_score", "risk_group", "rfs_probability", "modality_weights", "missing_modalities", "survival_curve",
            "missing_clinical")
    data = {**{k: record[k] for k in keys}, "inputs": dict(record.get("inputs", {})),
            "model": {"name": card.get("name", record["model"]["name"]),
                      "version": card.get("version", record["model"]["version"]), "sha256": card.get("sha256")}}
    return make_report(REPORT_TYPE, TITLE, str(record["case_id"]), sections, headline, data,
                       images={CURVE_KEY: "Predicted recurrence-free survival"}, created=created, image_legend=LEGEND)


def plot_survival_curve(record: Mapping, path: Path) -> Path:
    """The predicted RFS curve with the 3 / 5 / 7-year points (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    curve = record["survival_curve"]
    axes.step(curve["time"], curve["rfs"], where="post", color="#1f3a5f")
    for horizon, probability in record["rfs_probability"].items():
        axes.plot(float(horizon.rstrip("y")), probability, "o", color="#b3001b")
        axes.annotate(f"{probability:.2f}", (float(horizon.rstrip("y")), probability), textcoords="offset points",
                      xytext=(4, 6))
    axes.set(xlabel=record.get("time_unit", "years"), ylabel="recurrence-free probability", ylim=(0, 1.02),
             title=f"risk group: {record['risk_group']}")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def recurrence_report_from_prediction(prediction_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """A ``responseai predict recurrence`` folder → report.pdf + report.json + the curve PNG in ``out_dir``."""
    prediction_dir = Path(prediction_dir)
    record = json.loads((prediction_dir / "result.json").read_text(encoding="utf-8"))
    card_file = prediction_dir / "model_card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="responseai-recurrence-report-"))
    try:
        curve = plot_survival_curve(record, work / f"{CURVE_KEY}.png")
        files = write_report(build_recurrence_report(record, card), {CURVE_KEY: curve}, out_dir)
        log.info("report for %s written to %s", record["case_id"], out_dir)
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)
