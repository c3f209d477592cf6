"""Tumour segmentation of one breast DCE exam: phases → breast region, tumour mask on the input post1 grid.

1. The phases are checked, then resampled onto the *canonical grid* (axial, LPS-aligned, the
   card's spacing) whatever the scanner stored: RAS-flipped, LPI, sagittal or oblique.
2. MONAI sliding-window inference gives per-voxel class probabilities. A three-class network
   (background / breast / tumour) also gives the **breast region**: the one or two largest
   breast components, holes filled. A two-class network (older cards) has no region step.
3. Tumour candidates are the connected components above the card's threshold. A candidate that
   does not lie mostly inside the breast region (the heart, great vessels and nodes enhance
   more than any tumour) is discarded; among the rest the one with the **highest mean
   probability** is kept — not the largest, which on a real exam is often the heart, and not the
   highest peak, which saturates at 1.0 on enhancing parenchyma as well as on the tumour.
4. The mask is resampled back onto the exact input grid (physical space; the indicator
   interpolated linearly and cut at one half, so the network grid's staircase does not come back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage

from responseai.breast.constants import REFERENCE_PHASE
from responseai.breast.preprocess import canonical_phases, check_phases, dce_channels
from responseai.breast.segmentation.candidates import CandidateRanker, bounding_box, find_candidates, ranked
from responseai.breast.segmentation.extent import ExtentChoice, Yardstick, fits, yardstick
from responseai.breast.segmentation.model import TASK, build_model
from responseai.breast.segmentation.side import half_of, kept_to_side, midline_mm, named_side, side_of
from responseai.breast.segmentation.outline import (
    SUBTRACTION,
    OutlineGrowth,
    close_gaps,
    core_of_size,
    grown_to_size,
    grow_on_enhancement,
    redraw_on_input_grid,
)
from responseai.errors import AnatomyNotFoundError, EmptyMaskError, WeightsError
from responseai.image import Image
from responseai.io import resample_binary
from responseai.resources import model_path
from responseai.weights import load_model, load_once

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT = model_path("breast_seg")
BREAST, TUMOUR = 1, 2  # class indices of a three-class card
OUTLINE_FILLS = ("3d", "slices")  # the card's outline_fill: holes filled in 3-D, or slice by slice first
MIN_SECOND_BREAST = 0.15  # a second breast component counts if it is ≥ 15 % of the first (else: noise)


@dataclass
class ExamSegmentation:
    """What the segmentation step found; masks on the input post1 grid."""

    mask: Image
    breast: Image | None  # breast region (None for a two-class card)
    side: str  # "left" / "right" (patient's), from the tumour's centre in LPS world x against the midline
    candidates: int  # tumour components above the threshold
    discarded_outside_breast: int
    probability: float  # mean tumour probability over the chosen component
    bpe_percent: float | None  # background parenchymal enhancement index (see :func:`bpe_index`)
    breast_volume_ml: float | None
    runner_up: Image | None = None  # the second-ranked candidate's outline, offered when the choice is wrong
    choice_margin: float | None = None  # the chosen candidate's score minus the runner-up's
    close_call: bool = False  # the margin is under the card ranker's close_margin: compare the runner-up
    chosen_by_extent: bool = False  # the ranker's first choice missed the clinical size grossly; the runner-up was taken
    cut_from_ml: float | None = None  # the chosen outline was above the clinical size: its volume before the cut
    grown_from_ml: float | None = None  # the chosen outline was below the clinical size: its volume before the growth
    named_side: str | None = None  # the breast the form names ("left" / "right"; None: both searched)
    set_aside_other_side: int = 0  # candidates in the other breast left out of the choice
    other_side_first: bool = False  # without the form's side the model would have chosen one in the other breast
    midline_mm: float = 0.0  # world x of the patient's midline the sides were read from (.side.midline_mm)


def _load(path: Path) -> tuple[torch.nn.Module, dict]:
    model, card = load_model(path, build_model, expected_task=TASK)
    card_ranker(card)  # a malformed second stage is refused with the file, not once per exam
    card_growth(card)
    card_fill_slices(card)
    return model, card


def load_segmentation_model(weights_path: str | Path = DEFAULT) -> tuple[torch.nn.Module, dict]:
    """Verified network + card, loaded once per file version (Slicer re-runs reuse it).

    Raises WeightsError for a missing, truncated or mismatching file, or a malformed candidate
    ranker, outline growth or outline fill in its card.
    """
    return load_once(weights_path, _load)


def network_input(phases: Mapping[str, Image], spacing: tuple[float, float, float]) -> tuple[np.ndarray, Image]:
    """DCE channels on the canonical grid at the network spacing, and that grid."""
    canonical, grid = canonical_phases(phases, spacing)
    return dce_channels(canonical), grid


def predict_probabilities(
    model: torch.nn.Module,
    channels: np.ndarray,
    patch: tuple[int, int, int],
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Class probabilities per voxel, C×Z×Y×X (sliding window, Gaussian blending at patch seams).

    Sliding windows of the training patch size keep the receptive-field context the network
    was trained with and bound memory, whatever the size of the exam.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(channels[None])).float().to(device)
        logits = sliding_window_inference(x, patch, sw_batch_size=2, predictor=model, overlap=0.25, mode="gaussian")
        return torch.softmax(logits, 1)[0].cpu().numpy()


def breast_region(probabilities: np.ndarray) -> np.ndarray | None:
    """The one or two largest breast-class components, holes filled; None without a breast class.

    The breast class only: counting tumour-class voxels too let every strongly enhancing structure
    touching a breast — the heart on an oblique exam — join the region, its volume and its BPE.
    """
    if probabilities.shape[0] < 3:
        return None
    tissue = probabilities.argmax(0) == BREAST
    labels, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros(tissue.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1][:2]
    keep = [i + 1 for i in order if sizes[i] >= MIN_SECOND_BREAST * sizes[order[0]]]
    return fill_holes(np.isin(labels, keep), connectivity=1).astype(bool)


@dataclass
class Selection:
    """The candidate choice of one exam on the canonical grid: the chosen outline and the runner-up's."""

    chosen: np.ndarray  # uint8 outline of the chosen candidate (all zero when none is allowed)
    runner_up: np.ndarray | None  # uint8 outline of the second-ranked candidate (None when there is none)
    margin: float | None  # the chosen candidate's score minus the runner-up's (None without a runner-up)
    n: int  # components above threshold
    discarded: int  # of them, outside the breasts
    confidence: float  # mean tumour probability of the chosen component
    by_extent: bool = False  # the ranker's first two swapped by the card's extent_choice (the runner-up is then its first)
    cut_from_ml: float | None = None  # the first choice's volume before it was cut to the clinical size's piece
    grown_from_ml: float | None = None  # the choice's volume before it was grown over the tumour of the clinical size
    set_aside_other_side: int = 0  # allowed candidates outside the breast the form names, left out of the choice
    other_side_first: bool = False  # without the form's side the ranker's first choice lay in the other breast


