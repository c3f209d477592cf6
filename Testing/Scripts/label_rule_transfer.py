"""How much pCR signal the images of one phantom cohort hold, and whether the main phantom's meaning of it carries over.

    PYTHONUTF8=1 .venv/bin/python Testing/Scripts/label_rule_transfer.py COHORT [COHORT …] [--external-only]

For each cohort folder (``manifest.csv`` + ``truth.csv`` of a generator that writes the latent
tumour features ``washout_fraction``, ``rim``, ``heterogeneity`` and ``peritumoural``: the main
phantom and the independent variant; the alt phantom models them otherwise) it prints the AUC, with a bootstrap 95 % CI, of

- the cohort's own noiseless image part (``image_logit``): what a perfect image-only model could
  reach on *these* exams, which a draw of 60 patients may put well below the generator's
  population ceiling;
- the main phantom's image rule (``responseai.breast.phantom.IMAGE_COEF``) applied to the cohort's
  true latent features: what a perfect model of the generator the pCR model was trained on would
  score there. Where the two differ, the generators give a feature different meanings and no
  image model trained on one can be expected to transfer.

A research measurement for docs/pcr.md; it reads only the generators' truth, never a model.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from responseai.breast.pcr.evaluation import sample_ceilings
from responseai.breast.phantom import IMAGE_COEF
from responseai.metrics import auc_metric, bootstrap

log = logging.getLogger("label_rule_transfer")


def cohort_table(folder: Path, external_only: bool) -> pd.DataFrame:
    """Manifest rows (pCR labels) joined to their truth rows, optionally the external site only."""
    manifest = pd.read_csv(folder / "manifest.csv")
    truth = pd.read_csv(folder / "truth.csv")  # its columns the manifest also has (site, pcr) are the manifest's
    truth = truth.drop(columns=[c for c in truth.columns if c in manifest.columns and c != "patient_id"])
    missing = sorted(set(IMAGE_COEF) - set(truth.columns))
    if missing:
        raise SystemExit(f"{folder / 'truth.csv'} has no latent {', '.join(missing)}: "
                         "this generator does not model the main phantom's image features")
    table = manifest.merge(truth, on="patient_id")
    return table[table["external"] == 1] if external_only else table


def transfer(table: pd.DataFrame, n_boot: int, seed: int) -> dict[str, dict]:
    """AUC (and CI) of the cohort's own image part and of the main phantom's image rule on its latents."""
    y = table["pcr"].to_numpy(int)
    own = sample_ceilings(table, table["patient_id"], y, n_boot, seed)  # the evaluation's own ceilings
    main_rule = sum(coef * table[name].to_numpy(float) for name, coef in IMAGE_COEF.items())
    transferred = {"main phantom's image rule on these latents": bootstrap(auc_metric, (y, main_rule), n_boot, seed)["auc"]}
    return ({"own image part (the set's image-only ceiling)": own["image part"]} if "image part" in own else {}) | transferred


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohorts", nargs="+", type=Path)
    parser.add_argument("--external-only", action="store_true", help="score the external site's rows only")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for folder in args.cohorts:
        table = cohort_table(folder, args.external_only)
        for name, auc in transfer(table, args.n_boot, 0).items():
            log.info("%s (n = %d, %d pCR): %s %.3f [%.3f, %.3f]", folder.name, len(table), int(table["pcr"].sum()),
                     name, auc["value"], auc["ci_low"], auc["ci_high"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
