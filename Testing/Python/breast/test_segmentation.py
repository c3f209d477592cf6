"""Tumour segmentation: network, training (with resume), inference on the input grid, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from responseai.errors import InvalidImageError, MissingPhaseError, WeightsError
from responseai.breast.segmentation.model import DEFAULT_ARCHITECTURE, build_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny cohort and a 2-epoch model trained on it (seconds, not a useful model)."""
    from responseai.breast.phantom import write_cohort
    from training.breast_seg import main

    root = tmp_path_factory.mktemp("seg")
    write_cohort(root / "cohort", n=8, seed=24, workers=1)  # 5 train, 2 val, 1 external
    args = ["--manifest", str(root / "cohort" / "manifest.csv"), "--out", str(root / "run"),
            "--epochs", "2", "--steps", "2", "--batch-size", "2", "--patch", "16", "32", "32", "--threads", "1"]
    assert main(args) == 0
    return root, root / "run" / "breast_seg.safetensors"


def test_network_maps_four_channels_to_background_breast_tumour():
    model = build_model({"architecture": DEFAULT_ARCHITECTURE})
    out = model(torch.zeros(1, 4, 16, 32, 32))
    assert out.shape == (1, 3, 16, 32, 32)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


def test_the_breast_region_discards_a_stronger_larger_candidate_outside_it():
    """The heart enhances more and is larger than the tumour: inside-the-breast and probability decide."""
    from responseai.breast.segmentation.inference import breast_region, select_tumour

    shape = (20, 40, 60)
    probabilities = np.zeros((3, *shape), np.float32)
    left, right = _ball(shape, (10, 10, 15), 9), _ball(shape, (10, 10, 45), 9)
    heart = _ball(shape, (10, 32, 30), 7)
    tumour, weak = _ball(shape, (10, 10, 15), 3), _ball(shape, (10, 10, 47), 4)
    probabilities[1][left | right] = 0.9
    probabilities[2][heart] = 0.99  # the heart: biggest, most "tumour-like" enhancement, outside the breasts
    probabilities[2][weak] = 0.6  # a larger, weaker candidate in the other breast
    probabilities[2][tumour] = 0.95
    probabilities[0] = 1 - probabilities[1:].sum(0).clip(0, 1)
    region = breast_region(probabilities)
    assert region[10, 10, 15] and region[10, 10, 45] and not region[10, 32, 30]
    mask, n, discarded, confidence = select_tumour(probabilities[2], 0.5, region)
    assert n == 3 and discarded == 1 and confidence == pytest.approx(0.95)
    assert np.array_equal(mask.astype(bool), tumour)


def test_a_heart_touching_a_breast_stays_out_and_a_tumour_at_the_chest_wall_stays_in():
    """The region is the breast class: tumour-class voxels must not carry the heart into it."""
    from responseai.breast.segmentation.inference import breast_region, select_tumour

    shape = (20, 48, 64)
    probabilities = np.zeros((3, *shape), np.float32)
    breast = np.zeros(shape, bool)
    breast[2:18, 2:24, 4:60] = True  # both breasts as one slab, chest wall at y = 24
    heart = _ball(shape, (10, 36, 32), 12) & ~breast  # touches the breast's posterior face
    tumour = _ball(shape, (10, 21, 16), 5) & breast  # against the chest wall: half its rim is not breast
    probabilities[1][breast] = 0.9
    probabilities[2][heart] = 0.97
    probabilities[2][tumour] = 0.93
    probabilities[1][tumour] = 0.05
    probabilities[0] = 1 - probabilities[1:].sum(0).clip(0, 1)
    region = breast_region(probabilities)
    assert not region[heart].any()
    mask, n, discarded, confidence = select_tumour(probabilities[2], 0.5, region, spacing_xyz=(1.5, 1.5, 2.0))
    assert n == 2 and discarded == 1 and confidence == pytest.approx(0.93)
    assert np.array_equal(mask.astype(bool), tumour)


def test_the_candidate_confident_throughout_beats_a_saturated_peak():
    """Enhancing parenchyma can touch probability 1.0 in one spot; the tumour is confident everywhere."""
    from responseai.breast.segmentation.inference import select_tumour

    shape = (20, 40, 60)
    probability = np.zeros(shape, np.float32)
    tumour, parenchyma = _ball(shape, (10, 20, 15), 4), _ball(shape, (10, 20, 45), 6)
    probability[parenchyma] = 0.6
    probability[10, 20, 45] = 1.0
    probability[tumour] = 0.9
    mask, n, _, confidence = select_tumour(probability, 0.5, np.ones(shape, bool))
    assert n == 2 and confidence == pytest.approx(0.9)
    assert np.array_equal(mask.astype(bool), tumour)


