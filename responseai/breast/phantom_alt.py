"""A third, independently coded breast DCE-MRI phantom (``breast-phantom-alt``).

Written without reading the other two generators, it is a second "other generator" for the
segmentation: with ``--external`` its cohort is a **cross-generator development set** for models
trained without it (choices are made there, the independent variant stays for the final check
only); without, its train/val rows can be mixed into training (tried: ``docs/segmentation.md``).

Anatomy (patient body frame, LPS millimetres, prone; y = 0 near the pectoral surface at the
midline, z = 0 at nipple level):

- torso: an elliptic cylinder; depth below its skin is a first-order distance ``(1 - e) / |grad e|``,
  so subcutaneous fat, pectoral muscle, a rib band (ribs with marrow and cortex, sloping up
  laterally; costal cartilage medially; intercostal muscle between them), the sternum and the
  thoracic cavity are layers of that one field;
- cavity: lungs, mediastinal fat, the liver dome on the right, a rotated heart (myocardium, left
  and right ventricular blood, atrial blood at the base, pericardial fat) and great vessels
  (ascending aorta, pulmonary trunk, SVC) as capsules;
- two pendant breasts: footprint ellipse (lateral/medial/vertical radii) on the chest wall, a
  dome-to-cone profile ``(1 - t^p)^(1/q)`` along a nipple axis tilted laterally and downwards,
  a nipple, skin from a blurred body outline;
- fibroglandular tissue: an envelope sparing subcutaneous and retromammary fat, textured by a
  nipple-centred (azimuth, polar, radius) noise lattice -- ducts radiating to the nipple -- plus
  lobular noise, thresholded at the quantile of its ACR density (a-d); Cooper's ligaments are
  iso-surfaces of the lobular noise; background parenchymal enhancement is a patchy, peripheral,
  progressive concentration map;
- internal mammary (artery + vein) and lateral thoracic vessels, axillary fat pads with 0-4
  nodes (normal reniform with a fatty hilum, or round suspicious ones), 0-2 fibroadenomas
  (oval, parallel to the chest wall, persistent, sometimes dark septations) and one tumour
  (oval, lobulated, irregular or spiculated; quadrant or retroareolar; persistent, plateau or
  washout; heterogeneous, sometimes rim enhancement around a necrotic core).

Signal: spoiled gradient echo, ``S = PD (1 - E) / (1 - cos(a) E)``, ``E = exp(-TR R1)``,
``R1 = 1/T1 + r1 C`` with field-strength T1 values and a gadolinium concentration per tissue and
phase. Lesion and parenchymal concentrations are set by inverting that equation for a drawn
relative enhancement, so tumour enhancement spans ~60-300 % at post1 whatever the site. Fat and
fatty marrow are suppressed per site (with lateral suppression failure sometimes), then a smooth
coil bias (strong anteriorly, near the breast coil), a Gaussian point-spread (partial volume) that
also carries 0-2 mm rigid motion of pre and post2, Rician noise and a per-site gain into int16.
The mask and anatomy follow post1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from responseai.breast.constants import MANIFEST_SCHEMA
from responseai.image import Image
from responseai.synthetic.cohort import (
    case_stream,
    cohort_parser,
    parse_cohort_args,
    write_case_images,
    write_cohort_files,
)

log = logging.getLogger(__name__)

GENERATOR = "breast-phantom-alt"
ANATOMY_CODES = {
    0: "air", 1: "left breast", 2: "right breast", 3: "heart", 4: "great vessels",
    5: "internal mammary and lateral thoracic vessels", 6: "axillary lymph nodes",
    7: "benign lesion (fibroadenoma)", 8: "lungs", 9: "chest wall (muscle, ribs, sternum)", 10: "other body tissue",
}
L_LEFT, L_RIGHT, L_HEART, L_GREAT, L_VESSEL, L_NODE, L_BENIGN, L_LUNG, L_WALL, L_BODY = range(1, 11)

# Tissues: proton density, T1 at 1.5 T and 3 T (ms), concentration post1 / post2 (mM), fatty.
TISSUES = {
    "air": (0.0, 1000, 1000, 0, 0, 0), "fat": (1.0, 260, 370, 0, 0, 1), "skin": (0.75, 800, 1100, 0.12, 0.16, 0),
    "muscle": (0.7, 1000, 1400, 0.08, 0.12, 0), "marrow": (0.8, 300, 420, 0.05, 0.06, 1),
    "cortex": (0.04, 1000, 1200, 0, 0, 0), "cartilage": (0.55, 1000, 1200, 0.02, 0.05, 0),
    "lung": (0.06, 1100, 1300, 0.2, 0.12, 0), "blood": (0.9, 1350, 1900, 2.4, 1.0, 0),
    "myocardium": (0.8, 950, 1250, 0.7, 0.45, 0), "liver": (0.75, 580, 800, 0.55, 0.45, 0),
    "node": (0.85, 1000, 1300, 0.45, 0.4, 0), "fgt": (0.8, 1000, 1450, 0, 0, 0),
    "tumour": (0.85, 1100, 1500, 0, 0, 0), "necrosis": (0.95, 1900, 2600, 0, 0, 0),
    "fibroadenoma": (0.85, 1050, 1450, 0, 0, 0), "fibrous": (0.55, 800, 1000, 0.02, 0.04, 0),
    "nipple": (0.8, 900, 1200, 0.25, 0.3, 0),
}
T = {name: code for code, name in enumerate(TISSUES)}
TABLE = np.array(list(TISSUES.values()), np.float32)
LABEL_RULE = ("pcr ~ Bernoulli(sigmoid(-1.7 + subtype + 0.02 (ki67 - 30) + 1.5 (washout_fraction - 0.3) "
              "- 0.03 (tumour_size_mm - 25))); subtype: luminal_a -1.4, luminal_b -0.3, her2_enriched +1.3, "
              "triple_negative +0.6")
MAX_SIZE = {"axial": (240, 190, 90), "sagittal": (240, 190, 100)}  # i, j, k voxel caps


@dataclass(frozen=True)
class Site:
    """One scanner protocol: orientation, direction matrix, fat suppression, field, sequence, noise."""

    name: str
    weight: float
    plane: str  # axial | sagittal
    direction: tuple[float, ...]  # 3x3 row-major, columns = i, j, k axes in LPS
    oblique_deg: tuple[float, float]  # |rotation| about the scanner z axis, drawn per case
    fat_sat: bool
    field_t: float
    tr_ms: float
    flip_deg: float
    inplane_mm: tuple[float, float]
    slice_mm: tuple[float, float]
    gain: float
    noise: float  # noise sigma relative to gain
    bias: float  # antero-posterior coil falloff (per 100 mm)


LPS = (1, 0, 0, 0, 1, 0, 0, 0, 1)
RAS_FLIP = (-1, 0, 0, 0, -1, 0, 0, 0, 1)
LPI = (1, 0, 0, 0, 1, 0, 0, 0, -1)
SAGITTAL = (0, 0, -1, 1, 0, 0, 0, -1, 0)  # i: anterior->posterior, j: superior->inferior, k: left->right
SITES = (
    Site("alt-A-axial-fs-3T", 0.28, "axial", LPS, (0, 0), True, 3.0, 4.4, 12, (1.1, 1.45), (1.4, 2.0), 3000, 0.006, 0.45),
    Site("alt-B-sagittal-fs-1.5T", 0.18, "sagittal", SAGITTAL, (0, 0), True, 1.5, 5.6, 15, (0.95, 1.25), (2.5, 3.0),
         2400, 0.007, 0.35),
    Site("alt-C-axial-nonfs-1.5T-ras", 0.22, "axial", RAS_FLIP, (0, 0), False, 1.5, 6.5, 18, (1.2, 1.5), (2.0, 3.0),
         1700, 0.005, 0.35),
    Site("alt-D-oblique-fs-3T-lpi", 0.18, "axial", LPI, (5, 15), True, 3.0, 4.0, 10, (1.25, 1.5), (1.2, 1.8),
         3400, 0.006, 0.5),
    Site("alt-E-axial-nonfs-3T-lpi", 0.14, "axial", LPI, (0, 0), False, 3.0, 4.8, 14, (1.0, 1.4), (1.0, 1.6),
         2200, 0.005, 0.4),
)


def _smooth(x, a: float, b: float):
    """Smoothstep from 0 at ``a`` to 1 at ``b``: soft tissue boundaries without hard thresholds."""
    t = np.clip((x - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A random rotation (QR of a Gaussian matrix), so lesions have no preferred axes."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.linalg.det(q)


def _frame(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Orthonormal columns (axis, ~hint, axis x hint): a local frame with a chosen main axis."""
    a0 = axis / np.linalg.norm(axis)
    a1 = hint - a0 * (hint @ a0)
    a1 /= np.linalg.norm(a1)
    return np.stack([a0, a1, np.cross(a0, a1)], axis=1)


