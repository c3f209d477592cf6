"""Deterministic breast DCE-MRI phantom cohort with a pCR label and a planted shortcut.

Why a phantom: no breast DCE-MRI with response labels can be obtained here, and a phantom
can *falsify* a claim. Each case has anatomy (air, skin, fatty breast with fibroglandular
texture, pectoral muscle), three fat-suppressed T1 phases (pre, post1, post2) with
background parenchymal enhancement and a lobulated tumour with a kinetic curve, optional
necrotic core (rim enhancement), enhancement heterogeneity and spiculation.

Label rule (documented in ``docs/phantom-cohorts.md`` and written to ``cohort.json``)::

    logit = -1.6 + 1.3·washout + 1.0·rim − 1.6·spiculation + 0.9·HER2+ + 1.1·triple-negative
            − 0.6·ER+ + 0.03·(Ki-67 − 30) − 0.35·(T − 2) + N(0, 0.4²)
    pCR ~ Bernoulli(sigmoid(logit))

so image-only models can see washout, rim and spiculation, and only a clinical branch sees
HER2, ER and Ki-67 directly.

Sites A–D are training sites, E is the external site; each has its own gain, bias field,
noise, blur/resolution and contrast timing. On training sites a *coil artefact* — an
enhancing blob at the lateral skin, on the side away from the tumour, at a site-specific
height — has an amplitude that rises with pCR. On the external site the same artefact is
present but independent of pCR. A model that looks outside the tumour learns it and fails
externally; that is what makes seed 000's generalisation claim testable.

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

from responseai.breast.constants import BREAST_VARIABLES
from responseai.image import Image
from responseai.synthetic.cohort import case_stream, cohort_parser, parse_cohort_args, write_case_images, write_cohort_files

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
SHAPE = (48, 96, 96)  # z, y, x voxels
SLICE_THICKNESS_MM = 2.0
PHASES = ("pre", "post1", "post2")
MANIFEST_COLUMNS = (
    ("patient_id", "site", "external", "split", *PHASES, "mask")
    + tuple(v.name for v in BREAST_VARIABLES)
    + ("pcr",)
)


@dataclass(frozen=True)
class Site:
    """Scanner and protocol effects of one institution."""

    name: str
    external: bool
    weight: float  # share of the cohort
    gain: float
    noise: float  # std of the additive noise (intensity units)
    bias: float  # amplitude of the log bias field
    blur_mm: float  # point-spread width: the effective resolution
    pixel_mm: float  # in-plane spacing
    timing: float  # post1 enhancement fraction reached at acquisition (contrast timing)
    artefact_z: float  # relative height of the coil artefact, site specific


SITES: tuple[Site, ...] = (
    Site("A", False, 0.175, 1.00, 6.0, 0.10, 1.0, 1.40, 1.00, 0.30),
    Site("B", False, 0.175, 0.80, 9.0, 0.20, 1.4, 1.50, 0.85, 0.70),
    Site("C", False, 0.175, 1.25, 5.0, 0.15, 0.8, 1.30, 1.10, 0.45),
    Site("D", False, 0.175, 0.95, 8.0, 0.25, 1.8, 1.45, 0.95, 0.60),
    Site("E", True, 0.300, 1.10, 10.0, 0.30, 1.6, 1.60, 0.90, 0.50),
)
SUBTYPES = ("luminal_a", "luminal_b", "her2_enriched", "triple_negative")
LABEL_RULE = (
    "logit = -1.6 + 1.3*washout + 1.0*rim - 1.6*spiculation + 0.9*HER2+ + 1.1*triple_negative "
    "- 0.6*ER+ + 0.03*(Ki67 - 30) - 0.35*(T - 2) + N(0, 0.4^2); pCR ~ Bernoulli(sigmoid(logit))"
)


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


def generate_case(seed: int, index: int, site: Site | None = None) -> Case:
    """Generate case ``index`` of the cohort ``seed`` (its site drawn unless given)."""
    rng, site = case_stream(seed, index, SITES, site)
    clinical, latent = _draw_clinical_and_latent(rng)
    logit = _pcr_logit(clinical, latent) + rng.normal(0, 0.4)
    pcr = int(rng.random() < 1 / (1 + np.exp(-logit)))
    spacing = (site.pixel_mm, site.pixel_mm, SLICE_THICKNESS_MM)
    coords = _world_coordinates(spacing)
    anatomy = _anatomy(rng, coords)
    tumour, core = _tumour(rng, coords, spacing, anatomy["breast"], clinical["tumour_size_mm"], latent)
    artefact_amp = _artefact_amplitude(rng, site, pcr)
    artefact = _artefact(coords, anatomy, tumour, site, artefact_amp)
    phases = _render_phases(rng, anatomy, tumour, core, artefact, latent, site)
    origin = (-(SHAPE[2] // 2) * spacing[0], -(SHAPE[1] // 4) * spacing[1], -(SHAPE[0] // 2) * spacing[2])
    images = {name: Image(arr, spacing, origin) for name, arr in phases.items()}
    mask = Image(tumour.astype(np.uint8), spacing, origin)
    truth = {**latent, "pcr_logit": float(logit), "artefact_amplitude": float(artefact_amp)}
    return Case(f"BR{seed:03d}-{index:04d}", site, images, mask, clinical, pcr, truth)


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
    clinical = {
        "age": age,
        "menopausal_status": "post" if age + rng.normal(0, 3) > 51 else "pre",
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
    latent = {
        "washout": float(rng.random() < (0.55 if aggressive else 0.25)),
        "plateau": 0.0,
        "rim": float(rng.random() < (0.45 if subtype == "triple_negative" else 0.15) + 0.1 * (t_stage >= 3)),
        "spiculation": float(rng.beta(2, 5) if aggressive else rng.beta(3, 3)),
        "heterogeneity": float(rng.beta(2, 2)),
        "bpe": float(rng.uniform(0.05, 0.35)),
    }
    if not latent["washout"]:
        latent["plateau"] = float(rng.random() < 0.5)
    return clinical, latent


def _pcr_logit(clinical: dict, latent: dict) -> float:
    ki67 = clinical["ki67"] if clinical["ki67"] is not None else 30.0
    return (
        -1.6
        + 1.3 * latent["washout"]
        + 1.0 * latent["rim"]
        - 1.6 * latent["spiculation"]
        + 0.9 * (clinical["her2"] == "positive")
        + 1.1 * (clinical["molecular_subtype"] == "triple_negative")
        - 0.6 * (clinical["er"] == "positive")
        + 0.03 * (ki67 - 30)
        - 0.35 * (int(clinical["ct_stage"][1]) - 2)
    )


def _world_coordinates(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Millimetre coordinates (z, y, x broadcastable) centred on the breast, y from nipple to chest."""
    nz, ny, nx = SHAPE
    z = (np.arange(nz) - nz / 2)[:, None, None] * spacing[2]
    y = (np.arange(ny) - ny / 4)[None, :, None] * spacing[1]
    x = (np.arange(nx) - nx / 2)[None, None, :] * spacing[0]
    return z, y, x


