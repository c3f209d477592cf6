"""Measure the planted shortcut: how well a feature taken *outside* the tumour predicts pCR.

If this feature predicts pCR on training sites and not on the external site, the shortcut is
real, and a model that ignores the tumour can look good in-domain and fail externally.

The feature is the peak smoothed enhancement (post1 − pre) in the body, outside the tumour and
a margin around it. In a bilateral exam (phantom v2) the heart, great vessels, internal mammary
vessels, axillary nodes and a benign lesion enhance too; when the cohort has an ``anatomy``
label map (an evaluation-only file) those structures and the lungs are left out, and the
enhancement is expressed as a fraction of the blood-pool enhancement (heart and great vessels),
which removes the site's gain and coil profile. Without a label map (phantom v1) the v1 feature
is used: enhancement relative to the median pre-contrast body signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from responseai.io import read_image

# anatomy labels left out of the search (phantom v2): heart, great vessels, internal mammary /
# lateral thoracic vessels, axillary nodes, benign lesion, lungs
DISTRACTOR_LABELS = (3, 4, 5, 6, 7, 8)
BLOOD_LABELS = (3, 4)
SMOOTHING_MM = 4.0
TUMOUR_MARGIN_MM = 8.0


def _has_anatomy(row: pd.Series) -> bool:
    value = row.get("anatomy") if hasattr(row, "get") else None
    return isinstance(value, str) and bool(value)


def outside_tumour_enhancement(cohort: Path, row: pd.Series) -> float:
    """Peak smoothed enhancement in the body, excluding the tumour (with a margin) and, when known, the distractors."""
    pre_image = read_image(cohort / row["pre"])
    pre = pre_image.array.astype(np.float32)
    post = read_image(cohort / row["post1"]).array.astype(np.float32)
    mask = read_image(cohort / row["mask"]).array > 0
    spacing_zyx = np.asarray(pre_image.spacing[::-1])
    if not _has_anatomy(row):  # phantom v1: relative to the pre-contrast body signal, 5-voxel margin
        body = pre > 0.5 * np.median(pre[pre > 30])
        relative = ndimage.gaussian_filter((post - pre) / np.median(pre[body]), 3)
        outside = body & ~ndimage.binary_dilation(mask, iterations=5)
        return float(relative[outside].max())
    anatomy = read_image(cohort / row["anatomy"]).array
    difference = post - pre
    reference = float(np.percentile(difference[np.isin(anatomy, BLOOD_LABELS)], 90)) if np.isin(anatomy, BLOOD_LABELS).any() else 0.0
    if reference <= 0:
        reference = float(np.percentile(difference, 99.9)) or 1.0
    near_tumour = _dilate_mm(mask, TUMOUR_MARGIN_MM / spacing_zyx)
    distractors = _dilate_mm(np.isin(anatomy, DISTRACTOR_LABELS), 3.0 / spacing_zyx)
    outside = (anatomy > 0) & ~near_tumour & ~distractors
    # zero what is left out *before* smoothing, so the blood pool's enhancement cannot spill over
    smooth = ndimage.gaussian_filter(np.where(outside, difference, 0), SMOOTHING_MM / spacing_zyx) / reference
    return float(smooth[outside].max()) if outside.any() else 0.0


def _dilate_mm(mask: np.ndarray, radius_vox: np.ndarray) -> np.ndarray:
    """Dilate by about ``radius_vox`` voxels along each axis (the same millimetres on an anisotropic grid)."""
    out = mask
    for axis, steps in enumerate(np.maximum(1, np.round(radius_vox)).astype(int)):
        line = np.zeros((3, 3, 3), bool)
        index = [1, 1, 1]
        for offset in (0, 1, 2):
            index[axis] = offset
            line[tuple(index)] = True
        out = ndimage.binary_dilation(out, line, iterations=int(steps))
    return out


def shortcut_auc(cohort: Path, manifest: pd.DataFrame) -> dict[str, float]:
    """AUC of a logistic regression on the outside-tumour feature (5-fold CV in-domain; fit → external)."""
    feature = np.array([[outside_tumour_enhancement(cohort, row)] for _, row in manifest.iterrows()])
    train = (manifest["external"] == 0).to_numpy()
    y = manifest["pcr"].to_numpy()
    classifier = LogisticRegression()
    in_domain = cross_val_predict(classifier, feature[train], y[train], cv=5, method="predict_proba")[:, 1]
    external = classifier.fit(feature[train], y[train]).predict_proba(feature[~train])[:, 1]
    return {"training_sites_auc": float(roc_auc_score(y[train], in_domain)),
            "external_site_auc": float(roc_auc_score(y[~train], external)),
            "n_training": int(train.sum()), "n_external": int((~train).sum())}
