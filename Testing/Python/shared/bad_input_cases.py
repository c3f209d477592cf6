"""The bad-input catalogue: every way a user can hand the product a wrong input, and what it must say.

Each :class:`BadInput` builds its files (tiny volumes written with SimpleITK: a few KB each) in a
scratch folder and gives the command line of one entry point (``predict`` single and
``--manifest``, ``train``, ``evaluate``, for both families). :func:`run_bad_input` runs it
in-process through :func:`responseai.cli.main` and reports the exit code, the error message and
whether the output folder was left as it was. ``test_bad_input_catalogue.py`` asserts on it;
``Testing/Scripts/reliability_table.py`` turns the same catalogue into ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "Resources" / "Models"
SHAPE = (8, 16, 16)  # z, y, x


@dataclass(frozen=True)
class BadInput:
    """One catalogue entry: ``argv(folder, out)`` builds its inputs in ``folder`` and returns the command."""

    name: str
    entry: str
    argv: Callable[[Path, Path], list[str]]
    expect: str  # a fragment the message must contain (names the phase, field, line or file)
    known_gap: str = ""  # not yet refused: why (the test marks it xfail, the table says so)


@dataclass
class Outcome:
    code: int
    message: str
    out_unchanged: bool


# --- tiny volumes -------------------------------------------------------------------------------


def _volume(path: Path, array: np.ndarray, spacing: tuple[float, ...] = (2.0, 2.0, 3.0)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: array.ndim])
    sitk.WriteImage(image, str(path))
    return str(path)


def _blob(shape=SHAPE) -> np.ndarray:
    z, y, x = np.indices(shape)
    c = [s // 2 for s in shape]
    return ((z - c[0]) ** 2 / 4 + (y - c[1]) ** 2 / 9 + (x - c[2]) ** 2 / 9 <= 1).astype(np.uint8)


def _noise(seed: int, shape=SHAPE, level: float = 100.0) -> np.ndarray:
    return (level + 10 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def breast_files(folder: Path, **override: np.ndarray | None) -> dict[str, str]:
    """pre / post1 (an enhancing blob) / mask; ``override`` replaces an array (None: not written)."""
    pre = _noise(1)
    arrays = {"pre": pre, "post1": pre + 150.0 * _blob(), "mask": _blob()}
    arrays.update(override)
    return {name: _volume(folder / f"{name}.nrrd", a) for name, a in arrays.items() if a is not None}


def gradeguided_files(folder: Path, **override: np.ndarray | None) -> dict[str, str]:
    """ct_nc (HU) / pet (SUV) / mask on one grid; the shipped model runs with the other modalities missing."""
    arrays = {"ct_nc": _noise(2, level=40.0), "pet": np.abs(_noise(3, level=2.0)) / 5 + 3.0 * _blob(), "mask": _blob()}
    arrays.update(override)
    return {name: _volume(folder / f"{name}.nrrd", a) for name, a in arrays.items() if a is not None}


def _breast_predict(folder: Path, out: Path, *extra: str, **override) -> list[str]:
    files = breast_files(folder, **override)
    argv = ["predict", "breast", "--out", str(out), *extra]
    for name, option in (("pre", "--pre"), ("post1", "--post1"), ("mask", "--mask")):
        if name in files:
            argv += [option, files[name]]
    return argv


def _gg_predict(folder: Path, out: Path, *extra: str, **override) -> list[str]:
    files = gradeguided_files(folder, **override)
    argv = ["predict", "gradeguided", "--out", str(out), *extra]
    for name, option in (("ct_nc", "--ct-nc"), ("pet", "--pet"), ("mask", "--mask")):
        if name in files:
            argv += [option, files[name]]
    return argv


# --- corrupt weights ----------------------------------------------------------------------------


def _weights(folder: Path, name: str, damage: str) -> str:
    """A copy of shipped weights + card, damaged: ``truncated``, ``pickle`` or ``newer_card``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    weights, card = folder / f"{name}.safetensors", folder / f"{name}.json"
    shutil.copy(MODELS / f"{name}.safetensors", weights)
    data = json.loads((MODELS / f"{name}.json").read_text(encoding="utf-8"))
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "pickle":  # a torch.save pickle renamed, its card's checksum updated to match
        torch.save({"weight": torch.zeros(2)}, weights)
        from responseai.weights import sha256_of

        data["sha256"] = sha256_of(weights)
    elif damage == "newer_card":
        data["card_format"] = 99
        data["responseai_version"] = "99.0.0"
    card.write_text(json.dumps(data), encoding="utf-8")
    return str(weights)


