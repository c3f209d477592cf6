"""Deterministic breast DCE phantom exams with known kinetics, FTV and a follow-up at a known pose.

Why: no DCE-MRI of real patients is available here, and the kinetic analysis must be checked
against a truth. Each case is a small three-phase exam (pre, post1, post2; 24 × 64 × 80 voxels
of 1.25 × 1.25 × 2.5 mm) rendered *analytically* at every voxel centre in LPS millimetres, so
any grid (a RAS-stored or sagittal follow-up, a rotated pose) shows the same anatomy without
interpolation:

- air (S0 ≈ 0 with Rician-like noise), a breast ellipsoid of fat (S0 300, PE ≈ 5 %),
  fibroglandular tissue from a smooth random field (S0 140, background enhancement PE 15–45 %,
  persistent) and a posterior muscle slab (S0 110, PE 15 %);
- one or two lobulated lesions (three overlapping spheres, radius 6–10 mm; S0 ≈ 150) with a
  known kinetic type each: late factor S2/S1 = 1.20 (persistent), 1.00 (plateau) or 0.80
  (washout), ± a smooth ±0.06 field; early PE 120–220 % ± 25 % heterogeneity, and in half of
  them a non-enhancing necrotic core (PE 10 %);
- a Gaussian point-spread (σ = 0.4 voxel: boundary voxels mix lesion and fat, as partial volume
  does) and Gaussian noise (σ = 3 % of fat) on every phase, magnitude taken (no negative signal).

Truth: each lesion's type and *true enhancing volume* = its voxels with noiseless, unblurred PE ≥ 70 %
(the FTV threshold) × voxel volume, counted on the grid the exam is stored on. The mask
(``mask``) is lesion 0 dilated by two voxels, as a radiologist's VOI.

Follow-up: the same body moved by a known rigid transform (rotations ±6°, translations ±8 mm)
and stored in another orientation (LPS, RAS or sagittal). Each patient draws a pathological
complete response label ``pcr`` (Bernoulli(0.3)) and lesion 0's response follows it (issue 13):
pCR → ``response`` "shrinking" (radius × 0.35–0.6, PE × 0.6, so much of the residual falls
under the FTV threshold, as a responding tumour's enhancement does); no pCR → "non-shrinking"
(radius × 0.85–1.0, PE unchanged: stable or a mild partial response). The second lesion is
untreated. The follow-up mask is the follow-up lesion dilated by two voxels on the follow-up
grid; its true enhancing volume is counted likewise, so the true ΔFTV is exact for the grids the
analysis sees (and may be −100 % after a pCR: no residual voxel above the threshold).

Every case draws from its own ``SeedSequence([seed, index])``: same seed, same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from responseai.image import Image
from responseai.kinetics.analysis import world_points
from responseai.kinetics.constants import FOLLOWUP_PREFIX, KINETIC_TYPES, PHASES
from responseai.synthetic.cohort import cohort_parser, parse_cohort_args, write_case_images, write_cohort_files

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.1"  # 1.1: follow-up response drawn from a per-case pCR label
SHAPE = (24, 64, 80)  # z, y, x
SPACING = (1.25, 1.25, 2.5)  # x, y, z mm
LATE_FACTOR = {"persistent": 1.20, "plateau": 1.00, "washout": 0.80}
FTV_PE_THRESHOLD = 70.0  # the truth uses the FTV default threshold
FAT_S0, FIBRO_S0, MUSCLE_S0, LESION_S0 = 300.0, 140.0, 110.0, 150.0
NOISE = 0.03 * FAT_S0
PSF_SIGMA_VOXELS = 0.4  # Gaussian point-spread of the acquisition: boundary voxels mix tissues (partial volume)
VOI_MARGIN = 2  # voxels of dilation around a lesion for its mask
PCR_PREVALENCE = 0.30  # share of phantom patients with a pathological complete response
# Lesion 0 at follow-up by pCR label: (radius factor range, PE factor). The smallest residual
# (6 mm × 0.35 = 2.1 mm) still holds a voxel centre (half a voxel diagonal is 1.53 mm), so its
# mask is never empty.
RESPONSE_BY_PCR = {True: ((0.35, 0.60), 0.6), False: ((0.85, 1.00), 1.0)}
FIELD_SPACING = 3.0  # mm, lattice of the smooth random fields
# Orientation codes → direction matrices (columns: i, j, k axes in LPS).
ORIENTATIONS = {
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1.0, 1.0]),
    "sagittal": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # i → P, j → I, k → L
}
MANIFEST_COLUMNS = ("patient_id", "n_lesions", "kinetic_type", "second_kinetic_type", "pcr", "response", "orientation",
                    "followup_orientation", *PHASES, "mask", *(FOLLOWUP_PREFIX + p for p in PHASES), "followup_mask",
                    "true_ftv_ml", "followup_true_ftv_ml", "true_delta_ftv_percent")


@dataclass(frozen=True)
class Lesion:
    """A lobulated lesion in body (baseline LPS) millimetres with its kinetics."""

    centres: np.ndarray  # (3 lobes, xyz)
    radii: np.ndarray  # (3,)
    kinetic_type: str
    pe: float  # mean early enhancement, %
    necrotic: bool

    def scaled(self, factor: float, pe_factor: float) -> "Lesion":
        """The same lesion shrunk about its first lobe's centre (treatment response)."""
        centre = self.centres[0]
        return Lesion(centre + (self.centres - centre) * factor, self.radii * factor, self.kinetic_type,
                      self.pe * pe_factor, self.necrotic)

    def inside(self, points: np.ndarray) -> np.ndarray:
        distance = np.linalg.norm(points[:, None, :] - self.centres[None], axis=2)
        return np.any(distance <= self.radii[None], axis=1)

    def core(self, points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points - self.centres[0], axis=1) <= 0.45 * self.radii[0]


