"""pCR model: architecture, the three training steps, DDP sync, weights round trip, input errors.

Runs on a 12-case phantom cohort with a small crop at coarse spacing, one epoch per step, so
the whole file stays well under two minutes on two CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from responseai.errors import (
    ClinicalValueError,
    EmptyMaskError,
    GeometryMismatchError,
    InvalidImageError,
    MissingPhaseError,
    ResponseAIError,
    WeightsError,
)
from responseai.explain import mass_in_mask, pointing_game
from responseai.image import Image
from responseai.breast.pcr.inference import predict_pcr
from responseai.manifest import ManifestError
from responseai.metrics import youden_threshold
from responseai.breast.pcr.model import build_model, guidance_loss, inherit_weights, make_config, mask_target
from responseai.breast.phantom import write_cohort
from responseai.weights import load_model
from training import breast_pcr as train_pcr

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--crop-size", "16", "32", "32", "--spacing", "4", "4", "4", "--batch-size", "4", "--quiet", "--threads", "1"]
N_CLIN = 40


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    """12 phantom cases; splits rewritten so train and val both hold both classes."""
    out = tmp_path_factory.mktemp("pcr_cohort")
    frame = write_cohort(out, n=12, seed=7, workers=1)
    order = np.argsort(-frame["pcr"].to_numpy(), kind="stable")  # positives first
    split = np.array(["train"] * len(frame), dtype=object)
    split[order[[1, -1, -2]]] = "val"  # one positive, two negatives in val
    split[order[-3]] = "external"  # an external row that must never be read
    frame["split"] = split
    if frame["pcr"].sum() < 2:  # guarantee two positives whatever the phantom drew
        frame.loc[order[:2], "pcr"] = 1
    frame.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


def _train(manifest: Path, out: Path, *extra: str) -> Path:
    train_pcr.main(["--manifest", str(manifest), "--out", str(out), *TINY, *extra])
    return out


@pytest.fixture(scope="module")
def stepwise_run(tiny_cohort, tmp_path_factory) -> Path:
    return _train(tiny_cohort, tmp_path_factory.mktemp("stepwise"), "--epochs", "1", "1", "1")


@pytest.fixture(scope="module")
def phantom_inputs(tiny_cohort):
    """Phases, mask and clinical record of one external row (as a user would supply them)."""
    from responseai.io import read_image
    from responseai.breast.constants import BREAST_SCHEMA
    from responseai.clinical import records_from_frame

    frame = pd.read_csv(tiny_cohort)
    row = frame[frame["split"] == "external"].iloc[0]
    phases = {p: read_image(tiny_cohort.parent / row[p], p) for p in ("pre", "post1", "post2")}
    mask = read_image(tiny_cohort.parent / row["mask"], "mask")
    clinical = records_from_frame(frame[frame["split"] == "external"].iloc[:1], BREAST_SCHEMA)[0]
    return phases, mask, clinical


# --- architecture ------------------------------------------------------------------------------


@pytest.mark.parametrize("attention,clinical", [(False, False), (True, False), (True, True)])
def test_forward_shapes_and_attention_is_a_distribution(attention, clinical):
    model = build_model(make_config(attention=attention, clinical=clinical, n_clinical=N_CLIN if clinical else 0,
                                    crop_size=[16, 32, 32]))
    image = torch.randn(3, 4, 16, 32, 32)
    out = model.forward_all(image, torch.randn(3, N_CLIN) if clinical else None)
    assert out.logit.shape == (3,)
    assert out.attention.shape == (3, 4, 8, 8)  # strides 2, 2, 1
    assert torch.allclose(out.attention.flatten(1).sum(1), torch.ones(3), atol=1e-5)
    assert out.attention.min() >= 0 and out.attention.max() <= 1
    assert model(image, torch.randn(3, N_CLIN) if clinical else None).shape == (3, 1)


def test_a_new_step_starts_exactly_where_the_previous_ended():
    """Zero-initialised attention = GAP, zero-initialised fusion = image head: outputs unchanged."""
    torch.manual_seed(0)
    image, clinical = torch.randn(2, 4, 16, 32, 32), torch.randn(2, N_CLIN)
    step1 = build_model(make_config(attention=False, clinical=False)).eval()
    with torch.no_grad():  # make step 1 non-trivial
        for p in step1.parameters():
            p.add_(0.05 * torch.randn_like(p))
    step2 = build_model(make_config(attention=True, clinical=False)).eval()
    assert inherit_weights(step2, step1.state_dict()) == ["attention.score.weight", "attention.score.bias"]
    step3 = build_model(make_config(attention=True, clinical=True, n_clinical=N_CLIN)).eval()
    new = inherit_weights(step3, step2.state_dict())
    assert new and all(k.split(".")[0] in ("clinical_branch", "image_proj", "fusion") for k in new)
    with torch.no_grad():
        l1, l2, l3 = step1(image), step2(image), step3(image, clinical)
    assert torch.allclose(l1, l2, atol=1e-6) and torch.allclose(l2, l3, atol=1e-6)
    with pytest.raises(ValueError, match="lacks"):
        inherit_weights(step1, step3.state_dict())


def test_guidance_loss_is_zero_on_the_mask_and_positive_off_it():
    mask = torch.zeros(1, 16, 32, 32)
    mask[0, 4:8, 8:16, 8:16] = 1
    target = mask_target(mask, (4, 8, 8))
    assert torch.isclose(target.sum(), torch.tensor(1.0))
    assert guidance_loss(target, target) < 1e-5
    uniform = torch.full_like(target, 1 / target.numel())
    assert guidance_loss(uniform, target) > 0.5


def test_explanation_scores():
    mask = np.zeros((4, 4, 4), np.uint8)
    mask[1:3, 1:3, 1:3] = 1
    heat = np.zeros((4, 4, 4))
    heat[1, 1, 1], heat[0, 0, 0] = 3.0, 1.0
    assert mass_in_mask(heat, mask) == pytest.approx(0.75)
    assert pointing_game(heat, mask)
    assert not pointing_game(np.ones((4, 4, 4)), mask)  # a flat map points nowhere


def test_the_radiomics_term_is_standardised_clipped_and_required():
    """Kinetic features enter as a linear term on training-standardised values, clipped at ±5 SD, so a
    scanner whose washout is off the training scale cannot swing the probability without bound."""
    model = build_model(make_config(attention=False, clinical=False, radiomics=6, crop_size=[16, 32, 32])).eval()
    model.set_radiomics_statistics(np.array([[0.0] * 6, [2.0] * 6], np.float32))  # mean 1, SD 1
    image = torch.randn(1, 4, 16, 32, 32)
    with torch.no_grad():
        model.radiomics_head.weight.fill_(1.0)
        at_five = model(image, None, torch.full((1, 6), 6.0))
        far_out = model(image, None, torch.full((1, 6), 600.0))
        at_mean = model(image, None, torch.ones(1, 6))
    assert torch.allclose(at_five, far_out) and torch.allclose(at_five - at_mean, torch.tensor([[30.0]]))
    with pytest.raises(ValueError, match="kinetic features"):
        model(image)


# --- training -----------------------------------------------------------------------------------


def test_three_steps_run_and_leave_a_loadable_model_each(stepwise_run: Path):
    cards = {tag: json.loads((stepwise_run / f"breast_pcr_{tag}.json").read_text()) for tag in ("step1", "step12", "step123")}
    assert [s["name"] for s in cards["step123"]["training"]["steps"]] == ["global", "attention", "clinical"]
    assert not cards["step1"]["architecture"]["attention"] and not cards["step1"]["architecture"]["clinical"]
    assert cards["step12"]["architecture"]["attention"] and not cards["step12"]["architecture"]["clinical"]
    assert cards["step123"]["architecture"]["clinical"]
    assert cards["step123"]["training"]["steps"][2]["encoder_lr_factor"] < 1
    final = json.loads((stepwise_run / "breast_pcr.json").read_text())
    assert final["sha256"] == cards["step123"]["sha256"]
    for key in ("threshold", "classes", "inputs", "preprocessing", "metrics"):
        assert key in final
    assert final["classes"] == ["no pCR", "pCR"]
    assert "clinical_encoder" in final["preprocessing"]
    w1 = load_file(str(stepwise_run / "breast_pcr_step1.safetensors"))
    w2 = load_file(str(stepwise_run / "breast_pcr_step12.safetensors"))
    assert set(w1) < set(w2)  # step 2 adds the attention module, keeps the encoder
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)  # ... and trains it further


def test_the_clinical_step_keeps_its_best_val_epoch(stepwise_run: Path):
    """Step 3 is judged on val before its first epoch and after each; the shipped weights are the best one."""
    selection = json.loads((stepwise_run / "breast_pcr.json").read_text())["training"]["selection"]
    history = selection["val_auc_by_epoch"]
    assert [epoch for epoch, _ in history] == [-1, 0]
    aucs = [auc for _, auc in history]
    assert selection["selected_epoch"] == history[int(np.argmax(aucs))][0]  # the earliest best
    kept = torch.load(stepwise_run / "checkpoints" / "step123_best.pt", map_location="cpu", weights_only=True)
    shipped = load_file(str(stepwise_run / "breast_pcr.safetensors"))
    assert set(kept["model"]) == set(shipped)
    assert all(torch.equal(kept["model"][k], shipped[k]) for k in shipped)
    step1 = json.loads((stepwise_run / "breast_pcr_step1.json").read_text())["training"]
    assert "selection" not in step1  # the image-only steps train for their fixed epochs


def _image_branch(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith(("encoder.", "attention."))}


def test_the_clinical_step_keeps_the_guided_image_branch_by_default(stepwise_run: Path, tiny_cohort, tmp_path):
    """Factor 0 (the default): step 3's last epoch leaves the encoder, its batch-norm statistics and the
    attention exactly as step 2 left them, while the fusion trains; a factor > 0 fine-tunes the encoder."""
    step2 = _image_branch(load_file(str(stepwise_run / "breast_pcr_step12.safetensors")))
    assert any("running_mean" in k for k in step2)  # the batch-norm statistics are part of the check
    last = torch.load(stepwise_run / "checkpoints" / "step123.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(last[k], v) for k, v in step2.items())
    before = json.loads((stepwise_run / "breast_pcr.json").read_text())["training"]["steps"][2]
    assert before["encoder_lr_factor"] == 0
    assert last["fusion.2.weight"].abs().sum() > 0  # the fusion, zero-initialised, did train

    tuned = _train(tiny_cohort, tmp_path / "tuned", "--epochs", "1", "1", "1", "--encoder-lr-factor", "0.1")
    tuned_last = torch.load(tuned / "checkpoints" / "step123.pt", map_location="cpu", weights_only=True)["model"]
    tuned_step2 = _image_branch(load_file(str(tuned / "breast_pcr_step12.safetensors")))
    assert any(not torch.equal(tuned_last[k], v) for k, v in tuned_step2.items() if k.startswith("encoder."))


def test_each_step_is_initialised_from_the_last(tiny_cohort, tmp_path):
    """With 0 epochs for steps 2 and 3 the three snapshots must predict identically."""
    out = _train(tiny_cohort, tmp_path / "chain", "--epochs", "1", "0", "0")
    cohort = train_pcr.load_cohort(tiny_cohort, make_config(crop_size=[16, 32, 32], spacing=[4, 4, 4], clinical=False),
                                   show_progress=False)
    rows = np.arange(len(cohort.frame))
    logits = [train_pcr.predict_logits(load_model(out / f"breast_pcr_{t}.safetensors", build_model)[0], cohort, rows, "cpu")[0]
              for t in ("step1", "step12", "step123")]
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)
    np.testing.assert_allclose(logits[1], logits[2], atol=1e-5)


def test_radiomics_run_carries_its_statistics_and_chains_its_steps(tiny_cohort, tmp_path, phantom_inputs):
    """--radiomics: the features are part of the image-only step 1, their training statistics travel in
    the weights file, the steps still chain exactly, and predict_pcr computes the features itself."""
    from responseai.breast.pcr.features import FEATURES

    out = _train(tiny_cohort, tmp_path / "radiomics", "--epochs", "1", "0", "0", "--radiomics")
    step1, card = load_model(out / "breast_pcr_step1.safetensors", build_model)
    assert step1.config["radiomics"] == len(FEATURES) and card["inputs"]["radiomics_features"] == list(FEATURES)
    cohort = train_pcr.load_cohort(tiny_cohort, step1.config, show_progress=False)
    train_rows = cohort.radiomics[cohort.rows("train")]
    np.testing.assert_allclose(step1.radiomics_mean.numpy(), train_rows.mean(0), rtol=1e-5, atol=1e-6)
    rows = np.arange(len(cohort.frame))
    final = load_model(out / "breast_pcr.safetensors", build_model)[0]
    np.testing.assert_allclose(train_pcr.predict_logits(step1, cohort, rows, "cpu")[0],
                               train_pcr.predict_logits(final, cohort, rows, "cpu")[0], atol=1e-5)
    phases, mask, clinical = phantom_inputs
    result = predict_pcr(phases, mask, clinical, out / "breast_pcr.safetensors")
    assert 0 <= result.probability <= 1 and result.gradcam.array.max() <= 1 + 1e-6
    from responseai.breast.pcr.features import kinetic_features
    from responseai.breast.pcr.preprocess import prepare_case

    prepared = prepare_case(phases, mask, final.config)  # the crop the model read
    assert list(result.image_features) == list(FEATURES)
    np.testing.assert_allclose(list(result.image_features.values()), kinetic_features(prepared.image, prepared.mask),
                               rtol=1e-5)

    # a card trained on another feature definition is refused, not fed numbers it never saw
    other = tmp_path / "other-features"
    other.mkdir()
    (other / "breast_pcr.safetensors").write_bytes((out / "breast_pcr.safetensors").read_bytes())
    card = json.loads((out / "breast_pcr.json").read_text())
    card["inputs"]["radiomics_features"] = [*FEATURES[:-1], "peritumoural_excess"]
    (other / "breast_pcr.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="reads kinetic features"):
        predict_pcr(phases, mask, clinical, other / "breast_pcr.safetensors")


def test_threshold_comes_from_val_rows_only(stepwise_run: Path, tiny_cohort: Path):
    model, card = load_model(stepwise_run / "breast_pcr.safetensors", build_model, expected_task="pcr")
    cohort = train_pcr.load_cohort(tiny_cohort, model.config, show_progress=False)
    assert "external" not in set(cohort.frame["split"])  # test rows are never even loaded
    val = cohort.rows("val")
    assert card["training_data"]["n_val"] == len(val) == 3
    logits, _ = train_pcr.predict_logits(model, cohort, val, "cpu")
    probs = train_pcr.probabilities(logits, card["preprocessing"]["logit_offset"])
    assert card["threshold"] == pytest.approx(youden_threshold(cohort.labels[val], probs))
    with pytest.raises(ValueError, match="val"):
        train_pcr.choose_threshold(cohort, np.zeros(len(cohort.rows("train"))))


def test_save_load_round_trip_predicts_identically(stepwise_run: Path, tiny_cohort: Path, tmp_path):
    model, card = load_model(stepwise_run / "breast_pcr.safetensors", build_model)
    from responseai.weights import save_model

    save_model(model, {k: v for k, v in card.items() if k not in ("sha256", "weights_file")}, tmp_path / "copy.safetensors")
    again, _ = load_model(tmp_path / "copy.safetensors", build_model)
    cohort = train_pcr.load_cohort(tiny_cohort, model.config, show_progress=False)
    rows = np.arange(len(cohort.frame))
    a, att_a = train_pcr.predict_logits(model, cohort, rows, "cpu")
    b, att_b = train_pcr.predict_logits(again, cohort, rows, "cpu")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(att_a, att_b)


def test_ddp_two_ranks_end_with_identical_parameters(tiny_cohort: Path, tmp_path: Path):
    dump = tmp_path / "ranks"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "breast", "pcr", "--manifest", str(tiny_cohort), "--out", str(tmp_path / "ddp"),
           "--steps", "1", "--epochs", "1", "0", "0", "--rank-params-dir", str(dump), *TINY]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = load_file(str(dump / "rank0.safetensors")), load_file(str(dump / "rank1.safetensors"))
    assert set(r0) == set(r1)
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    torch.manual_seed(0)  # same seed as the run: the initial weights
    init = build_model(make_config(attention=False, clinical=False, crop_size=[16, 32, 32], spacing=[4, 4, 4],
                                   norm="batch")).state_dict()
    assert any(not torch.equal(init[k], r0[k]) for k in r0)  # the epoch did train
    card = json.loads((tmp_path / "ddp" / "breast_pcr.json").read_text())
    assert card["training"]["world_size"] == 2


def test_resume_continues_from_the_checkpoint(tiny_cohort: Path, tmp_path: Path):
    out = tmp_path / "resume"
    _train(tiny_cohort, out, "--steps", "1", "--epochs", "1", "0", "0")
    _train(tiny_cohort, out, "--steps", "1", "--epochs", "2", "0", "0", "--resume")
    state = torch.load(out / "checkpoints" / "step1.pt", map_location="cpu", weights_only=True)["state"]
    assert state["epoch"] == 1  # epoch 0 came from the first run, epoch 1 from the resumed one


def test_bad_clinical_value_in_manifest_fails_before_any_weights_are_written(tiny_cohort: Path, tmp_path: Path):
    frame = pd.read_csv(tiny_cohort)
    frame.loc[frame.index[frame["split"] == "train"][0], "age"] = 250
    bad = tiny_cohort.parent / "bad_manifest.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(ManifestError, match="Age"):
        _train(bad, tmp_path / "bad", "--epochs", "1", "1", "1")
    assert not list((tmp_path / "bad").rglob("*.safetensors"))


# --- inference ----------------------------------------------------------------------------------


def test_predict_pcr_outputs(stepwise_run: Path, phantom_inputs):
    phases, mask, clinical = phantom_inputs
    clinical = {**clinical, "ki67": None}
    result = predict_pcr(phases, mask, clinical, stepwise_run / "breast_pcr.safetensors")
    card = json.loads((stepwise_run / "breast_pcr.json").read_text())
    assert 0 <= result.probability <= 1
    assert result.threshold == card["threshold"]
    assert result.predicted_class == ("pCR" if result.probability >= result.threshold else "no pCR")
    for heat in (result.attention, result.gradcam):
        assert heat.shape == phases["post1"].shape and heat.spacing == phases["post1"].spacing
        assert heat.array.min() >= 0 and heat.array.max() <= 1 + 1e-6
    assert 0 <= result.attention_in_mask <= 1
    assert isinstance(result.pointing_game_hit, bool)
    assert "ki67" in result.missing_clinical
    assert result.model_name == "breast_pcr"


def test_a_second_prediction_in_the_same_process_is_identical(stepwise_run: Path, phantom_inputs):
    """Grad-CAM must leave the cached network in eval mode: dropout on after the first case made every
    later case of a cohort run (or a second case in one session) come out randomly perturbed."""
    from responseai.breast.pcr.inference import load_pcr_model

    phases, mask, clinical = phantom_inputs
    weights = stepwise_run / "breast_pcr.safetensors"
    first, second = (predict_pcr(phases, mask, clinical, weights) for _ in range(2))
    assert not any(module.training for module in load_pcr_model(weights).model.modules())
    assert first.probability == second.probability
    np.testing.assert_array_equal(first.attention.array, second.attention.array)


def _shifted(image: Image) -> Image:
    return Image(image.array, image.spacing, tuple(o + 5 for o in image.origin), image.direction)


BAD_INPUTS = {
    "missing_post1": (MissingPhaseError, lambda p, m, c: ({"pre": p["pre"], "post2": p["post2"]}, m, c)),
    "phase_off_grid": (GeometryMismatchError, lambda p, m, c: ({**p, "post2": _shifted(p["post2"])}, m, c)),
    "mask_off_grid": (GeometryMismatchError, lambda p, m, c: (p, _shifted(m), c)),
    "nan_voxel": (InvalidImageError, lambda p, m, c: (
        {**p, "pre": p["pre"].with_array(np.where(np.arange(p["pre"].array.size).reshape(p["pre"].shape) == 7, np.nan,
                                                  p["pre"].array.astype(np.float32)))}, m, c)),
    "empty_mask": (EmptyMaskError, lambda p, m, c: (p, m.with_array(np.zeros_like(m.array)), c)),
    "all_ones_mask": (EmptyMaskError, lambda p, m, c: (p, m.with_array(np.ones_like(m.array)), c)),
    "age_250": (ClinicalValueError, lambda p, m, c: (p, m, {**c, "age": 250})),
    "ki67_140": (ClinicalValueError, lambda p, m, c: (p, m, {**c, "ki67": 140})),
    "unknown_category": (ClinicalValueError, lambda p, m, c: (p, m, {**c, "her2": "equivocal"})),
    "unknown_variable": (ClinicalValueError, lambda p, m, c: (p, m, {**c, "shoe_size": 40})),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_raise_their_specific_error(case, stepwise_run: Path, phantom_inputs):
    error, corrupt = BAD_INPUTS[case]
    before = sorted(p.name for p in stepwise_run.iterdir())
    with pytest.raises(error):
        predict_pcr(*corrupt(*phantom_inputs), weights_path=stepwise_run / "breast_pcr.safetensors")
    assert sorted(p.name for p in stepwise_run.iterdir()) == before  # nothing written


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        (dst / f"breast_pcr{suffix}").write_bytes((src / f"breast_pcr{suffix}").read_bytes())
    return dst / "breast_pcr.safetensors"


def test_truncated_weights_are_refused(stepwise_run: Path, phantom_inputs, tmp_path: Path):
    weights = _copy_model(stepwise_run, tmp_path)
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="sha256"):
        predict_pcr(*phantom_inputs, weights_path=weights)


def test_card_that_does_not_match_the_weights_is_refused(stepwise_run: Path, phantom_inputs, tmp_path: Path):
    weights = _copy_model(stepwise_run, tmp_path)
    card = json.loads(weights.with_suffix(".json").read_text())
    card["architecture"]["channels"] = [8, 16, 24]
    weights.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="do not match"):
        predict_pcr(*phantom_inputs, weights_path=weights)
    with pytest.raises(WeightsError, match="not found"):
        predict_pcr(*phantom_inputs, weights_path=tmp_path / "absent.safetensors")


def test_external_evaluation_scores_every_ablation_and_isolates_the_cnn(tiny_cohort: Path, tmp_path: Path):
    """The evaluation reads both trained runs, scores the test cohort's external rows only, and with a
    kinetic-feature model also reports step 1 without that term (what the CNN adds by itself)."""
    from responseai.breast.pcr.evaluation import ABLATIONS, evaluate_pcr

    runs = tmp_path / "runs"
    for mode, folder in (("stepwise", "stepwise"), ("single-stage", "single_stage")):
        _train(tiny_cohort, runs / folder, "--mode", mode, "--epochs", "1", "1", "1", "--radiomics")
    test = tmp_path / "test"
    frame = write_cohort(test, n=10, seed=8, workers=1)
    frame["split"] = "external"  # every row scored; both classes guaranteed
    frame.loc[:1, "pcr"], frame.loc[2:, "pcr"] = 1, 0
    frame.to_csv(test / "manifest.csv", index=False)
    summary = evaluate_pcr(tmp_path / "report", tiny_cohort, test / "manifest.csv", runs, n_boot=20, threads=1)
    assert summary["n_external"] == 10 and summary["n_pcr"] == 2
    expected = {*ABLATIONS, "clinical-only logistic regression (reference)",
                "kinetic features, image-only logistic regression (reference)",
                "step 1 without its kinetic-feature term (the CNN alone)"}
    assert set(summary["results"]) == expected
    for result in summary["results"].values():
        assert 0.0 <= result["metrics"]["auc"]["value"] <= 1.0
    gap = summary["acceptance"]["auc_stepwise_minus_clinical_only"]
    results = summary["results"]
    assert gap["value"] == pytest.approx(results["steps 1–3 (stepwise, clinical)"]["metrics"]["auc"]["value"]
                                         - results["clinical-only logistic regression (reference)"]["metrics"]["auc"]["value"])
    assert gap["ci_low"] <= gap["value"] <= gap["ci_high"]
    guided = results["steps 1–3 (stepwise, clinical)"]
    median = guided["attention_in_mask_median"]  # the target statistic, beside the mean
    assert 0.0 <= median["ci_low"] <= median["value"] <= median["ci_high"] <= 1.0
    assert results["step 1 (global)"]["attention_in_mask_median"] is None  # GAP: no attention map
    assert set(summary["test_set_ceilings"]) == {"image part", "clinical part", "both"}
    report = (tmp_path / "report" / "pcr_evaluation.md").read_text(encoding="utf-8")
    assert report.count("|") > 20 and "Stepwise − clinical-only AUC" in report
    assert "noiseless logit on these exams" in report


def test_sample_ceilings_score_each_part_of_the_label_rule_on_the_scored_exams():
    """A perfect model of a part scores that part's AUC on these rows; a part truth.csv lacks is left out."""
    from responseai.breast.pcr.evaluation import sample_ceilings

    y = np.array([0, 0, 0, 1, 1, 1])
    truth = pd.DataFrame({"patient_id": [f"P{i}" for i in range(7)],
                          "image_logit": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -9.0],   # separates the scored rows
                          "pcr_logit": [0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 9.0]})     # ranks them backwards
    ids = pd.Series([f"P{i}" for i in range(6)])
    ceilings = sample_ceilings(truth, ids, y, n_boot=50, seed=0)
    assert set(ceilings) == {"image part", "both"}
    assert ceilings["image part"]["value"] == 1.0 and ceilings["both"]["value"] == 0.0
    assert ceilings["image part"]["ci_low"] <= 1.0


