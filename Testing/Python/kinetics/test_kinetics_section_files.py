"""The kinetics panel's files: valid .ui holding every widget the section uses, no core import at load time."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MODULE = ROOT / "BreastResponseAI"
SECTION = MODULE / "BreastResponseAISections" / "kinetics.py"


def _widgets(ui: Path) -> dict[str, str]:
    tree = ET.parse(ui)
    assert tree.getroot().tag == "ui"
    return {w.get("name"): w.get("class") for w in tree.iter("widget")}


def test_the_ui_holds_every_widget_the_section_and_its_base_use():
    source = SECTION.read_text(encoding="utf-8")
    ui_file = re.search(r'uiFile = "([^"]+)"', source).group(1)
    widgets = _widgets(MODULE / "Resources" / ui_file)
    used = set(re.findall(r"self\.ui\.(\w+)", source)) | {"runButton", "cancelButton", "progressBar", "statusLabel"}
    used |= set(re.findall(r'"(followup\w+Selector)"', source))
    assert used <= set(widgets), sorted(used - set(widgets))
    assert widgets["KineticsSection"] == "qMRMLWidget"  # the base section calls setMRMLScene on it
    form = _widgets(MODULE / "Resources" / "UI" / "BreastResponseAI.ui")
    named = set(ast.literal_eval(re.search(r"FORM_SELECTORS = (\{[^}]*\})", source).group(1)).values())
    named.add(re.search(r'FORM_SEGMENTATION = "(\w+)"', source).group(1))
    assert named <= set(form), sorted(named - set(form))


def test_the_section_imports_no_core_at_load_time():
    tree = ast.parse(SECTION.read_text(encoding="utf-8"))
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert top <= {"slicer", "qt", "ctk", "ResponseAICommonLib"}
    section = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KineticsSection")
    assert [b.id for b in section.bases] == ["ResponseAISection"]
