"""The viewer's background work: the same commands the Slicer module's jobs run, in subprocesses.

``responseai predict <family>`` (exactly the command line ``BreastJobs.prepare`` builds for
Slicer's background job), ``responseai predict kinetics`` on the case's phases with a finished
prediction's tumour segment, ``responseai predict recurrence`` / ``crossmodal`` on the case
folder's other inputs when it holds them, and ``responseai report``. Each runs in its own process, started and
watched from a worker thread, so the page's event loop never blocks; progress is read back
from the job's ``PROGRESS`` lines (:func:`responseai.progress.parse_progress`) and a failure
becomes the job's own last error line (:func:`responseai.slicer_bridge.jobs.error_from_log`).
No trame, no MRML.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from responseai.errors import ResponseAIError
from responseai.progress import parse_progress
from responseai.slicer_bridge.jobs import error_from_log, job_environment, kill_process_tree, python_executable
from responseai.viewer.cases import (
    CROSSMODAL_INPUTS, DYNAMIC, FAMILY, PHASES, RECURRENCE_INPUTS, CaseEntry, family_piece, recurrence_clinical,
)

log = logging.getLogger(__name__)

ProgressSink = Callable[[int, str], None]


def prediction_command(entry: CaseEntry, clinical: Mapping[str, object], folder: Path,
                       family: str = FAMILY, mask: Path | None = None) -> list[str]:
    """Write the form's clinical values into ``folder`` and return the predict command line.

    Values are passed as entered ('' = unknown, left out): the job validates them again with
    the same schema, so the form can never send what the CLI would refuse. ``mask``: a tumour
    segment chosen in the page (an earlier run's runner-up candidate) in place of the case's own.
    """
    if entry.error:
        raise ResponseAIError(entry.error)
    folder.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in clinical.items() if v not in (None, "")}
    (folder / "clinical.json").write_text(json.dumps(record), encoding="utf-8")
    command = [python_executable(), "-m", "responseai.cli", "predict", family, "--case-id", entry.case_id,
               "--clinical", str(folder / "clinical.json"), "--out", str(folder / "out")]
    files = {name: entry.confined(entry.files[name]) for name in (*PHASES, "mask", DYNAMIC) if name in entry.files}
    if mask is not None:
        files["mask"] = Path(mask)
    for name, path in files.items():
        command += [f"--{name}", str(path)]
    return command + _frames_option(entry)


def _frames_option(entry: CaseEntry) -> list[str]:
    return ["--dce-frames", entry.dce_frames] if DYNAMIC in entry.files and entry.dce_frames else []


def runner_up_offer(prediction: Path, record: Mapping[str, object],
                    family: str = FAMILY) -> tuple[Path, str] | None:
    """A finished prediction's runner-up candidate as (its segment file, a line for the page), or None.

    When the automatic choice is wrong the tumour is mostly the second-ranked candidate (docs/segmentation.md);
    the breast job writes it beside the tumour segment and describes it in its ``result.json`` (``record``,
    already read by the caller). None when the prediction has none (the case's own mask was used, or there
    was one candidate).
    """
    path = Path(prediction) / family_piece("constants:RUNNER_UP_FILE", family)
    candidate = record.get("runner_up_candidate")
    if not path.is_file() or not isinstance(candidate, Mapping):
        return None
    side = candidate.get("side")
    where = f", {side} breast" if side in ("left", "right") else ""
    note = family_piece("constants:runner_up_note", family)(candidate)
    return path, f"{float(candidate['volume_ml']):.2f} ml{where}{note}"


def prediction_cautions(record: Mapping[str, object], family: str = FAMILY) -> str:
    """The family's warnings in a finished prediction's ``result.json`` (``record``), as one line for the page (empty
    when there are none): the report prints them above everything else, and the page must not say less."""
    keys = family_piece("constants:CAUTION_KEYS", family)
    return "; ".join(str(record[key]) for key in keys if record.get(key))


KINETICS_FAMILY = "kinetics"
KINETICS_PHASES = ("pre", "post1", "post2")  # the kinetics family's PHASES: all three are needed
PREDICTION_MASK = "tumour.seg.nrrd"  # the breast prediction's tumour segment (case mask or automatic)


def kinetics_available(entry: CaseEntry) -> bool:
    """The case has the three phases DCE kinetics needs (post2 is optional for the breast model)."""
    return not entry.error and (DYNAMIC in entry.files or all(name in entry.files for name in KINETICS_PHASES))


def kinetics_command(entry: CaseEntry, prediction: Path, out: Path) -> list[str]:
    """``responseai predict kinetics`` on the case's phases, ROI = the prediction's ``tumour.seg.nrrd``.

    The kinetics CLI reads a ``.seg.nrrd`` ROI itself (:func:`responseai.io.read_mask`), so the
    segment the breast job wrote (the case's mask, or its automatic segmentation) goes in as is.
    """
    if entry.error:
        raise ResponseAIError(entry.error)
    missing = [name for name in KINETICS_PHASES if name not in entry.files] if DYNAMIC not in entry.files else []
    if missing:
        raise ResponseAIError(f"{entry.case_id}: DCE kinetics needs the {', '.join(missing)} phase(s)")
    mask = Path(prediction) / PREDICTION_MASK
    if not mask.is_file():
        raise ResponseAIError(f"no tumour segment {mask.name} in {prediction}: run the prediction first")
    command = [python_executable(), "-m", "responseai.cli", "predict", KINETICS_FAMILY, "--case-id", entry.case_id]
    for name in (DYNAMIC,) if DYNAMIC in entry.files else KINETICS_PHASES:
        command += [f"--{name}", str(entry.confined(entry.files[name]))]
    return command + _frames_option(entry) + ["--mask", str(mask), "--out", str(out)]


RECURRENCE_FAMILY = "recurrence"
CROSSMODAL_FAMILY = "crossmodal"
RECURRENCE_OPTIONS = {"tiles": "--pathology", "ultrasound": "--ultrasound", "report": "--report-text"}


def recurrence_available(entry: CaseEntry) -> bool:
    """The case folder holds at least one recurrence input (tiles/, ultrasound.*, report.txt)."""
    return not entry.error and any(name in entry.files for name in RECURRENCE_INPUTS)


def crossmodal_available(entry: CaseEntry) -> bool:
    """The case folder holds a mammogram (the pathology tile(s) are optional)."""
    return not entry.error and all(name in entry.files for name in CROSSMODAL_INPUTS)


def recurrence_command(entry: CaseEntry, form: Mapping[str, object], folder: Path) -> list[str]:
    """Write the recurrence clinical record (:func:`~responseai.viewer.cases.recurrence_clinical`) into
    ``folder`` and return ``responseai predict recurrence`` on the case's inputs, ``--out folder/recurrence``."""
    if entry.error:
        raise ResponseAIError(entry.error)
    if not recurrence_available(entry):
        raise ResponseAIError(f"{entry.case_id}: no recurrence input (tiles/, ultrasound.*, report.txt) "
                              "in the case folder")
    folder.mkdir(parents=True, exist_ok=True)
    clinical = folder / "recurrence_clinical.json"
    clinical.write_text(json.dumps(recurrence_clinical(entry, form)), encoding="utf-8")
    command = [python_executable(), "-m", "responseai.cli", "predict", RECURRENCE_FAMILY, "--case-id", entry.case_id,
               "--clinical", str(clinical)]
    for name, option in RECURRENCE_OPTIONS.items():
        if name in entry.files:
            command += [option, str(entry.confined(entry.files[name]))]
    return command + ["--out", str(folder / "recurrence")]


def crossmodal_command(entry: CaseEntry, out: Path) -> list[str]:
    """``responseai predict crossmodal --mammogram [--pathology]`` on the case's files."""
    if entry.error:
        raise ResponseAIError(entry.error)
    if not crossmodal_available(entry):
        raise ResponseAIError(f"{entry.case_id}: no mammogram.* in the case folder for the cross-modal diagnosis")
    command = [python_executable(), "-m", "responseai.cli", "predict", CROSSMODAL_FAMILY, "--case-id", entry.case_id,
               "--mammogram", str(entry.confined(entry.files["mammogram"]))]
    if "pathology" in entry.files:
        command += ["--pathology", str(entry.confined(entry.files["pathology"]))]
    return command + ["--out", str(out)]


def read_result(out: Path) -> dict:
    """A finished job's ``result.json``."""
    try:
        return dict(json.loads((Path(out) / "result.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ResponseAIError(f"no readable result.json in {out}: {exc}") from exc


def recurrence_summary(record: Mapping[str, object]) -> dict[str, str]:
    """What the page shows of a recurrence result: risk group, RFS at each horizon, missing modalities."""
    rfs = record.get("rfs_probability") or {}
    return {"risk_group": str(record.get("risk_group", "")),
            "risk_score": f"{float(record['risk_score']):+.3f}" if record.get("risk_score") is not None else "—",
            "rfs": ", ".join(f"{h.rstrip('y')} y: {float(p):.2f}" for h, p in rfs.items()) or "—",
            "missing": ", ".join(record.get("missing_modalities") or []) or "none"}


def crossmodal_summary(record: Mapping[str, object]) -> dict[str, str]:
    """What the page shows of a cross-modal result: class, confidence, grade (malignant only), conclusion."""
    grade = record.get("predicted_grade") if record.get("grade_applies", True) else None
    return {"predicted_class": str(record.get("predicted_class", "")).replace("_", " "),
            "confidence": f"{float(record['confidence']):.3f}" if record.get("confidence") is not None else "—",
            "grade": str(grade) if grade else "not applicable",
            "conclusion": str(record.get("conclusion", ""))}


def report_command(prediction: Path, out: Path) -> list[str]:
    """``responseai report`` on a prediction folder (family read from its result.json)."""
    return [python_executable(), "-m", "responseai.cli", "report", "--prediction", str(prediction), "--out", str(out)]


class JobCancelled(ResponseAIError):
    """The user pressed Cancel: the job's processes were killed, nothing was loaded."""


class Job:
    """One subprocess run to completion with progress; :meth:`cancel` kills its whole tree."""

    def __init__(self, command: list[str], timeout: float = 900) -> None:
        self.command = command
        self.timeout = timeout
        self._process: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.cancelled = False

    def run(self, progress: ProgressSink | None = None) -> None:
        """Blocking: call from a worker thread. Raises ResponseAIError with the job's own message."""
        log.info("job: %s", " ".join(self.command))
        self._process = subprocess.Popen(self.command, env=job_environment(), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            percent, message = parse_progress(line)
            if percent is not None and progress is not None:
                progress(percent, message)
        code = self._process.wait(timeout=self.timeout)
        if self.cancelled:
            raise JobCancelled("cancelled: the prediction was stopped and nothing was loaded")
        if code != 0:
            raise ResponseAIError(error_from_log(self.lines))

    def cancel(self) -> None:
        """Kill the job's whole process tree (safe from any thread; a finished job is left alone)."""
        self.cancelled = True
        if self._process is not None and self._process.poll() is None:
            kill_process_tree(self._process.pid)
