"""A voxel array that never travels without its geometry.

Conventions (the same as SimpleITK, so conversion is loss-free):
- ``array`` is indexed ``[k, j, i]`` (slice, row, column), i.e. z, y, x;
- ``spacing`` and ``origin`` are given in ``(x, y, z)`` order, millimetres, LPS world frame;
- ``direction`` is the 3×3 matrix whose columns are the i, j, k axes in LPS.

Slicer works in RAS. :meth:`Image.ijk_to_ras` gives the 4×4 matrix a
``vtkMRMLScalarVolumeNode`` needs, and :meth:`Image.from_ijk_to_ras` undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from responseai.errors import InvalidImageError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
GEOMETRY_TOLERANCE = 1e-4  # mm and direction cosines; DICOM stores ~6 significant digits


@dataclass(frozen=True)
class Image:
    """A 3D (or 4D with trailing components) image with its physical geometry."""

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=float).reshape(3, 3))
        if len(self.spacing) != 3 or len(self.origin) != 3:
            raise InvalidImageError("spacing and origin must have 3 components (x, y, z)")
        if any(s <= 0 for s in self.spacing):
            raise InvalidImageError(f"spacing must be positive, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid size in array order (z, y, x)."""
        return tuple(int(n) for n in self.array.shape[:3])

    @property
    def voxel_volume_ml(self) -> float:
        """One voxel's volume in millilitres (mm³ / 1000): every volume a report states comes from here."""
        return float(np.prod(self.spacing)) / 1000.0

    def volume_ml(self, mask: np.ndarray | None = None) -> float:
        """Volume of the non-zero voxels of ``mask`` (default: this image's own array) on this grid, in ml."""
        return float(np.count_nonzero(self.array if mask is None else mask)) * self.voxel_volume_ml

    def with_array(self, array: np.ndarray) -> "Image":
        """The same grid carrying other voxel values (a mask, a heatmap, a resampled copy)."""
        if array.shape[:3] != self.shape:
            raise InvalidImageError(f"array shape {array.shape[:3]} does not match grid {self.shape}")
        return Image(array, self.spacing, self.origin, self.direction)

    def ijk_to_ras(self) -> np.ndarray:
        """4×4 homogeneous IJK→RAS matrix, as Slicer's volume nodes store it."""
        matrix = np.eye(4)
        matrix[:3, :3] = LPS_TO_RAS @ self.direction @ np.diag(self.spacing)
        matrix[:3, 3] = LPS_TO_RAS @ np.asarray(self.origin)
        return matrix

    @classmethod
    def from_ijk_to_ras(cls, array: np.ndarray, matrix: np.ndarray) -> "Image":
        """Build an image from a Slicer-style IJK→RAS matrix (inverse of :meth:`ijk_to_ras`)."""
        matrix = np.asarray(matrix, dtype=float)
        lps = LPS_TO_RAS @ matrix[:3, :3]
        spacing = np.linalg.norm(lps, axis=0)
        return cls(array, tuple(spacing), tuple(LPS_TO_RAS @ matrix[:3, 3]), lps / spacing)

    def physical_extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box (min, max corner) of the voxel centres."""
        nz, ny, nx = self.shape
        corners = np.array([[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], float)
        points = corners * np.asarray(self.spacing) @ self.direction.T + np.asarray(self.origin)
        return points.min(axis=0), points.max(axis=0)

    def grid_differences(self, other: "Image", tolerance: float = GEOMETRY_TOLERANCE) -> list[str]:
        """Human-readable list of the grid fields that differ from ``other`` (empty if none)."""
        diffs = []
        if self.shape != other.shape:
            diffs.append(f"size {self.shape[::-1]} vs {other.shape[::-1]} (x, y, z)")
        for name in ("spacing", "origin"):
            mine, theirs = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if not np.allclose(mine, theirs, atol=tolerance, rtol=0):
                diffs.append(f"{name} {_fmt(mine)} vs {_fmt(theirs)}")
        if not np.allclose(self.direction, other.direction, atol=tolerance, rtol=0):
            diffs.append(f"direction {_fmt(self.direction.ravel())} vs {_fmt(other.direction.ravel())}")
        return diffs


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in np.ravel(values)) + ")"
