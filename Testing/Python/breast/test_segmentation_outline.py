"""Completing the chosen tumour's outline on its own enhancement (synthetic maps, a real card)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from responseai.breast.segmentation.inference import card_growth, fill_holes, outline, select_tumour
from responseai.breast.segmentation.outline import (
    OutlineGrowth,
    close_gaps,
    grow_on_enhancement,
    redraw_on_input_grid,
)
from responseai.errors import WeightsError
from responseai.resources import model_path
from responseai.weights import card_path, read_card, sha256_of
from training import breast_outline, breast_seg

SHAPE = (30, 48, 64)
SPACING_ZYX = (2.0, 1.0, 1.0)
GROWTH = OutlineGrowth(share=0.6, margin_mm=3.0)
HALFWAY = OutlineGrowth(share=0.6, margin_mm=3.0, background_percentile=90.0, background_shell_mm=(3.0, 12.0))
REDRAWN = OutlineGrowth(0.6, 3.0, 90.0, (3.0, 12.0), input_band_mm=3.0)
CLOSED = OutlineGrowth(0.6, 3.0, 90.0, (3.0, 12.0), input_band_mm=3.0, close_share=0.3)


def _ball(centre, radius_mm, shape=SHAPE):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    dz, dy, dx = ((z - centre[0]) * SPACING_ZYX[0], (y - centre[1]) * SPACING_ZYX[1], (x - centre[2]) * SPACING_ZYX[2])
    return dz**2 + dy**2 + dx**2 <= radius_mm**2


def _scene():
    """A 10 mm tumour the network outlined only to 7 mm, a weakly enhancing shell of parenchyma right
    around it, a strongly enhancing vessel 6 mm from its edge, and enhancement outside the breasts."""
    tumour, found = _ball((15, 24, 24), 10), _ball((15, 24, 24), 7)
    subtraction = np.full(SHAPE, 0.05, np.float32)
    subtraction[_ball((15, 24, 24), 14) & ~tumour] = 0.2  # parenchyma: enhances, but far less than the tumour
    subtraction[tumour] = 1.0
    vessel = _ball((15, 24, 44), 3)  # nearest edge 20 − 3 − 10 = 7 mm from the tumour, 10 mm from `found`
    subtraction[vessel] = 1.2
    region = np.ones(SHAPE, bool)
    region[:, :, 56:] = False
    subtraction[:, :, 56:] = 1.0
    return tumour, found, subtraction, region, vessel


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_growth_completes_the_margin_and_stops_at_weaker_tissue_and_the_margin():
    tumour, found, subtraction, region, vessel = _scene()
    grown = grow_on_enhancement(found, subtraction, region, SPACING_ZYX, GROWTH)
    assert _dice(found, tumour) < 0.6 < 0.95 < _dice(grown, tumour)
    assert not (grown & vessel).any()  # enhancing, but beyond the margin
    assert not grown[:, :, 56:].any()  # outside the breast region
    assert (grown & ~tumour).sum() == 0  # the weakly enhancing parenchyma stays out


def test_a_component_that_does_not_enhance_is_left_as_it_is():
    _, found, subtraction, region, _ = _scene()
    flat = np.where(found, -0.01, subtraction).astype(np.float32)
    np.testing.assert_array_equal(grow_on_enhancement(found, flat, region, SPACING_ZYX, GROWTH), found)


def test_growth_on_a_box_equals_the_whole_volume_rule():
    tumour, found, subtraction, region, _ = _scene()
    near = ndimage.distance_transform_edt(~found, sampling=SPACING_ZYX) <= GROWTH.margin_mm
    allowed = near & region & (subtraction >= GROWTH.share * np.median(subtraction[found]))
    labels, _ = ndimage.label(allowed | found)
    expected = np.isin(labels, np.unique(labels[found]))
    np.testing.assert_array_equal(grow_on_enhancement(found, subtraction, region, SPACING_ZYX, GROWTH), expected)


def test_select_tumour_grows_the_chosen_component_only_with_a_card_entry():
    tumour, found, subtraction, region, _ = _scene()
    probability = np.where(found, 0.9, 0.0).astype(np.float32)
    channels = np.stack([np.full(SHAPE, 0.3, np.float32)] * 3 + [subtraction])
    spacing_xyz = SPACING_ZYX[::-1]
    plain, *_ = select_tumour(probability, 0.5, region, channels, spacing_xyz)
    grown, *_ = select_tumour(probability, 0.5, region, channels, spacing_xyz, growth=GROWTH)
    np.testing.assert_array_equal(plain.astype(bool), found)
    assert _dice(grown.astype(bool), tumour) > 0.95


def _spilled_scene():
    """A 9 mm tumour (uptake 1.0) in a breast of markedly enhancing parenchyma (0.5): the network's component
    is the tumour plus a slab of that parenchyma along one side (probability 0.6 there, 0.95 in the tumour)."""
    tumour = _ball((15, 24, 24), 9)
    subtraction = np.full(SHAPE, 0.5, np.float32)
    subtraction[:, :, 50:] = 0.02  # fat beyond the parenchyma
    subtraction[tumour] = 1.0
    slab = np.zeros(SHAPE, bool)
    slab[11:20, 18:31, 33:40] = True  # smaller than the tumour: the component's median uptake is the tumour's
    component = tumour | slab
    probability = np.where(tumour, 0.95, np.where(slab, 0.6, 0.0)).astype(np.float32)
    return tumour, component, subtraction, np.ones(SHAPE, bool), probability


def test_the_halfway_edge_trims_a_component_spilled_into_enhancing_parenchyma():
    tumour, component, subtraction, region, probability = _spilled_scene()
    plain = grow_on_enhancement(component, subtraction, region, SPACING_ZYX, GROWTH)
    halfway = grow_on_enhancement(component, subtraction, region, SPACING_ZYX, HALFWAY, probability)
    assert _dice(plain, tumour) < 0.8  # the share of the tumour's own uptake (0.6) lets the parenchyma (0.5) stay
    assert _dice(halfway, tumour) > 0.97 and not (halfway & ~tumour).any()


def test_the_halfway_edge_is_the_share_rule_where_the_parenchyma_barely_enhances():
    tumour, found, subtraction, region, vessel = _scene()
    subtraction[(subtraction > 0.1) & (subtraction < 0.5)] = 0.05  # no parenchymal enhancement
    np.testing.assert_array_equal(grow_on_enhancement(found, subtraction, region, SPACING_ZYX, HALFWAY),
                                  grow_on_enhancement(found, subtraction, region, SPACING_ZYX, GROWTH))


def test_the_trim_keeps_the_piece_of_most_tumour_probability_not_the_largest():
    """Probability summed over the piece: the tumour (455 voxels at 0.99) outweighs a larger piece (700 at 0.55)."""
    tumour = _ball((15, 24, 20), 6)
    other = np.zeros(SHAPE, bool)
    other[10:20, 14:24, 38:45] = True  # larger, as bright, less sure, joined to the tumour by a weak bridge
    bridge = np.zeros(SHAPE, bool)
    bridge[14:17, 23:26, 25:38] = True
    subtraction = np.full(SHAPE, 0.3, np.float32)
    subtraction[tumour | other] = 1.0
    probability = np.where(tumour, 0.99, np.where(other | bridge, 0.55, 0.0)).astype(np.float32)
    kept = grow_on_enhancement(tumour | other | bridge, subtraction, None, SPACING_ZYX, HALFWAY, probability)
    assert (kept & tumour).sum() == tumour.sum() and not (kept & other).any()


def test_the_halfway_edge_on_a_box_equals_the_whole_volume_rule():
    tumour, component, subtraction, region, probability = _spilled_scene()
    region[:, :, 56:] = False
    distance = ndimage.distance_transform_edt(~component, sampling=SPACING_ZYX)
    median = np.median(subtraction[component])
    shell = (distance > 3) & (distance <= 12) & region
    level = max(0.6 * median, 0.5 * (median + np.percentile(subtraction[shell], 90)))
    labels, n = ndimage.label(component & (subtraction >= level))
    core = labels == 1 + np.argmax(ndimage.sum(probability, labels, range(1, n + 1)))
    near = ndimage.distance_transform_edt(~core, sampling=SPACING_ZYX) <= 3
    labels, _ = ndimage.label((near & region & (subtraction >= level)) | core)
    expected = np.isin(labels, np.unique(labels[core]))
    np.testing.assert_array_equal(grow_on_enhancement(component, subtraction, region, SPACING_ZYX, HALFWAY,
                                                      probability), expected)


@pytest.mark.parametrize("entry", [{"share": 0.0, "margin_mm": 3}, {"share": 0.6}, {"share": "a", "margin_mm": 3},
                                   {"share": 0.6, "margin_mm": 50},
                                   {"share": 0.6, "margin_mm": 3, "background_percentile": 0},
                                   {"share": 0.6, "margin_mm": 3, "background_percentile": 90,
                                    "background_shell_mm": [12, 3]},
                                   {"share": 0.6, "margin_mm": 3, "background_percentile": 90,
                                    "background_shell_mm": [1, 2, 3]},
                                   {"share": 0.6, "margin_mm": 3, "background_percentile": 90, "input_band_mm": 0},
                                   {"share": 0.6, "margin_mm": 3, "input_band_mm": "wide"},
                                   {"share": 0.6, "margin_mm": 3, "close_share": 0},
                                   {"share": 0.6, "margin_mm": 3, "close_share": 1.5}])
def test_a_malformed_card_entry_is_refused(entry):
    assert card_growth({}) is None
    with pytest.raises(WeightsError, match="outline growth"):
        card_growth({"outline_growth": entry})


def test_the_training_command_writes_the_entry_and_keeps_the_weights(tmp_path):
    weights = model_path("breast_seg")
    out = tmp_path / "breast_seg.safetensors"
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.9", "--share", "0.6",
                                "--margin-mm", "3", "--chosen-on", "test"]) == 0
    card = read_card(out, expected_task="segmentation")
    assert card["version"] == "9.9.9" and card["sha256"] == sha256_of(out) == sha256_of(weights)
    assert card_growth(card) == GROWTH and card["outline_growth"]["chosen_on"] == "test"
    assert card["preprocessing"]["output"] == breast_seg.OUTPUT_MAPPING  # the description follows the code
    assert json.loads(card_path(out).read_text())["candidate_ranker"] == read_card(weights)["candidate_ranker"]
    with pytest.raises(SystemExit):
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", "--share", "2",
                             "--margin-mm", "3"])
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.10", "--share", "0.6",
                                "--margin-mm", "3", "--background-percentile", "90"]) == 0
    assert card_growth(read_card(out, expected_task="segmentation")) == HALFWAY
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.11", "--share", "0.6",
                                "--margin-mm", "3", "--background-percentile", "90", "--input-band-mm", "3"]) == 0
    assert card_growth(read_card(out, expected_task="segmentation")) == REDRAWN
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.12", "--share", "0.6",
                                "--margin-mm", "3", "--background-percentile", "90", "--input-band-mm", "3",
                                "--close-share", "0.3"]) == 0
    assert card_growth(read_card(out, expected_task="segmentation")) == CLOSED
    with pytest.raises(SystemExit):  # a closing is part of a growth
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", "--close-share", "0.3"])
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.13",
                                "--ranker-clip-z", "4"]) == 0
    clipped = read_card(out, expected_task="segmentation")["candidate_ranker"]
    assert clipped == {**read_card(weights)["candidate_ranker"], "clip_z": 4.0}
    with pytest.raises(SystemExit):
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", "--ranker-clip-z", "0"])
    with pytest.raises(SystemExit):  # a background without the growth it belongs to
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", "--fill", "slices",
                             "--background-percentile", "90"])


def test_the_grid_scores_the_masks_inference_returns(tmp_path):
    """``--grid`` ranks the candidates once per exam; each of its columns must still be the Dice of the
    mask ``select_tumour`` returns with that growth (here on a phantom exam, with the shipped network)."""
    import pandas as pd

    from responseai.breast.phantom import write_cohort
    from responseai.breast.preprocess import check_phases
    from responseai.breast.segmentation.inference import segment_canonical
    from responseai.io import read_image, resample_to
    from responseai.metrics import dice

    write_cohort(tmp_path / "cohort", n=1, seed=24, workers=1)
    manifest = tmp_path / "cohort" / "manifest.csv"
    row = pd.read_csv(manifest).iloc[0]
    weights = model_path("breast_seg")
    growths = [None, GROWTH, OutlineGrowth(0.8, 6.0), HALFWAY]
    scores = breast_outline.exam_scores(manifest, row, weights, growths)
    phases = {p: read_image(manifest.parent / row[p], p) for p in ("pre", "post1", "post2")}
    seg = segment_canonical(check_phases(phases), weights)
    truth = resample_to(read_image(manifest.parent / row["mask"], "mask"), seg.grid, is_label=True).array > 0
    for growth in growths:
        mask, *_ = select_tumour(seg.probabilities[-1], seg.threshold, seg.region, seg.channels, seg.grid.spacing,
                                 seg.ranker, seg.probabilities[1], growth)
        assert scores[breast_outline.label(growth)] == pytest.approx(dice(mask, truth) if mask.any() else 0.0)
    assert scores["found"] and scores[breast_outline.label(GROWTH)] > 0.5


def test_a_necrotic_core_open_at_one_pole_is_filled_slice_by_slice():
    """A rim-enhancing tumour outlined as a shell whose necrotic centre reaches the surface at the top:
    not a 3-D hole, so 3-D filling leaves it out; filled slice by slice the outline is the whole tumour.
    A groove through the whole component (a concavity open in every slice of every axis) is left as it is."""
    from responseai.breast.segmentation.inference import fill_holes

    tumour = _ball((15, 24, 24), 10)
    shell = tumour & ~_ball((15, 24, 24), 6)
    shell[15:, 22:27, 22:27] = False  # the core opens through the shell towards +z
    assert _dice(fill_holes(shell).astype(bool), tumour) < 0.9
    filled = fill_holes(shell, slices=True).astype(bool)
    assert _dice(filled, tumour) > 0.97 and not (filled & ~tumour).any()
    grooved = tumour.copy()
    grooved[:, 21:28, 28:] = False
    np.testing.assert_array_equal(fill_holes(grooved, slices=True).astype(bool), grooved)


def test_the_card_fill_entry_is_read_written_and_checked(tmp_path):
    from responseai.breast.segmentation.inference import card_fill_slices

    assert card_fill_slices({}) is False and card_fill_slices({"outline_fill": "3d"}) is False
    assert card_fill_slices({"outline_fill": "slices"}) is True
    with pytest.raises(WeightsError, match="outline fill"):
        card_fill_slices({"outline_fill": "2d"})
    weights = model_path("breast_seg")
    out = tmp_path / "breast_seg.safetensors"
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.9",
                                "--fill", "slices"]) == 0
    card = read_card(out, expected_task="segmentation")
    assert card_fill_slices(card) is True and card["sha256"] == sha256_of(weights)
    assert card["outline_growth"] == read_card(weights)["outline_growth"]
    with pytest.raises(SystemExit):  # nothing to write
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1"])


def test_without_breast_around_the_component_the_level_is_the_share_rule():
    """A tumour filling its breast region leaves no baseline: the half-way edge falls back to 2.5.1's."""
    from responseai.breast.segmentation.outline import halfway_level

    _, found, subtraction, _, _ = _scene()
    region = _ball((15, 24, 24), 9)  # the breast region ends within 3 mm of the component: no shell
    assert halfway_level(found, subtraction, region, SPACING_ZYX, HALFWAY, 1.0) is None
    np.testing.assert_array_equal(grow_on_enhancement(found, subtraction, region, SPACING_ZYX, HALFWAY),
                                  grow_on_enhancement(found, subtraction, region, SPACING_ZYX, GROWTH))


