"""Recurrence fixtures: a tiny model trained on a small phantom (seconds), and phantom case files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_recurrence(tmp_path_factory) -> Path:
    """Weights + card of a 2-epoch network on 40 phantom patients (wiring, not accuracy)."""
    import torch

    from responseai.recurrence.fit import FitConfig
    from responseai.recurrence.phantom import generate_cohort
    from training.recurrence import WEIGHTS_NAME, train_recurrence

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("recurrence-model")
    train_recurrence(generate_cohort(40, 3), out, FitConfig(epochs=2, d_model=16, n_heads=2))
    return out / WEIGHTS_NAME


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory) -> Path:
    """Three phantom patients written as files (tiles/*.png, ultrasound.png, report.txt, clinical.json)."""
    from responseai.recurrence.phantom import generate_case, write_cohort

    out = tmp_path_factory.mktemp("recurrence-cases")
    write_cohort([generate_case(7, i) for i in range(3)], out)
    return out
