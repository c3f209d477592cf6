"""Hand-made kinetic features of the tumour on the pCR crop: the image-only reference a deep model must beat.

A radiologist's reading of a DCE lesion in numbers: washout, enhancement heterogeneity, rim versus
core, and enhancement in a shell just outside the tumour. Not the initial enhancement level (dropped in
pCR 1.5): the training phantom's tumours enhance ~75 % early, every other generator's and most real
cancers' well over 100 %, so on most realistic exams that feature lay beyond 4 SD of its training range
and the model extrapolated (docs/pcr-evaluation/no-initial-enhancement/RULE.md). Computed on
the same canonical crop the network sees (channels pre, post1, post2, post1 − pre, all in the
exam's intensity unit), so the comparison is about the model, not the preprocessing.

The feature names are stored in each model card; a model trained on another definition is refused
at load time (:func:`check_feature_definition`) instead of being fed numbers it never saw.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from responseai.errors import WeightsError

FEATURES = ("washout", "washout_fraction", "heterogeneity", "rim_to_core",
            "peritumoural_enhancement")
EPS = 1e-3


def kinetic_features(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One row of :data:`FEATURES` for a C×Z×Y×X crop and its tumour mask."""
    pre, post1, post2 = image[0], image[1], image[2]
    tumour = mask > 0
    early = post1 - pre
    late_change = (post2 - post1) / np.maximum(early, EPS)
    core = ndimage.binary_erosion(tumour, iterations=2)
    rim = tumour & ~core
    shell = ndimage.binary_dilation(tumour, iterations=3) & ~tumour
    core_mean = float(early[core].mean()) if core.any() else float(early[tumour].mean())
    return np.array([
        float(np.median(late_change[tumour])),
        float((late_change[tumour] < -0.1).mean()),
        float(early[tumour].std() / (abs(early[tumour].mean()) + EPS)),
        float(early[rim].mean() / (abs(core_mean) + EPS)) if rim.any() else 1.0,
        float(early[shell].mean()) if shell.any() else 0.0,
    ], np.float32)


def check_feature_definition(card: dict) -> None:
    """Refuse a model whose kinetic-feature term was trained on another feature definition."""
    if not card["architecture"].get("radiomics"):
        return
    trained_on = list(card.get("inputs", {}).get("radiomics_features", []))
    if trained_on != list(FEATURES):
        raise WeightsError(f"{card.get('name', 'pCR model')} {card.get('version', '')} reads kinetic features "
                           f"{trained_on or 'of an unrecorded definition'}; this version of ResponseAI computes "
                           f"{list(FEATURES)}. Retrain it (responseai train breast pcr --radiomics) or use matching weights.")


def cohort_features(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """:func:`kinetic_features` for every case of a cohort (N×C×Z×Y×X crops, N×Z×Y×X masks)."""
    return np.stack([kinetic_features(image, mask) for image, mask in zip(images, masks)])
