"""Deterministic CT / MRI / PET tumour-ROI phantom cohort for grade-guided fusion (seed 003).

Why a phantom: no multimodal cohort with grade, response and follow-up can be obtained here,
and a phantom with a documented rule lets a reader judge what a model *should* be able to
learn — in particular whether knowing the grade helps to predict response.

Each case is a 32³ co-registered ROI (one grid per case, isotropic, site-specific spacing)
with six channels: CT non-contrast / arterial / portal-venous (HU), MRI T1 / T2 (arbitrary
units) and ¹⁸F-FDG PET (SUV), plus a lobulated tumour mask. Grade G1–G3 drives four image
features (latents written to ``truth.csv``):

- texture heterogeneity ``h`` (Beta(2,5) / Beta(3,3) / Beta(5,2) for G1 / G2 / G3),
- necrotic fraction ``nf`` (0 in G1, 0–15 % in 40 % of G2, 0.5·Beta(2,3) in G3),
- PET SUVmax (2.0 + 2.2·(G − 1) + N(0, 0.8²)) and PET heterogeneity,
- arterial enhancement uniformity ``u`` (Beta(6,2) / Beta(4,4) / Beta(2,5)).

Clinical record: age, PD-L1 (%), EGFR (mutant / wild-type), AFP (ng/mL), stage I–IV (later
with higher grade; also sets the tumour radius), treatment (chemo / immunotherapy /
targeted); PD-L1 15 %, AFP 10 %, EGFR 8 % and stage 5 % missing. The rule uses the true values.

Response rule (``LABEL_RULE``; grade decides *which* features matter, not the response)::

    G1: η = 0.6 − 1.2·(stage − 1) + 4.0·(u − 0.6)
    G2: η = −1.0 + 3.2·[PD-L1 ≥ 50] + 2.0·z_SUV − 2.0·[AFP > 200]
    G3: η = −0.4 + 5.2·[h > 0.6]·EGFR⁺ − 5.2·[nf > 0.2]·[PD-L1 ≥ 50] + 1.0·EGFR⁺ − 1.0·[stage IV]
    response ~ Bernoulli(sigmoid(η + N(0, 0.5²)))

with ``z_SUV = (SUVmax − grade mean) / 0.8``. Version 2.0 doubled every coefficient of 1.0: at
1.0's scale the noiseless η itself reached only AUC ≈ 0.73 (the paper reports 0.85), and a
correctly specified logistic model on hand-crafted features reached ≈ 0.65 from 400 training
cases, too little room to tell one fusion from another; at 2.0's the ceiling is ≈ 0.83.
Latent subtype (M = 3) from the noiseless η: sensitive (η > 1.5), intermediate, resistant
(η < −1.5); progression-free survival
T ~ Exponential(rate 1/30, 1/14, 1/6 per month by subtype), administrative censoring
U(6, 60) months and 10 % loss to follow-up.

Sites A–C are development sites, D is the external site; each has its own voxel spacing,
CT HU offset and noise, MRI gain and bias field, PET calibration and blur. The split column is
patient-level: ``external`` for site D, otherwise train / val / test (60 / 20 / 20 %).

Every case draws from its own ``SeedSequence([seed, index])`` stream, so the cohort is
byte-identical for a seed whatever the number of worker processes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from responseai.gradeguided.constants import CLINICAL_SCHEMA, GRADES, MODALITIES, STAGES, SUBTYPES, TREATMENTS
from responseai.image import Image
from responseai.synthetic.cohort import case_stream, cohort_parser, parse_cohort_args, write_case_images, write_cohort_files

log = logging.getLogger(__name__)

GENERATOR_VERSION = "2.0"
SHAPE = (32, 32, 32)  # z, y, x voxels
CLINICAL_COLUMNS = tuple(CLINICAL_SCHEMA)
MANIFEST_COLUMNS = (
    ("patient_id", "site", "external", "split", *MODALITIES, "mask", *CLINICAL_COLUMNS)
    + ("grade", "response", "pfs_months", "pfs_event")
)
LABEL_RULE = (
    "G1: eta = 0.6 - 1.2*(stage-1) + 4.0*(u-0.6); "
    "G2: eta = -1.0 + 3.2*[PDL1>=50] + 2.0*z_SUV - 2.0*[AFP>200]; "
    "G3: eta = -0.4 + 5.2*[h>0.6]*EGFR_mut - 5.2*[nf>0.2]*[PDL1>=50] + 1.0*EGFR_mut - 1.0*[stage IV]; "
    "response ~ Bernoulli(sigmoid(eta + N(0, 0.5^2))); subtype = sensitive if eta>1.5, "
    "resistant if eta<-1.5 else intermediate; PFS ~ Exp(1/30, 1/14, 1/6 per month)"
)
SUBTYPE_RATE_PER_MONTH = (1 / 30, 1 / 14, 1 / 6)
SUV_GRADE_MEAN = (2.0, 4.2, 6.4)
SUBTYPE_CUT = 1.5  # |η| beyond which a case is sensitive / resistant


@dataclass(frozen=True)
class Site:
    """Scanner and protocol effects of one institution (CT, MRI and PET)."""

    name: str
    external: bool
    weight: float  # share of the cohort
    spacing_mm: float  # isotropic voxel size of the ROI grid
    ct_offset: float  # HU calibration offset
    ct_noise: float  # HU
    mr_gain: float
    mr_bias: float  # amplitude of the log bias field
    mr_noise: float
    pet_calibration: float  # multiplicative SUV error
    pet_blur_mm: float


SITES: tuple[Site, ...] = (
    Site("A", False, 0.27, 1.50, 0.0, 10.0, 1.00, 0.10, 12.0, 1.00, 4.0),
    Site("B", False, 0.27, 1.25, 6.0, 14.0, 0.85, 0.20, 16.0, 0.92, 5.0),
    Site("C", False, 0.26, 1.75, -5.0, 8.0, 1.20, 0.15, 10.0, 1.06, 3.5),
    Site("D", True, 0.20, 1.40, 10.0, 16.0, 0.75, 0.25, 18.0, 0.88, 6.0),
)


@dataclass
class Case:
    """One generated patient: co-registered images, mask, clinical record, labels, latent truth."""

    patient_id: str
    site: Site
    images: dict[str, Image]
    mask: Image
    clinical: dict[str, object]
    grade: int  # 1..3
    response: int
    pfs_months: float
    pfs_event: int
    truth: dict[str, float] = field(default_factory=dict)


def generate_case(seed: int, index: int, site: Site | None = None) -> Case:
    """Generate case ``index`` of cohort ``seed`` in memory (its site drawn unless given)."""
    rng, site = case_stream(seed, index, SITES, site)
    grade = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    clinical = _draw_clinical(rng, grade)
    latent = _draw_latent(rng, grade)
    eta = response_logit(grade, clinical, latent)
    response = int(rng.random() < 1 / (1 + np.exp(-(eta + rng.normal(0, 0.5)))))
    subtype = 0 if eta > SUBTYPE_CUT else (2 if eta < -SUBTYPE_CUT else 1)
    pfs, event = _draw_pfs(rng, subtype)
    spacing = (site.spacing_mm,) * 3
    tumour, necrosis = _tumour(rng, spacing, clinical["stage"], latent["necrotic_fraction"])
    arrays = _render(rng, tumour, necrosis, latent, site)
    origin = tuple(-(n // 2) * site.spacing_mm for n in SHAPE[::-1])
    images = {name: Image(arr, spacing, origin) for name, arr in arrays.items()}
    mask = Image(tumour.astype(np.uint8), spacing, origin)
    observed = _apply_missingness(rng, clinical)
    truth = {**latent, "eta": float(eta), "subtype": subtype}
    return Case(f"GG{seed:03d}-{index:04d}", site, images, mask, observed, grade, response, pfs, event, truth)


def _draw_clinical(rng: np.random.Generator, grade: int) -> dict[str, object]:
    """True clinical values; stage and PD-L1 / AFP shift with grade (as in real cohorts)."""
    stage_p = {1: [0.40, 0.35, 0.20, 0.05], 2: [0.25, 0.35, 0.25, 0.15], 3: [0.10, 0.25, 0.35, 0.30]}[grade]
    pdl1_high = rng.random() < (0.25 + 0.08 * (grade - 1))
    pdl1 = rng.uniform(50, 95) if pdl1_high else rng.uniform(0, 49)
    return {
        "age": int(np.clip(rng.normal(62, 10), 25, 90)),
        "pdl1": float(round(pdl1)),
        "egfr": "mutant" if rng.random() < 0.35 else "wild-type",
        "afp": float(round(np.clip(rng.lognormal(2.5 + 0.5 * (grade - 1), 1.2), 1, 5000), 1)),
        "stage": STAGES[int(rng.choice(4, p=stage_p))],
        "treatment": TREATMENTS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))],
    }


def _draw_latent(rng: np.random.Generator, grade: int) -> dict[str, float]:
    """Grade-driven image features (the truth the images are rendered from)."""
    het_ab = {1: (2, 5), 2: (3, 3), 3: (5, 2)}[grade]
    uni_ab = {1: (6, 2), 2: (4, 4), 3: (2, 5)}[grade]
    if grade == 1:
        necrotic = 0.0
    elif grade == 2:
        necrotic = float(rng.uniform(0, 0.15)) if rng.random() < 0.4 else 0.0
    else:
        necrotic = float(0.5 * rng.beta(2, 3))
    heterogeneity = float(rng.beta(*het_ab))
    return {
        "heterogeneity": heterogeneity,
        "necrotic_fraction": necrotic,
        "suv_max": float(max(1.2, SUV_GRADE_MEAN[grade - 1] + rng.normal(0, 0.8))),
        "pet_heterogeneity": float(0.10 + 0.10 * (grade - 1) + 0.15 * heterogeneity),
        "uniformity": float(rng.beta(*uni_ab)),
    }


def response_logit(grade: int, clinical: dict, latent: dict) -> float:
    """Noiseless response logit η of ``LABEL_RULE`` (uses the true, unmasked clinical values)."""
    stage = STAGES.index(clinical["stage"]) + 1
    pdl1_high = float(clinical["pdl1"] >= 50)
    egfr = float(clinical["egfr"] == "mutant")
    if grade == 1:
        return 0.6 - 1.2 * (stage - 1) + 4.0 * (latent["uniformity"] - 0.6)
    if grade == 2:
        z_suv = (latent["suv_max"] - SUV_GRADE_MEAN[1]) / 0.8
        return -1.0 + 3.2 * pdl1_high + 2.0 * z_suv - 2.0 * float(clinical["afp"] > 200)
    hetero = float(latent["heterogeneity"] > 0.6)
    necrotic = float(latent["necrotic_fraction"] > 0.2)
    return -0.4 + 5.2 * hetero * egfr - 5.2 * necrotic * pdl1_high + 1.0 * egfr - 1.0 * float(stage == 4)


def _draw_pfs(rng: np.random.Generator, subtype: int) -> tuple[float, int]:
    """Exponential PFS by subtype risk, administrative censoring and loss to follow-up."""
    time = rng.exponential(1 / SUBTYPE_RATE_PER_MONTH[subtype])
    censor = rng.uniform(6, 60)
    if rng.random() < 0.10:
        censor = min(censor, rng.uniform(0, time))
    return float(round(max(min(time, censor), 0.1), 2)), int(time <= censor)


def _apply_missingness(rng: np.random.Generator, clinical: dict) -> dict[str, object]:
    """What the clinic records: some values unknown (None)."""
    observed = dict(clinical)
    for name, rate in (("pdl1", 0.15), ("afp", 0.10), ("egfr", 0.08), ("stage", 0.05)):
        if rng.random() < rate:
            observed[name] = None
    return observed


def _coordinates_mm(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates (z, y, x broadcastable) of the voxel centres, centred on the grid."""
    return tuple(
        ((np.arange(n) - n // 2) * s).reshape([-1 if a == axis else 1 for a in range(3)])
        for axis, (n, s) in enumerate(zip(SHAPE, spacing[::-1]))
    )


def _smooth_noise(rng: np.random.Generator, sigma_vox: float) -> np.ndarray:
    """Unit-variance smooth random field on the grid."""
    field_ = ndimage.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), sigma_vox)
    return field_ / (field_.std() + 1e-6)


