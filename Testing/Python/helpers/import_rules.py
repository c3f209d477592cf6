"""The project's import rules, checked by parsing the source (ast), not by importing it.

Every ``import`` statement counts, at module level or inside a function: a function-level import
is still a dependency, and hiding a cycle in a function only delays the failure to run time.

Rules (docs: ../shared/design/ARCHITECTURE.md, README "Layout"):
1. no import cycle between the project's modules;
2. the shared base (``responseai`` outside the family packages) never imports a family;
3. a family imports another family only through its public pieces (the package, ``constants``,
   ``preprocess``), never its internals;
4. the core (``responseai``) never imports ``training``;
5. only the Slicer module files (``<Module>/<Module>.py``, its ``<Module>Sections/`` panels,
   ``ResponseAICommonLib``) import Qt / ctk; ``<Module>Lib`` (MRML + core, tested headless) never does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC_FAMILY_PIECES = ("", "constants", "preprocess")
GUI_PACKAGES = {"qt", "ctk", "PythonQt", "PySide2", "PySide6", "PyQt5", "PyQt6"}
PROJECT_ROOTS = ("responseai", "training")


@dataclass
class Project:
    """The project's Python modules by dotted name, and what each imports (dotted names)."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    imports: dict[str, set[str]] = field(default_factory=dict)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST) -> Iterable[str]:
    """Dotted names an import statement may load (``from a import b`` may load the module ``a.b``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        yield node.module
        yield from (f"{node.module}.{alias.name}" for alias in node.names)


def scan(root: Path, sources: Iterable[Path]) -> Project:
    """Parse every file; keep each module's imports of *any* package (project or not)."""
    project = Project(root)
    for path in sources:
        name = module_name(root, path)
        project.files[name] = path
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        project.imports[name] = {t for node in ast.walk(tree) for t in _targets(node)}
    return project


def project_sources(root: Path) -> list[Path]:
    return sorted(p for top in PROJECT_ROOTS for p in (root / top).rglob("*.py"))


def internal_edges(project: Project) -> dict[str, set[str]]:
    """module → project modules it imports.

    Importing ``a.b.c`` also runs ``a`` and ``a.b``'s ``__init__``, so those count too, except a
    module's own ancestor packages: they are always initialised (or initialising) before it runs.
    """
    edges = {}
    for name, targets in project.imports.items():
        found = set()
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & project.files.keys()
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges[name] = found - {name} - ancestors
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def family_of(module: str, families: Iterable[str]) -> str | None:
    return next((f for f in families if module == f or module.startswith(f + ".")), None)


def layering_violations(project: Project, families: Iterable[str]) -> list[str]:
    """Rules 2–4 as readable lines (empty when the layout is clean)."""
    families = tuple(families)
    problems = []
    for name, targets in sorted(project.imports.items()):
        own = family_of(name, families)
        for target in sorted(targets):
            other = family_of(target, families)
            if name.startswith("responseai") and target.split(".")[0] == "training":
                problems.append(f"core imports training: {name} -> {target}")
            if other is None or other == own:
                continue
            if own is None and name.startswith("responseai"):
                problems.append(f"base imports a family: {name} -> {target}")
            elif own is not None and target[len(other) + 1:].split(".")[0] not in PUBLIC_FAMILY_PIECES:
                problems.append(f"family imports another family's internals: {name} -> {target}")
    return problems


def gui_violations(project: Project) -> list[str]:
    """Rule 5 for every scanned module (the module files themselves are not scanned)."""
    return [f"Qt/ctk outside the module files: {name} -> {target}"
            for name, targets in sorted(project.imports.items())
            for target in sorted(targets) if target.split(".")[0] in GUI_PACKAGES]
