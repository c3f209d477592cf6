"""Paired mammogram + H&E phantom cohort over four sites with different looks (the label rule).

    responseai synth crossmodal --n 200 --seed 0 --out DIR   # PNGs + manifest.csv (read back by read_cohort)

No real paired radiology–pathology data is available here, so each phantom patient gets one
class (normal, benign, in situ, invasive), a grade for the malignant ones (G1–G3) and a latent
"aggressiveness" ``u`` in [0, 1] that shows in *both* modalities — the class alone would make
every same-class pair interchangeable and leave nothing patient-specific to align. The rule:

mammogram crop (single channel, 64 × 64)
    fibroglandular background (smoothed noise). benign: a round, smooth-edged mass of radius
    4–7 px. in situ: a cluster of 6–17 fine micro-calcifications (more and brighter with grade).
    invasive: an irregular mass with radiating spicules (architectural distortion), more
    spicules with grade, calcifications at G3. normal: no lesion, empty mask and no box.
pathology tile (RGB, 64 × 64, Beer–Lambert haematoxylin + eosin)
    normal: two or three small acini (rings of small uniform nuclei around a lumen) in stroma.
    benign: more, larger ducts with slit lumens and uniform nuclei, spindle stromal nuclei.
    in situ: one large duct filled with nuclei, stroma around it. invasive: nuclei scattered
    through the stroma in cords. Nuclear size, size variation and density rise with grade and ``u``.
site style (what a held-out domain changes)
    mammogram vendor LUT (linear / sigmoid / log / gamma), contrast, noise level; H&E stain
    vectors (hue) and stain intensity. Each case jitters around its site's style.

Deterministic: case ``i`` of seed ``s`` draws from ``default_rng([s, i])``, so a cohort of any
size is reproducible case by case. 240 cases take about a second.
"""

from __future__ import annotations

import argparse
import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from responseai.crossmodal.constants import CLASSES, DOMAINS, GRADES, IMAGE_SIZE, MALIGNANT, NO_GRADE

log = logging.getLogger(__name__)

# Standard Macenko reference stain vectors (optical density per RGB channel).
H_REF = np.array([0.5626, 0.7201, 0.4062])
E_REF = np.array([0.2159, 0.8012, 0.5581])


@dataclass(frozen=True)
class SiteStyle:
    """How one site's scanners and stainers render the same tissue."""

    lut: str  # mammography vendor look-up table: linear, sigmoid, log, gamma
    contrast: float
    noise: float
    h_shift: tuple[float, float, float]  # added to the haematoxylin OD vector
    e_shift: tuple[float, float, float]
    stain_intensity: float


SITE_STYLES = {
    "siteA": SiteStyle("linear", 1.0, 0.02, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 1.0),
    "siteB": SiteStyle("sigmoid", 1.3, 0.04, (0.15, -0.1, 0.05), (0.1, -0.15, 0.0), 1.25),
    "siteC": SiteStyle("log", 0.8, 0.03, (-0.1, 0.1, 0.15), (-0.05, 0.1, -0.15), 0.8),
    "siteD": SiteStyle("gamma", 1.1, 0.06, (0.2, 0.05, -0.1), (0.15, 0.0, 0.1), 1.4),
}


@dataclass
class PairedCohort:
    """Arrays of a paired cohort; index ``i`` is one patient in every array."""

    mammogram: np.ndarray  # (N, S, S) float32 in [0, 1] (vendor-processed display values)
    mask: np.ndarray  # (N, S, S) uint8 lesion mask (all zero for normal)
    box: np.ndarray  # (N, 4) int (row0, col0, row1, col1), -1 for normal
    pathology: np.ndarray  # (N, S, S, 3) uint8 RGB
    label: np.ndarray  # (N,) index into CLASSES
    grade: np.ndarray  # (N,) index into GRADES or NO_GRADE
    domain: np.ndarray  # (N,) index into DOMAINS
    aggressiveness: np.ndarray  # (N,) latent u

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray) -> "PairedCohort":
        return PairedCohort(**{k: v[index] for k, v in vars(self).items()})


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma)
    return (field - field.mean()) / (field.std() + 1e-8)


