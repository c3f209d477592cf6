"""Tumour candidates of one exam and what describes each: the second stage of the segmentation.

The network finds every tumour of the development sets; what loses a tumour is the choice among
the components above threshold (enhancing parenchyma, a benign lesion, a node). A radiologist
tells these apart by more than how sure a detector is: size, shape, how strongly the lesion
enhances compared with the rest of the breast, washout, heterogeneity, where it lies. Computer-
aided detection calls this false-positive reduction; here it is a linear ranking of the
candidates of one exam on such descriptors (:class:`CandidateRanker`), whose coefficients live in
the segmentation card so that they always travel with the network whose probabilities they read.

Every descriptor is a ratio or a log of physical size, not a raw intensity: sites differ in gain,
fat suppression and resolution, and a ranker that read raw intensities would learn one site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_INSIDE_BREAST = 0.5  # a candidate's rim must lie at least this much in the breast region
# A candidate of fewer voxels (≈ 22 mm³ at 1.5 × 1.5 × 2 mm, a 3.5 mm sphere) is a speck, not a lesion to
# report: one bright voxel can out-score a tumour on mean probability, and a mask that small can
# vanish when mapped back onto a grid with thicker slices.
MIN_CANDIDATE_VOXELS = 5
PRE, POST1, POST2, SUBTRACTION = 0, 1, 2, 3  # channel order of the network input

FEATURES = ("log_volume_mm3", "mean_probability", "probability_gap", "log_relative_enhancement",
            "washout", "heterogeneity", "sphericity", "depth_mm", "surrounding_breast")
SHELL_MM = 4.0  # the rim around a candidate whose tissue tells what it sits in


@dataclass
class Candidates:
    """The components above threshold of one exam: labels, which may be chosen, and their descriptors."""

    labels: np.ndarray  # int component labels on the canonical grid (0 = none)
    n: int  # components above threshold
    outside: np.ndarray  # bool per component: mostly surrounded by something other than the breasts
    allowed: np.ndarray  # bool per component: inside the breasts and not a speck
    mean_probability: np.ndarray  # per component
    features: np.ndarray  # per component × FEATURES (NaN rows where not described: specks, outside unless asked)


def find_candidates(tumour_probability: np.ndarray, threshold: float, region: np.ndarray | None,
                    channels: np.ndarray | None = None, spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
                    breast_probability: np.ndarray | None = None, describe_outside: bool = False) -> Candidates:
    """Components of ``tumour_probability >= threshold`` and, with ``channels``, their descriptors.

    ``breast_probability`` (the network's breast class) says what tissue surrounds each candidate;
    without it (a two-class card) every candidate is taken to sit in the breast. Components outside
    the breasts are described only with ``describe_outside`` (training: they are what a ranker learns
    the heart from; inference never chooses them, and an allowed candidate's descriptors do not
    depend on which others are described).
    """
    labels, n = ndimage.label(tumour_probability >= threshold)
    index = np.arange(1, n + 1)
    means = ndimage.mean(tumour_probability, labels, index) if n else np.zeros(0)
    lesion = np.bincount(labels.ravel(), minlength=n + 1)[1:] >= MIN_CANDIDATE_VOXELS
    outside = lesion & (inside_fraction(labels, region, spacing_xyz, lesion) < MIN_INSIDE_BREAST)
    allowed = ~outside & lesion
    features = np.full((n, len(FEATURES)), np.nan)
    described = lesion if describe_outside else allowed
    if channels is not None and allowed.any():
        features[described] = _describe(labels, index[described], means, allowed, channels, region, spacing_xyz,
                                        breast_probability)
    return Candidates(labels, n, outside, allowed, np.asarray(means, float), features)


def inside_fraction(labels: np.ndarray, region: np.ndarray | None, spacing_xyz: Sequence[float],
                    which: np.ndarray | None = None) -> np.ndarray:
    """Per component of ``labels``: the share of its rim (``SHELL_MM`` around it, other components left
    out) that lies in the breast region (all ones without a region). Only the components ``which``
    (bool per component; default all) are measured, the others get NaN: an exam with a weak or
    untrained network has thousands of specks that are never candidates anyway.

    The rim, not the component itself: the region is the network's *breast* class, which a tumour
    is not, so a tumour lies in it only where breast tissue encloses it; a tumour against the chest
    wall is still mostly surrounded by breast, while the heart, even where it touches a breast, is
    surrounded by lung and mediastinum. (Counting the component's own voxels in a region of breast
    *or* tumour let the heart join the breast region wherever the two touched.)
    """
    n = int(labels.max())
    if region is None or n == 0:
        return np.ones(n)
    shell = _shell_voxels(spacing_xyz)
    fractions = np.full(n, np.nan)
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if which is not None and not which[label - 1]:
            continue
        box = _grow(box, labels.shape, shell)
        rim = _rim(labels[box] == label, labels[box] > 0, shell)
        fractions[label - 1] = region[box][rim].mean() if rim.any() else region[box][labels[box] == label].mean()
    return fractions


def _shell_voxels(spacing_xyz: Sequence[float]) -> np.ndarray:
    """``SHELL_MM`` in voxels along z, y, x (at least one)."""
    return np.maximum(np.rint(SHELL_MM / np.asarray(spacing_xyz, float)[::-1]).astype(int), 1)


def _rim(mask: np.ndarray, any_candidate: np.ndarray, shell: Sequence[int]) -> np.ndarray:
    """The voxels within ``shell`` of ``mask`` that belong to no candidate."""
    return ndimage.binary_dilation(mask, structure=_ellipsoid(shell)) & ~any_candidate


def _describe(labels: np.ndarray, chosen: np.ndarray, means: np.ndarray, allowed: np.ndarray,
              channels: np.ndarray, region: np.ndarray | None, spacing_xyz: Sequence[float],
              breast_probability: np.ndarray | None) -> np.ndarray:
    """FEATURES for the components ``chosen`` (1-based labels), row by row."""
    spacing_zyx = tuple(float(s) for s in spacing_xyz)[::-1]
    voxel_mm3 = float(np.prod(spacing_zyx))
    subtraction = channels[SUBTRACTION]
    reference = _breast_enhancement(subtraction, region, labels > 0)
    depth = depth_in_region(region, np.isin(labels, chosen), spacing_zyx) if region is not None else None
    best_mean = float(means[allowed].max())
    boxes = ndimage.find_objects(labels)
    shell = _shell_voxels(spacing_xyz)
    rows = []
    for label in chosen:
        box = _grow(boxes[label - 1], labels.shape, shell)
        mask = labels[box] == label
        enhancement = subtraction[box][mask]
        early = np.maximum(enhancement, 0.05)
        rows.append([
            np.log(mask.sum() * voxel_mm3),
            means[label - 1],
            means[label - 1] - best_mean,
            np.log(max(float(enhancement.mean()), 1e-3) / reference),
            float(np.clip((channels[POST2][box][mask] - channels[POST1][box][mask]) / early, -1, 1).mean()),
            float(enhancement.std() / max(abs(float(enhancement.mean())), 1e-3)),
            sphericity(mask, spacing_zyx),
            float(depth[box][mask].mean()) if depth is not None else 0.0,
            _surrounding(mask, labels[box] > 0, breast_probability[box] if breast_probability is not None else None, shell),
        ])
    return np.asarray(rows, float)


def depth_in_region(region: np.ndarray, where: np.ndarray, spacing_zyx: Sequence[float],
                    margin_mm: float = 30.0) -> np.ndarray:
    """Distance (mm) to the nearest voxel outside ``region``, exact at the voxels ``where``.

    The transform runs on the box around ``where`` grown by ``margin_mm``, not on the whole exam
    (most of the post-processing time otherwise). A voxel's distance found inside the box is exact
    when it is no larger than the voxel's distance to the box's edge: anything outside the box is
    farther away. Where that fails for any voxel of ``where``, the whole exam is transformed.
    """
    margin = np.ceil(margin_mm / np.asarray(spacing_zyx)).astype(int)
    box = bounding_box(where, margin)
    if box is None:
        return np.zeros(region.shape)
    inner = ndimage.distance_transform_edt(region[box], sampling=spacing_zyx)
    edge = np.full(inner.shape, np.inf)
    for axis, (s, n) in enumerate(zip(box, region.shape, strict=True)):
        index = np.arange(s.stop - s.start) * spacing_zyx[axis]
        shape = [1, 1, 1]
        shape[axis] = -1
        # distance to the box's low / high face, where the exam continues beyond it
        low = index + spacing_zyx[axis] if s.start > 0 else np.full(index.shape, np.inf)
        high = index[::-1] + spacing_zyx[axis] if s.stop < n else np.full(index.shape, np.inf)
        edge = np.minimum(edge, np.minimum(low, high).reshape(shape))
    if (inner[where[box]] > edge[where[box]]).any():
        return ndimage.distance_transform_edt(region, sampling=spacing_zyx)
    out = np.zeros(region.shape)
    out[box] = inner
    return out


def bounding_box(mask: np.ndarray, margin: Sequence[int]) -> tuple[slice, ...] | None:
    """Bounding box of ``mask``'s voxels grown by ``margin`` voxels per axis, clipped to the array (None when empty)."""
    found = ndimage.find_objects(mask.astype(np.uint8))
    return _grow(found[0], mask.shape, margin) if found else None


def _breast_enhancement(subtraction: np.ndarray, region: np.ndarray | None, candidates: np.ndarray) -> float:
    """The 95th percentile of the breasts' early enhancement outside every candidate (the exam's yardstick).

    Dividing a candidate's enhancement by it reads "how much more than this breast's brightest
    parenchyma", which does not change with gain, fat suppression or the phase-to-peak timing.
    """
    where = (region if region is not None else np.ones(subtraction.shape, bool)) & ~candidates
    values = subtraction[where]
    return max(float(np.percentile(values, 95)), 1e-3) if values.size else 1.0


def _grow(box: tuple[slice, ...], shape: tuple[int, ...], margin: Sequence[int]) -> tuple[slice, ...]:
    """A component's bounding box plus ``margin`` voxels each way (its surface faces and rim are inside it)."""
    return tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, n, m in zip(box, shape, margin, strict=True))