def test_a_single_bright_voxel_is_a_speck_not_the_tumour():
    """One voxel at 0.99 out-scores a tumour at 0.9 on mean probability; it must not be chosen."""
    from responseai.breast.segmentation.inference import select_tumour

    shape = (20, 40, 60)
    probability = np.zeros(shape, np.float32)
    tumour = _ball(shape, (10, 20, 15), 4)
    probability[tumour] = 0.9
    probability[10, 20, 45] = 0.99
    mask, n, outside, _ = select_tumour(probability, 0.5, np.ones(shape, bool))
    assert n == 2 and outside == 0 and np.array_equal(mask.astype(bool), tumour)
    probability[tumour] = 0.0
    mask, n, outside, _ = select_tumour(probability, 0.5, np.ones(shape, bool))
    assert n == 1 and outside == 0 and not mask.any()  # only a speck: no tumour (EmptyMaskError upstream)


def test_holes_are_filled_as_monai_fills_them_on_the_whole_volume():
    """The bounding-box shortcut must give MONAI FillHoles' result: enclosed cavities filled (also
    through corner contacts), a cavity open to the volume's edge left alone."""
    from monai.transforms import FillHoles
    from scipy import ndimage

    from responseai.breast.segmentation.inference import fill_holes

    shape = (16, 24, 24)
    shell = _ball(shape, (8, 12, 12), 6) & ~_ball(shape, (8, 12, 12), 3)
    cup = shell.copy()
    cup[8:, 12, 12:] = False  # a channel from the cavity to the volume's face along x
    cup[8, 12:, 12] = False
    edge = np.zeros(shape, bool)
    edge[:, :5, :5] = True
    edge[:, :3, :3] = False  # a notch at the volume's corner: open, not a hole
    rng = np.random.default_rng(0)
    blobs = [ndimage.binary_opening(rng.random(shape) > 0.3) for _ in range(20)]
    for component in [shell, cup, edge, *blobs]:
        expected = np.asarray(FillHoles(applied_labels=[1])(torch.from_numpy(component[None].astype(np.uint8)))[0])
        assert np.array_equal(fill_holes(component), expected.astype(np.uint8))
    assert fill_holes(shell).sum() == _ball(shape, (8, 12, 12), 6).sum()
    assert not fill_holes(np.zeros(shape, bool)).any()
    for component in [shell, cup, edge, *blobs]:  # face connectivity: scipy's whole-volume result
        assert np.array_equal(fill_holes(component, connectivity=1), ndimage.binary_fill_holes(component))


def test_bpe_index_ignores_the_tumour_and_its_margin_exactly():
    """The box-limited dilation gives the whole-volume dilation's BPE index."""
    from scipy import ndimage

    from responseai.breast.segmentation.inference import bpe_index

    rng = np.random.default_rng(1)
    channels = rng.random((4, 20, 30, 30)).astype(np.float32) + 0.5
    region = np.zeros((20, 30, 30), bool)
    region[2:18, 3:27, 3:27] = True
    tumour = _ball((20, 30, 30), (10, 15, 6), 3).astype(np.uint8)  # near the region's edge
    channels[3][tumour > 0] = 50.0  # a tumour this bright would dominate the index if it were counted
    background = region & ~ndimage.binary_dilation(tumour > 0, iterations=5)
    expected = np.percentile(channels[3][background] / channels[0][background], 90) * 100
    assert bpe_index(channels, region, tumour) == pytest.approx(expected, rel=1e-6)


def test_no_breast_found_is_a_clear_error(monkeypatch, tmp_path: Path):
    import responseai.breast.segmentation.inference as seg
    from responseai.errors import AnatomyNotFoundError

    from test_breast_preprocess import _phases

    architecture = {**DEFAULT_ARCHITECTURE, "channels": [4, 8], "strides": [2]}
    card = {"architecture": architecture, "inputs": {"spacing_mm": [1.0, 1.0, 2.0], "patch_size": [8, 16, 16]},
            "threshold": 0.5}
    monkeypatch.setattr(seg, "load_segmentation_model", lambda path: (build_model(card), card))
    monkeypatch.setattr(seg, "predict_probabilities", lambda model, channels, patch, device=None:
                        np.stack([np.ones(channels.shape[1:]), np.zeros(channels.shape[1:]), np.zeros(channels.shape[1:])]))
    with pytest.raises(AnatomyNotFoundError, match="no breast tissue"):
        seg.segment_exam(_phases(), tmp_path / "unused.safetensors")


