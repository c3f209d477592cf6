"""What a fresh Slicer needs: consent-based install that leaves Slicer's packages alone, panels that
work before it, a Cancel that ends the whole job, and an extension that installs its resources."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from responseai.errors import ResponseAIError
from responseai.resources import RESOURCES
from responseai.slicer_bridge import dependencies
from responseai.slicer_bridge.jobs import kill_process_tree, process_tree

ROOT = Path(__file__).resolve().parents[3]
# Slicer 5.10.x and 5.12.x bundle these (read from their Python: pip list), checked against the pins below.
SLICER_BUNDLES = {"5.10": {"numpy": "2.0.2", "pydicom": "2.4.4"}, "5.12": {"numpy": "2.4.6", "pydicom": "3.0.2"}}


def _versions(table: dict):
    return lambda name: table.get(name.lower())


def test_consent_order_and_refusal(tmp_path: Path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nnumpy\nmonai==1.6.1\ntorch==2.13.0\nhighdicom>=0.23\n", encoding="utf-8")
    have = _versions({"numpy": "2.0.2", "pydicom": "3.0.2", "monai": "1.6.1"})
    plan = dependencies.install_plan(requirements, have)
    assert plan == ["torch==2.13.0", "highdicom>=0.23"]  # torch first; numpy never touched
    pip, torch, steps = [], [], []
    with pytest.raises(ResponseAIError, match="not installed"):
        dependencies.ensure_installed(lambda q: False, pip.append, "BreastResponseAI", requirements, version_of=have)
    assert pip == []
    questions = []
    done = dependencies.ensure_installed(lambda q: questions.append(q) or True, pip.append, "BreastResponseAI",
                                         requirements, install_torch=torch.append,
                                         progress=lambda i, n, r: steps.append((i, n, r)), version_of=have)
    assert done == plan and torch == ["torch==2.13.0"] and pip == ["highdicom>=0.23"]
    assert steps == [(0, 2, "torch==2.13.0"), (1, 2, "highdicom>=0.23")]
    assert "torch==2.13.0" in questions[0] and "GB" in questions[0] and "kept" in questions[0]


@pytest.mark.parametrize("slicer", sorted(SLICER_BUNDLES))
def test_shipped_requirements_never_replace_what_slicer_bundles(slicer: str):
    plan = dependencies.for_bundled_packages(dependencies.read_requirements(), _versions(SLICER_BUNDLES[slicer]))
    names = {re.split(r"[=<>!~ ]", r)[0].lower() for r in plan}
    assert "torch" in names and "jsonschema" in names and not names & {"numpy", "simpleitk", "pydicom", "requests"}
    # highdicom >= 0.23 requires pydicom >= 3: on Slicer 5.10 it would pull pydicom 3 over Slicer's 2.4.4
    # (and 0.22, the last for pydicom 2, fails with Slicer 5.10's numpy 2): no highdicom there
    assert ("highdicom" in names) == (slicer != "5.10")


def test_bundled_versions_become_pip_constraints():
    constraints = dependencies.bundled_constraints(_versions({**SLICER_BUNDLES["5.10"], "simpleitk": "2.4.0"}))
    assert constraints == ["numpy==2.0.2", "simpleitk==2.4.0", "pydicom==2.4.4"]


def test_old_slicer_is_refused_with_a_clear_message():
    with pytest.raises(dependencies.UnsupportedSlicerError, match="needs 3D Slicer 5.10 or newer.*Slicer 5.8"):
        dependencies.check_supported((5, 8), (3, 9))
    dependencies.check_supported((5, 10), (3, 12))
    dependencies.check_supported((5, 12), (3, 12))


def test_every_resource_read_at_run_time_is_installed_by_cmake():
    """The installed extension must hold what responseai.resources resolves: models, schemas, requirements."""
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    installed = set(re.findall(r"^\s+(Resources/\S+)\s*$", cmake, re.M))
    for pattern in re.findall(r"file\(GLOB \w+ RELATIVE \S+ ([^)]+)\)", cmake):
        installed |= {str(p.relative_to(ROOT)) for glob in pattern.split() for p in ROOT.glob(glob)}
    assert "RESPONSEAI_MODEL_FILES" in cmake.split("foreach(runtime_file")[1].split(")")[0]
    needed = {str(p.relative_to(ROOT)) for folder in ("Models", "Schemas") for p in (RESOURCES / folder).iterdir()}
    needed.add("Resources/requirements.txt")
    assert needed and needed <= installed, sorted(needed - installed)
    # and nothing else in the code builds a Resources path behind resources.py's back
    hits = [p for p in (ROOT / "responseai").rglob("*.py") if '"Resources"' in p.read_text(encoding="utf-8")]
    assert [p.name for p in hits] == ["resources.py"]
    assert "add_subdirectory(ResponseAICommon)" in cmake


LAUNCHER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")  # a zombie is dead


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process tree")
def test_cancel_kills_the_launcher_and_the_python_it_started():
    """PythonSlicer is a launcher whose child runs the model: Cancel must end both."""
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    assert set(process_tree(launcher.pid)) >= {launcher.pid, child}
    kill_process_tree(launcher.pid)
    launcher.wait(timeout=5)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


BLOCKED = ("torch", "monai", "pandas", "sklearn", "imblearn", "highdicom", "jsonschema", "matplotlib", "lifelines",
           "sksurv", "skimage", "safetensors", "slicerio", "tqdm", "trame_slicer")
BEFORE_CONSENT = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not bundled with Slicer")
sys.meta_path.insert(0, Refuse())
# what the widgets call before the dependency check (ResponseAICommonLib.widget, both module files)
from responseai.breast.constants import BREAST_SCHEMA
from responseai.clinical import field_errors
from responseai.gradeguided.constants import CLINICAL_SCHEMA
from responseai.gradeguided.form import modality_status
from responseai.progress import parse_progress
from responseai.slicer_bridge.dependencies import check_supported, install_plan
from responseai.slicer_bridge.jobs import error_from_log, kill_process_tree
from responseai.reports.snapshots import tumour_centre_ras
assert field_errors({{"age": "250"}}, BREAST_SCHEMA)["age"].startswith("Age")
assert "egfr" in field_errors({{"egfr": "maybe"}}, CLINICAL_SCHEMA)
assert "Missing" in modality_status({{"ct_nc": object()}})
assert parse_progress("x PROGRESS 10 segmenting") == (10, "segmenting")
assert error_from_log(["t ERROR responseai: bad age"]) == "bad age"
check_supported((5, 10), (3, 12))
install_plan()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("ok")
"""


def test_what_runs_before_the_install_needs_only_what_slicer_bundles():
    code = BEFORE_CONSENT.format(blocked=BLOCKED)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
