"""Deterministic bilateral breast DCE-MRI phantom cohort ("phantom v2") with a pCR label and a planted shortcut.

Why a phantom: no breast DCE-MRI with response labels can be obtained here, and a phantom can
*falsify* a claim. Version 2 models a prone bilateral exam, so a model can only pass by finding
the tumour, not the brightest blob:

- **Anatomy**, defined analytically in patient LPS millimetres (L = +x, P = +y, S = +z; body
  origin on the anterior chest wall, in the midline, at nipple height): both breasts hanging
  anteriorly (−y) from a curved chest wall, skin, subcutaneous and breast fat, fibroglandular
  tissue in four density categories (ACR a–d) with background parenchymal enhancement (minimal,
  mild, moderate, marked), nipples, pectoral muscle, ribs / costal cartilage / sternum, lungs,
  heart (myocardium, septum, blood pool) with the ascending aorta, pulmonary trunk and superior
  vena cava, internal mammary and lateral thoracic vessels, axillary lymph nodes (enhancing
  cortex, fatty hilum) and, in some patients, a benign fibroadenoma (round, smooth, persistent).
- **Tumour** in either breast, any quadrant, diameter from the cT stage; lobulated, optionally
  spiculated; voxel-wise kinetics (a *washout fraction* of the tumour washes out, the rest is
  persistent or plateau), enhancement heterogeneity (texture), optional necrotic core (rim
  enhancement) and a peritumoural enhancement halo.
- **Acquisition**: each site has its own grid (axial or sagittal; LPS, RAS, LPI, PIR or oblique
  direction matrix; spacing; field of view), fat-suppressed or not, gain, bias field, point
  spread, Rician noise and contrast timing. Every voxel centre is mapped to patient millimetres
  and the anatomy is evaluated there, so each orientation is exact and the tumour mask and the
  anatomy label map lie on the phases' grid. Pre and post2 move rigidly by 0–2 mm relative to
  post1 (the mask follows post1). Images are int16 scanner units.

Label rule (documented in ``docs/phantom-cohorts.md`` and written to ``cohort.json``): see
:data:`LABEL_RULE`. The image part uses tumour features the clinical form does not carry
(washout fraction, rim, heterogeneity, peritumoural enhancement); the clinical part uses HER2,
triple-negative, ER, Ki-67 and T stage. :func:`label_ceilings` measures the noiseless AUC
ceilings by Monte Carlo.

Sites A–D are training sites, E is the external site. On training sites a *coil artefact* — an
enhancing blob near the lateral skin of the breast *without* the tumour, at a site-specific
height — has an amplitude that rises with pCR; at the external site its amplitude is
independent of pCR. A model that looks outside the tumour learns it and fails externally.

Every case draws from its own ``SeedSequence([seed, index])`` stream, so the cohort is
byte-identical for a seed whatever the number of worker processes.

``--gland-seated`` (a training option, off by default so that every documented cohort keeps its bytes):
most breast cancers arise in the fibroglandular tissue, so in a real exam the tumour usually abuts
parenchyma, which enhances in moderate or marked BPE. Here the tumour is placed where the
fibroglandular tissue is densest among several draws and the BPE level is drawn heavier
(:data:`GLAND_SEATED_BPE`). Both draws come from a second per-case stream, so the rest of the case
(clinical record, label, anatomy, acquisition) is the default cohort's.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from responseai.breast.constants import BREAST_VARIABLES
from responseai.image import Image
from responseai.io import write_image
from responseai.synthetic.cohort import (
    case_stream,
    cohort_parser,
    parse_cohort_args,
    write_case_images,
    write_cohort_files,
)

log = logging.getLogger(__name__)

GENERATOR_VERSION = "2.0"
PHASES = ("pre", "post1", "post2")
MANIFEST_COLUMNS = (
    ("patient_id", "site", "external", "split", *PHASES, "mask", "anatomy")
    + tuple(v.name for v in BREAST_VARIABLES)
    + ("pcr",)
)
# The anatomy label map (``anatomy.nrrd``): for evaluations only (false positives on the heart,
# nodes or benign lesion), never a model input. The tumour keeps its breast's label (see mask).
ANATOMY_LABELS = {
    0: "air",
    1: "left breast",
    2: "right breast",
    3: "heart",
    4: "great vessels (aorta, pulmonary trunk, superior vena cava)",
    5: "internal mammary and lateral thoracic vessels",
    6: "axillary lymph nodes",
    7: "benign lesion (fibroadenoma)",
    8: "lungs",
    9: "chest wall (pectoral and intercostal muscle, ribs, costal cartilage, sternum)",
    10: "other body tissue (skin and fat outside the breasts, axilla, mediastinal fat)",
}
QUADRANTS = ("upper_outer", "upper_inner", "lower_outer", "lower_inner")
DENSITY_CATEGORIES = ("a", "b", "c", "d")  # ACR / BI-RADS breast density
BPE_LEVELS = ("minimal", "mild", "moderate", "marked")
KINETIC_TYPES = ("persistent", "plateau", "washout")

# Direction matrices: columns are the i, j, k axes in LPS (SimpleITK convention); the name says
# where each axis points (LPS = identity, RAS = i towards the right, j anterior, ...).
_C8, _S8 = math.cos(math.radians(8)), math.sin(math.radians(8))
_C5, _S5 = math.cos(math.radians(5)), math.sin(math.radians(5))
DIRECTIONS: dict[str, tuple[float, ...]] = {
    "LPS": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "RAS": (-1, 0, 0, 0, -1, 0, 0, 0, 1),
    "LPI": (1, 0, 0, 0, 1, 0, 0, 0, -1),
    "PIR": (0, 0, -1, 1, 0, 0, 0, -1, 0),  # sagittal: i posterior, j inferior, k (slices) right
    # axial, rotated 8° about S and tilted 5° about L (an oblique axial prescription)
    "oblique": tuple(np.round((np.array([[_C8, -_S8, 0], [_S8, _C8, 0], [0, 0, 1]])
                               @ np.array([[1, 0, 0], [0, _C5, -_S5], [0, _S5, _C5]])).ravel(), 12).tolist()),
}


@dataclass(frozen=True)
class Site:
    """Scanner and protocol of one institution."""

    name: str
    external: bool
    weight: float  # share of the cohort
    orientation: str  # key of DIRECTIONS
    pixel_mm: float  # in-plane spacing (i, j)
    slice_mm: float  # spacing along k (contiguous slices)
    fov_mm: tuple[float, float, float]  # extent along i, j, k
    fat_suppressed: bool
    gain: float  # scanner units per signal unit
    noise: float  # std of each noise channel, signal units (Rician magnitude)
    bias: float  # amplitude of the smooth log bias field
    blur_mm: float  # in-plane point-spread (Gaussian sigma)
    timing: float  # fraction of peak arterial / tumour enhancement reached at post1
    artefact_z: float  # coil-artefact height in the breast (0 caudal … 1 cranial), site specific

    @property
    def direction(self) -> np.ndarray:
        return np.asarray(DIRECTIONS[self.orientation], float).reshape(3, 3)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.pixel_mm, self.pixel_mm, self.slice_mm)

    @property
    def size(self) -> tuple[int, int, int]:
        """Voxels along i, j, k."""
        return tuple(int(round(f / s)) for f, s in zip(self.fov_mm, self.spacing))

    @property
    def plane(self) -> str:
        return "sagittal" if abs(self.direction[0, 2]) > 0.9 else "axial"


SITES: tuple[Site, ...] = (
    Site("A", False, 0.175, "LPS", 1.40, 2.0, (300, 180, 136), True, 8.0, 4.0, 0.15, 0.9, 1.00, 0.30),
    Site("B", False, 0.175, "RAS", 1.25, 2.5, (300, 180, 140), False, 2.5, 5.0, 0.25, 1.1, 0.85, 0.70),
    Site("C", False, 0.175, "PIR", 1.20, 3.0, (180, 144, 300), True, 5.0, 5.0, 0.20, 1.0, 1.10, 0.45),
    Site("D", False, 0.175, "LPI", 1.50, 1.5, (300, 180, 135), False, 12.0, 6.0, 0.30, 1.4, 0.95, 0.60),
    Site("E", True, 0.300, "oblique", 1.60, 2.5, (320, 192, 150), True, 6.5, 6.0, 0.30, 1.3, 0.90, 0.50),
)
SUBTYPES = ("luminal_a", "luminal_b", "her2_enriched", "triple_negative")

# --- label rule -------------------------------------------------------------------------------
IMAGE_COEF = {"washout_fraction": 4.0, "rim": 1.9, "heterogeneity": -2.75, "peritumoural": -2.75}
CLINICAL_COEF = {"her2": 1.1, "triple_negative": 1.3, "er": -0.7, "ki67": 0.036, "t_stage": -0.45}
INTERCEPT = -1.2
LABEL_NOISE = 0.3
LABEL_RULE = (
    "logit = -1.2 + [4.0*washout_fraction + 1.9*rim - 2.75*heterogeneity - 2.75*peritumoural] "
    "+ [1.1*HER2+ + 1.3*triple_negative - 0.7*ER+ + 0.036*(Ki67 - 30) - 0.45*(T - 2)] + N(0, 0.3^2); "
    "pCR ~ Bernoulli(sigmoid(logit)); Ki67 = 30 when unknown; first bracket = image part (tumour), "
    "second = clinical part"
)
CEILING_TARGETS = {"image_only": 0.75, "clinical_only": 0.75, "combined": 0.88}

# --- signal model ------------------------------------------------------------------------------
ENHANCEMENT_UNIT = 100.0  # signal units per unit of enhancement
# tissue code: (pre fat-suppressed, pre without fat suppression, enhancement post1, post2)
_TISSUES = {
    "air": (0, 0, 0, 0), "fat": (40, 290, 0.02, 0.03), "skin": (120, 160, 0.15, 0.20),
    "fgt": (150, 125, 0.0, 0.0), "muscle": (105, 110, 0.12, 0.18), "marrow": (55, 230, 0.10, 0.12),
    "cartilage": (85, 85, 0.05, 0.08), "lung": (8, 10, 0.04, 0.04), "blood": (80, 80, 3.0, 1.9),
    "myocardium": (110, 110, 1.1, 0.9), "vessel": (80, 80, 2.5, 1.8), "node": (115, 100, 0.9, 0.7),
    "benign": (130, 110, 0.75, 1.05), "nipple": (140, 140, 0.45, 0.55), "tumour": (130, 110, 0.0, 0.0),
    "necrosis": (95, 85, 0.05, 0.08),
}
_T = {name: code for code, name in enumerate(_TISSUES)}
_TABLE = np.array(list(_TISSUES.values()), np.float32)
BPE_ENHANCEMENT = (0.06, 0.14, 0.26, 0.42)  # post1 FGT enhancement per BPE level (post2: ×1.35)
GLAND_SEATED_BPE = (0.10, 0.25, 0.35, 0.30)  # BPE level probabilities of a gland-seated case (any age)
GLAND_SEATED_DRAWS = 12  # tumour positions drawn; the one with the most fibroglandular tissue around it is kept
DENSITY_FRACTION = ((0.04, 0.10), (0.10, 0.25), (0.25, 0.50), (0.50, 0.75))  # FGT share of the breast
ARTEFACT_ENHANCEMENT = 1.5  # coil-artefact peak, in enhancement units, per unit amplitude


@dataclass
class Case:
    """One generated patient: images on one grid, clinical record, label and latent truth."""

    patient_id: str
    site: Site
    phases: dict[str, Image]
    mask: Image
    clinical: dict[str, object]
    pcr: int
    truth: dict[str, float] = field(default_factory=dict)
    anatomy: Image | None = None  # uint8 label map (ANATOMY_LABELS), evaluations only


# =============================================================================================
# Clinical record, latent tumour features and the label
# =============================================================================================
def _draw_clinical_and_latent(rng: np.random.Generator) -> tuple[dict, dict]:
    """Clinical record (with realistic missingness) and the latent tumour image features."""
    subtype = SUBTYPES[rng.choice(4, p=[0.35, 0.30, 0.15, 0.20])]
    her2_luminal = subtype == "luminal_b" and rng.random() < 0.35
    er = subtype in ("luminal_a", "luminal_b")
    pr = er and rng.random() < (0.9 if subtype == "luminal_a" else 0.6)
    her2 = subtype == "her2_enriched" or her2_luminal
    ki67_mean = {"luminal_a": 10, "luminal_b": 30, "her2_enriched": 35, "triple_negative": 50}[subtype]
    ki67 = float(np.clip(rng.normal(ki67_mean, 8), 1, 95).round())
    age = int(np.clip(rng.normal(52, 11), 25, 85))
    t_stage = int(rng.choice([1, 2, 3, 4], p=[0.30, 0.50, 0.15, 0.05]))
    size_range = {1: (10, 20), 2: (21, 45), 3: (51, 60), 4: (30, 55)}[t_stage]
    size = float(round(rng.uniform(*size_range), 1))
    aggressive = subtype in ("her2_enriched", "triple_negative")
    grade = int(np.clip(1 + (ki67 > 14) + (ki67 > 35) + (rng.random() < 0.15) - (rng.random() < 0.1), 1, 3))
    menopausal = "post" if age + rng.normal(0, 3) > 51 else "pre"
    clinical = {
        "age": age,
        "menopausal_status": menopausal,
        "er": "positive" if er else "negative",
        "pr": "positive" if pr else "negative",
        "her2": "positive" if her2 else "negative",
        "ki67": ki67,
        "molecular_subtype": subtype,
        "histological_type": str(rng.choice(["ductal", "lobular", "other"], p=[0.8, 0.12, 0.08] if er else [0.9, 0.02, 0.08])),
        "histological_grade": str(grade),
        "ct_stage": f"T{t_stage}",
        "cn_stage": f"N{rng.choice(4, p=[0.45, 0.35, 0.15, 0.05])}",
        "tumour_size_mm": size,
    }
    for name, rate in (("ki67", 0.10), ("histological_grade", 0.08), ("pr", 0.05), ("menopausal_status", 0.05)):
        if rng.random() < rate:
            clinical[name] = None
    triple_negative = subtype == "triple_negative"
    washout = rng.beta(1.4, 2.1) if aggressive else rng.beta(1.3, 2.3)
    latent = {
        "washout_fraction": float(washout),
        "plateau": float(rng.random() < 0.5),  # curve of the non-washout part: plateau or persistent
        "rim": float(rng.random() < (0.3 if triple_negative else 0.2) + 0.15 * (t_stage >= 3)),
        "heterogeneity": float(rng.beta(2, 2)),
        "peritumoural": float(rng.beta(1.8, 2.2) if triple_negative else rng.beta(1.5, 2.5)),
        "spiculation": float(rng.beta(2, 5) if aggressive else rng.beta(3, 3)),
        "peak_enhancement": float(rng.uniform(1.0, 1.5)),
        # breast composition (not in the label): denser and more BPE when young / premenopausal
        "density": float(rng.choice(4, p=[0.05, 0.30, 0.45, 0.20] if age < 50 else [0.15, 0.45, 0.32, 0.08])),
        "bpe_level": float(rng.choice(4, p=[0.20, 0.35, 0.30, 0.15] if menopausal == "pre" else [0.45, 0.35, 0.15, 0.05])),
    }
    return clinical, latent


def _logit_parts(clinical: dict, latent: dict) -> tuple[float, float]:
    """Noiseless (image part, clinical part) of the pCR logit; the intercept is not in either."""
    image = sum(coef * latent[name] for name, coef in IMAGE_COEF.items())
    ki67 = clinical["ki67"] if clinical["ki67"] is not None else 30.0
    c = CLINICAL_COEF
    clinic = (c["her2"] * (clinical["her2"] == "positive")
              + c["triple_negative"] * (clinical["molecular_subtype"] == "triple_negative")
              + c["er"] * (clinical["er"] == "positive")
              + c["ki67"] * (ki67 - 30)
              + c["t_stage"] * (int(clinical["ct_stage"][1]) - 2))
    return float(image), float(clinic)


def _pcr_logit(clinical: dict, latent: dict) -> float:
    image, clinic = _logit_parts(clinical, latent)
    return INTERCEPT + image + clinic


def _draw_label(rng: np.random.Generator, clinical: dict, latent: dict) -> tuple[float, int]:
    logit = _pcr_logit(clinical, latent) + rng.normal(0, LABEL_NOISE)
    return float(logit), int(rng.random() < 1 / (1 + np.exp(-logit)))


def label_ceilings(n: int = 20000, seed: int = 0) -> dict[str, float]:
    """Noiseless AUC ceilings of the label rule, by Monte Carlo over the clinical/latent generator.

    Draws ``n`` patients (no images), their labels as :func:`generate_case` draws them, and
    returns the AUC of the noiseless image part, clinical part and full logit against the
    labels, and the prevalence. What a perfect image-only, clinical-only or combined model
    could reach on an infinite cohort.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(np.random.SeedSequence([seed, 20000]))
    image, clinic, labels = np.empty(n), np.empty(n), np.empty(n, int)
    for i in range(n):
        clinical, latent = _draw_clinical_and_latent(rng)
        image[i], clinic[i] = _logit_parts(clinical, latent)
        labels[i] = _draw_label(rng, clinical, latent)[1]
    return {"image_only": float(roc_auc_score(labels, image)),
            "clinical_only": float(roc_auc_score(labels, clinic)),
            "combined": float(roc_auc_score(labels, image + clinic)),
            "prevalence": float(labels.mean()), "n": n}


