"""Evaluation metrics with patient-level bootstrap confidence intervals.

Thin wrappers over scikit-learn (and lifelines for the C-index): the product adds the
bootstrap, the threshold bookkeeping and the calibration / decision-curve numbers a
clinician reads, never its own version of a textbook formula.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score, roc_curve

N_BOOTSTRAP = 1000


def youden_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Threshold maximising sensitivity + specificity − 1 (choose it on validation data only)."""
    fpr, tpr, thresholds = roc_curve(y_true, y_prob)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thresholds[best], 0.0, 1.0))


def sensitivity_specificity(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return float(sens), float(spec)


def auc_or_nan(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present (a small cohort or a bootstrap resample)."""
    return float(roc_auc_score(y_true, y_prob)) if len(np.unique(y_true)) == 2 else float("nan")


def auc_metric(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC as a :func:`responseai.metrics.bootstrap` metric."""
    return {"auc": auc_or_nan(y, p)}


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC and the threshold-dependent metrics of a binary classifier."""
    y_true, y_prob = np.asarray(y_true).astype(int), np.asarray(y_prob, float)
    y_pred = (y_prob >= threshold).astype(int)
    sens, spec = sensitivity_specificity(y_true, y_pred)
    both = len(np.unique(y_true)) == 2
    tp = int(((y_pred == 1) & (y_true == 1)).sum())
    return {
        "auc": auc_or_nan(y_true, y_prob),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if both else float("nan"),
        "precision": tp / max(int(y_pred.sum()), 1),
    }


def bootstrap(
    fn: Callable[..., dict[str, float]],
    arrays: tuple[np.ndarray, ...],
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, float]]:
    """Point estimate and percentile CI of every metric ``fn(*arrays)`` returns.

    Resamples cases (rows) with replacement; replicates in which a metric is undefined (a
    resample with a single class) are dropped for that metric, and their count is reported.
    """
    point = fn(*arrays)
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    samples: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for key, value in fn(*(a[idx] for a in arrays)).items():
            if np.isfinite(value):
                samples[key].append(value)
    out = {}
    for key, value in point.items():
        values = np.asarray(samples[key])
        low, high = (np.quantile(values, [alpha / 2, 1 - alpha / 2]) if len(values) else (np.nan, np.nan))
        out[key] = {"value": float(value), "ci_low": float(low), "ci_high": float(high), "n_boot": int(len(values))}
    return out


def binary_report(
    y_true: np.ndarray, y_prob: np.ndarray, threshold: float, n_boot: int = N_BOOTSTRAP, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Binary metrics at ``threshold`` plus ECE, each with a bootstrap 95 % CI."""
    y_true, y_prob = np.asarray(y_true).astype(int), np.asarray(y_prob, float)

    def metrics(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
        return {**binary_metrics(t, p, threshold), "ece": expected_calibration_error(t, p)}

    return bootstrap(metrics, (y_true, y_prob), n_boot, seed)


def reliability_curve(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Mean predicted probability, observed frequency and count per equal-width bin."""
    y_true, y_prob = np.asarray(y_true, float), np.asarray(y_prob, float)
    bins = np.clip((y_prob * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(bins, y_prob, n_bins) / count
        observed = np.bincount(bins, y_true, n_bins) / count
    return {"predicted": predicted, "observed": observed, "count": count}


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> float:
    """Count-weighted mean |observed − predicted| over probability bins."""
    curve = reliability_curve(y_true, y_prob, n_bins)
    filled = curve["count"] > 0
    weights = curve["count"][filled] / curve["count"].sum()
    return float(np.sum(weights * np.abs(curve["observed"][filled] - curve["predicted"][filled])))


def net_benefit(y_true: np.ndarray, y_prob: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Decision-curve net benefit of the model, treat-all and treat-none at each threshold."""
    y_true, y_prob = np.asarray(y_true).astype(int), np.asarray(y_prob, float)
    n, prevalence = len(y_true), y_true.mean()
    model, treat_all = [], []
    for t in thresholds:
        pred = y_prob >= t
        tp = np.sum(pred & (y_true == 1))
        fp = np.sum(pred & (y_true == 0))
        odds = t / (1 - t)
        model.append(tp / n - fp / n * odds)
        treat_all.append(prevalence - (1 - prevalence) * odds)
    return {"threshold": np.asarray(thresholds), "model": np.asarray(model),
            "treat_all": np.asarray(treat_all), "treat_none": np.zeros(len(thresholds))}


def concordance_index(time: np.ndarray, risk: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C-index where a higher risk means an earlier event (lifelines' convention inverted)."""
    from lifelines.utils import concordance_index as lifelines_cindex

    return float(lifelines_cindex(time, -np.asarray(risk, float), event))


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two binary masks (MONAI's ``compute_dice``; nan when both are empty)."""
    import torch
    from monai.metrics import compute_dice

    def batch(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((np.asarray(mask) > 0)[None, None].astype(np.float32))

    return float(compute_dice(batch(prediction), batch(truth), include_background=True)[0, 0])