def _fine_scene():
    """An input grid finer than the network's (0.6 × 0.6 × 1 mm): an 8 mm tumour with a 3 mm necrotic
    core in enhancing parenchyma, outlined 1.5 mm too wide (the coarse grid's partial volume), and
    strongly enhancing tissue 12 mm from its centre, beyond the breast region."""
    shape, spacing = (40, 64, 64), (1.0, 0.6, 0.6)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    radius = np.sqrt(((z - 20) * spacing[0]) ** 2 + ((y - 32) * spacing[1]) ** 2 + ((x - 32) * spacing[2]) ** 2)
    tumour = radius <= 8.0
    subtraction = np.full(shape, 0.25, np.float32)  # parenchyma
    subtraction[tumour] = 1.0
    subtraction[radius <= 3.0] = 0.05  # necrosis: no uptake, but the tumour's
    breast = np.ones(shape, bool)
    breast[:, :, 52:] = False  # beyond 12 mm from the centre: outside the breasts
    subtraction[:, :, 52:] = 1.2  # e.g. the chest wall's vessels
    pre = np.full(shape, 100, np.int16)  # scanner units, as a user's phases come
    return tumour, radius <= 9.5, pre, (pre + 400 * subtraction).astype(np.int16), breast, spacing


def test_the_edge_redrawn_on_the_input_grid_fits_the_tumour_and_keeps_its_necrotic_core():
    tumour, wide, pre, post1, breast, spacing = _fine_scene()
    redrawn = redraw_on_input_grid(wide, pre, post1, breast, spacing, REDRAWN)
    assert _dice(wide, tumour) < 0.8 < 0.97 < _dice(redrawn, tumour)
    assert not redrawn[:, :, 52:].any()
    kept = redraw_on_input_grid(tumour, pre, post1, breast, spacing, REDRAWN)
    assert kept[tumour].all()  # the necrotic core lies deeper than the band: it stays
    np.testing.assert_array_equal(redraw_on_input_grid(wide, pre, post1, breast, spacing, HALFWAY), wide)  # no band
    washout = np.where(wide, pre - 10, post1).astype(np.int16)  # the mask does not enhance
    np.testing.assert_array_equal(redraw_on_input_grid(wide, pre, washout, breast, spacing, REDRAWN), wide)


