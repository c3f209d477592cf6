"""Every catalogued bad input (bad_input_cases.CASES): exit code 2, a message naming the problem, outputs untouched.

The same catalogue produces docs/RELIABILITY.md (`python Testing/Scripts/reliability_table.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_input_cases import CASES, BadInput, run_bad_input


def _param(case: BadInput):
    marks = [pytest.mark.xfail(reason=case.known_gap, strict=True)] if case.known_gap else []
    return pytest.param(case, id=f"{case.entry}: {case.name}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_is_refused_clearly(case: BadInput, tmp_path: Path):
    outcome = run_bad_input(case, tmp_path)
    assert outcome.code == 2, outcome
    assert case.expect in outcome.message, outcome.message
    assert "Traceback" not in outcome.message
    assert outcome.out_unchanged