# --- manifests ----------------------------------------------------------------------------------


def breast_manifest(folder: Path, n: int = 4, edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> str:
    """A valid breast manifest of ``n`` tiny cases (splits train, val, …), then ``edit`` breaks it."""
    rows = []
    for i in range(n):
        files = breast_files(folder / "images" / f"P{i}")
        rows.append({"patient_id": f"P{i}", "site": "A", "split": ("train", "val")[i % 2],
                     **{k: str(Path(v).relative_to(folder)) for k, v in files.items()},
                     "age": 50 + i, "er": "positive", "pcr": i % 2})
    frame = pd.DataFrame(rows)
    (edit or (lambda f: f))(frame).to_csv(folder / "manifest.csv", index=False)
    return str(folder / "manifest.csv")


def gradeguided_manifest(folder: Path, n: int = 4, edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> str:
    rows = []
    for i in range(n):
        others = {m: _noise(10 + k, level=50.0) for k, m in enumerate(("ct_art", "ct_pv", "mr_t1", "mr_t2"))}
        files = gradeguided_files(folder / "images" / f"G{i}", **others)  # training needs every modality
        rows.append({"patient_id": f"G{i}", "split": ("train", "val")[i % 2],
                     **{k: str(Path(v).relative_to(folder)) for k, v in files.items()},
                     "pdl1": 10 * i, "egfr": "mutant", "grade": "G2", "response": i % 2})
    frame = pd.DataFrame(rows)
    (edit or (lambda f: f))(frame).to_csv(folder / "manifest.csv", index=False)
    return str(folder / "manifest.csv")


def _set(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return edit


def _cohort(family: str, folder: Path, out: Path, edit=None, *extra: str) -> list[str]:
    write = breast_manifest if family == "breast" else gradeguided_manifest
    return ["predict", family, "--manifest", write(folder, edit=edit), "--out", str(out), *extra]


def _train(family: str, part: str, folder: Path, out: Path, edit=None) -> list[str]:
    write = breast_manifest if family == "breast" else gradeguided_manifest
    return ["train", family, *([part] if part else []), "--manifest", write(folder, edit=edit), "--out", str(out)]


NAN = np.full(SHAPE, np.nan, np.float32)
OTHER_GRID = _noise(4, (6, 16, 16))
FLAT = np.full(SHAPE, 100.0, np.float32)
SLICE = _noise(5, (16, 16))
EMPTY = np.zeros(SHAPE, np.uint8)

CASES: tuple[BadInput, ...] = (
    # predict breast, one case
    BadInput("missing phase (no --pre)", "predict breast", lambda d, o: _breast_predict(d, o, pre=None),
             "the following arguments are required: --pre"),
    BadInput("phase file that does not exist", "predict breast",
             lambda d, o: [*_breast_predict(d, o), "--post2", str(d / "nowhere.nrrd")], "nowhere.nrrd"),
    BadInput("phases on different grids", "predict breast", lambda d, o: _breast_predict(d, o, pre=OTHER_GRID), "grid"),
    BadInput("NaN voxels", "predict breast", lambda d, o: _breast_predict(d, o, post1=NAN), "NaN or infinite"),
    BadInput("constant image", "predict breast", lambda d, o: _breast_predict(d, o, pre=FLAT), "every voxel has the value"),
    BadInput("2D image", "predict breast", lambda d, o: _breast_predict(d, o, post1=SLICE), "3D"),
    BadInput("empty mask", "predict breast", lambda d, o: _breast_predict(d, o, mask=EMPTY), "mask is empty"),
    BadInput("mask on another grid", "predict breast",
             lambda d, o: _breast_predict(d, o, mask=_blob((6, 16, 16))), "grid"),
    BadInput("unknown clinical category", "predict breast",
             lambda d, o: _breast_predict(d, o, "--clinical", '{"er": "maybe"}'), "unknown category 'maybe'"),
    BadInput("out-of-range clinical value", "predict breast",
             lambda d, o: _breast_predict(d, o, "--clinical", '{"age": 150}'), "outside the allowed range 18–100"),
    BadInput("unknown clinical variable", "predict breast",
             lambda d, o: _breast_predict(d, o, "--clinical", '{"weight_kg": 60}'), "unknown clinical variable(s): weight_kg"),
    BadInput("truncated weights", "predict breast",
             lambda d, o: _breast_predict(d, o, "--pcr-weights", _weights(d / "w", "breast_pcr", "truncated")),
             "(truncated, corrupt or replaced file)"),
    BadInput("pickle renamed .safetensors", "predict breast",
             lambda d, o: _breast_predict(d, o, "--pcr-weights", _weights(d / "w", "breast_pcr", "pickle")),
             "not a readable safetensors file"),
    BadInput("model card of a newer, incompatible version", "predict breast",
             lambda d, o: _breast_predict(d, o, "--pcr-weights", _weights(d / "w", "breast_pcr", "newer_card")),
             "card_format"),
    # predict gradeguided, one case
    BadInput("no modality at all", "predict gradeguided", lambda d, o: _gg_predict(d, o, ct_nc=None, pet=None),
             "no imaging volume given"),
    BadInput("NaN voxels", "predict gradeguided", lambda d, o: _gg_predict(d, o, pet=NAN), "NaN or infinite"),
    BadInput("2D image", "predict gradeguided", lambda d, o: _gg_predict(d, o, ct_nc=SLICE), "3D"),
    BadInput("empty mask", "predict gradeguided", lambda d, o: _gg_predict(d, o, mask=EMPTY), "mask is empty"),
    BadInput("unknown clinical category", "predict gradeguided",
             lambda d, o: _gg_predict(d, o, "--clinical", '{"egfr": "maybe"}'), "unknown category 'maybe'"),
    BadInput("out-of-range clinical value", "predict gradeguided",
             lambda d, o: _gg_predict(d, o, "--clinical", '{"pdl1": 150}'), "outside the allowed range 0–100"),
    BadInput("unknown biopsy grade", "predict gradeguided", lambda d, o: _gg_predict(d, o, "--biopsy-grade", "G7"), "G7"),
    BadInput("truncated weights", "predict gradeguided",
             lambda d, o: _gg_predict(d, o, "--weights", _weights(d / "w", "gradeguided", "truncated")),
             "(truncated, corrupt or replaced file)"),
    # predict --manifest
    BadInput("manifest file that does not exist", "predict breast --manifest",
             lambda d, o: ["predict", "breast", "--manifest", str(d / "nowhere.csv"), "--out", str(o)], "file not found"),
    BadInput("missing column", "predict breast --manifest",
             lambda d, o: _cohort("breast", d, o, lambda f: f.drop(columns="post1")), "column 'post1' is missing"),
    BadInput("no rows", "predict breast --manifest", lambda d, o: _cohort("breast", d, o, lambda f: f.head(0)),
             "no rows"),
    BadInput("duplicate patient id", "predict breast --manifest",
             lambda d, o: _cohort("breast", d, o, _set(2, "patient_id", "P0")),
             "line 4, column 'patient_id', value 'P0': duplicate patient id (first on line 2)"),
    BadInput("patient in two splits", "predict breast --manifest",
             lambda d, o: _cohort("breast", d, o, _set(1, "patient_id", "P0")),
             "patient in split 'val' here and in 'train' on line 2"),
    BadInput("path that does not exist", "predict breast --manifest",
             lambda d, o: _cohort("breast", d, o, _set(3, "post1", "images/P3/gone.nrrd")),
             "line 5, column 'post1', value 'images/P3/gone.nrrd': file not found"),
    BadInput("missing phase (empty cell)", "predict breast --manifest",
             lambda d, o: _cohort("breast", d, o, _set(0, "pre", "")), "line 2, column 'pre', value '': empty, but required"),
    BadInput("unknown category", "predict breast --manifest", lambda d, o: _cohort("breast", d, o, _set(1, "er", "maybe")),
             "line 3, column 'er', value 'maybe'"),
    BadInput("out-of-range value", "predict breast --manifest", lambda d, o: _cohort("breast", d, o, _set(1, "age", 150)),
             "line 3, column 'age', value '150': Age: 150 years is outside"),
    BadInput("column map naming a column the CSV lacks", "predict breast --manifest",
             lambda d, o: _cohort("breast", d, o, None, "--columns", "age=AGE_AT_DIAGNOSIS"),
             "the CSV has no column 'AGE_AT_DIAGNOSIS'"),
    BadInput("missing column", "predict gradeguided --manifest",
             lambda d, o: _cohort("gradeguided", d, o, lambda f: f.drop(columns="mask")), "column 'mask' is missing"),
    BadInput("out-of-range value", "predict gradeguided --manifest",
             lambda d, o: _cohort("gradeguided", d, o, _set(0, "pdl1", 150)), "line 2, column 'pdl1', value '150'"),
    # train
    BadInput("another cohort's column names (no split)", "train breast pcr",
             lambda d, o: _train("breast", "pcr", d, o, lambda f: f.rename(columns={"split": "SET"})),
             "column 'split' is missing"),
    BadInput("no validation rows", "train breast pcr",
             lambda d, o: _train("breast", "pcr", d, o, lambda f: f.assign(split="train")), "no row with split == 'val'"),
    BadInput("label outside 0/1", "train breast pcr", lambda d, o: _train("breast", "pcr", d, o, _set(0, "pcr", 2)),
             "line 2, column 'pcr', value '2': '2' is not one of 0, 1"),
    BadInput("patient in two splits", "train breast segmentation",
             lambda d, o: _train("breast", "segmentation", d, o, _set(1, "patient_id", "P0")),
             "a patient must be in one split only"),
    BadInput("missing label column", "train gradeguided",
             lambda d, o: _train("gradeguided", "", d, o, lambda f: f.drop(columns="response")),
             "column 'response' is missing"),
    # evaluate
    BadInput("no rows of the evaluated split", "evaluate breast segmentation",
             lambda d, o: ["evaluate", "breast", "segmentation", "--manifest", breast_manifest(d), "--out", str(o)],
             "no row with split == 'external'"),
    BadInput("test manifest without external rows", "evaluate breast pcr",
             lambda d, o: ["evaluate", "breast", "pcr", "--train", breast_manifest(d / "train"),
                           "--test", breast_manifest(d / "test"), "--runs", str(d / "runs"), "--out", str(o)],
             "no row with split == 'external'"),
)


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_bad_input(case: BadInput, folder: Path) -> Outcome:
    """Run one catalogue entry in-process; the output folder holds yesterday's file beforehand."""
    out = folder / "out"
    out.mkdir(parents=True)
    (out / "yesterday.txt").write_text("kept", encoding="utf-8")
    argv = case.argv(folder / "inputs", out)
    errors, stderr = _Errors(), io.StringIO()
    logging.getLogger().addHandler(errors)
    try:
        from responseai.cli import main

        with contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: usage + message on stderr, exit 2
                code = int(exc.code or 0)
    finally:
        logging.getLogger().removeHandler(errors)
    argparse_lines = [line for line in stderr.getvalue().splitlines() if ": error: " in line]
    message = errors.messages[0] if errors.messages else (argparse_lines[-1] if argparse_lines else "")
    unchanged = [p.name for p in out.iterdir()] == ["yesterday.txt"] and not list(folder.glob(".*partial-*"))
    return Outcome(code, message, unchanged)
