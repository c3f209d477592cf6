"""The Slicer module files: valid .ui, every looked-up widget exists, no core import at load time."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODULES = ("BreastResponseAI", "GradeGuidedFusion")


def _ui_widget_names(module: str) -> set[str]:
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    assert tree.getroot().tag == "ui"
    return {w.get("name") for w in tree.iter("widget")}


@pytest.mark.parametrize("module", MODULES)
def test_every_widget_the_code_uses_exists_in_the_ui(module: str):
    names = _ui_widget_names(module)
    source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used <= names, f"missing in .ui: {sorted(used - names)}"


@pytest.mark.parametrize("module", MODULES)
def test_parameter_names_in_ui_are_parameter_node_fields(module: str):
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    bound = {
        prop.findtext("string")
        for prop in tree.iter("property")
        if prop.get("name") == "SlicerParameterName"
    }
    source = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    wrapper = next(n for n in source.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
    fields = {s.target.id for s in wrapper.body if isinstance(s, ast.AnnAssign)}
    assert bound and bound <= fields, f"unbound names: {sorted(bound - fields)}"


@pytest.mark.parametrize("module", MODULES)
def test_module_file_imports_no_core_at_load_time(module: str):
    """Slicer must start even before torch/MONAI are installed: core imports only inside functions."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    imported = {a.name.split(".")[0] for n in top_level if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in top_level if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"responseai", f"{module}Lib", "torch", "monai", "numpy", "SimpleITK"}


@pytest.mark.parametrize("module", (*MODULES, "ResponseAICommon"))
def test_module_cmake_lists_every_script_and_resource(module: str):
    cmake = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8").replace("${MODULE_NAME}", module)
    for path in re.findall(r"^\s+(\S+\.(?:py|png|ui))\s*$", cmake, re.M):
        assert (ROOT / module / path).exists(), path
    for script in (ROOT / module / f"{module}Lib").glob("*.py"):
        assert f"{module}Lib/{script.name}" in cmake


def test_clinical_form_matches_the_core_schema():
    """Every schema variable has a bound widget and, if categorical, the same choices + unknown."""
    from responseai.breast.constants import CLINICAL_SCHEMA

    module = "BreastResponseAI"
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    fields = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "CLINICAL_FIELDS")
    assert [e.value for e in fields.value.elts] == list(CLINICAL_SCHEMA)
    wrapper = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
    for statement in (s for s in wrapper.body if isinstance(s, ast.AnnAssign)):
        variable = CLINICAL_SCHEMA.get(statement.target.id)
        if variable is None:
            continue
        choices = [c for c in ast.walk(statement.annotation) if isinstance(c, ast.List)]
        if variable.is_categorical:
            assert [e.value for e in choices[0].elts] == ["unknown", *variable.categories]
        else:
            assert not choices and statement.value.value == ""
    ui = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    bound = {p.findtext("string") for p in ui.iter("property") if p.get("name") == "SlicerParameterName"}
    assert set(CLINICAL_SCHEMA) <= bound


# Core modules a widget may import before the consent-based install (stdlib + what Slicer bundles);
# test_slicer_install.py imports each of them with torch, pandas, sklearn … refused.
BEFORE_INSTALL = {"responseai.clinical", "responseai.progress", "responseai.slicer_bridge.jobs",
                  "responseai.slicer_bridge.dependencies", "responseai.breast.constants",
                  "responseai.gradeguided.constants", "responseai.gradeguided.form", "responseai.reports.snapshots"}
WIDGET_FILES = [*(ROOT / m / f"{m}.py" for m in MODULES), ROOT / "ResponseAICommon" / "ResponseAICommonLib" / "widget.py"]


@pytest.mark.parametrize("path", WIDGET_FILES, ids=lambda p: p.name)
def test_heavy_core_imports_come_after_the_dependency_install(path: Path):
    """A widget function may import the models' code only after touching ``.core`` (which installs first)."""
    for function in (n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.FunctionDef)):
        heavy = [n.lineno for n in ast.walk(function) if isinstance(n, ast.ImportFrom) and n.module
                 and (n.module.endswith("Lib.logic") or n.module.startswith("responseai"))
                 and n.module not in BEFORE_INSTALL]
        if not heavy or function.name == "createCore":  # createCore is called by .core, after the install
            continue
        core = [n.lineno for n in ast.walk(function) if isinstance(n, ast.Attribute) and n.attr == "core"]
        assert core and min(core) < min(heavy), f"{path.name}:{function.name} imports the core before .core"


@pytest.mark.parametrize("module,family", [("BreastResponseAI", "breast"), ("GradeGuidedFusion", "gradeguided")])
def test_every_clinical_choice_has_a_readable_label(module: str, family: str):
    """Combo boxes show labels ('Luminal A'), never a code ('luminal_a') the clinician has to decode;
    stage notations (T2, N1, III) are shown as they are."""
    import importlib

    labels = importlib.import_module(f"responseai.{family}.constants").CATEGORY_LABELS
    source = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    wrapper = next(n for n in source.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
    clinical = {s.target.id: s for s in wrapper.body if isinstance(s, ast.AnnAssign)}
    choices = [c.value for name, s in clinical.items() if name != "biopsyGrade"
               for call in ast.walk(s.annotation) if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Choice"
               for c in call.args[0].elts]
    worded = {c for c in choices if any(ch.islower() for ch in c)}  # T2, N1, III are read as they are
    assert worded and worded <= set(labels), sorted(worded - set(labels))