# =============================================================================================
# Patient anatomy (body frame: LPS mm, origin on the anterior chest wall, midline, nipple height)
# =============================================================================================
def _draw_body(rng: np.random.Generator, latent: dict) -> dict:
    """Body habitus and breast shape of one patient."""
    body = {
        "Wx": rng.uniform(120, 138),  # chest-wall half width
        "Ty": rng.uniform(100, 120),  # chest-wall half depth (A-P)
        "fat": rng.uniform(6, 16),  # subcutaneous fat
        "skin": rng.uniform(1.4, 2.2),
        "pectoral": rng.uniform(7, 14),
        "axilla": rng.uniform(15, 28),  # axillary fat pad
        "Bx": rng.uniform(70, 84),
        "Bz": rng.normal(0, 3),
        "D": rng.uniform(50, 100),  # breast projection from the chest wall
        "Rx": rng.uniform(48, 58),
        "Rz": rng.uniform(50, 60),
        "p": rng.uniform(2.2, 3.6),  # profile exponent (higher: fuller, more pendulous)
        "tilt": rng.uniform(0.1, 0.3),  # lateral deviation of the nipple
        "subfat": rng.uniform(4, 9),  # breast subcutaneous fat before the gland
        "retro": rng.uniform(3, 7),  # retromammary fat
        "rib_pitch": rng.uniform(22, 28),
        "rib_phase": rng.uniform(0, 28),
        "fgt_fraction": rng.uniform(*DENSITY_FRACTION[int(latent["density"])]),
    }
    body["asym"] = {s: rng.uniform(0.93, 1.07, 3) for s in (1, -1)}  # D, Rx, Rz scale per side
    return body


