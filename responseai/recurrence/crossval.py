"""Repeated k-fold cross-validation of the fusion network against CoxPH and a random survival forest.

The real cohorts (GBSG2, GSE7390) are small, so every method sees *the same* folds (stratified
on the event, fixed seeds) and every preprocessing step is fitted on the training folds only.
Harrell's C per fold gives mean ± sd; the 95 % CI is a patient-level bootstrap of the pooled
out-of-fold scores, each fold's scores first turned into within-fold ranks (scores from
different folds' models are not on one scale).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.model_selection import RepeatedStratifiedKFold
from sksurv.metrics import concordance_index_censored

from responseai.outputs import json_safe
from responseai.recurrence.fit import CohortArrays, FitConfig, fit_network, predict_risk

log = logging.getLogger(__name__)

N_BOOTSTRAP = 1000


@dataclass
class TableEncoding:
    """Fitted on the training folds: z-scores for numeric columns, levels for categorical ones."""

    numeric: dict[str, tuple[float, float]]
    categorical: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "TableEncoding":
        numeric, categorical = {}, {}
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype) or frame[column].dtype == object:
                categorical[column] = sorted(map(str, frame[column].dropna().unique()))
            else:
                values = frame[column].astype(float)
                numeric[column] = (float(values.mean()), float(values.std()) or 1.0)
        return cls(numeric, categorical)

    def groups(self) -> list[int]:
        """Columns per variable token: 1 per numeric variable, one-hot width per categorical one."""
        return [1] * len(self.numeric) + [len(levels) for levels in self.categorical.values()]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [((frame[c].astype(float).to_numpy() - m) / s)[:, None] for c, (m, s) in self.numeric.items()]
        parts += [(frame[c].astype(str).to_numpy()[:, None] == np.array(levels)[None]).astype(float)
                  for c, levels in self.categorical.items()]
        return np.clip(np.concatenate(parts, 1), -5, 5).astype(np.float32)

    def design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Full-rank design for CoxPH: z-scores + one-hot without each variable's first level."""
        x = self.transform(frame)
        names = list(self.numeric)
        keep = list(range(len(names)))
        start = len(names)
        for column, levels in self.categorical.items():
            keep += list(range(start + 1, start + len(levels)))
            names += [f"{column}={level}" for level in levels[1:]]
            start += len(levels)
        return pd.DataFrame(x[:, keep], columns=names, index=frame.index)


@dataclass
class RealCohort:
    """A real cohort's raw tables: ``blocks`` maps a modality (``clinical``, ``molecular``) to its columns."""

    name: str
    blocks: dict[str, pd.DataFrame]
    time: np.ndarray
    event: np.ndarray
    time_unit: str


def encode_fold(cohort: RealCohort, train: np.ndarray, test: np.ndarray,
                modalities: Sequence[str]) -> tuple[CohortArrays, CohortArrays, dict, pd.DataFrame, pd.DataFrame]:
    """(train arrays, test arrays, block specs, CoxPH design train, design test), fitted on ``train``."""
    blocks_train, blocks_test, specs, designs_train, designs_test = {}, {}, {}, [], []
    for name in modalities:
        encoding = TableEncoding.fit(cohort.blocks[name].iloc[train])
        blocks_train[name] = encoding.transform(cohort.blocks[name].iloc[train])
        blocks_test[name] = encoding.transform(cohort.blocks[name].iloc[test])
        specs[name] = {"kind": "grouped", "groups": encoding.groups()}
        designs_train.append(encoding.design(cohort.blocks[name].iloc[train]))
        designs_test.append(encoding.design(cohort.blocks[name].iloc[test]))

    def arrays(blocks, rows):
        present = np.ones((len(rows), len(modalities)), bool)
        return CohortArrays(list(modalities), blocks, present, cohort.time[rows], cohort.event[rows])

    return (arrays(blocks_train, train), arrays(blocks_test, test), specs,
            pd.concat(designs_train, axis=1), pd.concat(designs_test, axis=1))


def coxph_risk(design_train: pd.DataFrame, time: np.ndarray, event: np.ndarray, design_test: pd.DataFrame,
               penalizer: float = 0.01) -> np.ndarray:
    """lifelines CoxPH (small ridge penalty so one-hot designs and 76 genes stay estimable) → log partial hazard."""
    from lifelines import CoxPHFitter

    frame = design_train.assign(_time=time, _event=event.astype(int))
    fitter = CoxPHFitter(penalizer=penalizer).fit(frame, "_time", "_event")
    return np.asarray(fitter.predict_log_partial_hazard(design_test), float)


def rsf_risk(design_train: pd.DataFrame, time: np.ndarray, event: np.ndarray, design_test: pd.DataFrame,
             seed: int) -> np.ndarray:
    """scikit-survival random survival forest (200 trees, min 15 per leaf) → predicted risk."""
    from sksurv.ensemble import RandomSurvivalForest
    from sksurv.util import Surv

    forest = RandomSurvivalForest(n_estimators=200, min_samples_leaf=15, max_features="sqrt", n_jobs=1,
                                  random_state=seed)
    forest.fit(design_train.to_numpy(), Surv.from_arrays(event.astype(bool), time))
    return forest.predict(design_test.to_numpy())


