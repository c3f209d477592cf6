"""Import rules of the layout (see helpers/import_rules.py): no cycles, base ⟂ families, core ⟂ training, Qt only in modules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from import_rules import cycles, gui_violations, internal_edges, layering_violations, project_sources, scan
from responseai import registry

ROOT = Path(__file__).resolve().parents[3]
FAMILIES = registry.FAMILY_PACKAGES
SLICER_MODULES = ("BreastResponseAI", "GradeGuidedFusion", "ResponseAICommon")


@pytest.fixture(scope="module")
def project():
    return scan(ROOT, project_sources(ROOT))


def test_there_is_something_to_check(project):
    assert {"responseai.cli", "responseai.registry", "responseai.breast.inference", "responseai.gradeguided.model",
            "training.train"} <= project.files.keys()
    assert sum(len(v) for v in internal_edges(project).values()) > 100


def test_no_import_cycles(project):
    assert cycles(internal_edges(project)) == []


def test_base_families_and_training_keep_to_their_layers(project):
    assert layering_violations(project, FAMILIES) == []


def test_only_the_module_files_import_qt(project):
    libs = [p for m in SLICER_MODULES for p in (ROOT / m).glob("*Lib/*.py") if m != "ResponseAICommon"]
    assert gui_violations(project) == []
    assert gui_violations(scan(ROOT, libs)) == []


def test_a_module_never_imports_another_modules_files():
    for module in SLICER_MODULES:
        sources = [ROOT / module / f"{module}.py", *(ROOT / module).glob("*Lib/*.py"), *(ROOT / module).glob("*Sections/*.py")]
        imported = {t.split(".")[0] for targets in scan(ROOT, sources).imports.values() for t in targets}
        others = {m for m in SLICER_MODULES if m not in (module, "ResponseAICommon")}
        assert not imported & ({*others} | {f"{m}Lib" for m in others}), module


def test_every_registry_entry_point_exists():
    """The registry names modules by string (late binding): each name must be a real module / function."""
    for family in registry.families().values():
        targets = [family.predict, family.report, family.synth, family.bench, family.demo,
                   *family.evaluate.values(), *family.train.values()]
        for target in filter(None, targets):
            module, _, attribute = target.partition(":")
            path = ROOT / Path(*module.split("."))
            assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), target
            if attribute:
                assert callable(registry.resolve(target)), target


# --- the checker itself catches what it must ------------------------------------------------------

def _copy(tmp_path: Path) -> Path:
    for top in ("responseai", "training"):
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _plant(root: Path, module: str, line: str, inside_function: bool = True) -> None:
    path = root / Path(*module.split(".")).with_suffix(".py")
    code = f"\n\ndef _planted():\n    {line}\n" if inside_function else f"\n{line}\n"
    path.write_text(path.read_text(encoding="utf-8") + code, encoding="utf-8")


def test_a_planted_function_level_cycle_is_found(tmp_path: Path):
    root = _copy(tmp_path)
    _plant(root, "responseai.io", "from responseai.breast.preprocess import check_phases")
    found = cycles(internal_edges(scan(root, project_sources(root))))
    assert any({"responseai.io", "responseai.breast.preprocess"} <= set(c) for c in found)


def test_planted_layer_breaches_are_found(tmp_path: Path):
    root = _copy(tmp_path)
    _plant(root, "responseai.metrics", "import responseai.gradeguided.model")
    _plant(root, "responseai.gradeguided.report", "from responseai.breast.report import build_report")
    _plant(root, "responseai.spatial", "from training.engine import seed_everything", inside_function=False)
    _plant(root, "responseai.outputs", "import qt")
    project = scan(root, project_sources(root))
    problems = "\n".join(layering_violations(project, FAMILIES) + gui_violations(project))
    assert "base imports a family: responseai.metrics -> responseai.gradeguided.model" in problems
    assert "internals: responseai.gradeguided.report -> responseai.breast.report" in problems
    assert "core imports training: responseai.spatial -> training.engine" in problems
    assert "Qt/ctk outside the module files: responseai.outputs -> qt" in problems
