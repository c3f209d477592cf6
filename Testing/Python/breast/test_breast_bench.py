"""The benchmark's large-exam grid: the same field of view and orientation, the requested size, the content kept."""

from __future__ import annotations

import numpy as np

from responseai.breast.bench import on_grid
from responseai.image import Image


def test_on_grid_keeps_the_field_of_view_and_the_content():
    rng = np.random.default_rng(0)
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # a sagittal grid
    array = np.zeros((10, 20, 30), np.float32)
    array[4:6, 8:12, 10:20] = 100 + rng.normal(0, 1, (2, 4, 10))
    phases = {name: Image(array * (k + 1), (1.5, 1.2, 3.0), (10.0, -20.0, 5.0), direction)
              for k, name in enumerate(("pre", "post1"))}
    big = on_grid(phases, (20, 40, 60))
    for name, image in big.items():
        assert image.shape == (20, 40, 60) and image.origin == phases[name].origin
        np.testing.assert_allclose(np.asarray(image.spacing) * (60, 40, 20), np.asarray(phases[name].spacing) * (30, 20, 10))
        np.testing.assert_allclose(image.direction, direction)
        assert abs(image.array.sum() * np.prod(image.spacing) - phases[name].array.sum() * np.prod(phases[name].spacing)) \
            < 0.1 * phases[name].array.sum() * np.prod(phases[name].spacing)  # its content kept (integral within 10 %)
