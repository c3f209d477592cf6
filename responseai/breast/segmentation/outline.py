"""The chosen tumour's outline completed on its own enhancement.

The network finds the tumour, but on exams unlike its training phantom it outlines irregular and
spiculated margins conservatively: in most poorly outlined development exams of another generator
the chosen component covered half to two thirds of the tumour. A radiologist's semi-automatic
outline thresholds the subtraction image relative to the lesion's own enhancement; doing the same
within a few millimetres of the network's component, and inside the breast region, completes the
margin without letting the mask spread into enhancing parenchyma further away.

In a breast whose parenchyma enhances moderately or markedly, the parenchyma next to the tumour
passes a level set from the tumour alone, and both the network's component and its growth spill
into it. A card whose growth names a ``background_percentile`` (2.7.0) sets the edge where a
radiologist reads it: **half-way between the lesion's uptake and that of the breast tissue around
it** (the half-maximum idea with the local parenchyma as the baseline), trims the component to it,
then grows at that level.

The share, margin and background are stored in the segmentation card (``outline_growth``), chosen on
development exams (``training.breast_outline``); a card without the entry is used as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from responseai.breast.segmentation.candidates import bounding_box

SUBTRACTION = 3  # channel of the network input: post1 − pre
MIN_SHELL_VOXELS = 20  # breast voxels around a component below which its surroundings give no baseline


@dataclass(frozen=True)
class OutlineGrowth:
    """Voxels within ``margin_mm`` of the component enhancing at ≥ its edge level join it.

    The level is ``share`` × the component's median uptake; with a ``background_percentile`` it is at
    least half-way between that median and the given percentile of the uptake in the breast region
    ``background_shell_mm`` (inner, outer) around the component, and the component is trimmed to it.
    """

    share: float
    margin_mm: float
    background_percentile: float | None = None
    background_shell_mm: tuple[float, float] = (3.0, 12.0)

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1 or not 0 <= self.margin_mm <= 20:
            raise ValueError(f"outline growth needs 0 < share <= 1 and 0 <= margin_mm <= 20, got {self}")
        inner, outer = self.background_shell_mm
        if self.background_percentile is not None and (
                not 0 < self.background_percentile <= 100 or not 0 <= inner < outer <= 30):
            raise ValueError("outline growth needs 0 < background_percentile <= 100 and a shell "
                             f"0 <= inner < outer <= 30 mm, got {self}")

    @classmethod
    def from_card(cls, entry: Mapping) -> OutlineGrowth:
        percentile = entry.get("background_percentile")
        shell = tuple(float(v) for v in entry.get("background_shell_mm", (3.0, 12.0)))
        if len(shell) != 2:
            raise ValueError(f"background_shell_mm needs (inner, outer), got {shell}")
        return cls(float(entry["share"]), float(entry["margin_mm"]),
                   None if percentile is None else float(percentile), shell)

    def to_card(self) -> dict:
        entry = {"share": self.share, "margin_mm": self.margin_mm}
        if self.background_percentile is not None:
            entry |= {"background_percentile": self.background_percentile,
                      "background_shell_mm": list(self.background_shell_mm)}
        return entry

    def reach_mm(self) -> float:
        """How far from the component the outline reads the image: the margin, or the background shell."""
        return max(self.margin_mm, self.background_shell_mm[1] if self.background_percentile is not None else 0.0)


def grow_on_enhancement(component: np.ndarray, subtraction: np.ndarray, region: np.ndarray | None,
                        spacing_zyx: Sequence[float], growth: OutlineGrowth,
                        probability: np.ndarray | None = None) -> np.ndarray:
    """``component`` (bool) plus the connected voxels near it that enhance like it, as bool.

    Worked on the component's bounding box grown by what the growth reads (its margin, or its
    background shell): nothing further away matters, so the result equals the whole-volume one at a
    fraction of the cost. A component that does not enhance (median uptake ≤ 0) has no enhancement
    to complete and is returned as it is: a share of a negative level would let every nearby voxel
    in. With a background the component is first trimmed to its voxels at the edge level, keeping
    the connected piece that holds the most tumour ``probability`` (the largest without one).
    """
    margin = tuple(int(np.ceil(growth.reach_mm() / s)) + 1 for s in spacing_zyx)
    box = bounding_box(component, margin)
    if box is None:
        return component.astype(bool)
    core = component[box].astype(bool)
    uptake = subtraction[box]
    breast = None if region is None else region[box].astype(bool)
    median = float(np.median(uptake[core]))
    level = growth.share * median
    if level <= 0:
        return component.astype(bool)
    if growth.background_percentile is not None:
        halfway = halfway_level(core, uptake, breast, spacing_zyx, growth, median)
        level = level if halfway is None else max(level, halfway)
        core = trim(core, uptake >= level, None if probability is None else probability[box])
    near = ndimage.distance_transform_edt(~core, sampling=spacing_zyx) <= growth.margin_mm
    allowed = near & (uptake >= level)
    if breast is not None:
        allowed &= breast
    labels, _ = ndimage.label(allowed | core)
    keep = np.unique(labels[core])
    out = component.astype(bool).copy()
    out[box] = np.isin(labels, keep[keep > 0])
    return out


def halfway_level(core: np.ndarray, uptake: np.ndarray, breast: np.ndarray | None, spacing_zyx: Sequence[float],
                  growth: OutlineGrowth, median: float) -> float | None:
    """Half-way between the component's median uptake and the surrounding breast tissue's percentile.

    None when fewer than ``MIN_SHELL_VOXELS`` of breast lie in the shell (a tumour filling its breast,
    or at the edge of the field of view): without a baseline the level stays the share of the median.
    """
    distance = ndimage.distance_transform_edt(~core, sampling=spacing_zyx)
    inner, outer = growth.background_shell_mm
    shell = (distance > inner) & (distance <= outer)
    if breast is not None:
        shell &= breast
    if shell.sum() < MIN_SHELL_VOXELS:
        return None
    return 0.5 * (median + float(np.percentile(uptake[shell], growth.background_percentile)))


def trim(core: np.ndarray, keep: np.ndarray, probability: np.ndarray | None) -> np.ndarray:
    """The connected piece of ``core & keep`` holding the most ``probability`` (the largest without one);
    ``core`` as it is when nothing of it is kept (the level is then the component's own, not a reason to
    lose the tumour)."""
    labels, n = ndimage.label(core & keep)
    if n == 0:
        return core
    weights = np.ones(core.shape) if probability is None else probability
    mass = ndimage.sum(weights, labels, np.arange(1, n + 1))
    return labels == int(np.argmax(mass)) + 1