def test_segment_exam_redraws_the_edge_only_with_the_card_entry(tmp_path):
    """The shipped network's card without and with ``input_band_mm``: the same tumour, the edge moved by no
    more than the band, and the runner-up redrawn too."""
    from responseai.breast.demo import demo_case
    from responseai.breast.segmentation.inference import segment_exam

    growth = ["--share", "0.6", "--margin-mm", "3", "--background-percentile", "90", "--fill", "slices"]
    cards = {}
    for name, band in (("plain", []), ("redrawn", ["--input-band-mm", "3"])):
        cards[name] = tmp_path / name / "breast_seg.safetensors"
        assert breast_outline.main(["--weights", str(model_path("breast_seg")), "--out", str(cards[name]),
                                    "--version", "9.9.12", *growth, *band]) == 0
    case = demo_case()
    plain, redrawn = segment_exam(case.phases, cards["plain"]), segment_exam(case.phases, cards["redrawn"])
    a, b = plain.mask.array.astype(bool), redrawn.mask.array.astype(bool)
    assert (a & b).any() and not np.array_equal(a, b)
    spacing = case.phases["post1"].spacing[::-1]
    assert ndimage.distance_transform_edt(~a, sampling=spacing)[b].max() <= 3.0 + 1e-6
    assert ndimage.distance_transform_edt(a, sampling=spacing)[~b & a].max() <= 3.0 + 1e-6
    assert (plain.runner_up is None) == (redrawn.runner_up is None)


