"""One patient end to end through ``main(argv)``: outputs, one-modality cases, report, real images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from responseai.crossmodal import inference
from responseai.crossmodal.constants import CLASSES, TOP_K
from responseai.crossmodal.phantom import make_cohort
from responseai.crossmodal.report import crossmodal_report_from_prediction
from responseai.resources import model_path


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cm-case")
    cohort = make_cohort(4, 0)
    i = int(np.nonzero(cohort.label == CLASSES.index("invasive"))[0][0])
    PILImage.fromarray((cohort.mammogram[i] * 65535).astype(np.uint16)).save(folder / "mammo.png")
    tiles = folder / "tiles"
    tiles.mkdir()
    for k in range(2):
        PILImage.fromarray(cohort.pathology[(i + k) % 4]).save(tiles / f"tile{k}.png")
    return folder


def test_predict_writes_everything_and_the_report(case_files, tiny_weights, tmp_path):
    out = tmp_path / "pred"
    rc = inference.main(["--mammogram", str(case_files / "mammo.png"), "--pathology", str(case_files / "tiles"),
                         "--weights", str(tiny_weights), "--domain", "siteA", "--out", str(out)])
    assert rc == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["family"] == "crossmodal" and record["modalities_used"] == ["mammogram", "pathology"]
    assert abs(sum(record["class_probabilities"].values()) - 1) < 1e-5 and record["missing_modality"] is None
    assert len(record["evidence"]) == TOP_K and all((out / e["file"]).is_file() for e in record["evidence"])
    assert record["conclusion"].startswith(record["predicted_class"].replace("_", " "))
    import SimpleITK as sitk
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "heatmap.nrrd")))
    assert array.shape[-2:] == (64, 64) and 0 <= array.min() and array.max() <= 1.0001
    assert (out / "heatmap.png").is_file() and (out / "model_card.json").is_file()
    files = crossmodal_report_from_prediction(out, tmp_path / "report")
    assert files["pdf"].stat().st_size > 1000
    report = json.loads(files["json"].read_text(encoding="utf-8"))
    assert report["report_type"] == "crossmodal" and {i["key"] for i in report["images"]} == {"heatmap", "evidence"}


@pytest.mark.parametrize("given", ["mammogram", "pathology"])
def test_one_modality_is_said_clearly(case_files, tiny_weights, tmp_path, given):
    args = {"mammogram": ["--mammogram", str(case_files / "mammo.png")],
            "pathology": ["--pathology", str(case_files / "tiles" / "tile0.png")]}[given]
    out = tmp_path / given
    assert inference.main([*args, "--weights", str(tiny_weights), "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["modalities_used"] == [given] and record["missing_modality"] != given
    assert record["evidence"] == [] and record["heatmap"] is None
    assert any(f"only the {given} was given" in note for note in record["notes"])


def test_wrong_inputs_fail_with_exit_2_and_leave_nothing(case_files, tiny_weights, tmp_path, caplog):
    out = tmp_path / "bad"
    rc = inference.main(["--mammogram", str(case_files / "tiles" / "tile0.png"), "--weights", str(tiny_weights),
                         "--out", str(out)])
    assert rc == 2 and not out.exists() and "single-channel" in caplog.text
    assert inference.main(["--pathology", str(case_files / "mammo.png"), "--weights", str(tiny_weights),
                           "--out", str(out)]) == 2 and "must be RGB" in caplog.text
    assert inference.main(["--mammogram", str(case_files / "mammo.png"), "--domain", "elsewhere",
                           "--weights", str(tiny_weights), "--out", str(out)]) == 2 and "unknown domain" in caplog.text
    assert inference.main(["--weights", str(tiny_weights), "--out", str(out)]) == 2 and not out.exists()


def test_real_ihc_tile_from_scikit_image_runs(tiny_weights, tmp_path):
    """Smoke test on a real stained tissue image shipped in scikit-image (IHC, not H&E: no accuracy claim)."""
    import skimage

    ihc = Path(skimage.__file__).parent / "data" / "ihc.png"
    tile = np.array(PILImage.open(ihc).convert("RGB"))[:256, :256]
    result = inference.predict_crossmodal(None, [tile], ["ihc.png"], tiny_weights)
    assert result.modalities_used == ["pathology"] and np.isfinite(list(result.class_probabilities.values())).all()


@pytest.mark.skipif(not model_path("crossmodal").is_file(), reason="shipped weights not built yet")
def test_shipped_weights_run_on_a_phantom_case(case_files, tmp_path):
    out = tmp_path / "shipped"
    assert inference.main(["--mammogram", str(case_files / "mammo.png"), "--pathology", str(case_files / "tiles"),
                           "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text(encoding="utf-8"))["model"]["name"] == "crossmodal-vit-adapters"
