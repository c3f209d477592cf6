"""A second, independently coded breast DCE-MRI phantom: held-out validation only (never train or tune).

Same public shape as the main breast phantom (``generate_case``, ``write_cohort``, ``SITES``,
``PHASES``, ``MANIFEST_COLUMNS``) so an evaluation can swap one for the other, but other shape,
texture, intensity and label models, written without reading the main generator. Every case is
``external``: the whole variant is a held-out domain.

Anatomy (prone bilateral exam, LPS patient mm: x to the patient's left, y posterior, z superior;
origin at the front of the sternum, nipple level)

- **Thorax**: the anterior chest wall is a curved sheet ``y_cw = y0 + x²/2R + (z−zc)²/2Rz``
  (R 160–230 mm), so lateral chest wall lies further back; body skin and subcutaneous fat in
  front of it, with an axillary fat pad high and lateral. Behind it: pectoral muscle (thin
  medially, 8–15 mm laterally), a rib layer (ribs every ~24 mm with dark cortex and fatty marrow,
  costal cartilage medially, sternum with marrow at the midline, intercostal muscle), then the
  pleura. Behind the pleura: lungs (dark), a **heart** (tilted, apex-tapered superquadric:
  myocardial wall and septum, blood-filled chambers, pericardial fat) left of the midline and
  touching the back of the sternum, a mediastinal fat band with the **great vessels** (ascending
  aorta, pulmonary trunk, superior vena cava), **internal mammary** vessels (parasternal) and
  lateral thoracic vessels, 2–5 benign **axillary lymph nodes** per side (fatty hilum) plus
  rounder enhancing abnormal nodes on the tumour side when cN ≥ 1.
- **Breasts**: each a spline-deformed cone, not an ellipsoid: depth profile
  ``r(t) = (1 − (t/D)^p)^(1/q)`` (t measured forward from the local body surface, so the base
  hugs the curved chest), superellipse cross-sections (exponent 1.9–2.6) with different medial
  and lateral half-widths and a random angular Fourier deformation, a centre line that droops
  laterally and inferiorly, skin (thicker at the areola), nipple. Fibroglandular tissue (FGT) is
  two anisotropic noise fields (elongated along the ducts, i.e. along y) plus a central and
  upper-outer bias, thresholded to the fraction of the ACR category (a–d), kept out of the
  subcutaneous and retromammary fat. Background parenchymal enhancement (minimal → marked) is a
  spatially modulated FGT Ktrans.
- **Tumour** (either breast, upper-outer quadrant favoured, size from cT: T1 10–20 mm, T2 21–48,
  T3 51–75, T4 25–70 and touching the skin with skin thickening): star-shaped body with 2–5 lobes
  on an anisotropic base, optional spicules (tapered strands), optional rim enhancement around a
  necrotic core, Ktrans heterogeneity (log-normal, smooth field), a washout compartment covering
  a fraction of the enhancing voxels (its pattern another smooth field; washout voxels Ktrans
  0.45–0.7 /min, kep 1.6–2.6 /min; the others plateau, kep 0.28–0.42, or persistent, kep
  0.06–0.14), optional peritumoural enhancement (a halo in the surrounding fat / FGT decaying over
  3–7 mm). The tumour is placed so that its own surface fits in the breast and in every site's
  field of view (T4: touching the skin). Optional benign fibroadenoma (smooth superellipsoid,
  slow persistent kinetics) in either breast, away from the tumour.

Intensity model: every tissue has T1 (1.5 T or 3 T value), proton density, a fat flag, and
extended-Tofts parameters (Ktrans, kep, vp). The contrast-agent concentration is
``C(t) = vp·Cp(t) + Ktrans ∫ Cp(τ) e^{−kep(t−τ)} dτ`` with the Parker population AIF (dose and
arrival jitter per case, Hct 0.42; blood-pool voxels carry the whole-blood curve), sampled at the
phase times (pre = 0, post1 ≈ 75–100 s, post2 ≈ 300–420 s after injection; per site); signal is
the spoiled-gradient-echo equation ``S = PD·sin α·(1 − E1)/(1 − cos α·E1)``,
``E1 = exp(−TR·(1/T1 + r1·C))`` (r1 5.2 / 5.0 per mM·s). Heart chambers and aorta enhance
≈ 4–5× at post1 and wash out by post2; washout tumours fall from post1 to post2, plateau ones
stay within ~10 %, persistent ones rise. Fat suppression multiplies fat signal by a residual
(6 % at the isocentre, more off-centre). Then: a 0.5-voxel point-spread blur, 0–2 mm rigid
translation of pre and post2 relative to post1, a smooth multiplicative bias field (stronger at
the breast coil, anterior), Rician noise (4–5 % of muscle), the site gain and int16 storage.

Sites (``SITES``; all external, every manifest row ``split = external``; direction columns are
the i, j, k axes in LPS; spacing and size along i, j, k):

  VAL-AX   axial stored RAS-like   (−x, −y, +z)            1.2 × 1.2 × 2.5 mm    250 × 150 × 56 (2.10 M)
           3 T, fat-suppressed, TR 4.4 ms, 12°, post1 75 s, post2 360 s
  VAL-SAG  sagittal, slices L→R    (+y, −z, −x)            1.3 × 1.3 × 3.0 mm    138 × 108 × 100 (1.49 M)
           1.5 T, fat-suppressed, TR 5.5 ms, 15°, post1 100 s, post2 420 s
  VAL-OBL  axial LAI, 5° oblique   Rz(5°)·(+x, −y, −z)     1.45 × 1.45 × 2.0 mm  207 × 124 × 70 (1.80 M)
           3 T, no fat suppression, TR 4.0 ms, 12°, post1 90 s, post2 300 s

Each grid covers ≈ 300 × 180 × 140 mm (both breasts, axillae, front of the heart) around a
site-specific table position (non-zero origins) with a few mm of per-case jitter. Mask (tumour,
including necrotic core and spicules) and anatomy label map (``ANATOMY_LABELS``: 1 left breast,
2 right breast, 3 heart, 4 great vessels, 5 internal mammary / lateral thoracic vessels,
6 axillary nodes, 7 benign lesion, 8 lungs, 9 chest wall) are on the post1 grid, which all phases
share.

Clinical record: the 12 variables of ``BREAST_VARIABLES``, consistent with the molecular subtype
(luminal A / B, HER2-enriched, triple negative: 27 / 30 / 20 / 23 %); 3–12 % of some entries
missing (empty cells); the tumour size is the true longest diameter ± 2.5 mm.

pCR label (``LABEL_RULE``): logistic in four image features the clinical form does not carry,
washout fraction ``w``, rim/necrosis ``rim``, heterogeneity ``h`` and peritumoural enhancement
``peri``, and clinical terms (HER2+, triple negative, ER+, Ki-67, cT)::

    η = −0.9 + 2.8·(w − 0.4) − 1.5·rim − 2.8·(h − 0.5) − 1.4·peri
        + 1.5·HER2⁺ + 1.4·TN − 0.9·ER⁺ + 0.025·(Ki-67 − 30) − 0.5·(T − 2)
    pcr ~ Bernoulli(sigmoid(η))

Kinetic type, rim, peritumoural enhancement and heterogeneity shift with subtype and grade as in
real cohorts, so image and clinical terms overlap. With the true (unmasked) values, over 50 000
simulated records: prevalence ≈ 0.28, AUC of the noiseless η ≈ 0.88 (combined ceiling), image
terms alone ≈ 0.73, clinical terms alone ≈ 0.78 (``label_ceilings()``).

Every case draws from ``case_stream(seed, index)``: the site first, then clinical record and
tumour features, then anatomy (these never depend on the site, so one patient can be rendered on
every site), then acquisition effects; the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from responseai.breast.constants import BREAST_VARIABLES
from responseai.image import Image
from responseai.io import write_image
from responseai.synthetic.cohort import (
    case_stream, cohort_parser, parse_cohort_args, write_case_images, write_cohort_files,
)

log = logging.getLogger(__name__)

GENERATOR_VERSION = "variant-1.0"
PHASES = ("pre", "post1", "post2")
CLINICAL_COLUMNS = tuple(v.name for v in BREAST_VARIABLES)
MANIFEST_COLUMNS = (
    "patient_id", "site", "external", "split", *PHASES, "mask", *CLINICAL_COLUMNS, "pcr", "anatomy",
)
ANATOMY_LABELS = {
    1: "left_breast", 2: "right_breast", 3: "heart", 4: "great_vessels", 5: "internal_mammary_vessels",
    6: "axillary_nodes", 7: "benign_lesion", 8: "lungs", 9: "chest_wall",
}
KINETIC_TYPES = ("persistent", "plateau", "washout")
ACR_DENSITY = ("a", "b", "c", "d")
BPE_LEVELS = ("minimal", "mild", "moderate", "marked")
LABEL_COEFFICIENTS = {
    "intercept": -0.9, "washout": 2.8, "rim": -1.5, "heterogeneity": -2.8, "peritumoural": -1.4,
    "her2": 1.5, "triple_negative": 1.4, "er": -0.9, "ki67": 0.025, "t_stage": -0.5,
}
LABEL_RULE = (
    "eta = -0.9 + 2.8*(w - 0.4) - 1.5*rim - 2.8*(h - 0.5) - 1.4*peri + 1.5*HER2pos + 1.4*TN "
    "- 0.9*ERpos + 0.025*(Ki67 - 30) - 0.5*(T - 2); pcr ~ Bernoulli(sigmoid(eta)); "
    "w = washout fraction of the enhancing tumour, rim = rim enhancement over a necrotic core, "
    "h = heterogeneity in [0, 1], peri = peritumoural enhancement; true (unmasked) clinical values"
)


@dataclass(frozen=True)
class Site:
    """One validation acquisition protocol (all held out)."""

    name: str
    external: bool
    weight: float
    orientation: str
    direction: tuple[float, ...]  # 3×3 row-major; columns are the i, j, k axes in LPS
    spacing: tuple[float, float, float]  # along i, j, k (mm)
    size: tuple[int, int, int]  # voxels along i, j, k
    table: tuple[float, float, float]  # patient-frame origin in scanner LPS (mm): non-zero origins
    field_tesla: float
    fat_suppressed: bool
    tr_ms: float
    flip_deg: float
    post1_s: float
    post2_s: float
    noise: float  # Rician sigma relative to pre-contrast muscle signal
    gain: float
    bias: float  # amplitude of the log bias field
    motion_mm: float  # rms translation of pre / post2 against post1


def _rot_z(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


_OBLIQUE = _rot_z(5.0) @ np.diag([1.0, -1.0, -1.0])
SITES: tuple[Site, ...] = (
    Site("VAL-AX", True, 0.40, "axial-RAS", (-1, 0, 0, 0, -1, 0, 0, 0, 1), (1.2, 1.2, 2.5), (250, 150, 56),
         (4.0, 85.0, -140.0), 3.0, True, 4.4, 12.0, 75.0, 360.0, 0.04, 16000.0, 0.22, 0.7),
    Site("VAL-SAG", True, 0.30, "sagittal", (0, 0, -1, 1, 0, 0, 0, -1, 0), (1.3, 1.3, 3.0), (138, 108, 100),
         (-6.0, 110.0, -95.0), 1.5, True, 5.5, 15.0, 100.0, 420.0, 0.05, 11000.0, 0.30, 1.0),
    Site("VAL-OBL", True, 0.30, "axial-oblique-LAI", tuple(np.round(_OBLIQUE, 12).ravel()), (1.45, 1.45, 2.0),
         (207, 124, 70), (2.0, 60.0, -180.0), 3.0, False, 4.0, 12.0, 90.0, 300.0, 0.045, 9000.0, 0.18, 0.5),
)
FOV_CENTRE = np.array([0.0, -15.0, -2.0])  # patient mm: between the breasts, front of the heart


@dataclass
class Case:
    """One generated patient: DCE phases, tumour mask, anatomy labels, clinical record, label, truth."""

    patient_id: str
    site: Site
    phases: dict[str, Image]
    mask: Image
    clinical: dict[str, object]
    pcr: int
    truth: dict[str, float] = field(default_factory=dict)
    anatomy: Image | None = None


# --------------------------------------------------------------------------------------------
# Clinical record, tumour features and label
# --------------------------------------------------------------------------------------------

SUBTYPES = ("luminal_a", "luminal_b", "her2_enriched", "triple_negative")


def draw_record(rng: np.random.Generator) -> dict:
    """True clinical values, tumour image features and the pCR draw (a fixed number of draws)."""
    u = rng.random(32)
    subtype = int(np.searchsorted(np.cumsum([0.27, 0.30, 0.20, 0.23]), u[0] * 0.999999, side="right"))
    er = subtype in (0, 1)
    pr = (u[1] < 0.9) if subtype == 0 else ((u[1] < 0.6) if subtype == 1 else False)
    her2 = subtype == 2 or (subtype == 1 and u[2] < 0.35)
    ki67 = float(round([3 + 16 * u[3], 20 + 45 * u[3], 20 + 60 * u[3], 30 + 62 * u[3]][subtype]))
    age = int(np.clip(round(49 + 11 * _normal(u[4], u[5])), 24, 85))
    postmenopausal = age > 51 + 3 * _normal(u[6], u[7])
    lobular_p = 0.15 if er else 0.03
    histology = "lobular" if u[8] < lobular_p else ("other" if u[8] > 0.91 else "ductal")
    grade_p = [(0.35, 0.55, 0.10), (0.10, 0.50, 0.40), (0.03, 0.35, 0.62), (0.02, 0.18, 0.80)][subtype]
    grade = 1 + int(np.searchsorted(np.cumsum(grade_p), u[9] * 0.999999, side="right"))
    t_stage = 1 + int(np.searchsorted(np.cumsum([0.15, 0.50, 0.22, 0.13]), u[10] * 0.999999, side="right"))
    n_stage = int(np.searchsorted(np.cumsum([0.42, 0.38, 0.12, 0.08]), u[11] * 0.999999, side="right"))
    size = [10 + 10 * u[12], 21 + 27 * u[12], 51 + 24 * u[12], 25 + 45 * u[12]][t_stage - 1]
    measured = float(np.clip(round(size + 2.5 * _normal(u[13], u[14])), 5, 150))

    kinetic_p = [(0.45, 0.35, 0.20), (0.30, 0.35, 0.35), (0.20, 0.35, 0.45), (0.15, 0.35, 0.50)][subtype]
    kinetic = int(np.searchsorted(np.cumsum(kinetic_p), u[15] * 0.999999, side="right"))
    washout = [0.12 * u[16], 0.15 + 0.30 * u[16], 0.55 + 0.37 * u[16]][kinetic]
    rim_p = [0.12, 0.22, 0.30, 0.55][subtype] + 0.12 * (t_stage >= 3)
    rim = int(u[17] < rim_p)
    core = 0.35 + 0.30 * u[18] if rim else 0.0
    hetero = float(np.clip(rng.beta(2.2, 2.2) + 0.08 * (grade - 2), 0.0, 1.0))
    peri_p = 0.18 + 0.17 * (subtype == 3 or grade == 3) + 0.15 * (t_stage >= 3)
    peri = int(u[19] < peri_p)
    spiculated = int(u[20] < (0.55 if histology == "lobular" else (0.35 if er else 0.12)))
    true = {"her2": int(her2), "triple_negative": int(subtype == 3), "er": int(er), "ki67": ki67,
            "t_stage": t_stage}
    image = {"washout_fraction": washout, "rim": rim, "heterogeneity": hetero, "peritumoural": peri}
    eta = pcr_logit(image, true)
    pcr = int(u[21] < 1 / (1 + np.exp(-eta)))

    clinical = {
        "age": age, "menopausal_status": "post" if postmenopausal else "pre",
        "er": "positive" if er else "negative", "pr": "positive" if pr else "negative",
        "her2": "positive" if her2 else "negative", "ki67": ki67, "molecular_subtype": SUBTYPES[subtype],
        "histological_type": histology, "histological_grade": str(grade), "ct_stage": f"T{t_stage}",
        "cn_stage": f"N{n_stage}", "tumour_size_mm": measured,
    }
    missing = {"menopausal_status": 0.04, "pr": 0.03, "ki67": 0.12, "histological_type": 0.05,
               "histological_grade": 0.08, "tumour_size_mm": 0.06, "cn_stage": 0.03, "molecular_subtype": 0.03}
    for slot, (name, p) in enumerate(missing.items()):
        if u[22 + slot] < p:
            clinical[name] = None
    return {
        "clinical": clinical, "subtype": subtype, "grade": grade, "t_stage": t_stage, "n_stage": n_stage,
        "diameter_mm": float(size), "kinetic": kinetic, "washout_fraction": float(washout), "rim": rim,
        "core_fraction": float(core), "heterogeneity": hetero, "peritumoural": peri,
        "spiculated": spiculated, "pcr_logit": float(eta), "image_logit": image_logit(image), "pcr": pcr,
    }


def _normal(a: float, b: float) -> float:
    """Box–Muller from two uniforms (keeps the record's draw count fixed)."""
    return float(np.sqrt(-2 * np.log(max(a, 1e-12))) * np.cos(2 * np.pi * b))


def image_logit(image: dict) -> float:
    """The image terms of ``LABEL_RULE`` (what a perfect image-only model could know)."""
    c = LABEL_COEFFICIENTS
    return float(c["washout"] * (image["washout_fraction"] - 0.4) + c["rim"] * image["rim"]
                 + c["heterogeneity"] * (image["heterogeneity"] - 0.5) + c["peritumoural"] * image["peritumoural"])


def pcr_logit(image: dict, clinical: dict) -> float:
    """Noiseless logit η of ``LABEL_RULE`` from image features and true clinical values."""
    c = LABEL_COEFFICIENTS
    return float(
        c["intercept"] + image_logit(image)
        + c["her2"] * clinical["her2"] + c["triple_negative"] * clinical["triple_negative"]
        + c["er"] * clinical["er"] + c["ki67"] * (clinical["ki67"] - 30) + c["t_stage"] * (clinical["t_stage"] - 2)
    )


def case_record(seed: int, index: int) -> dict:
    """The record of case ``index`` (clinical values, tumour features, label) without rendering."""
    rng, _ = case_stream(seed, index, SITES)
    return draw_record(rng)


def label_ceilings(n: int = 50_000, seed: int = 0) -> dict[str, float]:
    """Prevalence and noiseless AUCs (combined η, image terms only, clinical terms only)."""
    from sklearn.metrics import roc_auc_score

    rows = [draw_record(np.random.default_rng(np.random.SeedSequence([seed, i, 99]))) for i in range(n)]
    y = np.array([r["pcr"] for r in rows])
    eta = np.array([r["pcr_logit"] for r in rows])
    image = np.array([r["image_logit"] for r in rows])
    return {"prevalence": float(y.mean()), "auc_combined": float(roc_auc_score(y, eta)),
            "auc_image_terms": float(roc_auc_score(y, image)),
            "auc_clinical_terms": float(roc_auc_score(y, eta - image))}


# --------------------------------------------------------------------------------------------
# Anatomy (patient LPS mm)
# --------------------------------------------------------------------------------------------

# Tissue classes: T1 at 1.5 T / 3 T (ms), proton density, fat, Ktrans (/min), kep (/min), vp.
# Blood-pool voxels carry whole-blood concentration: vp = 1 - Hct on the plasma curve.
HCT = 0.42
TISSUES = {
    "air": (1000, 1000, 0.0, 0, 0.0, 0.3, 0.0),
    "fat": (260, 370, 0.90, 1, 0.003, 0.3, 0.002),
    "fgt": (1250, 1450, 0.75, 0, 0.0, 0.35, 0.005),
    "skin": (800, 1000, 0.70, 0, 0.06, 0.5, 0.02),
    "muscle": (1000, 1400, 0.70, 0, 0.05, 0.3, 0.02),
    "bone": (1000, 1100, 0.04, 0, 0.0, 0.3, 0.0),
    "marrow": (300, 400, 0.85, 1, 0.02, 0.3, 0.01),
    "cartilage": (1000, 1200, 0.55, 0, 0.01, 0.2, 0.0),
    "blood": (1450, 1930, 0.90, 0, 0.0, 0.3, 1 - HCT),
    "myocardium": (1030, 1470, 0.80, 0, 0.55, 1.6, 0.10),
    "lung": (1200, 1300, 0.08, 0, 0.02, 0.5, 0.05),
    "node": (1000, 1300, 0.80, 0, 0.12, 0.5, 0.03),
    "abnormal_node": (1100, 1400, 0.85, 0, 0.35, 1.0, 0.04),
    "fibroadenoma": (1150, 1550, 0.85, 0, 0.20, 0.2, 0.01),
    "tumour": (1100, 1500, 0.85, 0, 0.5, 0.6, 0.03),
    "necrosis": (1600, 2100, 0.90, 0, 0.0, 0.3, 0.0),
    "nipple": (900, 1100, 0.75, 0, 0.10, 0.4, 0.03),
}
TISSUE_INDEX = {name: i for i, name in enumerate(TISSUES)}
T = TISSUE_INDEX


@dataclass
class _Breast:
    side: int  # +1 left (patient +x), -1 right
    xb: float
    zb: float
    depth: float
    rx_lat: float
    rx_med: float
    rz: float
    p: float
    q: float
    expo: float
    fourier: np.ndarray  # (3, 2): amplitude, phase for k = 2, 3, 4
    droop_lat: float
    droop_inf: float
    skin: float
    nipple_r: float
    nipple_len: float


@dataclass
class _Patient:
    y0: float
    r_cw: float
    r_cz: float
    zc: float
    fat0: float
    pad: float
    pm_max: float
    rib_z0: float
    rib_step: float
    body_skin: float
    retro: float
    breasts: list
    heart: dict
    vessels: list  # (kind, label, a, b, radius): segments in patient mm
    nodes: list  # dicts: centre, axes, rot, hilum, abnormal
    lesion: dict | None
    tumour: dict
    fgt: dict
    aif: dict


def _y_cw(p: _Patient, x, z):
    return p.y0 + x * x / (2 * p.r_cw) + (z - p.zc) ** 2 / (2 * p.r_cz)


def _y_body(p: _Patient, x, z):
    pad = p.pad * np.exp(-(((np.abs(x) - 128) / 24) ** 2)) / (1 + np.exp(-(z - 10) / 10))
    return _y_cw(p, x, z) - p.fat0 - pad


def _pectoral(p: _Patient, x):
    s = np.clip((np.abs(x) - 20) / 70, 0, 1)
    return 3 + (p.pm_max - 3) * s * s * (3 - 2 * s)


RIB_LAYER = 13.0


def _breast_eval(p: _Patient, b: _Breast, x, y, z):
    """Breast region, distance to its skin (mm), depth t and relative radius, for point arrays."""
    t = _y_body(p, x, z) + 4.0 - y
    tc = np.clip(t, 0, None)
    xc = b.xb + b.side * b.droop_lat * tc * tc / b.depth
    zc = b.zb - b.droop_inf * tc * tc / b.depth
    dx, dz = x - xc, z - zc
    rx = np.where(b.side * dx > 0, b.rx_lat, b.rx_med)
    norm = (np.abs(dx / rx) ** b.expo + np.abs(dz / b.rz) ** b.expo) ** (1 / b.expo)
    theta = np.arctan2(dz, b.side * dx)
    pert = 1.0 + sum(b.fourier[k, 0] * np.cos((k + 2) * theta + b.fourier[k, 1]) for k in range(3))
    rho = norm / pert
    frac = np.clip(tc / b.depth, 0, 1)
    profile = np.where(t <= b.depth, (1 - frac ** b.p) ** (1 / b.q), 0.0)
    inside = (rho < profile) & (y < _y_cw(p, x, z))
    radial = np.hypot(dx, dz)
    d_xz = np.where(rho > 1e-6, radial * (profile / np.maximum(rho, 1e-6) - 1), 1e3)
    t_surf = b.depth * (1 - np.clip(rho, 0, 1) ** b.q) ** (1 / b.p)
    d_t = np.where(rho < 1, t_surf - t, -1.0)
    d = np.where((d_xz > 0) & (d_t > 0), d_xz * d_t / np.sqrt(d_xz ** 2 + d_t ** 2 + 1e-9), np.minimum(d_xz, d_t))
    return inside, d, t, rho, radial


def _breast_bounds(p: _Patient, b: _Breast) -> tuple[np.ndarray, np.ndarray]:
    """Patient-frame box holding breast ``b`` (its base follows the curved chest)."""
    xs = [b.xb - b.side * b.rx_med * 1.25, b.xb + b.side * (b.rx_lat * 1.25 + b.droop_lat * b.depth)]
    zs = [b.zb - b.rz * 1.25 - b.droop_inf * b.depth, b.zb + b.rz * 1.25]
    gx, gz = np.meshgrid(np.linspace(min(xs), max(xs), 9), np.linspace(zs[0], zs[1], 9))
    front = float(_y_body(p, gx, gz).min()) + 4 - b.depth - b.nipple_len - 2
    back = float(_y_cw(p, gx, gz).max()) + 2
    return np.array([min(xs), front, zs[0]]), np.array([max(xs), back, zs[1]])


def _draw_patient(rng: np.random.Generator, rec: dict) -> _Patient:
    """Anatomy parameters (never depend on the site)."""
    u = rng.random
    radius = rec["diameter_mm"] / 2
    tumour_side = int(u() < 0.5)  # 0 left, 1 right
    p = _Patient(
        y0=float(rng.uniform(-4, 4)), r_cw=float(rng.uniform(160, 230)), r_cz=float(rng.uniform(500, 900)),
        zc=float(rng.uniform(-20, 10)), fat0=float(rng.uniform(7, 18)), pad=float(rng.uniform(18, 34)),
        pm_max=float(rng.uniform(8, 15)), rib_z0=float(rng.uniform(0, 24)), rib_step=float(rng.uniform(22, 27)),
        body_skin=float(rng.uniform(1.4, 2.2)), retro=float(rng.uniform(3, 8)), breasts=[], heart={}, vessels=[],
        nodes=[], lesion=None, tumour={}, fgt={}, aif={},
    )
    # breasts: the tumour's breast must hold the tumour
    base_depth, base_width = rng.uniform(55, 100), rng.uniform(0, 1)
    base_depth = max(base_depth, 2.1 * radius + 30)  # both breasts grow with a big tumour (asymmetry stays small)
    base_width = max(base_width, (radius + 30 - 42) / 16)
    for side in (+1, -1):
        is_tumour_side = (side == +1) == (tumour_side == 0)
        xb = side * (rng.uniform(72, 90))
        depth = float(np.clip(base_depth * rng.uniform(0.93, 1.07), 50, 105))
        rx_lat = float(min(138 - abs(xb), 42 + 18 * base_width) * rng.uniform(0.95, 1.05))
        rx_med = float(min(abs(xb) - 14, 44 + 18 * base_width) * rng.uniform(0.95, 1.05))
        rz = float((42 + 16 * base_width) * rng.uniform(0.93, 1.05))
        if is_tumour_side:
            depth = max(depth, 2.1 * radius + 30)
            rz = max(rz, radius + 30)
        b = _Breast(
            side=side, xb=float(xb), zb=float(rng.uniform(-10, 8)), depth=depth, rx_lat=rx_lat, rx_med=rx_med,
            rz=rz, p=float(rng.uniform(1.2, 2.2)), q=float(rng.uniform(1.2, 2.0)), expo=float(rng.uniform(1.9, 2.6)),
            fourier=np.column_stack([rng.uniform(-0.05, 0.05, 3), rng.uniform(0, 2 * np.pi, 3)]),
            droop_lat=float(rng.uniform(0.04, 0.22)), droop_inf=float(rng.uniform(0.0, 0.15)),
            skin=float(rng.uniform(1.5, 2.3)), nipple_r=float(rng.uniform(4, 6)), nipple_len=float(rng.uniform(3, 7)),
        )
        p.breasts.append(b)
    # fibroglandular tissue and background parenchymal enhancement
    age_young = rec["clinical"]["age"] < 50
    density_p = (0.06, 0.30, 0.44, 0.20) if age_young else (0.14, 0.46, 0.32, 0.08)
    density = int(rng.choice(4, p=density_p))
    fraction = float([rng.uniform(0.04, 0.12), rng.uniform(0.16, 0.34), rng.uniform(0.40, 0.58),
                      rng.uniform(0.62, 0.78)][density])
    bpe_p = (0.25, 0.35, 0.25, 0.15) if age_young else (0.55, 0.30, 0.11, 0.04)
    bpe = int(rng.choice(4, p=bpe_p))
    p.fgt = {"density": density, "fraction": fraction, "bpe": bpe,
             "bpe_ktrans": (0.004, 0.02, 0.045, 0.09)[bpe] * float(rng.uniform(0.8, 1.2)),
             "subcut": float(rng.uniform(4, 9)), "central": float(rng.uniform(0.6, 1.4)),
             "upper_outer": float(rng.uniform(0.2, 0.8)), "seed": int(rng.integers(2**31))}
    # heart: tilted, apex-tapered superquadric touching the back of the sternum
    axis = np.array([0.62, -0.42, -0.66]) + rng.normal(0, 0.06, 3)
    axis /= np.linalg.norm(axis)
    helper = np.array([0.0, 0.0, 1.0])
    v2 = np.cross(axis, helper)
    v2 /= np.linalg.norm(v2)
    v3 = np.cross(axis, v2)
    roll = rng.uniform(0, np.pi)
    v2, v3 = np.cos(roll) * v2 + np.sin(roll) * v3, -np.sin(roll) * v2 + np.cos(roll) * v3
    semi = np.array([rng.uniform(56, 66), rng.uniform(42, 50), rng.uniform(40, 48)])
    xh, zh = rng.uniform(14, 32), rng.uniform(-48, -28)
    y_pl = float(_y_cw(p, xh, zh) + _pectoral(p, xh) + RIB_LAYER)
    rot = np.column_stack([axis, v2, v3])
    # front of the heart (its most anterior surface point) 1-3 mm behind the pleura
    extent_y = float(np.sqrt(((rot[1, :] * semi) ** 2).sum())) * 0.93
    p.heart = {"centre": np.array([xh, y_pl + extent_y + rng.uniform(1, 3), zh]), "rot": rot, "semi": semi,
               "expo": float(rng.uniform(2.2, 2.8)), "taper": float(rng.uniform(0.25, 0.4)),
               "wall": float(rng.uniform(8, 11)), "septum": float(rng.uniform(4, 6)), "fat": float(rng.uniform(2, 5))}
    top = zh + semi[0] * 0.5
    # great vessels (label 4) and internal mammary / lateral thoracic vessels (label 5)
    ypl0 = float(_y_cw(p, 0, top) + _pectoral(p, 0) + RIB_LAYER)
    ao = np.array([rng.uniform(-10, -2), ypl0 + rng.uniform(30, 38), top - 15])
    p.vessels.append(("aorta", 4, ao, ao + np.array([rng.uniform(-6, 6), rng.uniform(5, 15), 120]),
                      float(rng.uniform(13, 16))))
    pa = np.array([rng.uniform(10, 20), ypl0 + rng.uniform(16, 22), top - 10])
    p.vessels.append(("pulmonary_trunk", 4, pa, pa + np.array([rng.uniform(-8, 4), 35, 45]),
                      float(rng.uniform(11, 14))))
    svc = np.array([rng.uniform(-30, -24), ypl0 + rng.uniform(36, 44), top - 5])
    p.vessels.append(("svc", 4, svc, svc + np.array([0, 5, 120]), float(rng.uniform(8, 10))))
    for side in (+1, -1):
        xim = side * rng.uniform(24, 32)
        for dx, r in ((0.0, rng.uniform(1.4, 1.8)), (side * 4.0, rng.uniform(1.8, 2.4))):
            yim = float(_y_cw(p, xim + dx, 0) + _pectoral(p, xim + dx) + RIB_LAYER - 3)
            p.vessels.append(("internal_mammary", 5, np.array([xim + dx, yim, -120.0]),
                              np.array([xim + dx, yim + 4, 120.0]), float(r)))
        xlt = side * rng.uniform(96, 110)
        ylt = float(_y_cw(p, xlt, 20) - 2.5)
        p.vessels.append(("lateral_thoracic", 5, np.array([xlt, ylt + 8, -40.0]),
                          np.array([xlt + side * 12, ylt - 3, 80.0]), float(rng.uniform(1.2, 1.6))))
    # tumour (in the chosen breast) and, optionally, a fibroadenoma
    p.tumour = _place_tumour(rng, p, p.breasts[tumour_side], rec, tumour_side)
    if u() < 0.3:
        side = int(u() < 0.5)
        p.lesion = _place_lesion(rng, p, p.breasts[side], side)
    # axillary nodes: benign on both sides, abnormal ones on the tumour side for cN >= 1
    n_abnormal = (0, 1, 2, 4)[rec["n_stage"]]
    for side in (+1, -1):
        n_benign = int(rng.integers(2, 6))
        tumour_here = (side == +1) == (tumour_side == 0)
        for k in range(n_benign + (n_abnormal if tumour_here else 0)):
            abnormal = k >= n_benign
            node = _place_node(rng, p, side, abnormal)
            if node is not None:
                p.nodes.append(node)
    p.aif = {"dose": float(rng.uniform(0.85, 1.15)), "delay_min": float(rng.uniform(0.0, 0.15))}
    return p


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _fibonacci(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.column_stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)])


