"""Cross-validated recurrence-free survival on the real GBSG2 cohort (686 patients, clinical only).

    responseai evaluate recurrence gbsg2 --out DIR [--repeats 2] [--folds 5] [--epochs 20] [--seed 0]

The fusion network's clinical branch (one token per variable, query attention, Cox head)
against lifelines CoxPH and a scikit-survival random survival forest, in the same folds, on
the same encoded variables: age, tumour size, log(1 + positive nodes), log(1 + oestrogen /
progesterone receptor fmol), grade, menopausal status, hormone therapy.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from responseai.recurrence.crossval import RealCohort, baseline_methods, cross_validate, network_method, write_results
from responseai.recurrence.fit import FitConfig

log = logging.getLogger(__name__)


def load_gbsg2() -> RealCohort:
    """``sksurv.datasets.load_gbsg2`` with the skewed counts log-transformed; time in days."""
    from sksurv.datasets import load_gbsg2 as load

    frame, outcome = load()
    frame = frame.copy()
    for column in ("pnodes", "estrec", "progrec"):
        frame[column] = np.log1p(frame[column].astype(float))
    return RealCohort("gbsg2", {"clinical": frame}, outcome["time"].astype(float), outcome["cens"].astype(bool), "days")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="responseai evaluate recurrence gbsg2",
                                                   description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = FitConfig(epochs=args.epochs, modality_dropout=0.0)
    methods = {"fusion network (clinical tokens)": (["clinical"], network_method(config)),
               **{name: (["clinical"], method) for name, method in baseline_methods().items()}}
    network = next(iter(methods))
    results = cross_validate(load_gbsg2(), methods, args.repeats, args.folds, args.seed,
                             [(network, baseline) for baseline in baseline_methods()])
    results["network_config"] = config.__dict__
    log.info("wrote %s", write_results(results, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
