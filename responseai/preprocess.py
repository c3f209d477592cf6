"""Preprocessing shared by training and inference: DCE channels, resampling, crops, clinical encoding.

Statistics that depend on data (clinical means, category levels) are *fitted on the training
set* and stored in the model card, so inference on a new patient uses exactly the numbers
the model was trained with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from responseai.clinical import BREAST_SCHEMA, Variable, validate_clinical
from responseai.image import Image
from responseai.io import from_sitk, to_sitk

DCE_CHANNELS = ("pre", "post1", "post2", "subtraction")


def resample_to_spacing(image: Image, spacing: tuple[float, float, float], is_label: bool = False) -> Image:
    """Resample onto an isotropic-or-not target spacing covering the same physical extent."""
    src = to_sitk(image)
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(src.GetSize(), src.GetSpacing(), spacing)]
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(src, size, sitk.Transform(), interpolator, src.GetOrigin(), spacing, src.GetDirection(), 0.0)
    return from_sitk(out)


def dce_channels(phases: Mapping[str, Image]) -> np.ndarray:
    """Stack pre, post1, post2 and post1−pre as float32 channels (C, Z, Y, X).

    Intensities are divided by the 99.5th percentile of the pre-contrast phase, which removes
    the site's gain without looking at the tumour. A missing post2 is replaced by post1
    (a plateau assumption), which the model card states.
    """
    pre = phases["pre"].array.astype(np.float32)
    post1 = phases["post1"].array.astype(np.float32)
    post2 = phases["post2"].array.astype(np.float32) if phases.get("post2") is not None else post1
    scale = float(np.percentile(pre, 99.5)) or 1.0
    return np.stack([pre, post1, post2, post1 - pre]) / scale


def bounding_box_crop(
    array: np.ndarray, centre: Iterable[int], size: tuple[int, int, int]
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """A ``size`` crop of the last three axes centred on ``centre``, zero-padded at the edges.

    Returns the crop and the slices into the padded frame, so a map computed on the crop can
    be pasted back onto the input grid (:func:`paste_crop`).
    """
    centre = np.asarray(list(centre), int)
    half = np.asarray(size) // 2
    start = centre - half
    pad = [(0, 0)] * (array.ndim - 3) + [(int(s), int(s)) for s in size]
    padded = np.pad(array, pad)
    slices = tuple(slice(int(b + s), int(b + s + n)) for b, s, n in zip(start, size, size))
    return padded[(Ellipsis, *slices)], slices


def paste_crop(crop: np.ndarray, slices: tuple[slice, ...], shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`bounding_box_crop` for a 3D map (outside the crop: 0)."""
    size = [s.stop - s.start for s in slices]
    padded = np.zeros([n + 2 * m for n, m in zip(shape, size)], crop.dtype)
    padded[slices] = crop
    return padded[tuple(slice(m, m + n) for n, m in zip(shape, size))]


def mask_centre(mask: np.ndarray) -> tuple[int, int, int]:
    """Centre of the mask's bounding box (robust to a lobulated shape, unlike the centroid)."""
    idx = np.argwhere(mask > 0)
    return tuple(int(v) for v in (idx.min(0) + idx.max(0)) // 2)


@dataclass
class ClinicalEncoder:
    """Mean/mode imputation, z-scoring, one-hot, missing indicators: fitted on training rows only.

    Features per numeric variable: z-score (clipped to ±4 SD), missing flag. Per categorical
    variable: one column per level, missing flag. A missing value is imputed by the training
    mean (numeric) or left as all-zero one-hot, and its flag set: the model sees *that* a value
    was unknown, which is itself informative in real cohorts.
    """

    variables: tuple[Variable, ...] = tuple(BREAST_SCHEMA.values())
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)

    def fit(self, records: Iterable[Mapping[str, object]]) -> "ClinicalEncoder":
        rows = [validate_clinical(r, self._schema) for r in records]
        for var in self.variables:
            if var.is_categorical:
                continue
            values = np.array([r[var.name] for r in rows if r[var.name] is not None], float)
            self.means[var.name] = float(values.mean()) if len(values) else 0.0
            self.stds[var.name] = float(values.std()) if len(values) > 1 and values.std() > 0 else 1.0
        return self

    @property
    def _schema(self) -> dict[str, Variable]:
        return {v.name: v for v in self.variables}

    @property
    def feature_names(self) -> list[str]:
        names = []
        for var in self.variables:
            names += [f"{var.name}={c}" for c in var.categories] if var.is_categorical else [var.name]
            names.append(f"{var.name}:missing")
        return names

    def transform_one(self, record: Mapping[str, object]) -> np.ndarray:
        """Encode one validated record (raises ClinicalValueError on bad values)."""
        values = validate_clinical(record, self._schema)
        features: list[float] = []
        for var in self.variables:
            value = values[var.name]
            if var.is_categorical:
                features += [float(value == c) for c in var.categories]
            else:
                z = 0.0 if value is None else (value - self.means[var.name]) / self.stds[var.name]
                features.append(float(np.clip(z, -4, 4)))
            features.append(float(value is None))
        return np.asarray(features, np.float32)

    def transform(self, records: Iterable[Mapping[str, object]]) -> np.ndarray:
        return np.stack([self.transform_one(r) for r in records])

    def to_dict(self) -> dict:
        return {"variables": [v.name for v in self.variables], "means": self.means, "stds": self.stds}

    @classmethod
    def from_dict(cls, data: Mapping, schema: Mapping[str, Variable] = BREAST_SCHEMA) -> "ClinicalEncoder":
        return cls(tuple(schema[n] for n in data["variables"]), dict(data["means"]), dict(data["stds"]))