def select_candidates(tumour_probability: np.ndarray, threshold: float, region: np.ndarray | None,
                      channels: np.ndarray | None = None, spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0),
                      ranker: CandidateRanker | None = None, breast_probability: np.ndarray | None = None,
                      growth: OutlineGrowth | None = None, fill_slices: bool = False,
                      expected: Yardstick | None = None, extent_choice: ExtentChoice | None = None,
                      named_half: np.ndarray | None = None) -> Selection:
    """The tumour among the candidate components inside the breast region (see :mod:`.candidates`), and
    the runner-up.

    Without a ranker the highest mean probability wins: a tumour is confidently tumour throughout,
    while enhancing parenchyma reaches a peak of 1.0 in places but is uncertain over most of its
    extent (chosen on a development external site, seed 7: tumour picked in 90 % of cases vs 86 %
    by the peak). A card's ranker also reads the candidates' size, shape, kinetics and surrounding
    tissue, which need the network input ``channels`` on a grid of ``spacing_xyz`` and the
    network's ``breast_probability``. With a card's ``growth`` the outline is completed on its own
    enhancement (:mod:`.outline`); ``fill_slices`` fills it slice by slice (:func:`fill_holes`). With a card's
    ``extent_choice`` and the clinical size's yardstick ``expected``, a first choice grossly off the size gives
    way to a runner-up that fits it (:class:`.extent.ExtentChoice`); with its ``core_contrast``, a first choice
    above the size is first cut to the tumour-sized piece that stands out inside it (:func:`core_within`); with its
    ``grow_small``, a choice below the size is grown over the tumour it is part of (:func:`grown_within`). With
    ``named_half`` (the half of the grid in the breast the form names, :func:`.side.half_of`) candidates outside it
    are left out of the choice, unless that leaves none (:func:`.side.kept_to_side`).

    The runner-up is outlined the same way because when the choice is wrong the tumour is most often
    the second candidate (development sets, main seeds 151 / 161 site E and alt seeds 153 / 163: the
    chosen one in 235 of 255 exams, the second in 7): offering it saves the user drawing the tumour.
    """
    candidates = find_candidates(tumour_probability, threshold, region, channels if ranker else None, spacing_xyz,
                                 breast_probability)
    labels, scores = ranked(candidates, ranker)
    set_aside, other_side_first = 0, False
    if named_half is not None:  # the ranking of both breasts, less the candidates the form's side sets aside
        candidates, set_aside = kept_to_side(candidates, named_half)
        keep = candidates.allowed[labels - 1]
        other_side_first = bool(len(labels) and not keep[0])
        labels, scores = labels[keep], scores[keep]
    discarded = int(candidates.outside.sum())
    if not len(labels):
        return Selection(np.zeros(tumour_probability.shape, np.uint8), None, None, candidates.n, discarded, 0.0)

    def outlined(label: int) -> np.ndarray:
        return outline(candidates.labels == label, channels, region, spacing_xyz, growth, fill_slices,
                       tumour_probability)

    first, second = outlined(labels[0]), outlined(labels[1]) if len(labels) > 1 else None
    margin = float(scores[0] - scores[1]) if second is not None else None
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    core = None if channels is None else core_within(first, channels, region, spacing_xyz, growth, fill_slices,
                                                     expected, extent_choice)
    cut_from_ml = None
    if core is not None:  # cut to the tumour-sized piece; it fits the size, so no swap follows
        cut_from_ml, first = float(first.sum()) * voxel_ml, core
    swap = extent_choice is not None and second is not None and bool(extent_choice.take_runner_up(
        first.sum() * voxel_ml, second.sum() * voxel_ml, expected))
    if swap:
        first, second, labels, margin = second, first, labels[[1, 0]], -margin  # the ranker's first is now behind
    grown = None if channels is None else grown_within(first, channels, region, spacing_xyz, growth, fill_slices,
                                                       expected, extent_choice)
    grown_from_ml = None
    if grown is not None:
        grown_from_ml, first = float(first.sum()) * voxel_ml, grown
    return Selection(first, second, margin, candidates.n, discarded,
                     float(candidates.mean_probability[labels[0] - 1]), swap, cut_from_ml, grown_from_ml, set_aside,
                     other_side_first)