def test_a_joined_training_cohort_still_refuses_a_test_cohort_it_contains(tmp_path: Path):
    """Seeds 1 + 3 joined for training: evaluating on seed 3 is refused, on seed 2 allowed."""
    from responseai.breast.pcr.evaluation import _check_different_seeds
    from training.combine_manifests import combine

    cohorts = []
    for seed in (1, 3, 2):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        pd.DataFrame({"patient_id": [f"P{seed}-0", f"P{seed}-1", f"P{seed}-2"], "split": ["train", "val", "external"],
                      "pre": ["images/a.nrrd"] * 3}).to_csv(folder / "manifest.csv", index=False)
        (folder / "cohort.json").write_text(json.dumps({"generator": "responseai.breast.phantom", "seed": seed}))
        cohorts.append(folder)
    joined = combine(tmp_path / "joined", cohorts[:2])
    frame = pd.read_csv(joined)
    assert list(frame["patient_id"]) == ["P1-0", "P1-1", "P3-0", "P3-1"]  # external rows stay out
    assert (joined.parent / frame["pre"].iloc[0]).resolve() == (cohorts[0] / "images/a.nrrd").resolve()
    with pytest.raises(ResponseAIError, match=r"share phantom seed \[3\]"):
        _check_different_seeds(joined, cohorts[1] / "manifest.csv")
    _check_different_seeds(joined, cohorts[2] / "manifest.csv")
    other = tmp_path / "alt1"  # seed 1 of another generator: other patients, allowed ...
    other.mkdir()
    pd.DataFrame({"patient_id": ["A1-0"], "split": ["train"], "pre": ["images/a.nrrd"]}).to_csv(other / "manifest.csv", index=False)
    (other / "cohort.json").write_text(json.dumps({"generator": "responseai.breast.phantom_alt", "seed": 1}))
    _check_different_seeds(joined, other / "manifest.csv")
    mixed = combine(tmp_path / "mixed", [other, cohorts[1]])  # ... but a join of two generators still refuses its own
    with pytest.raises(ResponseAIError, match=r"share phantom seed \[3\] of responseai.breast.phantom"):
        _check_different_seeds(mixed, cohorts[1] / "manifest.csv")