def _surrounding(mask: np.ndarray, any_candidate: np.ndarray, breast: np.ndarray | None, shell: Sequence[int]) -> float:
    """Mean breast-class probability in a rim of ``SHELL_MM`` around the candidate (other candidates left out).

    A tumour, a benign lesion or enhancing parenchyma sits in breast tissue; the heart, great vessels,
    nodes and lung do not, even where the breast region the network drew runs into them.
    """
    if breast is None:
        return 1.0
    rim = _rim(mask, any_candidate, shell)
    return float(breast[rim].mean()) if rim.any() else 0.0


def _ellipsoid(radius: Sequence[int]) -> np.ndarray:
    """A structuring element of the given radius (voxels) per axis: millimetres on an anisotropic grid."""
    z, y, x = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    return (z / radius[0]) ** 2 + (y / radius[1]) ** 2 + (x / radius[2]) ** 2 <= 1.0


def sphericity(mask: np.ndarray, spacing_zyx: Sequence[float]) -> float:
    """π^⅓ (6V)^⅔ / A with the surface A counted as voxel faces (1 for a sphere, less for spiculated or flat).

    Face counting overestimates a smooth surface (a digitised sphere scores ≈ 0.66), which is the
    same for every candidate; only the order matters to the ranker.
    """
    padded = np.pad(mask, 1)
    dz, dy, dx = spacing_zyx
    face = {0: dy * dx, 1: dz * dx, 2: dz * dy}
    area = sum(np.count_nonzero(np.diff(padded.astype(np.int8), axis=a)) * face[a] for a in range(3))
    volume = mask.sum() * dz * dy * dx
    return float(np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area) if area else 0.0