def test_training_writes_weights_card_and_resumes(trained):
    root, weights = trained
    card = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
    assert card["task"] == "segmentation" and card["classes"] == ["background", "breast", "tumour"]
    assert 0.0 <= card["metrics"]["val_dice"] <= 1.0 and card["training_data"]["n_train"] > 0
    from training.breast_seg import main

    args = ["--manifest", str(root / "cohort" / "manifest.csv"), "--out", str(root / "run"), "--epochs", "3",
            "--steps", "1", "--batch-size", "2", "--patch", "16", "32", "32", "--threads", "1", "--resume"]
    assert main(args) == 0
    state = torch.load(root / "run" / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert state["epoch"] == 3  # continued from epoch 2, not restarted


def test_mask_comes_back_on_the_input_grid_whatever_its_spacing(trained):
    from responseai.breast.segmentation.inference import segment_tumour
    from responseai.breast.phantom import SITES, generate_case

    _, weights = trained
    case = generate_case(21, 100, site=SITES[2])  # site C: 1.3 mm pixels, not the card's 1.5 mm
    mask = segment_tumour(case.phases, weights)
    assert mask.array.dtype == np.uint8 and mask.array.any()
    assert not mask.grid_differences(case.phases["post1"])


def test_bad_inputs_are_specific_errors(trained, tmp_path: Path):
    from responseai.breast.segmentation.inference import segment_tumour
    from responseai.breast.phantom import generate_case

    _, weights = trained
    case = generate_case(21, 101)
    with pytest.raises(MissingPhaseError, match="pre"):
        segment_tumour({"post1": case.phases["post1"]}, weights)
    broken = case.phases["pre"].array.astype(np.float32)
    broken[0, 0, 0] = np.nan
    with pytest.raises(InvalidImageError, match="NaN"):
        segment_tumour({**case.phases, "pre": case.phases["pre"].with_array(broken)}, weights)
    truncated = tmp_path / "breast_seg.safetensors"
    truncated.write_bytes(weights.read_bytes()[:1000])
    card_text = weights.with_suffix(".json").read_text(encoding="utf-8")
    truncated.with_suffix(".json").write_text(card_text, encoding="utf-8")
    with pytest.raises(WeightsError, match="sha256"):
        segment_tumour(case.phases, truncated)
    other = tmp_path / "other" / "breast_seg.safetensors"
    other.parent.mkdir()
    other.write_bytes(weights.read_bytes())
    card = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
    card["architecture"] = {**card["architecture"], "channels": [4, 8, 16, 32]}
    other.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(WeightsError, match="do not match"):
        segment_tumour(case.phases, other)


def test_model_is_loaded_once_per_file_version(trained):
    from responseai.breast.segmentation.inference import load_segmentation_model

    _, weights = trained
    first, card = load_segmentation_model(weights)
    second, _ = load_segmentation_model(str(weights))
    assert first is second and card["inputs"]["spacing_mm"] == [1.5, 1.5, 2.0]


def test_empty_prediction_is_an_error_not_an_empty_mask(trained, monkeypatch):
    import responseai.breast.segmentation.inference as seg
    from responseai.errors import EmptyMaskError
    from responseai.breast.phantom import generate_case

    _, weights = trained
    monkeypatch.setattr(seg, "predict_probabilities", lambda model, channels, patch, device=None: np.stack(
        [np.zeros(channels.shape[1:]), np.ones(channels.shape[1:]), np.zeros(channels.shape[1:])]))
    with pytest.raises(EmptyMaskError, match="no tumour"):
        seg.segment_tumour(generate_case(21, 102).phases, weights, device="cpu")


def test_evaluation_reports_dice_with_ci_and_writes_only_when_asked(trained, tmp_path: Path):
    from responseai.breast.segmentation.evaluation import evaluate_segmentation
    from responseai.io import read_image, write_image

    root, weights = trained
    manifest = root / "cohort" / "manifest.csv"
    result = evaluate_segmentation(manifest, weights, split="val", n_boot=50)
    dice = result["metrics"]["dice"]
    assert result["n_cases"] == 2 and len(result["per_case"]) == 2
    assert 0.0 <= dice["ci_low"] <= dice["value"] <= dice["ci_high"] <= 1.0
    assert not list(tmp_path.iterdir())
    evaluate_segmentation(manifest, weights, split="val", n_boot=50, out=tmp_path / "eval")
    saved = json.loads((tmp_path / "eval" / "segmentation.json").read_text(encoding="utf-8"))
    assert saved["metrics"]["dice"]["value"] == pytest.approx(dice["value"])
    assert (tmp_path / "eval" / "segmentation.md").read_text(encoding="utf-8").startswith("| cohort")
    for case in saved["per_case"]:  # every miss says which step lost the tumour
        assert (case["miss_reason"] is None) == case["found"]
        assert case["breast_region_on_heart_ml"] >= 0.0  # the phantom has anatomy maps
    assert saved["breast_region_on_heart_ml_mean"] >= 0.0
    assert sum(saved["misses"]["reasons"].values()) == sum(not case["found"] for case in saved["per_case"])
    assert not any(case["found"] and case["runner_up_found"] for case in saved["per_case"])  # a miss's measure only
    assert saved["misses"]["runner_up_is_the_tumour"] == sum(case["runner_up_found"] for case in saved["per_case"])
    for case in saved["per_case"]:  # volumes in ml on the user's grid: none without a mask
        assert case["reference_volume_ml"] > 0 and case["volume_ml"] >= 0
        assert case["volume_ml"] > 0 or not case["found"]
    assert saved["volume_errors"]["n_found"] == sum(case["found"] for case in saved["per_case"])
    assert saved["left_out_empty_reference"] == []
    # a reference mask that is empty (a tumour the field of view missed) has nothing to score: left out, by name
    rows = pd.read_csv(manifest)
    first = rows.index[rows["split"] == "val"][0]
    truth = read_image(manifest.parent / rows.loc[first, "mask"], "mask")
    write_image(truth.with_array(np.zeros_like(truth.array)), tmp_path / "empty.nrrd")
    rows.loc[first, "mask"] = str(tmp_path / "empty.nrrd")
    rows.to_csv(manifest.parent / "manifest-empty.csv", index=False)
    emptied = evaluate_segmentation(manifest.parent / "manifest-empty.csv", weights, split="val", n_boot=10)
    assert emptied["left_out_empty_reference"] == [rows.loc[first, "patient_id"]] and emptied["n_cases"] == 1
    assert np.isfinite(emptied["metrics"]["dice"]["value"])
    segmented = evaluate_segmentation(manifest, weights, split="val", n_boot=10, save_masks="auto")
    rows = pd.read_csv(segmented["segmented_manifest"])
    val = rows[rows["split"] == "val"]
    assert len(val) == sum(case["volume_ml"] > 0 for case in segmented["per_case"])
    assert all((manifest.parent / m).is_file() and m.startswith("auto/") for m in val["mask"])


def test_volume_errors_count_spills_and_shortfalls_of_found_tumours_only():
    from responseai.breast.segmentation.evaluation import volume_errors

    table = pd.DataFrame({"found": [True, True, True, False], "volume_ml": [5.0, 1.0, 2.0, 30.0],
                          "reference_volume_ml": [2.0, 4.0, 2.0, 2.0]})
    errors = volume_errors(table)
    assert errors == {"n_found": 3, "over_2x": 1, "under_half": 1, "median_ratio": 1.0}


def test_a_miss_is_attributed_to_the_step_that_lost_the_tumour():
    """Detector, size filter, breast region or selection rule: the evaluation says which one failed."""
    from responseai.breast.segmentation.evaluation import miss_reason

    shape = (20, 40, 60)
    reference = _ball(shape, (10, 20, 15), 3)
    region = _ball(shape, (10, 20, 15), 9) | _ball(shape, (10, 20, 45), 9)
    probability = np.zeros(shape, np.float32)
    assert miss_reason(probability, region, 0.5, reference) == "not detected"
    probability[10, 20, 15] = 0.9  # one voxel of it above the threshold
    assert miss_reason(probability, region, 0.5, reference) == "only specks"
    probability[reference] = 0.8
    probability[_ball(shape, (10, 20, 45), 3)] = 0.95  # a more confident candidate in the other breast
    assert miss_reason(probability, region, 0.5, reference) == "another candidate chosen"
    assert miss_reason(probability, ~region, 0.5, reference) == "outside the breast region"
    assert miss_reason(probability, None, 0.5, reference) == "another candidate chosen"


def _candidate_table(n_exams: int = 30, seed: int = 0):
    """Descriptors of synthetic exams: the tumour is larger and rounder; parenchyma is sometimes more probable."""
    import pandas as pd

    from responseai.breast.segmentation.candidates import FEATURES

    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_exams):
        for k in range(4):
            tumour = k == 0
            values = rng.normal(0, 1, len(FEATURES))
            values[FEATURES.index("log_volume_mm3")] += 3.0 if tumour else 0.0
            values[FEATURES.index("sphericity")] += 2.0 if tumour else 0.0
            p = rng.uniform(0.6, 0.9)
            values[FEATURES.index("mean_probability")] = p
            rows.append({"exam": f"e{e}", "tumour": tumour, "allowed": True, "mean_p": p,
                         **dict(zip(FEATURES, values, strict=True))})
    return pd.DataFrame(rows)


