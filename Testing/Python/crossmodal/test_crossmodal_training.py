"""``python -m training.train crossmodal`` (from a synth manifest) writes weights + card that inference loads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from responseai.crossmodal.inference import load_crossmodal
from responseai.crossmodal.phantom import make_cohort, read_cohort, write_cohort
from responseai.errors import InputFileError
from training import train


def test_manifest_round_trip_and_training_entry(tmp_path):
    cohort = make_cohort(40, 0)
    manifest = write_cohort(cohort, tmp_path / "cohort")
    back = read_cohort(manifest)
    assert np.array_equal(back.label, cohort.label) and np.array_equal(back.mask, cohort.mask)
    assert np.array_equal(back.pathology, cohort.pathology) and np.abs(back.mammogram - cohort.mammogram).max() < 1e-4
    out = tmp_path / "run"
    rc = train.main(["crossmodal", "--manifest", str(manifest), "--out", str(out), "--epochs", "1", "--batch-size", "16"])
    assert rc == 0
    card = json.loads((out / "crossmodal.json").read_text(encoding="utf-8"))
    assert card["training_data"]["splits"] == {"train": 32, "val": 8} and "ece" in card["metrics"]["val"]
    assert card["architecture"]["adapter_fraction_of_encoder"] < 0.05
    model, loaded = load_crossmodal(out / "crossmodal.safetensors")
    assert loaded["sha256"] == card["sha256"] and model.config.image_size == 64


def test_manifest_with_a_missing_file_names_it(tmp_path):
    manifest = write_cohort(make_cohort(2, 0), tmp_path)
    (tmp_path / "cm0001_mask.png").unlink()
    with pytest.raises(InputFileError, match="patient cm0001: mask file .* not found"):
        read_cohort(manifest)
