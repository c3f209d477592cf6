"""The second stage of the segmentation: candidate descriptors and the learnt ranker (synthetic maps)."""

import numpy as np
import pytest

from responseai.breast.segmentation.candidates import (
    FEATURES,
    CandidateRanker,
    choose,
    find_candidates,
    sphericity,
)

SHAPE = (24, 48, 64)


def _ball(centre, radius, shape=SHAPE):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def _exam():
    """A compact, strongly enhancing, washing-out tumour and a larger, flat, weaker patch of parenchyma."""
    probability = np.zeros(SHAPE, np.float32)
    channels = np.zeros((4, *SHAPE), np.float32)
    region = np.zeros(SHAPE, bool)
    region[2:22, 4:44, 4:60] = True
    tumour = _ball((12, 20, 16), 4)
    parenchyma = np.zeros(SHAPE, bool)
    parenchyma[11:14, 10:34, 36:56] = True
    channels[0] = 0.3
    channels[1] = 0.35
    channels[1][tumour] = 1.2
    channels[1][parenchyma] = 0.6
    channels[2] = channels[1]
    channels[2][tumour] = 1.0  # washout: post2 below post1
    channels[3] = channels[1] - channels[0]
    probability[tumour] = 0.8
    probability[parenchyma] = 0.85
    return probability, channels, region, tumour, parenchyma


def test_descriptors_read_size_shape_enhancement_and_washout():
    probability, channels, region, tumour, parenchyma = _exam()
    c = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0))
    assert c.n == 2 and c.allowed.all() and np.isfinite(c.features).all()
    t, p = (int(np.unique(c.labels[m])[-1]) - 1 for m in (tumour, parenchyma))
    row = dict(zip(FEATURES, c.features[t], strict=True))
    other = dict(zip(FEATURES, c.features[p], strict=True))
    assert row["log_volume_mm3"] == pytest.approx(np.log(tumour.sum() * 1.5 * 1.5 * 2.0))
    assert row["sphericity"] > other["sphericity"]  # a ball against a 3-slice plate
    assert row["log_relative_enhancement"] > other["log_relative_enhancement"]
    assert row["washout"] < -0.1 < other["washout"] + 0.1  # the tumour's signal falls from post1 to post2
    assert other["probability_gap"] == 0.0 and row["probability_gap"] < 0  # gap to the exam's most probable


def test_descriptors_do_not_change_with_scanner_gain():
    """A site's gain scales every channel (the network input is already normalised, but not perfectly)."""
    probability, channels, region, *_ = _exam()
    one = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0)).features
    three = find_candidates(probability, 0.5, region, channels * 3, (1.5, 1.5, 2.0)).features
    assert np.allclose(one, three, atol=1e-6)


def test_a_ball_is_rounder_than_a_plate_and_a_spiculated_star():
    ball = _ball((12, 24, 32), 6)
    plate = np.zeros(SHAPE, bool)
    plate[12, 10:38, 10:50] = True
    star = _ball((12, 24, 32), 3)
    for axis in range(3):  # spicules along each axis
        index = [slice(12, 13), slice(24, 25), slice(32, 33)]
        index[axis] = slice(2, -2)
        star[tuple(index)] = True
    spacing = (1.0, 1.0, 1.0)
    assert sphericity(ball, spacing) > sphericity(star, spacing) > 0
    assert sphericity(ball, spacing) > sphericity(plate, spacing) > 0
    assert 0.6 < sphericity(ball, spacing) <= 1.0


def test_without_a_ranker_the_most_probable_candidate_wins_and_a_ranker_can_overrule_it():
    probability, channels, region, tumour, parenchyma = _exam()
    c = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0))
    assert (c.labels == choose(c, None))[parenchyma].all()  # 0.85 > 0.8
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("sphericity")] = 1.0
    ranker = CandidateRanker(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), weights)
    assert (c.labels == choose(c, ranker))[tumour].all()


def test_candidates_outside_the_breasts_and_specks_are_never_chosen():
    probability, channels, region, tumour, parenchyma = _exam()
    region[:, :, 30:] = False  # the parenchyma patch now lies outside the breast region
    probability[5, 40, 10] = 0.99  # a one-voxel speck
    c = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0), describe_outside=True)
    assert c.n == 3 and c.outside.sum() == 1 and c.allowed.sum() == 1
    speck = c.labels[5, 40, 10] - 1
    assert np.isnan(c.features[speck]).all() and np.isfinite(c.features[c.outside]).all()  # described, never chosen
    at_inference = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0))
    assert np.isnan(at_inference.features[c.outside]).all()
    assert np.array_equal(at_inference.features[c.allowed], c.features[c.allowed])  # the same descriptors
    assert (c.labels == choose(c, None))[tumour].all()
    region[:] = False
    assert choose(find_candidates(probability, 0.5, region, channels), None) is None