def test_the_ranker_learns_what_tells_the_tumour_apart_and_beats_mean_probability_out_of_fold():
    from responseai.breast.segmentation.candidates import FEATURES
    from training.breast_candidates import cross_validate, fit_ranker

    table = _candidate_table()
    scores = cross_validate(table)
    assert scores["exams"] == 30 and scores["ranker_chosen"] >= 27 > scores["mean_probability_chosen"]
    weights = dict(zip(FEATURES, fit_ranker(table).weights, strict=True))
    assert weights["log_volume_mm3"] > 0.5 and weights["sphericity"] > 0.5


def test_the_ranker_goes_into_the_card_and_inference_uses_it(trained, tmp_path: Path):
    import json as _json

    from responseai.breast.phantom import generate_case
    from responseai.breast.segmentation.inference import load_segmentation_model, segment_exam
    from responseai.errors import ResponseAIError, WeightsError
    from responseai.weights import card_path, sha256_of
    from training.breast_candidates import main

    _, weights = trained
    table = tmp_path / "candidates.csv"
    _candidate_table().assign(network_sha256=sha256_of(weights)).to_csv(table, index=False)
    out = tmp_path / "ranked" / "breast_seg.safetensors"
    assert main(["--manifest", "unused.csv", "--weights", str(weights), "--out", str(out), "--version", "9.9.0",
                 "--table", str(table)]) == 0
    card = _json.loads(card_path(out).read_text(encoding="utf-8"))
    assert card["version"] == "9.9.0" and card["sha256"] == sha256_of(out) == sha256_of(weights)
    assert card["candidate_ranker"]["training"]["cross_validation"]["exams"] == 30
    load_segmentation_model(out)  # the card with a ranker is a valid card
    phases = generate_case(24, 0).phases
    try:
        segment_exam(phases, out)
    except Exception as error:  # a 2-epoch network may find nothing; that must be the usual clear error
        assert type(error).__name__ == "EmptyMaskError"
    _candidate_table().assign(network_sha256="another").to_csv(table, index=False)
    with pytest.raises(ResponseAIError, match="another segmentation network"):
        main(["--manifest", "unused.csv", "--weights", str(weights), "--out", str(out), "--version", "9.9.1",
              "--table", str(table)])
    card["candidate_ranker"]["weights"] = card["candidate_ranker"]["weights"][:-1]
    card_path(out).write_text(_json.dumps(card), encoding="utf-8")
    with pytest.raises(WeightsError, match="candidate ranker"):
        segment_exam(phases, out)


