"""The chosen tumour's outline completed on its own enhancement.

The network finds the tumour, but on exams unlike its training phantom it outlines irregular and
spiculated margins conservatively: in most poorly outlined development exams of another generator
the chosen component covered half to two thirds of the tumour. A radiologist's semi-automatic
outline thresholds the subtraction image relative to the lesion's own enhancement; doing the same
within a few millimetres of the network's component, and inside the breast region, completes the
margin without letting the mask spread into enhancing parenchyma further away.

The share and margin are stored in the segmentation card (``outline_growth``), chosen on
development exams (``training.breast_outline``); a card without the entry is used as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from responseai.breast.segmentation.candidates import bounding_box

SUBTRACTION = 3  # channel of the network input: post1 − pre


@dataclass(frozen=True)
class OutlineGrowth:
    """Voxels within ``margin_mm`` of the component enhancing at ≥ ``share`` × its median join it."""

    share: float
    margin_mm: float

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1 or not 0 <= self.margin_mm <= 20:
            raise ValueError(f"outline growth needs 0 < share <= 1 and 0 <= margin_mm <= 20, got {self}")

    @classmethod
    def from_card(cls, entry: Mapping) -> OutlineGrowth:
        return cls(float(entry["share"]), float(entry["margin_mm"]))

    def to_card(self) -> dict:
        return {"share": self.share, "margin_mm": self.margin_mm}


def grow_on_enhancement(component: np.ndarray, subtraction: np.ndarray, region: np.ndarray | None,
                        spacing_zyx: Sequence[float], growth: OutlineGrowth) -> np.ndarray:
    """``component`` (bool) plus the connected voxels near it that enhance like it, as bool.

    Worked on the component's bounding box grown by the margin: nothing further away can join, so
    the result equals the whole-volume one at a fraction of the cost. A component that does not
    enhance (median uptake ≤ 0) has no enhancement to complete and is returned as it is: a share of
    a negative level would let every nearby voxel in.
    """
    margin = tuple(int(np.ceil(growth.margin_mm / s)) + 1 for s in spacing_zyx)
    box = bounding_box(component, margin)
    if box is None:
        return component.astype(bool)
    core = component[box].astype(bool)
    level = growth.share * float(np.median(subtraction[box][core]))
    if level <= 0:
        return component.astype(bool)
    near = ndimage.distance_transform_edt(~core, sampling=spacing_zyx) <= growth.margin_mm
    allowed = near & (subtraction[box] >= level)
    if region is not None:
        allowed &= region[box].astype(bool)
    labels, _ = ndimage.label(allowed | core)
    keep = np.unique(labels[core])
    out = component.astype(bool).copy()
    out[box] = np.isin(labels, keep[keep > 0])
    return out
