"""Resolve the first-use requirements against each supported Slicer's bundled packages (needs PyPI).

For every Slicer in ``SLICER_BUNDLES``: adapt ``Resources/requirements.txt`` exactly as the module
does (:func:`responseai.slicer_bridge.dependencies.for_bundled_packages`), then ask pip's resolver
(``pip install --dry-run --python-version 3.12 --only-binary=:all:``) to install it *with Slicer's
numpy and pydicom pinned*. A conflict means the install would fail or replace a bundled package.
Not a unit test (it needs the package index): ``make check-slicer-requirements``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from responseai.slicer_bridge.dependencies import for_bundled_packages, read_requirements

log = logging.getLogger("check_slicer_requirements")
# Read from each release's bundled Python (Slicer 5.10 = Python 3.12.10; 5.12.3 = Python 3.12.10).
SLICER_BUNDLES = {"5.10": {"numpy": "2.0.2", "pydicom": "2.4.4"}, "5.12": {"numpy": "2.4.6", "pydicom": "3.0.2"}}
PYTHON = "3.12"


def resolve(slicer: str, bundled: dict[str, str]) -> dict:
    """pip's resolution of the adapted requirements with the bundle pinned; raises on a conflict."""
    requirements = for_bundled_packages(read_requirements(), bundled.get)
    pins = [f"{name}=={version}" for name, version in bundled.items()]
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--python-version", PYTHON, "--only-binary=:all:", "--target", str(Path(work) / "t"),
                   "--report", str(report), *requirements, *pins]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"Slicer {slicer}: the requirements do not resolve:\n{done.stderr[-3000:]}")
        chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                  for item in json.loads(report.read_text(encoding="utf-8"))["install"]}
    changed = {name: chosen.get(name) for name, version in bundled.items() if chosen.get(name) != version}
    if changed:
        raise SystemExit(f"Slicer {slicer}: the install would change bundled packages: {changed}")
    return {"slicer": slicer, "python": PYTHON, "requirements": requirements,
            "kept": bundled, "torch": chosen.get("torch"), "highdicom": chosen.get("highdicom"), "n_packages": len(chosen)}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for slicer, bundled in SLICER_BUNDLES.items():
        log.info("%s", json.dumps(resolve(slicer, bundled)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
