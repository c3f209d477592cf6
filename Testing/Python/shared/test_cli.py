"""Command line (demo, synth, report dispatch, registry errors) and staged outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from responseai.cli import main
from responseai.io import read_image
from responseai.outputs import staged_output_dir


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


def test_every_family_verb_answers_help(capsys):
    """The one CLI shape: `<verb> <family> [<part>] --help` exists for every registered entry point."""
    from responseai import registry

    for family in registry.families().values():
        commands = [["predict", family.name], ["synth", family.name]]
        commands += [["evaluate", family.name, part] for part in family.evaluate]
        commands += [["train", family.name, part] for part in family.train]
        commands += [["bench", family.name]] if family.bench else []
        for argv in commands:
            with pytest.raises(SystemExit) as done:
                main([*argv, "--help"])
            assert done.value.code == 0, argv
            assert "usage:" in capsys.readouterr().out


def test_unknown_family_part_or_verb_is_a_clear_error(caplog, tmp_path: Path):
    assert main(["predict", "lung", "--out", str(tmp_path)]) == 2
    assert "unknown model family 'lung'; known: breast, kinetics, recurrence, crossmodal, gradeguided" in caplog.text
    assert main(["evaluate", "breast", "--out", str(tmp_path)]) == 2
    assert "evaluate breast: choose one of pcr, segmentation" in caplog.text
    assert main(["fly", "breast"]) == 2
    assert "unknown command 'fly'" in caplog.text


def test_report_dispatches_on_the_recorded_family(caplog, tmp_path: Path):
    prediction = tmp_path / "prediction"
    prediction.mkdir()
    (prediction / "result.json").write_text(json.dumps({"case_id": "x"}), encoding="utf-8")
    assert main(["report", "--prediction", str(prediction), "--out", str(tmp_path / "r")]) == 2
    assert "names no model family" in caplog.text
    (prediction / "result.json").write_text(json.dumps({"family": "breast", "case_id": "x"}), encoding="utf-8")
    assert main(["report", "gradeguided", "--prediction", str(prediction), "--out", str(tmp_path / "r")]) == 2
    assert "holds a 'breast' prediction, not 'gradeguided'" in caplog.text
    assert not (tmp_path / "r").exists()


def test_version_and_help_answer_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys; from responseai.cli import main; assert main(['--version']) == 0; "
            "assert main(['--help']) == 0; heavy = {'torch', 'monai', 'pandas'} & set(sys.modules); "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("responseai 0.") and "Exit codes: 0 success" in done.stdout


def test_internal_error_is_one_line_exit_1_and_debug_shows_the_traceback(caplog, monkeypatch):
    def crash(verb, rest):
        raise RuntimeError("boom")

    monkeypatch.setattr("responseai.cli._dispatch", crash)
    assert main(["predict", "breast"]) == 1
    record = caplog.records[-1]
    assert record.getMessage().startswith("internal error RuntimeError: boom (a bug, not your input: run again with --debug")
    assert not record.exc_info
    assert main(["predict", "breast", "--debug"]) == 1
    assert caplog.records[-1].exc_info  # the traceback is printed with --debug