def core_within(first: np.ndarray, channels: np.ndarray, region: np.ndarray | None,
                spacing_xyz: tuple[float, float, float], growth: OutlineGrowth | None, fill_slices: bool,
                expected: Yardstick | None, extent_choice: ExtentChoice | None) -> np.ndarray | None:
    """The outline of the piece of the clinical size inside a first choice above the yardstick's upper limit
    (:func:`.outline.core_of_size`), when the card's ``extent_choice`` has a ``core_contrast`` and the piece
    fits the yardstick; None otherwise (the first choice, and any swap, stand)."""
    if extent_choice is None or extent_choice.core_contrast is None or expected is None:
        return None
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    if first.sum() * voxel_ml / expected.volume_ml <= expected.limits[1]:  # the extent caution's upper limit
        return None
    piece = core_of_size(first.astype(bool), channels, expected.volume_ml, spacing_xyz[::-1],
                         extent_choice.core_contrast)
    if piece is None:
        return None
    return _fitting_outline(piece, region, spacing_xyz, growth, fill_slices, expected)


def grown_within(chosen: np.ndarray, channels: np.ndarray, region: np.ndarray | None,
                 spacing_xyz: tuple[float, float, float], growth: OutlineGrowth | None, fill_slices: bool,
                 expected: Yardstick | None, extent_choice: ExtentChoice | None) -> np.ndarray | None:
    """The outline of the tumour a choice below the yardstick's lower limit (or the card's ``grow_below``) is part of
    (:func:`.outline.grown_to_size`), when the card's ``extent_choice`` has ``grow_small`` and the grown outline fits
    the yardstick; None otherwise."""
    if extent_choice is None or not extent_choice.grow_small or expected is None or not chosen.any():
        return None
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    if chosen.sum() * voxel_ml / expected.volume_ml >= extent_choice.grow_trigger(expected.limits):
        return None
    percentile = 90.0 if growth is None or growth.background_percentile is None else growth.background_percentile
    grown = grown_to_size(chosen.astype(bool), channels[SUBTRACTION], region, expected.typical_ml, spacing_xyz[::-1],
                          percentile)
    return None if grown is None else _fitting_outline(grown, region, spacing_xyz, growth, fill_slices, expected)