SPHERE = _fibonacci(96)


SAFE_BOX = (np.array([-135.0, -95.0, -60.0]), np.array([135.0, 65.0, 56.0]))  # inside every site's FOV


def _fits(p: _Patient, b: _Breast, pts: np.ndarray, margin: float) -> tuple[bool, float]:
    """Whether points lie inside the breast (skin distance > margin) and every site's field of view."""
    inside, d, _, _, _ = _breast_eval(p, b, pts[:, 0], pts[:, 1], pts[:, 2])
    chest = pts[:, 1] < _y_cw(p, pts[:, 0], pts[:, 2]) - 3
    in_view = np.all((pts >= SAFE_BOX[0]) & (pts <= SAFE_BOX[1]))
    return bool(inside.all() and chest.all() and in_view and d.min() > margin), float(d.min())


def _breast_point(rng: np.random.Generator, p: _Patient, b: _Breast, t_range, rho_max, upper_outer: float):
    """A random point inside breast ``b`` (depth fraction, relative radius, quadrant)."""
    frac = rng.uniform(*t_range)
    t = frac * b.depth
    theta = rng.uniform(0.05, 0.45) * np.pi if rng.random() < upper_outer else rng.uniform(0, 2 * np.pi)
    rho = rho_max * np.sqrt(rng.random())
    profile = (1 - frac ** b.p) ** (1 / b.q)
    rx = b.rx_lat if np.cos(theta) > 0 else b.rx_med
    ux, uz = np.cos(theta), np.sin(theta)
    norm = (abs(ux / rx) ** b.expo + abs(uz / b.rz) ** b.expo) ** (1 / b.expo)
    pert = 1.0 + sum(b.fourier[k, 0] * np.cos((k + 2) * theta + b.fourier[k, 1]) for k in range(3))
    r_phys = profile * pert / norm * rho
    xc = b.xb + b.side * b.droop_lat * t * t / b.depth + b.side * ux * r_phys
    zc = b.zb - b.droop_inf * t * t / b.depth + uz * r_phys
    y = float(_y_body(p, xc, zc)) + 4.0 - t
    return np.array([xc, y, zc], float), theta