def _blobs(size: int, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Sum of soft discs (nuclei, calcifications) at ``centres`` (N, 2) with ``radii`` (N,)."""
    if len(centres) == 0:
        return np.zeros((size, size))
    yy, xx = np.mgrid[:size, :size]
    d2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    return np.clip(1.5 - np.sqrt(d2) / radii[:, None, None], 0, 1).sum(0).clip(0, 1.5)


def _apply_lut(image: np.ndarray, style: SiteStyle, rng: np.random.Generator) -> np.ndarray:
    contrast = style.contrast * rng.uniform(0.9, 1.1)
    x = np.clip(0.5 + contrast * (image - 0.5), 0, 1)
    if style.lut == "sigmoid":
        x = 1 / (1 + np.exp(-8 * (x - 0.5)))
    elif style.lut == "log":
        x = np.log1p(9 * x) / np.log(10)
    elif style.lut == "gamma":
        x = x ** 1.8
    x = x + rng.normal(0, style.noise, x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def _mammogram(rng: np.random.Generator, label: str, grade: int, u: float, size: int):
    """(image in [0, 1] before the site LUT, lesion mask)."""
    image = 0.35 + 0.08 * _smooth_noise(rng, size, 3.0) + 0.05 * _smooth_noise(rng, size, 1.0)
    yy, xx = np.mgrid[:size, :size]
    image = image - 0.15 * (xx / size) ** 2  # fat towards the skin line
    mask = np.zeros((size, size), np.uint8)
    if label == "normal":
        return image, mask
    cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2)
    r = np.hypot(yy - cy, xx - cx)
    if label == "benign":
        radius = 4 + 3 * u
        aspect = rng.uniform(0.8, 1.2)
        r_e = np.hypot((yy - cy) * aspect, (xx - cx) / aspect)
        image = image + 0.3 / (1 + np.exp((r_e - radius) / 0.6))
        mask = (r_e <= radius).astype(np.uint8)
    elif label == "in_situ":
        radius = 5 + 3 * u
        n = 6 + 3 * grade + int(5 * u)
        angle, dist = rng.uniform(0, 2 * np.pi, n), radius * np.sqrt(rng.uniform(0, 1, n))
        centres = np.stack([cy + dist * np.sin(angle), cx + dist * np.cos(angle)], 1)
        image = image + (0.35 + 0.1 * grade) * _blobs(size, centres, np.full(n, 0.7))
        mask = (r <= radius + 1).astype(np.uint8)
    else:  # invasive: irregular mass with spicules
        radius = 4 + 3 * u
        theta = np.arctan2(yy - cy, xx - cx)
        wobble = 1 + 0.25 * np.sin(3 * theta + rng.uniform(0, 6)) * (0.5 + 0.25 * grade)
        core = 1 / (1 + np.exp((r - radius * wobble) / 0.8))
        spicules = np.zeros_like(image)
        for phi in rng.uniform(0, 2 * np.pi, 5 + 2 * grade):
            along = (xx - cx) * np.cos(phi) + (yy - cy) * np.sin(phi)
            across = -(xx - cx) * np.sin(phi) + (yy - cy) * np.cos(phi)
            length = radius + rng.uniform(5, 10)
            spicules += np.exp(-across ** 2 / 0.6) * ((along > 0) & (along < length)) * (1 - along / length)
        image = image + 0.3 * core + 0.15 * np.clip(spicules, 0, 1)
        if grade == 2:
            n = 5
            angle, dist = rng.uniform(0, 2 * np.pi, n), radius * np.sqrt(rng.uniform(0, 1, n))
            centres = np.stack([cy + dist * np.sin(angle), cx + dist * np.cos(angle)], 1)
            image = image + 0.3 * _blobs(size, centres, np.full(n, 0.7))
        mask = (core > 0.5).astype(np.uint8)
    return image, mask


def _ring(rng, cy, cx, radius, n, nuc_r, jitter):
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1)
    centres = np.stack([cy + radius * np.sin(angle), cx + radius * np.cos(angle)], 1) + rng.normal(0, jitter, (n, 2))
    return centres, np.full(n, nuc_r)


def _pathology_concentrations(rng: np.random.Generator, label: str, grade: int, u: float, size: int):
    """Haematoxylin and eosin concentration maps of one tile (the tissue, before staining)."""
    yy, xx = np.mgrid[:size, :size]
    fibres = ndimage.gaussian_filter(rng.standard_normal((size, size)), (0.8, 3.0))
    eosin = 0.55 + 0.25 * fibres / (fibres.std() + 1e-8)
    lumen = np.zeros((size, size), bool)
    centres, radii = [], []
    g = max(grade, 0)
    mean_r, sd_r = 1.1 + 0.35 * g + 0.3 * u, 0.08 + 0.25 * g

    def add(c, r):
        centres.append(c)
        radii.append(r)

    if label in ("normal", "benign"):
        n_ducts = rng.integers(2, 4) if label == "normal" else rng.integers(3, 5)
        for _ in range(n_ducts):
            cy, cx = rng.uniform(10, size - 10, 2)
            radius = rng.uniform(4, 6) if label == "normal" else rng.uniform(5, 8)
            squash = 1.0 if label == "normal" else rng.uniform(2.0, 3.0)  # slit lumens
            lumen |= np.hypot((yy - cy) * squash, xx - cx) < radius - 2
            c, r = _ring(rng, cy, cx, radius, int(2.2 * radius), 1.1, 0.3)
            c[:, 0] = cy + (c[:, 0] - cy) / squash
            add(c, r)
        n_stroma = 4 if label == "normal" else 14
        add(rng.uniform(0, size, (n_stroma, 2)), np.full(n_stroma, 0.9))
    elif label == "in_situ":
        cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
        radius = rng.uniform(14, 20)
        n = int((60 + 25 * g) * (0.8 + 0.4 * u))
        angle, dist = rng.uniform(0, 2 * np.pi, n), (radius - 1.5) * np.sqrt(rng.uniform(0, 1, n))
        add(np.stack([cy + dist * np.sin(angle), cx + dist * np.cos(angle)], 1), np.clip(rng.normal(mean_r, sd_r, n), 0.7, 4))
        c, r = _ring(rng, cy, cx, radius, int(2 * radius), 1.1, 0.3)
        add(c, r)
        add(rng.uniform(0, size, (5, 2)), np.full(5, 0.9))
    else:  # invasive: cords and single cells through the stroma
        n_cords = 6 + 3 * g
        per = int((7 + 2 * g) * (0.8 + 0.4 * u))
        for _ in range(n_cords):
            start, phi = rng.uniform(0, size, 2), rng.uniform(0, np.pi)
            steps = np.arange(per)[:, None] * 2.2 * np.array([np.sin(phi), np.cos(phi)])
            add(start + steps + rng.normal(0, 0.7, (per, 2)), np.clip(rng.normal(mean_r, sd_r, per), 0.7, 4))
    haematoxylin = 1.2 * _blobs(size, np.concatenate(centres), np.concatenate(radii))
    eosin = np.where(lumen, 0.03, eosin) * (1 - 0.5 * np.clip(haematoxylin, 0, 1))
    return np.clip(haematoxylin, 0, 1.5), np.clip(eosin, 0, 1.2)


def _stain(rng: np.random.Generator, haematoxylin: np.ndarray, eosin: np.ndarray, style: SiteStyle) -> np.ndarray:
    """Beer–Lambert: RGB = 255·exp(−(c_H·h + c_E·e)·intensity), with the site's stain vectors."""
    h = np.clip(H_REF + np.array(style.h_shift) + rng.normal(0, 0.02, 3), 0.05, None)
    e = np.clip(E_REF + np.array(style.e_shift) + rng.normal(0, 0.02, 3), 0.05, None)
    h, e = h / np.linalg.norm(h), e / np.linalg.norm(e)
    intensity = style.stain_intensity * rng.uniform(0.9, 1.1)
    od = intensity * (haematoxylin[..., None] * h + eosin[..., None] * e) + 0.03
    rgb = 255 * np.exp(-od) + rng.normal(0, 2.0, od.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def generate_case(seed: int, index: int, label: int, grade: int, domain: int, size: int = IMAGE_SIZE) -> dict:
    """One patient: mammogram, mask, box, pathology tile and the latent ``u``."""
    rng = np.random.default_rng([seed, index])
    style = SITE_STYLES[DOMAINS[domain]]
    u = float(rng.uniform(0, 1))
    raw, mask = _mammogram(rng, CLASSES[label], grade, u, size)
    mammogram = _apply_lut(raw, style, rng)
    h, e = _pathology_concentrations(rng, CLASSES[label], grade, u, size)
    rows, cols = np.nonzero(mask)
    box = np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]) if len(rows) else np.full(4, -1)
    return {"mammogram": mammogram, "mask": mask, "box": box, "pathology": _stain(rng, h, e, style), "aggressiveness": u}


