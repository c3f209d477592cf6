"""A blind, independently coded bilateral breast DCE-MRI phantom (held-out test data only).

Why this exists: the project's segmentation and pCR models were developed on the project's own phantoms.
A model can learn a generator's quirks (its shapes, its intensities, its grids) instead of breast anatomy.
This generator was written from the issue text alone, without reading the project's other generators or
models, so a cohort from it is a test those models were never tuned to. Never train or tune on it.

Design in one paragraph: the anatomy is a set of analytic implicit shapes in the patient's LPS frame (thorax
as an elliptic cylinder with skin, fat, pectoral muscle, slanted ribs; two prone breasts as hanging
super-ellipsoids; heart, great vessels, lungs, internal mammary and lateral thoracic vessels, axillary
nodes). Each acquisition grid (axial, sagittal, flipped, oblique) samples those shapes at its own voxel
centres, so any direction matrix is exact. Contrast uptake follows an empirical relative-enhancement curve
E(t) = A (1 - exp(-alpha t)) exp(-beta t) per tissue (per voxel in the tumour), and S(t) = S0 (1 + E(t)).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist, squareform

from responseai.breast.constants import BREAST_VARIABLES

log = logging.getLogger(__name__)

GENERATOR, VERSION = "breast-phantom-blind", "blind-1.0"
PHASES = ("pre", "post1", "post2")
ANATOMY_CODES = {0: "air/background", 1: "left breast", 2: "right breast", 3: "heart", 4: "great vessels",
                 5: "internal mammary + lateral thoracic vessels", 6: "axillary lymph nodes", 7: "benign lesion",
                 8: "lungs", 9: "chest wall (muscle, ribs)", 10: "other body tissue"}
CATEGORIES = {v.name: v.categories for v in BREAST_VARIABLES if v.categories}
MANIFEST_COLUMNS = ("patient_id", "site", "external", "split", *PHASES, "mask", "anatomy", "age", "menopausal_status",
                    "er", "pr", "her2", "ki67", "molecular_subtype", "histological_type", "histological_grade",
                    "ct_stage", "cn_stage", "tumour_size_mm", "tumour_size_2_mm", "tumour_size_3_mm", "laterality",
                    "pcr")


@dataclass(frozen=True)
class Site:
    """One invented scanner protocol: grid geometry, fat suppression, timing and the int16 gain."""
    name: str
    orientation: str
    direction: tuple[float, ...]  # 3x3 row-major, columns = index axes in LPS
    spacing: tuple[float, float, float]
    size: tuple[int, int, int]
    fat_sat: bool
    t1_s: float  # post1 centre of k-space after injection
    t2_s: float
    gain: float
    snr: float  # fat (non-FS) or FGT (FS) signal over noise sigma
    iso_offset: tuple[float, float, float]  # where the table puts the patient (non-zero origins)
    weight: float


def _rotation(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation matrix about a world axis (x, y or z)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


_OBLIQUE = np.diag([1.0, 1.0, -1.0]) @ _rotation("z", 11.0) @ _rotation("x", -4.0)  # LPI tilted 11 deg and 4 deg
SITES: tuple[Site, ...] = (
    Site("BB-North-3T", "axial", tuple(np.eye(3).ravel()), (1.30, 1.30, 2.2), (262, 162, 60), True, 75.0, 330.0,
         2400.0, 30.0, (4.0, -18.0, 35.0), 0.3),
    Site("BB-Harbour-1.5T", "axial", tuple(np.diag([-1.0, -1.0, 1.0]).ravel()), (1.48, 1.48, 2.5), (232, 144, 58),
         False, 110.0, 400.0, 1300.0, 24.0, (-6.0, 12.0, -40.0), 0.25),
    Site("BB-Valley-sag", "sagittal", tuple(np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float).ravel()),
         (1.22, 1.22, 3.0), (176, 112, 115), True, 90.0, 420.0, 3100.0, 26.0, (0.0, -30.0, 120.0), 0.2),
    Site("BB-Ridge-oblique", "axial-oblique", tuple(_OBLIQUE.ravel()), (1.12, 1.12, 3.0), (304, 188, 47), False,
         65.0, 360.0, 900.0, 35.0, (12.0, 5.0, 210.0), 0.25),
)

# tissue: (S0 without fat suppression, S0 with it, A, alpha 1/s, beta 1/s) of E(t) = A (1-exp(-alpha t)) exp(-beta t)
TISSUES: dict[str, tuple[float, float, float, float, float]] = {
    "air": (0.0, 0.0, 0.0, 0.01, 0.0), "fat": (0.95, 0.07, 0.04, 0.01, 0.0),
    "fgt": (0.38, 0.40, 0.2, 0.008, -0.0008), "skin": (0.45, 0.42, 0.5, 0.01, -0.0005),
    "muscle": (0.30, 0.30, 0.45, 0.02, -0.0003), "rib": (0.55, 0.15, 0.25, 0.01, 0.0),
    "lung": (0.04, 0.04, 0.6, 0.05, 0.002), "blood": (0.25, 0.26, 7.0, 0.12, 0.0025),
    "myocardium": (0.30, 0.30, 2.6, 0.06, 0.001), "mediastinum": (0.70, 0.10, 0.15, 0.01, 0.0),
    "node": (0.32, 0.34, 0.9, 0.03, 0.0), "node_abnormal": (0.30, 0.32, 1.6, 0.05, 0.0015),
    "benign": (0.33, 0.36, 1.3, 0.01, -0.001), "necrosis": (0.22, 0.25, 0.1, 0.005, 0.0),
    "other": (0.35, 0.30, 0.4, 0.015, 0.0),
}
BPE_AMPLITUDE = {"minimal": (0.05, 0.15), "mild": (0.15, 0.35), "moderate": (0.35, 0.65), "marked": (0.65, 1.0)}
DENSITY_FGT = {"a": (0.05, 0.12), "b": (0.15, 0.30), "c": (0.35, 0.55), "d": (0.60, 0.80)}
# kinetic class: (alpha range, beta range) of the tumour voxels (washout >10% decline, persistent >10% rise)
KINETICS = {"washout": ((0.06, 0.09), (0.0012, 0.0020)), "plateau": ((0.04, 0.06), (-0.0002, 0.0002)),
            "persistent": ((0.015, 0.025), (-0.0012, -0.0006))}

# pCR: logit = intercept + sum(weight * term) + N(0, noise_sd); pcr ~ Bernoulli(sigmoid(logit)).
LABEL_RULE = {
    "intercept": -1.05,
    "weights": {
        "subtype=triple_negative": 0.9, "subtype=her2_enriched": 1.3, "subtype=luminal_b_her2pos": 0.5,
        "subtype=luminal_b_her2neg": -0.4, "subtype=luminal_a": -1.4, "(ki67-30)/10": 0.18, "grade=3": 0.35,
        "grade=1": -0.4, "histology=lobular": -0.6, "(tumour_size_mm-30)/10": -0.22, "cn_stage in N2,N3": -0.35,
        "(washout_fraction-0.3)": 1.6, "rim_necrosis": -0.8, "(heterogeneity-0.25)": -2.0, "peritumoural": -0.5,
        "spiculated": -0.3,
    },
    "noise_sd": 0.6,
    "why": ("clinical: TN and HER2-enriched respond most, luminal A least; proliferation (ki67, grade) helps; "
            "lobular histology, larger tumours and bulky nodes respond less. image: a larger washout (fast in, fast "
            "out) fraction marks leaky, well-perfused tumour that chemotherapy reaches; rim enhancement with a "
            "necrotic core marks hypoxia; heterogeneous enhancement (radiomic texture) and peritumoural "
            "enhancement/oedema have been linked to residual disease; spiculation goes with luminal, slower "
            "responders. Signs follow my reading of DCE-MRI response studies; weights are invented."),
}


def _noise_field(rng: np.random.Generator, shape: tuple[int, ...], spacing_zyx: np.ndarray, cell_mm: float,
                 smooth: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-sd smooth noise with a feature size of about ``cell_mm`` whatever the voxel size.

    Generated on a coarse grid and interpolated up: cheap, and the texture scale is in mm, not voxels,
    so sagittal 3 mm slices and 1.1 mm axial pixels get the same tissue texture."""
    coarse = [max(2, int(math.ceil(n * s / cell_mm)) + 2) for n, s in zip(shape, spacing_zyx)]
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), smooth, mode="wrap")
    zoom = [n / c for n, c in zip(shape, coarse)]
    up = ndimage.zoom(field, zoom, order=1, mode="nearest", grid_mode=False)[tuple(slice(0, n) for n in shape)]
    return (up - up.mean()) / (up.std() + 1e-6)


