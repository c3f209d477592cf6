"""Phantom recurrence cohort: pathology tiles, ultrasound, report text, clinical record, censored RFS (seed 001).

Why a phantom: no cohort with slides, ultrasound, reports and follow-up can be obtained here,
and a documented rule says what a model *should* learn: pathology carries most of the risk,
ultrasound and the report add complementary signal, clinical variables a little more.

Latents per patient: ``z_path`` ~ N(0, 1) (tumour aggressiveness seen on the slide),
``z_us`` ~ N(0, 1) (margin irregularity seen on ultrasound), ``lvi`` ~ Bernoulli(0.3)
(lymphovascular invasion, stated only in the report). The rule (``RISK_RULE``)::

    η = 1.2·z_path + 0.6·z_us + 0.8·lvi + 0.25·z_nodes − 0.4·endocrine_therapy
    T ~ Weibull(shape 1.3, scale 9 years · exp(−η / 1.3))   (hazard ∝ exp(η))
    C = min(U(3, 12) years, Exponential(mean 40 years)),  time = min(T, C), event = T ≤ C

- **Pathology**: 4 RGB tiles of 32 × 32 px, eosin-pink background with noise and haematoxylin
  nuclei (dark purple discs); nuclei per tile ~ Poisson(9·exp(0.45·z_path)), radius
  1.3 + 0.35·z_path px (clipped): density and size carry z_path.
- **Ultrasound**: 48 × 48 grey speckle (Rayleigh) with a hypo-echoic lesion whose border
  r(θ) = r₀·(1 + a·sin(kθ + φ)) has size r₀ = 10.5 + 2.2·z_us + N(0, 0.7²) px (clipped 6–17)
  and irregularity a = 0.04 + 0.28·sigmoid(1.6·z_us), k ∈ 5…9.
- **Report**: 3–4 sentences from varied templates — laterality/quadrant (noise), the margin
  as the radiologist would call it (spiculated / indistinct / circumscribed from z_us, 25 %
  of the time not mentioned), and LVI present / absent in one of several phrasings.
- **Clinical**: age, tumour size (mm), positive nodes (Poisson(exp(0.4·z_path)·1.2)),
  grade (thresholds of z_path + N(0, 1)), menopausal status (age), Ki-67 (18 + 7·z_path + N(0, 10²) %),
  endocrine therapy (70 % yes); nodes 5 % and Ki-67 10 % unknown.
- **Missing modalities**: pathology 15 %, ultrasound 20 %, report 12 % (independently; the
  clinical record is always there), so about 40 % of patients lack at least one.

The ceiling is the C-index of the noiseless η itself (``truth`` holds it per patient): no
model can rank the observed times better on average. Every case draws from its own
``SeedSequence([seed, index])`` stream.

    responseai synth recurrence --n 300 --seed 0 --out COHORT
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from responseai.recurrence.constants import TILE_SIZE, ULTRASOUND_SIZE

log = logging.getLogger(__name__)

RISK_RULE = "η = 1.2·z_path + 0.6·z_us + 0.8·lvi + 0.25·z_nodes − 0.4·endocrine_therapy"
N_TILES = 4
MISSING_RATE = {"pathology": 0.15, "ultrasound": 0.20, "report": 0.12}
WEIBULL_SHAPE, WEIBULL_SCALE_YEARS = 1.3, 9.0
LVI_YES = ("Lymphovascular invasion is present.", "Tumour emboli are seen within lymphovascular spaces.",
           "LVI: present.", "There is evidence of lymphovascular invasion.")
LVI_NO = ("No lymphovascular invasion is identified.", "Lymphovascular spaces are free of tumour.",
          "LVI: absent.", "There is no evidence of lymphovascular invasion.")
MARGINS = {"spiculated": ("The mass has spiculated, angular margins.", "Margins are irregular and spiculated."),
           "indistinct": ("The lesion margins are indistinct.", "Margins are partly obscured and indistinct."),
           "circumscribed": ("The lesion is oval with circumscribed margins.", "Margins are smooth and well circumscribed.")}
SIDES, QUADRANTS = ("left", "right"), ("upper outer", "upper inner", "lower outer", "lower inner", "retroareolar")


@dataclass
class PhantomCase:
    """One patient: any of tiles / ultrasound / report may be ``None`` (missing)."""

    case_id: str
    tiles: np.ndarray | None  # (N_TILES, 32, 32, 3) in [0, 1]
    ultrasound: np.ndarray | None  # (48, 48) in [0, 1]
    report: str | None
    clinical: dict
    time: float  # years
    event: bool
    truth: dict = field(default_factory=dict)


def _tiles(z: float, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:TILE_SIZE, :TILE_SIZE]
    tiles = []
    for _ in range(N_TILES):
        tile = np.array([0.93, 0.72, 0.82]) + rng.normal(0, 0.04, (TILE_SIZE, TILE_SIZE, 3))
        radius = float(np.clip(1.3 + 0.35 * z, 0.8, 2.6))
        for _ in range(rng.poisson(9.0 * np.exp(0.45 * z))):
            cy, cx = rng.uniform(0, TILE_SIZE, 2)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
            tile[disc] = np.array([0.35, 0.2, 0.55]) + rng.normal(0, 0.05, 3)
        tiles.append(np.clip(tile, 0, 1))
    return np.stack(tiles).astype(np.float32)


def _ultrasound(z: float, rng: np.random.Generator) -> np.ndarray:
    size = ULTRASOUND_SIZE
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2 - rng.uniform(-3, 3, (2, 1, 1))
    theta, radius = np.arctan2(yy, xx), np.hypot(yy, xx)
    irregularity = 0.04 + 0.28 / (1 + np.exp(-1.6 * z))
    radius0 = float(np.clip(10.5 + 2.2 * z + rng.normal(0, 0.7), 6, 17))
    border = radius0 * (1 + irregularity * np.sin(rng.integers(5, 10) * theta + rng.uniform(0, 2 * np.pi)))
    tissue = np.where(radius <= border, 0.18, 0.55)
    speckle = rng.rayleigh(0.5, (size, size)) / 0.63
    return np.clip(tissue * speckle, 0, 1).astype(np.float32)


def _report(z_us: float, lvi: bool, rng: np.random.Generator) -> str:
    sentences = [f"{rng.choice(['Invasive carcinoma', 'Invasive ductal carcinoma', 'Carcinoma'])} of the "
                 f"{rng.choice(SIDES)} breast, {rng.choice(QUADRANTS)} quadrant."]
    if rng.random() > 0.25:
        margin = "spiculated" if z_us > 0.6 else "circumscribed" if z_us < -0.6 else "indistinct"
        sentences.append(str(rng.choice(MARGINS[margin])))
    sentences.append(str(rng.choice(LVI_YES if lvi else LVI_NO)))
    if rng.random() < 0.5:
        sentences.append(str(rng.choice(["Skin and nipple are uninvolved.", "No calcifications are described.",
                                         "Specimen received fresh."])))
    return " ".join(sentences)


def generate_case(seed: int, index: int) -> PhantomCase:
    """Patient ``index`` of cohort ``seed`` (its own random stream)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    z_path, z_us, lvi = rng.normal(), rng.normal(), bool(rng.random() < 0.3)
    age = float(np.clip(rng.normal(56, 11), 25, 90))
    nodes = int(rng.poisson(1.2 * np.exp(0.4 * z_path)))
    z_nodes = (np.log1p(nodes) - 0.65) / 0.6
    therapy = bool(rng.random() < 0.7)
    grade = 1 + int(z_path + rng.normal(0, 1.0) > -0.6) + int(z_path + rng.normal(0, 1.0) > 0.6)
    clinical = {
        "age": round(age), "tumour_size": round(float(np.clip(rng.lognormal(3.0, 0.45), 3, 120)), 1),
        "positive_nodes": None if rng.random() < 0.05 else nodes, "grade": str(grade),
        "menopausal": "post" if age + rng.normal(0, 3) > 51 else "pre",
        "ki67": None if rng.random() < 0.10 else round(float(np.clip(18 + 7 * z_path + rng.normal(0, 10), 1, 95)), 1),
        "endocrine_therapy": "yes" if therapy else "no",
    }
    eta = 1.2 * z_path + 0.6 * z_us + 0.8 * lvi + 0.25 * z_nodes - 0.4 * therapy
    recurrence = WEIBULL_SCALE_YEARS * np.exp(-eta / WEIBULL_SHAPE) * rng.weibull(WEIBULL_SHAPE)
    censor = min(rng.uniform(3, 12), rng.exponential(40.0))
    missing = {m: bool(rng.random() < p) for m, p in MISSING_RATE.items()}
    tiles, image, report = _tiles(z_path, rng), _ultrasound(z_us, rng), _report(z_us, lvi, rng)
    return PhantomCase(
        f"R{seed:02d}-{index:04d}", None if missing["pathology"] else tiles, None if missing["ultrasound"] else image,
        None if missing["report"] else report, clinical, float(round(min(recurrence, censor), 3) or 0.001),
        bool(recurrence <= censor), {"eta": float(eta), "z_path": float(z_path), "z_us": float(z_us), "lvi": lvi},
    )


