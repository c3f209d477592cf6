"""Command line (demo, synth), staged outputs, and the first-use dependency decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from responseai.cli import main
from responseai.io import read_image
from responseai.outputs import staged_output_dir
from responseai.slicer_bridge import dependencies


def test_demo_runs_the_full_case_with_the_shipped_weights(tmp_path: Path):
    from responseai.io import read_segmentation

    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = tmp_path / "demo"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["case_id"] == "BR2026-0000" and summary["external_site"] is True
    assert 0.0 <= summary["pcr_probability"] <= 1.0 and summary["mask_source"] == "model"
    assert summary["predicted_class"] in ("pCR", "no pCR")
    post1 = read_image(out / summary["files"]["post1"])
    mask = read_segmentation(out / "tumour.seg.nrrd")
    attention = read_image(out / "attention.nrrd")
    assert not mask.grid_differences(post1) and not attention.grid_differences(post1)
    assert 0.0 <= attention.array.min() and attention.array.max() <= 1.0
    assert summary["dice_vs_phantom_truth"] > 0.7  # the shipped segmenter finds the demo tumour
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["pcr_probability"] == summary["pcr_probability"]
    assert not list(tmp_path.glob(".*partial-*"))

    from pypdf import PdfReader

    from responseai.reports.writer import validate_report

    text = " ".join(page.extract_text() for page in PdfReader(out / "report" / "report.pdf").pages)
    assert "BR2026-0000" in text and f"{summary['pcr_probability']:.3f}" in text
    validate_report(json.loads((out / "report" / "report.json").read_text(encoding="utf-8")))
    assert read_segmentation(out / "report" / "tumour.seg.nrrd").array.sum() == mask.array.sum()


def test_synth_command_writes_manifest(tmp_path: Path):
    assert main(["synth", "breast", "--n", "3", "--seed", "9", "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    assert len((tmp_path / "c" / "manifest.csv").read_text(encoding="utf-8").strip().splitlines()) == 4
    assert json.loads((tmp_path / "c" / "cohort.json").read_text(encoding="utf-8"))["seed"] == 9


def test_failed_run_leaves_the_output_folder_untouched(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("yesterday", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with staged_output_dir(out) as staging:
            (staging / "result.json").write_text("half of today", encoding="utf-8")
            raise RuntimeError("model crashed")
    assert (out / "result.json").read_text(encoding="utf-8") == "yesterday"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_missing_requirements_and_consent(tmp_path: Path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nnumpy\nresponseai-no-such-package==1.0\ntorch==0.0.1\n", encoding="utf-8")
    assert dependencies.missing_requirements(dependencies.read_requirements(requirements)) == [
        "responseai-no-such-package==1.0", "torch==0.0.1"]
    installed: list[str] = []
    order = dependencies.install_missing(installed.append, requirements)
    assert order == installed == ["torch==0.0.1", "responseai-no-such-package==1.0"]
    with pytest.raises(RuntimeError, match="not installed"):
        dependencies.ensure_installed(lambda question: False, installed.append, "BreastResponseAI", requirements)
    assert dependencies.ensure_installed(lambda question: True, installed.append, "BreastResponseAI", requirements)


def test_shipped_requirements_never_touch_slicer_bundled_packages():
    names = {r.split("=")[0].split(">")[0].lower() for r in dependencies.read_requirements()}
    assert "torch" in names and not names & {"numpy", "simpleitk", "pydicom", "requests"}
