"""Recurrence risk for one patient: pathology tiles, ultrasound, report text, clinical record → result.

    responseai predict recurrence --clinical clinical.json [--pathology TILES_DIR] [--ultrasound US.png|.nrrd] \
        [--report-text report.txt] [--genes genes.json] [--weights W] [--case-id ID] --out DIR

Any modality may be missing (not all): the model card says whether a missing block is
*compensated* (learned embedding conditioned on the present blocks) or only masked, and the
result names what was missing. Outputs, all or nothing through a staging folder:
``result.json`` (``"family": "recurrence"``: log-risk score, risk group at the card's training
tertiles, recurrence-free probability at 3 / 5 / 7 years from the card's Breslow baseline
hazard, the survival curve, missing modalities, per-modality read-out attention weights) and
``model_card.json``; progress as ``PROGRESS <pct> <msg>`` log lines for the Slicer job.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from responseai.clinical import ClinicalEncoder, read_clinical_record, validate_clinical
from responseai.errors import InputFileError, ResponseAIError
from responseai.outputs import json_safe, staged_output_dir
from responseai.recurrence.constants import CLINICAL_SCHEMA, MODALITY_LABELS, TASK
from responseai.recurrence.fit import CohortArrays, predict_risk
from responseai.recurrence.model import NoModalityError, RecurrenceNet, TokenBlockError, build_model, check_blocks
from responseai.recurrence.preprocess import (
    CaseInputs, clinical_encoder_from_card, prepare_arrays, read_report, read_tiles, read_ultrasound,
)
from responseai.recurrence.survival import risk_group, survival_at
from responseai.recurrence.text import embed_reports
from responseai.resources import model_path
from responseai.weights import load_model, load_once

log = logging.getLogger(__name__)

DEFAULT = model_path("recurrence")
FAMILY = "recurrence"
CARD_NAME = "model_card.json"
CURVE_POINTS = 41
Progress = Callable[[int, str], None]


@dataclass
class RecurrenceResult:
    """One patient's prediction; probabilities in [0, 1]."""

    risk_score: float
    risk_group: str
    rfs_probability: dict[str, float]
    survival_curve: dict[str, list[float]]
    missing_modalities: list[str]
    missing_handling: str
    modality_weights: dict[str, float]
    missing_clinical: list[str]
    model_name: str
    model_version: str
    time_unit: str
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return json_safe({
            "risk_score": self.risk_score, "risk_score_meaning": "Cox log-risk (higher: earlier recurrence)",
            "risk_group": self.risk_group, "rfs_probability": self.rfs_probability,
            "survival_curve": self.survival_curve, "time_unit": self.time_unit,
            "missing_modalities": self.missing_modalities, "missing_handling": self.missing_handling,
            "modality_weights": self.modality_weights,
            "modality_weights_meaning": "read-out attention over the modality tokens (sums to 1)",
            "missing_clinical": self.missing_clinical,
            "model": {"name": self.model_name, "version": self.model_version}, "notes": self.notes,
            "research_use_only": True,
        })


@dataclass
class LoadedRecurrence:
    model: RecurrenceNet
    card: dict
    encoder: ClinicalEncoder


def _load(path: Path) -> LoadedRecurrence:
    model, card = load_model(path, build_model, expected_task=TASK)
    return LoadedRecurrence(model, card, clinical_encoder_from_card(card["preprocessing"]["clinical_encoder"]))


def load_recurrence(weights_path: str | Path = DEFAULT) -> LoadedRecurrence:
    """The cached model for ``weights_path`` (card and sha256 verified)."""
    return load_once(weights_path, _load)


def _arrays(inputs: CaseInputs, loaded: LoadedRecurrence, genes: np.ndarray | None) -> CohortArrays:
    """The case's token blocks in the card's block order; refuses blocks the model does not take."""
    specs = loaded.card["architecture"]["config"]["modalities"]
    data = prepare_arrays([inputs], loaded.encoder, int(loaded.card["inputs"]["n_tiles"]), embed_reports)
    known = any(v is not None for v in validate_clinical(inputs.clinical, CLINICAL_SCHEMA).values())
    data.present[0, data.names.index("clinical")] = known
    if genes is not None:
        if "molecular" not in specs:
            raise TokenBlockError(f"this model has no gene block (it takes {', '.join(specs)}): leave --genes out")
        data.blocks["molecular"] = genes[None].astype(np.float32)
    check_blocks(data.blocks, {"modalities": specs})
    names = list(specs)
    present = np.array([[data.present[0, data.names.index(n)] if n in data.names else genes is not None for n in names]])
    if not present.any():
        raise NoModalityError("every modality is missing: give at least the clinical record or one of pathology "
                              "tiles, ultrasound or report text")
    blocks = {n: data.blocks[n] for n in names if n in data.blocks}
    return CohortArrays(names, blocks, present, np.ones(1), np.ones(1, bool))


