"""Cohort prediction (`responseai predict <family> --manifest`): failures recorded, interruption, resume, sharding.

The interruption test uses a tiny stand-in family (a hook that copies a text file) so it runs in
a fraction of a second; the real families are driven once each on two phantom cases.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from responseai import batch
from responseai.cli import main
from responseai.errors import InvalidImageError
from responseai.manifest import Column, ManifestSchema
from responseai.outputs import staged_output_dir

SCHEMA = ManifestSchema("toy", (Column("patient_id", "id", required=True), Column("image", "path", required=True)))


class ToyFamily:
    """predict_case copies the image's text into result.json; it can fail or be killed mid-write."""

    def __init__(self, kill_at: str | None = None):
        self.kill_at, self.predicted = kill_at, []

    def hook(self) -> batch.CohortHook:
        return batch.CohortHook(SCHEMA, lambda parser: None, lambda args: "models", self.read, self.predict)

    @staticmethod
    def read(row, models):
        text = Path(row["image"]).read_text(encoding="utf-8")
        if text == "corrupt":
            raise InvalidImageError(f"{row['image']}: not an image")
        return row["patient_id"], text

    def predict(self, inputs, out: Path, models) -> dict:
        case_id, text = inputs
        self.predicted.append(case_id)
        with staged_output_dir(out) as staging:
            (staging / "tumour.nrrd").write_text("half", encoding="utf-8")
            if case_id == self.kill_at:
                os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` from a scheduler, mid-case
            (staging / "result.json").write_text(json.dumps({"text": text}), encoding="utf-8")
        return {"length": len(text)}


def _toy_cohort(root: Path, texts: dict[str, str]) -> Path:
    for case_id, text in texts.items():
        (root / f"{case_id}.txt").write_text(text, encoding="utf-8")
    pd.DataFrame({"patient_id": list(texts), "image": [f"{c}.txt" for c in texts]}).to_csv(root / "m.csv", index=False)
    return root / "m.csv"


def test_interrupted_cohort_keeps_finished_cases_and_resumes_the_rest(tmp_path: Path):
    manifest = _toy_cohort(tmp_path, {f"c{i}": f"text {i}" for i in range(5)} | {"bad": "corrupt"})
    out = tmp_path / "out"
    argv = ["--manifest", str(manifest), "--out", str(out)]
    killed = ToyFamily(kill_at="c2")
    assert batch.run(killed.hook(), "toy", argv) == 130
    assert killed.predicted == ["c0", "c1", "c2"]
    assert (out / "c0" / "result.json").exists() and (out / "c1" / "result.json").exists()
    assert not (out / "c2").exists() and not list(out.glob(".*partial-*"))  # the half-written case left nothing
    table = pd.read_csv(out / "predictions.csv")
    assert table.set_index("case_id")["status"].to_dict() == {
        "c0": "ok", "c1": "ok", "c2": "pending", "c3": "pending", "c4": "pending", "bad": "pending"}

    # a process killed harder (SIGKILL) leaves a staging folder and a folder without a record: both redone
    (out / ".c3.partial-x").mkdir()
    (out / "c3").mkdir()
    (out / "c3" / "tumour.nrrd").write_text("stale", encoding="utf-8")
    resumed = ToyFamily()
    assert batch.run(resumed.hook(), "toy", argv) == 2  # one case has an input error, the others are fine
    assert resumed.predicted == ["c2", "c3", "c4"]  # finished cases skipped; the corrupt one fails in read_case
    assert not list(out.glob(".*partial-*"))
    table = pd.read_csv(out / "predictions.csv").set_index("case_id")
    assert (table.loc[[f"c{i}" for i in range(5)], "status"] == "ok").all()
    assert table.loc["bad", "status"] == "error" and table.loc["bad", "error_type"] == "InvalidImageError"
    assert "not an image" in table.loc["bad", "message"] and table.loc["c4", "length"] == 6
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["ok"], summary["error"], summary["pending"]) == (5, 1, 0)
    assert summary["this_process"]["skipped"] == 2


def test_ranks_split_the_cases_and_any_rank_can_merge(tmp_path: Path, monkeypatch):
    manifest = _toy_cohort(tmp_path, {f"c{i}": "x" for i in range(5)})
    out = tmp_path / "out"
    assert batch.Shard(1, 2).take(list(range(5))) == [1, 3]
    toy = ToyFamily()
    rows = pd.read_csv(manifest).assign(image=lambda f: [str(tmp_path / p) for p in f["image"]]).to_dict("records")
    counts = batch.run_cohort(toy.hook(), rows, out, "models", batch.Shard(1, 2), workers=1)
    assert toy.predicted == ["c1", "c3"] and counts["ok"] == 2
    summary = batch.merge_records(out, rows, "patient_id", {})
    assert (summary["ok"], summary["pending"]) == (2, 3)


@pytest.mark.parametrize("family", ["gradeguided", "breast"])
def test_real_family_cohort_with_one_bad_case(tmp_path: Path, family: str):
    """Two phantom cases, models loaded once; the second case's image is corrupt: recorded, exit 2."""
    from responseai.io import read_image, write_image

    import numpy as np

    cohort = tmp_path / "cohort"
    assert main(["synth", family, "--n", "2", "--seed", "21", "--out", str(cohort), "--workers", "1"]) == 0
    frame = pd.read_csv(cohort / "manifest.csv")
    image_column = "post1" if family == "breast" else "pet"
    bad = cohort / frame.loc[1, image_column]
    image = read_image(bad)
    write_image(image.with_array(np.full(image.shape, np.nan, np.float32)), bad)
    # another cohort's column names, mapped on the command line
    frame.rename(columns={"patient_id": "PID"}).to_csv(cohort / "renamed.csv", index=False)
    out = tmp_path / "out"
    argv = ["predict", family, "--manifest", str(cohort / "renamed.csv"), "--columns", "patient_id=PID",
            "--out", str(out), "--workers", "1"]
    assert main(argv) == 2
    table = pd.read_csv(out / "predictions.csv")
    assert table["status"].tolist() == ["ok", "error"]
    assert "non-finite" in table.loc[1, "message"] or "NaN" in table.loc[1, "message"]
    probability = "pcr_probability" if family == "breast" else "response_probability"
    assert 0.0 <= table.loc[0, probability] <= 1.0
    assert json.loads((out / frame.loc[0, "patient_id"] / "result.json").read_text(encoding="utf-8"))["family"] == family
    assert not (out / frame.loc[1, "patient_id"]).exists()
    stages = json.loads((out / "summary.json").read_text(encoding="utf-8"))["stage_seconds_median"]
    expected = {"read", "pcr", "write"} if family == "breast" else {"read"}  # the manifest's masks: no segmentation
    assert expected <= set(stages) and all(seconds >= 0 for seconds in stages.values())
    if family == "breast":  # the stages account for the case's time (what is left is bookkeeping)
        assert table.loc[0, ["read_s", "pcr_s", "write_s"]].sum() <= table.loc[0, "seconds"] + 1e-3
        assert {"extent_caution", "runner_up_volume_ml"} <= set(table.columns)  # what a reviewer sorts by
        assert pd.isna(table.loc[0, "runner_up_volume_ml"])  # the manifest's own mask: no candidates


def test_a_real_process_killed_mid_cohort_resumes(tmp_path: Path):
    """`kill -TERM` on a running `responseai predict breast --manifest` after its first case, then the same command again."""
    import subprocess
    import sys
    import time

    cohort = tmp_path / "cohort"
    assert main(["synth", "breast", "--n", "4", "--seed", "21", "--out", str(cohort), "--workers", "1"]) == 0
    out = tmp_path / "out"
    command = [sys.executable, "-m", "responseai.cli", "predict", "breast", "--manifest", str(cohort / "manifest.csv"),
               "--out", str(out)]  # the manifest's masks: no segmentation, under a second per case
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((out / ".cases").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    table = pd.read_csv(out / "predictions.csv")
    done = table[table["status"] == "ok"]["case_id"].tolist()
    if process.returncode == 0:  # the machine finished every case before the signal landed: nothing to resume
        pytest.skip("all cases finished before SIGTERM")
    assert process.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    assert 1 <= len(done) < 4 and (table["status"] == "pending").any()
    assert all((out / case / "result.json").exists() for case in done)
    assert not list(out.glob(".*partial-*"))
    pending = table[table["status"] == "pending"]["case_id"].tolist()
    assert not any((out / case).exists() for case in pending)  # the case in progress left nothing
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["ok"] == 4 and summary["this_process"]["skipped"] == len(done)