def _place_tumour(rng: np.random.Generator, p: _Patient, b: _Breast, rec: dict, side: int) -> dict:
    radius = rec["diameter_mm"] / 2
    t4 = rec["t_stage"] == 4
    rot = _random_rotation(rng)
    axes = np.array([1.0, rng.uniform(0.7, 0.95), rng.uniform(0.6, 0.9)])
    n_lobes = int(rng.integers(2, 6))
    lobes = _fibonacci(n_lobes * 7)[rng.choice(n_lobes * 7, n_lobes, replace=False)]
    amps = rng.uniform(0.12, 0.35, n_lobes)
    powers = rng.uniform(3, 8, n_lobes)
    # scale R0 so that the longest diameter matches the clinical size
    dirs = SPHERE
    reach = _tumour_radius(dirs, lobes, amps, powers) * np.linalg.norm(dirs * axes, axis=1)
    r0 = radius / float(np.max(reach))  # longest radius = clinical size / 2
    spicules = []
    if rec["spiculated"]:
        for e in _fibonacci(40)[rng.choice(40, int(rng.integers(8, 16)), replace=False)]:
            spicules.append((e, float(rng.uniform(1.3, 1.9)), float(rng.uniform(0.9, 1.5))))
    # the tumour's own surface (not a bounding sphere) must fit in the breast
    surface = (dirs * axes * (r0 * _tumour_radius(dirs, lobes, amps, powers))[:, None]) @ rot.T
    outward = surface / np.linalg.norm(surface, axis=1, keepdims=True)
    centre, theta = None, 0.0
    size_scale = 1.0
    for attempt in range(400):
        if attempt and attempt % 80 == 0:
            size_scale *= 0.93  # a breast that cannot hold it: shrink (rare)
        c, theta = _breast_point(rng, p, b, (0.25, 0.7), 0.75, 0.5)
        if t4:  # reaches the skin, most of it inside
            ok, _ = _fits(p, b, c + surface * size_scale * 0.6, 0.5)
            outer = c + surface * size_scale + 2 * outward
            in_view = np.all((outer >= SAFE_BOX[0]) & (outer <= SAFE_BOX[1]))
            _, douter = _fits(p, b, outer, -1e9)
            if ok and in_view and douter < 0:
                centre = c
                break
        else:
            ok, _ = _fits(p, b, c + surface * size_scale + 2.5 * outward, 1.5)
            if ok:
                centre = c
                break
    if centre is None:
        centre = _breast_point(rng, p, b, (0.45, 0.45), 0.0, 0.0)[0]
    kinetic = rec["kinetic"]
    return {
        "side": side, "centre": centre, "rot": rot, "axes": axes, "lobes": lobes, "amps": amps, "powers": powers,
        "r0": r0 * size_scale, "radius": radius * size_scale, "spicules": spicules, "theta": float(theta),
        "core": rec["core_fraction"], "rim": rec["rim"], "washout": rec["washout_fraction"], "kinetic": kinetic,
        "heterogeneity": rec["heterogeneity"], "peri": rec["peritumoural"], "t4": t4,
        # washout voxels: fast exchange; the others persistent (persistent type) or plateau
        "ktrans_wash": float(rng.uniform(0.45, 0.7)), "kep_wash": float(rng.uniform(1.6, 2.6)),
        "ktrans": float(rng.uniform(0.15, 0.25) if kinetic == 0 else rng.uniform(0.2, 0.3)),
        "kep_rest": float(rng.uniform(0.06, 0.14) if kinetic == 0 else rng.uniform(0.28, 0.42)),
        "peri_ktrans": float(rng.uniform(0.08, 0.15)), "peri_width": float(rng.uniform(3, 7)),
        "skin_thick": float(rng.uniform(3.5, 6.0)), "seed": int(rng.integers(2**31)),
    }