def _ellipsoid_q(X, Y, Z, centre, radii):
    """Normalised quadratic radius (1 on the surface) of an axis-aligned ellipsoid."""
    return ((X - centre[0]) / radii[0]) ** 2 + ((Y - centre[1]) / radii[1]) ** 2 + ((Z - centre[2]) / radii[2]) ** 2


def _depth(q, radius):
    """Approximate depth in mm below the surface of a shape given its normalised radius q."""
    return (1.0 - np.sqrt(np.maximum(q, 0.0))) * radius


def _grid(site: Site, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Direction matrix and origin that put the middle of the site's grid at ``centre`` (LPS mm)."""
    d = np.array(site.direction).reshape(3, 3)
    half = d @ (np.array(site.spacing) * (np.array(site.size) - 1) / 2)
    return d, centre - half


def _world(site: Site, d: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, ...]:
    """World (LPS) coordinates of every voxel centre, arrays in numpy (k, j, i) order, float32."""
    nk, nj, ni = site.size[2], site.size[1], site.size[0]
    axes = [np.arange(n, dtype=np.float32) * s for n, s in zip((ni, nj, nk), site.spacing)]
    i, j, k = axes[0][None, None, :], axes[1][None, :, None], axes[2][:, None, None]
    return tuple((origin[r] + d[r, 0] * i + d[r, 1] * j + d[r, 2] * k).astype(np.float32) for r in range(3))


@dataclass
class Grid:
    """A site's grid placed on a patient: voxel coordinates in the body frame (mm from the sternum)."""
    d: np.ndarray
    origin: np.ndarray
    spacing: tuple[float, float, float]
    size: tuple[int, int, int]
    body_centre: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray

    def box(self, centre, half) -> tuple[slice, ...]:
        """(k, j, i) slices covering a body-frame box: small shapes are evaluated there only (speed)."""
        return _box(self.d, self.origin, self.spacing, self.size, np.asarray(centre) + self.body_centre, half)

    def paint(self, out: np.ndarray, centre, half, inside) -> None:
        """OR into ``out`` the voxels of the box around ``centre`` for which ``inside(X, Y, Z)`` holds."""
        b = self.box(centre, half)
        out[b] |= inside(self.X[b], self.Y[b], self.Z[b])


@dataclass
class Body:
    """Patient geometry (mm, relative to the sternum's front surface at nipple level)."""
    ax: float
    ay: float
    fat0: float
    muscle: float
    skin: float
    breast_x: float
    breast_r: tuple[float, float]
    breast_depth: float
    heart: tuple[float, float, float]


def _draw_body(rng: np.random.Generator) -> Body:
    """Patient-to-patient variation of the thorax, breasts and heart."""
    scale = rng.uniform(0.92, 1.06)
    r = rng.uniform(52, 74)
    return Body(ax=160 * scale, ay=110 * scale, fat0=rng.uniform(4, 9), muscle=rng.uniform(8, 13),
                skin=rng.uniform(1.6, 2.6), breast_x=rng.uniform(82, 98) * scale,
                breast_r=(r, r * rng.uniform(0.85, 1.0)), breast_depth=rng.uniform(70, 120),
                heart=(rng.uniform(18, 32), rng.uniform(68, 76), rng.uniform(-35, -15)))


def _anatomy(body: Body, g: Grid) -> dict[str, np.ndarray]:
    """Boolean tissue regions of the body, before tumour, nodes and benign lesion are added."""
    X, Y, Z = g.X, g.Y, g.Z
    qt = (X / body.ax) ** 2 + ((Y - body.ay) / body.ay) ** 2
    d_thorax = _depth(qt, body.ay)
    fat = body.fat0 + 16.0 * (X / body.ax) ** 2  # subcutaneous fat thickens towards the axilla
    cw_front, cw_back = fat, fat + body.muscle + 10.0
    y_top = body.breast_depth + 25.0  # breast super-ellipsoid hangs anteriorly (-y) from inside the chest
    t = np.clip((25.0 - Y) / y_top, 0, None)
    # the breast base reaches back to the pectoral front (lateral to the thorax: to y = 25 mm)
    back = np.where(np.abs(X) < body.ax, body.ay * (1 - np.sqrt(np.clip(1 - (X / body.ax) ** 2, 0, 1))) + fat, 25.0)
    breast = {}
    for name, sx in (("left", 1.0), ("right", -1.0)):
        q = ((X - sx * body.breast_x) / body.breast_r[0]) ** 2 + (Z / body.breast_r[1]) ** 2 + t ** 2.4
        breast[name] = (q < 1) & (d_thorax < cw_front) & (Y < back) & (sx * X > 0)
        breast[name + "_depth"] = _depth(q, min(body.breast_r))
    in_breast = breast["left"] | breast["right"]
    body_mask = (qt < 1) | in_breast
    bdepth = np.where(in_breast, np.maximum(np.maximum(breast["left_depth"], breast["right_depth"]), d_thorax),
                      d_thorax)
    skin = body_mask & (bdepth < body.skin)
    chest = (d_thorax >= cw_front) & (d_thorax < cw_back) & (qt < 1)
    rib_band = np.cos(2 * np.pi * (Z + 0.45 * np.abs(X)) / 26.0) > 0.35
    rib = chest & (d_thorax > cw_front + body.muscle) & (rib_band | (np.abs(X) < 14))  # ribs and sternum
    inner = (d_thorax >= cw_back) & (qt < 1)
    hx, hy, hz = body.heart
    heart, chamber, vessels = (np.zeros(X.shape, bool) for _ in range(3))
    g.paint(heart, (hx, hy, hz), (52.0, 38.0, 48.0), lambda x, y, z: _ellipsoid_q(x, y, z, (hx, hy, hz), (50.0, 36.0, 46.0)) < 1)
    g.paint(chamber, (hx, hy, hz), (52.0, 38.0, 48.0), lambda x, y, z: (_ellipsoid_q(
        x, y, z, (hx, hy, hz), (50.0, 36.0, 46.0)) < 0.74) & (np.abs((x - hx) - 0.5 * (y - hy)) > 3.0))  # septum
    heart &= inner
    chamber &= heart
    for vx, vy, rad, z0 in ((-2.0, hy - 12, 14.0, hz + 30), (hx - 4, hy - 26, 12.0, hz + 28), (-24.0, hy - 8, 9.0,
                                                                                                 hz + 20)):
        g.paint(vessels, (vx, vy, z0 + 100), (rad + 2, rad + 2, 100),
                lambda x, y, z, vx=vx, vy=vy, rad=rad, z0=z0: (((x - vx) ** 2 + (y - vy) ** 2) < rad ** 2) & (z > z0))
    vessels &= inner
    mediastinum = inner & ((((X - 5) / 42.0) ** 2 + ((Y - 75) / 75.0) ** 2) < 1) & ~heart & ~vessels
    lung = inner & ~heart & ~vessels & ~mediastinum
    small = np.zeros_like(heart)  # internal mammary (inside the chest wall) and lateral thoracic (axillary fat)
    for sx in (1.0, -1.0):
        for vx, depth, rad in ((29.0, None, 2.6), (37.0, None, 2.0), (0.72 * body.ax, 0.45, 2.2)):
            yx = body.ay - body.ay * math.sqrt(max(0.0, 1 - (vx / body.ax) ** 2))
            f = body.fat0 + 16.0 * (vx / body.ax) ** 2
            vy = yx + (f * depth if depth else f + body.muscle + 13.0)
            g.paint(small, (sx * vx, vy, 0.0), (rad + 2, rad + 2, 200),
                    lambda x, y, z, cx=sx * vx, cy=vy, rad=rad: ((x - cx) ** 2 + (y - cy) ** 2) < rad ** 2)
    small &= body_mask
    return {"body": body_mask, "skin": skin, "left": breast["left"], "right": breast["right"],
            "chest": chest & ~rib, "rib": rib, "heart": heart, "chamber": chamber, "vessels": vessels,
            "mediastinum": mediastinum, "lung": lung, "small_vessels": small, "d_thorax": d_thorax}


def _fgt(rng, regions, X, Y, Z, body: Body, density: str, spacing_zyx) -> tuple[np.ndarray, np.ndarray]:
    """Fibroglandular tissue: a textured field, denser centrally and behind the nipple, thresholded to the
    density category's fraction of the breast interior (ACR a-d)."""
    interior = (regions["left"] | regions["right"]) & ~regions["skin"]
    fine = _noise_field(rng, X.shape, spacing_zyx, 4.0)
    field = _noise_field(rng, X.shape, spacing_zyx, 9.0) + 0.5 * fine
    central = 1.0 - (((np.abs(X) - body.breast_x) / body.breast_r[0]) ** 2 + (Z / body.breast_r[1]) ** 2)
    field = field + 1.6 * central
    field[regions["d_thorax"] > body.fat0 + 16.0 * (X / body.ax) ** 2 - 4.0] -= 3.0  # retromammary fat layer
    fraction = rng.uniform(*DENSITY_FGT[density])
    values = field[interior]
    threshold = np.quantile(values, 1 - fraction) if values.size else np.inf
    return interior & (field > threshold), fine


def _sph_radius(u: np.ndarray, lobes: list[tuple[np.ndarray, float, float]]) -> np.ndarray:
    """Star-shaped radius multiplier for unit directions ``u`` (..., 3): a sum of von-Mises-like bumps.

    Broad bumps (small kappa) make lobulation; narrow tall ones (large kappa) make spicules."""
    r = np.ones(u.shape[:-1], np.float32)
    for direction, kappa, amp in lobes:
        r += amp * np.exp(kappa * (u @ direction - 1.0))
    return r


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class TumourPlan:
    side: str
    quadrant: str
    centre: np.ndarray
    radius: float
    axes: np.ndarray
    rotation: np.ndarray
    lobes: list
    spicules: int
    rim: bool
    core: float
    washout: float
    plateau: float
    heterogeneity: float
    peritumoural: bool
    skin: bool
    amplitude: float


QUADRANTS = {"UOQ": (1.0, 1.0), "UIQ": (-1.0, 1.0), "LOQ": (1.0, -1.0), "LIQ": (-1.0, -1.0), "central": (0.0, 0.0)}


def _plan_tumour(rng, body: Body, subtype: str, target_d: float, skin: bool) -> TumourPlan:
    """Where the tumour is and what it looks like; features lean on subtype as reported (TN: rim/necrosis,
    HER2: washout, luminal: spiculation)."""
    side = ("left", "right")[int(rng.integers(2))]
    sx = 1.0 if side == "left" else -1.0
    quadrant = str(rng.choice(list(QUADRANTS), p=[0.42, 0.14, 0.14, 0.1, 0.2]))
    qo, qu = QUADRANTS[quadrant]
    radius = target_d / 2 / 1.25  # the lobes add about a quarter to the diameter
    rad_frac = 0.0 if quadrant == "central" else rng.uniform(0.25, 0.5)
    ang = rng.uniform(0.2, 1.35)
    dx = qo * sx * rad_frac * body.breast_r[0] * math.cos(ang) if qo else 0.0
    dz = qu * rad_frac * body.breast_r[1] * math.sin(ang) if qu else 0.0
    y = max(-body.breast_depth * rng.uniform(0.25, 0.55), -(body.breast_depth - radius - 8.0))
    if skin:
        y = -(body.breast_depth * 0.92 - radius * 0.6)
    centre = np.array([sx * body.breast_x + dx, y, dz])
    axes = np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.6, 0.95)])
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    luminal = subtype.startswith("luminal")
    lobes = [(u, float(rng.uniform(2, 6)), float(rng.uniform(0.05, 0.3))) for u in _random_unit(rng, int(rng.integers(2, 6)))]
    spicules = int(rng.integers(6, 16)) if rng.random() < (0.55 if luminal else 0.15) else 0
    lobes += [(u, float(rng.uniform(150, 450)), float(rng.uniform(0.4, 0.9))) for u in _random_unit(rng, spicules)]
    rim = bool(rng.random() < {"triple_negative": 0.55, "her2_enriched": 0.3}.get(subtype, 0.15))
    washout = float(rng.beta(*{"her2_enriched": (4, 4), "triple_negative": (3, 4)}.get(subtype, (2, 5))))
    plateau = float((1 - washout) * rng.uniform(0.2, 0.6))
    return TumourPlan(side, quadrant, centre, radius, axes, rotation, lobes, spicules, rim, float(rng.uniform(0.35, 0.6)),
                      washout, plateau, float(rng.uniform(0.05, 0.5)),
                      bool(rng.random() < (0.4 if subtype in ("triple_negative", "her2_enriched") else 0.2)), skin,
                      float(rng.uniform(1.7, 2.4)))


