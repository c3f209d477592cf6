"""Cox loss with Breslow ties, Breslow baseline, RFS probabilities and the outcome checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from responseai.recurrence.survival import (
    SurvivalDataError, breslow_baseline, check_outcomes, cox_loss, risk_group, survival_at,
)


def test_cox_loss_is_the_breslow_partial_likelihood_with_ties():
    eta = np.array([0.3, -0.2, 1.1, 0.0, 0.5])
    time = np.array([2.0, 2.0, 1.0, 3.0, 2.0])
    event = np.array([1, 1, 0, 1, 0], bool)
    expected = -sum(eta[i] - np.log(np.exp(eta[time >= time[i]]).sum()) for i in np.flatnonzero(event)) / event.sum()
    loss = cox_loss(torch.tensor(eta), torch.tensor(time), torch.tensor(event))
    assert float(loss) == pytest.approx(expected, rel=1e-9)


def test_breslow_baseline_matches_lifelines_and_gives_rfs():
    from lifelines import CoxPHFitter
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    time = np.round(rng.exponential(1 / np.exp(0.8 * x)) * 10, 1) + 0.1
    event = rng.random(200) < 0.7
    fitter = CoxPHFitter().fit(pd.DataFrame({"x": x, "t": time, "e": event}), "t", "e")
    eta = fitter.params_["x"] * (x - x.mean())  # lifelines centres covariates
    times, hazard = breslow_baseline(eta, time, event)
    reference = fitter.baseline_cumulative_hazard_["baseline cumulative hazard"]
    assert np.allclose(hazard, reference.loc[times].to_numpy(), rtol=1e-6)
    s = survival_at(np.array([0.0, 1.0]), times, hazard, [0.01, 5.0, 1e6])
    assert s[0, 0] == 1.0 and np.all(np.diff(s[0]) <= 0) and s[1, 1] < s[0, 1]
    assert risk_group(0.5, [0.0, 1.0], ("low", "intermediate", "high")) == "intermediate"


@pytest.mark.parametrize("time, event, message", [
    ([1.0, -2.0, 3.0], [1, 0, 1], "must be > 0"),
    ([1.0, 0.0, 3.0], [1, 0, 1], "must be > 0"),
    ([1.0, 2.0, 3.0], [1, 2, 0], "0 \\(censored\\) or 1"),
    ([1.0, 2.0, 3.0], [0, 0, 0], "every patient is censored"),
    ([1.0, np.nan], [1, 0], "must be > 0"),
])
def test_bad_outcomes_are_refused_by_name(time, event, message):
    with pytest.raises(SurvivalDataError, match=message):
        check_outcomes(np.array(time), np.array(event))