@dataclass(frozen=True)
class CandidateRanker:
    """A linear score on standardised FEATURES; the exam's highest-scoring allowed candidate is the tumour.

    Learnt from pairs (the tumour against each other candidate of the same exam), so it ranks
    candidates within an exam rather than judging them in isolation, as the choice needs.

    With ``clip_z`` (2.8.1's card) each standardised feature is clipped to ±``clip_z`` first: a linear
    score extrapolates without bound, and a candidate unlike any in training — a few voxels with
    almost no uptake, whose heterogeneity (spread over mean uptake) is 85 SD out — outscored a 100 ml
    tumour on that one feature.

    With ``close_margin`` (2.9.1's card) a choice whose score leads the runner-up's by less is a
    *close call*: on training exams most wrong choices were close calls and few right ones were
    (``training.breast_candidates --close-catch``), so the user is told to compare the two.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    clip_z: float | None = None
    close_margin: float | None = None

    @classmethod
    def from_card(cls, entry: Mapping) -> CandidateRanker:
        """The card's ``candidate_ranker`` entry (raises ValueError when it does not match FEATURES)."""
        names = tuple(entry["features"])
        if names != FEATURES:
            raise ValueError(f"candidate ranker features {names} do not match this version's {FEATURES}")
        arrays = [np.asarray(entry[k], float) for k in ("mean", "scale", "weights")]
        if any(a.shape != (len(FEATURES),) or not np.isfinite(a).all() for a in arrays) or (arrays[1] <= 0).any():
            raise ValueError("candidate ranker mean / scale / weights must be finite, one per feature, scale > 0")
        clip, close = (_positive_below_100(entry, key) for key in ("clip_z", "close_margin"))
        return cls(names, *arrays, clip, close)

    def to_card(self) -> dict:
        """The JSON-serialisable entry :meth:`from_card` reads."""
        entry = {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                 "weights": self.weights.tolist()}
        optional = {"clip_z": self.clip_z, "close_margin": self.close_margin}
        return entry | {key: value for key, value in optional.items() if value is not None}

    def close_call(self, margin: float | None) -> bool:
        """Whether a choice leading its runner-up by ``margin`` is a close call (never without a card margin
        or without a runner-up)."""
        return self.close_margin is not None and margin is not None and margin < self.close_margin

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores of candidate rows (higher = more tumour-like)."""
        standardised = (features - self.mean) / self.scale
        if self.clip_z is not None:
            standardised = np.clip(standardised, -self.clip_z, self.clip_z)
        return standardised @ self.weights


def _positive_below_100(entry: Mapping, key: str) -> float | None:
    """The card entry's optional ``key`` as a float in (0, 100) (None when absent; ValueError otherwise)."""
    value = entry.get(key)
    if value is not None and not (isinstance(value, (int, float)) and 0 < value < 100):
        raise ValueError(f"candidate ranker {key} must be a number in (0, 100), got {value!r}")
    return None if value is None else float(value)


def ranked(candidates: Candidates, ranker: CandidateRanker | None) -> tuple[np.ndarray, np.ndarray]:
    """1-based labels of the allowed candidates, most tumour-like first, and their scores.

    Without a ranker the score is the mean probability (the network's confidence in the whole object;
    a tumour is confidently tumour throughout, while enhancing parenchyma peaks in places).
    """
    index = np.flatnonzero(candidates.allowed)
    if not len(index):
        return np.zeros(0, int), np.zeros(0)
    score = candidates.mean_probability[index] if ranker is None else ranker.score(candidates.features[index])
    order = np.argsort(-score, kind="stable")
    return index[order] + 1, np.asarray(score, float)[order]


def choose(candidates: Candidates, ranker: CandidateRanker | None) -> int | None:
    """1-based label of the chosen candidate (None when none is allowed): the first of :func:`ranked`."""
    labels, _ = ranked(candidates, ranker)
    return int(labels[0]) if len(labels) else None
