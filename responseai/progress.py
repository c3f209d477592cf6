"""Progress of a long job as parseable log lines: ``PROGRESS <percent> <message>``.

Every prediction (breast, grade-guided, …) reports through :func:`log_progress`; the Slicer
job runner and the browser viewer read the same lines back with :func:`parse_progress`, so a
family adds progress reporting without touching either front end. Stdlib only: the Slicer
widget calls :func:`parse_progress` before the core's dependencies are installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("responseai.progress")

Progress = Callable[[int, str], None]


def log_progress(percent: int, message: str) -> None:
    """Default progress sink: one parseable log line per step."""
    log.info("PROGRESS %d %s", percent, message)


def parse_progress(line: str) -> tuple[int | None, str]:
    """Read a ``PROGRESS <percent> <message>`` line written by :func:`log_progress`."""
    _, marker, rest = line.partition("PROGRESS ")
    if not marker:
        return None, ""
    percent, _, message = rest.partition(" ")
    return (int(percent), message) if percent.isdigit() else (None, "")