def make_cohort(n: int, seed: int, domains: tuple[str, ...] = DOMAINS, size: int = IMAGE_SIZE) -> PairedCohort:
    """``n`` patients, classes balanced, spread evenly over ``domains``; grades uniform for malignant."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    domain_idx = np.array([DOMAINS.index(d) for d in domains])[rng.permutation(np.arange(n) % len(domains))]
    grades = np.where(np.isin(labels, [CLASSES.index(c) for c in MALIGNANT]), rng.integers(0, len(GRADES), n), NO_GRADE)
    cases = [generate_case(seed, i, int(labels[i]), int(grades[i]), int(domain_idx[i]), size) for i in range(n)]
    stack = {k: np.stack([c[k] for c in cases]) for k in cases[0]}
    return PairedCohort(stack["mammogram"], stack["mask"], stack["box"].astype(int), stack["pathology"], labels,
                        grades, domain_idx, stack["aggressiveness"].astype(np.float32))


def write_cohort(cohort: PairedCohort, out: Path) -> Path:
    """PNG files (16-bit mammogram, RGB tile, 8-bit mask) and ``manifest.csv`` with labels and boxes."""
    from PIL import Image as PILImage

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(len(cohort)):
        pid = f"cm{i:04d}"
        files = {"mammogram": f"{pid}_mammogram.png", "pathology": f"{pid}_pathology.png", "mask": f"{pid}_mask.png"}
        PILImage.fromarray((cohort.mammogram[i] * 65535).astype(np.uint16)).save(out / files["mammogram"])
        PILImage.fromarray(cohort.pathology[i]).save(out / files["pathology"])
        PILImage.fromarray(cohort.mask[i] * 255).save(out / files["mask"])
        grade = int(cohort.grade[i])
        rows.append({"patient": pid, **files, "class": CLASSES[cohort.label[i]],
                     "grade": GRADES[grade] if grade != NO_GRADE else "", "domain": DOMAINS[cohort.domain[i]],
                     "box": " ".join(map(str, cohort.box[i]))})
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _parse_box(text: str, where: str) -> list[int]:
    """A lesion box ``row0 col0 row1 col1`` inside the image (``-1 -1 -1 -1``: no lesion), else a clear error.

    A box outside the image would train the localisation head on pixels that do not exist.
    """
    from responseai.errors import InputFileError

    try:
        box = [int(v) for v in str(text).split()]
    except ValueError:
        box = []
    if len(box) != 4:
        raise InputFileError(f"{where}: box {text!r} is not four integers 'row0 col0 row1 col1'")
    if box == [-1] * 4:
        return box
    row0, col0, row1, col1 = box
    if not (0 <= row0 < row1 <= IMAGE_SIZE and 0 <= col0 < col1 <= IMAGE_SIZE):
        raise InputFileError(f"{where}: box {box} lies outside the {IMAGE_SIZE}×{IMAGE_SIZE} image or is empty "
                             "(row0 < row1, col0 < col1, within the image; -1 -1 -1 -1 for no lesion)")
    return box


def read_cohort(manifest: Path) -> PairedCohort:
    """The cohort a ``manifest.csv`` describes (the inverse of :func:`write_cohort`; ``u`` unknown → NaN).

    Every image must have the phantom's size, so that the arrays stack; the checks name the file.
    """
    from PIL import Image as PILImage

    from responseai.errors import InputFileError

    manifest = Path(manifest)
    if not manifest.is_file():
        raise InputFileError(f"{manifest}: manifest not found")
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    arrays: dict[str, list] = {k: [] for k in ("mammogram", "mask", "box", "pathology", "label", "grade", "domain")}
    for row in rows:
        images = {}
        for key in ("mammogram", "pathology", "mask"):
            path = manifest.parent / row[key]
            if not path.is_file():
                raise InputFileError(f"{manifest}: patient {row['patient']}: {key} file {path} not found")
            images[key] = np.array(PILImage.open(path))
            if images[key].shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
                raise InputFileError(f"{path}: {images[key].shape[0]}×{images[key].shape[1]} pixels, the cohort "
                                     f"reader expects {IMAGE_SIZE}×{IMAGE_SIZE}")
        arrays["mammogram"].append(images["mammogram"].astype(np.float32) / 65535)
        arrays["pathology"].append(images["pathology"][..., :3])
        arrays["mask"].append((images["mask"] > 0).astype(np.uint8))
        arrays["box"].append(_parse_box(row["box"], f"{manifest}: patient {row['patient']}"))
        arrays["label"].append(CLASSES.index(row["class"]))
        arrays["grade"].append(GRADES.index(row["grade"]) if row["grade"] else NO_GRADE)
        arrays["domain"].append(DOMAINS.index(row["domain"]))
    stacked = {k: np.asarray(v) for k, v in arrays.items()}
    return PairedCohort(**stacked, aggressiveness=np.full(len(rows), np.nan, np.float32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai synth crossmodal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = write_cohort(make_cohort(args.n, args.seed, tuple(args.domains)), args.out)
    log.info("wrote %d paired cases to %s", args.n, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
