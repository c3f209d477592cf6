"""One DCE exam's kinetics: PE, SER and kinetic-class maps, and the lesion's FTV, worst curve and curves.

Definitions (docs/kinetics.md, shared/method/dce-kinetics.md), every threshold in
:class:`KineticsConfig`:

- PE = 100 · (S1 − S0) / S0 and the late change C = 100 · (S2 − S1) / S1 are computed only where
  the pre-contrast signal S0 reaches the *background level* (``background_fraction`` × the
  exam's 99th pre-contrast percentile). Below it (air, S0 = 0, signal voids) the ratio is
  meaningless, so those voxels are *excluded*, never divided: 0 in the PE/SER maps, class 0
  ("not assessed"). A lesion ROI in which no voxel reaches the background level is refused
  (:class:`NoPreContrastSignalError`): every number would be made up.
- Kinetic class where PE ≥ ``kinetic_min_pe`` (a voxel that barely enhances has no curve
  shape): persistent C > +10 %, plateau −10 % ≤ C ≤ +10 %, washout C < −10 %.
- SER = (S1 − S0) / (S2 − S0) where the voxel is classified and the late enhancement
  (S2 − S0) / S0 reaches ``ser_min_late_enhancement`` %; elsewhere undefined (0 in the map),
  never infinite.
- FTV (I-SPY): ROI voxels with S0 at or above the background level and PE ≥ ``pe_threshold``;
  volume = count × voxel volume, partitioned by SER bins (the voxels with undefined SER in
  their own bin, so the parts add up to the FTV).
- Worst curve: the most suspicious class (washout > plateau > persistent) covering at least
  ``worst_min_fraction`` of the ROI's classified voxels and ``worst_min_voxels`` voxels, so a
  few noisy voxels cannot make a lesion "washout" (if no class qualifies, the majority class).
- Majority class: the class of most classified ROI voxels.
- Longest diameter: maximum Feret diameter (mm) between voxel centres of the FTV and of the ROI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from responseai.breast.preprocess import check_mask, check_phases
from responseai.errors import InvalidImageError, MissingPhaseError
from responseai.image import Image
from responseai.kinetics.constants import (
    CLASS_NAMES, KINETIC_TYPES, NOT_ASSESSED, PERSISTENT, PHASES, PLATEAU, WASHOUT,
)


class NoPreContrastSignalError(InvalidImageError):
    """The lesion ROI has no voxel whose pre-contrast signal can be divided by (S0 at background / zero)."""


@dataclass(frozen=True)
class KineticsConfig:
    """Every threshold of the kinetic analysis, in one place (written into result.json and the report)."""

    pe_threshold: float = 70.0  # % early enhancement for a voxel to count in the FTV (I-SPY default)
    background_fraction: float = 0.10  # S0 below this × p99(S0 of the exam) is background: excluded
    kinetic_min_pe: float = 50.0  # % early enhancement for a voxel to get a kinetic class
    persistent_above: float = 10.0  # % late change C above which the curve is persistent
    washout_below: float = -10.0  # % late change C below which the curve is washout
    ser_min_late_enhancement: float = 5.0  # % (S2 − S0)/S0 below which SER is undefined
    ser_bins: tuple[float, float] = (0.9, 1.3)  # SER partition of the FTV: < 0.9, 0.9–1.3, > 1.3
    worst_min_fraction: float = 0.10  # share of the classified ROI voxels a class needs to be the worst curve
    worst_min_voxels: int = 3
    # the curve plot's x axis only, per exam: nominal, or the chosen frames' own times when a DCE series gave them
    phase_times_s: tuple[float, float, float] = (0.0, 120.0, 420.0)
    followup_phase_times_s: tuple[float, float, float] = (0.0, 120.0, 420.0)

    def __post_init__(self) -> None:
        if not self.washout_below < self.persistent_above:
            raise ValueError("washout_below must be below persistent_above")
        if self.kinetic_min_pe <= 0:
            raise ValueError("kinetic_min_pe must be positive (a curve shape needs enhancement)")
        if not 0 < self.background_fraction < 1:
            raise ValueError("background_fraction must be in (0, 1)")
        if not self.ser_bins[0] < self.ser_bins[1]:
            raise ValueError("ser_bins must increase")
        if any(len(t) != 3 or not t[0] < t[1] < t[2] for t in (self.phase_times_s, self.followup_phase_times_s)):
            raise ValueError("phase times must be three increasing seconds (pre, post1, post2)")

    def record(self) -> dict:
        return asdict(self)

    def ser_bin_names(self) -> tuple[str, str, str, str]:
        low, high = self.ser_bins
        return (f"SER < {low:g}", f"SER {low:g}–{high:g}", f"SER > {high:g}", "SER undefined")


#: each exam's curve-plot times in a KineticsConfig
PHASE_TIME_FIELDS = {"baseline": "phase_times_s", "followup": "followup_phase_times_s"}


def phase_times(config: Mapping) -> dict[str, tuple[float, ...]]:
    """Each exam's phase times from a recorded config (``result.json``); a record written before the follow-up had
    its own times draws the follow-up at the baseline's, as it was drawn then."""
    baseline = tuple(float(t) for t in config[PHASE_TIME_FIELDS["baseline"]])
    followup = config.get(PHASE_TIME_FIELDS["followup"])
    return {"baseline": baseline, "followup": baseline if followup is None else tuple(float(t) for t in followup)}


