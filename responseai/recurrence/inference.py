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
:data:`COHORT` plugs the same reading and writing into ``responseai predict recurrence
--manifest`` (:mod:`responseai.batch`; the manifest's columns: ``MANIFEST_SCHEMA`` in
:mod:`responseai.recurrence.constants`, what ``responseai synth recurrence`` writes).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from responseai.batch import COHORT_EPILOG, CohortHook
from responseai.clinical import ClinicalEncoder, read_clinical_record, validate_clinical
from responseai.errors import InputFileError
from responseai.outputs import json_safe, staged_output_dir
from responseai.recurrence.constants import CLINICAL_SCHEMA, MANIFEST_SCHEMA, MODALITY_LABELS, TASK
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


@dataclass
class RecurrenceCase:
    """One patient read from files, the files it came from (``result.json``'s inputs) and its id."""

    inputs: CaseInputs
    genes: np.ndarray | None
    files: dict[str, str]
    case_id: str | None = None


def read_case(files: Mapping[str, object], clinical_values: Mapping[str, object] | None = None,
              case_id: str | None = None) -> RecurrenceCase:
    """A patient from ``files`` (``clinical``, ``pathology``, ``ultrasound``, ``report_text``, ``genes``; absent or
    None: missing), the clinical values given beside the record overriding it.

    The command line and a manifest row both read through here, so a cohort case is the single case.
    The record is validated now, so a bad value is refused before the model runs.
    """
    given = {name: str(files[name]) for name in ("clinical", "pathology", "ultrasound", "report_text", "genes")
             if files.get(name)}
    clinical = {**read_clinical_record(given.get("clinical")), **(clinical_values or {})}
    validate_clinical(clinical, CLINICAL_SCHEMA)
    inputs = CaseInputs(
        tiles=read_tiles(given["pathology"]) if "pathology" in given else None,
        ultrasound=read_ultrasound(given["ultrasound"]) if "ultrasound" in given else None,
        report=read_report(given["report_text"]) if "report_text" in given else None,
        clinical=clinical)
    genes = read_genes(given["genes"]) if "genes" in given else None
    return RecurrenceCase(inputs, genes, given, case_id)


def predict_and_write(case: RecurrenceCase, weights_path: str | Path, out: str | Path,
                      progress: Progress | None = None) -> RecurrenceResult:
    """One patient end to end (the command and each cohort case): prediction, then its folder, all or nothing."""
    progress = progress or (lambda pct, msg: None)
    result = predict_recurrence(case.inputs, weights_path, case.genes, progress)
    progress(90, "writing results")
    write_result(result, out, case.files, load_recurrence(weights_path).card, case.case_id)
    return result


def _weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=str(DEFAULT), help="model weights (.safetensors beside its card)")


def _load_models(args: argparse.Namespace) -> str:
    """Verify and load the network (and its report-text encoder) once, before any case: a bad --weights
    or a missing text model stops the run there, and the first case's time is its own."""
    loaded = load_recurrence(args.weights)
    if "report" in loaded.card["architecture"]["config"]["modalities"]:
        embed_reports(["warm-up"])  # loads and checksums the cached sentence encoder
    return args.weights


def _read_row(row: Mapping[str, object], weights_path: str) -> RecurrenceCase:  # noqa: ARG001 - hook signature
    """A validated manifest row (absolute paths, ``None`` for empty cells; ``report`` is the report text file)."""
    files = {"clinical": row.get("clinical"), "pathology": row.get("pathology"), "ultrasound": row.get("ultrasound"),
             "report_text": row.get("report"), "genes": row.get("genes")}
    values = {name: row[name] for name in CLINICAL_SCHEMA if row.get(name) is not None}
    return read_case(files, values, str(row[MANIFEST_SCHEMA.id_column]))


def _predict_row(case: RecurrenceCase, out: Path, weights_path: str) -> dict:
    """One cohort case: its folder, and the table's columns (risk, group, RFS per horizon, missing modalities)."""
    result = predict_and_write(case, weights_path, out)
    return {"risk_score": result.risk_score, "risk_group": result.risk_group,
            **{f"rfs_{horizon}": p for horizon, p in result.rfs_probability.items()},
            "missing_modalities": ";".join(result.missing_modalities)}


COHORT = CohortHook(MANIFEST_SCHEMA, _weights_argument, _load_models, _read_row, _predict_row)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai predict recurrence", description=__doc__.split("\n\n")[0],
                                     epilog=COHORT_EPILOG.format(family=FAMILY))
    parser.add_argument("--clinical", help="JSON file or object: " + ", ".join(CLINICAL_SCHEMA))
    parser.add_argument("--pathology", help="folder of pathology tile images (or one image)")
    parser.add_argument("--ultrasound", help="ultrasound image (PNG/JPEG, or NRRD/NIfTI: middle slice)")
    parser.add_argument("--report-text", help="diagnostic report, UTF-8 text file")
    parser.add_argument("--genes", help="gene values (JSON list / object), for a model with a gene block")
    parser.add_argument("--case-id", help="case identifier (default: the --out folder name)")
    _weights_argument(parser)
    parser.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Predict one case from files; 0 on success, 2 on an input error (logged as ERROR)."""
    from responseai.progress import log_progress, run_case_command

    args = build_parser().parse_args(argv)

    def predict() -> str:
        log_progress(5, "reading the inputs")
        case = read_case(vars(args), case_id=args.case_id)
        result = predict_and_write(case, args.weights, args.out, log_progress)
        return f"done: {result.risk_group} risk, 5-year RFS {result.rfs_probability.get('5y', float('nan')):.2f}"

    return run_case_command(predict)

if __name__ == "__main__":
    raise SystemExit(main())