def _box(d, origin, spacing, size, centre, half_mm) -> tuple[slice, ...]:
    """Index-space (k, j, i) slices of the grid that cover a world cube of half-width ``half_mm``."""
    corners = centre + half_mm * np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)])
    idx = np.linalg.solve(d * np.array(spacing), (corners - origin).T).T
    lo = np.clip(np.floor(idx.min(0)).astype(int), 0, np.array(size))
    hi = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 0, np.array(size))
    return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])


def _tumour(rng, plan: TumourPlan, X, Y, Z, allowed, spacing_zyx) -> dict[str, np.ndarray]:
    """Tumour mask, its per-voxel (S0 class, A, alpha, beta) and the peritumoural shell, all in a local box."""
    p = np.stack([X - plan.centre[0], Y - plan.centre[1], Z - plan.centre[2]], -1) @ plan.rotation
    p = p / (plan.axes * plan.radius)
    rho = np.linalg.norm(p, axis=-1)
    u = p / np.maximum(rho, 1e-6)[..., None]
    margin = 0.06 * _noise_field(rng, rho.shape, spacing_zyx, 3.0)
    rel = rho / _sph_radius(u, plan.lobes) + margin
    inside = (rel < 1.0) & allowed
    labels, n = ndimage.label(inside)
    if n > 1:  # one tumour: keep the component holding the most voxels
        inside = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    kinetic_field = _noise_field(rng, rho.shape, spacing_zyx, 5.0) + 0.8 * np.clip(rel, 0, 1)
    vals = kinetic_field[inside]
    cls = np.full(rho.shape, 2, np.int8)  # 0 washout, 1 plateau, 2 persistent
    if vals.size:
        w_cut, p_cut = np.quantile(vals, [1 - plan.washout, max(0.0, 1 - plan.washout - plan.plateau)])
        cls[kinetic_field >= p_cut] = 1
        cls[kinetic_field >= w_cut] = 0
    alpha, beta = np.empty(rho.shape, np.float32), np.empty(rho.shape, np.float32)
    for c, name in enumerate(KINETICS):
        (a0, a1), (b0, b1) = KINETICS[name]
        sel = cls == c
        alpha[sel] = rng.uniform(a0, a1) + 0.1 * (a1 - a0) * _noise_field(rng, rho.shape, spacing_zyx, 4.0)[sel]
        beta[sel] = rng.uniform(b0, b1)
    amp = plan.amplitude * np.clip(1 + plan.heterogeneity * _noise_field(rng, rho.shape, spacing_zyx, 3.5), 0.4, 1.5)
    necrosis = np.zeros_like(inside)
    if plan.rim:
        core = rel < plan.core * (1 + 0.25 * _noise_field(rng, rho.shape, spacing_zyx, 4.0))
        necrosis = inside & core
        amp = np.where(inside & (rel > plan.core + 0.15), amp * 1.25, amp)
    shell = np.zeros(rho.shape, np.float32)
    if plan.peritumoural and inside.any():
        dist = ndimage.distance_transform_edt(~inside, sampling=spacing_zyx)
        width = rng.uniform(3.0, 7.0)
        shell = np.where(allowed & ~inside & (dist < width), 1.0 - dist / width, 0.0).astype(np.float32)
        shell *= np.clip(1 + 0.5 * _noise_field(rng, rho.shape, spacing_zyx, 4.0), 0, 1.5)
    return {"mask": inside, "necrosis": necrosis, "alpha": alpha, "beta": beta, "amp": amp, "cls": cls,
            "shell": shell}