def generate_cohort(n: int, seed: int) -> list[PhantomCase]:
    return [generate_case(seed, i) for i in range(n)]


def write_cohort(cases: list[PhantomCase], out: str | Path) -> Path:
    """Per case: ``tiles/*.png``, ``ultrasound.png``, ``report.txt``, ``clinical.json``; plus ``manifest.csv``."""
    from PIL import Image as PILImage

    out = Path(out)
    rows = []
    for case in cases:
        folder = out / case.case_id
        (folder / "tiles").mkdir(parents=True, exist_ok=True)
        row = {"case_id": case.case_id, "time_years": case.time, "event": int(case.event), **case.truth,
               "pathology": "", "ultrasound": "", "report": "", "clinical": f"{case.case_id}/clinical.json"}
        if case.tiles is not None:
            for k, tile in enumerate(case.tiles):
                PILImage.fromarray((tile * 255).round().astype(np.uint8)).save(folder / "tiles" / f"tile{k}.png")
            row["pathology"] = f"{case.case_id}/tiles"
        if case.ultrasound is not None:
            PILImage.fromarray((case.ultrasound * 255).round().astype(np.uint8)).save(folder / "ultrasound.png")
            row["ultrasound"] = f"{case.case_id}/ultrasound.png"
        if case.report is not None:
            (folder / "report.txt").write_text(case.report + "\n", encoding="utf-8")
            row["report"] = f"{case.case_id}/report.txt"
        (folder / "clinical.json").write_text(json.dumps(case.clinical) + "\n", encoding="utf-8")
        rows.append(row)
    manifest = out / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai synth recurrence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    manifest = write_cohort(generate_cohort(args.n, args.seed), args.out)
    log.info("wrote %d phantom patients to %s", args.n, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
