"""Hand-made kinetic features of the tumour on the pCR crop: the image-only reference a deep model must beat.

A radiologist's reading of a DCE lesion in numbers: initial enhancement, washout, enhancement
heterogeneity, rim versus core, and enhancement just outside the tumour above the breast's own
background. Computed on the same canonical crop the network sees (channels pre, post1, post2,
post1 − pre, all in the exam's intensity unit), so the comparison is about the model, not the
preprocessing.

Kinetic and texture features are read on the *enhancing interior* of the tumour: the boundary
voxel is dropped (partial volume with fat, and 1–2 mm of motion between phases, make its curve
meaningless) and so is a non-enhancing necrotic core, whose "washout" is noise divided by noise.
The feature names are stored in each model card; a model trained on another definition
(:data:`LEGACY_FEATURES`) is refused at load time instead of being fed numbers it never saw.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from responseai.errors import WeightsError

FEATURES = ("initial_enhancement", "washout", "washout_fraction_enhancing", "enhancement_iqr_ratio",
            "rim_to_core", "peritumoural_excess")
LEGACY_FEATURES = ("initial_enhancement", "washout", "washout_fraction", "heterogeneity", "rim_to_core",
                   "peritumoural_enhancement")  # pCR 1.0–1.2 cards
EPS = 1e-3
WASHOUT_DROP = 0.1  # BI-RADS: washout when the late phase falls > 10 % of the early enhancement
ENHANCING_SHARE = 0.3  # an interior voxel enhances when it reaches 30 % of the tumour's 90th percentile
NEAR_SHELL_VOXELS = (1.5, 5.0)  # peritumoural shell: 2–6 mm outside the mask at 1.25 mm (skips partial volume)
FAR_SHELL_VOXELS = (10.0, 16.0)  # the breast's own background enhancement, 12–20 mm away
BODY_LEVEL = 0.05  # of the exam's pre-contrast 99.5th percentile: excludes air from the shells
_FACES = ndimage.generate_binary_structure(3, 1)


def enhancing_interior(early: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """Tumour voxels off the boundary that enhance (not necrosis); the whole tumour when too few remain."""
    interior = ndimage.binary_erosion(tumour, _FACES)
    if interior.sum() < 20:
        interior = tumour
    enhancing = interior & (early > ENHANCING_SHARE * np.percentile(early[interior], 90))
    return enhancing if enhancing.sum() >= 10 else interior


def shell_excess(early: np.ndarray, pre: np.ndarray, tumour: np.ndarray) -> float:
    """Median enhancement just outside the tumour minus that of the breast further away.

    The difference removes the patient's background parenchymal enhancement, which would otherwise
    read as a peritumoural halo in a dense, strongly enhancing breast.
    """
    distance = ndimage.distance_transform_edt(~tumour)
    body = pre > BODY_LEVEL

    def shell_median(lo: float, hi: float) -> float:
        shell = (distance > lo) & (distance <= hi) & body
        return float(np.median(early[shell])) if shell.any() else 0.0

    return shell_median(*NEAR_SHELL_VOXELS) - shell_median(*FAR_SHELL_VOXELS)


def kinetic_features(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One row of :data:`FEATURES` for a C×Z×Y×X crop and its tumour mask."""
    pre, post1, post2 = image[0], image[1], image[2]
    tumour = mask > 0
    early = post1 - pre
    enhancing = enhancing_interior(early, tumour)
    late_change = (post2 - post1)[enhancing] / np.maximum(early[enhancing], EPS)
    level = float(np.median(early[enhancing]))
    q75, q25 = np.percentile(early[enhancing], [75, 25])
    core = ndimage.binary_erosion(tumour, iterations=2)
    rim = tumour & ~core
    core_mean = float(early[core].mean()) if core.any() else float(early[tumour].mean())
    return np.array([
        float(np.median(early[tumour] / np.maximum(pre[tumour], EPS))),
        float(np.median(late_change)),
        float((late_change < -WASHOUT_DROP).mean()),
        float((q75 - q25) / (abs(level) + EPS)),
        float(early[rim].mean() / (abs(core_mean) + EPS)) if rim.any() else 1.0,
        shell_excess(early, pre, tumour) / (abs(level) + EPS),
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
