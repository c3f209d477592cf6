"""Seed 003 §3.2 preprocessing for grade-guided fusion: ROI grid, intensity scaling, clinical, SMOTE.

Imaging: every modality (CT phases, MRI T1/T2, PET SUV) is resampled with trilinear
interpolation onto one reference grid — ``size``³ voxels of ``spacing`` mm centred on the
tumour mask — then z-scored with tumour-region statistics and multiplied by the mask
(ROI = image ⊙ mask). The z-scoring is split by physics, on purpose:

- CT (HU) and PET (SUV) are *quantitative*: a per-image z-score would erase SUVmax and the
  enhancement level, which carry grade. They use the training set's tumour-region mean / std
  per modality (fitted once, stored in the model card).
- MRI intensities have no absolute unit (gain and bias differ per scanner), so each MRI volume
  is centred on its own tumour-region mean. Its scale is *not* its own tumour std: dividing by
  it would make every tumour's spread 1 and erase texture heterogeneity, which carries grade
  and, in G3, response (in the phantom the T1 / T2 coefficient of variation in viable tumour
  correlates 0.91 with the latent heterogeneity). The scale is ``cv · mean`` instead, with
  ``cv`` the training set's pooled tumour coefficient of variation (in the card): invariant to
  the scanner gain, and of unit spread on average, as a z-score.

Clinical: :class:`responseai.clinical.ClinicalEncoder` (training-set means, z-score with
clipping, one-hot, missing flags) over :data:`CLINICAL_VARIABLES`; its ``to_dict`` goes into
the card. The variable graph's adjacency is the thresholded |correlation| of the encoded
training features.

Class balance: SMOTE (imbalanced-learn) runs on the *clinical feature vectors* of the
training fold, stratified by grade × response (the paper's "minority grade–response
subtypes"). Interpolating two different patients' 3D volumes voxel by voxel would draw a
tumour that exists nowhere, so each synthetic record is paired with the ROI of its nearest
real case of the same stratum (whose image is then flip-augmented at training time).

Validation raises the product's errors with actionable messages: PET outside the SUV range,
a modality that does not overlap the mask, an unknown grade label, an unknown clinical column.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from sklearn.neighbors import NearestNeighbors

from responseai.clinical import ClinicalEncoder
from responseai.errors import ClinicalValueError, GeometryMismatchError, InvalidImageError, MissingPhaseError
from responseai.gradeguided.constants import CLINICAL_SCHEMA, CLINICAL_VARIABLES, GRADES, MODALITIES, MRI, QUANTITATIVE
from responseai.image import Image
from responseai.io import read_image, resample_to, validate_mask, validate_not_constant, validate_volume, volumes_overlap

log = logging.getLogger(__name__)

SUV_MAX_PLAUSIBLE = 100.0  # SUVs above this are counts or Bq/mL, not SUV
SUV_MIN_PLAUSIBLE = -0.5  # small negatives come from reconstruction noise
_GRADE_ALIASES = {alias: i for i, g in enumerate(GRADES)
                  for alias in (g, g[1], f"G{'I' * (i + 1)}", "I" * (i + 1), f"grade {i + 1}")}


class PetSuvRangeError(InvalidImageError):
    """A PET volume is not in SUV units (negative or implausibly high values)."""


class UnknownGradeError(ClinicalValueError):
    """A grade label is not one the model was trained with."""


class UnknownClinicalColumnError(ClinicalValueError):
    """A clinical variable the model card does not know was supplied."""


@dataclass(frozen=True)
class RoiSpec:
    """Reference ROI grid and the quantitative modalities' training tumour statistics."""

    spacing_mm: float = 1.5
    size: int = 32
    modalities: tuple[str, ...] = MODALITIES
    tumour_mean: tuple[tuple[str, float], ...] = ()
    tumour_std: tuple[tuple[str, float], ...] = ()
    tumour_cv: tuple[tuple[str, float], ...] = ()  # MRI: pooled coefficient of variation

    def to_dict(self) -> dict:
        return {"spacing_mm": self.spacing_mm, "size": self.size, "modalities": list(self.modalities),
                "tumour_mean": dict(self.tumour_mean), "tumour_std": dict(self.tumour_std),
                "tumour_cv": dict(self.tumour_cv)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "RoiSpec":
        return cls(float(data["spacing_mm"]), int(data["size"]), tuple(data["modalities"]),
                   tuple(data["tumour_mean"].items()), tuple(data["tumour_std"].items()),
                   tuple(data["tumour_cv"].items()))


def parse_grade(value: object, classes: Sequence[str] = GRADES) -> int | None:
    """Grade label → class index; ``None``/empty means not known; anything else unknown is an error."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return None
    text = str(int(value)) if isinstance(value, (int, float)) else str(value).strip()
    index = _GRADE_ALIASES.get(text.upper() if not text.lower().startswith("grade") else text.lower())
    if index is None or index >= len(classes):
        raise UnknownGradeError(f"grade '{value}' is not known; use one of {', '.join(classes)} (or leave empty)")
    return index


def check_clinical_columns(record: Mapping[str, object], known: Sequence[str]) -> None:
    """Refuse a variable the model card does not list, rather than silently dropping it."""
    unknown = sorted(set(record) - set(known))
    if unknown:
        raise UnknownClinicalColumnError(
            f"clinical variable(s) {', '.join(unknown)} are not known to this model; it was trained with "
            f"{', '.join(known)}"
        )


def check_pet_suv(pet: Image, label: str = "PET") -> None:
    """PET must be SUV: a negative or > 100 voxel means raw counts, Bq/mL or a wrong rescale."""
    low, high = float(np.min(pet.array)), float(np.max(pet.array))
    if low < SUV_MIN_PLAUSIBLE or high > SUV_MAX_PLAUSIBLE:
        raise PetSuvRangeError(
            f"{label}: values {low:.3g}…{high:.3g} are not SUV (expected {SUV_MIN_PLAUSIBLE:g}…"
            f"{SUV_MAX_PLAUSIBLE:g}); convert activity to SUV (body weight, dose, decay) first"
        )


def reference_grid(mask: Image, spec: RoiSpec) -> Image:
    """``size``³ isotropic grid centred on the tumour's bounding-box centre (mask's orientation)."""
    idx = np.argwhere(mask.array > 0)
    centre_kji = (idx.min(0) + idx.max(0)) / 2.0
    centre = mask.direction @ (centre_kji[::-1] * np.asarray(mask.spacing)) + np.asarray(mask.origin)
    half = (spec.size - 1) / 2 * spec.spacing_mm
    origin = centre - mask.direction @ np.full(3, half)
    return Image(np.zeros((spec.size,) * 3, np.float32), (spec.spacing_mm,) * 3, tuple(origin), mask.direction)


def missing_modalities(images: Mapping[str, Image | None], spec: RoiSpec, allow_missing: bool = False) -> list[str]:
    """The model's modalities absent from ``images``; an error when none is present or not allowed.

    ``allow_missing`` is true only for a model trained with modality dropout (its card says
    ``missing_modalities: zero_channel``): only then is a zero channel a state it has seen.
    """
    unknown = sorted(set(images) - set(spec.modalities))
    if unknown:
        raise MissingPhaseError(f"unknown modality name(s) {', '.join(unknown)}; this model uses {', '.join(spec.modalities)}")
    missing = [m for m in spec.modalities if images.get(m) is None]
    if len(missing) == len(spec.modalities):
        raise MissingPhaseError(f"no imaging volume given; give at least one of {', '.join(spec.modalities)}")
    if missing and not allow_missing:
        raise MissingPhaseError(f"missing modality volume(s): {', '.join(missing)}; this model needs all of "
                                f"{', '.join(spec.modalities)} (it was not trained to run without some)")
    return missing


def resample_case(images: Mapping[str, Image | None], mask: Image, spec: RoiSpec,
                  allow_missing: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validate and resample every present modality and the mask onto the reference ROI grid."""
    missing = missing_modalities(images, spec, allow_missing)
    validate_mask(mask)
    reference = reference_grid(mask, spec)
    arrays = {}
    for name in (m for m in spec.modalities if m not in missing):
        image = images[name]
        validate_volume(image, name)
        validate_not_constant(image, name)
        if name == "pet":
            check_pet_suv(image)
        if not volumes_overlap(image, mask):
            raise GeometryMismatchError(
                f"{name}: the volume does not overlap the tumour mask in physical space; check that it "
                "comes from the same study and frame of reference (or register it first)"
            )
        arrays[name] = resample_to(Image(image.array.astype(np.float32), image.spacing, image.origin,
                                         image.direction), reference).array.astype(np.float32)
    roi = resample_to(mask, reference, is_label=True).array > 0
    return arrays, roi


