"""Cross-validation on a slice of the real GBSG2 cohort: same folds for every method, fold-fitted encodings."""

from __future__ import annotations

import json

import numpy as np
import torch

from responseai.recurrence.crossval import RealCohort, TableEncoding, baseline_methods, cross_validate, network_method, write_results
from responseai.recurrence.fit import FitConfig
from responseai.recurrence.gbsg2 import load_gbsg2


def test_encoding_is_fitted_on_the_training_rows_and_groups_one_token_per_variable():
    cohort = load_gbsg2()
    frame = cohort.blocks["clinical"]
    encoding = TableEncoding.fit(frame.iloc[:100])
    x = encoding.transform(frame)
    assert x.shape == (686, sum(encoding.groups())) and len(encoding.groups()) == frame.shape[1]
    assert np.allclose(x[:100, 0].mean(), 0, atol=1e-5)  # z-scored on the 100 fitting rows only
    assert list(encoding.design(frame).columns[-3:]) == ["menostat=Pre", "tgrade=II", "tgrade=III"]


def test_methods_share_folds_and_results_are_written(tmp_path):
    torch.set_num_threads(1)
    full = load_gbsg2()
    rows = np.arange(160)
    cohort = RealCohort("gbsg2-slice", {"clinical": full.blocks["clinical"].iloc[rows]}, full.time[rows],
                        full.event[rows], "days")
    methods = {"net": (["clinical"], network_method(FitConfig(epochs=2, d_model=8, n_heads=2, modality_dropout=0))),
               **{name: (["clinical"], method) for name, method in baseline_methods().items()}}
    results = cross_validate(cohort, methods, repeats=1, folds=2, seed=0, comparisons=[("net", "CoxPH (lifelines)")])
    assert set(results["methods"]) == set(methods) and results["n_patients"] == 160
    assert all(len(r["per_fold"]) == 2 and 0 <= r["pooled_ci95"][0] <= r["pooled_ci95"][1] <= 1
               for r in results["methods"].values())
    assert results["paired_differences"]["net − CoxPH (lifelines)"]["folds"] == 2
    path = write_results(results, tmp_path)
    assert json.loads(path.read_text(encoding="utf-8"))["cohort"] == "gbsg2-slice"