def _tumour(rng, spacing, stage: str, necrotic_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Lobulated tumour (radius grows with stage) and a necrotic region of the given fraction."""
    z, y, x = _coordinates_mm(spacing)
    radius = 7.0 + 1.5 * STAGES.index(stage) + rng.uniform(-1, 1)
    centre = rng.uniform(-3, 3, 3)
    dz, dy, dx = z - centre[0], y - centre[1], x - centre[2]
    dist = np.sqrt(dz**2 + dy**2 + dx**2) + 1e-6
    unit = np.stack(np.broadcast_arrays(dz, dy, dx)) / dist
    lobes = rng.standard_normal((4, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    surface = radius * (1 + 0.12 * np.einsum("kd,d...->k...", lobes, unit).clip(0).sum(0))
    tumour = dist <= surface
    necrosis = np.zeros(SHAPE, bool)
    if necrotic_fraction > 0:
        score = dist / surface + 0.3 * _smooth_noise(rng, 1.5)  # central, irregular
        necrosis = tumour & (score <= np.quantile(score[tumour], necrotic_fraction))
    return tumour, necrosis


def _render(rng, tumour, necrosis, latent, site: Site) -> dict[str, np.ndarray]:
    """Signal model per modality, then the site's scanner effects."""
    h, u = latent["heterogeneity"], latent["uniformity"]
    texture, enhance_field, pet_field = _smooth_noise(rng, 1.0), _smooth_noise(rng, 1.5), _smooth_noise(rng, 1.2)
    background = 0.3 * _smooth_noise(rng, 3.0)
    viable = tumour & ~necrosis
    enhancement = 70.0 * np.clip(1 + (1 - u) * 0.9 * enhance_field, 0, None)

    def tissue(bg: float, bg_var: float, tumour_value: np.ndarray | float, necrotic: float) -> np.ndarray:
        out = (bg + bg_var * background).astype(np.float32)
        out[viable] = np.broadcast_to(tumour_value, SHAPE)[viable]
        out[necrosis] = necrotic
        return out

    ct_base = 40 + 14 * h * texture
    arrays = {
        "ct_nc": tissue(55, 5, ct_base, 15),
        "ct_art": tissue(75, 6, ct_base + enhancement, 18),
        "ct_pv": tissue(110, 6, ct_base + 0.75 * enhancement + 15, 20),
        "mr_t1": tissue(500, 20, 380 - 70 * h * texture, 300),
        "mr_t2": tissue(350, 20, 600 + 160 * h * texture, 950),
    }
    uptake = latent["suv_max"] * np.clip(0.75 + latent["pet_heterogeneity"] * pet_field, 0.2, 1.0)
    arrays["pet"] = tissue(1.6, 0.2, uptake, 0.7)
    return _scanner(rng, arrays, site)


def _scanner(rng, arrays: dict[str, np.ndarray], site: Site) -> dict[str, np.ndarray]:
    """CT offset/noise (int16 HU), MRI gain/bias/noise, PET calibration/blur/noise (float SUV)."""
    out = {}
    for name in ("ct_nc", "ct_art", "ct_pv"):
        noisy = ndimage.gaussian_filter(arrays[name], 0.6) + site.ct_offset + rng.normal(0, site.ct_noise, SHAPE)
        out[name] = np.clip(noisy, -1024, 3071).round().astype(np.int16)
    z, y, x = (np.linspace(-1, 1, n, dtype=np.float32) for n in SHAPE)
    coeffs = rng.normal(0, 1, 3)
    log_bias = coeffs[0] * z[:, None, None] + coeffs[1] * y[None, :, None] + coeffs[2] * x[None, None, :]
    bias = np.exp(site.mr_bias * log_bias / 2)
    for name in ("mr_t1", "mr_t2"):
        noisy = np.abs(arrays[name] * bias * site.mr_gain + rng.normal(0, site.mr_noise, SHAPE))
        out[name] = noisy.astype(np.float32)
    pet = ndimage.gaussian_filter(arrays["pet"] * site.pet_calibration, site.pet_blur_mm / 2.355 / site.spacing_mm)
    out["pet"] = np.clip(pet * (1 + rng.normal(0, 0.05, SHAPE)), 0, None).astype(np.float32)
    return out


def assign_split(seed: int, index: int, site: Site) -> str:
    """Patient-level split from its own stream: external site, else train / val / test 60/20/20."""
    if site.external:
        return "external"
    draw = np.random.default_rng(np.random.SeedSequence([seed, index, 1])).random()
    return "train" if draw < 0.6 else ("val" if draw < 0.8 else "test")


def case_row(case: Case, split: str) -> dict:
    """The manifest row of a case (image paths filled in by the writer)."""
    return {"patient_id": case.patient_id, "site": case.site.name, "external": int(case.site.external),
            "split": split, **case.clinical, "grade": GRADES[case.grade - 1], "response": case.response,
            "pfs_months": case.pfs_months, "pfs_event": case.pfs_event}


def _write_case(args: tuple[int, int, str]) -> dict:
    """Worker: generate one case, write its NRRD files, return its manifest row + truth."""
    seed, index, out = args
    case = generate_case(seed, index)
    files = write_case_images(out, case.patient_id, case.images, case.mask)
    row = {**case_row(case, assign_split(seed, index, case.site)), **files}
    return {"row": row, "truth": {"patient_id": case.patient_id, **case.truth}}


def write_cohort(out: str | Path, n: int, seed: int, workers: int = 2) -> pd.DataFrame:
    """Generate ``n`` cases into ``out`` (images/, manifest.csv, truth.csv, cohort.json)."""
    meta = {"generator": "responseai.gradeguided.phantom", "version": GENERATOR_VERSION,
            "shape_zyx": SHAPE, "modalities": MODALITIES, "grades": GRADES, "subtypes": SUBTYPES,
            "label_rule": LABEL_RULE, "sites": [asdict(s) for s in SITES]}
    manifest = write_cohort_files(out, n, seed, _write_case, MANIFEST_COLUMNS, meta, workers)
    log.info("response rate %.1f%%", 100 * manifest["response"].mean())
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``responseai synth gradeguided``: write a phantom cohort."""
    parser = cohort_parser("responseai synth gradeguided", "Write the grade-guided CT/MRI/PET phantom cohort", 400, 0)
    args = parse_cohort_args(parser, argv)
    write_cohort(args.out, args.n, args.seed, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
