"""The bad-input catalogue: every way a user can hand the product a wrong input, and what it must say.

Each :class:`BadInput` builds its files (tiny volumes written with SimpleITK: a few KB each) in a
scratch folder and gives the command line of one entry point (``predict`` single and
``--manifest``, ``train``, ``evaluate``; breast, grade-guided and kinetics). :func:`run_bad_input`
runs it in-process through :func:`responseai.cli.main` and reports the exit code, the error
message and whether the output folder was left as it was. ``test_bad_input_catalogue.py`` asserts on it;
``Testing/Scripts/reliability_table.py`` turns the same catalogue into ``docs/RELIABILITY.md``.
:data:`LOGIC_CASES` gives the same kinds of bad input to each module's Slicer Logic as MRML nodes
(:func:`run_logic_bad_input`; asserted by ``test_bad_input_logic.py``, tabled by the same script).
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

from responseai.image import Image

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


def breast_arrays(**override: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """pre / post1 (an enhancing blob) / mask; ``override`` replaces an array (None: not given)."""
    pre = _noise(1)
    return {"pre": pre, "post1": pre + 150.0 * _blob(), "mask": _blob(), **override}


def gradeguided_arrays(**override: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """ct_nc (HU) / pet (SUV) / mask on one grid; the shipped model runs with the other modalities missing."""
    return {"ct_nc": _noise(2, level=40.0), "pet": np.abs(_noise(3, level=2.0)) / 5 + 3.0 * _blob(), "mask": _blob(),
            **override}


def kinetics_arrays(**override: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """pre / post1 / post2 (the blob enhances, then washes out a little) / mask."""
    pre = _noise(1)
    return {"pre": pre, "post1": pre + 150.0 * _blob(), "post2": pre + 130.0 * _blob(), "mask": _blob(), **override}


def _files(folder: Path, arrays: dict[str, np.ndarray | None]) -> dict[str, str]:
    return {name: _volume(folder / f"{name}.nrrd", a) for name, a in arrays.items() if a is not None}


def breast_files(folder: Path, **override: np.ndarray | None) -> dict[str, str]:
    return _files(folder, breast_arrays(**override))


def gradeguided_files(folder: Path, **override: np.ndarray | None) -> dict[str, str]:
    return _files(folder, gradeguided_arrays(**override))


def _breast_predict(folder: Path, out: Path, *extra: str, **override) -> list[str]:
    files = breast_files(folder, **override)
    argv = ["predict", "breast", "--out", str(out), *extra]
    for name, option in (("pre", "--pre"), ("post1", "--post1"), ("mask", "--mask")):
        if name in files:
            argv += [option, files[name]]
    return argv


def _dce(folder: Path, out: Path, *extra: str, frames: tuple[str, ...] = ("pre", "post1")) -> list[str]:
    """``predict breast --dce`` on a 4D NIfTI of the named breast arrays (a dynamic series), with the mask."""
    arrays = breast_arrays()
    path = folder / "dce.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    series = sitk.JoinSeries([sitk.GetImageFromArray(arrays[name].astype(np.float32)) for name in frames])
    sitk.WriteImage(series if len(frames) > 1 else sitk.GetImageFromArray(arrays[frames[0]]), str(path))
    return ["predict", "breast", "--dce", str(path), "--mask", _volume(folder / "mask.nrrd", arrays["mask"]),
            "--out", str(out), *extra]


def _gg_predict(folder: Path, out: Path, *extra: str, **override) -> list[str]:
    files = gradeguided_files(folder, **override)
    argv = ["predict", "gradeguided", "--out", str(out), *extra]
    for name, option in (("ct_nc", "--ct-nc"), ("pet", "--pet"), ("mask", "--mask")):
        if name in files:
            argv += [option, files[name]]
    return argv


# --- corrupt weights ----------------------------------------------------------------------------


def _weights(folder: Path, name: str, damage: str) -> str:
    """A copy of shipped weights + card, damaged: ``truncated``, ``pickle``, ``newer_card``,
    ``other_features`` (a pCR card trained on another kinetic-feature definition) or ``bad_outline``
    (a segmentation card whose outline growth is out of range)."""
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
    elif damage == "other_features":
        data["inputs"]["radiomics_features"] = [*data["inputs"]["radiomics_features"][:-1], "peritumoural_excess"]
    elif damage == "bad_outline":
        data["outline_growth"] = {"share": 5.0, "margin_mm": 3.0}
    card.write_text(json.dumps(data), encoding="utf-8")
    return str(weights)


# --- manifests ----------------------------------------------------------------------------------


Edit = Callable[[pd.DataFrame], pd.DataFrame]


def _write_manifest(folder: Path, rows: list[dict], edit: Edit | None) -> str:
    frame = pd.DataFrame(rows)
    (edit or (lambda f: f))(frame).to_csv(folder / "manifest.csv", index=False)
    return str(folder / "manifest.csv")


def _relative(files: dict[str, str], folder: Path) -> dict[str, str]:
    return {k: str(Path(v).relative_to(folder)) for k, v in files.items()}


def breast_manifest(folder: Path, n: int = 4, edit: Edit | None = None) -> str:
    """A valid breast manifest of ``n`` tiny cases (splits train, val, …), then ``edit`` breaks it."""
    rows = [{"patient_id": f"P{i}", "site": "A", "split": ("train", "val")[i % 2],
             **_relative(breast_files(folder / "images" / f"P{i}"), folder), "age": 50 + i, "er": "positive",
             "pcr": i % 2} for i in range(n)]
    return _write_manifest(folder, rows, edit)


def gradeguided_manifest(folder: Path, n: int = 4, edit: Edit | None = None) -> str:
    others = {m: _noise(10 + k, level=50.0) for k, m in enumerate(("ct_art", "ct_pv", "mr_t1", "mr_t2"))}
    rows = [{"patient_id": f"G{i}", "split": ("train", "val")[i % 2],
             **_relative(gradeguided_files(folder / "images" / f"G{i}", **others), folder),  # training needs every modality
             "pdl1": 10 * i, "egfr": "mutant", "grade": "G2", "response": i % 2} for i in range(n)]
    return _write_manifest(folder, rows, edit)


def kinetics_manifest(folder: Path, n: int = 4, edit: Edit | None = None) -> str:
    """Baseline exams only (empty follow-up cells), as the kinetics schema allows."""
    rows = [{"patient_id": f"K{i}", **_relative(_files(folder / "images" / f"K{i}", kinetics_arrays()), folder),
             "followup_post1": ""} for i in range(n)]
    return _write_manifest(folder, rows, edit)


MANIFEST_WRITERS = {"breast": breast_manifest, "gradeguided": gradeguided_manifest, "kinetics": kinetics_manifest}


def _set(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return edit


def _cohort(family: str, folder: Path, out: Path, edit=None, *extra: str) -> list[str]:
    return ["predict", family, "--manifest", MANIFEST_WRITERS[family](folder, edit=edit), "--out", str(out), *extra]


def _train(family: str, part: str, folder: Path, out: Path, edit=None) -> list[str]:
    return ["train", family, *([part] if part else []), "--manifest", MANIFEST_WRITERS[family](folder, edit=edit),
            "--out", str(out)]


NAN = np.full(SHAPE, np.nan, np.float32)
OTHER_GRID = _noise(4, (6, 16, 16))
FLAT = np.full(SHAPE, 100.0, np.float32)
SLICE = _noise(5, (16, 16))
EMPTY = np.zeros(SHAPE, np.uint8)

CASES: tuple[BadInput, ...] = (
    # predict breast, one case
    BadInput("missing phase (no --pre)", "predict breast", lambda d, o: _breast_predict(d, o, pre=None),
             "give the DCE phases (--pre and --post1, optionally --post2) or one dynamic series (--dce)"),
    BadInput("phase file that does not exist", "predict breast",
             lambda d, o: [*_breast_predict(d, o), "--post2", str(d / "nowhere.nrrd")], "nowhere.nrrd"),
    BadInput("a dynamic series given as one phase", "predict breast",
             lambda d, o: [*_breast_predict(d, o, pre=None), "--pre", _dce(d, o)[3]], "holds 2 frames"),
    BadInput("DCE series of one frame", "predict breast", lambda d, o: _dce(d, o, frames=("pre",)), "single frame"),
    BadInput("DCE frame that does not exist", "predict breast", lambda d, o: _dce(d, o, "--dce-frames", "0,5"),
             "frame(s) post1=5 do not exist; the series has frames 0–1"),
    BadInput("DCE frames out of order", "predict breast", lambda d, o: _dce(d, o, "--dce-frames", "1,0"),
             "must be distinct and in acquisition order"),
    BadInput("DCE series whose early frame has no contrast", "predict breast",
             lambda d, o: _dce(d, o, frames=("pre", "pre", "post1")),
             "shows no enhancement over pre (strongest 0.1 % of voxels: +0.0% of the pre-contrast signal, 5% needed): check that the phases are pre- and post-contrast series of the same DCE study, in the right order [from the DCE series: 3 frames without acquisition times"),
    BadInput("phases on different grids", "predict breast", lambda d, o: _breast_predict(d, o, pre=OTHER_GRID), "grid"),
    BadInput("NaN voxels", "predict breast", lambda d, o: _breast_predict(d, o, post1=NAN), "NaN or infinite"),
    BadInput("constant image", "predict breast", lambda d, o: _breast_predict(d, o, pre=FLAT), "every voxel has the value"),
    BadInput("2D image", "predict breast", lambda d, o: _breast_predict(d, o, post1=SLICE), "3D"),
    BadInput("empty mask", "predict breast", lambda d, o: _breast_predict(d, o, mask=EMPTY), "mask is empty"),
    BadInput("mask on another grid", "predict breast",
             lambda d, o: _breast_predict(d, o, mask=_blob((6, 16, 16))), "grid"),
    BadInput("unknown clinical category", "predict breast",
             lambda d, o: _breast_predict(d, o, "--clinical", '{"er": "maybe"}'), "unknown category 'maybe'"),
    BadInput("tumour side that is not a breast", "predict breast",
             lambda d, o: _breast_predict(d, o, "--clinical", '{"laterality": "middle"}'),
             "Tumour side (biopsy): unknown category 'middle'; allowed: left, right or unknown"),
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
    BadInput("pCR weights trained on another kinetic-feature definition", "predict breast",
             lambda d, o: _breast_predict(d, o, "--pcr-weights", _weights(d / "w", "breast_pcr", "other_features")),
             "reads kinetic features"),
    BadInput("segmentation card with an out-of-range outline growth", "predict breast",
             lambda d, o: _breast_predict(d, o, "--seg-weights", _weights(d / "w", "breast_seg", "bad_outline"),
                                          mask=None),
             "outline growth cannot be used"),
    # predict gradeguided, one case
    BadInput("no modality at all", "predict gradeguided", lambda d, o: _gg_predict(d, o, ct_nc=None, pet=None),
             "no imaging volume given"),
    BadInput("NaN voxels", "predict gradeguided", lambda d, o: _gg_predict(d, o, pet=NAN), "NaN or infinite"),
    BadInput("constant image", "predict gradeguided", lambda d, o: _gg_predict(d, o, ct_nc=FLAT),
             "every voxel has the value"),
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
             lambda d, o: _cohort("breast", d, o, lambda f: f.drop(columns="post1")), "column 'post1' is missing (first post-contrast phase (the reference grid); or give 'dce')"),
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
             lambda d, o: _cohort("breast", d, o, _set(0, "pre", "")),
             "line 2, column 'pre', value '': empty, but required (or fill 'dce')"),
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
    BadInput("missing column", "predict kinetics --manifest",
             lambda d, o: _cohort("kinetics", d, o, lambda f: f.drop(columns="post2")), "column 'post2' is missing"),
    BadInput("follow-up file that does not exist", "predict kinetics --manifest",
             lambda d, o: _cohort("kinetics", d, o, _set(1, "followup_post1", "images/K1/gone.nrrd")),
             "line 3, column 'followup_post1', value 'images/K1/gone.nrrd': file not found"),
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


# --- the Slicer Logic: the same bad inputs as MRML nodes -------------------------------------------
#
# Each entry builds its nodes in a real MRML scene (slicer-core), then makes one Logic call: the
# call must raise a specific ResponseAIError subclass, leave the scene's nodes exactly as they
# were and write no job folder. The Lib packages (BreastResponseAILib, GradeGuidedFusionLib) are
# imported inside the calls: they need the module folders on sys.path (conftest / the script).

LOGIC_SPACING = (2.0, 2.0, 3.0)
FAR_AWAY = (500.0, 0.0, 0.0)  # an origin no tumour here overlaps (LPS mm)


@dataclass(frozen=True)
class LogicBadInput:
    """One Logic entry: ``call(scene, job_folder)`` adds its nodes and returns the Logic call to make."""

    name: str
    entry: str
    call: Callable[[object, Path], Callable[[], object]]
    error: str  # the ResponseAIError subclass expected
    expect: str  # a fragment the message must contain
    known_gap: str = ""


@dataclass
class LogicOutcome:
    error_type: str  # "" when the call accepted the input
    message: str
    scene_unchanged: bool  # the same node IDs before and after the call
    nothing_written: bool  # no job folder was created


def _as_image(value: np.ndarray | Image) -> Image:
    return value if isinstance(value, Image) else Image(value, LOGIC_SPACING)


def _scene_inputs(scene, arrays: dict, reference: str) -> tuple[dict, object]:
    """Volume nodes (None where the array is None) and a tumour segmentation on ``reference``'s grid.

    An all-zero mask becomes a segmentation whose Tumour segment is empty, as the Segment Editor
    leaves it after "Add" without painting.
    """
    from responseai.slicer_bridge.nodes import add_segmentation_node, add_volume_node

    mask = arrays.pop("mask")
    nodes = {name: None if value is None else add_volume_node(scene, _as_image(value), name) for name, value in arrays.items()}
    grid_node = nodes.get(reference) or next((node for node in nodes.values() if node is not None), None)
    if grid_node is None:
        return nodes, None
    if np.any(mask):
        return nodes, add_segmentation_node(scene, _as_image(mask), grid_node, "lesion", "Tumour")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "lesion")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(grid_node)
    segmentation.GetSegmentation().AddEmptySegment("Tumour", "Tumour")
    return nodes, segmentation


def _breast_job(clinical: dict | None = None, **override) -> Callable[[object, Path], Callable[[], object]]:
    """BreastJobs.prepare on pre / post1 nodes and a tumour segmentation (the module's Predict button)."""
    def build(scene, folder: Path) -> Callable[[], object]:
        from BreastResponseAILib.logic import BreastJobs, BreastLogic

        nodes, segmentation = _scene_inputs(scene, breast_arrays(**override), "post1")
        return lambda: BreastJobs(BreastLogic(scene)).prepare("case", nodes, dict(clinical or {}), segmentation, folder)
    return build


def _breast_load(**override) -> Callable[[object, Path], Callable[[], object]]:
    """BreastLogic.load_case: images from files become nodes (the sample-data / scripted loading path)."""
    def build(scene, folder: Path) -> Callable[[], object]:  # noqa: ARG001 - load_case writes no files
        from BreastResponseAILib.logic import BreastLogic

        arrays = breast_arrays(**override)
        mask = arrays.pop("mask")
        phases = {name: _as_image(value) for name, value in arrays.items() if value is not None}
        return lambda: BreastLogic(scene).load_case("case", phases, _as_image(mask))
    return build


def _gg_job(clinical: dict | None = None, biopsy_grade: str | None = None, **override):
    """GradeGuidedLogic.prepare_job on ct_nc / pet nodes (the shipped model's card) and a tumour segmentation."""
    def build(scene, folder: Path) -> Callable[[], object]:
        from GradeGuidedFusionLib.logic import GradeGuidedLogic

        nodes, segmentation = _scene_inputs(scene, gradeguided_arrays(**override), "ct_nc")
        return lambda: GradeGuidedLogic(scene).prepare_job("case", nodes, segmentation, dict(clinical or {}),
                                                          biopsy_grade, folder=folder)
    return build


def _kinetics_job(patients: tuple[str, str] | None = None, **override):
    """KineticsLogic.prepare_job on pre / post1 / post2 nodes (+ a follow-up exam when ``patients`` are given)."""
    def build(scene, folder: Path) -> Callable[[], object]:
        from BreastResponseAILib.kinetics import KineticsLogic

        nodes, segmentation = _scene_inputs(scene, kinetics_arrays(**override), "post1")
        followup = _scene_inputs(scene, kinetics_arrays(), "post1")[0] if patients else None
        ids = patients or (None, None)
        return lambda: KineticsLogic(scene).prepare_job("case", nodes, segmentation, followup, None, *ids, folder=folder)
    return build


BREAST_JOB = "BreastResponseAI Logic: BreastJobs.prepare"
BREAST_LOAD = "BreastResponseAI Logic: BreastLogic.load_case"
GG_JOB = "GradeGuidedFusion Logic: prepare_job"
KINETICS_JOB = "BreastResponseAI kinetics Logic: prepare_job"

LOGIC_CASES: tuple[LogicBadInput, ...] = (
    LogicBadInput("missing phase node (no pre)", BREAST_JOB, _breast_job(pre=None), "MissingPhaseError",
                  "missing DCE phase(s): pre"),
    LogicBadInput("volumes on different grids", BREAST_JOB, _breast_job(pre=OTHER_GRID), "GeometryMismatchError",
                  "pre is not on the post1 grid"),
    LogicBadInput("NaN volume", BREAST_JOB, _breast_job(post1=NAN), "InvalidImageError", "NaN or infinite"),
    LogicBadInput("constant volume", BREAST_JOB, _breast_job(pre=FLAT), "InvalidImageError", "every voxel has the value"),
    LogicBadInput("empty segmentation", BREAST_JOB, _breast_job(mask=EMPTY), "EmptyMaskError", "the mask is empty"),
    LogicBadInput("unknown clinical category", BREAST_JOB, _breast_job({"er": "maybe"}), "ClinicalValueError",
                  "unknown category 'maybe'"),
    LogicBadInput("out-of-range clinical value", BREAST_JOB, _breast_job({"age": 150}), "ClinicalValueError",
                  "outside the allowed range 18–100"),
    LogicBadInput("empty mask", BREAST_LOAD, _breast_load(mask=EMPTY), "EmptyMaskError", "the mask is empty"),
    LogicBadInput("mask on another grid", BREAST_LOAD, _breast_load(mask=_blob((6, 16, 16))), "GeometryMismatchError",
                  "mask is not on the post1 grid"),
    LogicBadInput("no modality node", GG_JOB, _gg_job(ct_nc=None, pet=None), "MissingPhaseError",
                  "choose at least one of CT, MRI or PET"),
    LogicBadInput("volume outside the tumour's field of view (other grids are resampled)", GG_JOB,
                  _gg_job(pet=Image(gradeguided_arrays()["pet"], LOGIC_SPACING, FAR_AWAY)), "GeometryMismatchError",
                  "pet: the volume does not overlap the reference volume"),
    LogicBadInput("NaN volume", GG_JOB, _gg_job(ct_nc=NAN), "InvalidImageError", "NaN or infinite"),
    LogicBadInput("constant volume", GG_JOB, _gg_job(ct_nc=FLAT), "InvalidImageError", "every voxel has the value"),
    LogicBadInput("empty segmentation", GG_JOB, _gg_job(mask=EMPTY), "EmptyMaskError", "the mask is empty"),
    LogicBadInput("unknown clinical category", GG_JOB, _gg_job({"egfr": "maybe"}), "ClinicalValueError",
                  "unknown category 'maybe'"),
    LogicBadInput("out-of-range clinical value", GG_JOB, _gg_job({"pdl1": 150}), "ClinicalValueError",
                  "outside the allowed range 0–100"),
    LogicBadInput("unknown biopsy grade", GG_JOB, _gg_job(biopsy_grade="G7"), "UnknownGradeError", "grade 'G7' is not known"),
    LogicBadInput("missing phase node (no post2)", KINETICS_JOB, _kinetics_job(post2=None), "MissingPhaseError",
                  "missing: post2"),
    LogicBadInput("volumes on different grids", KINETICS_JOB, _kinetics_job(pre=OTHER_GRID), "GeometryMismatchError",
                  "pre is not on the post1 grid"),
    LogicBadInput("NaN volume", KINETICS_JOB, _kinetics_job(post2=NAN), "InvalidImageError", "NaN or infinite"),
    LogicBadInput("constant volume", KINETICS_JOB, _kinetics_job(post2=FLAT), "InvalidImageError",
                  "every voxel has the value"),
    LogicBadInput("empty segmentation", KINETICS_JOB, _kinetics_job(mask=EMPTY), "EmptyMaskError", "the mask is empty"),
    LogicBadInput("follow-up exam of another patient", KINETICS_JOB, _kinetics_job(("P1", "P2")), "PatientMismatchError",
                  "'P1' but the follow-up is of 'P2'"),
)


def _node_ids(scene) -> list[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def run_logic_bad_input(case: LogicBadInput, scene, folder: Path) -> LogicOutcome:
    """Build the entry's nodes, then make its Logic call; a non-ResponseAIError propagates (a bug)."""
    from responseai.errors import ResponseAIError

    job_folder = folder / "job"
    call = case.call(scene, job_folder)
    before = _node_ids(scene)
    try:
        call()
        error_type, message = "", ""
    except ResponseAIError as exc:
        error_type, message = type(exc).__name__, str(exc)
    return LogicOutcome(error_type, message, _node_ids(scene) == before, not job_folder.exists())