def _tumour_radius(d: np.ndarray, lobes: np.ndarray, amps: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """Star-shaped surface radius (units of R0) in unit directions ``d`` (..., 3)."""
    r = 1.0
    for e, a, m in zip(lobes, amps, powers):
        r = r + a * np.clip(d @ e, 0, None) ** m
    return r


def _place_lesion(rng: np.random.Generator, p: _Patient, b: _Breast, side: int) -> dict:
    radius = float(rng.uniform(5, 11))
    semi = radius * np.array([1.0, rng.uniform(0.65, 0.9), rng.uniform(0.55, 0.85)])
    rot = _random_rotation(rng)
    tumour = p.tumour
    for _ in range(200):
        c, _ = _breast_point(rng, p, b, (0.2, 0.75), 0.8, 0.2)
        far = np.linalg.norm(c - tumour["centre"]) > radius + tumour["radius"] * 2.0 + 10
        if far and _fits(p, b, c + SPHERE * (radius + 2), 2.0)[0]:
            return {"side": side, "centre": c, "semi": semi, "rot": rot, "expo": float(rng.uniform(2.2, 2.8)),
                    "ktrans": float(rng.uniform(0.06, 0.14)), "kep": float(rng.uniform(0.1, 0.2))}
    return None


def _place_node(rng: np.random.Generator, p: _Patient, side: int, abnormal: bool) -> dict | None:
    long_axis = rng.uniform(12, 24) if abnormal else rng.uniform(6, 14)
    semi = long_axis / 2 * (np.array([1.0, rng.uniform(0.75, 0.95), rng.uniform(0.7, 0.9)]) if abnormal
                            else np.array([1.0, rng.uniform(0.45, 0.65), rng.uniform(0.4, 0.6)]))
    rot = _random_rotation(rng)
    for _ in range(60):
        x = side * rng.uniform(112, 140)
        z = rng.uniform(12, 58)
        front, back = float(_y_body(p, x, z)) + 3 + semi[0], float(_y_cw(p, x, z)) - 2 - semi[0]
        if back <= front:
            continue
        c = np.array([x, rng.uniform(front, back), z])
        pts = c + SPHERE[::4] * semi[0]
        if not any(_breast_eval(p, b, pts[:, 0], pts[:, 1], pts[:, 2])[0].any() for b in p.breasts):
            return {"centre": c, "semi": semi, "rot": rot, "abnormal": abnormal,
                    "hilum": None if abnormal else float(rng.uniform(0.35, 0.6))}
    return None


# --------------------------------------------------------------------------------------------
# Sampling grid and rendering
# --------------------------------------------------------------------------------------------


@dataclass
class _Grid:
    shape: tuple[int, int, int]  # (nk, nj, ni)
    spacing: tuple[float, float, float]  # (si, sj, sk)
    origin: np.ndarray  # scanner LPS
    direction: np.ndarray
    offset: np.ndarray  # patient frame origin in scanner LPS
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    def box(self, lo, hi):
        """Index slices (k, j, i) of the voxels whose centres may lie in a patient-frame box."""
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        idx = (corners + self.offset - self.origin) @ self.direction / np.asarray(self.spacing)
        n = self.shape[::-1]
        mn = np.clip(np.floor(idx.min(0)).astype(int), 0, n)
        mx = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 0, n)
        if np.any(mx <= mn):
            return None
        return (slice(mn[2], mx[2]), slice(mn[1], mx[1]), slice(mn[0], mx[0]))

    def image(self, array: np.ndarray) -> Image:
        return Image(array, self.spacing, tuple(self.origin), self.direction)


