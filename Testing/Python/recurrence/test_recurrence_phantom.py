"""The phantom cohort: deterministic, documented missingness, censoring, and signal where the rule puts it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sksurv.metrics import concordance_index_censored

from responseai.recurrence.phantom import generate_case, generate_cohort, main


def test_cases_are_deterministic_per_seed_and_index():
    a, b = generate_case(4, 9), generate_case(4, 9)
    assert a.report == b.report and a.time == b.time and a.clinical == b.clinical
    assert (a.tiles is None and b.tiles is None) or np.array_equal(a.tiles, b.tiles)
    assert generate_case(5, 9).time != a.time


def test_cohort_has_censoring_missing_modalities_and_rule_signal():
    cases = generate_cohort(200, 0)
    time = np.array([c.time for c in cases])
    event = np.array([c.event for c in cases])
    assert (time > 0).all() and 0.3 < event.mean() < 0.7
    missing = {m: np.mean([getattr(c, a) is None for c in cases]) for m, a in
               (("pathology", "tiles"), ("ultrasound", "ultrasound"), ("report", "report"))}
    assert all(0.05 < rate < 0.3 for rate in missing.values())
    assert 0.25 < np.mean([any(getattr(c, a) is None for a in ("tiles", "ultrasound", "report")) for c in cases]) < 0.6
    eta = np.array([c.truth["eta"] for c in cases])
    assert concordance_index_censored(event, time, eta)[0] > 0.72  # the ceiling is well above chance
    # pathology texture: more nuclei (dark pixels) with higher z_path
    with_tiles = [c for c in cases if c.tiles is not None]
    dark = [(c.tiles.mean(-1) < 0.5).mean() for c in with_tiles]
    assert np.corrcoef(dark, [c.truth["z_path"] for c in with_tiles])[0, 1] > 0.6


def test_synth_writes_files_and_manifest(tmp_path):
    assert main(["--n", "4", "--seed", "2", "--out", str(tmp_path)]) == 0
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert list(manifest["case_id"]) == [f"R02-{i:04d}" for i in range(4)]
    assert {"time_years", "event", "eta", "pathology", "ultrasound", "report", "clinical"} <= set(manifest.columns)
    assert all((tmp_path / p).exists() for p in manifest["clinical"])