def _breast_params(body: dict, side: int) -> tuple[float, float, float]:
    d, rx, rz = body["asym"][side]
    return body["D"] * d, body["Rx"] * rx, body["Rz"] * rz


def _smoothstep(v, a: float, b: float):
    t = np.clip((v - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def _wall_depth(body: dict, x, y):
    """Approximate signed depth (mm) inside the chest-wall surface (anterior face of the muscle).

    The surface is a superellipse |x/Wx|⁴ + |(y − Ty)/Ty|⁴ = 1: flat in front, rounded laterally.
    """
    wx, ty = body["Wx"], body["Ty"]
    xn = np.asarray(x, np.float32) / np.float32(wx)
    yn = (np.asarray(y, np.float32) - np.float32(ty)) / np.float32(ty)
    x2, y2 = xn * xn, yn * yn
    r = np.sqrt(np.sqrt(x2 * x2 + y2 * y2)) + np.float32(1e-6)
    grad = np.sqrt((x2 * xn / np.float32(wx)) ** 2 + (y2 * yn / np.float32(ty)) ** 2) / (r * r * r) + np.float32(1e-9)
    return np.clip((1 - r) / grad, -300, 300).astype(np.float32)


def _wall_point(body: dict, x: float) -> tuple[np.ndarray, np.ndarray]:
    """Point of the chest-wall surface at lateral position ``x`` (anterior half) and its outward normal."""
    wx, ty = body["Wx"], body["Ty"]
    xn = min(abs(x) / wx, 0.995)
    y = ty * (1 - (1 - xn**4) ** 0.25)
    normal = np.array([np.sign(x) * xn**3 / wx, -((ty - y) / ty) ** 3 / ty, 0.0])
    return np.array([x, y, 0.0]), normal / np.linalg.norm(normal)


def _muscle_thickness(body: dict, x):
    ax = np.abs(x)
    return 3 + (body["pectoral"] - 3) * np.clip((ax - 12) / 15, 0, 1) * np.clip((0.92 * body["Wx"] - ax) / 25, 0, 1)


def _fat_thickness(body: dict, x, z):
    ax = np.abs(x)
    return (body["fat"] * (0.6 + 0.4 * np.clip(ax / 40, 0, 1))
            + body["axilla"] * _smoothstep(ax / body["Wx"], 0.6, 0.9) * _smoothstep(z - body["Bz"], 5, 45))


def _breast_depth(body: dict, side: int, x, z, d_wall):
    """Approximate depth (mm) inside one breast, and its normalised radial position r² (footprint)."""
    depth, rx, rz = _breast_params(body, side)
    front = np.maximum(-d_wall, 0)
    t = front / np.float32(depth)
    cx = side * (body["Bx"] + body["tilt"] * front)
    dx = (np.asarray(x, np.float32) - cx) / np.float32(rx)
    dz = (np.asarray(z, np.float32) - np.float32(body["Bz"])) / np.float32(rz)
    r2 = dx * dx + dz * dz
    p = body["p"]
    behind = np.maximum(d_wall, 0) / np.float32(8.0)  # the breast closes 8 mm behind the wall
    tp = t ** np.float32(p)
    g = r2 + tp + behind * behind
    grad = 2 * np.sqrt((dx / np.float32(rx)) ** 2 + (dz / np.float32(rz)) ** 2
                       + (np.float32(p / 2) * tp / np.maximum(t, np.float32(1e-3)) / np.float32(depth)) ** 2
                       + (behind / np.float32(8.0)) ** 2) + np.float32(1e-6)
    return np.clip((1 - g) / grad, -200, 80).astype(np.float32), r2


def _nipple_depth(body: dict, side: int, x, z, d_wall):
    depth, _, _ = _breast_params(body, side)
    cx = side * (body["Bx"] + body["tilt"] * depth)
    radial = np.sqrt((np.asarray(x, np.float32) - cx) ** 2 + (np.asarray(z, np.float32) - body["Bz"]) ** 2)
    beyond = -d_wall - depth
    return np.minimum(np.minimum(np.float32(4.5) - radial, np.float32(6.0) - beyond), beyond + 12)


def _heart(rng: np.random.Generator, body: dict) -> dict:
    """Heart ellipsoid (long axis towards the left, anterior, inferior apex) and great vessels."""
    axes = np.array([rng.uniform(52, 62), rng.uniform(40, 47), rng.uniform(38, 44)])
    u1 = np.array([0.62, -0.45, -0.55])
    u1 /= np.linalg.norm(u1)
    u2 = np.cross(u1, [0.0, 0.0, 1.0])
    u2 /= np.linalg.norm(u2)
    u3 = np.cross(u1, u2)
    rot = np.stack([u1, u2, u3])  # rows: local axes in body coordinates
    support_y = math.sqrt(float(np.sum((axes * rot[:, 1]) ** 2)))
    centre = np.array([rng.uniform(12, 28), 20 + rng.uniform(0, 6) + support_y, body["Bz"] - rng.uniform(22, 36)])
    towards_lv = np.array([1.0, 1.2, 0.0]) - np.dot([1.0, 1.2, 0.0], u1) * u1  # LV: posterior-left of the RV
    towards_lv /= np.linalg.norm(towards_lv)
    lv_wall = rng.uniform(9, 12)
    vessels = {
        "aorta": (centre[0] - 22, centre[1] + 4, centre[2] + 15, 400.0, rng.uniform(13, 16)),
        "pulmonary": (centre[0] + 2, centre[1] - 16, centre[2] + 20, centre[2] + 62, rng.uniform(11, 14)),
        "svc": (centre[0] - 46, centre[1] + 6, centre[2] + 25, 400.0, rng.uniform(8, 10)),
    }
    return {"centre": centre, "axes": axes, "rot": rot, "rv_wall": 3.5, "lv_wall": lv_wall,
            "lv_centre": centre + towards_lv * 0.3 * axes[1] + u1 * 0.05 * axes[0],
            "lv_axes": axes * np.array([0.75, 0.42, 0.45]), "vessels": vessels}


# =============================================================================================
# Acquisition grid
# =============================================================================================
@dataclass
class _Grid:
    """A site's grid placed on a patient: voxel centres in body millimetres (broadcastable arrays)."""

    site: Site
    origin: np.ndarray  # world (scanner LPS) position of voxel 0
    offset: np.ndarray  # world = body + offset
    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.site.size[::-1])

    @property
    def affine(self) -> np.ndarray:
        return self.site.direction @ np.diag(self.site.spacing)

    @property
    def body_origin(self) -> np.ndarray:
        return self.origin - self.offset

    def box(self, lo, hi) -> tuple[slice, slice, slice] | None:
        """Array-order slices of the voxels whose centres can fall in the body-frame box [lo, hi]."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        ijk = np.linalg.solve(self.affine, (corners - self.body_origin).T).T
        size = np.array(self.site.size)
        first = np.clip(np.floor(ijk.min(0)).astype(int), 0, size)
        last = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, 0, size)
        if np.any(last <= first):
            return None
        return tuple(slice(int(first[a]), int(last[a])) for a in (2, 1, 0))

    def holds(self, point: np.ndarray, margin_mm: float = 0.0) -> bool:
        """Whether a body-frame point lies in the field of view, ``margin_mm`` inside its edges."""
        ijk = np.linalg.solve(self.affine, np.asarray(point, float) - self.body_origin)
        margin = margin_mm / np.array(self.site.spacing)
        return bool(np.all(ijk >= margin) and np.all(ijk <= np.array(self.site.size) - 1 - margin))

    def image(self, array: np.ndarray) -> Image:
        return Image(array, self.site.spacing, tuple(self.origin), self.site.direction)


def _crop(array: np.ndarray, box: tuple[slice, slice, slice]) -> np.ndarray:
    """Crop a (possibly broadcast, size-1) array to an array-order box."""
    return array[tuple(s if n > 1 else slice(None) for s, n in zip(box, array.shape))]


def _box_shape(box) -> tuple[int, int, int]:
    return tuple(s.stop - s.start for s in box)


def _place_grid(rng: np.random.Generator, site: Site, body: dict) -> _Grid:
    """Put the site's field of view on the patient (centred on the breasts) in scanner coordinates."""
    direction, spacing, size = site.direction, np.array(site.spacing), np.array(site.size)
    extent = np.abs(direction) @ np.array(site.fov_mm)  # approximate world extents (x, y, z)
    depth = max(_breast_params(body, 1)[0], _breast_params(body, -1)[0])
    centre_body = np.array([rng.normal(0, 4), -(depth + rng.uniform(12, 22)) + extent[1] / 2,
                            body["Bz"] + rng.uniform(2, 14)])
    offset = np.array([rng.normal(0, 6), rng.normal(30, 10), rng.normal(-60, 25)])  # patient in the scanner
    origin = centre_body + offset - direction @ (spacing * (size - 1) / 2)
    origin = np.round(origin, 3)
    body_origin = origin - offset
    affine = direction @ np.diag(spacing)
    idx = [np.arange(n, dtype=np.float32) for n in size]
    shapes = [(1, 1, -1), (1, -1, 1), (-1, 1, 1)]  # i, j, k in array order (k, j, i)
    coords = []
    for axis in range(3):
        total = np.full((1, 1, 1), body_origin[axis], np.float32)
        for a in range(3):
            if abs(affine[axis, a]) > 1e-9:
                total = total + (np.float32(affine[axis, a]) * idx[a]).reshape(shapes[a])
        coords.append(total.astype(np.float32))
    return _Grid(site, origin, offset, *coords)


def _world_field(rng: np.random.Generator, grid: _Grid, box, lo, hi, step: float, sigma_mm) -> np.ndarray:
    """Unit-variance smooth noise defined in body millimetres, sampled on a grid box.

    The field lives on its own body-aligned grid, so its pattern does not depend on the
    acquisition orientation.
    """
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    n = (np.ceil((hi - lo) / step).astype(int) + 2)[::-1]
    noise = ndimage.gaussian_filter(rng.standard_normal(tuple(n), dtype=np.float32),
                                    np.asarray(sigma_mm, float)[::-1] / step, mode="wrap")
    noise /= noise.std() + 1e-6
    reverse = np.eye(3)[::-1]
    matrix = reverse @ (grid.affine / step) @ reverse
    start = np.array([box[2].start, box[1].start, box[0].start], float)
    offset = reverse @ ((grid.body_origin + grid.affine @ start - lo) / step)
    return ndimage.affine_transform(noise, matrix, offset, output_shape=_box_shape(box), order=1, mode="nearest")


# =============================================================================================
# Rendering the anatomy on the grid
# =============================================================================================
class _Scene:
    """Tissue codes, anatomy labels and enhancement maps of one patient on one grid (post1 frame)."""

    def __init__(self, grid: _Grid):
        self.grid = grid
        shape = grid.shape
        self.tissue = np.zeros(shape, np.uint8)  # tissue codes (_TISSUES)
        self.label = np.zeros(shape, np.uint8)  # ANATOMY_LABELS
        self.tumour = np.zeros(shape, bool)
        self.bpe: list[tuple] = []  # (box, fibroglandular mask, BPE pattern) per breast


def _render_body(rng: np.random.Generator, grid: _Grid, body: dict, latent: dict, scene: _Scene) -> dict:
    """Body outline, breasts, chest wall, thoracic cavity and mediastinum."""
    X, Y, Z = grid.X, grid.Y, grid.Z
    shape = grid.shape
    d_wall = _wall_depth(body, X, Y)  # broadcast (depends on x, y)
    muscle_t = _muscle_thickness(body, X).astype(np.float32)
    d_outer = d_wall + _fat_thickness(body, X, Z).astype(np.float32)
    d_body = np.array(np.broadcast_to(d_outer, shape), np.float32)
    breast_info = {}
    for side in (1, -1):
        depth, rx, rz = _breast_params(body, side)
        xs = sorted([side * (body["Bx"] - rx - 8), side * (body["Bx"] + rx + body["tilt"] * depth + 8)])
        box = grid.box((xs[0], -depth - 20, body["Bz"] - rz - 8), (xs[1], 45, body["Bz"] + rz + 8))
        if box is None:
            continue
        dw = _crop(d_wall, box)
        x, z = _crop(X, box), _crop(Z, box)
        d_b, r2 = _breast_depth(body, side, x, z, dw)
        d_n = _nipple_depth(body, side, x, z, dw)
        a = d_body[box]
        k = np.float32(6.0)  # smooth union with the chest: a fillet at the breast base
        for b in (d_b, d_n):
            h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
            a = a + (b - a) * h + k * h * (1 - h)
        d_body[box] = a
        breast_info[side] = (box, d_b, r2, d_n)
    body_mask = d_body > 0
    tissue, label = scene.tissue, scene.label
    tissue[body_mask] = _T["fat"]
    label[body_mask] = 10
    # chest wall: muscle, ribs / cartilage / sternum, then the thoracic cavity
    inside = body_mask & (d_wall >= 0)
    wall_layer = inside & (d_wall < muscle_t + 13)
    tissue[wall_layer] = _T["muscle"]
    label[wall_layer] = 9
    rib_band = np.cos(2 * np.pi * (Z - body["rib_phase"] - 0.3 * np.abs(X)) / body["rib_pitch"]) > 0.35
    bone_layer = (d_wall >= muscle_t + 2) & (d_wall < muscle_t + 11)
    ax = np.abs(X)
    rib = wall_layer & bone_layer & (rib_band | (ax < 15))
    tissue[rib & (ax >= 15) & (ax < 55)] = _T["cartilage"]
    tissue[rib & ((ax < 15) | (ax >= 55))] = _T["marrow"]
    cavity = inside & (d_wall >= muscle_t + 13)
    tissue[cavity] = _T["lung"]
    label[cavity] = 8
    # breasts
    gland_boxes = []
    for side, (box, d_b, r2, d_n) in breast_info.items():
        dw = _crop(d_wall, box)
        in_body = body_mask[box]
        x = _crop(X, box)
        region = in_body & (dw < 0) & (r2 < 1.3) & (side * x > 0)
        lab = label[box]
        lab[region] = 1 if side > 0 else 2
        gland = region & (d_b > body["subfat"]) & (-dw > body["retro"])
        gland_boxes.append((side, box, gland, region, d_b, r2))
        nipple = in_body & (d_n > 0) & (-dw > 10)
        tissue[box][nipple] = _T["nipple"]
        lab[nipple] = 1 if side > 0 else 2
    _render_fgt(rng, grid, body, latent, scene, gland_boxes)
    # skin over everything
    skin = body_mask & (d_body < body["skin"])
    tissue[skin & (tissue != _T["nipple"])] = _T["skin"]
    return {"d_wall": d_wall, "body": body_mask, "cavity": cavity}


def _render_fgt(rng, grid: _Grid, body: dict, latent: dict, scene: _Scene, gland_boxes) -> None:
    """Fibroglandular tissue (ducts radiating to the nipple) and its background enhancement pattern."""
    for side, box, gland, region, d_b, r2 in gland_boxes:
        depth, rx, rz = _breast_params(body, side)
        xs = sorted([side * (body["Bx"] - rx - 8), side * (body["Bx"] + rx + body["tilt"] * depth + 8)])
        lo, hi = (xs[0], -depth - 20, body["Bz"] - rz - 8), (xs[1], 45, body["Bz"] + rz + 8)
        texture = _world_field(rng, grid, box, lo, hi, 2.0, (2.5, 5.0, 2.5))
        pattern = _world_field(rng, grid, box, lo, hi, 4.0, (9.0, 9.0, 9.0))
        if not gland.any():
            continue
        score = texture + 1.2 * (1 - np.minimum(r2, 1)) + 0.02 * np.minimum(d_b, 30)  # denser centrally
        wanted = min(0.97, body["fgt_fraction"] * region.sum() / max(gland.sum(), 1))
        threshold = np.quantile(score[gland], 1 - wanted)
        fgt = gland & (score > threshold)
        scene.tissue[box][fgt] = _T["fgt"]
        scene.bpe.append((box, fgt, np.clip(1 + 0.5 * pattern, 0.2, 2.0)))


def _ellipsoid_depth(dx, dy, dz, axes, rot):
    """Approximate depth (mm) inside an ellipsoid centred at the origin of (dx, dy, dz)."""
    local = [(rot[a, 0] * dx + rot[a, 1] * dy + rot[a, 2] * dz) / np.float32(axes[a]) for a in range(3)]
    g = local[0] ** 2 + local[1] ** 2 + local[2] ** 2
    grad = 2 * np.sqrt(sum((local[a] / np.float32(axes[a])) ** 2 for a in range(3))) + np.float32(1e-6)
    return (1 - g) / grad


def _render_heart(grid: _Grid, heart: dict, anatomy: dict, scene: _Scene) -> None:
    """Heart (thick-walled left ventricle with the septum, crescent right ventricle), great vessels, mediastinal fat."""
    c, axes, rot = heart["centre"], heart["axes"], heart["rot"]
    reach = axes.max() + 10
    box = grid.box(c - reach, c + reach)
    if box is not None:
        dx, dy, dz = _crop(grid.X, box) - c[0], _crop(grid.Y, box) - c[1], _crop(grid.Z, box) - c[2]
        depth = _ellipsoid_depth(dx, dy, dz, axes, rot)
        lv = heart["lv_centre"] - c
        lv_depth = _ellipsoid_depth(dx - lv[0], dy - lv[1], dz - lv[2], heart["lv_axes"], rot)
        cavity = anatomy["cavity"][box]
        fat = cavity & (depth > -6) & (depth <= 0)
        organ = cavity & (depth > 0)
        myo = organ & ((depth < heart["rv_wall"]) | ((lv_depth < 0) & (lv_depth > -heart["lv_wall"])))
        tissue, label = scene.tissue[box], scene.label[box]
        tissue[fat & (label == 8)] = _T["fat"]
        label[fat & (label == 8)] = 10
        tissue[organ] = _T["blood"]
        tissue[myo] = _T["myocardium"]
        label[organ] = 3
    for name, (vx, vy, z0, z1, radius) in heart["vessels"].items():
        box = grid.box((vx - radius - 8, vy - radius - 8, z0 - 8), (vx + radius + 8, vy + radius + 8, min(z1, 200) + 8))
        if box is None:
            continue
        rho = np.sqrt((_crop(grid.X, box) - vx) ** 2 + (_crop(grid.Y, box) - vy) ** 2)
        z = _crop(grid.Z, box)
        depth = np.minimum(np.minimum(radius - rho, z - z0), z1 - z)
        cavity = anatomy["cavity"][box]
        tissue, label = scene.tissue[box], scene.label[box]
        fat = cavity & (depth > -6) & (depth <= 0) & (label == 8)
        tissue[fat] = _T["fat"]
        label[fat] = 10
        vessel = cavity & (depth > 0) & (label != 3)
        tissue[vessel] = _T["blood"]
        label[vessel] = 4
    # anterior mediastinal (thymic) fat between the sternum and the heart
    box = grid.box((-25, 0, c[2] - 10), (30, c[1], 200))
    if box is not None:
        x, y = _crop(grid.X, box), _crop(grid.Y, box)
        label, tissue = scene.label[box], scene.tissue[box]
        front = (label == 8) & (np.abs(x - 3) < 22 - 0.2 * np.maximum(y - 20, 0)) & np.ones(_box_shape(box), bool)
        tissue[front] = _T["fat"]
        label[front] = 10


def _tube(grid: _Grid, scene: _Scene, start, end, radius: float, tissue: int, label: int, where=None) -> None:
    """A straight vessel segment (capsule) from ``start`` to ``end`` (body mm)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    box = grid.box(np.minimum(start, end) - radius - 2, np.maximum(start, end) + radius + 2)
    if box is None:
        return
    axis = end - start
    length = float(np.linalg.norm(axis))
    axis /= length
    dx, dy, dz = _crop(grid.X, box) - start[0], _crop(grid.Y, box) - start[1], _crop(grid.Z, box) - start[2]
    along = np.clip(axis[0] * dx + axis[1] * dy + axis[2] * dz, 0, length)
    dist2 = (dx - along * axis[0]) ** 2 + (dy - along * axis[1]) ** 2 + (dz - along * axis[2]) ** 2
    inside = np.broadcast_to(dist2 < radius * radius, _box_shape(box))
    if where is not None:
        inside = inside & where(box)
    scene.tissue[box][inside] = tissue
    scene.label[box][inside] = label


def _render_vessels(rng, grid: _Grid, body: dict, anatomy: dict, scene: _Scene) -> None:
    """Internal mammary arteries and veins (behind the costal cartilages), lateral thoracic vessels."""
    def in_body(box):  # not through the heart or great vessels
        return anatomy["body"][box] & (scene.label[box] != 3) & (scene.label[box] != 4)

    for side in (1, -1):
        for offset, radius in ((rng.uniform(25, 30), 1.6), (rng.uniform(32, 37), 2.1)):
            x = side * offset
            point, _ = _wall_point(body, x)
            y = point[1] + float(_muscle_thickness(body, x)) + 13 + 2.5
            _tube(grid, scene, (x, y, -200), (x, y, 200), radius, _T["vessel"], 5, in_body)
        x = side * body["Wx"] * rng.uniform(0.8, 0.86)
        point, normal = _wall_point(body, x)
        centre = point + normal * 0.5 * body["fat"]
        _tube(grid, scene, (centre[0], centre[1], body["Bz"] - 40), (centre[0] + side * 6, centre[1] + 4, 200),
              1.5, _T["vessel"], 5, in_body)


def _ellipsoid(grid: _Grid, centre, axes, rot, margin: float = 2.0):
    """Box and normalised radius² of an ellipsoid (rows of ``rot``: its axes in body coordinates)."""
    centre = np.asarray(centre, float)
    reach = float(np.max(axes)) + margin
    box = grid.box(centre - reach, centre + reach)
    if box is None:
        return None, None
    dx, dy, dz = _crop(grid.X, box) - centre[0], _crop(grid.Y, box) - centre[1], _crop(grid.Z, box) - centre[2]
    g = sum(((rot[a, 0] * dx + rot[a, 1] * dy + rot[a, 2] * dz) / np.float32(axes[a])) ** 2 for a in range(3))
    return box, np.broadcast_to(g, _box_shape(box))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _render_nodes(rng, grid: _Grid, body: dict, scene: _Scene) -> int:
    """Axillary lymph nodes: ovoid, enhancing cortex, fatty hilum."""
    count = 0
    for side in (1, -1):
        for _ in range(int(rng.integers(1, 5))):
            x = side * body["Wx"] * rng.uniform(0.72, 0.9)
            z = body["Bz"] + rng.uniform(35, 62)
            point, normal = _wall_point(body, x)
            fat = float(_fat_thickness(body, x, z))
            centre = point + normal * rng.uniform(6, max(fat - 6, 7))
            centre[2] = z
            axes = np.array([rng.uniform(5, 9), rng.uniform(3, 4.5), rng.uniform(3, 4.5)])
            rot = _random_rotation(rng)
            box, g = _ellipsoid(grid, centre, axes, rot)
            if box is None:
                continue
            node = g <= 1
            hilum_centre = centre + rot[0] * axes[0] * 0.45
            hilum_box, hilum_g = _ellipsoid(grid, hilum_centre, axes * 0.5, rot, margin=axes.max() * 0.6)
            scene.tissue[box][node] = _T["node"]
            scene.label[box][node] = 6
            if hilum_box is not None:
                hilum = (hilum_g <= 1) & (scene.label[hilum_box] == 6)
                scene.tissue[hilum_box][hilum] = _T["fat"]
            count += int(node.any())
    return count


def _sample_in_breast(rng, body: dict, side: int, need_depth: float, avoid=None) -> tuple[np.ndarray, str]:
    """A point inside a breast's gland zone at least ``need_depth`` mm deep (best of 60 tries)."""
    depth, rx, rz = _breast_params(body, side)
    best, best_margin = None, -np.inf
    for _ in range(60):
        t = rng.uniform(0.15, 0.8)
        angle = rng.uniform(0, 2 * np.pi)
        rho = np.sqrt(rng.uniform(0, 0.75)) * np.sqrt(max(1 - t ** body["p"], 0.05))
        x = side * (body["Bx"] + body["tilt"] * t * depth) + rho * rx * np.cos(angle)
        z = body["Bz"] + rho * rz * np.sin(angle)
        y = _wall_point(body, x)[0][1] - t * depth
        d_wall = float(_wall_depth(body, x, y))
        d_b, _ = _breast_depth(body, side, x, z, np.float32(d_wall))
        margin = min(float(d_b) - need_depth, -d_wall - body["retro"] - 0.5 * need_depth)
        if avoid is not None:
            margin = min(margin, float(np.linalg.norm(np.array([x, y, z]) - avoid[0])) - avoid[1])
        if margin > best_margin:
            best, best_margin = np.array([x, y, z]), margin
        if margin >= 0:
            break
    upper = best[2] >= body["Bz"]
    front = max(-float(_wall_depth(body, best[0], best[1])), 0)
    outer = side * (best[0] - side * (body["Bx"] + body["tilt"] * front)) >= 0
    return best, QUADRANTS[(0 if upper else 2) + (0 if outer else 1)]


def _render_benign(rng, grid: _Grid, body: dict, scene: _Scene, avoid) -> bool:
    """A fibroadenoma: oval, smooth, parallel to the chest wall, persistent enhancement."""
    side = int(rng.choice([1, -1]))
    axes = np.array([rng.uniform(5, 12), rng.uniform(3.5, 7.5), rng.uniform(4.5, 11)])
    centre, _ = _sample_in_breast(rng, body, side, axes.max() + 3, avoid)
    angle = rng.uniform(-0.4, 0.4)
    rot = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    box, g = _ellipsoid(grid, centre, axes, rot)
    if box is None:
        return False
    breast = (scene.label[box] == (1 if side > 0 else 2))
    lesion = (g <= 1) & breast
    scene.tissue[box][lesion] = _T["benign"]
    scene.label[box][lesion] = 7
    return bool(lesion.any())


def _tumour_shape(rng, grid: _Grid, centre: np.ndarray, radius: float, latent: dict, halo: float):
    """Lobulated, optionally spiculated tumour: box, in-tumour mask, core mask, distance outside the surface."""
    lobes = rng.standard_normal((4, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    spikes = rng.standard_normal((12, 3))
    spikes /= np.linalg.norm(spikes, axis=1, keepdims=True)
    reach = radius * (1.1 + 1.2 * latent["spiculation"]) + halo
    box = grid.box(centre - reach, centre + reach)
    if box is None:
        return None
    dx, dy, dz = (np.broadcast_to(_crop(c, box) - np.float32(m), _box_shape(box))
                  for c, m in ((grid.X, centre[0]), (grid.Y, centre[1]), (grid.Z, centre[2])))
    dist = np.sqrt(dx * dx + dy * dy + dz * dz) + np.float32(1e-6)
    ux, uy, uz = dx / dist, dy / dist, dz / dist
    lobe = sum(np.clip(l[0] * ux + l[1] * uy + l[2] * uz, 0, None) for l in lobes)
    surface = np.float32(radius) * (1 + 0.09 * lobe)
    cos_max = np.max([s[0] * ux + s[1] * uy + s[2] * uz for s in spikes], axis=0)
    surface = surface * (1 + np.float32(latent["spiculation"] * 1.2) * np.exp((cos_max - 1) / np.float32(0.008)))
    return box, dist, surface


def _gland_share(grid: _Grid, scene: _Scene, centre: np.ndarray, radius: float) -> float:
    """The share of fibroglandular tissue within ``radius`` mm of ``centre`` (0 off the grid)."""
    box = grid.box(centre - radius, centre + radius)
    if box is None:
        return 0.0
    d2 = sum((np.broadcast_to(_crop(c, box), _box_shape(box)) - np.float32(m)) ** 2
             for c, m in ((grid.X, centre[0]), (grid.Y, centre[1]), (grid.Z, centre[2])))
    inside = d2 <= radius ** 2
    return float((scene.tissue[box][inside] == _T["fgt"]).mean()) if inside.any() else 0.0


def _render_tumour(rng, grid: _Grid, body: dict, clinical: dict, latent: dict, scene: _Scene,
                   seat: np.random.Generator | None = None) -> dict:
    """Place the tumour in one breast and compute its per-voxel kinetics, texture and halo.

    With ``seat`` (a gland-seated case's own stream) more positions are drawn from it and the one
    with the most fibroglandular tissue around it is kept, among those whose tumour lies in the
    field of view. Why the second condition: a draw just outside an oblique field of view can
    still have gland inside it, and was once chosen (BR287-0173: an exam with no tumour in it).
    """
    side = int(rng.choice([1, -1]))
    radius = clinical["tumour_size_mm"] / 2
    centre, quadrant = _sample_in_breast(rng, body, side, 0.6 * radius + 4)
    if seat is not None:
        draws = [(centre, quadrant)] + [_sample_in_breast(seat, body, side, 0.6 * radius + 4)
                                        for _ in range(GLAND_SEATED_DRAWS - 1)]
        centre, quadrant = max(draws, key=lambda d: _gland_share(grid, scene, d[0], radius + 5)
                               if grid.holds(d[0]) else -1.0)
    shape = _tumour_shape(rng, grid, centre, radius, latent, halo=16.0)
    breast_label = 1 if side > 0 else 2
    info = {"side": side, "centre": centre, "quadrant": quadrant, "box": None}
    if shape is None:
        return info
    box, dist, surface = shape
    label = scene.label[box]
    breast = label == breast_label
    tumour = (dist <= surface) & breast
    core = tumour & (dist <= surface * np.float32(rng.uniform(0.45, 0.62))) if latent["rim"] else np.zeros_like(tumour)
    lo, hi = centre - (radius * 2.4 + 14), centre + (radius * 2.4 + 14)
    texture = _world_field(rng, grid, box, lo, hi, 1.0, (1.6, 1.6, 1.6))
    kinetics = _world_field(rng, grid, box, lo, hi, 1.5, (3.0, 3.0, 3.0))
    enhancing = tumour & ~core
    washout = np.zeros_like(tumour)
    if enhancing.any() and latent["washout_fraction"] > 0.005:
        threshold = np.quantile(kinetics[enhancing], 1 - latent["washout_fraction"])
        washout = enhancing & (kinetics >= threshold)
    texture = np.clip(1 + 0.75 * np.float32(latent["heterogeneity"]) * texture, 0.15, None)
    peak = np.float32(latent["peak_enhancement"]) * texture
    scene.tissue[box][tumour] = _T["tumour"]
    scene.tissue[box][core] = _T["necrosis"]
    scene.tumour[box] = tumour
    outside = np.maximum(dist - surface, 0)
    halo = (~tumour) & (outside < 15) & (scene.label[box] == breast_label)
    halo_level = np.float32(0.9 * latent["peritumoural"]) * np.exp(-outside / np.float32(5.0))
    halo_level = np.where(halo, halo_level, 0).astype(np.float32)
    info.update(box=box, tumour=tumour, core=core, enhancing=enhancing, washout=washout, peak=peak, halo=halo_level)
    return info


def _artefact(grid: _Grid, body: dict, tumour_side: int, site: Site, amplitude: float) -> tuple | None:
    """Enhancing coil artefact near the lateral skin of the breast without the tumour, at a site-specific height."""
    side = -tumour_side
    depth, rx, rz = _breast_params(body, side)
    x = side * (body["Bx"] + 0.8 * rx + body["tilt"] * 0.3 * depth)
    y = _wall_point(body, x)[0][1] - 0.3 * depth
    z = body["Bz"] + (site.artefact_z - 0.5) * rz
    sigma = 8.0
    box = grid.box((x - 3 * sigma, y - 3 * sigma, z - 3 * sigma), (x + 3 * sigma, y + 3 * sigma, z + 3 * sigma))
    if box is None:
        return None
    d2 = ((_crop(grid.X, box) - x) ** 2 + (_crop(grid.Y, box) - y) ** 2 + (_crop(grid.Z, box) - z) ** 2)
    return box, (np.float32(amplitude * ARTEFACT_ENHANCEMENT) * np.exp(-d2 / np.float32(2 * sigma * sigma))).astype(np.float32)


def _artefact_amplitude(rng: np.random.Generator, site: Site, pcr: int) -> float:
    """Shortcut strength: tied to pCR on training sites, independent of it externally."""
    independent = rng.random()  # drawn at every site, so a patient's other draws do not depend on the site
    mean = 0.25 + 0.55 * (independent if site.external else pcr)
    return float(max(0.0, rng.normal(mean, 0.18)))


# =============================================================================================
# Signal, motion and scanner
# =============================================================================================
def _signal_maps(grid: _Grid, scene: _Scene, body: dict, latent: dict, tumour: dict, artefact, site: Site):
    """Noiseless pre, post1, post2 signal (post1 frame)."""
    fs = site.fat_suppressed
    pre = _TABLE[:, 0 if fs else 1][scene.tissue]
    e1 = _TABLE[:, 2][scene.tissue]
    e2 = _TABLE[:, 3][scene.tissue]
    if fs:  # fat suppression fails towards the lateral edges of the field (B0 inhomogeneity)
        fat = scene.tissue == _T["fat"]
        failing = (60 * _smoothstep(np.abs(grid.X) / body["Wx"], 0.8, 1.1)).astype(np.float32)
        pre = pre + np.where(fat, np.broadcast_to(failing, grid.shape), 0).astype(np.float32)
    arterial = (scene.tissue == _T["blood"]) | (scene.tissue == _T["vessel"])
    e1[arterial] *= np.float32(site.timing)
    bpe = BPE_ENHANCEMENT[int(latent["bpe_level"])]
    for box, fgt, pattern in scene.bpe:
        level = np.float32(bpe) * pattern
        e1[box][fgt] = level[fgt]
        e2[box][fgt] = 1.35 * level[fgt]
    if tumour["box"] is not None:
        box = tumour["box"]
        peak, enhancing, washout = tumour["peak"], tumour["enhancing"], tumour["washout"]
        curve = (0.95, 0.97) if latent["plateau"] else (0.70, 1.0)
        first = np.where(washout, 1.0, curve[0]) * np.float32(site.timing) * peak
        second = np.where(washout, 0.72, curve[1]) * peak
        b1, b2 = e1[box], e2[box]
        b1 += 0.7 * tumour["halo"]
        b2 += tumour["halo"]
        b1[enhancing] = first[enhancing]
        b2[enhancing] = second[enhancing]
    if artefact is not None:
        box, blob = artefact
        blob = np.where(scene.label[box] > 0, blob, 0) * ~scene.tumour[box]
        e1[box] += blob
        e2[box] += blob
    unit = np.float32(ENHANCEMENT_UNIT)
    return {"pre": pre, "post1": pre + unit * e1, "post2": pre + unit * e2}


def _bias_field(rng, grid: _Grid, site: Site) -> np.ndarray:
    """Smooth receive-coil sensitivity in body coordinates: low-order terms and a posterior fall-off."""
    c = rng.normal(0, 1, 4).astype(np.float32)
    x, y, z = grid.X / np.float32(150), grid.Y / np.float32(90), grid.Z / np.float32(70)
    log_bias = np.float32(site.bias / 2) * (c[0] * x + c[1] * y + c[2] * z + c[3] * (x * x - z * z))
    log_bias = log_bias - np.float32(0.25) / (1 + np.exp(-(grid.Y - np.float32(30)) / np.float32(20)))
    return np.exp(np.broadcast_to(log_bias, grid.shape)).astype(np.float32)


def _scanner(rng, grid: _Grid, signals: dict[str, np.ndarray], motion: dict[str, np.ndarray], site: Site) -> dict[str, np.ndarray]:
    """Rigid motion, point spread, bias field, gain and Rician noise; int16 scanner units."""
    bias = _bias_field(rng, grid, site) * np.float32(site.gain)
    spacing = np.array(site.spacing)
    sigma_ijk = np.array([site.blur_mm, site.blur_mm, max(site.blur_mm, 0.45 * site.slice_mm)]) / spacing
    out = {}
    for name, volume in signals.items():
        shift = motion.get(name)
        if shift is not None:  # content moves by ``shift`` mm (body frame) → array-order voxel shift
            voxels = (site.direction.T @ shift) / spacing
            volume = ndimage.shift(volume, voxels[::-1], order=1, mode="nearest")
        blurred = ndimage.gaussian_filter(volume, sigma_ijk[::-1]) * bias
        scale = np.float32(site.noise * site.gain)
        real = blurred + scale * rng.standard_normal(grid.shape, dtype=np.float32)
        imag = scale * rng.standard_normal(grid.shape, dtype=np.float32)
        magnitude = np.sqrt(real * real + imag * imag)
        out[name] = np.clip(np.rint(magnitude), 0, 32767).astype(np.int16)
    return out


# =============================================================================================
# One case
# =============================================================================================
def generate_case(seed: int, index: int, site: Site | None = None, gland_seated: bool = False) -> Case:
    """Generate case ``index`` of the cohort ``seed`` (its site drawn unless given).

    ``gland_seated``: the tumour placed in dense fibroglandular tissue and the BPE drawn heavier
    (module docstring); the clinical record and label are the default case's.
    """
    rng, site = case_stream(seed, index, SITES, site)
    clinical, latent = _draw_clinical_and_latent(rng)
    logit, pcr = _draw_label(rng, clinical, latent)
    seat = np.random.default_rng(np.random.SeedSequence([seed, index, 2])) if gland_seated else None
    if seat is not None:
        latent = {**latent, "bpe_level": float(seat.choice(4, p=GLAND_SEATED_BPE))}
    image_part, clinical_part = _logit_parts(clinical, latent)
    artefact_amp = _artefact_amplitude(rng, site, pcr)
    body = _draw_body(rng, latent)
    heart = _heart(rng, body)
    grid = _place_grid(rng, site, body)
    scene = _Scene(grid)
    anatomy = _render_body(rng, grid, body, latent, scene)
    _render_heart(grid, heart, anatomy, scene)
    _render_vessels(rng, grid, body, anatomy, scene)
    n_nodes = _render_nodes(rng, grid, body, scene)
    tumour = _render_tumour(rng, grid, body, clinical, latent, scene, seat)
    benign = False
    if rng.random() < 0.3:
        benign = _render_benign(rng, grid, body, scene, (tumour["centre"], clinical["tumour_size_mm"] + 12))
    artefact = _artefact(grid, body, tumour["side"], site, artefact_amp)
    signals = _signal_maps(grid, scene, body, latent, tumour, artefact, site)
    motion = {}
    for name in ("pre", "post2"):
        direction = rng.standard_normal(3)
        motion[name] = direction / np.linalg.norm(direction) * rng.uniform(0, 2)
    phases = _scanner(rng, grid, signals, motion, site)
    voxel_ml = float(np.prod(site.spacing)) / 1000
    enhancing_ml = float(tumour["enhancing"].sum()) * voxel_ml if tumour["box"] is not None else 0.0
    wf = latent["washout_fraction"]
    truth = {
        "kinetic_type": float(2 if wf >= 0.2 else (1 if latent["plateau"] else 0)),
        "washout_fraction": wf,
        "rim": latent["rim"],
        "heterogeneity": latent["heterogeneity"],
        "peritumoural": latent["peritumoural"],
        "spiculation": latent["spiculation"],
        "tumour_side": float(tumour["side"] < 0),  # 0 = left, 1 = right
        "tumour_quadrant": float(QUADRANTS.index(tumour["quadrant"])),
        "tumour_volume_ml": enhancing_ml,
        "bpe_level": latent["bpe_level"],
        "density": latent["density"],
        "benign_lesion": float(benign),
        "axillary_nodes": float(n_nodes),
        "pcr_logit": logit,
        "image_logit": image_part,
        "clinical_logit": clinical_part,
        "artefact_amplitude": artefact_amp,
        "motion_pre_mm": float(np.linalg.norm(motion["pre"])),
        "motion_post2_mm": float(np.linalg.norm(motion["post2"])),
        "orientation": site.orientation,
        "fat_suppressed": float(site.fat_suppressed),
    }
    return Case(f"BR{seed:03d}-{index:04d}", site, {name: grid.image(phases[name]) for name in PHASES},
                grid.image(scene.tumour.astype(np.uint8)), clinical, pcr, truth, grid.image(scene.label))


# =============================================================================================
# Cohort
# =============================================================================================
def _assign_split(rng: np.random.Generator, site: Site) -> str:
    if site.external:
        return "external"
    return "val" if rng.random() < 0.2 else "train"


def _write_case(args: tuple[int, int, str], gland_seated: bool = False) -> dict:
    """Worker: generate one case, write its files, return its manifest row + truth."""
    seed, index, out = args
    case = generate_case(seed, index, gland_seated=gland_seated)
    files = write_case_images(out, case.patient_id, case.phases, case.mask)
    anatomy = write_image(case.anatomy, Path(out) / "images" / case.patient_id / "anatomy.nrrd")
    files["anatomy"] = str(anatomy.relative_to(out))
    split = _assign_split(np.random.default_rng(np.random.SeedSequence([seed, index, 1])), case.site)
    row = {"patient_id": case.patient_id, "site": case.site.name, "external": int(case.site.external),
           "split": split, **files, **case.clinical, "pcr": case.pcr}
    return {"row": row, "truth": {"patient_id": case.patient_id, **case.truth}}


@functools.lru_cache(maxsize=1)
def _cached_ceilings() -> dict[str, float]:
    return label_ceilings()


def cohort_metadata(gland_seated: bool = False) -> dict:
    """What ``cohort.json`` says about the generator (sites with their grids, labels, rule, ceilings)."""
    sites = [{**asdict(s), "direction": list(DIRECTIONS[s.orientation]), "spacing": list(s.spacing),
              "size_ijk": list(s.size), "plane": s.plane} for s in SITES]
    return {"generator": "responseai.breast.phantom", "version": GENERATOR_VERSION, "phases": PHASES,
            "gland_seated": gland_seated,
            "label_rule": LABEL_RULE, "label_ceilings": _cached_ceilings(), "sites": sites,
            "anatomy_labels": {str(k): v for k, v in ANATOMY_LABELS.items()},
            "shortcut": "coil artefact near the lateral skin of the breast without the tumour; "
                        "amplitude tracks pCR on training sites only"}


def write_cohort(out: str | Path, n: int, seed: int, workers: int = 2, gland_seated: bool = False) -> pd.DataFrame:
    """Generate ``n`` cases into ``out`` (images/, manifest.csv, truth.csv, cohort.json)."""
    worker = functools.partial(_write_case, gland_seated=gland_seated) if gland_seated else _write_case
    manifest = write_cohort_files(out, n, seed, worker, MANIFEST_COLUMNS, cohort_metadata(gland_seated), workers)
    log.info("pCR prevalence %.1f%%", 100 * manifest["pcr"].mean())
    return manifest


def render_figure(path: str | Path, seed: int = 1, index: int = 5) -> Path:
    """The documentation figure: one patient at an axial fat-suppressed, an axial non-fat-suppressed
    (RAS-stored) and a sagittal site; slices through the tumour, subtraction, anatomy labels and a
    subtraction MIP. Axial rows are shown in radiological convention (patient right on the left,
    anterior up), the sagittal row with anterior on the left.
    """
    import SimpleITK as sitk
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from responseai.io import from_sitk, to_sitk

    colours = ListedColormap(["black", "#8ecae6", "#ffb703", "#d62828", "#f77f00", "#fcbf49", "#2a9d8f",
                              "#e9c46a", "#3a0ca3", "#9d4edd", "#6c757d"])
    rows = []
    for site_name in ("A", "B", "C"):
        site = next(s for s in SITES if s.name == site_name)
        case = generate_case(seed, index, site=site)
        images = {**case.phases, "mask": case.mask, "anatomy": case.anatomy}
        if site.plane == "axial":
            images = {n: from_sitk(sitk.DICOMOrient(to_sitk(im), "LPS")) for n, im in images.items()}
        arrays = {n: im.array.astype(np.float32) for n, im in images.items()}
        k = int(np.median(np.nonzero(arrays["mask"])[0]))
        rows.append((case, site, arrays, k))
    fig, axes = plt.subplots(3, 6, figsize=(13.5, 7.0))
    titles = ("pre", "post1", "post2", "post1 − pre", "anatomy labels", "MIP of post1 − pre")
    for r, (case, site, arrays, k) in enumerate(rows):
        body = arrays["anatomy"] > 0
        vmax = float(np.percentile(arrays["post1"][body], 99.5))
        subtraction = arrays["post1"] - arrays["pre"]
        smax = float(np.percentile(subtraction[body], 99.8))
        panels = [arrays["pre"][k], arrays["post1"][k], arrays["post2"][k], subtraction[k], arrays["anatomy"][k], subtraction.max(0)]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            if c == 4:
                ax.imshow(panel, cmap=colours, vmin=0, vmax=10, interpolation="nearest")
            else:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=smax if c >= 3 else vmax)
            if c < 5:
                ax.contour(arrays["mask"][k], [0.5], colors="#00ff66", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
        axes[r, 0].set_ylabel(f"site {site.name}: {site.plane} ({site.orientation})\n"
                              f"{'fat-suppressed' if site.fat_suppressed else 'no fat suppression'}", fontsize=8)
    t = rows[0][0].truth
    fig.suptitle(f"Phantom v2, patient {rows[0][0].patient_id} at three sites (same anatomy): tumour in the "
                 f"{'right' if t['tumour_side'] else 'left'} breast, {rows[0][0].clinical['tumour_size_mm']:g} mm, "
                 f"washout fraction {t['washout_fraction']:.2f}, rim {int(t['rim'])}, heterogeneity {t['heterogeneity']:.2f}, "
                 f"peritumoural {t['peritumoural']:.2f}; green: tumour mask", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """``responseai synth breast``: write a phantom cohort (optionally measure its planted shortcut)."""
    parser = cohort_parser("responseai synth breast", "Write the breast DCE-MRI phantom cohort", 200, 1)
    parser.add_argument("--check-shortcut", action="store_true",
                        help="report how well a feature outside the tumour predicts pCR per domain")
    parser.add_argument("--gland-seated", action="store_true",
                        help="training option: tumours in dense fibroglandular tissue, heavier BPE (module docstring)")
    args = parse_cohort_args(parser, argv)
    manifest = write_cohort(args.out, n=args.n, seed=args.seed, workers=args.workers, gland_seated=args.gland_seated)
    log.info("%d cases, %d external, pCR prevalence %.1f%% -> %s", len(manifest), int(manifest["external"].sum()),
             100 * manifest["pcr"].mean(), Path(args.out) / "manifest.csv")
    if args.check_shortcut:
        from responseai.breast.shortcut import shortcut_auc

        log.info("shortcut outside the tumour: %s", shortcut_auc(Path(args.out), manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