@dataclass
class KineticMaps:
    """Voxel maps on the phases' grid: PE (%), SER, kinetic class (0–3), and where S0 was usable."""

    pe: Image
    ser: Image
    kinetic_class: Image
    assessable: np.ndarray  # bool: S0 at or above the background level
    background_level: float


def require_phases(phases: Mapping[str, Image | None], exam: str = "baseline") -> None:
    """All three phases present: kinetics needs the late one, which the breast models can do without."""
    missing = [name for name in PHASES if phases.get(name) is None]
    if missing:
        raise MissingPhaseError(f"{exam} exam: DCE kinetics needs the pre-contrast, early (post1) and late (post2) "
                                f"phases; missing: {', '.join(missing)}")


def check_dce(phases: Mapping[str, Image | None], mask: Image, resample: bool = False,
              exam: str = "baseline") -> tuple[dict[str, Image], Image]:
    """The three phases checked by the breast family's rules, and the ROI on the post1 grid.

    ``check_phases`` gives the specific errors (constant phase, no enhancement, NaN, grids that
    differ); the mask must be non-empty on the post1 grid (``EmptyMaskError`` otherwise).
    """
    require_phases(phases, exam)
    images = check_phases({name: phases[name] for name in PHASES}, resample)
    return images, check_mask(mask, images["post1"], resample)


def kinetic_maps(phases: Mapping[str, Image], config: KineticsConfig) -> KineticMaps:
    """PE, SER and class maps of checked phases (excluded voxels are 0; see the module docstring)."""
    s0, s1, s2 = (phases[name].array.astype(np.float64) for name in PHASES)
    level = config.background_fraction * float(np.percentile(s0, 99))
    assessable = (s0 >= level) & (s0 > 0)
    safe_s0 = np.where(assessable, s0, 1.0)
    pe = np.where(assessable, 100.0 * (s1 - s0) / safe_s0, 0.0)
    classified = assessable & (pe >= config.kinetic_min_pe)
    change = 100.0 * (s2 - s1) / np.where(classified, s1, 1.0)  # s1 > s0 > 0 where classified
    klass = np.full(s0.shape, NOT_ASSESSED, np.uint8)
    klass[classified & (change > config.persistent_above)] = PERSISTENT
    klass[classified & (change >= config.washout_below) & (change <= config.persistent_above)] = PLATEAU
    klass[classified & (change < config.washout_below)] = WASHOUT
    late = s2 - s0
    ser_defined = classified & (late >= config.ser_min_late_enhancement / 100.0 * safe_s0)
    ser = np.where(ser_defined, (s1 - s0) / np.where(ser_defined, late, 1.0), 0.0)
    grid = phases["post1"]
    return KineticMaps(grid.with_array(pe.astype(np.float32)), grid.with_array(ser.astype(np.float32)),
                       grid.with_array(klass), assessable, level)


def world_points(mask: np.ndarray, grid: Image) -> np.ndarray:
    """LPS millimetres (N, 3) of the voxel centres where ``mask`` is set on ``grid``."""
    kji = np.argwhere(mask)
    return (kji[:, ::-1] * np.asarray(grid.spacing)) @ grid.direction.T + np.asarray(grid.origin)


