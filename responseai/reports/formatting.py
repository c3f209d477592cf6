"""One text form for every value a person reads: in a Slicer table, a report row or the viewer.

Plain Python (no VTK, no matplotlib), so a report can be built as data anywhere.
"""

from __future__ import annotations


def format_value(value: object) -> str:
    """One readable text form for tables and reports: 3 decimals (1 from 10 up), yes/no, comma lists."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    if value is None:
        return "—"
    return str(value)
