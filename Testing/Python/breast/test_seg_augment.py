"""Training-time augmentation of the segmentation network: what each transform may and may not change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.breast_seg import _augmentation
from training.dce_augment import RandEnhancementd


def _patch() -> dict:
    rng = np.random.default_rng(0)
    label = np.zeros((1, 16, 24, 24), np.int64)
    label[0, :, :, :12] = 1  # breast
    label[0, 6:10, 8:14, 4:10] = 2  # tumour inside it
    pre = rng.uniform(0.2, 0.6, (16, 24, 24)).astype(np.float32)
    uptake = np.where(label[0] == 2, 0.9, np.where(label[0] == 1, 0.2, 0.05)).astype(np.float32)
    image = np.stack([pre, pre + uptake, pre + 0.8 * uptake, uptake])
    return {"image": torch.from_numpy(image), "label": torch.from_numpy(label)}


def test_uptake_gains_leave_the_anatomy_and_keep_the_subtraction_consistent():
    data = _patch()
    transform = RandEnhancementd(prob=1.0, sigma=0.5)
    transform.set_random_state(3)
    out = transform(data)
    image, before = out["image"], data["image"]
    assert torch.equal(image[0], before[0])  # the pre-contrast anatomy does not move
    assert torch.allclose(image[3], image[1] - image[0])  # subtraction recomputed from the scaled phases
    tumour_gain, _, exam_gain = transform.gains
    core = (slice(7, 9), slice(9, 13), slice(5, 9))  # deep inside the tumour: the blend is ≈ the tumour gain
    ratio = ((image[1] - image[0])[core] / (before[1] - before[0])[core]).mean().item()
    assert abs(ratio - tumour_gain * exam_gain) < 0.05 * tumour_gain * exam_gain
    assert torch.equal(out["label"], data["label"])  # labels untouched


def test_low_resolution_simulation_is_optional_and_keeps_patch_and_labels_aligned():
    plain = _augmentation((16, 24, 24))
    coarse = _augmentation((16, 24, 24), low_resolution=1.0)
    names = lambda compose: [type(t).__name__ for t in compose.transforms]  # noqa: E731
    assert "RandSimulateLowResolutiond" not in names(plain)
    assert names(coarse)[-1] == "RandSimulateLowResolutiond"
    coarse.set_random_state(0)
    out = coarse(_patch())
    assert tuple(out["image"].shape) == (4, 16, 24, 24) and tuple(out["label"].shape) == (1, 16, 24, 24)
    assert set(np.unique(np.asarray(out["label"]))) <= {0, 1, 2}  # labels never interpolated


def test_head_feet_flip_is_optional_and_moves_image_and_labels_together():
    flipping = _augmentation((16, 24, 24), cranio_caudal_flip=0.25)
    axes = [t.flipper.spatial_axis for t in flipping.transforms if type(t).__name__ == "RandFlipd"]
    assert axes == [2, 0] and flipping.transforms[2].prob == 0.25
    assert [t.flipper.spatial_axis for t in _augmentation((16, 24, 24)).transforms
            if type(t).__name__ == "RandFlipd"] == [2]
    flip = flipping.transforms[2]  # the head-feet flip alone, always applied
    flip.prob = 1.0
    data = _patch()
    data["label"][0, 1, 0, 0] = 2  # an asymmetric marker
    out = flip(data)
    assert torch.equal(torch.as_tensor(out["image"]), data["image"].flip(1))
    assert torch.equal(torch.as_tensor(out["label"]), data["label"].flip(1))


def test_breast_gain_range_reaches_the_training_augmentation_and_lifts_the_parenchyma():
    uptake = _augmentation((16, 24, 24), breast_gain=(3.0, 3.0)).transforms[0]
    assert isinstance(uptake, RandEnhancementd) and uptake.ranges[1] == (3.0, 3.0)
    uptake.prob = 1.0
    uptake.set_random_state(1)
    data = _patch()
    out = uptake(data)
    _, breast_gain, exam_gain = uptake.gains
    assert breast_gain == 3.0
    deep = (slice(0, 4), slice(0, 6), slice(0, 3))  # breast, far from the tumour: ≈ the breast gain
    ratio = ((out["image"][1] - out["image"][0])[deep] / (data["image"][1] - data["image"][0])[deep]).mean().item()
    assert abs(ratio - breast_gain * exam_gain) < 0.05 * breast_gain * exam_gain


def test_margin_weighted_loss_equals_dice_ce_at_weight_zero_and_weighs_the_band_around_the_tumour():
    from monai.losses import DiceCELoss

    from training.breast_seg import MarginWeightedDiceCE, margin_band

    label = torch.from_numpy(_patch()["label"][None].numpy())  # (1, 1, 16, 24, 24): breast, tumour inside
    band = margin_band(label, margin_mm=3.0)[0, 0].numpy()
    assert not band[label[0, 0].numpy() == 2].any() and not band[label[0, 0].numpy() == 0].any()
    assert band[8, 11, 10] and not band[8, 11, 0]  # 1.5 mm from the tumour is in the band; 6 mm is not
    logits = torch.randn(1, 3, 16, 24, 24, generator=torch.Generator().manual_seed(0))
    plain = DiceCELoss(to_onehot_y=True, softmax=True)(logits, label)
    assert torch.allclose(MarginWeightedDiceCE(0.0, 3.0)(logits, label), plain, atol=1e-6)
    # calling the band tumour costs more when the band weighs more
    wrong = torch.zeros_like(logits)
    wrong[:, 2] = 5.0 * torch.from_numpy(band)[None].float() + 5.0 * (label[:, 0] == 2).float()
    wrong[:, 1] = 5.0 * (label[:, 0] == 1).float() * (1 - torch.from_numpy(band)[None].float())
    assert MarginWeightedDiceCE(4.0, 3.0)(wrong, label) > MarginWeightedDiceCE(0.0, 3.0)(wrong, label)


def test_bpe_sampling_favours_exams_with_more_background_enhancement():
    from training.breast_seg import SegCase, exam_weights

    cases = []
    for uptake in (0.05, 0.3, 0.8):
        data = _patch()
        image = data["image"].numpy().copy()
        breast_only = data["label"][0].numpy() == 1
        image[1][breast_only] = image[0][breast_only] * (1 + uptake)
        image[3] = image[1] - image[0]
        cases.append(SegCase(f"u{uptake}", image.astype(np.float16), data["label"][0].numpy().astype(np.uint8),
                             np.zeros((0, 3), np.int32)))
    assert cases[0].bpe_percent < cases[1].bpe_percent < cases[2].bpe_percent
    assert exam_weights(cases, 0.0) is None
    weights = exam_weights(cases, 3.0)
    assert weights.sum() == pytest.approx(1.0) and weights[2] / weights[0] == pytest.approx(4.0 / 2.0)