def _fitting_outline(piece: np.ndarray, region: np.ndarray | None, spacing_xyz: tuple[float, float, float],
                     growth: OutlineGrowth | None, fill_slices: bool, expected: Yardstick) -> np.ndarray | None:
    """A cut or grown ``piece`` finished as every outline (:func:`finish_outline`), or None when it then does not fit
    the yardstick: the size only makes a reshaped outline plausible, never a mask that misses it anyway."""
    piece = finish_outline(piece, region, spacing_xyz, growth, fill_slices)
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    return piece if fits(piece.sum() * voxel_ml / expected.volume_ml, expected.limits) else None


def select_tumour(tumour_probability: np.ndarray, threshold: float, region: np.ndarray | None,
                  channels: np.ndarray | None = None, spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0),
                  ranker: CandidateRanker | None = None,
                  breast_probability: np.ndarray | None = None,
                  growth: OutlineGrowth | None = None,
                  fill_slices: bool = False) -> tuple[np.ndarray, int, int, float]:
    """The chosen outline of :func:`select_candidates` as (mask, n candidates, n discarded outside the
    breast, its mean probability)."""
    found = select_candidates(tumour_probability, threshold, region, channels, spacing_xyz, ranker,
                              breast_probability, growth, fill_slices)
    return found.chosen, found.n, found.discarded, found.confidence


def outline(component: np.ndarray, channels: np.ndarray | None, region: np.ndarray | None,
            spacing_xyz: tuple[float, float, float], growth: OutlineGrowth | None,
            fill_slices: bool = False, probability: np.ndarray | None = None) -> np.ndarray:
    """The mask returned for a chosen component: completed on its enhancement when the card says so (trimmed
    first to the edge level when its growth has a background, keeping the piece of most tumour
    ``probability``), its gaps closed when the growth has a ``close_share`` (:func:`.outline.close_gaps`), holes
    filled (slice by slice first when the card's ``outline_fill`` is ``slices``)."""
    if growth is not None and channels is not None:
        component = grow_on_enhancement(component, channels[SUBTRACTION], region, spacing_xyz[::-1], growth,
                                        probability)
    return finish_outline(component, region, spacing_xyz, growth if channels is not None else None, fill_slices)


