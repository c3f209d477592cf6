"""Measure the planted shortcut: how well a feature taken *outside* the tumour predicts pCR.

If this feature predicts pCR on training sites and not on the external site, the shortcut is
real, and a model that ignores the tumour can look good in-domain and fail externally.
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


def outside_tumour_enhancement(cohort: Path, row: pd.Series) -> float:
    """Peak smoothed relative enhancement in the body, excluding the tumour and a 5-voxel margin."""
    pre = read_image(cohort / row["pre"]).array.astype(float)
    post = read_image(cohort / row["post1"]).array.astype(float)
    mask = read_image(cohort / row["mask"]).array > 0
    body = pre > 0.5 * np.median(pre[pre > 30])
    relative = ndimage.gaussian_filter((post - pre) / np.median(pre[body]), 3)
    outside = body & ~ndimage.binary_dilation(mask, iterations=5)
    return float(relative[outside].max())


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
