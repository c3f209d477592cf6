"""Output folders that are either complete or untouched, and JSON that strict readers accept.

A crash halfway through a case must not leave a mask without its result.json, or overwrite
yesterday's report with half of today's. Work is written to a hidden staging folder beside
the destination and moved in only when everything succeeded.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def staged_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``out``, on error discard it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        out.mkdir(exist_ok=True)
        for item in sorted(staging.iterdir()):
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def json_safe(value: object) -> object:
    """NaN / inf → None (JSON null) recursively: bare ``NaN`` is not JSON and breaks strict readers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
