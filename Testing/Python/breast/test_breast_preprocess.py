"""Breast preprocessing: the canonical grid for every orientation, and phases no model should read."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.breast.preprocess import canonical_phases, check_phases
from responseai.errors import InvalidImageError
from responseai.image import Image
from responseai.io import resample_to


def _rotation(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


DIRECTIONS = {
    "LPS": np.eye(3),
    "RAS-stored": np.diag([-1.0, -1.0, 1.0]),
    "LPI": np.diag([1.0, 1.0, -1.0]),
    "sagittal": np.array([[0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0]]),  # i → P, j → I, k → L
    "oblique": _rotation(12) @ np.diag([1.0, 1.0, 1.0]),
}


def _blob(direction: np.ndarray) -> Image:
    """A smooth bright ball on a 2×1×1.5 mm grid of the given direction, centred at world (10, -20, 5)."""
    shape, spacing = (30, 40, 36), (1.0, 1.5, 2.0)
    origin = np.array([10.0, -20.0, 5.0]) - direction @ (np.array(shape[::-1]) / 2 * np.array(spacing))
    k, j, i = np.indices(shape)
    world = (direction @ (np.stack([i, j, k], -1)[..., None] * np.array(spacing)[:, None]))[..., 0] + origin
    r2 = ((world - [10.0, -20.0, 5.0]) ** 2).sum(-1)
    return Image((1000 * np.exp(-r2 / (2 * 9.0**2))).astype(np.float32), spacing, tuple(origin), direction)


@pytest.mark.parametrize("name", DIRECTIONS)
def test_every_orientation_maps_to_the_same_canonical_anatomy_and_back(name: str):
    image = _blob(DIRECTIONS[name])
    phases, grid = canonical_phases({"post1": image}, (1.5, 1.5, 1.5))
    canonical = phases["post1"]
    assert np.allclose(canonical.direction, np.eye(3)) and canonical.spacing == (1.5, 1.5, 1.5)
    # the ball's centre of mass is at the same world point whatever the stored orientation
    k, j, i = np.indices(canonical.shape)
    weights = canonical.array / canonical.array.sum()
    centre = np.array([(weights * i).sum(), (weights * j).sum(), (weights * k).sum()]) * 1.5 + canonical.origin
    assert np.allclose(centre, [10.0, -20.0, 5.0], atol=0.5)
    # and a map made on the canonical grid lands exactly back on the user's grid
    back = resample_to(canonical, image)
    inside = image.array > 200
    assert np.abs(back.array[inside] - image.array[inside]).mean() < 0.02 * image.array.max()


def _phases() -> dict[str, Image]:
    rng = np.random.default_rng(0)
    pre = Image(rng.normal(100, 5, (8, 20, 20)).astype(np.float32), (1.0, 1.0, 2.0))
    post = pre.array.copy()
    post[3:5, 8:12, 8:12] += 80  # an enhancing lesion
    return {"pre": pre, "post1": pre.with_array(post)}


def test_a_constant_phase_is_refused():
    phases = _phases()
    phases["pre"] = phases["pre"].with_array(np.zeros(phases["pre"].shape, np.float32))
    with pytest.raises(InvalidImageError, match="phase pre: every voxel has the value 0"):
        check_phases(phases)


def test_a_post_contrast_phase_without_enhancement_is_refused():
    phases = _phases()
    with pytest.raises(InvalidImageError, match="post1 shows no enhancement over pre"):
        check_phases({"pre": phases["pre"], "post1": phases["pre"]})
    assert set(check_phases(phases)) == {"pre", "post1"}


def test_checked_phases_are_not_checked_again():
    """Segmentation and pCR re-enter check_phases with the case's phases: the work is done once."""
    checked = check_phases(_phases())
    assert check_phases(checked) is checked
    assert check_phases(dict(checked)) is not checked  # a plain mapping is checked again