def predict_recurrence(inputs: CaseInputs, weights_path: str | Path = DEFAULT, genes: np.ndarray | None = None,
                       progress: Progress | None = None) -> RecurrenceResult:
    """Risk score, group, RFS probabilities and explanations for one patient (see the module docstring)."""
    progress = progress or (lambda pct, msg: None)
    loaded = load_recurrence(weights_path)
    card = loaded.card
    progress(30, "tokenising the modalities")
    data = _arrays(inputs, loaded, genes)
    progress(60, "running the cross-attention fusion")
    risk, weights = predict_risk(loaded.model, data)
    survival = card["survival"]
    horizons = survival["horizons"]
    rfs = survival_at(risk, survival["baseline_times"], survival["baseline_cumulative_hazard"], horizons)[0]
    grid = np.linspace(0, max(horizons) * 10 / 7, CURVE_POINTS)
    curve = survival_at(risk, survival["baseline_times"], survival["baseline_cumulative_hazard"], grid)[0]
    missing = [n for n, p in zip(data.names, data.present[0]) if not p]
    handling = card["inputs"].get("missing_modalities", "masked")
    notes = [f"missing {', '.join(MODALITY_LABELS.get(m, m) for m in missing)}: "
             + ("replaced by the learned compensation embedding" if handling == "compensated" else "masked out")
             ] if missing else []
    record = validate_clinical(inputs.clinical, CLINICAL_SCHEMA)
    unit = card["inputs"].get("time_unit", "years")
    return RecurrenceResult(
        risk_score=float(risk[0]),
        risk_group=risk_group(float(risk[0]), card["threshold"]["risk_group_cut_points"], card["classes"]["risk_groups"]),
        rfs_probability={f"{h:g}y": float(p) for h, p in zip(horizons, rfs)},
        survival_curve={"time": grid.round(3).tolist(), "rfs": curve.round(4).tolist()},
        missing_modalities=missing, missing_handling=handling,
        modality_weights={n: float(w) for n, w in zip(data.names, weights[0])},
        missing_clinical=[k for k, v in record.items() if v is None],
        model_name=str(card["name"]), model_version=str(card["version"]), time_unit=unit, notes=notes,
    )


def write_result(result: RecurrenceResult, out: str | Path, inputs: dict | None = None, card: dict | None = None,
                 case_id: str | None = None) -> dict[str, Path]:
    """``result.json`` (+ ``model_card.json``) into ``out``: all or none."""
    out = Path(out)
    with staged_output_dir(out) as staging:
        if card is not None:
            (staging / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        record = {"family": FAMILY, "case_id": case_id or out.name, **result.record(), "inputs": dict(inputs or {})}
        (staging / "result.json").write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        names = [p.name for p in staging.iterdir()]
    return {name: out / name for name in names}


def read_genes(value: str) -> np.ndarray:
    """Gene values from a JSON list / object file or inline JSON (order = the model's gene order)."""
    try:
        text = value if value.lstrip()[:1] in "[{" else Path(value).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"--genes {value}: neither a readable JSON file nor JSON ({exc})") from exc
    values = list(data.values()) if isinstance(data, dict) else data
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputFileError(f"--genes {value}: expected numbers") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai predict recurrence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clinical", help="JSON file or object: " + ", ".join(CLINICAL_SCHEMA))
    parser.add_argument("--pathology", help="folder of pathology tile images (or one image)")
    parser.add_argument("--ultrasound", help="ultrasound image (PNG/JPEG, or NRRD/NIfTI: middle slice)")
    parser.add_argument("--report-text", help="diagnostic report, UTF-8 text file")
    parser.add_argument("--genes", help="gene values (JSON list / object), for a model with a gene block")
    parser.add_argument("--case-id", help="case identifier (default: the --out folder name)")
    parser.add_argument("--weights", default=str(DEFAULT))
    parser.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Predict one case from files; 0 on success, 2 on an input error (logged as ERROR)."""
    from responseai.progress import log_progress

    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        log_progress(5, "reading the inputs")
        inputs = CaseInputs(
            tiles=read_tiles(args.pathology) if args.pathology else None,
            ultrasound=read_ultrasound(args.ultrasound) if args.ultrasound else None,
            report=read_report(args.report_text) if args.report_text else None,
            clinical=read_clinical_record(args.clinical))
        genes = read_genes(args.genes) if args.genes else None
        result = predict_recurrence(inputs, args.weights, genes, log_progress)
        log_progress(90, "writing results")
        given = {k: v for k, v in (("clinical", args.clinical), ("pathology", args.pathology),
                                   ("ultrasound", args.ultrasound), ("report_text", args.report_text),
                                   ("genes", args.genes)) if v}
        write_result(result, args.out, given, load_recurrence(args.weights).card, args.case_id)
    except ResponseAIError as exc:
        log.error("%s", exc)
        return 2
    log_progress(100, f"done: {result.risk_group} risk, 5-year RFS {result.rfs_probability.get('5y', float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