def _curve(amp, alpha, beta, t):
    """Empirical relative enhancement at time t (s)."""
    return amp * (1.0 - np.exp(-alpha * t)) * np.exp(-beta * t)


def _fill(s0, e1, e2, region, tissue: str, site: Site, scale: float = 1.0) -> None:
    """Paint one tissue's baseline signal and enhancement at the site's two post-contrast times."""
    nonfs, fs, a, alpha, beta = TISSUES[tissue]
    s0[region] = fs if site.fat_sat else nonfs
    e1[region] = _curve(a * scale, alpha, beta, site.t1_s)
    e2[region] = _curve(a * scale, alpha, beta, site.t2_s)


def _nodes(rng, body: Body, side: str, n_abnormal: int, im_node: bool, g: Grid):
    """Axillary nodes: normal ones small and oval with a fatty hilum; abnormal ones big, round, no hilum.

    Returns (normal node mask, hilum mask, abnormal node mask)."""
    normal, hilum, abnormal = (np.zeros(g.X.shape, bool) for _ in range(3))
    for sname, sx in (("left", 1.0), ("right", -1.0)):
        count_abn = n_abnormal if sname == side else 0
        for k in range(int(rng.integers(2, 4)) + count_abn):
            x = rng.uniform(0.7, 0.86) * body.ax
            yx = body.ay - body.ay * math.sqrt(max(0.0, 1 - (x / body.ax) ** 2))
            fat = body.fat0 + 16.0 * (x / body.ax) ** 2
            c = np.array([sx * x, yx + fat * rng.uniform(0.35, 0.6), rng.uniform(15, 58)])
            if k < count_abn:
                r = rng.uniform(5.5, 9.0)
                g.paint(abnormal, c, r * 1.2, lambda x, y, z, c=c, r=r: _ellipsoid_q(x, y, z, c, (r, r * 0.9, r * 1.1)) < 1)
            else:
                r = rng.uniform(2.5, 4.0)
                axes = (r, r * 0.8, r * 1.7)
                g.paint(normal, c, r * 1.8, lambda x, y, z, c=c, axes=axes: _ellipsoid_q(x, y, z, c, axes) < 1)
                g.paint(hilum, c, r * 1.8, lambda x, y, z, c=c, axes=axes: _ellipsoid_q(x, y, z, c, axes) < 0.3)
    if im_node:  # an enlarged internal mammary node (N3)
        sx = 1.0 if side == "left" else -1.0
        yx = body.ay - body.ay * math.sqrt(1 - (33 / body.ax) ** 2)
        c = np.array([sx * 33.0, yx + body.fat0 + body.muscle + 14.0, rng.uniform(-15, 15)])
        g.paint(abnormal, c, 9.0, lambda x, y, z: _ellipsoid_q(x, y, z, c, (6.0, 5.0, 8.0)) < 1)
    return normal & ~abnormal, hilum & ~abnormal, abnormal


