"""Cross-modal per-patient report: diagnosis, grade, lesion box and cross-attention evidence.

:func:`crossmodal_report_from_prediction` is what ``responseai report`` runs on a
``responseai predict crossmodal`` folder: the heatmap PNG over the mammogram and a strip of the
top-K pathology patches become the report's figures, then the PDF + JSON go through the shared
writer, which validates it against ``Resources/Schemas/crossmodal_report.schema.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from responseai.reports.writer import calibration_note, make_report, write_report

log = logging.getLogger(__name__)

REPORT_TYPE = "crossmodal"
TITLE = "Cross-modal mammography + pathology — diagnosis, grade, lesion"
CAPTIONS = {"heatmap": "Mammogram with cross-attention heatmap and lesion box",
            "evidence": "Top pathology patches for the high-attention region"}
LEGEND = ("Heatmap: how much of the pathology patches' attention lands on each mammogram region (inferno, 45 % "
          "opacity); cyan box: predicted lesion. Evidence strip: the pathology patches most attended from the "
          "high-attention region, best first. Association in a learned embedding, not proof.")
METRIC_LABELS = {"val_macro_auc": "Validation macro AUC", "val_accuracy": "Validation accuracy",
                 "val_grade_qwk": "Validation grade QWK", "val_lesion_dice": "Validation lesion Dice"}


def _sections(record: Mapping, card: Mapping) -> list[tuple[str, list[tuple[str, object]]]]:
    metrics = card.get("metrics", {})
    inputs = [("Modalities used", ", ".join(record["modalities_used"])),
              ("Missing modality", record["missing_modality"] or "none"), ("Site", record["domain"] or "not given")]
    inputs += [("Note", n) for n in record["notes"]]
    diagnosis = [(f"P({c.replace('_', ' ')})", float(p)) for c, p in record["class_probabilities"].items()]
    diagnosis += [(label, float(metrics[key])) for key, label in METRIC_LABELS.items() if key in metrics]
    diagnosis.append(("Calibration", calibration_note(card)))
    grade = [(f"P(grade {g})", float(p)) for g, p in record["grade_probabilities"].items()]
    grade.append(("Predicted grade", record["predicted_grade"] if record["grade_applies"] else
                  f"{record['predicted_grade']} (a grade applies to in situ / invasive only)"))
    box = record["box"]
    lesion = [("Lesion box (row0, col0, row1, col1)", "none found" if box is None else ", ".join(map(str, box)))]
    evidence = [(f"Patch {e['rank']}", f"{e['tile']} rows {e['pixel_box'][0]}–{e['pixel_box'][2]}, columns "
                 f"{e['pixel_box'][1]}–{e['pixel_box'][3]}, attention {e['attention']:.3f}") for e in record["evidence"]]
    model = [("Model", f"{card.get('name', record['model']['name'])} {card.get('version', record['model']['version'])}"),
             ("Training data", str(card.get("training_data", {}).get("cohort", "not available"))),
             ("Weights sha256", f"{str(card.get('sha256', ''))[:16]}…")]
    return [("Inputs", inputs), ("Diagnosis", diagnosis), ("Grade", grade), ("Localisation", lesion),
            ("Cross-modal evidence", evidence or [("Evidence", "needs both a mammogram and pathology")]),
            ("Conclusion", [("Conclusion", record["conclusion"])]), ("Model card", model)]


def build_crossmodal_report(record: Mapping, card: Mapping, created: str | None = None) -> dict:
    """The report from ``result.json`` fields and the model card (which may be empty)."""
    headline = {"label": "Diagnosis", "value": f"{record['predicted_class'].replace('_', ' ')} "
                                               f"({float(record['confidence']):.2f})",
                "detail": record["conclusion"]}
    keys = ("class_probabilities", "predicted_class", "confidence", "grade_probabilities", "predicted_grade",
            "grade_applies", "box", "modalities_used", "evidence", "conclusion")
    data = {**{k: record[k] for k in keys}, "inputs": dict(record.get("inputs", {})),
            "model": {"name": card.get("name", record["model"]["name"]),
                      "version": card.get("version", record["model"]["version"]), "sha256": card.get("sha256")}}
    return make_report(REPORT_TYPE, TITLE, str(record["case_id"]), _sections(record, card), headline, data,
                       images=CAPTIONS, created=created, image_legend=LEGEND)


def _evidence_strip(prediction_dir: Path, record: Mapping, path: Path) -> Path | None:
    """The evidence patches side by side, enlarged with nearest-neighbour so pixels stay pixels."""
    from PIL import Image as PILImage

    if not record["evidence"]:
        return None
    patches = [np.array(PILImage.open(prediction_dir / e["file"]).convert("RGB").resize((96, 96), PILImage.NEAREST))
               for e in record["evidence"]]
    gap = np.full((96, 6, 3), 255, np.uint8)
    PILImage.fromarray(np.concatenate([x for p in patches for x in (p, gap)][:-1], 1)).save(path)
    return path


def crossmodal_report_from_prediction(prediction_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """A ``responseai predict crossmodal`` folder → report.pdf + report.json + figures in ``out_dir``."""
    prediction_dir = Path(prediction_dir)
    record = json.loads((prediction_dir / "result.json").read_text(encoding="utf-8"))
    card_file = prediction_dir / "model_card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="responseai-cm-report-"))
    try:
        snapshots = {}
        if record.get("heatmap_png"):
            snapshots["heatmap"] = prediction_dir / record["heatmap_png"]
        strip = _evidence_strip(prediction_dir, record, work / "evidence.png")
        if strip is not None:
            snapshots["evidence"] = strip
        files = write_report(build_crossmodal_report(record, card), snapshots, out_dir)
        log.info("report for %s written to %s", record["case_id"], out_dir)
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)