def test_dev_scoring_reports_auc_pooled_and_attention_on_the_tumour(stepwise_run: Path, tiny_cohort: Path, caplog):
    """``pcr_dev_curve --score``: how candidate runs are compared before a test set is scored."""
    import logging

    from training import pcr_dev_curve

    weights = [str(stepwise_run / f"breast_pcr_{t}.safetensors") for t in ("step1", "step123")]
    with caplog.at_level(logging.INFO, logger="training.pcr_dev_curve"):
        assert pcr_dev_curve.main(["--manifest", str(tiny_cohort), "--dev", str(tiny_cohort), f"{tiny_cohort}:train",
                                   "--score", *weights, "--threads", "1"]) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("clinical-only") for line in lines)
    assert sum("pooled" in line for line in lines) == 2
    attention = [line for line in lines if "attention in the tumour" in line]
    assert len(attention) == 1 and weights[1] in attention[0]  # step 1 has no attention to score
    medians = [float(x) for x in attention[0].split()[-3::2]]
    assert all(0 <= m <= 1 for m in medians)


# --- the kinetic-feature term refitted on perturbed outlines (training/pcr_outline.py) ------------


def _ball(shape=(24, 32, 32), radius=7.0) -> np.ndarray:
    grid = np.indices(shape)
    centre = (np.array(shape) - 1) / 2
    return (sum((grid[a] - centre[a]) ** 2 for a in range(3)) <= radius ** 2).astype(np.uint8)