def longest_diameter_mm(mask: np.ndarray, grid: Image) -> float:
    """Maximum Feret diameter (mm) between voxel centres of ``mask`` (0 for fewer than two voxels)."""
    points = world_points(mask, grid)
    if len(points) < 2:
        return 0.0
    try:
        points = points[ConvexHull(points, qhull_options="QJ").vertices]
    except QhullError:
        pass  # fewer than 4 points or all on a line: the points themselves are few
    return float(pdist(points).max())


def worst_curve(counts: Mapping[str, int], config: KineticsConfig) -> str | None:
    """The most suspicious class with enough voxels (see the module docstring); None if nothing is classified."""
    total = sum(counts.values())
    needed = max(config.worst_min_voxels, config.worst_min_fraction * total)
    for name in reversed(KINETIC_TYPES):
        if total and counts[name] >= needed:
            return name
    return max(counts, key=counts.get) if total else None


def _curves(phases: Mapping[str, Image], groups: Mapping[str, np.ndarray]) -> dict[str, list[float] | None]:
    """Mean relative enhancement 100 · (S_t / S0 − 1) per phase over each voxel group (None if empty)."""
    s0 = phases["pre"].array.astype(np.float64)
    curves: dict[str, list[float] | None] = {}
    for name, voxels in groups.items():
        if not voxels.any():
            curves[name] = None
            continue
        base = s0[voxels]
        curves[name] = [float(np.mean(100.0 * (phases[p].array[voxels] / base - 1.0))) for p in PHASES]
    return curves


def lesion_summary(phases: Mapping[str, Image], roi: Image, maps: KineticMaps, config: KineticsConfig) -> dict:
    """FTV (+ SER partition), class shares, worst curve, PE/SER statistics, diameters and curves of one ROI."""
    inside = roi.array > 0
    usable = inside & maps.assessable
    if not usable.any():
        raise NoPreContrastSignalError(
            f"lesion ROI: none of its {int(inside.sum())} voxels has a pre-contrast signal at or above the background "
            f"level {maps.background_level:.4g} (S0 = 0 or air): percent enhancement is undefined there. Check the "
            "mask is on the lesion and the pre-contrast phase is the right series")
    pe, ser, klass = maps.pe.array, maps.ser.array, maps.kinetic_class.array
    ftv = usable & (pe >= config.pe_threshold)
    vml = roi.voxel_volume_ml
    low, high = config.ser_bins
    ser_ok = ftv & (ser > 0)
    parts = (ser_ok & (ser < low), ser_ok & (ser >= low) & (ser <= high), ser_ok & (ser > high), ftv & ~ser_ok)
    counts = {CLASS_NAMES[value]: int(np.count_nonzero(inside & (klass == value)))
              for value in (PERSISTENT, PLATEAU, WASHOUT)}
    classified = sum(counts.values())
    groups = {"FTV (all enhancing)": ftv, **{name: inside & (klass == value) for value, name in CLASS_NAMES.items()
                                             if value != NOT_ASSESSED}}
    return {
        "roi_voxels": int(inside.sum()),
        "roi_volume_ml": int(inside.sum()) * vml,
        "excluded_background_voxels": int(np.count_nonzero(inside & ~maps.assessable)),
        "background_level": maps.background_level,
        "ftv_voxels": int(ftv.sum()),
        "ftv_ml": int(ftv.sum()) * vml,
        "ftv_by_ser_ml": {name: int(part.sum()) * vml for name, part in zip(config.ser_bin_names(), parts)},
        "class_voxels": counts,
        "class_fractions": {name: (n / classified if classified else 0.0) for name, n in counts.items()},
        "majority_class": max(counts, key=counts.get) if classified else None,
        "worst_curve": worst_curve(counts, config),
        "mean_pe_ftv": float(pe[ftv].mean()) if ftv.any() else None,
        "peak_pe": float(pe[usable].max()),
        "mean_ser_ftv": float(ser[ser_ok].mean()) if ser_ok.any() else None,
        "longest_diameter_ftv_mm": longest_diameter_mm(ftv, roi),
        "longest_diameter_roi_mm": longest_diameter_mm(inside, roi),
        "curves": _curves(phases, groups),
    }


def analyse_exam(phases: Mapping[str, Image | None], mask: Image, config: KineticsConfig,
                 resample: bool = False, exam: str = "baseline") -> tuple[dict[str, Image], Image, KineticMaps, dict]:
    """Checked phases, ROI, maps and the ROI summary of one exam."""
    images, roi = check_dce(phases, mask, resample, exam)
    maps = kinetic_maps(images, config)
    return images, roi, maps, lesion_summary(images, roi, maps, config)
