"""Cohort manifests: one schema per family, one validator for every command that reads a CSV.

A manifest from another cohort (other column names, no rows, a patient twice, a file that is
not there) used to surface as ``KeyError: 'split'`` deep inside training. Here every command
that reads a manifest (``predict --manifest``, ``train``, ``evaluate``) checks it first against
its family's :class:`ManifestSchema` (declared in ``<family>.constants``) and gets back a
frame with the canonical column names and absolute paths, or one :class:`ManifestError` that
lists *every* violation by CSV line, column and value, so a user fixes the file in one pass.

``--columns age=AGE,pcr=PCR_LABEL`` (or a JSON file ``{"age": "AGE"}``) maps the schema's names
onto a real cohort's own, so nobody has to rewrite a hospital's CSV. The schema classes are
stdlib only (a family's ``constants`` declares its schema, and the Slicer panel imports those
before pandas is installed); pandas is imported by the functions that read a CSV.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from responseai.clinical import Variable
from responseai.errors import ClinicalValueError, ResponseAIError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "external")
MAX_LISTED = 40  # violations named in the message; the count says how many more


class ManifestError(ResponseAIError):
    """A manifest violates its family's schema; the message lists each (line, column, value)."""

    def __init__(self, manifest: str | Path, problems: list[str]):
        problems = sorted(problems, key=_line_of)  # file-wide problems first, then by CSV line
        self.problems = problems
        listed = problems[:MAX_LISTED] + ([f"… and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else [])
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{manifest}: {len(problems)} {noun}\n  " + "\n  ".join(listed))


def _code(raw: str, allowed: tuple[str, ...]) -> str:
    """``2.0`` → ``2`` when ``2`` is allowed: pandas writes an integer column with empty cells as floats."""
    return raw[:-2] if raw not in allowed and raw.endswith(".0") and raw[:-2] in allowed else raw


def _line_of(problem: str) -> int:
    head = problem.split(",", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


@dataclass(frozen=True)
class Column:
    """One manifest column: what it holds and which values are allowed.

    ``kind``: ``id`` (non-empty text), ``text``, ``path`` (file or DICOM folder, relative to the
    manifest), ``category`` (one of ``values``), ``number`` (in ``low``–``high``) or ``clinical``
    (validated by the family's clinical :class:`~responseai.clinical.Variable`).
    """

    name: str
    kind: str
    help: str = ""
    required: bool = False  # needed by every command (e.g. the images a prediction reads)
    values: tuple[str, ...] = ()
    low: float = -math.inf
    high: float = math.inf
    variable: Variable | None = None

    def check(self, raw: str) -> tuple[object, str | None]:
        """(canonical value, problem or None) of one non-empty cell."""
        if self.kind == "clinical":
            try:
                return self.variable.validate(_code(raw, self.variable.categories)), None
            except ClinicalValueError as exc:
                return None, str(exc)
        if self.kind == "category":
            text = _code(raw, self.values)
            return (text, None) if text in self.values else (None, f"'{raw}' is not one of {', '.join(self.values)}")
        if self.kind == "number":
            try:
                number = float(raw)
            except ValueError:
                return None, f"'{raw}' is not a number"
            if not (math.isfinite(number) and self.low <= number <= self.high):
                return None, f"{raw} is outside {self.low:g}–{self.high:g}"
            return number, None
        return raw, None


@dataclass(frozen=True)
class ManifestSchema:
    """A family's manifest: its columns, the patient id column and the split column."""

    family: str
    columns: tuple[Column, ...]
    id_column: str = "patient_id"
    split_column: str = "split"
    # groups of columns of which every row must fill at least one whole group (the phases, or one dynamic series)
    one_of: tuple[tuple[str, ...], ...] = ()

    @property
    def by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    def describe(self) -> pd.DataFrame:
        """The schema as a table (docs, ``--help`` of a reader)."""
        import pandas as pd

        return pd.DataFrame([{"column": c.name, "kind": c.kind, "required": c.required,
                              "allowed": ", ".join(c.values) if c.values else _range_text(c), "meaning": c.help}
                             for c in self.columns])


def _range_text(column: Column) -> str:
    if column.variable is not None:
        v = column.variable
        return ", ".join(v.categories) if v.is_categorical else f"{v.low:g}–{v.high:g} {v.units}".strip()
    if column.kind == "number":
        return f"{column.low:g}–{column.high:g}"
    return ""


def clinical_columns(variables: Iterable[Variable]) -> tuple[Column, ...]:
    """Manifest columns for a family's clinical variables (empty cell = unknown)."""
    return tuple(Column(v.name, "clinical", v.label, variable=v) for v in variables)


def split_column() -> Column:
    return Column("split", "category", "train / val / test / external", values=SPLITS)


@dataclass
class Manifest:
    """A validated manifest: canonical column names, absolute paths, ``None`` for empty cells."""

    path: Path
    frame: pd.DataFrame
    schema: ManifestSchema
    columns: dict[str, str] = field(default_factory=dict)  # schema name → the CSV's own name

    def rows(self, split: str | None = None) -> pd.DataFrame:
        return self.frame if split is None else self.frame[self.frame[self.schema.split_column] == split]

    def write_normalised(self, out: Path) -> Path:
        """The validated manifest with the schema's names and absolute paths (atomic write)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
        self.frame.to_csv(partial, index=False)
        partial.replace(out)
        return out


def parse_column_map(text: str | None) -> dict[str, str]:
    """``age=AGE,pcr=PCR_LABEL`` or a JSON file ``{"age": "AGE"}`` → {schema name: CSV name}."""
    if not text:
        return {}
    if not ("=" in text) and Path(text).is_file():
        try:
            mapping = json.loads(Path(text).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(text, [f"--columns: not a readable JSON map ({exc})"]) from exc
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ManifestError(text, ['--columns: expected a JSON object {"schema_name": "CSV column"}'])
        return {str(k): v for k, v in mapping.items()}
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    bad = [f"--columns: '{name}{eq}{value}' is not schema_name=CSV_COLUMN" for name, eq, value in pairs
           if not (eq and name.strip() and value.strip())]
    if bad:
        raise ManifestError(text, bad)
    return {name.strip(): value.strip() for name, _, value in pairs}


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise ManifestError(path, ["file not found" if not path.exists() else "not a file"])
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise ManifestError(path, ["the file is empty (no header, no rows)"]) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ManifestError(path, [f"not a readable CSV file ({str(exc).strip()})"]) from exc


def _rename(raw: pd.DataFrame, schema: ManifestSchema, mapping: Mapping[str, str], problems: list[str]) -> pd.DataFrame:
    """Apply ``--columns``: every key must be a schema column and every value a CSV column."""
    known = schema.by_name
    for name, source in mapping.items():
        if name not in known:
            problems.append(f"--columns {name}={source}: '{name}' is not a {schema.family} manifest column "
                            f"(known: {', '.join(known)})")
        elif source not in raw.columns:
            problems.append(f"--columns {name}={source}: the CSV has no column '{source}' "
                            f"(it has: {', '.join(raw.columns)})")
    rename = {source: name for name, source in mapping.items() if name in known and source in raw.columns}
    shadowed = [name for name in rename.values() if name in raw.columns and name not in rename]  # replaced by the map
    return raw.drop(columns=shadowed).rename(columns=rename)


def _check_ids(frame: pd.DataFrame, schema: ManifestSchema, problems: list[str]) -> None:
    """Unique patient ids; a repeated patient across splits gets its own message (leakage)."""
    ids, has_split = frame[schema.id_column], schema.split_column in frame.columns
    first: dict[str, int] = {}
    for index, patient in ids.items():
        line = index + 2
        if not patient:
            continue
        if patient not in first:
            first[patient] = index
            continue
        where = f"line {line}, column '{schema.id_column}', value '{patient}'"
        earlier = first[patient]
        splits = (frame.at[earlier, schema.split_column], frame.at[index, schema.split_column]) if has_split else ("", "")
        if has_split and splits[0] != splits[1]:
            problems.append(f"{where}: patient in split '{splits[1]}' here and in '{splits[0]}' on line {earlier + 2} "
                            "(a patient must be in one split only)")
        else:
            problems.append(f"{where}: duplicate patient id (first on line {earlier + 2})")


def _empty(raw: str) -> bool:
    """A cell with no value (pandas reads an empty CSV cell as NaN)."""
    return not raw or raw.lower() in ("nan", "na")


def _filled(row: pd.Series, name: str) -> bool:
    return not _empty(str(row.get(name, "")).strip())


def _check_one_of(frame: pd.DataFrame, schema: ManifestSchema, needed: list[str], mapping: Mapping[str, str],
                  problems: list[str]) -> None:
    """Each row fills one whole group of ``schema.one_of`` (unless the command needs a group's columns anyway).

    What is missing is named on the group the row (or the CSV) comes closest to, with the other groups as the
    alternative: a manifest of phases missing its ``post1`` is told about ``post1``, not only about ``dce``.
    """
    if not schema.one_of or any(set(group) <= set(needed) for group in schema.one_of):
        return

    def named(group: tuple[str, ...]) -> str:
        return " and ".join(f"'{mapping.get(c, c)}'" for c in group)

    def closest(has) -> tuple[tuple[str, ...], str]:
        group = max(schema.one_of, key=lambda g: sum(map(has, g)))
        return group, " or ".join(named(g) for g in schema.one_of if g != group)

    if not any(all(c in frame.columns for c in g) for g in schema.one_of):
        group, others = closest(lambda c: c in frame.columns)
        for name in [c for c in group if c not in frame.columns]:
            problems.append(f"column '{name}' is missing ({schema.by_name[name].help}; or give {others}); the CSV has: "
                            f"{', '.join(frame.columns) or 'no columns'} (map another name with --columns {name}=NAME)")
        return
    for index, row in frame.iterrows():
        filled = partial(_filled, row)
        if not any(all(map(filled, g)) for g in schema.one_of):
            group, others = closest(filled)
            for name in [c for c in group if not filled(c)]:
                problems.append(f"line {index + 2}, column '{mapping.get(name, name)}', value '': empty, but required "
                                f"(or fill {others})")


def read_manifest(
    path: str | Path,
    schema: ManifestSchema,
    columns: str | Mapping[str, str] | None = None,
    require: Iterable[str] = (),
    need_splits: Iterable[str] = (),
) -> Manifest:
    """Validate a manifest against ``schema``; raise one :class:`ManifestError` naming every violation.

    ``require`` adds the columns a command needs beyond the schema's always-required ones (labels
    and ``split`` for training); ``need_splits`` the splits that must hold at least one row.
    Paths are resolved against the manifest's folder and must exist. Extra columns are kept.
    """
    import pandas as pd

    path = Path(path)
    mapping = parse_column_map(columns) if isinstance(columns, str) or columns is None else dict(columns)
    problems: list[str] = []
    frame = _rename(_read_csv(path), schema, mapping, problems)
    needed = list(dict.fromkeys([schema.id_column, *(c.name for c in schema.columns if c.required), *require]))
    for name in [name for name in needed if name not in frame.columns]:
        meaning = schema.by_name[name].help if name in schema.by_name else "needed by this command"
        problems.append(f"column '{name}' is missing ({meaning}); the CSV has: "
                        f"{', '.join(frame.columns) or 'no columns'} (map another name with --columns {name}=NAME)")
    if frame.empty:
        problems.append("no rows: the manifest lists no case")
    if schema.id_column in frame.columns:
        _check_ids(frame, schema, problems)
    present = [c for c in schema.columns if c.name in frame.columns]
    values: dict[str, list] = {c.name: [] for c in present}
    for index, row in frame.iterrows():
        line = index + 2
        for column in present:
            raw = str(row[column.name]).strip()
            value, problem = None, None
            if _empty(raw):
                if column.name in needed:
                    problem = "empty, but required"
            elif column.kind == "path":
                value = str((path.parent / raw).resolve())
                problem = None if Path(value).exists() else f"file not found ({value})"
            else:
                value, problem = column.check(raw)
            if problem:
                problems.append(f"line {line}, column '{mapping.get(column.name, column.name)}', value '{raw}': {problem}")
            values[column.name].append(value)
    _check_one_of(frame, schema, [name for name in needed if name in schema.by_name], mapping, problems)
    split = schema.split_column
    for wanted in need_splits:
        if split in frame.columns and not (frame[split].str.strip() == wanted).any():
            problems.append(f"no row with {split} == '{wanted}' (this command needs one)")
    if problems:
        raise ManifestError(path, problems)
    clean = frame.copy()
    for name, column_values in values.items():
        clean[name] = pd.Series(column_values, index=frame.index, dtype=object)
    log.info("%s: %d cases, valid %s manifest", path, len(clean), schema.family)
    return Manifest(path, clean.reset_index(drop=True), schema, mapping)


def prepare_manifest(path: str | Path, schema: ManifestSchema, columns: str | None, out_dir: str | Path,
                     require: Iterable[str] = (), need_splits: Iterable[str] = ()) -> Path:
    """Validate for a training run; the manifest to read afterwards (a normalised copy when ``columns`` maps names).

    Training code reads a manifest by its canonical names; with a column map, the validated
    frame (canonical names, absolute paths) is written to ``out_dir/manifest.csv`` and that copy
    is what the run reads and its card records.
    """
    manifest = read_manifest(path, schema, columns, require, need_splits)
    if not manifest.columns:
        return Path(path)
    return manifest.write_normalised(Path(out_dir) / "manifest.csv")
