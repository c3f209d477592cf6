"""Where the product's run-time resources live: the one place that resolves ``Resources/``.

The same layout holds in a source checkout, in a pip install of this checkout (editable) and in
the installed Slicer extension, because ``CMakeLists.txt`` installs ``Resources/`` next to the
``responseai`` package (``<lib>/responseai`` and ``<lib>/Resources``). Nothing else in the code
builds this path, so a new resource needs a CMake line and nothing more.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[1] / "Resources"


def resource_path(*parts: str) -> Path:
    """A file or folder under ``Resources/`` (it may not exist: callers report that themselves)."""
    return RESOURCES.joinpath(*parts)


def model_path(name: str) -> Path:
    """A shipped model's weights, ``Resources/Models/<name>.safetensors`` (its card sits beside it)."""
    return resource_path("Models", f"{name}.safetensors")


def schema_path(report_type: str) -> Path:
    """The JSON schema of a report type, ``Resources/Schemas/<type>_report.schema.json``."""
    return resource_path("Schemas", f"{report_type}_report.schema.json")


def requirements_path() -> Path:
    """The third-party packages Slicer installs on first use (``Resources/requirements.txt``)."""
    return resource_path("requirements.txt")
