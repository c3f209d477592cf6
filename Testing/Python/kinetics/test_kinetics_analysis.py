"""PE, SER, kinetic class, FTV, worst curve and diameter on hand-made voxels with known answers; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.errors import EmptyMaskError, InputFileError, InvalidImageError, MissingPhaseError
from responseai.image import Image
from responseai.kinetics.analysis import (
    KineticsConfig, NoPreContrastSignalError, analyse_exam, longest_diameter_mm, worst_curve,
)
from responseai.kinetics.constants import NOT_ASSESSED, PERSISTENT, PLATEAU, WASHOUT
from responseai.kinetics.inference import config_from

SPACING = (1.0, 1.0, 2.0)


def _exam(late: float = 240.0) -> tuple[dict[str, Image], Image]:
    """A 4×4×4 exam: background S0 = 100 not enhancing; voxel row z=1 holds the test voxels."""
    pre = np.full((4, 4, 4), 100.0, np.float32)
    post1 = pre.copy()
    post2 = pre.copy()
    # (y, x): persistent, plateau, washout, weakly enhancing, S0 = 0, SER undefined (S2 ≈ S0)
    voxels = {(0, 0): (100, 200, 240), (0, 1): (100, 200, 200), (0, 2): (100, 200, 160), (0, 3): (100, 130, 140),
              (1, 0): (0, 50, 60), (1, 1): (100, 200, 102)}
    for (y, x), (s0, s1, s2) in voxels.items():
        pre[1, y, x], post1[1, y, x], post2[1, y, x] = s0, s1, s2
    mask = np.zeros((4, 4, 4), np.uint8)
    mask[1, :2, :] = 1
    grid = Image(pre, SPACING)
    return {"pre": grid, "post1": grid.with_array(post1), "post2": grid.with_array(post2)}, grid.with_array(mask)


def test_known_voxels_give_the_standard_pe_ser_and_class():
    phases, mask = _exam()
    _, _, maps, summary = analyse_exam(phases, mask, KineticsConfig())
    pe, ser, klass = maps.pe.array[1], maps.ser.array[1], maps.kinetic_class.array[1]
    assert pe[0, :4] == pytest.approx([100, 100, 100, 30])
    assert list(klass[0, :4]) == [PERSISTENT, PLATEAU, WASHOUT, NOT_ASSESSED]  # PE 30 % < 50 %: no curve shape
    assert ser[0, :3] == pytest.approx([100 / 140, 1.0, 100 / 60])
    assert pe[1, 0] == 0 and klass[1, 0] == NOT_ASSESSED and not maps.assessable[1, 1, 0]  # S0 = 0: excluded, not divided
    assert klass[1, 1] == WASHOUT and ser[1, 1] == 0  # S2 − S0 = 2 % of S0: SER undefined, never infinite
    assert np.isfinite(maps.pe.array).all() and np.isfinite(maps.ser.array).all()
    assert summary["ftv_voxels"] == 4 and summary["ftv_ml"] == pytest.approx(4 * 2 / 1000)  # PE ≥ 70 %, S0 usable
    assert summary["ftv_by_ser_ml"] == pytest.approx({"SER < 0.9": 0.002, "SER 0.9–1.3": 0.002, "SER > 1.3": 0.002,
                                                      "SER undefined": 0.002})
    assert summary["class_voxels"] == {"persistent": 1, "plateau": 1, "washout": 2}
    assert summary["worst_curve"] == "washout" and summary["majority_class"] == "washout"
    assert summary["excluded_background_voxels"] == 1
    assert summary["curves"]["persistent"] == pytest.approx([0, 100, 140])


def test_thresholds_come_from_the_config():
    phases, mask = _exam()
    strict = KineticsConfig(pe_threshold=150, persistent_above=50, washout_below=-50)
    _, _, maps, summary = analyse_exam(phases, mask, strict)
    assert summary["ftv_voxels"] == 0 and summary["mean_pe_ftv"] is None
    assert set(maps.kinetic_class.array[1, 0, :3]) == {PLATEAU}
    assert config_from('{"pe_threshold": 80, "ser_bins": [0.8, 1.2]}').ser_bins == (0.8, 1.2)
    assert config_from(None, 60).pe_threshold == 60
    with pytest.raises(InputFileError, match="unknown field.*pe_treshold"):
        config_from('{"pe_treshold": 80}')
    with pytest.raises(InputFileError, match="washout_below must be below"):
        config_from('{"washout_below": 20}')
    assert config_from('{"followup_phase_times_s": [0, 95, 400]}').followup_phase_times_s == (0, 95, 400)
    with pytest.raises(InputFileError, match="phase times must be three increasing"):
        config_from('{"followup_phase_times_s": [0, 400, 95]}')


def test_worst_curve_needs_enough_voxels():
    config = KineticsConfig(worst_min_fraction=0.1, worst_min_voxels=3)
    assert worst_curve({"persistent": 80, "plateau": 15, "washout": 5}, config) == "plateau"  # 5 % washout: noise
    assert worst_curve({"persistent": 80, "plateau": 8, "washout": 12}, config) == "washout"
    assert worst_curve({"persistent": 1, "plateau": 1, "washout": 0}, config) == "persistent"  # none qualifies: majority
    assert worst_curve({"persistent": 0, "plateau": 0, "washout": 0}, config) is None


def test_longest_diameter_is_the_feret_diameter_in_mm():
    grid = Image(np.zeros((3, 5, 6), np.uint8), (0.5, 1.0, 2.0))
    line = np.zeros(grid.shape, bool)
    line[0, 0, 0] = line[2, 4, 5] = True
    assert longest_diameter_mm(line, grid) == pytest.approx(np.sqrt(2.5**2 + 4**2 + 4**2))
    cube = np.zeros(grid.shape, bool)
    cube[:, 1:4, 1:4] = True
    assert longest_diameter_mm(cube, grid) == pytest.approx(np.sqrt(1**2 + 2**2 + 4**2))


def test_bad_inputs_have_specific_errors():
    phases, mask = _exam()
    with pytest.raises(MissingPhaseError, match="missing: post1, post2"):
        analyse_exam({"pre": phases["pre"]}, mask, KineticsConfig())
    with pytest.raises(EmptyMaskError):
        analyse_exam(phases, mask.with_array(np.zeros(mask.shape, np.uint8)), KineticsConfig())
    lesion_in_air = np.zeros(mask.shape, np.uint8)
    lesion_in_air[1, 1, 0] = 1  # the S0 = 0 voxel only
    with pytest.raises(NoPreContrastSignalError, match="percent enhancement is undefined"):
        analyse_exam(phases, mask.with_array(lesion_in_air), KineticsConfig())
    with pytest.raises(InvalidImageError, match="shows no enhancement"):
        analyse_exam({**phases, "post1": phases["pre"]}, mask, KineticsConfig())