def finish_outline(component: np.ndarray, region: np.ndarray | None, spacing_xyz: tuple[float, float, float],
                   growth: OutlineGrowth | None, fill_slices: bool) -> np.ndarray:
    """``component``'s gaps closed when the card's growth has a ``close_share`` (:func:`.outline.close_gaps`),
    then its holes filled (slice by slice first when the card's ``outline_fill`` is ``slices``), as uint8."""
    if growth is not None and growth.close_share is not None:  # the radius from the filled outline: the tumour's volume
        component = close_gaps(fill_holes(component, slices=fill_slices).astype(bool), region,
                               spacing_xyz[::-1], growth.close_share)
    return fill_holes(component, slices=fill_slices)


def fill_holes(component: np.ndarray, connectivity: int = 3, slices: bool = False) -> np.ndarray:
    """``component`` (bool) with its enclosed background filled, as uint8.

    Background is connected through faces, edges and corners by default (``connectivity`` 3, MONAI
    ``FillHoles``' default; 1 = faces only, scipy's), and the work is done on the component's
    bounding box plus one voxel: a hole cannot reach outside it, so the result is the whole-volume
    one at a fraction of the cost on a full exam.

    ``slices``: first fill what the component encloses in each 2-D slice along z, then y, then x. A
    rim-enhancing tumour's necrotic centre belongs to its outline (a radiologist's tumour volume
    includes it) but is not a 3-D hole wherever it reaches the surface in one slice; in the slices
    through its middle the rim encloses it.
    """
    out = np.zeros(component.shape, np.uint8)
    box = bounding_box(component, (1, 1, 1))
    if box is None:
        return out
    filled = component[box].astype(bool)
    for axis in range(3) if slices else ():
        filled = ndimage.binary_fill_holes(filled, structure=_in_plane(axis))
    structure = ndimage.generate_binary_structure(3, connectivity)
    out[box] = ndimage.binary_fill_holes(filled, structure=structure)
    return out


def _in_plane(axis: int) -> np.ndarray:
    """A 3×3×3 structuring element connecting voxels only within the plane normal to ``axis`` (8-connected)."""
    structure = np.zeros((3, 3, 3), bool)
    structure[(slice(None),) * axis + (1,)] = True
    return structure


def bpe_index(channels: np.ndarray, region: np.ndarray | None, tumour: np.ndarray) -> float | None:
    """Background parenchymal enhancement: the 90th percentile of post1 enhancement over pre, in percent,
    in the breasts outside the tumour and a 5-voxel margin.

    The 90th percentile reads the enhancing parenchyma, not the fat (which barely enhances and is most
    of the breast); it is a continuous index, not a BI-RADS category.
    """
    if region is None:
        return None
    near = np.zeros(tumour.shape, bool)
    box = bounding_box(tumour > 0, (5, 5, 5))  # the dilation cannot leave the tumour's box grown by 5
    if box is not None:
        near[box] = ndimage.binary_dilation(tumour[box] > 0, iterations=5)
    background = region & ~near
    pre = channels[0][background]
    enhancement = channels[3][background] / np.maximum(pre, 0.05)  # channel 3 = post1 − pre
    return float(np.percentile(enhancement, 90) * 100) if enhancement.size else None


@dataclass
class CanonicalSegmentation:
    """The network's view of one exam on its canonical grid (what :func:`segment_exam` maps back)."""

    grid: Image  # the canonical grid (axial, LPS-aligned, network spacing)
    channels: np.ndarray  # network input, C×Z×Y×X
    probabilities: np.ndarray  # class probabilities, C×Z×Y×X
    region: np.ndarray | None  # breast region (None for a two-class card)
    threshold: float  # tumour probability threshold from the card
    ranker: CandidateRanker | None = None  # the card's learnt candidate ranker (None: highest mean probability)
    growth: OutlineGrowth | None = None  # the card's outline completion on enhancement (None: the component as found)
    fill_slices: bool = False  # the card's outline_fill is "slices" (False: holes filled in 3-D only)
    extent_choice: ExtentChoice | None = None  # the card's extent_choice (None: the ranker's choice stands)