def _clinical(rng) -> dict:
    """Receptors, proliferation, grade, histology and age; the subtype is derived from the receptors."""
    target = str(rng.choice(["luminal_a", "luminal_b", "her2_enriched", "triple_negative"], p=[0.25, 0.3, 0.18, 0.27]))
    her2 = target == "her2_enriched" or (target == "luminal_b" and rng.random() < 0.4)
    er = target in ("luminal_a", "luminal_b")
    pr = er and rng.random() < 0.8
    ki67 = {"luminal_a": (3, 19), "luminal_b": (20, 60) if not her2 else (10, 60), "her2_enriched": (20, 70),
            "triple_negative": (30, 90)}[target]
    ki67 = int(rng.integers(ki67[0], ki67[1] + 1))
    if er and not her2 and ki67 < 20:
        subtype = "luminal_a"
    elif her2:
        subtype = "luminal_b" if (er or pr) else "her2_enriched"
    else:
        subtype = "luminal_b" if (er or pr) else "triple_negative"
    grade_p = {"luminal_a": [0.35, 0.55, 0.1], "luminal_b": [0.1, 0.5, 0.4]}.get(subtype, [0.02, 0.28, 0.7])
    grade = str(rng.choice(["1", "2", "3"], p=grade_p))
    histology = str(rng.choice(["ductal", "lobular", "other"], p=[0.75, 0.15, 0.1] if er else [0.88, 0.02, 0.1]))
    age = int(np.clip(rng.normal(48 if subtype == "triple_negative" else 55, 11), 25, 80))
    p_post = 1 / (1 + math.exp(-(age - 50) / 2.5))
    menopause = "post" if rng.random() < p_post else "pre"
    return {"age": age, "menopausal_status": menopause, "er": "positive" if er else "negative",
            "pr": "positive" if pr else "negative", "her2": "positive" if her2 else "negative", "ki67": ki67,
            "molecular_subtype": subtype, "histological_type": histology, "histological_grade": grade,
            "her2_positive": her2}


def _diameters(points: np.ndarray, d: np.ndarray, spacing: np.ndarray) -> tuple[float, float, float]:
    """Edge-to-edge diameters of a voxel set: the largest (Feret), the largest perpendicular to it, and the
    extent perpendicular to both. A voxel's own extent along the direction is added to the centre distance,
    as a radiologist's calliper spans whole voxels."""
    def width(u):
        return float(np.sum(np.abs(d.T @ u) * spacing))

    def hull(pts):
        try:
            return pts[ConvexHull(pts).vertices] if len(pts) > pts.shape[1] + 1 else pts
        except Exception:  # degenerate (flat) sets
            return pts

    if len(points) == 1:
        return tuple(float(s) for s in sorted(spacing, reverse=True))
    h = hull(points)
    dist = squareform(pdist(h))
    a, b = np.unravel_index(np.argmax(dist), dist.shape)
    u1 = (h[b] - h[a]) / max(dist[a, b], 1e-9)
    d1 = dist[a, b] + width(u1)
    e1 = np.cross(u1, [1.0, 0, 0] if abs(u1[0]) < 0.9 else [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u1, e1)
    flat = np.stack([points @ e1, points @ e2], 1)
    h2 = hull(flat)
    dist2 = squareform(pdist(h2))
    a, b = np.unravel_index(np.argmax(dist2), dist2.shape)
    v = (h2[b] - h2[a]) / max(dist2[a, b], 1e-9)
    u2 = v[0] * e1 + v[1] * e2
    u3 = np.cross(u1, u2)
    d2 = dist2[a, b] + width(u2)
    proj = points @ u3
    d3 = proj.max() - proj.min() + width(u3)
    return round(float(d1), 1), round(float(min(d2, d1)), 1), round(float(min(d3, d2, d1)), 1)


IMAGE_TERMS = {"(washout_fraction-0.3)": ("washout_fraction", -0.3), "rim_necrosis": ("rim", 0.0),
               "(heterogeneity-0.25)": ("heterogeneity", -0.25), "peritumoural": ("peritumoural", 0.0),
               "spiculated": ("spiculated", 0.0)}  # the rule's image terms: truth.csv column, offset


def _pcr(rng, clinical: dict, features: dict) -> tuple[float, float, float, int]:
    """The documented label rule (LABEL_RULE): linear logit, Gaussian noise, Bernoulli draw."""
    w, subtype = LABEL_RULE["weights"], clinical["molecular_subtype"]
    key = subtype if subtype != "luminal_b" else ("luminal_b_her2pos" if clinical["her2_positive"] else "luminal_b_her2neg")
    terms = {f"subtype={key}": 1.0, "(ki67-30)/10": (clinical["ki67"] - 30) / 10,
             "grade=3": float(clinical["histological_grade"] == "3"), "grade=1": float(clinical["histological_grade"] == "1"),
             "histology=lobular": float(clinical["histological_type"] == "lobular"),
             "(tumour_size_mm-30)/10": (clinical["tumour_size_mm"] - 30) / 10,
             "cn_stage in N2,N3": float(clinical["cn_stage"] in ("N2", "N3")),
             **{term: float(features[column]) + offset for term, (column, offset) in IMAGE_TERMS.items()}}
    logit = LABEL_RULE["intercept"] + sum(w[k] * v for k, v in terms.items())
    noise = float(rng.normal(0, LABEL_RULE["noise_sd"]))
    prob = 1 / (1 + math.exp(-(logit + noise)))
    return logit, noise, prob, int(rng.random() < prob)


def image_logit(features: Mapping[str, object] | pd.DataFrame) -> float | np.ndarray:
    """The rule's image part alone, of one case's features or of truth.csv's columns (its ``image_logit``, the
    column the pCR evaluation's ceilings read)."""
    return sum(LABEL_RULE["weights"][term] * (np.asarray(features[column], dtype=float) + offset)
               for term, (column, offset) in IMAGE_TERMS.items())


def label_ceilings(truth: pd.DataFrame) -> dict[str, float]:
    """Prevalence and noiseless AUCs of the rule on a cohort's ``truth.csv`` (combined logit, its image terms only,
    its clinical terms only): what a perfect reader of each part could reach, to judge a model against."""
    from sklearn.metrics import roc_auc_score

    image = image_logit(truth)
    y, eta = truth["pcr"].astype(int), truth["pcr_logit"].astype(float)
    return {"n": len(truth), "prevalence": float(y.mean()), "auc_combined": float(roc_auc_score(y, eta)),
            "auc_image_terms": float(roc_auc_score(y, image)), "auc_clinical_terms": float(roc_auc_score(y, eta - image))}


def _motion(rng, image: sitk.Image, shift_mm: float, degrees: float) -> sitk.Image:
    """Rigid patient motion between phases: the content moves, the grid stays (as a scanner records it)."""
    transform = sitk.Euler3DTransform()
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    transform.SetCenter(centre)
    angles = rng.standard_normal(3)
    angles = angles / np.linalg.norm(angles) * math.radians(degrees)
    transform.SetRotation(*[float(a) for a in angles])
    t = _random_unit(rng, 1)[0] * shift_mm
    transform.SetTranslation([float(x) for x in t])
    return sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _bias(rng, X, Y, Z, centre) -> np.ndarray:
    """Smooth receive-coil field: brighter in the breast coil wells (anterior), a random tilt and curvature."""
    x, y, z = (X - centre[0]) / 170, (Y - centre[1]) / 110, (Z - centre[2]) / 80
    c = rng.uniform(-0.12, 0.12, 6)
    log_b = c[0] * x + c[1] * z + c[2] * x * x + c[3] * z * z + c[4] * x * z - (0.18 + abs(c[5])) * y
    return np.exp(log_b).astype(np.float32)


def _to_image(array: np.ndarray, d: np.ndarray, origin: np.ndarray, spacing) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(v) for v in d.ravel()])
    return image


