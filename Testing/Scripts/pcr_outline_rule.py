"""Judge pCR models on saved end-to-end tables pooled over sets: the outline rule's three numbers.

Reads the JSON files ``Testing/Scripts/pcr_end_to_end.py --out`` writes (one per set and model) and,
over the exams every model has an automatic mask for, pools the sets and reports per model: AUC on the
reference masks and on the automatic masks (bootstrap CIs), and the mean absolute and mean signed change
of a patient's probability from the reference mask to the automatic one. The rule it serves is
``docs/pcr-evaluation/outline-refit/RULE.md``.

Usage: python Testing/Scripts/pcr_outline_rule.py --model NAME SET1.json SET2.json … [--model …] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from responseai.metrics import bootstrap

log = logging.getLogger("pcr_outline_rule")


def pooled(files: list[Path]) -> pd.DataFrame:
    """The per-exam rows of several end-to-end runs, one table."""
    return pd.concat([pd.DataFrame(json.loads(f.read_text(encoding="utf-8"))["per_exam"]) for f in files],
                     ignore_index=True)


def judge(tables: dict[str, pd.DataFrame], n_boot: int = 1000) -> dict:
    """Per model, on the exams with an automatic mask under every model: AUCs and the probability change."""
    keep = set.intersection(*(set(t.dropna(subset=["automatic_probability"])["patient_id"]) for t in tables.values()))
    out = {}
    for name, table in tables.items():
        rows = table[table["patient_id"].isin(keep)]
        y = rows["pcr"].to_numpy()
        stats = bootstrap(lambda t, r, a: {"auc_reference_mask": roc_auc_score(t, r),
                                           "auc_automatic_mask": roc_auc_score(t, a)},
                          (y, rows["reference_probability"].to_numpy(), rows["automatic_probability"].to_numpy()),
                          n_boot)
        change = rows["automatic_probability"] - rows["reference_probability"]
        out[name] = {"n_exams": len(rows), "n_pcr": int(y.sum()), **stats,
                     "probability_change_mean_abs": float(change.abs().mean()),
                     "probability_change_mean": float(change.mean())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", action="append", required=True, metavar=("NAME", "SET.json"),
                        help="a model's name, then its end-to-end JSON per set")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tables = {model[0]: pooled([Path(f) for f in model[1:]]) for model in args.model}
    result = judge(tables)
    log.info("%s", json.dumps(result, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
