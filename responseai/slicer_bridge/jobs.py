"""Background prediction jobs shared by both Slicer modules (no Qt: the widget owns the QProcess).

A job is a command line running the core in a separate Python process, so the models never
block Slicer's GUI and Cancel can kill them. This module decides *how* such a process is
started (which interpreter, which import path), how it is stopped (the whole process tree),
and how its failure is turned into the one message a user should read. Stdlib only: the
Slicer widget uses it before the core's dependencies are installed.
"""

from __future__ import annotations

import os
import shutil
import signal
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


def _children_linux(pid: int) -> list[int]:
    """Direct children of ``pid`` from ``/proc`` (stdlib: psutil is not bundled with Slicer)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _children_pgrep(pid: int) -> list[int]:
    """Direct children of ``pid`` on macOS / BSD (no /proc)."""
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in done.stdout.split()]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first."""
    children = _children_linux if Path("/proc/self/stat").exists() else _children_pgrep
    tree, frontier = [pid], [pid]
    while frontier:
        found = [child for parent in frontier for child in children(parent) if child not in tree]
        tree += found
        frontier = found
    return tree


def kill_process_tree(pid: int) -> None:
    """Kill a job and everything it started.

    Slicer's ``PythonSlicer`` is a launcher that runs the real Python as its child: killing the
    launcher alone leaves the model running. The tree is collected first (children are
    re-parented once their parent dies), then every process is killed, children first.
    """
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True)
        return
    for member in reversed(process_tree(pid)):
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