def _make_grid(site: Site, jitter: np.ndarray) -> _Grid:
    direction = np.asarray(site.direction, float).reshape(3, 3)
    spacing = np.asarray(site.spacing, float)
    size = np.asarray(site.size)
    offset = np.asarray(site.table, float) + jitter
    centre = offset + FOV_CENTRE
    origin = centre - direction @ (spacing * (size - 1) / 2)
    i = np.arange(size[0], dtype=np.float64) * spacing[0]
    j = np.arange(size[1], dtype=np.float64) * spacing[1]
    k = np.arange(size[2], dtype=np.float64) * spacing[2]
    local0 = origin - offset
    coords = []
    for axis in range(3):
        a = (local0[axis] + direction[axis, 2] * k[:, None, None] + direction[axis, 1] * j[None, :, None]
             + direction[axis, 0] * i[None, None, :])
        coords.append(np.broadcast_to(a, (size[2], size[1], size[0])).astype(np.float32))
    return _Grid((int(size[2]), int(size[1]), int(size[0])), tuple(float(s) for s in spacing),
                 origin, direction, offset, *coords)


def _smooth_field(seed: int, lo: np.ndarray, hi: np.ndarray, cell: float, sigma_cells, count: int = 1):
    """Unit-variance smooth random fields on a coarse patient-frame lattice (site-independent)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(np.ceil((h - l) / cell)) + 2 for l, h in zip(lo, hi))
    fields = []
    for _ in range(count):
        f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_cells, mode="wrap")
        fields.append((f - f.mean()) / (f.std() + 1e-6))
    return fields


def _sample(field_: np.ndarray, lo: np.ndarray, cell: float, x, y, z) -> np.ndarray:
    coords = np.stack([(x - lo[0]) / cell, (y - lo[1]) / cell, (z - lo[2]) / cell])
    return ndimage.map_coordinates(field_, coords, order=1, mode="nearest")


def _segment_distance(x, y, z, a: np.ndarray, b: np.ndarray):
    ab = b - a
    t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / float(ab @ ab), 0, 1)
    return np.sqrt((x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2), t


def _local(sl, grid: _Grid, centre: np.ndarray, rot: np.ndarray):
    """Box coordinates in a rotated frame centred on ``centre`` (rows of rot.T)."""
    dx, dy, dz = grid.x[sl] - centre[0], grid.y[sl] - centre[1], grid.z[sl] - centre[2]
    return [rot[0, c] * dx + rot[1, c] * dy + rot[2, c] * dz for c in range(3)]


def _render(p: _Patient, grid: _Grid) -> dict:
    """Tissue classes, anatomy labels, per-voxel kinetic parameters and the tumour mask."""
    x, y, z = grid.x, grid.y, grid.z
    shape = grid.shape
    tissue = np.zeros(shape, np.uint8)
    label = np.zeros(shape, np.uint8)
    ktrans = np.zeros(shape, np.float32)  # per-voxel overrides (FGT, tumour, halo); NaN-free
    kep = np.zeros(shape, np.float32)
    vp = np.zeros(shape, np.float32)
    custom = np.zeros(shape, bool)

    ycw = _y_cw(p, x, z)
    ybody = _y_body(p, x, z)
    pm = _pectoral(p, x)
    body = y >= ybody
    tissue[body] = T["fat"]
    tissue[body & (y < ybody + p.body_skin)] = T["skin"]
    wall = (y >= ycw) & (y < ycw + pm)
    tissue[wall] = T["muscle"]
    label[wall] = 9
    # rib layer: ribs (cortex + marrow), costal cartilage, sternum, intercostal muscle
    r0 = ycw + pm
    layer = (y >= r0) & (y < r0 + RIB_LAYER)
    tissue[layer] = T["muscle"]
    label[layer] = 9
    kf = (z - p.rib_z0 - 0.12 * np.abs(x)) / p.rib_step
    dz_rib = (kf - np.round(kf)) * p.rib_step
    ell = (dz_rib / 6.0) ** 2 + ((y - r0 - 6.5) / 4.2) ** 2
    rib = layer & (ell < 1) & (np.abs(x) > 14)
    cartilage = rib & (np.abs(x) < 52)
    tissue[rib & ~cartilage & (ell >= 0.55)] = T["bone"]
    tissue[rib & ~cartilage & (ell < 0.55)] = T["marrow"]
    tissue[cartilage] = T["cartilage"]
    sternum = layer & (np.abs(x) <= 14) & (y > r0 + 1) & (y < r0 + 12)
    tissue[sternum] = T["bone"]
    tissue[sternum & (np.abs(x) < 12.5) & (y > r0 + 2.3) & (y < r0 + 10.7)] = T["marrow"]
    del kf, dz_rib, ell, rib, cartilage, sternum, wall
    # thorax: lungs by default, then mediastinum, heart, vessels
    thorax = y >= r0 + RIB_LAYER
    tissue[thorax] = T["lung"]
    label[thorax] = 8
    h = p.heart
    top = h["centre"][2] + h["semi"][0] * 0.5
    depth_in = y - r0 - RIB_LAYER  # mm behind the pleura
    # a mediastinal fat wedge behind the sternum, widening posteriorly, above the heart
    mediastinum = thorax & (np.abs(x - 2) < 10 + 0.5 * depth_in) & (z > top - 25)
    mediastinum |= thorax & (np.abs(x - 2) < 8 + 0.25 * depth_in) & (depth_in < 14)  # retrosternal fat
    del depth_in
    tissue[mediastinum] = T["fat"]
    label[mediastinum] = 0
    del mediastinum, layer, pm
    reach = float(h["semi"].max()) + h["fat"] + 2
    sl = grid.box(h["centre"] - reach, h["centre"] + reach)
    if sl is not None:
        u, v, w = _local(sl, grid, h["centre"], h["rot"])
        taper = 1 - h["taper"] * np.clip((u / h["semi"][0] + 1) / 2, 0, 1)
        a, b_, c_ = h["semi"]
        e = h["expo"]
        inner = [a - h["wall"] * 0.7, b_ - h["wall"], c_ - h["wall"]]
        f_out = (np.abs(u / a) ** e + np.abs(v / (b_ * taper)) ** e + np.abs(w / (c_ * taper)) ** e) ** (1 / e)
        f_fat = (np.abs(u / (a + h["fat"])) ** e + np.abs(v / (b_ * taper + h["fat"])) ** e
                 + np.abs(w / (c_ * taper + h["fat"])) ** e) ** (1 / e)
        f_in = (np.abs(u / inner[0]) ** e + np.abs(v / (inner[1] * taper)) ** e
                + np.abs(w / (inner[2] * taper)) ** e) ** (1 / e)
        inthorax = thorax[sl]
        t_sl, l_sl = tissue[sl], label[sl]
        peri_fat = inthorax & (f_fat < 1) & (f_out >= 1)
        t_sl[peri_fat] = T["fat"]
        l_sl[peri_fat] = 0
        heart = inthorax & (f_out < 1)
        t_sl[heart] = T["myocardium"]
        l_sl[heart] = 3
        chamber = heart & (f_in < 1) & (np.abs(w) > h["septum"])
        t_sl[chamber] = T["blood"]
    for kind, lab, a, b_, radius in p.vessels:
        lo, hi = np.minimum(a, b_) - radius - 1, np.maximum(a, b_) + radius + 1
        sl = grid.box(lo, hi)
        if sl is None:
            continue
        d, _ = _segment_distance(grid.x[sl], grid.y[sl], grid.z[sl], a, b_)
        vessel = d < radius
        if lab == 4:
            vessel &= thorax[sl]
        tissue[sl][vessel] = T["blood"]
        label[sl][vessel] = lab
    del thorax
    # breasts
    tum = p.tumour
    mask = np.zeros(shape, np.uint8)
    breast_region_tumour = breast_region_lesion = None
    for n, b in enumerate(p.breasts):
        lo, hi = _breast_bounds(p, b)
        sl = grid.box(lo, hi)
        if sl is None:
            continue
        bx, by, bz = grid.x[sl], grid.y[sl], grid.z[sl]
        inside, d, t, rho, radial = _breast_eval(p, b, bx, by, bz)
        areola = np.exp(-np.clip(b.depth - t, 0, None) / 10.0)
        skin = inside & (d < b.skin * (1 + 1.2 * areola)) & (t > 3)
        nipple = (radial < b.nipple_r) & (t > b.depth - 3) & (t < b.depth + b.nipple_len)
        region = inside | nipple
        t_sl, l_sl = tissue[sl], label[sl]
        t_sl[region] = T["fat"]
        lab = 1 if b.side > 0 else 2
        l_sl[region] = lab
        # fibroglandular tissue: duct-elongated noise + central and upper-outer bias, to a target fraction
        fg = p.fgt
        cell = 3.0
        f1, f3 = _smooth_field(fg["seed"] + n, lo, hi, cell, (1.3, 3.2, 1.3), count=2)
        (f2,) = _smooth_field(fg["seed"] + 7 + n, lo, hi, cell / 2, (1.0, 2.5, 1.0))
        eligible = inside & (d > fg["subcut"]) & (by < _y_cw(p, bx, bz) - p.retro)
        ex, ey, ez = bx[eligible], by[eligible], bz[eligible]
        profile_rel = rho[eligible]
        weight = (_sample(f1, lo, cell, ex, ey, ez) + 0.7 * _sample(f2, lo, cell * 0.5, ex, ey, ez)
                  - fg["central"] * profile_rel
                  + fg["upper_outer"] * np.clip((ez - b.zb) / b.rz + b.side * (ex - b.xb) / b.rx_lat, -1, 1))
        target = min(fg["fraction"] * np.count_nonzero(region) / max(np.count_nonzero(eligible), 1), 0.97)
        threshold = np.quantile(weight, 1 - target) if weight.size else 0
        gland = np.zeros_like(eligible)
        gland[eligible] = weight > threshold
        bpe_mod = np.clip(1 + 0.6 * _sample(f3, lo, cell, bx[gland], by[gland], bz[gland]), 0.1, 2.5)
        t_sl[gland] = T["fgt"]
        idx = np.nonzero(gland)
        gl = tuple(ix + s.start for ix, s in zip(idx, sl))
        ktrans[gl] = fg["bpe_ktrans"] * bpe_mod
        kep[gl] = 0.35
        vp[gl] = 0.005
        custom[gl] = True
        t_sl[skin] = T["skin"]
        t_sl[nipple] = T["nipple"]
        # T4: thickened, oedematous skin over the tumour
        if n == tum["side"] and tum["t4"]:
            near = np.sqrt((bx - tum["centre"][0]) ** 2 + (by - tum["centre"][1]) ** 2 + (bz - tum["centre"][2]) ** 2)
            thick = inside & (d < tum["skin_thick"]) & (near < tum["radius"] * 1.8) & (t > 3)
            t_sl[thick] = T["skin"]
        if n == tum["side"]:
            breast_region_tumour = (sl, region.copy())
        if p.lesion is not None and p.lesion["side"] == n:
            breast_region_lesion = (sl, region.copy())
    # tumour (mask = body + spicules, clipped to its breast)
    enhancing_ml = _render_tumour(p, grid, tissue, ktrans, kep, vp, custom, mask, breast_region_tumour)
    if p.lesion is not None and breast_region_lesion is not None:
        les = p.lesion
        reach = float(les["semi"].max()) + 1
        sl = grid.box(les["centre"] - reach, les["centre"] + reach)
        if sl is not None:
            u, v, w = _local(sl, grid, les["centre"], les["rot"])
            e = les["expo"]
            f = (np.abs(u / les["semi"][0]) ** e + np.abs(v / les["semi"][1]) ** e
                 + np.abs(w / les["semi"][2]) ** e) ** (1 / e)
            bsl, bregion = breast_region_lesion
            inside = f < 1
            inside &= _crop(bregion, bsl, sl)
            tissue[sl][inside] = T["fibroadenoma"]
            label[sl][inside] = 7
            idx = tuple(ix + s.start for ix, s in zip(np.nonzero(inside), sl))
            ktrans[idx], kep[idx], vp[idx], custom[idx] = les["ktrans"], les["kep"], 0.01, True
    for node in p.nodes:
        reach = float(node["semi"].max()) + 1
        sl = grid.box(node["centre"] - reach, node["centre"] + reach)
        if sl is None:
            continue
        u, v, w = _local(sl, grid, node["centre"], node["rot"])
        s = node["semi"]
        f = (u / s[0]) ** 2 + (v / s[1]) ** 2 + (w / s[2]) ** 2
        inside = f < 1
        t_sl, l_sl = tissue[sl], label[sl]
        t_sl[inside] = T["abnormal_node"] if node["abnormal"] else T["node"]
        l_sl[inside] = 6
        if node["hilum"] is not None:  # fatty hilum: an inner ellipsoid pushed to one side
            hil = ((u / (s[0] * node["hilum"])) ** 2 + ((v - 0.55 * s[1]) / (s[1] * node["hilum"])) ** 2
                   + (w / (s[2] * node["hilum"])) ** 2) < 1
            t_sl[inside & hil] = T["fat"]
    return {"tissue": tissue, "label": label, "ktrans": ktrans, "kep": kep, "vp": vp, "custom": custom,
            "mask": mask, "enhancing_ml": enhancing_ml}


def _crop(region: np.ndarray, region_sl, sl) -> np.ndarray:
    """``region`` (defined on box ``region_sl``) restricted to box ``sl`` (False outside)."""
    out = np.zeros(tuple(s.stop - s.start for s in sl), bool)
    src, dst = [], []
    for a, b in zip(region_sl, sl):
        lo, hi = max(a.start, b.start), min(a.stop, b.stop)
        if hi <= lo:
            return out
        src.append(slice(lo - a.start, hi - a.start))
        dst.append(slice(lo - b.start, hi - b.start))
    out[tuple(dst)] = region[tuple(src)]
    return out


def _render_tumour(p, grid, tissue, ktrans, kep, vp, custom, mask, breast_region) -> float:
    tum = p.tumour
    reach_spic = max([s[1] for s in tum["spicules"]], default=1.0)
    halo = tum["peri_width"] * 2.0 if tum["peri"] else 0.0
    reach = tum["radius"] * max(1.1, reach_spic) + halo + 3
    c = tum["centre"]
    sl = grid.box(c - reach, c + reach)
    if sl is None or breast_region is None:
        return 0.0
    bsl, bregion = breast_region
    breast = _crop(bregion, bsl, sl)
    u, v, w = _local(sl, grid, c, tum["rot"])
    qa, qb, qc = u / tum["axes"][0], v / tum["axes"][1], w / tum["axes"][2]
    r = np.sqrt(qa * qa + qb * qb + qc * qc) + 1e-6
    dirs = np.stack([qa / r, qb / r, qc / r], axis=-1)
    surface = tum["r0"] * _tumour_radius(dirs, tum["lobes"], tum["amps"], tum["powers"])
    del dirs
    rel = r / surface
    body = (rel < 1) & breast
    spic = np.zeros_like(body)
    gx, gy, gz = grid.x[sl], grid.y[sl], grid.z[sl]
    for e, length, width in tum["spicules"]:
        ew = tum["rot"] @ (e / tum["axes"]) / np.linalg.norm(e / tum["axes"])
        a = c + ew * tum["r0"] * 0.6
        b = c + ew * tum["radius"] * length
        d, s = _segment_distance(gx, gy, gz, a, b)
        spic |= d < width * (1 - 0.8 * s)
    spic &= breast & ~body
    lesion = body | spic
    # texture fields in the tumour frame (site independent)
    lo = c - reach
    cell = 1.5
    het, wash, kfield = _smooth_field(tum["seed"], lo, c + reach, cell, 1.4, count=3)
    lx, ly, lz = gx[lesion], gy[lesion], gz[lesion]
    sigma = 0.1 + 0.8 * tum["heterogeneity"]
    rel_l = rel[lesion]
    necrotic = np.zeros(rel_l.shape, bool)
    if tum["rim"]:
        necrotic = (rel_l < tum["core"]) & body[lesion]
    enhancing = ~necrotic
    wfield = _sample(wash, lo, cell, lx, ly, lz)
    washout = np.zeros(rel_l.shape, bool)
    if enhancing.any() and tum["washout"] > 0:
        cut = np.quantile(wfield[enhancing], 1 - tum["washout"])
        washout = enhancing & (wfield > cut)
    k_t = np.where(washout, tum["ktrans_wash"], tum["ktrans"])
    k_t = k_t * np.exp(sigma * _sample(het, lo, cell, lx, ly, lz) - sigma * sigma / 2)
    if tum["rim"]:
        k_t = np.where(rel_l >= tum["core"], k_t * 1.3, k_t)
    k_t = np.where(spic[lesion], 0.6 * tum["ktrans"], k_t)
    kep_l = np.where(washout, tum["kep_wash"], tum["kep_rest"])
    kep_l = kep_l * np.exp(0.15 * sigma * _sample(kfield, lo, cell, lx, ly, lz))
    vp_l = np.where(washout, 0.06, 0.02)
    kt = np.where(necrotic, 0.0, k_t)
    t_sl = tissue[sl]
    idx = tuple(ix + s.start for ix, s in zip(np.nonzero(lesion), sl))
    tissue[idx] = np.where(necrotic, T["necrosis"], T["tumour"]).astype(np.uint8)
    ktrans[idx], kep[idx], vp[idx], custom[idx] = kt, kep_l, np.where(necrotic, 0.0, vp_l), True
    mask[idx] = 1
    if tum["peri"]:
        dist = (rel - 1) * surface
        ring = breast & ~lesion & (dist > 0) & (dist < halo) & np.isin(t_sl, (T["fat"], T["fgt"]))
        ridx = tuple(ix + s.start for ix, s in zip(np.nonzero(ring), sl))
        k_halo = tum["peri_ktrans"] * np.exp(-dist[ring] / tum["peri_width"])
        base = np.where(custom[ridx], ktrans[ridx], 0.0)
        stronger = k_halo > base
        keep = tuple(a[stronger] for a in ridx)
        ktrans[keep], kep[keep], vp[keep], custom[keep] = k_halo[stronger], 0.3, 0.01, True
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    return float(np.count_nonzero(kt > 0)) * voxel_ml  # enhancing = tumour minus necrotic core


# --------------------------------------------------------------------------------------------
# Kinetics and acquisition
# --------------------------------------------------------------------------------------------

KEP_TABLE = np.geomspace(0.01, 8.0, 96)  # /min


def parker_aif(t_min: np.ndarray) -> np.ndarray:
    """Parker et al. (2006) population whole-blood AIF (mM), time in minutes after injection."""
    t = np.asarray(t_min, float)
    g1 = 0.809 / (0.0563 * np.sqrt(2 * np.pi)) * np.exp(-((t - 0.17046) ** 2) / (2 * 0.0563 ** 2))
    g2 = 0.330 / (0.132 * np.sqrt(2 * np.pi)) * np.exp(-((t - 0.365) ** 2) / (2 * 0.132 ** 2))
    tail = 1.050 * np.exp(-0.1685 * t) / (1 + np.exp(-38.078 * (t - 0.483)))
    return np.where(t > 0, g1 + g2 + tail, 0.0)


def _kinetic_tables(aif: dict, times_s) -> tuple[np.ndarray, np.ndarray]:
    """Plasma concentration Cp(t_k) and the Tofts integrals F(kep, t_k) on ``KEP_TABLE``."""
    dt = 1 / 120  # min
    tau = np.arange(0, max(times_s) / 60 + dt, dt)
    cp = aif["dose"] * parker_aif(tau - aif["delay_min"]) / (1 - HCT)
    cps, conv = [], []
    for ts in times_s:
        tm = ts / 60
        m = tau <= tm + 1e-9
        cps.append(float(np.interp(tm, tau, cp)))
        weights = np.exp(-KEP_TABLE[:, None] * (tm - tau[m])[None, :]) * dt
        conv.append(weights @ cp[m])
    return np.array(cps), np.array(conv)  # (phases,), (phases, kep)


def _signal(r1_0, pd, conc, site: Site) -> np.ndarray:
    relax = 5.2 if site.field_tesla < 2 else 5.0  # r1 (/mM/s), a gadobutrol-like agent
    e1 = np.exp(-site.tr_ms / 1000 * (r1_0 + relax * conc))
    alpha = np.deg2rad(site.flip_deg)
    return pd * np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1)


def _acquire(rng: np.random.Generator, vol: dict, p: _Patient, site: Site, grid: _Grid):
    tissue = vol["tissue"]
    names = list(TISSUES)
    col = 0 if site.field_tesla < 2 else 1
    t1 = np.array([TISSUES[n][col] for n in names], np.float32)
    pd = np.array([TISSUES[n][2] for n in names], np.float32)
    fat = np.array([TISSUES[n][3] for n in names], bool)
    lut_k = np.array([TISSUES[n][4] for n in names], np.float32)
    lut_kep = np.array([TISSUES[n][5] for n in names], np.float32)
    lut_vp = np.array([TISSUES[n][6] for n in names], np.float32)
    times = (0.0, site.post1_s + rng.uniform(-10, 10), site.post2_s + rng.uniform(-20, 20))
    cp, conv = _kinetic_tables(p.aif, times)
    custom = vol["custom"]
    kt = np.where(custom, vol["ktrans"], lut_k[tissue])
    kp = np.where(custom, vol["kep"], lut_kep[tissue])
    vpv = np.where(custom, vol["vp"], lut_vp[tissue])
    logk = np.log(np.clip(kp, KEP_TABLE[0], KEP_TABLE[-1]))
    r1_0 = (1000.0 / t1)[tissue]
    pdv = pd[tissue]
    if site.fat_suppressed:  # residual fat signal grows away from the isocentre
        residual = 0.06 + 0.10 * ((grid.x / 150) ** 2 + (grid.z / 90) ** 2)
        pdv = np.where(fat[tissue], pdv * residual, pdv)
    clean = []
    for k in range(3):
        conc = vpv * cp[k] + kt * np.interp(logk, np.log(KEP_TABLE), conv[k]).astype(np.float32)
        clean.append(_signal(r1_0, pdv, conc, site).astype(np.float32))
    del kt, kp, vpv, logk, r1_0, pdv
    reference = float(_signal(1000.0 / TISSUES["muscle"][col], TISSUES["muscle"][2], 0.0, site))
    # bias field: smooth, stronger anteriorly (breast coil)
    coef = rng.normal(0, 1, 5) * site.bias
    xs, ys, zs = grid.x / 150, (grid.y + 25) / 90, grid.z / 70
    bias = np.exp(coef[0] * xs + coef[1] * zs + 0.3 * coef[2] * xs * xs + 0.3 * coef[3] * zs * zs
                  - (0.25 + 0.1 * abs(coef[4])) * ys).astype(np.float32)
    gain = site.gain * rng.uniform(0.9, 1.1)
    motion_mm = rng.normal(0, site.motion_mm / np.sqrt(3), (2, 3)).clip(-2, 2)
    sigma_vox = (0.5, 0.5, 0.5)
    phases, shifts = {}, {}
    for k, name in enumerate(PHASES):
        signal = ndimage.gaussian_filter(clean[k], sigma_vox, truncate=2.0)
        if name != "post1":
            move = motion_mm[0 if name == "pre" else 1]
            shift_ijk = grid.direction.T @ move / np.asarray(grid.spacing)
            signal = ndimage.shift(signal, shift_ijk[::-1], order=1, mode="nearest")
            shifts[name] = float(np.linalg.norm(move))
        signal *= bias
        noise = site.noise * reference
        real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * noise
        imag = rng.standard_normal(signal.shape, dtype=np.float32) * noise
        magnitude = np.sqrt(real * real + imag * imag) * (gain / reference / 10)
        phases[name] = np.clip(np.rint(magnitude), 0, 32767).astype(np.int16)
    return phases, times, shifts


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def generate_case(seed: int, index: int, site: Site | None = None) -> Case:
    """Generate case ``index`` of cohort ``seed`` in memory (its site drawn by weight unless given)."""
    rng, site = case_stream(seed, index, SITES, site)
    rec = draw_record(rng)
    patient = _draw_patient(rng, rec)
    jitter = rng.uniform(-6, 6, 3)
    grid = _make_grid(site, jitter)
    vol = _render(patient, grid)
    arrays, times, shifts = _acquire(rng, vol, patient, site, grid)
    phases = {name: grid.image(arrays[name]) for name in PHASES}
    mask = grid.image(vol["mask"])
    anatomy = grid.image(vol["label"])
    tum = patient.tumour
    truth = {
        "kinetic_type": rec["kinetic"], "kinetic_name": KINETIC_TYPES[rec["kinetic"]],
        "washout_fraction": rec["washout_fraction"], "rim": rec["rim"], "necrotic_core_fraction": rec["core_fraction"],
        "heterogeneity": rec["heterogeneity"], "peritumoural": rec["peritumoural"], "spiculated": rec["spiculated"],
        "side": tum["side"], "tumour_diameter_mm": 2 * tum["radius"], "enhancing_volume_ml": vol["enhancing_ml"],
        "mask_volume_ml": float(vol["mask"].sum()) * float(np.prod(grid.spacing)) / 1000,
        "t_stage": rec["t_stage"], "n_stage": rec["n_stage"], "grade": rec["grade"],
        "subtype": SUBTYPES[rec["subtype"]],
        "pcr_logit": rec["pcr_logit"], "image_logit": rec["image_logit"],
        "clinical_logit": rec["pcr_logit"] - rec["image_logit"], "pcr_probability": float(1 / (1 + np.exp(-rec["pcr_logit"]))),
        "orientation": site.orientation, "fat_suppressed": int(site.fat_suppressed), "field_tesla": site.field_tesla,
        "acr_density": ACR_DENSITY[patient.fgt["density"]], "fgt_fraction": patient.fgt["fraction"],
        "bpe": patient.fgt["bpe"], "benign_lesion": int(patient.lesion is not None),
        "abnormal_nodes": sum(n["abnormal"] for n in patient.nodes),
        "post1_s": times[1], "post2_s": times[2], "motion_pre_mm": shifts["pre"], "motion_post2_mm": shifts["post2"],
    }
    return Case(f"BV{seed:03d}-{index:04d}", site, phases, mask, rec["clinical"], rec["pcr"], truth, anatomy)


def case_row(case: Case) -> dict:
    """The manifest row of a case (image paths filled in by the writer)."""
    return {"patient_id": case.patient_id, "site": case.site.name, "external": 1, "split": "external",
            **case.clinical, "pcr": case.pcr}


def _write_case(args: tuple[int, int, str]) -> dict:
    """Worker: generate one case, write its NRRD files, return its manifest row + truth."""
    seed, index, out = args
    case = generate_case(seed, index)
    files = write_case_images(out, case.patient_id, case.phases, case.mask)
    path = write_image(case.anatomy, Path(out) / "images" / case.patient_id / "anatomy.nrrd")
    files["anatomy"] = str(path.relative_to(out))
    return {"row": {**case_row(case), **files},
            "truth": {"patient_id": case.patient_id, "site": case.site.name, **case.truth}}


def write_cohort(out: str | Path, n: int, seed: int, workers: int = 2) -> pd.DataFrame:
    """Generate ``n`` validation cases into ``out`` (images/, manifest.csv, truth.csv, cohort.json)."""
    meta = {"generator": "responseai.breast.phantom_variant", "version": GENERATOR_VERSION,
            "purpose": "independent validation only: never train or tune on it",
            "phases": PHASES, "label_rule": LABEL_RULE, "label_coefficients": LABEL_COEFFICIENTS,
            "anatomy_labels": ANATOMY_LABELS, "kinetic_types": KINETIC_TYPES,
            "sites": [asdict(s) for s in SITES]}
    manifest = write_cohort_files(out, n, seed, _write_case, MANIFEST_COLUMNS, meta, workers)
    log.info("pCR rate %.1f%%", 100 * manifest["pcr"].mean())
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``python -m responseai.breast.phantom_variant``: write the independent validation phantom cohort."""
    parser = cohort_parser("python -m responseai.breast.phantom_variant", "Write the independent breast DCE-MRI validation phantom", 100, 0)
    args = parse_cohort_args(parser, argv)
    write_cohort(args.out, args.n, args.seed, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