def generate_case(seed: int, index: int, out: Path) -> tuple[dict, dict]:
    """One exam, written under ``out/images/<patient_id>/``; returns (manifest row, truth row).

    Everything random comes from one Generator seeded by (seed, index), so a case's bytes do not depend on
    which worker made it or in what order."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    pid = f"BB{seed:03d}-{index:04d}"
    site = SITES[int(rng.choice(len(SITES), p=[s.weight for s in SITES]))]
    clinical = _clinical(rng)
    body = _draw_body(rng)
    t_stage = str(rng.choice(["T1", "T2", "T3", "T4"], p=[0.22, 0.55, 0.16, 0.07]))
    target_d = {"T1": (11, 19), "T2": (22, 42), "T3": (48, 62), "T4": (25, 45)}[t_stage]
    target_d = float(rng.uniform(*target_d))
    if t_stage == "T3":
        body.breast_r = (max(body.breast_r[0], 66.0), max(body.breast_r[1], 60.0))
        body.breast_depth = max(body.breast_depth, 100.0)
    plan = _plan_tumour(rng, body, clinical["molecular_subtype"], target_d, t_stage == "T4")
    cn = str(rng.choice(["N0", "N1", "N2", "N3"], p=[0.45, 0.35, 0.13, 0.07]))
    n_abn = {"N0": 0, "N1": int(rng.integers(1, 4)), "N2": int(rng.integers(4, 6)), "N3": int(rng.integers(1, 4))}[cn]
    density = str(rng.choice(list(DENSITY_FGT), p=[0.12, 0.4, 0.35, 0.13]))
    bpe = str(rng.choice(list(BPE_AMPLITUDE), p=[0.35, 0.35, 0.2, 0.1]))
    benign = bool(rng.random() < 0.5)

    body_centre = np.array(site.iso_offset) + rng.uniform(-8, 8, 3)
    d, origin = _grid(site, body_centre + np.array([0.0, -12.0, 0.0]))
    Xw, Yw, Zw = _world(site, d, origin)
    X, Y, Z = Xw - body_centre[0], Yw - body_centre[1], Zw - body_centre[2]
    spacing_zyx = np.array(site.spacing[::-1])
    g = Grid(d, origin, site.spacing, site.size, body_centre, X, Y, Z)
    reg = _anatomy(body, g)
    fgt, fine = _fgt(rng, reg, X, Y, Z, body, density, spacing_zyx)
    normal, hilum, abnormal = _nodes(rng, body, plan.side, n_abn, cn == "N3", g)

    s0, e1, e2 = (np.zeros(X.shape, np.float32) for _ in range(3))
    anatomy = np.zeros(X.shape, np.uint8)
    interior = {}
    for code, region in ((10, reg["body"]), (9, reg["chest"] | reg["rib"]), (8, reg["lung"]), (10, reg["mediastinum"]),
                         (1, reg["left"]), (2, reg["right"]), (3, reg["heart"]), (4, reg["vessels"]),
                         (5, reg["small_vessels"]), (6, normal | abnormal)):
        anatomy[region] = code
    _fill(s0, e1, e2, reg["body"], "fat", site)
    _fill(s0, e1, e2, reg["skin"], "skin", site)
    _fill(s0, e1, e2, reg["chest"], "muscle", site)
    _fill(s0, e1, e2, reg["rib"], "rib", site)
    _fill(s0, e1, e2, reg["lung"], "lung", site)
    _fill(s0, e1, e2, reg["mediastinum"], "mediastinum", site)
    _fill(s0, e1, e2, reg["heart"], "myocardium", site)
    _fill(s0, e1, e2, reg["chamber"] | reg["vessels"] | reg["small_vessels"], "blood", site)
    bpe_amp = rng.uniform(*BPE_AMPLITUDE[bpe])
    bpe_field = np.clip(1 + 0.6 * _noise_field(rng, X.shape, spacing_zyx, 12.0), 0.1, 2.5)[fgt]
    s0[fgt] = TISSUES["fgt"][1 if site.fat_sat else 0] * (1 + 0.08 * fine[fgt])
    e1[fgt] = _curve(bpe_amp * bpe_field, *TISSUES["fgt"][3:], site.t1_s)
    e2[fgt] = _curve(bpe_amp * bpe_field, *TISSUES["fgt"][3:], site.t2_s)
    _fill(s0, e1, e2, normal, "node", site)
    _fill(s0, e1, e2, hilum, "fat", site)
    _fill(s0, e1, e2, abnormal, "node_abnormal", site)
    for name in ("left", "right"):
        interior[name] = reg[name] & ~reg["skin"] & (anatomy == (1 if name == "left" else 2))

    # tumour, in a local box
    box = _box(d, origin, site.spacing, site.size, plan.centre + body_centre, plan.radius * 2.3 + 10)
    allowed = (reg[plan.side] & (anatomy == (1 if plan.side == "left" else 2)))[box]
    if not plan.skin:
        allowed &= interior[plan.side][box]
    tum = _tumour(rng, plan, X[box], Y[box], Z[box], allowed, spacing_zyx)
    mask = np.zeros(X.shape, bool)
    mask[box] = tum["mask"]
    s0_b, e1_b, e2_b = s0[box], e1[box], e2[box]
    shell = tum["shell"]
    e1_b += shell * _curve(0.5, 0.01, -0.0008, site.t1_s) * (s0_b > 0)
    e2_b += shell * _curve(0.5, 0.01, -0.0008, site.t2_s) * (s0_b > 0)
    m = tum["mask"]
    s0_b[m] = TISSUES["fgt"][1 if site.fat_sat else 0] * 0.85
    e1_b[m] = _curve(tum["amp"], tum["alpha"], tum["beta"], site.t1_s)[m]
    e2_b[m] = _curve(tum["amp"], tum["alpha"], tum["beta"], site.t2_s)[m]
    nec = tum["necrosis"]
    nonfs, fs, a, al, be = TISSUES["necrosis"]
    s0_b[nec], e1_b[nec], e2_b[nec] = (fs if site.fat_sat else nonfs), _curve(a, al, be, site.t1_s), _curve(a, al, be, site.t2_s)

    benign_side = ""
    if benign:
        benign_side = ("left", "right")[int(rng.integers(2))]
        sx = 1.0 if benign_side == "left" else -1.0
        for _ in range(20):
            c = np.array([sx * body.breast_x + rng.uniform(-0.4, 0.4) * body.breast_r[0],
                          -body.breast_depth * rng.uniform(0.25, 0.6), rng.uniform(-0.4, 0.4) * body.breast_r[1]])
            r = rng.uniform(4.5, 10.0)
            if np.linalg.norm(c - plan.centre) > plan.radius * 1.6 + r + 12:
                break
        b = g.box(c, r * 1.5)
        q = _ellipsoid_q(X[b], Y[b], Z[b], c, (r, r * rng.uniform(0.6, 0.85), r * rng.uniform(0.7, 1.0)))
        q = q + 0.15 * _noise_field(rng, q.shape, spacing_zyx, 4.0)
        lesion = np.zeros(X.shape, bool)
        lesion[b] = (q < 1) & ~ndimage.binary_dilation(mask[b], iterations=2)
        lesion &= interior[benign_side]
        anatomy[lesion] = 7
        _fill(s0, e1, e2, lesion, "benign", site, rng.uniform(0.8, 1.25))
    anatomy[mask] = 1 if plan.side == "left" else 2

    # kinetic truth from the noise-free curves of the enhancing mask voxels (initial enhancement >= 50 %)
    e1m, e2m = e1[mask], e2[mask]
    enh = e1m >= 0.5
    ratio = e2m[enh] / np.maximum(e1m[enh], 1e-6)
    fractions = {k: float(np.mean(v)) if enh.any() else 0.0 for k, v in
                 (("washout", ratio < 0.9), ("plateau", (ratio >= 0.9) & (ratio <= 1.1)), ("persistent", ratio > 1.1))}

    # acquisition: partial volume, motion, coil field, Rician noise, int16 with the site gain
    bias = _bias(rng, Xw, Yw, Zw, body_centre)
    shift, angle = float(rng.uniform(0, 2.0)), float(rng.uniform(0, 1.0))
    sigma_n = (0.40 if site.fat_sat else 0.95) / site.snr
    written = {}
    for phase, enh_map in (("pre", None), ("post1", e1), ("post2", e2)):
        clean = s0 if enh_map is None else s0 * (1 + enh_map)
        clean = ndimage.gaussian_filter(clean, 0.5)
        img = _to_image(clean.astype(np.float32), d, origin, site.spacing)
        if phase != "post1":
            img = _motion(rng, img, shift * rng.uniform(0.5, 1.0), angle)
        arr = sitk.GetArrayFromImage(img) * bias
        noisy = np.hypot(arr + sigma_n * rng.standard_normal(arr.shape, np.float32),
                         sigma_n * rng.standard_normal(arr.shape, np.float32))
        written[phase] = _to_image(np.clip(np.rint(noisy * site.gain), 0, 32767).astype(np.int16), d, origin, site.spacing)
    written["mask"] = _to_image(mask.astype(np.uint8), d, origin, site.spacing)
    written["anatomy"] = _to_image(anatomy, d, origin, site.spacing)
    folder = out / "images" / pid
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in written.items():
        sitk.WriteImage(img, str(folder / f"{name}.nrrd"), True)

    # clinical values measured from what was drawn
    kji = np.argwhere(mask)
    points = (origin + (kji[:, ::-1] * np.array(site.spacing)) @ d.T) if len(kji) else np.zeros((1, 3))
    size1, size2, size3 = _diameters(points, d, np.array(site.spacing))
    skin_involved = bool((mask & reg["skin"]).any())
    ct = "T4" if skin_involved else ("T1" if size1 <= 20 else "T2" if size1 <= 50 else "T3")
    clinical.update(tumour_size_mm=size1, ct_stage=ct, cn_stage=cn)
    features = {"washout_fraction": fractions["washout"], "rim": plan.rim, "heterogeneity": plan.heterogeneity,
                "peritumoural": plan.peritumoural, "spiculated": plan.spicules > 0}
    logit, noise, prob, pcr = _pcr(rng, clinical, features)
    kinetic_type = max(fractions, key=fractions.get)
    voxel_ml = float(np.prod(site.spacing)) / 1000
    row = {"patient_id": pid, "site": site.name, "external": 1, "split": "external",
           **{p: f"images/{pid}/{p}.nrrd" for p in (*PHASES, "mask", "anatomy")},
           **{k: clinical[k] for k in ("age", "menopausal_status", "er", "pr", "her2", "ki67", "molecular_subtype",
                                      "histological_type", "histological_grade", "ct_stage", "cn_stage",
                                      "tumour_size_mm")},
           "tumour_size_2_mm": size2, "tumour_size_3_mm": size3, "laterality": plan.side, "pcr": pcr}
    truth = {"patient_id": pid, "site": site.name, "fat_sat": int(site.fat_sat), "side": plan.side,
             "quadrant": plan.quadrant, "centre_lps": " ".join(f"{v:.1f}" for v in plan.centre + body_centre),
             "target_diameter_mm": round(target_d, 1), "tumour_volume_ml": round(float(mask.sum()) * voxel_ml, 3),
             "kinetic_type": kinetic_type, "washout_fraction": round(fractions["washout"], 3),
             "plateau_fraction": round(fractions["plateau"], 3), "persistent_fraction": round(fractions["persistent"], 3),
             "rim": int(plan.rim), "necrotic_fraction": round(float(tum["necrosis"].sum() / max(1, m.sum())), 3),
             "heterogeneity": round(plan.heterogeneity, 3),
             "enhancement_cv": round(float(np.std(e1m) / max(np.mean(e1m), 1e-6)), 3) if e1m.size else 0.0,
             "spiculated": int(plan.spicules > 0), "n_spicules": plan.spicules, "peritumoural": int(plan.peritumoural),
             "skin_involved": int(skin_involved), "density": density,
             "fgt_fraction": round(float(fgt.sum() / max(1, (interior["left"] | interior["right"]).sum())), 3),
             "bpe": bpe, "bpe_amplitude": round(bpe_amp, 3), "benign": int(benign), "benign_side": benign_side,
             "n_abnormal_nodes": n_abn, "im_node": int(cn == "N3"), "motion_mm": round(shift, 2),
             "motion_deg": round(angle, 2), "t1_s": site.t1_s, "t2_s": site.t2_s,
             "pcr_logit": round(logit, 3), "image_logit": round(float(image_logit(features)), 3), "pcr_noise": round(noise, 3), "pcr_probability": round(prob, 3), "pcr": pcr}
    return row, truth


def _one(args: tuple[int, int, str]) -> tuple[dict, dict]:
    return generate_case(args[0], args[1], Path(args[2]))


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def generate_cohort(n: int, seed: int, out: Path, workers: int = 1) -> list[dict]:
    """Write n cases, manifest.csv, truth.csv and cohort.json under ``out``; returns the manifest rows."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, str(out)) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_one, jobs))
    else:
        results = [_one(j) for j in jobs]
    rows, truths = [r for r, _ in results], [t for _, t in results]
    _write_csv(out / "manifest.csv", [{c: r[c] for c in MANIFEST_COLUMNS} for r in rows])
    _write_csv(out / "truth.csv", truths)
    sites = {s.name: {"orientation": s.orientation, "direction": [round(v, 4) for v in s.direction],
                      "spacing_mm": list(s.spacing), "size": list(s.size), "fat_suppressed": s.fat_sat,
                      "post1_s": s.t1_s, "post2_s": s.t2_s, "gain": s.gain, "snr": s.snr} for s in SITES}
    cohort = {"generator": GENERATOR, "version": VERSION, "seed": seed, "n": n, "sites": sites,
              "anatomy_codes": {str(k): v for k, v in ANATOMY_CODES.items()}, "label_rule": LABEL_RULE,
              "signal_model": {"curve": "S(t) = S0 (1 + A (1 - exp(-alpha t)) exp(-beta t))",
                               "tissues (S0 nonFS, S0 FS, A, alpha, beta)": TISSUES, "tumour_kinetics": KINETICS},
              "pcr_rate": round(float(np.mean([r["pcr"] for r in rows])), 3)}
    (out / "cohort.json").write_text(json.dumps(cohort, indent=2))
    return rows


