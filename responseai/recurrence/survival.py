"""Survival pieces of the recurrence model: outcome checks, Cox loss, Breslow baseline, RFS probabilities.

Why here and not in a library: the loss must be a differentiable torch function of the
network's log-risk, and the baseline hazard must travel in the model card (JSON) so that a
single patient's recurrence-free probability at 3 / 5 / 7 years can be computed anywhere
without the training data. Everything evaluative (C-index, td-AUC, Brier) is scikit-survival.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from responseai.errors import ResponseAIError


class SurvivalDataError(ResponseAIError):
    """Follow-up times or event flags that no survival model can learn from; the message says which."""


def check_outcomes(time: np.ndarray, event: np.ndarray, what: str = "cohort") -> tuple[np.ndarray, np.ndarray]:
    """Times finite and > 0, events exactly 0/1, at least one event; returns (float times, bool events)."""
    time, event = np.asarray(time, dtype=float), np.asarray(event)
    if time.shape != event.shape or time.ndim != 1 or len(time) == 0:
        raise SurvivalDataError(f"{what}: times {time.shape} and events {event.shape} must be equal-length 1-D arrays")
    bad = np.flatnonzero(~np.isfinite(time) | (time <= 0))
    if len(bad):
        raise SurvivalDataError(f"{what}: follow-up time must be > 0 (patient {bad[0]}: {time[bad[0]]}); "
                                f"{len(bad)} patient(s) affected")
    codes = np.asarray(event, dtype=float) if event.dtype != bool else event.astype(float)
    wrong = np.flatnonzero(~np.isin(codes, (0.0, 1.0)))
    if len(wrong):
        raise SurvivalDataError(f"{what}: event must be 0 (censored) or 1 (recurrence); patient {wrong[0]} has "
                                f"{event[wrong[0]]!r}")
    if not codes.any():
        raise SurvivalDataError(f"{what}: every patient is censored: no recurrence to learn a risk from")
    return time, codes.astype(bool)


def cox_loss(log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood, Breslow's handling of ties, averaged over events.

    Sorting by descending time makes each patient's risk set a prefix, so the log of the
    risk-set sum is a cumulative logsumexp; tied times share the sum of the *last* member of
    their tie group (everyone with time ≥ t), which is Breslow's approximation.
    """
    order = torch.argsort(time, descending=True)
    eta, t, d = log_risk[order], time[order], event[order].to(log_risk.dtype)
    cumulative = torch.logcumsumexp(eta, dim=0)
    # index of the last patient with the same time (descending order: the end of each tie block)
    _, inverse, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0) - 1
    risk_set = cumulative[last[inverse]]
    n_events = d.sum().clamp_min(1.0)
    return -((eta - risk_set) * d).sum() / n_events


def breslow_baseline(log_risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow cumulative baseline hazard H₀ at the distinct event times: (times, H₀)."""
    risk = np.exp(log_risk - log_risk.max())  # scaled for stability; undone below
    event_times = np.unique(time[event])
    increments = np.array([event[time == t].sum() / risk[time >= t].sum() for t in event_times])
    return event_times, np.cumsum(increments) * np.exp(-log_risk.max())


def survival_at(log_risk: np.ndarray, baseline_times: Sequence[float], baseline_hazard: Sequence[float],
                horizons: Sequence[float]) -> np.ndarray:
    """S(t | x) = exp(−H₀(t)·exp(η)) at each horizon, H₀ a step function (0 before the first event)."""
    times, hazard = np.asarray(baseline_times, float), np.asarray(baseline_hazard, float)
    index = np.searchsorted(times, np.asarray(horizons, float), side="right") - 1
    h0 = np.where(index >= 0, hazard[np.clip(index, 0, None)], 0.0)
    return np.exp(-np.outer(np.exp(np.asarray(log_risk, float)), h0))


def risk_group(log_risk: float, cut_points: Sequence[float], names: Sequence[str]) -> str:
    """The group of a score given increasing cut points (training tertiles)."""
    return names[int(np.searchsorted(np.asarray(cut_points, float), log_risk, side="right"))]