def tumour_statistics(cases: Sequence[tuple[dict[str, np.ndarray], np.ndarray]]) -> tuple[dict, dict, dict]:
    """Training-set tumour statistics (pooled voxels): mean / std of the quantitative
    modalities, and the coefficient of variation around each image's own mean for MRI."""
    means, stds, cvs = {}, {}, {}
    for name in QUANTITATIVE:
        values = np.concatenate([arrays[name][roi] for arrays, roi in cases if name in arrays])
        means[name], stds[name] = float(values.mean()), float(max(values.std(), 1e-6))
    for name in MRI:
        ratios = np.concatenate([arrays[name][roi] / _positive_mean(arrays[name][roi]) for arrays, roi in cases if name in arrays])
        cvs[name] = float(max(ratios.std(), 1e-6))
    return means, stds, cvs


def _positive_mean(values: np.ndarray) -> float:
    """An MRI tumour mean to divide by (magnitude images are ≥ 0; guard an all-zero ROI)."""
    return float(max(np.abs(values.mean()), 1e-6))


def normalise_roi(arrays: Mapping[str, np.ndarray], roi: np.ndarray, spec: RoiSpec) -> np.ndarray:
    """Z-score (training stats for CT/PET; own mean and cv·mean for MRI) and mask: (C, Z, Y, X) float32.

    A modality absent from ``arrays`` becomes an all-zero channel (the tumour mean after
    z-scoring: no evidence either way), which only a modality-dropout model should be fed.
    """
    means, stds, cvs = dict(spec.tumour_mean), dict(spec.tumour_std), dict(spec.tumour_cv)
    channels = []
    for name in spec.modalities:
        if name not in arrays:
            channels.append(np.zeros(roi.shape, np.float32))
            continue
        values = arrays[name]
        if name in means:
            mean, std = means[name], stds[name]
        elif name in cvs:
            mean = _positive_mean(values[roi])
            std = cvs[name] * mean
        else:
            raise ValueError(f"the ROI spec has no intensity statistics for '{name}': fit it on training data (fit_roi_spec)")
        channels.append(np.clip((values - mean) / std, -6, 6) * roi)
    return np.stack(channels).astype(np.float32)