def test_a_perturbed_outline_is_one_component_near_the_tumour_and_reproducible():
    from training.pcr_outline import OutlineNoise, perturb_outline
    from responseai.metrics import dice

    ball = _ball()
    still = OutlineNoise(offset_mean_mm=0.0, offset_sd_mm=0.0, edge_mm=0.0, tilt_max=0.0)
    np.testing.assert_array_equal(perturb_outline(ball, 1.25, still, np.random.default_rng(0)), ball)
    draws = [perturb_outline(ball, 1.25, OutlineNoise(), np.random.default_rng(seed)) for seed in range(6)]
    scores = [dice(d, ball) for d in draws]
    assert all(0.5 < s < 0.99 for s in scores), scores  # a segmentation's kind of error, not another lesion
    from scipy import ndimage
    assert all(ndimage.label(d)[1] == 1 for d in draws)
    np.testing.assert_array_equal(draws[0], perturb_outline(ball, 1.25, OutlineNoise(), np.random.default_rng(0)))


def test_outline_refit_changes_only_the_kinetic_term_and_writes_a_loadable_card(tiny_cohort, tmp_path, phantom_inputs):
    """Only the seven kinetic-term parameters move; the card records the base, the noise, before / after
    and a threshold from val rows; the product loads and runs the result."""
    from training import pcr_outline

    base = _train(tiny_cohort, tmp_path / "radiomics", "--epochs", "1", "0", "0", "--radiomics") / "breast_pcr.safetensors"
    out = tmp_path / "refit" / "breast_pcr.safetensors"
    assert pcr_outline.main(["--weights", str(base), "--manifest", str(tiny_cohort), "--out", str(out),
                             "--version", "9.9.9", "--draws", "2"]) == 0
    before, after = load_file(str(base)), load_file(str(out))
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and moved <= {"radiomics_head.weight", "radiomics_head.bias"}
    card = json.loads(out.with_suffix(".json").read_text())
    refit = card["training"]["outline_refit"]
    assert card["version"] == "9.9.9" and refit["base"]["sha256"] == json.loads(base.with_suffix(".json").read_text())["sha256"]
    assert refit["draws_per_exam"] == 2 and set(refit["after"]) == {"train", "val"} and 0 <= card["threshold"] <= 1
    phases, mask, clinical = phantom_inputs
    assert 0 <= predict_pcr(phases, mask, clinical, out).probability <= 1
    with pytest.raises(SystemExit):  # a model without a kinetic term has nothing to refit
        pcr_outline.refit(Path(_train(tiny_cohort, tmp_path / "plain", "--epochs", "1", "0", "0")) / "breast_pcr.safetensors",
                          tiny_cohort, tmp_path / "x.safetensors", "0", pcr_outline.OutlineNoise(), 1, 0)