def test_the_close_call_margin_catches_the_asked_share_of_wrong_choices(trained, tmp_path: Path):
    """Margins: the chosen candidate's lead over the runner-up; the card's close_margin is the smallest grid
    step under which the asked share of wrong choices falls, added to a kept ranker without changing it."""
    import json as _json

    import pandas as pd

    from responseai.breast.segmentation.candidates import FEATURES, CandidateRanker
    from responseai.errors import ResponseAIError
    from responseai.weights import card_path, copy_with_card, sha256_of
    from training.breast_candidates import choice_margins, choose_close_margin, main

    margins = pd.DataFrame({"exam": list("abcdef"), "right": [True, True, True, False, False, True],
                            "margin": [0.1, 2.0, 5.0, 0.3, 1.1, 0.9]})
    close = choose_close_margin(margins, catch=0.5)
    assert close["close_margin"] == 0.5 and (close["wrong_flagged"], close["flagged"]) == (1, 2)
    assert choose_close_margin(margins, catch=1.0)["close_margin"] == 1.25
    with pytest.raises(ResponseAIError, match="no wrong choice"):
        choose_close_margin(margins.assign(right=True), catch=0.8)
    table = _candidate_table()
    ranker = CandidateRanker(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), np.ones(len(FEATURES)))
    measured = choice_margins(table, ranker)  # an unfitted ranker: every feature weighs the same
    assert len(measured) == 30 and (measured["margin"] >= 0).all() and 0 < (~measured["right"]).sum() < 15
    _, weights = trained
    csv = tmp_path / "candidates.csv"
    table.assign(network_sha256=sha256_of(weights)).to_csv(csv, index=False)
    ranked, flagged = tmp_path / "ranked.safetensors", tmp_path / "flagged.safetensors"
    copy_with_card(weights, ranked, "segmentation", version="9.9.0", candidate_ranker=ranker.to_card())
    main(["--manifest", "unused.csv", "--weights", str(ranked), "--out", str(flagged), "--version", "9.9.1",
          "--table", str(csv), "--keep-ranker", "--close-catch", "0.8"])
    before, after = (_json.loads(card_path(w).read_text(encoding="utf-8"))["candidate_ranker"] for w in (ranked, flagged))
    assert after["weights"] == before["weights"] and after["close_margin"] > 0  # the same choices, now flagged
    assert after["close_margin_training"]["wrong_flagged"] >= 0.8 * after["close_margin_training"]["wrong_choices"]