def preprocess_images(images: Mapping[str, Image | None], mask: Image, spec: RoiSpec,
                      allow_missing: bool = False) -> np.ndarray:
    """One case's model input (C, Z, Y, X): validate, resample, z-score, ROI = image ⊙ mask."""
    arrays, roi = resample_case(images, mask, spec, allow_missing)
    return normalise_roi(arrays, roi, spec)


def fit_clinical_encoder(records: Sequence[Mapping[str, object]]) -> ClinicalEncoder:
    """Clinical encoder over the grade-guided schema, fitted on training records only."""
    for record in records:
        check_clinical_columns(record, list(CLINICAL_SCHEMA))
    return ClinicalEncoder(CLINICAL_VARIABLES).fit(records)


def clinical_encoder_from_card(data: Mapping) -> ClinicalEncoder:
    """Rebuild the fitted encoder the card stores."""
    return ClinicalEncoder.from_dict(data, CLINICAL_SCHEMA)


def encode_clinical(encoder: ClinicalEncoder, records: Sequence[Mapping[str, object]]) -> np.ndarray:
    """Encode records, refusing variables the model does not know (the user would lose them silently)."""
    known = [v.name for v in encoder.variables]
    for record in records:
        check_clinical_columns(record, known)
    return encoder.transform(records)


