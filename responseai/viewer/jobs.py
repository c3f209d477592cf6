"""The viewer's background work: the same commands the Slicer module's jobs run, in subprocesses.

``responseai predict <family>`` (exactly the command line ``BreastJobs.prepare`` builds for
Slicer's background job), ``responseai predict kinetics`` on the case's phases with a finished
prediction's tumour segment, and ``responseai report``. Each runs in its own process, started and
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
from responseai.viewer.cases import FAMILY, PHASES, CaseEntry

log = logging.getLogger(__name__)

ProgressSink = Callable[[int, str], None]


def prediction_command(entry: CaseEntry, clinical: Mapping[str, object], folder: Path,
                       family: str = FAMILY) -> list[str]:
    """Write the form's clinical values into ``folder`` and return the predict command line.

    Values are passed as entered ('' = unknown, left out): the job validates them again with
    the same schema, so the form can never send what the CLI would refuse.
    """
    if entry.error:
        raise ResponseAIError(entry.error)
    folder.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in clinical.items() if v not in (None, "")}
    (folder / "clinical.json").write_text(json.dumps(record), encoding="utf-8")
    command = [python_executable(), "-m", "responseai.cli", "predict", family, "--case-id", entry.case_id,
               "--clinical", str(folder / "clinical.json"), "--out", str(folder / "out")]
    for name in (*PHASES, "mask"):
        if name in entry.files:
            command += [f"--{name}", str(entry.confined(entry.files[name]))]
    return command


KINETICS_FAMILY = "kinetics"
KINETICS_PHASES = ("pre", "post1", "post2")  # the kinetics family's PHASES: all three are needed
PREDICTION_MASK = "tumour.seg.nrrd"  # the breast prediction's tumour segment (case mask or automatic)


def kinetics_available(entry: CaseEntry) -> bool:
    """The case has the three phases DCE kinetics needs (post2 is optional for the breast model)."""
    return not entry.error and all(name in entry.files for name in KINETICS_PHASES)


def kinetics_command(entry: CaseEntry, prediction: Path, out: Path) -> list[str]:
    """``responseai predict kinetics`` on the case's phases, ROI = the prediction's ``tumour.seg.nrrd``.

    The kinetics CLI reads a ``.seg.nrrd`` ROI itself (:func:`responseai.io.read_mask`), so the
    segment the breast job wrote (the case's mask, or its automatic segmentation) goes in as is.
    """
    if entry.error:
        raise ResponseAIError(entry.error)
    missing = [name for name in KINETICS_PHASES if name not in entry.files]
    if missing:
        raise ResponseAIError(f"{entry.case_id}: DCE kinetics needs the {', '.join(missing)} phase(s)")
    mask = Path(prediction) / PREDICTION_MASK
    if not mask.is_file():
        raise ResponseAIError(f"no tumour segment {mask.name} in {prediction}: run the prediction first")
    command = [python_executable(), "-m", "responseai.cli", "predict", KINETICS_FAMILY, "--case-id", entry.case_id]
    for name in KINETICS_PHASES:
        command += [f"--{name}", str(entry.confined(entry.files[name]))]
    return command + ["--mask", str(mask), "--out", str(out)]


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
