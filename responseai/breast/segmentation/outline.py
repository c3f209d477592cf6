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

The network's grid (1.5 × 1.5 × 2 mm) is coarser than most acquisitions: a small tumour's outline
drawn there and mapped back is a few voxels too wide or too narrow all round. A growth with an
``input_band_mm`` (2.8.0) redraws the edge on the user's own grid, at the same half-way level read
from the input's own subtraction, within that band of the mapped outline (:func:`redraw_on_input_grid`).

A rim-enhancing tumour's rim can fall under that level in places, leaving a broken shell whose necrotic
core no hole filling reaches. A growth with a ``close_share`` (2.9.0) closes the outline's gaps with a
ball scaled to the tumour before the holes are filled (:func:`close_gaps`).

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
    input_band_mm: float | None = None  # redraw the edge on the input grid within this band (None: as mapped)
    close_share: float | None = None  # gaps closed by a ball of this share of the equivalent radius (None: not)

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1 or not 0 <= self.margin_mm <= 20:
            raise ValueError("outline growth needs 0 < share <= 1 and 0 <= margin_mm <= 20, got share "
                             f"{self.share:g}, margin_mm {self.margin_mm:g}")
        inner, outer = self.background_shell_mm
        if self.background_percentile is not None and (
                not 0 < self.background_percentile <= 100 or not 0 <= inner < outer <= 30):
            raise ValueError("outline growth needs 0 < background_percentile <= 100 and a shell 0 <= inner < outer "
                             f"<= 30 mm, got {self.background_percentile:g} and ({inner:g}, {outer:g}) mm")
        if self.input_band_mm is not None and not 0 < self.input_band_mm <= 10:
            raise ValueError(f"outline growth needs 0 < input_band_mm <= 10, got {self.input_band_mm:g}")
        if self.close_share is not None and not 0 < self.close_share <= 1:
            raise ValueError(f"outline growth needs 0 < close_share <= 1, got {self.close_share:g}")

    @classmethod
    def from_card(cls, entry: Mapping) -> OutlineGrowth:
        percentile = entry.get("background_percentile")
        shell = tuple(float(v) for v in entry.get("background_shell_mm", (3.0, 12.0)))
        if len(shell) != 2:
            raise ValueError(f"background_shell_mm needs (inner, outer), got {shell}")
        band, close = entry.get("input_band_mm"), entry.get("close_share")
        return cls(float(entry["share"]), float(entry["margin_mm"]),
                   None if percentile is None else float(percentile), shell, None if band is None else float(band),
                   None if close is None else float(close))

    def to_card(self) -> dict:
        entry = {"share": self.share, "margin_mm": self.margin_mm}
        if self.background_percentile is not None:
            entry |= {"background_percentile": self.background_percentile,
                      "background_shell_mm": list(self.background_shell_mm)}
        if self.input_band_mm is not None:
            entry["input_band_mm"] = self.input_band_mm
        if self.close_share is not None:
            entry["close_share"] = self.close_share
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
    level = edge_level(core, uptake, breast, spacing_zyx, growth)
    if level is None:
        return component.astype(bool)
    if growth.background_percentile is not None:
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


def edge_level(core: np.ndarray, uptake: np.ndarray, breast: np.ndarray | None, spacing_zyx: Sequence[float],
               growth: OutlineGrowth) -> float | None:
    """The outline's edge level: ``share`` × the component's median uptake, raised to the half-way level
    when the growth has a background; None when the component does not enhance (median ≤ 0): a share of
    a negative level would let every nearby voxel in."""
    median = float(np.median(uptake[core]))
    level = growth.share * median
    if level <= 0:
        return None
    if growth.background_percentile is not None:
        halfway = halfway_level(core, uptake, breast, spacing_zyx, growth, median)
        level = level if halfway is None else max(level, halfway)
    return level


