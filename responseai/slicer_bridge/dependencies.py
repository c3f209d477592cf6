"""What the core needs installed in Slicer's Python, and whether this Slicer can have it.

Stdlib only, so a Slicer module can call it before anything heavy is importable. The
installation itself is done by the caller (``slicer.util.pip_install`` and, for torch, the
PyTorch extension when present, after the user's consent); this module decides *what* to
install and in which order, so the decision is testable outside Slicer.

Slicer's bundled numpy, SimpleITK, pydicom and requests are never installed or upgraded: its
own DICOM import calls pydicom, and a pydicom 3 over Slicer 5.10's pydicom 2.4 breaks it.
highdicom (DICOM SEG export) is installed only where Slicer bundles pydicom 3: highdicom ≥ 0.23
needs pydicom 3, and 0.22, the last for pydicom 2, fails with numpy 2 (both bundled by 5.10), so
on 5.10 the SEG export says it is unavailable and the mask is written as .seg.nrrd.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from responseai.errors import ResponseAIError
from responseai.resources import requirements_path

_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==\s*([^\s;#]+))?")
MIN_SLICER = (5, 10)  # Python 3.12; Slicer 5.8 has Python 3.9, on which torch 2.13 does not install
MIN_PYTHON = (3, 10)
SLICER_BUNDLED = ("numpy", "simpleitk", "pydicom", "requests", "vtk")
NEEDS_PYDICOM_3 = ("highdicom",)  # skipped where Slicer bundles pydicom 2 (see the module docstring)
DOWNLOAD_NOTE = ("about 1 GB to download and install (torch ≈ 200–900 MB depending on the platform, "
                 "MONAI, scikit-learn, pandas and smaller packages); Slicer's own numpy, SimpleITK and "
                 "pydicom are kept")

VersionOf = Callable[[str], str | None]


class UnsupportedSlicerError(ResponseAIError):
    """This Slicer (or its Python) is older than the versions the models can be installed into."""


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_supported(slicer_version: tuple[int, int], python_version: tuple[int, int] = sys.version_info[:2]) -> None:
    """Refuse an old Slicer with a clear message instead of a failed multi-GB install."""
    if tuple(slicer_version) < MIN_SLICER or tuple(python_version) < MIN_PYTHON:
        raise UnsupportedSlicerError(
            f"ResponseAI needs 3D Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or newer (Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}+); this is Slicer {slicer_version[0]}.{slicer_version[1]} with Python "
            f"{python_version[0]}.{python_version[1]}, where PyTorch 2.13 cannot be installed. Please update Slicer."
        )


def read_requirements(path: Path | None = None) -> list[str]:
    """Requirement lines, comments and blanks dropped."""
    path = path or requirements_path()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    return match.group(1).lower() if match else requirement.lower()


def for_bundled_packages(requirements: list[str], version_of: VersionOf = installed_version) -> list[str]:
    """The requirements adapted to what this Slicer bundles; bundled packages are dropped, never replaced."""
    pydicom = version_of("pydicom")
    adapted = []
    for requirement in requirements:
        name = _name(requirement)
        if name in SLICER_BUNDLED:
            continue
        if name in NEEDS_PYDICOM_3 and pydicom is not None and int(pydicom.split(".")[0]) < 3:
            continue
        adapted.append(requirement)
    return adapted


def bundled_constraints(version_of: VersionOf = installed_version) -> list[str]:
    """``name==version`` of each bundled package present: a pip constraints file that forbids replacing them."""
    return [f"{name}=={version}" for name in SLICER_BUNDLED if (version := version_of(name))]


def missing_requirements(requirements: list[str], version_of: VersionOf = installed_version) -> list[str]:
    """Requirements not installed, or installed at another version than an ``==`` pin; torch first."""
    missing = []
    for requirement in requirements:
        match = _NAME.match(requirement)
        if not match:
            continue
        name, pinned = match.group(1), match.group(3)
        installed = version_of(name)
        if installed is None or (pinned and installed.split("+")[0] != pinned):
            missing.append(requirement)
    # torch first, so that monai's unpinned torch requirement finds the pinned one installed
    return sorted(missing, key=lambda r: _name(r) != "torch")


def install_plan(path: Path | None = None, version_of: VersionOf = installed_version) -> list[str]:
    """What to install into this Python, in order (empty when everything is there)."""
    return missing_requirements(for_bundled_packages(read_requirements(path), version_of), version_of)


def consent_question(who: str, plan: list[str]) -> str:
    """The consent dialog's text: what, how big, and what is left alone."""
    return (f"{who} needs these Python packages, not yet installed in Slicer:\n\n" + "\n".join(plan)
            + f"\n\nThat is {DOWNLOAD_NOTE}. Install them now?")


def ensure_installed(
    confirm: Callable[[str], bool],
    pip_install: Callable[[str], None],
    who: str,
    path: Path | None = None,
    install_torch: Callable[[str], None] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    version_of: VersionOf = installed_version,
) -> list[str]:
    """Ask once (``confirm``) and install what is missing; refuse to run without consent.

    ``install_torch(requirement)`` installs torch when given (the PyTorch extension picks the
    right CPU / CUDA build); ``progress(done, total, requirement)`` is called before each package.
    """
    plan = install_plan(path, version_of)
    if not plan:
        return []
    if not confirm(consent_question(who, plan)):
        raise ResponseAIError(f"{who} cannot run: required Python packages are not installed ({', '.join(plan)})")
    for done, requirement in enumerate(plan):
        if progress is not None:
            progress(done, len(plan), requirement)
        if _name(requirement) == "torch" and install_torch is not None:
            install_torch(requirement)
        else:
            pip_install(requirement)
    return plan