@dataclass(frozen=True)
class Grid:
    """The post1 voxel grid in the body frame; coordinates come out broadcastable, not materialised."""

    shape: tuple[int, int, int]  # z, y, x (k, j, i)
    spacing: np.ndarray  # i, j, k
    origin: np.ndarray
    direction: np.ndarray

    def coords(self, box: tuple[slice, slice, slice] | None = None) -> list[np.ndarray]:
        """Body-frame x, y, z of the voxel centres of ``box``; an axis-aligned grid gives 1D/2D arrays."""
        box = box or tuple(slice(0, n) for n in self.shape)
        steps = [np.arange(box[2 - a].start, box[2 - a].stop, dtype=np.float32) * np.float32(self.spacing[a])
                 for a in range(3)]
        axes = [steps[0][None, None, :], steps[1][None, :, None], steps[2][:, None, None]]
        out = []
        for c in range(3):
            acc = np.full((1, 1, 1), self.origin[c], np.float32)
            for a in range(3):
                if abs(self.direction[c, a]) > 1e-9:
                    acc = acc + np.float32(self.direction[c, a]) * axes[a]
            out.append(acc)
        return out

    def box(self, lo, hi) -> tuple[slice, slice, slice] | None:
        """Index box holding the world box [lo, hi] (None when outside): objects are evaluated there only."""
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        idx = (corners - self.origin) @ self.direction / self.spacing
        first = np.maximum(np.floor(idx.min(0)).astype(int), 0)
        last = np.minimum(np.ceil(idx.max(0)).astype(int), np.array(self.shape[::-1]) - 1)
        if np.any(first > last):
            return None
        return tuple(slice(int(first[a]), int(last[a]) + 1) for a in (2, 1, 0))


def _sub(field: np.ndarray, box, shape: tuple[int, int, int]) -> np.ndarray:
    """The box of a broadcastable full-grid field, as a read-only array."""
    return np.broadcast_to(field, shape)[box]


def _box_shape(box) -> tuple[int, int, int]:
    return tuple(s.stop - s.start for s in box)