def _smooth_noise(rng: np.random.Generator, sigma_vox: float) -> np.ndarray:
    """Unit-variance smooth random field on the grid."""
    field_ = ndimage.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), sigma_vox)
    return field_ / (field_.std() + 1e-6)


def _anatomy(rng: np.random.Generator, coords: tuple) -> dict[str, np.ndarray]:
    """Breast half-ellipsoid in front of a chest wall, skin shell, fibroglandular texture."""
    z, y, x = coords
    chest_y = rng.uniform(55, 65)
    depth, half_width, half_height = rng.uniform(50, 62), rng.uniform(55, 64), rng.uniform(36, 42)
    radial = ((chest_y - y) / depth) ** 2 + (x / half_width) ** 2 + (z / half_height) ** 2
    body = (radial <= 1.0) & (y <= chest_y) | (y > chest_y)
    muscle = (y > chest_y) & (y <= chest_y + 12) & np.ones(SHAPE, bool)
    breast = body & (y <= chest_y)
    skin = body & ~ndimage.binary_erosion(body, iterations=2)
    density = rng.uniform(0.15, 0.45)
    texture = _smooth_noise(rng, 2.0) - 0.8 * radial  # denser near the centre and chest wall
    threshold = np.quantile(texture[breast], 1 - density)
    fgt = breast & (texture > threshold)
    return {"body": np.broadcast_to(body, SHAPE), "breast": np.broadcast_to(breast, SHAPE),
            "muscle": muscle, "chest": (y > chest_y + 12) & np.ones(SHAPE, bool), "skin": skin, "fgt": fgt, "chest_y": np.float32(chest_y)}