def test_the_card_entry_round_trips_and_a_malformed_one_is_refused():
    ranker = CandidateRanker(FEATURES, np.arange(len(FEATURES), dtype=float), np.ones(len(FEATURES)),
                             np.linspace(-1, 1, len(FEATURES)))
    again = CandidateRanker.from_card(ranker.to_card())
    assert again.features == FEATURES and np.array_equal(again.weights, ranker.weights)
    entry = ranker.to_card()
    with pytest.raises(ValueError, match="do not match"):
        CandidateRanker.from_card({**entry, "features": list(FEATURES[:-1])})
    with pytest.raises(ValueError, match="finite"):
        CandidateRanker.from_card({**entry, "scale": [0.0] * len(FEATURES)})
    with pytest.raises(ValueError, match="finite"):
        CandidateRanker.from_card({**entry, "weights": [float("nan")] * len(FEATURES)})
    assert "clip_z" not in entry and again.clip_z is None  # cards before 2.8.1 score as they did
    clipped = CandidateRanker.from_card({**entry, "clip_z": 4})
    assert clipped.clip_z == 4.0 and CandidateRanker.from_card(clipped.to_card()).to_card() == clipped.to_card()
    for bad in (0, -1, "4", float("inf")):
        with pytest.raises(ValueError, match="clip_z"):
            CandidateRanker.from_card({**entry, "clip_z": bad})


def test_a_close_margin_round_trips_and_flags_only_close_choices_with_a_runner_up():
    ranker = CandidateRanker(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), np.ones(len(FEATURES)))
    assert not ranker.close_call(0.1)  # cards before 2.9.1 flag nothing
    entry = ranker.to_card()
    assert "close_margin" not in entry
    close = CandidateRanker.from_card({**entry, "close_margin": 1.5})
    assert close.close_margin == 1.5 and CandidateRanker.from_card(close.to_card()).close_margin == 1.5
    assert close.close_call(1.49) and not close.close_call(1.5) and not close.close_call(None)
    for bad in (0, -2, "1.5", float("nan")):
        with pytest.raises(ValueError, match="close_margin"):
            CandidateRanker.from_card({**entry, "close_margin": bad})


def test_a_clipped_ranker_does_not_let_one_extreme_feature_win():
    """A speck with almost no uptake has a heterogeneity (spread over mean uptake) far outside anything the
    ranker was fitted on: unclipped, that one feature outscores a tumour that is better on all the others."""
    weights = np.ones(len(FEATURES))
    tumour = np.full(len(FEATURES), 1.5)
    speck = np.full(len(FEATURES), -1.0)
    speck[FEATURES.index("heterogeneity")] = 85.0
    rows = np.stack([tumour, speck])
    plain = CandidateRanker(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), weights)
    clipped = CandidateRanker(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), weights, clip_z=4.0)
    assert np.argmax(plain.score(rows)) == 1 and np.argmax(clipped.score(rows)) == 0
    ordinary = np.array([[0.5] * len(FEATURES), [-2.0] * len(FEATURES)])  # inside ±4: the same scores
    np.testing.assert_array_equal(plain.score(ordinary), clipped.score(ordinary))


def test_what_surrounds_a_candidate_tells_breast_tissue_from_the_heart():
    """The heart can sit inside the breast region the network drew; its rim is not breast tissue."""
    probability, channels, region, tumour, parenchyma = _exam()
    breast = np.where(region, 0.9, 0.0).astype(np.float32)
    breast[:, 6:40, 32:60] = 0.05  # the parenchyma patch now plays the heart: no breast tissue around it
    breast[tumour | parenchyma] = 0.1  # inside a candidate the tumour class wins
    c = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0), breast)
    t, h = (int(np.unique(c.labels[m])[-1]) - 1 for m in (tumour, parenchyma))
    k = FEATURES.index("surrounding_breast")
    assert c.features[t, k] == pytest.approx(0.9) and c.features[h, k] < 0.1
    no_class = find_candidates(probability, 0.5, region, channels, (1.5, 1.5, 2.0)).features
    assert (no_class[:, k] == 1.0).all()  # a two-class card: every candidate is taken to sit in the breast


def test_depth_on_a_box_is_the_whole_exam_transform_where_it_is_read():
    """The cropped distance transform must give the exact depth at the candidates, near or far from an edge."""
    from scipy import ndimage

    from responseai.breast.segmentation.candidates import depth_in_region

    rng = np.random.default_rng(1)
    region = ndimage.binary_opening(rng.random((30, 60, 80)) > 0.2, iterations=2)
    region[:, :, 60:] = True  # a deep block: its distances reach past a small margin
    spacing = (2.0, 1.5, 1.5)
    full = ndimage.distance_transform_edt(region, sampling=spacing)
    for where, margin in [(_ball((15, 30, 20), 3, region.shape), 30.0), (_ball((15, 30, 70), 4, region.shape), 3.0),
                          (_ball((1, 1, 1), 1, region.shape), 5.0)]:
        assert np.allclose(depth_in_region(region, where, spacing, margin)[where], full[where])