def _make_grid(site: Site, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> Grid:
    """Cover the world box [lo, hi] with the site's orientation, spacing and voxel caps."""
    d = np.asarray(site.direction, float).reshape(3, 3)
    angle = math.radians(rng.uniform(*site.oblique_deg)) * rng.choice([-1, 1])
    tilt = math.radians(rng.uniform(-4, 4)) if site.oblique_deg[1] > 0 else 0.0
    rz = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    d = rz @ rx @ d
    spacing = np.array([rng.uniform(*site.inplane_mm)] * 2 + [rng.uniform(*site.slice_mm)])
    caps, limits = np.array(MAX_SIZE[site.plane]), np.array([1.5, 1.5, 3.0])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    q = corners @ d
    qmin, extent = q.min(0), q.max(0) - q.min(0)
    spacing = np.where(extent / spacing + 1 > caps, np.minimum(limits, extent / (caps - 1)), spacing)
    n = np.minimum(np.ceil(extent / spacing).astype(int) + 1, caps)
    qmin = qmin + (extent - (n - 1) * spacing) / 2  # centre a crop when even the coarsest spacing is too fine
    return Grid((int(n[2]), int(n[1]), int(n[0])), spacing, d @ qmin, d)


@dataclass
class Breast:
    """One breast's footprint, profile and nipple axis (side +1 left / -1 right)."""

    side: int
    code: int
    x: float
    y_base: float
    z: float
    ru_lat: float
    ru_med: float
    rw: float
    depth: float
    p: float
    q: float
    tan_lat: float
    tan_inf: float
    nipple_len: float
    nipple_r: float

    def axis_point(self, hp: float) -> np.ndarray:
        """Centre of the cross-section ``hp`` mm anterior to the base plane."""
        return np.array([self.x + self.side * self.tan_lat * hp, self.y_base - hp, self.z - self.tan_inf * hp])

    def profile(self, t):
        """Cross-section scale at relative depth t: a dome (p, q ~ 2) to a pendant cone (p < 2)."""
        return (1 - np.clip(t, 0, 1) ** self.p) ** (1 / self.q)


@dataclass
class Body:
    """Torso ellipse, chest-wall layer thicknesses and the cavity organs' placement."""

    a: float
    b: float
    yc: float
    t_sub: float
    t_m: float
    t_rib: float
    h_rib: float
    pitch: float
    slope: float
    z_rib: float
    w_st: float
    t_st: float
    x_cart: float

    def wall_y(self, x: float, depth: float) -> float:
        """y of the torso layer ``depth`` mm under the skin at lateral position x (anterior half)."""
        return self.yc - (self.b - depth) * math.sqrt(max(0.0, 1 - (x / (self.a - depth)) ** 2))


def _draw_body(rng: np.random.Generator) -> tuple[Body, list[Breast]]:
    """Torso and breasts: size, shape, pendancy and left/right asymmetry are drawn together."""
    g = rng.beta(2, 2)  # overall breast size
    t_sub = rng.uniform(8, 14) + 10 * g * rng.uniform(0.3, 1)
    base = dict(ru_lat=55 + 30 * g, rw=46 + 26 * g, depth=(40 + 95 * g ** 1.2) * rng.uniform(0.85, 1.15),
                p=rng.uniform(1.5, 2.6), q=rng.uniform(1.4, 2.4), tan_lat=math.tan(math.radians(rng.uniform(5, 18))),
                tan_inf=math.tan(math.radians(rng.uniform(0, 12))))
    ru_med = base["ru_lat"] * rng.uniform(0.78, 0.95)
    x_off = ru_med + rng.uniform(6, 20)
    a = max(x_off + base["ru_lat"] + rng.uniform(5, 25), rng.uniform(145, 175))
    b = rng.uniform(95, 125)
    body = Body(a=a, b=b, yc=b - t_sub, t_sub=t_sub, t_m=rng.uniform(7, 14), t_rib=rng.uniform(9, 12),
                h_rib=rng.uniform(10, 14), pitch=rng.uniform(24, 30), slope=rng.uniform(0.15, 0.35),
                z_rib=rng.uniform(0, 30), w_st=rng.uniform(14, 20), t_st=rng.uniform(10, 14),
                x_cart=rng.uniform(35, 60))
    z_b = rng.uniform(0, 15)
    breasts = []
    for side, code in ((1, L_LEFT), (-1, L_RIGHT)):
        jit = {k: v * (rng.uniform(0.9, 1.1) if k in ("ru_lat", "rw", "depth") else 1) for k, v in base.items()}
        x_b = side * x_off * rng.uniform(0.96, 1.04)
        breasts.append(Breast(side=side, code=code, x=x_b, y_base=body.wall_y(x_b, t_sub), z=z_b + rng.uniform(-4, 4),
                              ru_med=ru_med * rng.uniform(0.93, 1.07), nipple_len=rng.uniform(4, 10),
                              nipple_r=rng.uniform(4, 6.5), **jit))
    return body, breasts


def _fov(rng: np.random.Generator, body: Body, breasts: list[Breast]) -> tuple[np.ndarray, np.ndarray]:
    """World box the acquisition must cover: both breasts, the anterior chest, part of the heart."""
    half = max(abs(b.x) + b.ru_lat + b.depth * b.tan_lat for b in breasts) + rng.uniform(8, 20)
    front = min(b.y_base - b.depth - b.nipple_len for b in breasts) - rng.uniform(8, 18)
    back = body.t_sub + rng.uniform(75, 115)
    top = max(b.z + b.rw for b in breasts) + rng.uniform(8, 22)
    bottom = min(b.z - b.rw - b.depth * b.tan_inf for b in breasts) - rng.uniform(8, 16)
    return np.array([-half, front, bottom]), np.array([half, back, top])


class Volume:
    """The case under construction: anatomy labels, tissue classes, FGT maps and concentration overrides."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.label = np.zeros(grid.shape, np.uint8)
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.fgt = np.zeros(grid.shape, np.float32)
        self.bpe = np.zeros((2,) + grid.shape, np.float32)
        self.mask = np.zeros(grid.shape, np.uint8)
        self.overrides: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # flat index, c1, c2

    def paint(self, box, where, label: int | None, tissue: int | None, only_tissue: tuple[int, ...] = ()) -> None:
        """Set label/tissue on ``where`` inside ``box`` (optionally only over some tissues)."""
        box = box or tuple(slice(0, n) for n in self.grid.shape)
        where = np.broadcast_to(where, _box_shape(box))
        if only_tissue:
            where = where & np.isin(self.tissue[box], only_tissue)
        if label is not None:
            self.label[box][where] = label
        if tissue is not None:
            self.tissue[box][where] = tissue

    def flat(self, box, where) -> np.ndarray:
        """Flat full-volume indices of the box voxels in ``where``."""
        local = np.nonzero(where)
        return np.ravel_multi_index(tuple(local[a] + box[a].start for a in range(3)), self.grid.shape)


def _torso(vol: Volume, body: Body) -> tuple[np.ndarray, np.ndarray]:
    """Skin-to-cavity layers from one distance field; returns (depth d, cavity) as broadcastable fields."""
    x, y, z = vol.grid.coords()
    dy = y - body.yc
    e = np.sqrt((x / body.a) ** 2 + (dy / body.b) ** 2)
    d = (1 - e) * e / np.maximum(np.sqrt(x ** 2 / body.a ** 4 + dy ** 2 / body.b ** 4), 1e-6)
    ax = np.abs(x)
    medial = ax < body.w_st
    t_mx = body.t_m * _smooth(ax, body.w_st, body.w_st + 25) + 2.0
    vol.paint(None, d >= 0, L_BODY, T["fat"])
    muscle = (d >= body.t_sub) & (d < body.t_sub + t_mx) & ~medial
    band = (d >= body.t_sub + t_mx) & (d < body.t_sub + t_mx + body.t_rib) & ~medial
    dz = np.remainder(z - body.z_rib - body.slope * ax + body.pitch / 2, body.pitch) - body.pitch / 2
    rho = np.sqrt((dz / (body.h_rib / 2)) ** 2 + ((d - body.t_sub - t_mx - body.t_rib / 2) / (body.t_rib / 2)) ** 2)
    rib = band & (rho <= 1)
    vol.paint(None, muscle | band, L_WALL, T["muscle"])
    vol.paint(None, rib, None, T["marrow"])
    vol.paint(None, rib & (rho > 0.72), None, T["cortex"])
    vol.paint(None, rib & (ax < body.x_cart), None, T["cartilage"])
    dst = d - body.t_sub
    sternum = medial & (dst >= 0) & (dst < body.t_st)
    vol.paint(None, sternum, L_WALL, T["marrow"])
    vol.paint(None, sternum & ((dst < 1.5) | (dst > body.t_st - 1.5) | (ax > body.w_st - 1.5)), None, T["cortex"])
    d_in = np.where(medial, body.t_sub + body.t_st, body.t_sub + t_mx + body.t_rib) + 1.5
    cavity = d >= d_in
    vol.paint(None, cavity, L_LUNG, T["lung"])
    return d, cavity


def _cavity(vol: Volume, rng: np.random.Generator, body: Body, cavity: np.ndarray, fov: tuple) -> None:
    """Mediastinum, liver dome, heart with chambers and pericardial fat, great vessels."""
    y_in0 = body.yc - body.b + body.t_sub + body.t_st + 1.5
    semi = np.array([rng.uniform(55, 68), rng.uniform(40, 52), rng.uniform(45, 58)])
    centre = np.array([rng.uniform(15, 35), y_in0 + 0.8 * semi[1] + rng.uniform(3, 10), rng.uniform(-45, -20)])
    z_top = centre[2] + 0.8 * semi[2]
    x, y, z = vol.grid.coords()
    med = ((x + 5) / rng.uniform(30, 40)) ** 2 + ((y - y_in0 - 40) / 48) ** 2 <= 1  # superior mediastinal fat
    vol.paint(None, cavity & (z > z_top - 30) & med, L_BODY, T["fat"])
    dome = centre[2] - rng.uniform(0.55, 0.8) * semi[2] - ((x + 50) / 100) ** 2 * rng.uniform(25, 45)
    vol.paint(None, cavity & (z < dome), L_BODY, T["liver"])
    rot = _frame(np.array([1.0, -math.tan(math.radians(rng.uniform(25, 45))), -math.tan(math.radians(rng.uniform(10, 25)))]),
                 np.array([0.0, 1.0, 0.0]))
    box = vol.grid.box(centre - semi.max() - 8, centre + semi.max() + 8)
    if box is not None:
        xb, yb, zb = vol.grid.coords(box)
        local = [sum(rot[c, i] * (v - centre[c]) for c, v in enumerate((xb, yb, zb))) for i in range(3)]
        inner = _sub(cavity, box, vol.grid.shape)

        def ell(off, scale, grow=0.0):
            return sum(((local[i] - off[i] * semi[i]) / (scale[i] * semi[i] + grow)) ** 2 for i in range(3)) <= 1

        heart = ell((0, 0, 0), (1, 1, 1)) & inner
        vol.paint(box, ell((0, 0, 0), (1, 1, 1), 6.0) & inner & ~heart, L_BODY, T["fat"])
        vol.paint(box, heart, L_HEART, T["myocardium"])
        blood = (ell((0.1, 0.15, 0), (0.6, 0.45, 0.5)) | ell((-0.05, -0.35, 0), (0.6, 0.42, 0.6))
                 | ell((-0.62, 0.2, 0.2), (0.42, 0.55, 0.5)))  # left ventricle, right ventricle, atria
        vol.paint(box, heart & blood, None, T["blood"])
    aorta_x, pt_x, svc_x = rng.uniform(-8, 4), rng.uniform(18, 30), rng.uniform(-42, -30)
    for p0, p1, r in (((aorta_x, y_in0 + rng.uniform(30, 40), z_top - 25), (aorta_x + 5, y_in0 + 45, z_top + 90), rng.uniform(13, 17)),
                      ((pt_x, y_in0 + rng.uniform(20, 28), z_top - 25), (pt_x + 5, y_in0 + 40, z_top + 25), rng.uniform(12, 15)),
                      ((svc_x, y_in0 + rng.uniform(35, 50), z_top - 20), (svc_x, y_in0 + 55, z_top + 100), rng.uniform(8, 11))):
        box, dist = _capsule(vol.grid, np.array(p0), np.array(p1), r)
        if box is not None:
            vol.paint(box, (dist <= r) & _sub(cavity, box, vol.grid.shape), L_GREAT, T["blood"])


def _capsule(grid: Grid, p0: np.ndarray, p1: np.ndarray, r: float):
    """(box, distance to the segment p0-p1): vessels are capsules evaluated on their own box."""
    box = grid.box(np.minimum(p0, p1) - r - 1, np.maximum(p0, p1) + r + 1)
    if box is None:
        return None, None
    x, y, z = grid.coords(box)
    u = (p1 - p0) / np.linalg.norm(p1 - p0)
    rel = (x - p0[0], y - p0[1], z - p0[2])
    t = np.clip(sum(rel[c] * u[c] for c in range(3)), 0, np.linalg.norm(p1 - p0))
    return box, np.sqrt(sum((rel[c] - t * u[c]) ** 2 for c in range(3)))


def _breast(vol: Volume, br: Breast, d: np.ndarray, body: Body) -> dict | None:
    """Paint one breast down to the pectoral surface; returns its local fields for FGT and lesions."""
    reach = max(br.ru_lat, br.ru_med) + br.depth * br.tan_lat + 5
    lo = np.array([br.x - reach, br.y_base - br.depth - br.nipple_len - 3, br.z - br.rw - br.depth * br.tan_inf - 5])
    hi = np.array([br.x + reach, br.y_base + 60, br.z + br.rw + 5])
    box = vol.grid.box(lo, hi)
    if box is None:
        return None
    x, y, z = vol.grid.coords(box)
    hp = br.y_base - y
    hpc = np.maximum(hp, 0)
    u = x - (br.x + br.side * br.tan_lat * hpc)
    w = z - (br.z - br.tan_inf * hpc)
    ru = np.where(br.side * u > 0, br.ru_lat, br.ru_med)
    r = np.sqrt((u / ru) ** 2 + (w / br.rw) ** 2)
    t = hp / br.depth
    prof = br.profile(t)
    hw = body.t_sub - _sub(d, box, vol.grid.shape)
    inside = (hw >= 0) & (t <= 1) & (r <= prof)
    radial = np.sqrt(u ** 2 + w ** 2)
    tip = (hp - br.depth) / br.nipple_len
    nipple = (tip >= -0.4) & (tip <= 1) & (radial <= br.nipple_r * (1 - 0.3 * np.clip(tip, 0, 1)))
    vol.paint(box, inside | nipple, br.code, T["fat"], only_tissue=(T["air"], T["fat"]))
    vol.paint(box, nipple & ~inside, None, T["nipple"])
    rn = r / np.maximum(prof, 1e-3)
    surface_mm = np.minimum((1 - rn) * prof * (br.ru_med + br.rw) / 2, np.maximum((1 - t) * br.depth, 0))
    return dict(box=box, inside=np.broadcast_to(inside, _box_shape(box)), t=t, rn=rn, hw=hw,
                surface=surface_mm, w=w, u=u)


def _skin(vol: Volume, thickness: float) -> None:
    """Skin: body voxels within ~thickness of air, from a blurred body outline (any direction matrix)."""
    inside = (vol.label > 0).astype(np.float32)
    sigma = thickness / 1.28 / vol.grid.spacing[::-1]
    blurred = ndi.gaussian_filter(inside, sigma, truncate=2.5)
    vol.paint(None, (vol.label > 0) & (blurred < 0.88), None, T["skin"], only_tissue=(T["fat"],))


def _lattice(rng: np.random.Generator, cells, smooth) -> np.ndarray:
    """Unit-variance smooth noise on a coarse periodic lattice, sampled later at any point."""
    g = ndi.gaussian_filter(rng.standard_normal(cells).astype(np.float32), smooth, mode="wrap")
    return (g - g.mean()) / (g.std() + 1e-6)


def _sample(lattice: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """Linear interpolation of a lattice at fractional cell coordinates (clipped inside it)."""
    pts = [np.clip(c, 0, n - 1.001) for c, n in zip(coords, lattice.shape)]
    return ndi.map_coordinates(lattice, pts, order=1, mode="grid-wrap").astype(np.float32)


def _world_noise(rng, points: list[np.ndarray], cell: float, smooth: float = 0.8) -> np.ndarray:
    """Isotropic smooth noise of feature size ~``cell`` mm at world points."""
    lo = [p.min() for p in points]
    cells = tuple(int((p.max() - l) / cell) + 3 for p, l in zip(points, lo))
    return _sample(_lattice(rng, cells, smooth), [(p - l) / cell + 1 for p, l in zip(points, lo)])


def _fgt(vol: Volume, rng, br: Breast, f: dict, density: float, bpe: tuple[float, float]) -> None:
    """Fibroglandular tissue with ducts radiating to the nipple, ligaments and patchy progressive BPE."""
    box = f["box"]
    sel = f["inside"] & (vol.tissue[box] == T["fat"])
    if not sel.any():
        return
    x, y, z = (np.broadcast_to(c, sel.shape)[sel] for c in vol.grid.coords(box))
    t, surf, hw = (np.broadcast_to(f[k], sel.shape)[sel] for k in ("t", "surface", "hw"))
    up = np.broadcast_to(f["w"], sel.shape)[sel] > 0
    lat = br.side * np.broadcast_to(f["u"], sel.shape)[sel] > 0
    env = _smooth(surf, 3, 13) * _smooth(hw, 6, 16) * (0.75 + 0.15 * up + 0.1 * lat + 0.1 * _smooth(t, 0.4, 0.8))
    nip = br.axis_point(br.depth)
    frame = _frame(br.axis_point(0) - nip, np.array([0.0, 0.0, 1.0]))
    v = [x - nip[0], y - nip[1], z - nip[2]]
    loc = [sum(frame[c, i] * v[c] for c in range(3)) for i in range(3)]
    rho = np.sqrt(loc[0] ** 2 + loc[1] ** 2 + loc[2] ** 2) + 1e-3
    psi = np.arccos(np.clip(loc[0] / rho, -1, 1))
    theta = np.arctan2(loc[2], loc[1])
    ducts = _sample(_lattice(rng, (40, 14, 6), (1.2, 1.0, 0.6)),
                    [(theta + np.pi) / (2 * np.pi) * 40, psi / (np.pi / 2) * 13, rho / (br.depth * 1.3) * 5])
    lobules = _world_noise(rng, [x, y, z], rng.uniform(3.0, 4.5))
    score = env + rng.uniform(0.3, 0.5) * ducts + rng.uniform(0.3, 0.5) * lobules
    thr = np.partition(score, int((1 - density) * (score.size - 1)))[int((1 - density) * (score.size - 1))]
    # soft edges (partial volume) and a glandular fraction below 1 where ducts are sparse: texture, not slabs
    frac = np.clip((score - thr) / (0.2 * score.std()) + 0.5, 0, 1) * (0.8 + 0.2 * _smooth(ducts, -1.5, 1.5))
    flat = vol.flat(box, sel)
    vol.fgt.flat[flat] = frac
    ligament = (np.abs(lobules - 1.1) < 0.06) & (frac < 0.3) & (surf < 25)
    vol.tissue.flat[flat[ligament]] = T["fibrous"]
    vol.fgt.flat[flat[ligament]] = 0
    patch = _world_noise(rng, [x, y, z], rng.uniform(8, 14))
    weight = np.clip(0.55 + 0.6 * patch + 0.4 * (1 - _smooth(surf, 5, 30)) + 0.2 * up * lat, 0.03, 2.0)
    vol.bpe[0].flat[flat] = bpe[0] * weight
    vol.bpe[1].flat[flat] = bpe[0] * weight * bpe[1] * np.exp(0.15 * lobules)


def _relax(site: Site) -> tuple[np.ndarray, float]:
    """Per-tissue pre-contrast R1 (1/s) at the site's field, and gadolinium relaxivity (1/mM/s)."""
    t1 = TABLE[:, 1] if site.field_t < 2 else TABLE[:, 2]
    return (1000.0 / t1).astype(np.float32), 4.5 if site.field_t < 2 else 3.5


def _spgr(r1, site: Site):
    """Spoiled gradient-echo steady state (without PD and sin a): the T1-weighted contrast."""
    e = np.exp(-site.tr_ms / 1000.0 * r1)
    return (1 - e) / (1 - math.cos(math.radians(site.flip_deg)) * e)


def _conc_for(enhancement, tissue: str, site: Site):
    """Concentration giving a relative enhancement over pre (inverted SPGR), so sites share RE ranges."""
    r10, relax = _relax(site)
    r0 = r10[T[tissue]]
    s = np.minimum(_spgr(r0, site) * (1 + np.asarray(enhancement, np.float32)), 0.97)
    e = (1 - s) / (1 - s * math.cos(math.radians(site.flip_deg)))
    return np.maximum(-np.log(e) / (site.tr_ms / 1000.0) - r0, 0) / relax


def _local_shape(vol: Volume, rng, centre: np.ndarray, semi: np.ndarray, rot: np.ndarray, reach: float):
    """Box and local coordinates (rotated frame) around a lesion centre."""
    box = vol.grid.box(centre - reach, centre + reach)
    if box is None:
        return None, None
    x, y, z = vol.grid.coords(box)
    rel = (x - centre[0], y - centre[1], z - centre[2])
    return box, [np.broadcast_to(sum(rot[c, i] * rel[c] for c in range(3)), _box_shape(box))
                 for i in range(3)]


def _radius(rng, loc: list[np.ndarray], semi: np.ndarray, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius r / R(direction) of an oval, lobulated or irregular mass; returns (rho, r)."""
    r = np.sqrt(loc[0] ** 2 + loc[1] ** 2 + loc[2] ** 2) + 1e-3
    n = [c / r for c in loc]
    radius = 1 / np.sqrt(sum((n[i] / semi[i]) ** 2 for i in range(3)))
    if shape == "oval":
        return r / radius, r
    for _ in range(int(rng.integers(3, 7)) if shape == "lobulated" else int(rng.integers(5, 10))):
        dirn = rng.standard_normal(3)
        dirn /= np.linalg.norm(dirn)
        cosang = sum(n[i] * dirn[i] for i in range(3))
        if shape == "lobulated":
            radius = radius * (1 + rng.uniform(0.15, 0.4) * np.maximum(cosang, 0) ** rng.uniform(4, 9))
        else:
            radius = radius * (1 + rng.uniform(0.06, 0.16) * np.cos(rng.uniform(2, 6) * cosang + rng.uniform(0, 6.3)))
    return r / radius, r


def _tumour(vol: Volume, rng, site: Site, br: Breast, f: dict, tum: dict) -> dict:
    """The one tumour: shape, clipped to its breast, heterogeneous enhancement and kinetics."""
    radius = tum["diameter"] / 2
    semi = radius * np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.55, 0.9)])
    centre, rot = _place(rng, br, radius, tum["quadrant"]), _rotation(rng)
    spic_len = radius * rng.uniform(0.7, 1.5) + 4 if tum["shape"] == "spiculated" else 0
    box, loc = _local_shape(vol, rng, centre, semi, rot, radius * 1.6 + spic_len + 2)
    rho, r = _radius(rng, loc, semi, "irregular" if tum["shape"] == "spiculated" else tum["shape"])
    shape = rho <= 1
    for _ in range(int(rng.integers(8, 20)) if spic_len else 0):
        dirn = rng.standard_normal(3)
        dirn /= np.linalg.norm(dirn)
        along = sum(loc[i] * dirn[i] for i in range(3))
        perp = np.sqrt(np.maximum(r ** 2 - along ** 2, 0))
        length = spic_len * rng.uniform(0.5, 1.0)
        taper = 1 - np.clip((along - 0.7 * radius) / (0.3 * radius + length), 0, 1)
        shape |= (along > 0.5 * radius) & (taper > 0) & (perp <= rng.uniform(1.5, 3.0) * (0.3 + 0.7 * taper))
    keep = shape & (vol.label[box] == br.code) & (vol.tissue[box] != T["skin"]) & (vol.tissue[box] != T["nipple"])
    flat = vol.flat(box, keep)
    rk = np.minimum(rho[keep], 1.0)
    noise = _world_noise(rng, [c[keep] for c in loc], rng.uniform(2.5, 5)) if flat.size > 8 else np.zeros(flat.size, np.float32)
    c1 = _conc_for(tum["enhancement"], "tumour", site) * np.clip(1 + 0.45 * noise + tum["rim"] * (rk ** 2 - 0.3), 0.15, 3)
    noise2 = _world_noise(rng, [c[keep] for c in loc], rng.uniform(3, 6)) if flat.size > 8 else noise
    kin = tum["kinetic_ratio"] * np.exp(0.25 * noise2) * (1 - tum["rim_washout"] * rk ** 2)
    c2 = c1 * kin
    necrotic = rk < tum["necrosis"]
    c1, c2 = np.where(necrotic, 0.03, c1), np.where(necrotic, 0.09, c2)
    vol.tissue.flat[flat] = np.where(necrotic, T["necrosis"], T["tumour"])
    vol.fgt.flat[flat] = 0
    vol.mask.flat[flat] = 1
    vol.overrides.append((flat, c1.astype(np.float32), c2.astype(np.float32)))
    r10, relax = _relax(site)
    alive = ~necrotic
    s1, s2 = (_spgr(r10[T["tumour"]] + relax * c[alive], site) for c in (c1, c2))
    along0 = loc[0][keep & (rho <= 1)]
    return dict(centre=centre, voxels=int(flat.size), clipped=float(1 - keep.sum() / max(shape.sum(), 1)),
                washout_fraction=float(np.mean(s2 < 0.95 * s1)) if alive.any() else 0.0,
                measured_mm=float(along0.max() - along0.min()) if along0.size else tum["diameter"])


def _place(rng, br: Breast, radius: float, quadrant: str) -> np.ndarray:
    """A lesion centre in a quadrant (or behind the nipple) that leaves the lesion inside the breast."""
    angles = {"UOQ": (20, 70), "UIQ": (110, 160), "LIQ": (200, 250), "LOQ": (290, 340)}
    small = min(br.ru_med, br.rw)
    retro = quadrant == "retroareolar"
    t = rng.uniform(0.5, 0.75) if retro else rng.uniform(0.15, 0.5)
    t = max(t, min((0.6 * radius + 3) / br.depth, 0.6))  # keep most of it off the pectoral muscle
    while retro and t > 0.2 and br.profile(t) * small < radius + 4:
        t -= 0.05
    ang = rng.uniform(0, 2 * math.pi) if retro else math.radians(rng.uniform(*angles[quadrant]))
    frac = rng.uniform(0, 0.12) if retro else rng.uniform(0.25, 0.6)
    frac = min(frac, max(0.0, 1 - (radius + 4) / (br.profile(t) * small)))
    point = br.axis_point(t * br.depth)
    ru = br.ru_lat if math.cos(ang) > 0 else br.ru_med
    return point + np.array([br.side * math.cos(ang) * frac * br.profile(t) * ru, 0, math.sin(ang) * frac * br.profile(t) * br.rw])


def _benign(vol: Volume, rng, site: Site, br: Breast, avoid: np.ndarray, avoid_r: float) -> dict | None:
    """A fibroadenoma: oval, parallel to the chest wall, circumscribed, mostly persistent."""
    semi = np.sort(rng.uniform(4, 14, 3))[::-1] * np.array([1, 1, 0.8])
    for _ in range(5):
        centre = _place(rng, br, semi[0], str(rng.choice(["UOQ", "UIQ", "LIQ", "LOQ", "retroareolar"])))
        if np.linalg.norm(centre - avoid) > avoid_r + semi[0] + 5:
            break
    else:
        return None
    spin = rng.uniform(0, math.pi)  # long axes in the x-z plane (parallel to the chest wall), short axis AP
    rot = np.array([[math.cos(spin), 0, 0], [0, 0, 1], [math.sin(spin), 0, 0]], float)
    rot[:, 1] = [-math.sin(spin), 0, math.cos(spin)]
    rot[:, 2] = [0, 1, 0]
    box, loc = _local_shape(vol, rng, centre, semi, rot, semi[0] + 2)
    if box is None:
        return None
    rho = np.sqrt(sum((loc[i] / semi[i]) ** 2 for i in range(3)))
    keep = (rho <= 1) & (vol.label[box] == br.code) & (vol.mask[box] == 0) & (vol.tissue[box] != T["skin"])
    flat = vol.flat(box, keep)
    if flat.size == 0:
        return None
    re1 = rng.uniform(0.3, 1.2)
    ratio = rng.uniform(1.2, 1.6) if rng.random() < 0.85 else rng.uniform(0.95, 1.08)
    noise = _world_noise(rng, [c[keep] for c in loc], 2.0) if flat.size > 8 else np.zeros(flat.size, np.float32)
    c1 = _conc_for(re1, "fibroadenoma", site) * np.clip(1 + 0.15 * noise, 0.5, 1.5)
    septa = (np.abs(noise) < 0.1) if rng.random() < 0.4 else np.zeros(flat.size, bool)
    vol.label.flat[flat] = L_BENIGN
    vol.tissue.flat[flat] = np.where(septa, T["fibrous"], T["fibroadenoma"])
    vol.fgt.flat[flat] = 0
    vol.overrides.append((flat[~septa], c1[~septa].astype(np.float32), (c1 * ratio)[~septa].astype(np.float32)))
    return dict(side=br.side, diameter=float(2 * semi[0]), septations=bool(septa.any()))


def _vessels_and_nodes(vol: Volume, rng, body: Body, breasts: list[Breast], fov, nodes: list[dict]) -> None:
    """Internal mammary and lateral thoracic vessels, axillary fat pads and lymph nodes."""
    lo, hi = fov
    for br in breasts:
        s, d_im = br.side, body.t_sub + body.t_st + 4
        for off, r in ((rng.uniform(5, 9), rng.uniform(1.2, 1.8)), (rng.uniform(11, 16), rng.uniform(1.6, 2.4))):
            xv = s * (body.w_st + off)
            yv = body.wall_y(xv, d_im)
            box, dist = _capsule(vol.grid, np.array([xv, yv, lo[2] - 5]), np.array([xv, yv, hi[2] + 5]), r)
            if box is not None:
                vol.paint(box, dist <= r, L_VESSEL, T["blood"], only_tissue=(T["lung"], T["fat"], T["muscle"]))
        x_lt = s * min(abs(br.x) + br.ru_lat + rng.uniform(5, 15), 0.9 * (body.a - body.t_sub))
        p0 = np.array([x_lt, body.wall_y(x_lt, body.t_sub * 0.5), br.z + 90])
        x1 = x_lt - s * 8
        p1 = np.array([x1, body.wall_y(x1, body.t_sub * 0.5), br.z - 40])
        r = rng.uniform(1.2, 1.8)
        box, dist = _capsule(vol.grid, p0, p1, r)
        if box is not None:
            vol.paint(box, (dist <= r) & (vol.label[box] == L_BODY), L_VESSEL, T["blood"], only_tissue=(T["fat"],))
        x_ax = s * min(abs(br.x) + br.ru_lat * 0.9 + 10, 0.85 * body.a)
        pad = np.array([x_ax, body.wall_y(x_ax, body.t_sub), br.z + rng.uniform(35, 55)])
        box, loc = _local_shape(vol, rng, pad, None, np.eye(3), 45)
        if box is not None:
            inpad = ((loc[0] / 22) ** 2 + (loc[1] / 16) ** 2 + (loc[2] / 42) ** 2 <= 1) & np.isin(vol.label[box], (L_BODY, L_WALL))
            vol.paint(box, inpad, L_BODY, T["fat"], only_tissue=(T["fat"], T["muscle"]))
        for node in (n for n in nodes if n["side"] == s):
            _node(vol, rng, pad + rng.uniform([-10, -6, -25], [10, 6, 25]), node)


def _node(vol: Volume, rng, centre: np.ndarray, node: dict) -> None:
    """One node: reniform with a fatty hilum, or round and hilum-less (suspicious)."""
    if node["suspicious"]:
        semi = rng.uniform(5, 9) * np.array([1, rng.uniform(0.85, 1), rng.uniform(0.8, 1)])
    else:
        semi = np.array([rng.uniform(5, 9), rng.uniform(3, 5), rng.uniform(3, 4.5)])
    rot = _rotation(rng)
    box, loc = _local_shape(vol, rng, centre, semi, rot, semi.max() + 1)
    if box is None:
        return
    node_in = sum((loc[i] / semi[i]) ** 2 for i in range(3)) <= 1
    vol.paint(box, node_in, L_NODE, T["node"], only_tissue=(T["fat"], T["muscle"], T["fibrous"]))
    if node["hilum"]:
        hil = ((loc[0] / (0.55 * semi[0])) ** 2 + ((loc[1] - 0.45 * semi[1]) / (0.5 * semi[1])) ** 2
               + (loc[2] / (0.5 * semi[2])) ** 2) <= 1
        vol.paint(box, hil & node_in, None, T["fat"], only_tissue=(T["node"],))


def _clinical(rng: np.random.Generator) -> dict:
    """Age, menopause, receptors consistent with the subtype, Ki-67, grade, histology, cN."""
    age = float(np.clip(rng.normal(51, 11), 24, 84))
    subtype = str(rng.choice(["luminal_a", "luminal_b", "her2_enriched", "triple_negative"], p=[0.27, 0.3, 0.18, 0.25]))
    er = subtype in ("luminal_a", "luminal_b")
    pr = er and rng.random() < (0.9 if subtype == "luminal_a" else 0.6)
    her2 = subtype == "her2_enriched" or (subtype == "luminal_b" and rng.random() < 0.3)
    ki67 = {"luminal_a": (3, 20), "luminal_b": (20, 60), "her2_enriched": (20, 75), "triple_negative": (30, 95)}[subtype]
    grade_p = {"luminal_a": [0.35, 0.55, 0.1], "luminal_b": [0.1, 0.5, 0.4], "her2_enriched": [0.05, 0.35, 0.6],
               "triple_negative": [0.02, 0.18, 0.8]}[subtype]
    lobular = 0.15 if er else 0.03
    return dict(age=round(age), menopausal_status="post" if age > rng.normal(51, 3) else "pre",
                er="positive" if er else "negative", pr="positive" if pr else "negative",
                her2="positive" if her2 else "negative", ki67=int(round(rng.uniform(*ki67))), molecular_subtype=subtype,
                histological_type=str(rng.choice(["ductal", "lobular", "other"], p=[0.95 - lobular, lobular, 0.05])),
                histological_grade=str(rng.choice(["1", "2", "3"], p=grade_p)),
                cn_stage=str(rng.choice(["N0", "N1", "N2", "N3"], p=[0.5, 0.38, 0.09, 0.03])))


def _draw_tumour(rng: np.random.Generator, clin: dict) -> dict:
    """Tumour phenotype conditional on subtype: shape, kinetics, necrosis, enhancement, position."""
    sub = clin["molecular_subtype"]
    shapes = {"triple_negative": [0.35, 0.35, 0.2, 0.1], "her2_enriched": [0.1, 0.25, 0.45, 0.2],
              "luminal_a": [0.05, 0.15, 0.35, 0.45], "luminal_b": [0.1, 0.25, 0.35, 0.3]}[sub]
    kin = {"triple_negative": [0.15, 0.35, 0.5], "her2_enriched": [0.15, 0.3, 0.55],
           "luminal_a": [0.45, 0.35, 0.2], "luminal_b": [0.25, 0.35, 0.4]}[sub]
    kinetic = str(rng.choice(["persistent", "plateau", "washout"], p=kin))
    diameter = float(np.clip(rng.lognormal(math.log(23), 0.42), 8, 50))
    p_necrosis = {"triple_negative": 0.5, "her2_enriched": 0.25}.get(sub, 0.1) * (1.3 if diameter > 20 else 0.5)
    necrosis = rng.uniform(0.35, 0.6) if rng.random() < p_necrosis else 0.0
    return dict(shape=str(rng.choice(["oval", "lobulated", "irregular", "spiculated"], p=shapes)), kinetic=kinetic,
                kinetic_ratio={"persistent": rng.uniform(1.25, 1.6), "plateau": rng.uniform(0.92, 1.08),
                               "washout": rng.uniform(0.45, 0.72)}[kinetic],
                diameter=diameter, necrosis=necrosis, rim=rng.uniform(0.4, 0.9) if necrosis else rng.uniform(0, 0.3),
                rim_washout=rng.uniform(0, 0.4), enhancement=0.6 + 2.4 * rng.beta(1.6, 1.6),
                side=int(rng.choice([1, -1])),
                quadrant=str(rng.choice(["UOQ", "UIQ", "LOQ", "LIQ", "retroareolar"], p=[0.45, 0.15, 0.12, 0.08, 0.2])))


def _draw_parenchyma(rng: np.random.Generator, clin: dict, site: Site) -> dict:
    """ACR density (a-d) and BPE level; premenopausal women get denser, more enhancing parenchyma."""
    pre = clin["menopausal_status"] == "pre"
    density = str(rng.choice(list("abcd"), p=[0.05, 0.3, 0.45, 0.2] if pre else [0.15, 0.45, 0.32, 0.08]))
    bpe = str(rng.choice(["minimal", "mild", "moderate", "marked"], p=[0.25, 0.35, 0.25, 0.15] if pre else [0.45, 0.35, 0.15, 0.05]))
    frac = rng.uniform(*{"a": (0.04, 0.12), "b": (0.12, 0.28), "c": (0.28, 0.5), "d": (0.5, 0.72)}[density])
    re = rng.uniform(*{"minimal": (0.03, 0.12), "mild": (0.12, 0.3), "moderate": (0.3, 0.6), "marked": (0.6, 1.4)}[bpe])
    return dict(density=density, fgt_fraction=frac, bpe=bpe, bpe_enhancement=re,
                bpe_conc=(float(_conc_for(re, "fgt", site)), rng.uniform(1.2, 1.8)))


def _nodes(rng: np.random.Generator, clin: dict, side: int) -> list[dict]:
    """0-4 nodes: suspicious ones (round, no hilum) ipsilateral, as many as cN implies; others normal."""
    suspicious = {"N0": 0, "N1": int(rng.integers(1, 3)), "N2": int(rng.integers(3, 5)), "N3": 4}[clin["cn_stage"]]
    total = max(suspicious, int(rng.integers(0, 5)))
    return [dict(side=side if k < suspicious else int(rng.choice([1, -1])), suspicious=k < suspicious,
                 hilum=k >= suspicious and rng.random() < 0.75) for k in range(total)]


def _psf_shift(volume: np.ndarray, sigma: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Gaussian point spread with a sub-voxel translation in one separable pass (partial volume + motion)."""
    for axis in range(3):
        rad = int(math.ceil(abs(shift[axis]) + 2.5 * sigma[axis]))
        taps = np.arange(-rad, rad + 1, dtype=np.float64)
        kernel = np.exp(-(taps - shift[axis]) ** 2 / (2 * sigma[axis] ** 2))
        volume = ndi.correlate1d(volume, (kernel / kernel.sum()).astype(np.float32), axis=axis, mode="nearest")
    return volume


def _render(vol: Volume, rng: np.random.Generator, site: Site, breasts: list[Breast]) -> tuple[dict, dict]:
    """DCE phases in scanner units (int16): SPGR signal, FGT mixing, fat suppression, bias, PSF, motion, noise."""
    grid, tissue = vol.grid, vol.tissue
    r10, relax = _relax(site)
    pd, fatty = TABLE[:, 0], TABLE[:, 5] > 0
    x, y, z = grid.coords()
    uptake = rng.uniform(0.8, 1.2)
    post2_s = rng.uniform(300, 420)
    conc = [np.zeros(len(TABLE), np.float32), TABLE[:, 3] * uptake, TABLE[:, 4] * uptake]
    conc[1][T["blood"]] = rng.uniform(1.8, 3.0)
    conc[2][T["blood"]] = conc[1][T["blood"]] * (0.3 + 0.25 * math.exp(-(post2_s - 300) / 300))
    xb = np.mean([abs(b.x) for b in breasts])
    zb = np.mean([b.z for b in breasts])
    bias = (np.exp(site.bias * rng.uniform(0.7, 1.3) * -y / 100)
            * (1 + rng.uniform(0.1, 0.35) * np.exp(-((np.abs(x) - xb) ** 2 + (z - zb) ** 2) / (2 * 60.0 ** 2)))
            * (1 + rng.uniform(-0.1, 0.1) * x / 200)).astype(np.float32)
    fail = rng.uniform(0.2, 0.6) if rng.random() < 0.4 else 0.0
    fs = (rng.uniform(0.05, 0.14) + fail * _smooth(np.abs(x), xb + 40, xb + 90)) if site.fat_sat else np.float32(1)
    gain = site.gain * rng.uniform(0.85, 1.15)
    sigma_noise = site.noise * site.gain * rng.uniform(0.8, 1.25)
    psf = np.array([rng.uniform(0.35, 0.5), rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6)])
    fgt_idx = np.flatnonzero(vol.fgt > 0.005)
    frac = vol.fgt.flat[fgt_idx]
    scale = np.ascontiguousarray(np.broadcast_to(bias * np.float32(gain), grid.shape))
    factor = np.where(fatty[tissue], scale * fs, scale).astype(np.float32)  # fat suppression, coil bias, gain
    # One pool of Gaussian noise, read at six random offsets: every field is i.i.d. normal and the
    # six are independent at any voxel, for a fraction of the cost of six draws.
    size = int(np.prod(grid.shape))
    pool = rng.standard_normal(size + size // 2, np.float32) * np.float32(sigma_noise)
    offsets = rng.integers(0, size // 2, 6)
    phases, motion = {}, {}
    for p, name in enumerate(("pre", "post1", "post2")):
        lut = (pd * _spgr(r10 + relax * conc[p], site)).astype(np.float32)
        s = lut[tissue] * factor
        for flat, c1, c2 in vol.overrides:  # lesions: per-voxel concentration, never fatty
            c = (0, c1, c2)[p]
            s.flat[flat] = pd[tissue.flat[flat]] * _spgr(r10[tissue.flat[flat]] + relax * c, site) * scale.flat[flat]
        bpe = 0 if p == 0 else vol.bpe[p - 1].flat[fgt_idx]
        fgt_signal = pd[T["fgt"]] * _spgr(r10[T["fgt"]] + relax * bpe, site) * scale.flat[fgt_idx]
        s.flat[fgt_idx] = (1 - frac) * s.flat[fgt_idx] + frac * fgt_signal
        move = np.zeros(3)
        if name != "post1":
            vec = rng.standard_normal(3)
            move = vec / np.linalg.norm(vec) * rng.uniform(0, 2.0)  # mm, LPS
        motion[name] = [round(float(m), 3) for m in move]
        s = _psf_shift(s, psf, (grid.direction.T @ move / grid.spacing)[::-1])
        n1, n2 = (pool[o:o + s.size].reshape(s.shape) for o in offsets[2 * p:2 * p + 2])
        noisy = np.sqrt((s + n1) ** 2 + n2 ** 2)  # Rician magnitude
        phases[name] = np.clip(np.rint(noisy), 0, 32767).astype(np.int16)
    return phases, dict(gain=round(gain, 1), noise_sigma=round(sigma_noise, 2), post2_s=round(post2_s),
                        fat_sat_failure=round(fail, 3), motion_pre_mm=motion["pre"], motion_post2_mm=motion["post2"])


def _pcr(rng: np.random.Generator, clin: dict, washout: float, size: float) -> tuple[int, float]:
    """The documented logistic label rule (LABEL_RULE)."""
    sub = {"luminal_a": -1.4, "luminal_b": -0.3, "her2_enriched": 1.3, "triple_negative": 0.6}[clin["molecular_subtype"]]
    logit = -1.7 + sub + 0.02 * (clin["ki67"] - 30) + 1.5 * (washout - 0.3) - 0.03 * (size - 25)
    prob = 1 / (1 + math.exp(-logit))
    return int(rng.random() < prob), prob


def simulate_case(seed: int, index: int, site: Site | None = None) -> dict:
    """One case: images (pre, post1, post2, anatomy), mask, manifest row (no paths) and truth."""
    rng, site = case_stream(seed, index, SITES, site)
    clin = _clinical(rng)
    tum = _draw_tumour(rng, clin)
    par = _draw_parenchyma(rng, clin, site)
    body, breasts = _draw_body(rng)
    lo, hi = _fov(rng, body, breasts)
    grid = _make_grid(site, rng, lo, hi)
    vol = Volume(grid)
    d, cavity = _torso(vol, body)
    _cavity(vol, rng, body, cavity, (lo, hi))
    fields = [_breast(vol, br, d, body) for br in breasts]
    nodes = _nodes(rng, clin, tum["side"])
    _vessels_and_nodes(vol, rng, body, breasts, (lo, hi), nodes)
    _skin(vol, rng.uniform(1.4, 2.4))
    for br, f in zip(breasts, fields):
        if f is not None:
            _fgt(vol, rng, br, f, par["fgt_fraction"], par["bpe_conc"])
    k = 0 if tum["side"] == 1 else 1
    stats = _tumour(vol, rng, site, breasts[k], fields[k], tum)
    benign = []
    for _ in range(int(rng.choice([0, 1, 2], p=[0.55, 0.3, 0.15]))):
        lesion = _benign(vol, rng, site, breasts[int(rng.integers(0, 2))], stats["centre"], tum["diameter"] / 2)
        benign += [lesion] if lesion else []
    phases, acq = _render(vol, rng, site, breasts)
    size = float(np.clip(round(stats["measured_mm"]), 1, 200))
    ct = "T1" if size <= 20 else "T2" if size <= 50 else "T3"
    ct = "T4" if size > 20 and rng.random() < 0.03 else ct
    pcr, prob = _pcr(rng, clin, stats["washout_fraction"], size)
    offset = rng.uniform([-25, -25, -60], [25, 25, 60])
    geometry = dict(spacing=tuple(grid.spacing), origin=tuple(grid.origin + offset), direction=grid.direction)
    images = {name: Image(arr, **geometry) for name, arr in phases.items()}
    images["anatomy"] = Image(vol.label, **geometry)
    patient = f"BA{seed:03d}-{index:04d}"
    row = dict(patient_id=patient, site=site.name, external=0, split="val" if index % 5 == 1 else "train",
               **{k: v for k, v in clin.items()}, ct_stage=ct, tumour_size_mm=size, pcr=pcr)
    truth = dict(patient_id=patient, site=site.name, side="left" if tum["side"] == 1 else "right",
                 quadrant=tum["quadrant"], shape=tum["shape"], kinetic=tum["kinetic"],
                 enhancement_post1=round(tum["enhancement"], 3), diameter_drawn_mm=round(tum["diameter"], 1),
                 necrosis_core=round(tum["necrosis"], 3), washout_fraction=round(stats["washout_fraction"], 4),
                 tumour_voxels=stats["voxels"], tumour_clipped=round(stats["clipped"], 4),
                 density=par["density"], fgt_fraction=round(par["fgt_fraction"], 3), bpe=par["bpe"],
                 bpe_enhancement=round(par["bpe_enhancement"], 3), n_nodes=len(nodes),
                 n_suspicious_nodes=sum(n["suspicious"] for n in nodes), n_benign=len(benign), pcr_probability=round(prob, 4),
                 shape_zyx="x".join(map(str, grid.shape)), **acq)
    return dict(images=images, mask=Image(vol.mask, **geometry), row=row, truth=truth)


COLUMNS = [c.name for c in MANIFEST_SCHEMA.columns]


def _worker(job: tuple[int, int, str]) -> dict:
    """Generate and write case ``index`` of cohort ``seed`` (runs in a worker process)."""
    seed, index, out = job
    case = simulate_case(seed, index)
    files = write_case_images(out, case["row"]["patient_id"], case["images"], case["mask"])
    return {"row": {**case["row"], **files}, "truth": case["truth"]}


def main(argv: list[str] | None = None) -> int:
    """``python -m responseai.breast.phantom_alt --n N --seed S --out DIR [--workers W]``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = cohort_parser("python -m responseai.breast.phantom_alt",
                           "Third, independently coded breast DCE-MRI phantom (development set and training data).", 200, 21)
    parser.add_argument("--external", action="store_true",
                        help="mark every case external (split 'external'): a development set for models trained without this generator")
    args = parse_cohort_args(parser, argv)
    purpose = ("cross-generator development set for models trained without this generator" if args.external
               else "segmentation training data (mixing generators)")
    meta = dict(generator=GENERATOR, purpose=purpose,
                phases={"pre": 0, "post1": 90, "post2": "300-420"}, label_rule=LABEL_RULE,
                anatomy_codes={str(k): v for k, v in ANATOMY_CODES.items()},
                sites=[{**asdict(s), "direction": list(s.direction)} for s in SITES])
    manifest = write_cohort_files(args.out, args.n, args.seed, _worker, COLUMNS, meta, args.workers)
    if args.external:  # the images do not depend on the split: only the table changes
        manifest.assign(split="external", external=1).to_csv(args.out / "manifest.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