def _broken_rim_scene():
    """A 14 mm rim-enhancing tumour (rim 4 mm thick, necrotic core) whose rim falls under the edge level in two
    3–4 mm wide slots: the outline is a shell open in every axial, coronal and sagittal slice, which no hole
    filling closes."""
    tumour = _ball((15, 24, 28), 14)
    rim = tumour & ~_ball((15, 24, 28), 10)
    gap = np.zeros(SHAPE, bool)
    gap[:, 23:26, :28] = True  # across every axial slice on the −x side
    gap[14:16, :, 28:] = True  # across every coronal slice on the +x side
    return tumour, rim & ~gap


def test_closing_mends_a_broken_rim_so_the_necrotic_core_is_filled():
    tumour, broken = _broken_rim_scene()
    filled = fill_holes(broken, slices=True).astype(bool)
    assert not filled[15, 24, 28] and _dice(filled, tumour) < 0.75  # the core leaks out through the gaps
    closed = fill_holes(close_gaps(filled, None, SPACING_ZYX, 0.3), slices=True).astype(bool)
    assert _dice(closed, tumour) > 0.97 and (closed & ~tumour).sum() < 0.01 * tumour.sum()


def test_closing_adds_nothing_to_a_convex_outline_and_nothing_outside_the_breast():
    tumour = _ball((15, 24, 28), 12)
    np.testing.assert_array_equal(close_gaps(tumour, None, SPACING_ZYX, 0.3), tumour)
    _, broken = _broken_rim_scene()
    region = np.ones(SHAPE, bool)
    region[:, :, :20] = False  # the gap's outer half lies outside the breast
    closed = close_gaps(fill_holes(broken, slices=True).astype(bool), region, SPACING_ZYX, 0.3)
    assert not (closed & ~broken & ~region).any()


