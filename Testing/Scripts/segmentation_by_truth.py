"""Segmentation results per level of a generator's latent variable (background enhancement, density, site…).

    PYTHONUTF8=1 .venv/bin/python Testing/Scripts/segmentation_by_truth.py EVAL/segmentation.json COHORT --by bpe

Joins the per-case table of ``responseai evaluate breast segmentation --out EVAL`` with the cohort's
``truth.csv`` and prints, per level of ``--by``: the number of exams, the mean and median Dice, the
tumours found, and the median ratio of the mask's volume to the reference (over 1: the outline
spilled beyond the tumour). Each generator names its columns its own way (background parenchymal
enhancement: ``bpe_level`` in the main phantom, ``bpe`` in the variant and the alt phantom).

A research measurement for docs/segmentation.md: it says *where* a Dice is lost, not whether a
model is better; the evaluation itself stays the number that is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger("segmentation_by_truth")


def by_truth(per_case: pd.DataFrame, truth: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per level of ``column``: exams, mean / median Dice, found, median volume ratio of the found tumours."""
    if column not in truth.columns:
        raise SystemExit(f"truth.csv has no column {column!r}; it has: {', '.join(truth.columns)}")
    table = per_case.drop(columns=[column], errors="ignore").merge(truth[["patient_id", column]], on="patient_id")
    table["volume_ratio"] = (table["volume_ml"] / table["reference_volume_ml"]).where(table["found"])
    return table.groupby(column).agg(exams=("dice", "size"), dice_mean=("dice", "mean"), dice_median=("dice", "median"),
                                     found=("found", "sum"), volume_ratio_median=("volume_ratio", "median")).round(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="segmentation.json written by the evaluation")
    parser.add_argument("cohort", type=Path, help="the cohort folder the evaluation scored (its truth.csv)")
    parser.add_argument("--by", required=True, help="a truth.csv column, e.g. bpe, bpe_level, site, density")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    per_case = pd.DataFrame(json.loads(args.evaluation.read_text(encoding="utf-8"))["per_case"])
    if "volume_ml" not in per_case:
        raise SystemExit(f"{args.evaluation} has no per-case volumes: re-run the evaluation with this version")
    truth = pd.read_csv(args.cohort / "truth.csv")
    log.info("%s by %s:\n%s", args.evaluation, args.by, by_truth(per_case, truth, args.by).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