def redraw_on_input_grid(mask: np.ndarray, pre: np.ndarray, post1: np.ndarray, breast: np.ndarray | None,
                         spacing_zyx: Sequence[float], growth: OutlineGrowth) -> np.ndarray:
    """``mask`` (the outline mapped onto the input grid, bool) with its edge redrawn at the input's resolution.

    Voxels deeper than ``input_band_mm`` inside the mask stay (a necrotic core is the tumour's); within
    the band on either side of its surface a voxel belongs to the tumour when its uptake (the input's
    ``post1`` − ``pre``, taken on the mask's box only: a fine full exam is hundreds of MB as floats)
    reaches the edge level computed on the input grid (:func:`edge_level`), and it lies in the breast or
    in the mask. The connected piece overlapping the mask most is kept. A mask that does not enhance, or
    whose redrawn piece is empty, is returned as it is.
    """
    band = growth.input_band_mm
    box = None if band is None else bounding_box(
        mask, tuple(int(np.ceil(max(band, growth.reach_mm()) / s)) + 1 for s in spacing_zyx))
    if box is None:
        return mask.astype(bool)
    core = mask[box].astype(bool)
    uptake = post1[box].astype(np.float32) - pre[box].astype(np.float32)
    breast_box = None if breast is None else breast[box].astype(bool)
    level = edge_level(core, uptake, breast_box, spacing_zyx, growth)
    if level is None:
        return mask.astype(bool)
    depth = ndimage.distance_transform_edt(core, sampling=spacing_zyx)
    outside = ndimage.distance_transform_edt(~core, sampling=spacing_zyx)
    near_edge = (depth <= band) & (outside <= band) & (uptake >= level)
    if breast_box is not None:
        near_edge &= breast_box | core
    labels, n = ndimage.label((depth > band) | near_edge)
    if n == 0:
        return mask.astype(bool)
    overlap = ndimage.sum(core, labels, np.arange(1, n + 1))
    out = mask.astype(bool).copy()
    out[box] = labels == int(np.argmax(overlap)) + 1
    return out