def harrell(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    return float(concordance_index_censored(event.astype(bool), time, risk)[0])


def bootstrap_ci(time: np.ndarray, event: np.ndarray, score: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of Harrell's C over patient-level bootstrap resamples."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(N_BOOTSTRAP):
        rows = rng.integers(0, len(time), len(time))
        if event[rows].any():
            values.append(harrell(time[rows], event[rows], score[rows]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(time: np.ndarray, event: np.ndarray, statistic: Callable[[np.ndarray], float],
                     seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of ``statistic(rows)`` (e.g. a difference of two C-indices on the same patients)."""
    rng = np.random.default_rng(seed)
    values = [statistic(rows) for rows in (rng.integers(0, len(time), len(time)) for _ in range(N_BOOTSTRAP))
              if event[rows].any()]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


Method = Callable[[CohortArrays, CohortArrays, dict, pd.DataFrame, pd.DataFrame, int], np.ndarray]


def network_method(config: FitConfig, test_without: str | None = None) -> Method:
    """A fold method that trains the fusion network (optionally scored with a block removed at test time)."""

    def run(train: CohortArrays, test: CohortArrays, specs: dict, _dt, _ds, seed: int) -> np.ndarray:
        from dataclasses import replace

        model, _ = fit_network(train, specs, replace(config, seed=seed))
        return predict_risk(model, test.without(test_without) if test_without else test)[0]

    return run


def baseline_methods() -> dict[str, Method]:
    """CoxPH and RSF on the same fold's design matrix."""
    return {
        "CoxPH (lifelines)": lambda tr, te, _s, dt, ds, seed: coxph_risk(dt, tr.time, tr.event, ds),
        "RSF (scikit-survival)": lambda tr, te, _s, dt, ds, seed: rsf_risk(dt, tr.time, tr.event, ds, seed),
    }


def cross_validate(cohort: RealCohort, methods: Mapping[str, tuple[Sequence[str], Method]], repeats: int,
                   folds: int, seed: int, comparisons: Sequence[tuple[str, str]] = ()) -> dict:
    """Each method (its modalities, its fit-and-score function) on the same repeated stratified folds.

    ``comparisons`` (a, b): the per-fold paired difference C(a) − C(b), mean ± sd and how many folds a wins.
    """
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    per_fold: dict[str, list[float]] = {name: [] for name in methods}
    pooled = {name: np.zeros((repeats, len(cohort.time))) for name in methods}
    for index, (train, test) in enumerate(splitter.split(np.zeros(len(cohort.time)), cohort.event)):
        repeat = index // folds
        encoded = {}
        for name, (modalities, method) in methods.items():
            key = tuple(modalities)
            if key not in encoded:
                encoded[key] = encode_fold(cohort, train, test, modalities)
            risk = method(*encoded[key], seed + index)
            per_fold[name].append(harrell(cohort.time[test], cohort.event[test], risk))
            pooled[name][repeat, test] = rankdata(risk) / len(test)
        log.info("fold %d/%d: %s", index + 1, repeats * folds,
                 ", ".join(f"{n} {v[-1]:.3f}" for n, v in per_fold.items()))
    results = {}
    for name, values in per_fold.items():
        score = pooled[name].mean(0)
        low, high = bootstrap_ci(cohort.time, cohort.event, score, seed)
        results[name] = {"harrell_c_mean": float(np.mean(values)), "harrell_c_sd": float(np.std(values, ddof=1)),
                         "pooled_oof_c": harrell(cohort.time, cohort.event, score), "pooled_ci95": [low, high],
                         "per_fold": values}
    paired = {}
    for a, b in comparisons:
        difference = np.array(per_fold[a]) - np.array(per_fold[b])
        paired[f"{a} − {b}"] = {"mean": float(difference.mean()), "sd": float(difference.std(ddof=1)),
                                "folds_a_better": int((difference > 0).sum()), "folds": int(len(difference))}
    return {"cohort": cohort.name, "n_patients": int(len(cohort.time)), "n_events": int(cohort.event.sum()),
            "repeats": repeats, "folds": folds, "seed": seed, "methods": results, "paired_differences": paired}


def write_results(results: dict, out: Path) -> Path:
    """``<out>/<cohort>_cv.json`` plus a log line per method."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results['cohort']}_cv.json"
    path.write_text(json.dumps(json_safe(results), indent=2) + "\n", encoding="utf-8")
    for name, r in results["methods"].items():
        log.info("%-40s Harrell C %.3f ± %.3f (pooled %.3f, 95%% CI %.3f–%.3f)", name, r["harrell_c_mean"],
                 r["harrell_c_sd"], r["pooled_oof_c"], *r["pooled_ci95"])
    for name, d in results.get("paired_differences", {}).items():
        log.info("%s: %+.3f ± %.3f per fold (first better in %d/%d folds)", name, d["mean"], d["sd"],
                 d["folds_a_better"], d["folds"])
    return path
