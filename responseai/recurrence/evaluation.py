"""Phantom evaluation of the recurrence fusion: modalities, missing pathology, td-AUC, Brier, KM groups.

    responseai evaluate recurrence phantom --out DIR [--train 500 0] [--test 400 1] [--epochs 20]

Trains on one phantom cohort (seed 0) and tests on an independent one (seed 1):

- the full model (compensation + modality dropout) against each single-modality model (same
  network, one block; trained and tested on the patients who have that block; paired bootstrap
  CI of the difference on those patients), and the noiseless-η ceiling;
- pathology removed *at test time* from every test patient: the compensated model against the
  same network trained without compensation (missing blocks only masked, no dropout), with a
  paired bootstrap CI of the difference of the C-index each one loses;
- Harrell and Uno C, time-dependent AUC at 3 / 5 / 7 years and the integrated Brier score
  (scikit-survival), Kaplan–Meier curves of the training-tertile risk groups with the
  multivariate log-rank p (lifelines), saved as ``km_risk_groups.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc, integrated_brier_score
from sksurv.util import Surv

from responseai.outputs import json_safe
from responseai.recurrence.constants import HORIZONS_YEARS, RISK_GROUPS
from responseai.recurrence.crossval import bootstrap_ci, harrell, paired_bootstrap
from responseai.recurrence.fit import CohortArrays, FitConfig, fit_network, predict_risk
from responseai.recurrence.survival import breslow_baseline, survival_at

log = logging.getLogger(__name__)


def survival_metrics(train: CohortArrays, test: CohortArrays, train_risk: np.ndarray, test_risk: np.ndarray,
                     baseline_times: np.ndarray, baseline_hazard: np.ndarray,
                     horizons: Sequence[float] = HORIZONS_YEARS) -> dict:
    """Harrell (with a patient-bootstrap 95 % CI) / Uno C, td-AUC at the horizons the test follow-up covers,
    IBS over its 10–90 % time range."""
    y_train = Surv.from_arrays(train.event, train.time)
    y_test = Surv.from_arrays(test.event, test.time)
    limit = min(train.time.max(), test.time[test.event].max())
    usable = [h for h in horizons if test.time.min() < h < limit]
    auc, _ = cumulative_dynamic_auc(y_train, y_test, test_risk, usable) if usable else ([], None)
    grid = np.linspace(*np.percentile(test.time, [10, 90]), 50)
    grid = grid[grid < limit]
    ibs = integrated_brier_score(y_train, y_test, survival_at(test_risk, baseline_times, baseline_hazard, grid), grid)
    return {"harrell_c": float(concordance_index_censored(test.event, test.time, test_risk)[0]),
            "harrell_c_ci95": list(bootstrap_ci(test.time, test.event, test_risk)),
            "uno_c": float(concordance_index_ipcw(y_train, y_test, test_risk, tau=limit)[0]),
            "td_auc": {f"{h:g}y": float(a) for h, a in zip(usable, auc)},
            "integrated_brier_score": float(ibs), "n": int(len(test)), "n_events": int(test.event.sum())}


def km_plot(time: np.ndarray, event: np.ndarray, groups: np.ndarray, path: Path, title: str) -> float:
    """Kaplan–Meier curves per risk group with the multivariate log-rank p (returned) → PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    p_value = float(multivariate_logrank_test(time, groups, event).p_value)
    figure, axes = plt.subplots(figsize=(6, 4.2))
    for name, colour in zip(RISK_GROUPS, ("#2a9d8f", "#e9c46a", "#e76f51")):
        rows = groups == name
        if rows.any():
            KaplanMeierFitter().fit(time[rows], event[rows], label=f"{name} (n={rows.sum()})").plot_survival_function(
                ax=axes, color=colour, ci_show=True)
    axes.set(xlabel="years", ylabel="recurrence-free probability", ylim=(0, 1.02),
             title=f"{title}\nlog-rank p = {p_value:.2g}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return p_value


def only(data: CohortArrays, modality: str) -> CohortArrays:
    """Patients who have ``modality``, with every other block hidden (single-modality model)."""
    column = data.names.index(modality)
    rows = np.flatnonzero(data.present[:, column])
    subset = data.subset(rows)
    subset.present[:] = False
    subset.present[:, column] = True
    return subset


def _fit(train: CohortArrays, specs: dict, config: FitConfig):
    model, _ = fit_network(train, specs, config)
    risk = predict_risk(model, train)[0]
    return model, risk, *breslow_baseline(risk, train.time, train.event)


def _loss_difference(test: CohortArrays, compensated: tuple, uncompensated: tuple) -> dict:
    """(C lost by the compensated model) − (C lost by the uncompensated one) when a block is removed, paired CI.

    Negative: compensation loses less. Both losses are measured on the same bootstrap patients.
    """
    def statistic(rows: np.ndarray) -> float:
        t, e = test.time[rows], test.event[rows]
        lost = [harrell(t, e, full[rows]) - harrell(t, e, removed[rows]) for full, removed in (compensated, uncompensated)]
        return lost[0] - lost[1]

    every = np.arange(len(test))
    return {"value": statistic(every), "ci95": list(paired_bootstrap(test.time, test.event, statistic)),
            "meaning": "C lost by the compensated model minus C lost by the uncompensated one (negative: compensation loses less)"}


def evaluate_phantom(train: CohortArrays, test: CohortArrays, specs: dict, config: FitConfig, out: Path,
                     ceiling: float) -> dict:
    """Every comparison of the module docstring; writes ``phantom_evaluation.json`` and the KM PNG."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": config.__dict__, "ceiling_harrell_c_true_eta": ceiling,
                     "train": {"n": len(train), "events": int(train.event.sum()),
                               "missing": dict(zip(train.names, (~train.present).mean(0).round(3).tolist()))},
                     "test": {"n": len(test), "events": int(test.event.sum()),
                              "missing": dict(zip(test.names, (~test.present).mean(0).round(3).tolist()))}}
    full, full_train_risk, times, hazard = _fit(train, specs, config)
    test_risk, weights = predict_risk(full, test)
    results["full_compensated"] = survival_metrics(train, test, full_train_risk, test_risk, times, hazard)
    results["full_compensated"]["mean_modality_weights"] = dict(zip(test.names, weights.mean(0).round(3).tolist()))
    cuts = np.quantile(full_train_risk, [1 / 3, 2 / 3])
    groups = np.array(RISK_GROUPS)[np.searchsorted(cuts, test_risk, side="right")]
    results["km_logrank_p"] = km_plot(test.time, test.event, groups, out / "km_risk_groups.png",
                                      "Phantom test cohort: full model, training tertiles")
    plain = replace(config, compensation=False, modality_dropout=0.0)
    uncompensated, un_train_risk, un_times, un_hazard = _fit(train, specs, plain)
    results["full_uncompensated"] = survival_metrics(train, test, un_train_risk, predict_risk(uncompensated, test)[0],
                                                     un_times, un_hazard)
    no_path = test.without("pathology")
    results["pathology_removed_at_test"] = {
        "compensated": survival_metrics(train, no_path, full_train_risk, predict_risk(full, no_path)[0], times, hazard),
        "uncompensated": survival_metrics(train, no_path, un_train_risk, predict_risk(uncompensated, no_path)[0],
                                          un_times, un_hazard)}
    results["pathology_removed_at_test"]["loss_difference"] = _loss_difference(
        test, (test_risk, predict_risk(full, no_path)[0]),
        (predict_risk(uncompensated, test)[0], predict_risk(uncompensated, no_path)[0]))
    results["single_modality"] = {}
    for modality in test.names:
        single_train, single_test = only(train, modality), only(test, modality)
        model, risk, s_times, s_hazard = _fit(single_train, specs, replace(config, modality_dropout=0.0))
        results["single_modality"][modality] = survival_metrics(single_train, single_test, risk,
                                                                predict_risk(model, single_test)[0], s_times, s_hazard)
        has = test.present[:, test.names.index(modality)]
        single_risk = predict_risk(model, single_test)[0]
        t, e, full_risk = test.time[has], test.event[has], test_risk[has]
        results["single_modality"][modality]["full_model_same_patients_harrell_c"] = harrell(t, e, full_risk)
        results["single_modality"][modality]["full_minus_single"] = {
            "value": harrell(t, e, full_risk) - harrell(t, e, single_risk),
            "ci95": list(paired_bootstrap(t, e, lambda r: harrell(t[r], e[r], full_risk[r]) - harrell(t[r], e[r], single_risk[r])))}
        log.info("single modality %s: %.3f", modality, results["single_modality"][modality]["harrell_c"])
    (out / "phantom_evaluation.json").write_text(json.dumps(json_safe(results), indent=2) + "\n", encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    from responseai.recurrence.phantom import N_TILES, generate_cohort
    from responseai.recurrence.preprocess import block_specs, fit_clinical_encoder, prepare_arrays
    from responseai.recurrence.text import EMBEDDING_DIM, embed_reports

    parser = argparse.ArgumentParser(prog="responseai evaluate recurrence phantom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--train", type=int, nargs=2, default=(500, 0), metavar=("N", "SEED"))
    parser.add_argument("--test", type=int, nargs=2, default=(400, 1), metavar=("N", "SEED"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    train_cases, test_cases = generate_cohort(*args.train), generate_cohort(*args.test)
    encoder = fit_clinical_encoder([c.clinical for c in train_cases])

    def arrays(cases):
        return prepare_arrays(cases, encoder, N_TILES, embed_reports, np.array([c.time for c in cases]),
                              np.array([c.event for c in cases]), [c.case_id for c in cases])

    train, test = arrays(train_cases), arrays(test_cases)
    eta = np.array([c.truth["eta"] for c in test_cases])
    ceiling = float(concordance_index_censored(test.event, test.time, eta)[0])
    results = evaluate_phantom(train, test, block_specs(encoder, EMBEDDING_DIM), FitConfig(epochs=args.epochs),
                               args.out, ceiling)
    log.info("full %.3f (ceiling %.3f); without pathology: compensated %.3f, uncompensated %.3f",
             results["full_compensated"]["harrell_c"], ceiling,
             results["pathology_removed_at_test"]["compensated"]["harrell_c"],
             results["pathology_removed_at_test"]["uncompensated"]["harrell_c"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