def segment_canonical(
    aligned: Mapping[str, Image],
    weights_path: str | Path = DEFAULT,
    device: torch.device | str | None = None,
) -> CanonicalSegmentation:
    """Network probabilities and breast region of checked phases, on the canonical grid.

    Separate from :func:`exam_from_canonical` so that an evaluation can ask *why* a tumour was
    missed (not detected, outside the breast region, or another candidate chosen) from the very
    numbers the candidate choice used, without running the network twice.
    """
    model, card = load_segmentation_model(weights_path)
    model.to(torch.device(device) if device is not None else torch.device("cpu"))
    spacing = tuple(float(s) for s in card["inputs"]["spacing_mm"])
    channels, grid = network_input(aligned, spacing)
    probabilities = predict_probabilities(model, channels, tuple(card["inputs"]["patch_size"]))
    return CanonicalSegmentation(grid, channels, probabilities, breast_region(probabilities), float(card["threshold"]),
                                 card_ranker(card), card_growth(card), card_fill_slices(card), card_extent_choice(card))


def _card_entry(card: Mapping, key: str, parse: Callable[..., T], what: str) -> T | None:
    """A second-stage entry of the card parsed (None when absent); WeightsError when it is malformed."""
    entry = card.get(key)
    if entry is None:
        return None
    try:
        return parse(entry)
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"the segmentation card's {what} cannot be used: {error}") from error


def card_ranker(card: Mapping) -> CandidateRanker | None:
    """The card's ``candidate_ranker`` (None for cards without one)."""
    return _card_entry(card, "candidate_ranker", CandidateRanker.from_card, "candidate ranker")


def card_growth(card: Mapping) -> OutlineGrowth | None:
    """The card's ``outline_growth`` (None for cards without one)."""
    return _card_entry(card, "outline_growth", OutlineGrowth.from_card, "outline growth")


def card_extent_choice(card: Mapping) -> ExtentChoice | None:
    """The card's ``extent_choice`` (None for cards without one)."""
    return _card_entry(card, "extent_choice", ExtentChoice.from_card, "extent choice")


def card_fill_slices(card: Mapping) -> bool:
    """Whether the card's ``outline_fill`` asks for holes filled slice by slice (absent or ``3d``: not)."""
    return _card_entry(card, "outline_fill", _parse_fill, "outline fill") or False


def _parse_fill(entry: object) -> bool:
    if entry not in OUTLINE_FILLS:
        raise ValueError(f"outline_fill must be one of {OUTLINE_FILLS}, got {entry!r}")
    return entry == "slices"


def segment_exam(
    phases: Mapping[str, Image | None],
    weights_path: str | Path = DEFAULT,
    device: torch.device | str | None = None,
    clinical: Mapping[str, object] | None = None,
) -> ExamSegmentation:
    """Breast region and tumour mask of one exam, on the post1 grid of ``phases``.

    ``clinical`` (the form) lends its tumour size to a card's ``extent_choice``; never a network input.

    ``phases`` needs ``pre`` and ``post1`` (``post2`` optional) on one grid. Raises
    MissingPhaseError, InvalidImageError (NaN, constant phase, no enhancement) or
    GeometryMismatchError before the model is loaded; AnatomyNotFoundError when a three-class
    model finds no breast; EmptyMaskError when no tumour candidate lies in the breasts.
    """
    aligned = check_phases(phases)
    return exam_from_canonical(aligned, segment_canonical(aligned, weights_path, device), clinical)