def clinical_adjacency(features: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Variable graph: |Pearson correlation| of training features, ≥ threshold kept, self-loops set."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(np.corrcoef(features, rowvar=False))
    corr = np.nan_to_num(corr, nan=0.0)
    adjacency = np.where(corr >= threshold, corr, 0.0)
    np.fill_diagonal(adjacency, 1.0)
    return adjacency.astype(np.float32)


def smote_oversample(
    clinical: np.ndarray, grade: np.ndarray, response: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SMOTE over grade × response strata of the training fold.

    Returns the synthetic clinical rows, the index of the real case whose ROI each is paired
    with (nearest real case of the same stratum), and their grade and response labels. Strata
    too small for SMOTE's neighbours (< 2 cases) are left as they are.
    """
    stratum = grade * 2 + response
    counts = np.bincount(stratum, minlength=len(GRADES) * 2)
    present = [s for s in np.unique(stratum) if counts[s] >= 2]
    keep = np.isin(stratum, present)
    empty = (np.zeros((0, clinical.shape[1]), np.float32), np.zeros(0, int), np.zeros(0, int), np.zeros(0, int))
    if len(present) < 2:
        return empty
    k = int(min(5, counts[present].min() - 1))
    x_res, s_res = SMOTE(k_neighbors=k, random_state=seed).fit_resample(clinical[keep], stratum[keep])
    synthetic, synthetic_stratum = x_res[keep.sum():], s_res[keep.sum():]
    if not len(synthetic):
        return empty
    pair = np.empty(len(synthetic), int)
    for s in np.unique(synthetic_stratum):
        members = np.flatnonzero(stratum == s)
        rows = synthetic_stratum == s
        nearest = NearestNeighbors(n_neighbors=1).fit(clinical[members]).kneighbors(synthetic[rows])[1][:, 0]
        pair[rows] = members[nearest]
    log.info("SMOTE added %d synthetic training records over grade x response strata", len(synthetic))
    return synthetic.astype(np.float32), pair, synthetic_stratum // 2, synthetic_stratum % 2


@dataclass
class Sample:
    """One patient as the model consumes it, whatever its source (manifest files or the phantom)."""

    patient_id: str
    images: dict[str, Image]
    mask: Image
    clinical: dict[str, object]
    grade: int | None  # class index of the (biopsy / pathological) grade, None when unknown
    response: int | None = None
    split: str = "train"
    pfs_months: float | None = None
    pfs_event: int | None = None
    site: str = ""


@dataclass
class PreparedInputs:
    """Model-ready arrays of a set of samples: ROI (N, C, Z, Y, X), clinical (N, P), grade (N,)."""

    image: np.ndarray
    clinical: np.ndarray
    grade: np.ndarray  # −1 where unknown


def fit_roi_spec(samples: Sequence[Sample], spec: RoiSpec = RoiSpec()) -> tuple[RoiSpec, list]:
    """Resample every sample once; fit CT/PET tumour statistics on the ``train`` split only."""
    resampled = [resample_case(s.images, s.mask, spec) for s in samples]
    means, stds, cvs = tumour_statistics([r for r, s in zip(resampled, samples) if s.split == "train"])
    fitted = RoiSpec(spec.spacing_mm, spec.size, spec.modalities, tuple(means.items()), tuple(stds.items()),
                     tuple(cvs.items()))
    return fitted, resampled


def prepare_inputs(samples: Sequence[Sample], spec: RoiSpec, encoder: ClinicalEncoder,
                   resampled: Sequence | None = None) -> PreparedInputs:
    """Preprocess samples with fitted statistics (``resampled`` reuses :func:`fit_roi_spec`'s work)."""
    resampled = resampled or [resample_case(s.images, s.mask, spec) for s in samples]
    image = np.stack([normalise_roi(arrays, roi, spec) for arrays, roi in resampled])
    clinical = encode_clinical(encoder, [s.clinical for s in samples]).astype(np.float32)
    grade = np.array([-1 if s.grade is None else s.grade for s in samples], int)
    return PreparedInputs(image, clinical, grade)


def samples_from_manifest(manifest: str | Path) -> list[Sample]:
    """Read a cohort manifest (paths relative to its folder) into samples; empty cells are unknown."""
    manifest = Path(manifest)
    frame = pd.read_csv(manifest)
    root = manifest.parent
    samples = []
    for _, row in frame.iterrows():
        images = {m: read_image(root / row[m], name=f"{row['patient_id']} {m}") for m in MODALITIES}
        mask = read_image(root / row["mask"], name=f"{row['patient_id']} mask")
        clinical = {name: (None if pd.isna(row[name]) else row[name]) for name in CLINICAL_SCHEMA if name in frame.columns}
        response = None if pd.isna(row.get("response")) else int(row["response"])
        samples.append(Sample(str(row["patient_id"]), images, mask, clinical, parse_grade(row.get("grade")), response,
                              str(row.get("split", "train")), row.get("pfs_months"), row.get("pfs_event"),
                              str(row.get("site", ""))))
    return samples