@dataclass
class Anatomy:
    """The body in baseline LPS mm: breast ellipsoid, smooth fields, lesions."""

    centre: np.ndarray
    radii: np.ndarray
    lesions: list[Lesion]
    fields: np.ndarray  # (3, nz, ny, nx): fibroglandular density, PE heterogeneity, late-factor heterogeneity
    field_origin: np.ndarray

    def sample_fields(self, points: np.ndarray) -> np.ndarray:
        index = ((points - self.field_origin) / FIELD_SPACING)[:, ::-1].T  # z, y, x lattice coordinates
        return np.stack([ndimage.map_coordinates(f, index, order=1, mode="nearest") for f in self.fields])


@dataclass
class Exam:
    """Three phases on one grid, the VOI mask of lesion 0, and per-lesion labels + truth."""

    phases: dict[str, Image]
    mask: Image
    lesion_labels: Image  # 0 background, i + 1 lesion i
    true_enhancing_ml: list[float]  # per lesion
    orientation: str


@dataclass
class KineticsCase:
    """One phantom patient: baseline and follow-up exams and the follow-up's true pose."""

    patient_id: str
    baseline: Exam
    followup: Exam
    kinetic_types: list[str]
    pcr: bool  # pathological complete response: what the follow-up's shrinkage follows
    response: str  # "shrinking" (pCR) or "non-shrinking"
    transform: sitk.Euler3DTransform  # baseline point → follow-up point (what registration should find)
    truth: dict = field(default_factory=dict)


def grid(shape: tuple[int, int, int], spacing, centre: np.ndarray, orientation: str) -> Image:
    """An empty grid of ``shape`` (z, y, x) and ``spacing`` (i, j, k) centred on ``centre`` (LPS mm)."""
    direction = ORIENTATIONS[orientation]
    extent = (np.asarray(shape[::-1]) - 1) * np.asarray(spacing)
    origin = centre - direction @ (extent / 2)
    return Image(np.zeros(shape, np.float32), spacing, tuple(origin), direction)


def voxel_points(image: Image) -> np.ndarray:
    """LPS mm of every voxel centre, in array (z, y, x) order, as (N, 3)."""
    return world_points(np.ones(image.shape, bool), image)


def _draw_anatomy(rng: np.random.Generator, centre: np.ndarray, n_lesions: int) -> Anatomy:
    radii = np.array([44.0, 30.0, 24.0]) * rng.uniform(0.9, 1.05, 3)
    lattice = tuple(int(np.ceil(2 * r / FIELD_SPACING)) + 8 for r in radii[::-1])
    fields = np.stack([ndimage.gaussian_filter(rng.normal(size=lattice), s) for s in (2.0, 1.5, 1.5)])
    fields /= fields.std(axis=(1, 2, 3), keepdims=True)
    origin = centre - (np.asarray(lattice[::-1]) - 1) * FIELD_SPACING / 2
    types = list(rng.choice(KINETIC_TYPES, size=n_lesions, replace=False))
    lesions: list[Lesion] = []
    while len(lesions) < n_lesions:
        radius = rng.uniform(6.0, 10.0)
        lesion_centre = centre + rng.uniform(-1, 1, 3) * np.array([22.0, 8.0, 8.0]) - np.array([0.0, 6.0, 0.0])
        if any(np.linalg.norm(lesion_centre - other.centres[0]) < radius + other.radii[0] + 10 for other in lesions):
            continue
        offsets = rng.normal(0, 0.35 * radius, (2, 3))
        lobes = np.vstack([lesion_centre, lesion_centre + offsets])
        lesions.append(Lesion(lobes, np.array([radius, *(radius * rng.uniform(0.5, 0.7, 2))]), str(types[len(lesions)]),
                              rng.uniform(120.0, 220.0), bool(rng.random() < 0.5)))
    return Anatomy(centre, radii, lesions, fields, origin)


