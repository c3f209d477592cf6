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


def run_case_command(predict: Callable[[], str]) -> int:
    """The body every family's one-case ``predict`` shares: 0 and a final ``PROGRESS 100`` line
    saying what was found, or 2 and one ERROR line for a user's mistake (never a traceback).

    ``predict`` reads, predicts and writes one case and returns the closing message. The ERROR
    line is what the Slicer job and the browser viewer show (``error_from_log``).
    """
    from responseai.errors import ResponseAIError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        message = predict()
    except ResponseAIError as exc:
        log.error("%s", exc)
        return 2
    log_progress(100, message)
    return 0


def parse_progress(line: str) -> tuple[int | None, str]:
    """Read a ``PROGRESS <percent> <message>`` line written by :func:`log_progress`."""
    _, marker, rest = line.partition("PROGRESS ")
    if not marker:
        return None, ""
    percent, _, message = rest.partition(" ")
    return (int(percent), message) if percent.isdigit() else (None, "")