def _tumour(rng, coords, spacing, breast, size_mm, latent) -> tuple[np.ndarray, np.ndarray]:
    """Lobulated, optionally spiculated tumour inside the breast, and its necrotic core."""
    z, y, x = coords
    radius = size_mm / 2
    inner = ndimage.distance_transform_edt(breast, sampling=spacing[::-1]) > radius * 0.6 + 4
    candidates = np.argwhere(inner if inner.any() else breast)
    cz, cy, cx = candidates[rng.integers(len(candidates))]
    dz, dy, dx = z - z[cz, 0, 0], y - y[0, cy, 0], x - x[0, 0, cx]
    dist = np.sqrt(dz**2 + dy**2 + dx**2) + 1e-6
    unit = np.stack(np.broadcast_arrays(dz, dy, dx)) / dist
    lobes = rng.standard_normal((4, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    surface = radius * (1 + 0.18 * np.einsum("kd,d...->k...", lobes, unit).clip(0).sum(0) / 2)
    spikes = rng.standard_normal((12, 3))
    spikes /= np.linalg.norm(spikes, axis=1, keepdims=True)
    cos_angle = np.einsum("kd,d...->k...", spikes, unit).max(0)
    surface = surface * (1 + latent["spiculation"] * 0.9 * np.exp(-(1 - cos_angle) / 0.004))
    tumour = (dist <= surface) & breast
    core = tumour & (dist <= 0.5 * surface) if latent["rim"] else np.zeros(SHAPE, bool)
    return tumour, core


def _artefact_amplitude(rng: np.random.Generator, site: Site, pcr: int) -> float:
    """Shortcut strength: tied to pCR on training sites, independent of it externally."""
    mean = 0.25 + 0.55 * pcr if not site.external else 0.25 + 0.55 * rng.random()
    return float(max(0.0, rng.normal(mean, 0.18)))


def _artefact(coords, anatomy, tumour, site: Site, amplitude: float) -> np.ndarray:
    """Enhancing coil artefact at the lateral skin, on the side away from the tumour."""
    z, y, x = coords
    tumour_x = float(np.mean(np.broadcast_to(x, SHAPE)[tumour]))
    side = -1.0 if tumour_x > 0 else 1.0
    cz = (site.artefact_z - 0.5) * SHAPE[0] * SLICE_THICKNESS_MM * 0.6
    cy, cx = float(anatomy["chest_y"]) - 12, side * 48
    blob = np.exp(-(((z - cz) / 8) ** 2 + ((y - cy) / 9) ** 2 + ((x - cx) / 9) ** 2))
    return (amplitude * blob * anatomy["body"] * ~tumour).astype(np.float32)


def _render_phases(rng, anatomy, tumour, core, artefact, latent, site: Site) -> dict[str, np.ndarray]:
    """Signal model: tissue intensities, enhancement curves, then scanner effects."""
    pre = np.full(SHAPE, 4.0, np.float32)
    pre[anatomy["body"]] = 90.0  # suppressed fat
    pre[anatomy["chest"]] = 50.0
    pre[anatomy["muscle"]] = 140.0
    pre[anatomy["fgt"]] = 160.0
    pre[anatomy["skin"]] = 170.0
    pre[tumour] = 150.0
    pre[core] = 120.0
    heterogeneity = 1 + latent["heterogeneity"] * 0.6 * _smooth_noise(rng, 1.2)
    peak = rng.uniform(1.0, 1.4) * heterogeneity.clip(0.1)
    if latent["washout"]:
        curve = (1.0, 0.72)
    elif latent["plateau"]:
        curve = (0.92, 0.95)
    else:
        curve = (0.70, 1.0)
    phases = {"pre": pre}
    for name, fraction in zip(PHASES[1:], curve):
        enhancement = np.zeros(SHAPE, np.float32)
        enhancement[anatomy["fgt"]] = latent["bpe"] * (0.8 if name == "post1" else 1.0)
        enhancement[anatomy["muscle"]] = 0.15
        enhancement[tumour] = (fraction * peak)[tumour]
        enhancement[core] = 0.05
        if name == "post1":
            enhancement *= site.timing
        phases[name] = pre * (1 + enhancement) + 90.0 * artefact
    return _scanner(rng, phases, site)


def _scanner(rng, phases: dict[str, np.ndarray], site: Site) -> dict[str, np.ndarray]:
    """Bias field, gain, blur (resolution) and noise of the site; stored as int16."""
    z, y, x = (np.linspace(-1, 1, n, dtype=np.float32) for n in SHAPE)
    coeffs = rng.normal(0, 1, 4)
    log_bias = coeffs[0] * z[:, None, None] + coeffs[1] * y[None, :, None] + coeffs[2] * x[None, None, :]
    log_bias = log_bias + coeffs[3] * (x[None, None, :] ** 2 - y[None, :, None] ** 2)
    bias = np.exp(site.bias * log_bias / 2)
    sigma = (site.blur_mm / SLICE_THICKNESS_MM, site.blur_mm / site.pixel_mm, site.blur_mm / site.pixel_mm)
    out = {}
    for name, volume in phases.items():
        blurred = ndimage.gaussian_filter(volume * bias * site.gain, sigma)
        noisy = np.abs(blurred + rng.normal(0, site.noise, SHAPE))  # magnitude image: Rician-like
        out[name] = np.clip(noisy, 0, 32767).round().astype(np.int16)
    return out


def _assign_split(rng: np.random.Generator, site: Site) -> str:
    if site.external:
        return "external"
    return "val" if rng.random() < 0.2 else "train"


def _write_case(args: tuple[int, int, str]) -> dict:
    """Worker: generate one case, write its files, return its manifest row + truth."""
    seed, index, out = args
    case = generate_case(seed, index)
    files = write_case_images(out, case.patient_id, case.phases, case.mask)
    split = _assign_split(np.random.default_rng(np.random.SeedSequence([seed, index, 1])), case.site)
    row = {"patient_id": case.patient_id, "site": case.site.name, "external": int(case.site.external),
           "split": split, **files, **case.clinical, "pcr": case.pcr}
    return {"row": row, "truth": {"patient_id": case.patient_id, **case.truth}}


def write_cohort(out: str | Path, n: int, seed: int, workers: int = 2) -> pd.DataFrame:
    """Generate ``n`` cases into ``out`` (images/, manifest.csv, truth.csv, cohort.json)."""
    meta = {"generator": "responseai.breast.phantom", "version": GENERATOR_VERSION,
            "shape_zyx": SHAPE, "phases": PHASES, "label_rule": LABEL_RULE,
            "sites": [asdict(s) for s in SITES],
            "shortcut": "coil artefact outside the tumour; amplitude tracks pCR on training sites only"}
    manifest = write_cohort_files(out, n, seed, _write_case, MANIFEST_COLUMNS, meta, workers)
    log.info("pCR prevalence %.1f%%", 100 * manifest["pcr"].mean())
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``responseai synth breast``: write a phantom cohort (optionally measure its planted shortcut)."""
    parser = cohort_parser("breast", "Write the breast DCE-MRI phantom cohort", 200, 1)
    parser.add_argument("--check-shortcut", action="store_true",
                        help="report how well a feature outside the tumour predicts pCR per domain")
    args = parse_cohort_args(parser, argv)
    manifest = write_cohort(args.out, n=args.n, seed=args.seed, workers=args.workers)
    log.info("%d cases, %d external, pCR prevalence %.1f%% -> %s", len(manifest), int(manifest["external"].sum()),
             100 * manifest["pcr"].mean(), Path(args.out) / "manifest.csv")
    if args.check_shortcut:
        from responseai.breast.shortcut import shortcut_auc

        log.info("shortcut outside the tumour: %s", shortcut_auc(Path(args.out), manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