def _render(anatomy: Anatomy, points: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Noiseless S0, S1, S2 at body points; per-point lesion label and PE (the truth)."""
    density, pe_field, late_field = anatomy.sample_fields(points)
    r = np.linalg.norm((points - anatomy.centre) / anatomy.radii, axis=1)
    body = r <= 1.0
    posterior = points[:, 1] - anatomy.centre[1]
    muscle = body & (posterior > 0.55 * anatomy.radii[1])
    fibro = body & ~muscle & (r < 0.8) & (density > 0.2)
    s0 = np.zeros(len(points))
    pe = np.zeros(len(points))
    late = np.ones(len(points))
    fat = body & ~muscle & ~fibro
    s0[fat], pe[fat], late[fat] = FAT_S0, 5.0, 1.02
    s0[fibro], pe[fibro], late[fibro] = FIBRO_S0, np.clip(30 + 8 * pe_field[fibro], 15, 45), 1.15
    s0[muscle], pe[muscle], late[muscle] = MUSCLE_S0, 15.0, 1.05
    labels = np.zeros(len(points), np.uint8)
    for index, lesion in enumerate(anatomy.lesions):
        voxels = lesion.inside(points)
        labels[voxels] = index + 1
        s0[voxels] = LESION_S0 * (1 + 0.05 * density[voxels])
        pe[voxels] = lesion.pe * (1 + 0.25 * np.clip(pe_field[voxels], -1, 1))
        if lesion.necrotic:
            pe[voxels & lesion.core(points)] = 10.0
        late[voxels] = LATE_FACTOR[lesion.kinetic_type] + 0.06 * np.clip(late_field[voxels], -1, 1)
    s1 = s0 * (1 + pe / 100)
    clean = {"pre": s0, "post1": s1, "post2": s1 * late}
    return clean, labels, pe


def _exam(anatomy: Anatomy, empty: Image, pose: sitk.Euler3DTransform | None, rng: np.random.Generator,
          orientation: str) -> Exam:
    """Render an exam on ``empty``'s grid; the body was moved by ``pose`` (None: the baseline frame)."""
    points = voxel_points(empty)
    if pose is not None:
        points = _transform_points(pose, points, inverse=True)
    signals, labels, pe = _render(anatomy, points, rng)
    phases = {}
    for name in PHASES:
        blurred = ndimage.gaussian_filter(signals[name].reshape(empty.shape), PSF_SIGMA_VOXELS)
        phases[name] = empty.with_array(np.abs(blurred + rng.normal(0, NOISE, empty.shape)).astype(np.float32))
    label_image = empty.with_array(labels.reshape(empty.shape))
    enhancing = (pe >= FTV_PE_THRESHOLD).reshape(empty.shape)
    volume_ml = empty.voxel_volume_ml
    true_ml = [float(np.count_nonzero((label_image.array == i + 1) & enhancing)) * volume_ml
               for i in range(len(anatomy.lesions))]
    return Exam(phases, lesion_voi(label_image, 0), label_image, true_ml, orientation)


def lesion_voi(labels: Image, index: int) -> Image:
    """Lesion ``index``'s VOI: its voxels dilated by :data:`VOI_MARGIN` (a radiologist's ROI with a margin)."""
    return labels.with_array(ndimage.binary_dilation(labels.array == index + 1, iterations=VOI_MARGIN).astype(np.uint8))


def _transform_points(transform: sitk.Euler3DTransform, points: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Apply a rigid transform (or its inverse) to many points at once: y = R (x − c) + c + t."""
    matrix = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    shift = centre + np.asarray(transform.GetTranslation())
    if inverse:
        return (points - shift) @ matrix + centre
    return (points - centre) @ matrix.T + shift


def _followup_grid(baseline: Image, pose: sitk.Euler3DTransform, orientation: str) -> Image:
    """A grid in ``orientation`` covering the moved baseline field of view (same in-plane / slice spacing)."""
    direction = ORIENTATIONS[orientation]
    low, high = baseline.physical_extent()
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    moved = _transform_points(pose, corners)
    spacing = np.abs(direction.T) @ np.asarray(baseline.spacing)  # each stored axis keeps its physical axis's spacing
    local = moved @ direction  # coordinates along the new i, j, k axes
    size = np.ceil((local.max(0) - local.min(0)) / spacing).astype(int) + 1
    centre = direction @ ((local.max(0) + local.min(0)) / 2)
    return grid(tuple(int(s) for s in size[::-1]), tuple(spacing), centre, orientation)


def generate_case(seed: int, index: int) -> KineticsCase:
    """Case ``index`` of cohort ``seed`` (see the module docstring); well under a second."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    orientation = str(rng.choice(["LPS", "RAS"]))
    centre = rng.uniform(-20, 20, 3)
    anatomy = _draw_anatomy(rng, centre, int(rng.integers(1, 3)))
    baseline = _exam(anatomy, grid(SHAPE, SPACING, centre, orientation), None, rng, orientation)
    pcr = bool(rng.random() < PCR_PREVALENCE)
    response = "shrinking" if pcr else "non-shrinking"
    (low, high), pe_factor = RESPONSE_BY_PCR[pcr]
    treated = anatomy.lesions[0].scaled(rng.uniform(low, high), pe_factor)
    after = Anatomy(anatomy.centre, anatomy.radii, [treated, *anatomy.lesions[1:]], anatomy.fields, anatomy.field_origin)
    pose = sitk.Euler3DTransform(tuple(map(float, anatomy.lesions[0].centres[0])),
                                 *np.radians(rng.uniform(-6, 6, 3)), tuple(rng.uniform(-8, 8, 3)))
    followup_orientation = str(rng.choice(list(ORIENTATIONS)))
    followup = _exam(after, _followup_grid(baseline.phases["post1"], pose, followup_orientation),
                     pose, rng, followup_orientation)
    truth_delta = 100 * (followup.true_enhancing_ml[0] - baseline.true_enhancing_ml[0]) / baseline.true_enhancing_ml[0]
    truth = {"kinetic_types": [lesion.kinetic_type for lesion in anatomy.lesions], "pcr": pcr, "response": response,
             "true_ftv_ml": baseline.true_enhancing_ml, "followup_true_ftv_ml": followup.true_enhancing_ml,
             "true_delta_ftv_percent": truth_delta, "pose_rotation_deg": [float(a) for a in np.degrees(pose.GetParameters()[:3])],
             "pose_translation_mm": [float(t) for t in pose.GetParameters()[3:]], "orientation": orientation,
             "followup_orientation": followup_orientation}
    types = [lesion.kinetic_type for lesion in anatomy.lesions]
    return KineticsCase(f"KIN{seed:03d}-{index:04d}", baseline, followup, types, pcr, response, pose, truth)


def _write_case(args: tuple[int, int, str]) -> dict:
    """Worker: one case's NRRD files (baseline phases + mask, follow-up phases + mask) and its rows."""
    seed, index, out = args
    case = generate_case(seed, index)
    images = {**case.baseline.phases, **{FOLLOWUP_PREFIX + n: im for n, im in case.followup.phases.items()},
              "followup_mask": case.followup.mask}
    files = write_case_images(out, case.patient_id, images, case.baseline.mask)
    row = {"patient_id": case.patient_id, "n_lesions": len(case.kinetic_types), "kinetic_type": case.kinetic_types[0],
           "second_kinetic_type": case.kinetic_types[1] if len(case.kinetic_types) > 1 else "",
           "pcr": int(case.pcr), "response": case.response, "orientation": case.baseline.orientation,
           "followup_orientation": case.followup.orientation, **files,
           "true_ftv_ml": case.baseline.true_enhancing_ml[0], "followup_true_ftv_ml": case.followup.true_enhancing_ml[0],
           "true_delta_ftv_percent": case.truth["true_delta_ftv_percent"]}
    return {"row": row, "truth": {"patient_id": case.patient_id, **case.truth}}


def write_cohort(out: str | Path, n: int, seed: int, workers: int = 2) -> pd.DataFrame:
    """Generate ``n`` cases into ``out`` (images/, manifest.csv, truth.csv, cohort.json)."""
    meta = {"generator": "responseai.kinetics.phantom", "version": GENERATOR_VERSION, "shape_zyx": SHAPE,
            "spacing_xyz": SPACING, "late_factor": LATE_FACTOR, "ftv_pe_threshold": FTV_PE_THRESHOLD,
            "pcr_prevalence": PCR_PREVALENCE,
            "followup_response_by_pcr": {str(int(k)): {"radius_factor": list(v[0]), "pe_factor": v[1]}
                                         for k, v in RESPONSE_BY_PCR.items()}}
    return write_cohort_files(out, n, seed, _write_case, MANIFEST_COLUMNS, meta, workers)


def main(argv: list[str] | None = None) -> int:
    """``responseai synth kinetics``: write a phantom cohort."""
    parser = cohort_parser("responseai synth kinetics", "Write the DCE kinetics phantom cohort (baseline + follow-up)",
                           40, 0)
    args = parse_cohort_args(parser, argv)
    write_cohort(args.out, args.n, args.seed, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
