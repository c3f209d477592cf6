"""Kinetics fixtures: one phantom case (baseline + follow-up) shared by the folder's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kinetics_case():
    """A deterministic phantom patient: washout + persistent lesions, pCR (lesion 0 shrinks), RAS baseline,
    sagittal follow-up."""
    from responseai.kinetics.phantom import generate_case

    return generate_case(0, 36)