class InputGridOutline:
    """Maps a canonical-grid outline onto the post1 grid, redrawing its edge there when the card's growth
    has an ``input_band_mm`` (:func:`.outline.redraw_on_input_grid`): the input is usually finer than
    the network's grid, and a small tumour's edge is better placed on the voxels the user sees."""

    def __init__(self, aligned: Mapping[str, Image], breast: Image | None, seg: CanonicalSegmentation) -> None:
        self.reference, self.pre = aligned[REFERENCE_PHASE], aligned["pre"]
        self.growth, self.fill_slices = seg.growth, seg.fill_slices
        self.breast = None if breast is None else breast.array
        self.redraw = self.growth is not None and self.growth.input_band_mm is not None

    def __call__(self, outline_on_grid: Image) -> Image:
        mapped = resample_binary(outline_on_grid, self.reference)
        if not self.redraw or not mapped.array.any():
            return mapped
        redrawn = redraw_on_input_grid(mapped.array.astype(bool), self.pre.array, self.reference.array, self.breast,
                                       self.reference.spacing[::-1], self.growth)
        return mapped.with_array(fill_holes(redrawn, slices=self.fill_slices))


def exam_from_canonical(aligned: Mapping[str, Image], seg: CanonicalSegmentation,
                        clinical: Mapping[str, object] | None = None) -> ExamSegmentation:
    """The candidate choice and its mapping back onto the post1 grid (the second half of :func:`segment_exam`)."""
    region, grid = seg.region, seg.grid
    if region is not None and not region.any():
        raise AnatomyNotFoundError("no breast tissue was found in the exam: check that the phases are breast "
                                   "DCE-MRI covering both breasts (a breast-only field of view is fine)")
    breast_probability = seg.probabilities[BREAST] if len(seg.probabilities) > 2 else None
    named, midline = named_side(clinical), midline_mm(grid, region)
    found = select_candidates(seg.probabilities[-1], seg.threshold, region, seg.channels, grid.spacing, seg.ranker,
                              breast_probability, seg.growth, seg.fill_slices,
                              None if clinical is None else yardstick(clinical), seg.extent_choice,
                              None if named is None else half_of(grid, named, midline))
    chosen, n, discarded = found.chosen, found.n, found.discarded
    if not chosen.any():
        where = f" ({discarded} enhancing candidate(s) outside the breasts were ignored)" if discarded else ""
        raise EmptyMaskError(
            f"the segmentation model found no tumour in the breasts (no voxel above the card's threshold "
            f"{seg.threshold:g}){where}; check the phases are pre/post-contrast of the same study, or draw the "
            "tumour segment manually")
    reference = aligned[REFERENCE_PHASE]
    breast = None if region is None else resample_binary(grid.with_array(region), reference)
    to_input = InputGridOutline(aligned, breast, seg)
    mask = to_input(grid.with_array(chosen))
    if not mask.array.any():
        raise EmptyMaskError("the segmented tumour is smaller than one voxel of the input grid")
    volume = None if region is None else grid.volume_ml(region)
    runner_up = None if found.runner_up is None else to_input(grid.with_array(found.runner_up))
    if runner_up is not None and not runner_up.array.any():  # smaller than a voxel of the input grid
        runner_up = None
    log.debug("segmented %d voxels; %d candidate(s), %d outside the breasts", int(mask.array.sum()), n, discarded)
    margin = found.margin if runner_up is not None else None
    return ExamSegmentation(mask, breast, side_of(mask, midline), n, discarded, found.confidence,
                            bpe_index(seg.channels, region, chosen), volume, runner_up, margin,
                            seg.ranker is not None and seg.ranker.close_call(margin) and not found.by_extent,
                            found.by_extent, found.cut_from_ml, found.grown_from_ml, named, found.set_aside_other_side,
                            found.other_side_first, midline)


def segment_tumour(
    phases: Mapping[str, Image | None],
    weights_path: str | Path = DEFAULT,
    device: torch.device | str | None = None,
) -> Image:
    """Binary tumour mask (uint8) on the post1 grid of ``phases`` (see :func:`segment_exam`)."""
    return segment_exam(phases, weights_path, device).mask
