"""The paired phantom: deterministic, labelled as its rule says, four sites that look different."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.crossmodal.constants import CLASSES, DOMAINS, NO_GRADE
from responseai.crossmodal.phantom import generate_case, make_cohort, write_cohort


def test_cohort_is_deterministic_balanced_and_paired():
    a, b = make_cohort(24, 3), make_cohort(24, 3)
    assert np.array_equal(a.mammogram, b.mammogram) and np.array_equal(a.pathology, b.pathology)
    assert a.mammogram.shape == (24, 64, 64) and a.pathology.shape == (24, 64, 64, 3) and a.pathology.dtype == np.uint8
    assert np.bincount(a.label, minlength=4).tolist() == [6, 6, 6, 6]
    assert set(a.domain.tolist()) == set(range(len(DOMAINS)))
    malignant = np.isin(a.label, [CLASSES.index("in_situ"), CLASSES.index("invasive")])
    assert (a.grade[~malignant] == NO_GRADE).all() and (a.grade[malignant] >= 0).all()


def test_masks_and_boxes_follow_the_class():
    cohort = make_cohort(16, 0)
    for i in range(len(cohort)):
        rows, cols = np.nonzero(cohort.mask[i])
        if CLASSES[cohort.label[i]] == "normal":
            assert len(rows) == 0 and (cohort.box[i] == -1).all()
        else:
            assert cohort.box[i].tolist() == [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]


def test_sites_change_the_look_not_the_tissue():
    """Same seed / index / class rendered at two sites: same lesion mask, different pixels and stain colour."""
    a, b = generate_case(0, 5, 3, 2, 0), generate_case(0, 5, 3, 2, 3)
    assert np.array_equal(a["mask"], b["mask"])
    assert np.abs(a["mammogram"] - b["mammogram"]).mean() > 0.02
    assert np.abs(a["pathology"].astype(float).mean((0, 1)) - b["pathology"].astype(float).mean((0, 1))).max() > 5


def test_write_cohort_manifest(tmp_path):
    manifest = write_cohort(make_cohort(4, 1), tmp_path)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("patient,mammogram,pathology,mask,class,grade,domain,box") and len(lines) == 5
    assert (tmp_path / "cm0000_pathology.png").is_file()


@pytest.mark.parametrize("box, message", [("10 10 80 20", "outside"), ("5 5 5 9", "empty"), ("1 2 3", "four integers")])
def test_a_box_outside_the_image_is_refused_naming_the_patient(tmp_path, box, message):
    from responseai.crossmodal.phantom import read_cohort
    from responseai.errors import InputFileError

    manifest = write_cohort(make_cohort(2, 1), tmp_path)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    fields[-1] = box
    manifest.write_text("\n".join([lines[0], ",".join(fields), lines[2]]) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=f"patient {fields[0]}: box .*{message}"):
        read_cohort(manifest)