def test_outline_noise_calibration_reads_the_segmentation_evaluation(tiny_cohort, tmp_path, caplog):
    from training import pcr_outline

    frame = pd.read_csv(tiny_cohort)
    evaluation = tmp_path / "segmentation.json"
    evaluation.write_text(json.dumps({"per_case": [{"patient_id": p, "found": True, "dice": 0.8}
                                                   for p in frame["patient_id"][:3]]}))
    base = _train(tiny_cohort, tmp_path / "radiomics", "--epochs", "1", "0", "0", "--radiomics") / "breast_pcr.safetensors"
    table = pcr_outline.calibrate(tiny_cohort, evaluation, pcr_outline.OutlineNoise(),
                                  json.loads(base.with_suffix(".json").read_text())["architecture"])
    assert list(table["segmentation"]) == [0.8] * 3 and table["perturbed"].between(0, 1).all()


def test_end_to_end_script_reads_saved_masks_and_reports_the_probability_change(tiny_cohort, tmp_path):
    """Testing/Scripts/pcr_end_to_end.py: a saved automatic mask is used as is (the reference mask saved as
    the automatic one gives the same number), an empty one means no pCR number, and the summary says how
    far the automatic mask moved each probability."""
    from responseai.io import read_image, write_image

    sys.path.insert(0, str(ROOT / "Testing" / "Scripts"))
    import pcr_end_to_end

    frame = pd.read_csv(tiny_cohort)
    row = frame[frame["split"] == "external"].iloc[0]
    reference = tiny_cohort.parent / row["mask"]
    same = pcr_end_to_end.score_exam(tiny_cohort, row, reference)
    assert same["automatic_probability"] == pytest.approx(same["reference_probability"])
    empty = write_image(read_image(reference).with_array(np.zeros_like(read_image(reference).array)), tmp_path / "e.nrrd")
    assert np.isnan(pcr_end_to_end.score_exam(tiny_cohort, row, empty)["automatic_probability"])
    table = pd.DataFrame({"pcr": [1, 0, 1, 0], "reference_probability": [0.9, 0.2, 0.6, 0.3],
                          "automatic_probability": [0.7, 0.2, 0.8, float("nan")],
                          "reference_attention_in_tumour": [0.5] * 4, "automatic_attention_in_tumour": [0.5] * 4})
    summary = pcr_end_to_end.summary(table, n_boot=20)
    assert summary["n_without_automatic_mask"] == 1
    assert summary["probability_change_mean_abs"] == pytest.approx(0.4 / 3)
    assert summary["probability_change_mean"] == pytest.approx(0.0)


def test_the_outline_rule_pools_sets_on_the_exams_every_model_has(tmp_path):
    sys.path.insert(0, str(ROOT / "Testing" / "Scripts"))
    import pcr_outline_rule

    def run(name: str, automatic: list[float]) -> Path:
        rows = [{"patient_id": f"P{i}", "pcr": i % 2, "reference_probability": 0.2 + 0.6 * (i % 2),
                 "automatic_probability": a} for i, a in enumerate(automatic)]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"per_exam": rows}))
        return path

    base = pcr_outline_rule.pooled([run("a1", [0.1, 0.9, float("nan"), 0.7])])
    other = pcr_outline_rule.pooled([run("b1", [0.2, 0.8, 0.3, 0.8])])
    result = pcr_outline_rule.judge({"base": base, "other": other}, n_boot=20)
    assert result["base"]["n_exams"] == result["other"]["n_exams"] == 3  # P2 has no automatic mask under base
    assert result["base"]["probability_change_mean_abs"] == pytest.approx(0.1)
    assert result["other"]["probability_change_mean_abs"] == pytest.approx(0.0)
    assert result["other"]["auc_automatic_mask"]["value"] == pytest.approx(1.0)
