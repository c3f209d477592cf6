"""Background prediction jobs shared by both Slicer modules (no Qt: the widget owns the QProcess).

A job is a command line running the core in a separate Python process, so the models never
block Slicer's GUI and Cancel can kill them. This module decides *how* such a process is
started (which interpreter, which import path) and how its failure is turned into the one
message a user should read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import responseai
from responseai.errors import ResponseAIError

CORE_PARENT = Path(responseai.__file__).resolve().parents[1]  # so the job process imports this same core


@dataclass
class PredictionJob:
    """A prepared background prediction: inputs written to ``folder``, results expected in ``out``."""

    folder: Path
    command: list[str]
    env: dict[str, str]

    @property
    def out(self) -> Path:
        return self.folder / "out"


def python_executable() -> str:
    """Slicer's ``PythonSlicer`` when present (inside the app), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def job_environment() -> dict[str, str]:
    """This process's environment with the core's folder first on ``PYTHONPATH``."""
    paths = [str(CORE_PARENT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def error_from_log(lines: list[str]) -> str:
    """The job's last ``ERROR`` message (the core's specific one), else the last line."""
    errors = [line.split(": ", 1)[-1] for line in lines if " ERROR " in line]
    if errors:
        return errors[-1]
    return "the prediction process failed" + (f": {lines[-1]}" if lines else "")


def run_command(command: list[str], env: dict[str, str], timeout: float = 600) -> None:
    """Run a job to completion (tests, scripting); raise with the job's own error message."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ResponseAIError(error_from_log((done.stdout + done.stderr).splitlines()))
