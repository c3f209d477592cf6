"""Phantom exams given a report's three diameters: measured on the true mask, with a reader's error."""

import numpy as np
import pandas as pd
import pytest

from responseai.breast.segmentation.extent import ellipsoid_volume_ml
from responseai.image import Image
from responseai.io import write_image
from training import report_diameters


def test_the_diameters_manifest_and_the_limits(tmp_path, caplog):
    z, y, x = np.mgrid[:30, :60, :60].astype(float)
    rows = []
    for i, (a, b, c) in enumerate([(20, 10, 6), (12, 12, 12), (16, 8, 8)]):
        ellipsoid = (((x - 30) / a) ** 2 + ((y - 30) / b) ** 2 + ((z - 15) / c) ** 2 <= 1).astype(np.uint8)
        write_image(Image(ellipsoid, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), tmp_path / f"m{i}.nrrd")
        rows.append({"patient_id": f"P{i}", "mask": f"m{i}.nrrd", "tumour_size_mm": 99.0})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    caplog.set_level("INFO")
    assert report_diameters.main(["--manifest", str(tmp_path / "manifest.csv"), "--write", "--limits"]) == 0
    written = pd.read_csv(tmp_path / report_diameters.OUTPUT_NAME)
    sizes = written[["tumour_size_mm", "tumour_size_2_mm", "tumour_size_3_mm"]].to_numpy()
    assert (np.diff(sizes, axis=1) <= 0).all()  # largest first, whatever the reader's error did
    np.testing.assert_allclose(sizes[0], [40, 20, 12], rtol=0.3)  # the true diameters within the ± 10 % error
    again = report_diameters.measure(tmp_path / "manifest.csv")
    np.testing.assert_array_equal(again["tumour_size_mm"], written["tumour_size_mm"])  # seeded by the patient id
    fill = again["_fill"].to_numpy()
    true_ml = 4 / 3 * np.pi * 20 * 10 * 6 / 1000
    assert fill[0] == pytest.approx(true_ml / ellipsoid_volume_ml(*sizes[0]), rel=0.05)
    assert "limits" in caplog.text


def test_the_side_manifests_name_the_true_tumour_breast(tmp_path):
    """World x > 0 is the patient's left: a mask at index x 40–50 of a grid starting at x = -30 mm is on the left;
    mirrored (RAS-like direction), the same voxels are on the right."""
    mask = np.zeros((10, 20, 60), np.uint8)
    mask[3:7, 5:15, 40:50] = 1
    write_image(Image(mask, (1.0, 1.0, 1.0), (-30.0, 0.0, 0.0), np.eye(3)), tmp_path / "l.nrrd")
    write_image(Image(mask, (1.0, 1.0, 1.0), (30.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0])), tmp_path / "r.nrrd")
    # a phantom tumour the field of view missed: nothing to measure, no side (the run goes on)
    write_image(Image(np.zeros_like(mask), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), tmp_path / "e.nrrd")
    pd.DataFrame({"patient_id": ["L", "R", "E"], "mask": ["l.nrrd", "r.nrrd", "e.nrrd"],
                  "tumour_size_mm": [10.0, 10.0, 10.0]}).to_csv(tmp_path / "manifest.csv", index=False)
    assert report_diameters.main(["--manifest", str(tmp_path / "manifest.csv"), "--write-side", "--limits"]) == 0
    one_size, diameters = (pd.read_csv(tmp_path / name) for name in report_diameters.SIDE_NAMES)
    assert list(one_size["laterality"][:2]) == ["left", "right"] == list(diameters["laterality"][:2])
    assert pd.isna(one_size["laterality"][2]) and diameters.iloc[2][["tumour_size_mm", "tumour_size_3_mm"]].isna().all()
    assert list(one_size["tumour_size_mm"]) == [10.0, 10.0, 10.0] and "tumour_size_3_mm" in diameters
    wrong = pd.read_csv(tmp_path / report_diameters.WRONG_SIDE_NAME)  # a form typed wrong: the other breast
    assert list(wrong["laterality"][:2]) == ["right", "left"] and pd.isna(wrong["laterality"][2])
    assert not (tmp_path / report_diameters.OUTPUT_NAME).exists()  # --write-side writes only its own three
