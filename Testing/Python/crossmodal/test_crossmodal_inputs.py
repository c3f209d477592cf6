"""Bad inputs stop with a specific message; Macenko brings the sites' stains together."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.crossmodal.phantom import make_cohort
from responseai.crossmodal.preprocess import (
    UnknownDomainError, check_domain, check_mammogram, check_pathology, pathology_tensor, stain_normalise,
)
from responseai.errors import InvalidImageError

GREY = np.random.default_rng(0).random((64, 64)).astype(np.float32)
RGB = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("check, array, message", [
    (check_mammogram, RGB, "3 colour channels; a mammogram must be single-channel"),
    (check_pathology, GREY, "single-channel \\(grey\\); an H&E tile must be RGB"),
    (check_mammogram, np.full((64, 64), 7.0), "image is constant"),
    (check_pathology, np.full((64, 64, 3), 200, np.uint8), "image is constant"),
    (check_mammogram, np.where(GREY > 0.5, np.nan, GREY), "NaN or infinite"),
    (check_mammogram, GREY[:20, :20], "20×20 pixels, at least 32×32"),
    (check_mammogram, np.zeros((4, 64, 64)), "expected a 2D image"),
])
def test_bad_images_are_refused_with_what_is_wrong(check, array, message):
    with pytest.raises(InvalidImageError, match=message):
        check(array)


def test_unknown_domain_lists_the_known_ones():
    assert check_domain(None) is None and check_domain("siteB") == 1
    with pytest.raises(UnknownDomainError, match="unknown domain 'hospitalX'; known: siteA, siteB"):
        check_domain("hospitalX")


def test_macenko_reduces_the_colour_difference_between_sites():
    cohort = make_cohort(16, 0)
    raw = [cohort.pathology[cohort.domain == d].reshape(-1, 3).astype(float).mean(0) for d in (0, 3)]
    normed = [np.concatenate([stain_normalise(t).reshape(-1, 3) for t in cohort.pathology[cohort.domain == d]]).mean(0)
              for d in (0, 3)]
    assert np.abs(normed[0] - normed[1]).sum() < np.abs(raw[0] - raw[1]).sum()
    tensor = pathology_tensor(cohort.pathology[0], 32)
    assert tensor.shape == (3, 32, 32) and -1.01 <= float(tensor.min()) and float(tensor.max()) <= 1.01


def test_pathology_folder_without_tiles_is_refused(tmp_path):
    from responseai.crossmodal.preprocess import pathology_files
    from responseai.errors import InputFileError

    (tmp_path / "notes.txt").write_text("no tiles here", encoding="utf-8")
    with pytest.raises(InputFileError, match="holds no .png"):
        pathology_files(tmp_path)
