"""Which of the core's third-party packages are missing from the running Python.

Stdlib only, so a Slicer module can call it before anything heavy is importable. The
installation itself is done by the caller (``slicer.util.pip_install`` after the user's
consent); this module only decides *what* to install, so the decision is testable here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[2] / "Resources" / "requirements.txt"
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==\s*([^\s;#]+))?")


def read_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """Requirement lines, comments and blanks dropped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def missing_requirements(requirements: list[str]) -> list[str]:
    """Requirements not installed, or installed at another version than an ``==`` pin."""
    missing = []
    for requirement in requirements:
        match = _NAME.match(requirement)
        if not match:
            continue
        name, pinned = match.group(1), match.group(3)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if pinned and installed.split("+")[0] != pinned:
            missing.append(requirement)
    return missing


def install_missing(pip_install: Callable[[str], None], path: Path = REQUIREMENTS) -> list[str]:
    """Install what is missing with the given installer; torch first so monai keeps its pin."""
    missing = missing_requirements(read_requirements(path))
    ordered = sorted(missing, key=lambda r: not r.startswith("torch"))
    for requirement in ordered:
        pip_install(requirement)
    return ordered


def ensure_installed(
    confirm: Callable[[str], bool], pip_install: Callable[[str], None], who: str, path: Path = REQUIREMENTS
) -> list[str]:
    """Ask once (``confirm``) and install what is missing; refuse to run without consent."""
    missing = missing_requirements(read_requirements(path))
    if not missing:
        return []
    question = f"{who} needs these Python packages, not yet installed:\n\n" + "\n".join(missing) + "\n\nInstall them now?"
    if not confirm(question):
        raise RuntimeError(f"{who} cannot run: required Python packages are not installed ({', '.join(missing)})")
    return install_missing(pip_install, path)