def test_too_few_exams_for_the_ranker_is_a_clear_error():
    from responseai.errors import ResponseAIError
    from training.breast_candidates import cross_validate

    with pytest.raises(ResponseAIError, match="exams"):
        cross_validate(_candidate_table(n_exams=3))


def test_the_ranker_describes_real_exams_and_refuses_too_few(trained, tmp_path: Path):
    """The descriptors of a cohort are kept (in a folder made for them) even when it is too small to fit on."""
    import pandas as pd

    from responseai.breast.segmentation.candidates import FEATURES
    from responseai.errors import ResponseAIError
    from training.breast_candidates import main

    root, weights = trained
    two = root / "cohort" / "two-exams.csv"  # beside the cohort's images: its relative paths still hold
    pd.read_csv(root / "cohort" / "manifest.csv").query("split == 'train'").head(2).to_csv(two, index=False)
    table = tmp_path / "not-yet" / "candidates.csv"
    with pytest.raises(ResponseAIError, match="exams"):
        main(["--manifest", str(two), "--weights", str(weights),
              "--out", str(tmp_path / "out.safetensors"), "--version", "0.0.1", "--table", str(table)])
    described = pd.read_csv(table)
    assert set(FEATURES) <= set(described.columns) and described["exam"].str.startswith("cohort/").all()
    assert described[list(FEATURES)].notna().all().all()
    assert not (tmp_path / "out.safetensors").exists()


def test_the_segmented_manifest_points_at_the_model_masks_and_leaves_out_exams_without_one(tmp_path: Path):
    """``--save-masks``: the pCR evaluation can then run end to end on the masks a user would get."""
    from responseai.breast.segmentation.evaluation import write_segmented_manifest
    from responseai.image import Image
    from responseai.io import read_image

    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"patient_id": ["a", "b", "c"], "split": ["external", "external", "train"],
                  "mask": ["images/a.nrrd", "images/b.nrrd", "images/c.nrrd"]}).to_csv(manifest, index=False)
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[1:3, 2:4, 2:5] = 1
    image = Image(mask, spacing=(0.8, 0.9, 2.0), origin=(1.0, -2.0, 3.0))
    path = write_segmented_manifest(manifest, "external", {"a": image}, "seg270")
    written = pd.read_csv(path)
    assert path == tmp_path / "manifest-seg270.csv"
    assert written["patient_id"].tolist() == ["a", "c"]  # b: no mask found, no pCR a user could get
    assert written["mask"].tolist() == ["seg270/a.nrrd", "images/c.nrrd"]  # other splits as they were
    back = read_image(tmp_path / "seg270" / "a.nrrd", "mask")
    np.testing.assert_array_equal(back.array, mask)
    assert back.spacing == pytest.approx(image.spacing) and back.origin == pytest.approx(image.origin)
    with pytest.raises(ValueError, match="plain name"):
        write_segmented_manifest(manifest, "external", {"a": image}, "../elsewhere")
