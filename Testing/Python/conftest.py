"""Shared fixtures: module and helper folders on sys.path, a headless Slicer scene, phantom cases.

The folders mirror the core: ``shared/`` for the base, one folder per family; ``helpers/`` holds
test-only utilities (a DICOM series writer, a stub attention map).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "BreastResponseAI", ROOT / "GradeGuidedFusion", ROOT / "ResponseAICommon",
               Path(__file__).resolve().parent / "helpers"):
    sys.path.insert(0, str(folder))


@pytest.fixture()
def slicer_app():
    """A fresh, real MRML scene (trame-slicer's SlicerApp over the slicer-core wheel)."""
    from responseai.slicer_bridge.headless import headless_app

    from responseai.slicer_bridge.render import discard_snapshot_views

    app = headless_app()
    yield app
    discard_snapshot_views(app)
    app.scene.Clear(True)


@pytest.fixture(scope="session")
def phantom_case():
    """One deterministic phantom case (site A)."""
    from responseai.breast.phantom import SITES, generate_case

    return generate_case(11, 3, site=SITES[0])
