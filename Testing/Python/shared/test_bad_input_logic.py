"""Every catalogued bad input to a Slicer Logic (bad_input_cases.LOGIC_CASES), on a real MRML scene.

The nodes are built from small arrays in a slicer-core scene (no mocks); each Logic call must
raise the catalogued ResponseAIError subclass with a message naming the problem, leave the
scene's nodes as they were and write no job folder. The same inputs without the defect make a
job (or load a case), so each refusal is for the catalogued reason. The same catalogue produces
the Logic table of docs/RELIABILITY.md (`python Testing/Scripts/reliability_table.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_input_cases import (
    LOGIC_CASES, LogicBadInput, _breast_job, _breast_load, _gg_job, _kinetics_job, run_logic_bad_input,
)


def _param(case: LogicBadInput):
    marks = [pytest.mark.xfail(reason=case.known_gap, strict=True)] if case.known_gap else []
    return pytest.param(case, id=f"{case.entry}: {case.name}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in LOGIC_CASES])
def test_logic_refuses_bad_input_and_leaves_the_scene(case: LogicBadInput, slicer_app, tmp_path: Path):
    outcome = run_logic_bad_input(case, slicer_app.scene, tmp_path)
    assert outcome.error_type == case.error, outcome
    assert case.expect in outcome.message, outcome.message
    assert outcome.scene_unchanged and outcome.nothing_written, outcome


@pytest.mark.parametrize("build", [_breast_job(), _breast_load(), _gg_job(), _kinetics_job(("P1", "P1"))],
                         ids=["breast job", "breast load_case", "gradeguided job", "kinetics job"])
def test_the_same_inputs_without_the_defect_are_accepted(build, slicer_app, tmp_path: Path):
    result = build(slicer_app.scene, tmp_path / "job")()
    assert result is not None