def close_gaps(outline: np.ndarray, region: np.ndarray | None, spacing_zyx: Sequence[float],
               share: float) -> np.ndarray:
    """``outline`` (bool) with the gaps in it closed by a ball of ``share`` × its equivalent-sphere radius.

    A rim-enhancing tumour's rim, or a heterogeneous tumour's weakly enhancing parts, fall under the
    half-way edge level in places: the outline is then a broken shell or a cluster of pieces, and the
    hole filling that completes a necrotic core cannot close it. A morphological closing bridges gaps
    narrower than about the ball's diameter and adds nothing outside the outline's convex hull; the
    radius scales with the tumour so that a small one's margin is not smoothed away. Voxels are added
    inside the breast ``region`` only.

    The closing is computed with two Euclidean distance transforms (dilation: within the radius of the
    outline; erosion: further than the radius from outside the dilation), which equals the closing by a
    ball of that radius in millimetres at a cost that does not grow with the ball: a structuring element
    took 6 s on a 900 ml outline.
    """
    spacing = np.asarray(spacing_zyx, float)
    radius_mm = share * (3 * outline.sum() * spacing.prod() / (4 * np.pi)) ** (1 / 3)
    if radius_mm < spacing.min():  # the ball is one voxel: nothing to close
        return outline.astype(bool)
    pad = tuple(int(radius_mm // s) + 2 for s in spacing)
    box = bounding_box(outline, pad)
    if box is None:
        return outline.astype(bool)
    padded = np.pad(outline[box].astype(bool), [(p, p) for p in pad])
    dilated = ndimage.distance_transform_edt(~padded, sampling=spacing) <= radius_mm
    closed = (ndimage.distance_transform_edt(dilated, sampling=spacing) > radius_mm)[tuple(slice(p, -p) for p in pad)]
    if region is not None:
        closed &= region[box].astype(bool)
    out = outline.astype(bool).copy()
    out[box] |= closed
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


def tumour_likeness(channels: np.ndarray) -> np.ndarray:
    """Early uptake (post1 − pre) times the signal enhancement ratio (post1 − pre) / (post2 − pre), clipped to
    [0, 2]: the radiologist's two signs of malignancy, strong early enhancement and washout, in one map.

    Background parenchyma enhances progressively (ratio under 1), a tumour reaches its plateau early or washes
    out (1 or more): a tumour that enhances no more than the parenchyma it touches still stands out here.
    Where the late phase barely enhances, or is missing (post2 = post1), the ratio is taken as 1 and the early
    uptake decides alone.
    """
    early, late = channels[1] - channels[0], channels[2] - channels[0]
    ratio = np.where(late > 0.05, early / np.maximum(late, 0.05), 1.0)
    return (early * np.clip(ratio, 0.0, 2.0)).astype(np.float32)


def core_of_size(outline: np.ndarray, channels: np.ndarray, volume_ml: float, spacing_zyx: Sequence[float],
                 contrast: float) -> np.ndarray | None:
    """The compact piece of a spilled ``outline`` (bool) that stands out like a tumour of ``volume_ml``, or None.

    An outline several times the reported size either spilled from the tumour into the parenchyma around
    it, or is another structure altogether. A radiologist told "2 cm" looks inside it for a 2 cm lesion
    that stands out. Here: the ball of the reported volume where the :func:`tumour_likeness` of the network
    input ``channels`` (read on the outline's box only) is highest inside the outline (averaged over the ball by normalised convolution, so the
    outline's edge does not pull the centre inward) is the lesion; the outline further than a ball
    diameter from it is the spill. When the lesion's median is at least ``contrast`` × the spill's, the
    outline is cut half-way between the two and the connected piece overlapping the ball most is returned
    (not the centre's: a necrotic centre lies below the cut); otherwise nothing stands out and None is
    returned (the outline may be the wrong structure: the caller keeps its other choices).
    """
    spacing = np.asarray(spacing_zyx, float)
    radius_mm = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    box = bounding_box(outline, tuple(int(np.ceil(radius_mm / s)) + 1 for s in spacing))
    if box is None:
        return None
    inside, values = outline[box].astype(bool), tumour_likeness(channels[(slice(None), *box)])
    sigma = radius_mm / 2 / spacing
    weight = ndimage.gaussian_filter(inside.astype(np.float32), sigma)
    mean = ndimage.gaussian_filter(np.where(inside, values, 0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)
    centre = np.unravel_index(int(np.argmax(np.where(inside, mean, -np.inf))), inside.shape)
    seed = np.zeros(inside.shape, bool)
    seed[centre] = True
    distance = ndimage.distance_transform_edt(~seed, sampling=spacing)
    ball, spill = inside & (distance <= radius_mm), inside & (distance > 2 * radius_mm)
    if spill.sum() < MIN_SHELL_VOXELS:
        return None
    lesion, background = float(np.median(values[ball])), float(np.median(values[spill]))
    if lesion <= 0 or lesion < contrast * max(background, 0.0):
        return None
    labels, n = ndimage.label(inside & (values >= 0.5 * (lesion + background)))
    if n == 0:
        return None
    overlap = ndimage.sum(ball, labels, np.arange(1, n + 1))  # not the centre's piece: a necrotic centre is below
    out = np.zeros(outline.shape, bool)
    out[box] = labels == int(np.argmax(overlap)) + 1
    return out


def grown_to_size(outline: np.ndarray, uptake: np.ndarray, region: np.ndarray | None, volume_ml: float,
                  spacing_zyx: Sequence[float], percentile: float = 90.0) -> np.ndarray | None:
    """A small ``outline`` (bool) grown over the tumour of ``volume_ml`` it is part of, or None.

    A large heterogeneous tumour can be called tumour by the network only where it enhances most: the
    outline's half-way edge, set from that bright core and from the shell 3–12 mm around it (which is more
    tumour, not breast), then stops inside the tumour, and a 120 ml mass is returned as a 10 ml piece. A
    radiologist told "6 cm" reads the baseline from the breast beyond a tumour of that size instead. Here:
    the breast (``region``) between one and two radii of the reported volume's sphere from the outline is
    the baseline, its ``percentile`` of the ``uptake`` (post1 − pre) the background; the edge is half-way
    between the outline's median uptake and that, and the voxels enhancing above it within two radii that
    connect to the outline (in the breast, or in the outline) join it. None when nothing stands out (the
    outline's median is not above the background) or the shell holds too little breast to read it from.
    """
    spacing = np.asarray(spacing_zyx, float)
    radius_mm = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    box = bounding_box(outline, tuple(int(np.ceil(2 * radius_mm / s)) + 1 for s in spacing))
    if box is None:
        return None
    inside, values = outline[box].astype(bool), uptake[box]
    breast = np.ones(inside.shape, bool) if region is None else region[box].astype(bool)
    distance = ndimage.distance_transform_edt(~inside, sampling=spacing)
    shell = breast & (distance > radius_mm) & (distance <= 2 * radius_mm)
    if shell.sum() < MIN_SHELL_VOXELS:
        return None
    lesion, background = float(np.median(values[inside])), float(np.percentile(values[shell], percentile))
    if lesion <= max(background, 0.0):
        return None
    labels, _ = ndimage.label(inside | ((distance <= 2 * radius_mm) & breast & (values >= 0.5 * (lesion + background))))
    keep = np.unique(labels[inside])
    out = np.zeros(outline.shape, bool)
    out[box] = np.isin(labels, keep[keep > 0])
    return out
