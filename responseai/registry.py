"""The model families the product knows, and where each one's entry points live.

The CLI (``responseai <verb> <family>``), ``python -m training.train <family>``, the report
dispatcher and the Slicer modules all read this one table, so a new family is one line in
:data:`FAMILY_PACKAGES` plus a :data:`FAMILY` in its package. Entry points are *names*
(``"package.module"`` or ``"package.module:attribute"``) resolved on use: the shared base never
imports a family at import time, ``responseai --help`` stays instant, and a verb whose code is
not installed (``training/`` is not shipped inside Slicer) fails with a clear message instead
of breaking the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from responseai.errors import ResponseAIError

FAMILY_PACKAGES = ("responseai.breast", "responseai.kinetics", "responseai.recurrence", "responseai.crossmodal",
                   "responseai.gradeguided")
DEMO_FAMILY = "breast"
VERBS = ("predict", "report", "synth", "evaluate", "train", "bench")


class UnknownEntryError(ResponseAIError):
    """A family, a part of it, or a verb it does not offer; the message lists what exists."""


@dataclass(frozen=True)
class Family:
    """One model family's entry points (each a ``module`` or ``module:attribute`` name).

    ``predict``, ``synth``, ``bench``, ``demo`` and the values of ``evaluate`` / ``train`` name
    modules with a ``main(argv) -> int``; ``report`` names a function
    ``(prediction_dir, out_dir) -> {name: path}``. ``evaluate`` and ``train`` map a part name
    (``pcr``, ``segmentation``…) to its module, because a family may hold several models.
    """

    name: str
    title: str
    predict: str
    report: str
    synth: str
    evaluate: Mapping[str, str] = field(default_factory=dict)
    train: Mapping[str, str] = field(default_factory=dict)
    bench: str | None = None
    demo: str | None = None


def resolve(target: str):
    """Import ``module`` or ``module:attribute`` by name; a missing ``training`` package is explained."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and exc.name.split(".")[0] == "training":
            raise UnknownEntryError(
                f"{module_name} is part of training/, which this installation does not include "
                "(run it from a source checkout of ResponseAI)"
            ) from exc
        raise
    return getattr(module, attribute) if attribute else module


def families() -> dict[str, Family]:
    """Every registered family by name (imports only the families' light package modules)."""
    found = [importlib.import_module(package).FAMILY for package in FAMILY_PACKAGES]
    return {family.name: family for family in found}


def family(name: str) -> Family:
    """The family called ``name``; an unknown name lists the known ones."""
    known = families()
    if name not in known:
        raise UnknownEntryError(f"unknown model family '{name}'; known: {', '.join(known)}")
    return known[name]


def part_target(parts: Mapping[str, str], family_name: str, verb: str, argv: list[str]) -> tuple[str, list[str]]:
    """Pick the part of a family a verb applies to from ``argv``; returns (module name, remaining argv).

    The part may be omitted when the family has only one for that verb.
    """
    if not parts:
        raise UnknownEntryError(f"family '{family_name}' has nothing to {verb}")
    if argv and argv[0] in parts:
        return parts[argv[0]], argv[1:]
    if len(parts) == 1:
        return next(iter(parts.values())), argv
    raise UnknownEntryError(f"{verb} {family_name}: choose one of {', '.join(parts)}")