def _ball_element(radius_mm, spacing_zyx):
    reach = [int(radius_mm // s) for s in spacing_zyx]
    z, y, x = np.ogrid[tuple(slice(-r, r + 1) for r in reach)]
    return (z * spacing_zyx[0]) ** 2 + (y * spacing_zyx[1]) ** 2 + (x * spacing_zyx[2]) ** 2 <= radius_mm**2


@pytest.mark.parametrize("seed", range(4))
def test_the_distance_closing_is_the_closing_by_a_ball(seed):
    """The two distance transforms give exactly scipy's closing by the ball of the same radius (padded, so
    that the volume's border plays no part), on irregular pieces of irregular sizes."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(SHAPE), 2.0)
    outline = (smooth > np.quantile(smooth, 0.4 + 0.05 * seed)) & _ball((15, 24, 32), 16 + 2 * seed)
    spacing = (2.0, 1.5, 1.5)
    radius = 0.3 * (3 * outline.sum() * np.prod(spacing) / (4 * np.pi)) ** (1 / 3)
    element = _ball_element(radius, spacing)
    pad = [n for n in element.shape]
    expected = ndimage.binary_closing(np.pad(outline, [(p, p) for p in pad]), structure=element)
    expected = expected[tuple(slice(p, -p) for p in pad)] | outline
    closed = close_gaps(outline, None, spacing, 0.3)
    assert closed.sum() > outline.sum()  # something to close
    np.testing.assert_array_equal(closed, expected)


def test_closing_leaves_a_small_tumour_as_it_is():
    """The ball scales with the tumour: a 2 mm tumour's is under a voxel, so its notch stays."""
    small = _ball((15, 24, 28), 2.5)
    small[15, 24, 26] = False
    np.testing.assert_array_equal(close_gaps(small, None, SPACING_ZYX, 0.3), small)


def test_outline_closes_the_gaps_only_with_the_card_entry():
    tumour, broken = _broken_rim_scene()
    subtraction = np.where(broken, 1.0, 0.05).astype(np.float32)
    channels = np.stack([np.full(SHAPE, 0.3, np.float32)] * 3 + [subtraction])
    region, spacing_xyz = np.ones(SHAPE, bool), SPACING_ZYX[::-1]
    without = outline(broken, channels, region, spacing_xyz, REDRAWN, fill_slices=True).astype(bool)
    closed = outline(broken, channels, region, spacing_xyz, CLOSED, fill_slices=True).astype(bool)
    assert not without[15, 24, 28] and closed[15, 24, 28]
    assert _dice(without, tumour) < 0.75 < 0.97 < _dice(closed, tumour)