def _axial(image: sitk.Image, like: sitk.Image | None = None, nearest: bool = False) -> sitk.Image:
    """Resample onto an LPS-identity axial grid (1 mm in-plane, 2 mm slices) over the image's extent."""
    if like is None:
        corners = [image.TransformIndexToPhysicalPoint([a * (n - 1) for a, n in zip(c, image.GetSize())])
                   for c in np.ndindex(2, 2, 2)]
        lo, hi = np.min(corners, 0), np.max(corners, 0)
        spacing = (1.0, 1.0, 2.0)
        like = sitk.Image([int((h - l) / s) + 1 for l, h, s in zip(lo, hi, spacing)], sitk.sitkFloat32)
        like.SetOrigin([float(v) for v in lo])
        like.SetSpacing(spacing)
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), like, sitk.Transform(), interp, 0.0)


def render_preview(out: Path, patient_ids: list[str], png: Path) -> None:
    """Pre and post1-minus-pre, axial slice through the tumour centre with the mask contour, per case."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(patient_ids), 2, figsize=(11, 3.6 * len(patient_ids)), squeeze=False)
    sites = {r["patient_id"]: r["site"] for r in csv.DictReader((out / "manifest.csv").open())}
    for row, pid in zip(axes, patient_ids):
        folder = out / "images" / pid
        pre = _axial(sitk.ReadImage(str(folder / "pre.nrrd")))
        post1 = sitk.GetArrayFromImage(_axial(sitk.ReadImage(str(folder / "post1.nrrd")), pre))
        mask = sitk.GetArrayFromImage(_axial(sitk.ReadImage(str(folder / "mask.nrrd")), pre, True))
        pre_a = sitk.GetArrayFromImage(pre)
        k = int(np.round(np.argwhere(mask > 0)[:, 0].mean()))
        # LPS rows/columns: anterior (breasts) at the top, the patient's right on the image left (radiological)
        for ax, img, title in ((row[0], pre_a[k], "pre"), (row[1], (post1 - pre_a)[k], "post1 - pre")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=np.percentile(img, 99.7))
            ax.contour(mask[k], levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{pid} ({sites.get(pid, '')}) {title}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    rows = generate_cohort(args.n, args.seed, args.out, args.workers)
    log.info("%d cases in %s (%.1f s), pCR rate %.2f", len(rows), args.out, time.perf_counter() - start,
             np.mean([r["pcr"] for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
