"""A cohort through one family's prediction: models loaded once, cases streamed, resumable, shardable.

    responseai predict <family> --manifest CSV --out DIR [--columns a=A,…] [--workers N]

One ``responseai predict`` process per case pays the torch + MONAI import (≈ 8 s) every time;
here one process loads the models once and streams the manifest's cases. The family plugs in
by giving its inference module a :class:`CohortHook` named ``COHORT`` (its manifest schema,
its options, ``load_models`` and ``read_case`` / ``predict_case``); this module never imports a
family (the registry names the module).

Layout of ``DIR``: one folder per case (written all-or-nothing by the family's writer),
``.cases/<case>.json`` (one status record per attempted case, written atomically after the
case), ``predictions.csv`` (the cohort table, in manifest order) and ``summary.json``.

* A failing case is recorded (``status`` ``error`` for an input problem, ``failed`` for an
  internal one, with the error type and message) and the run goes on.
* Re-running the same command resumes: a case whose record says ``ok`` and whose folder holds
  ``result.json`` is skipped; everything else (failed, interrupted, half-moved) is redone, and
  staging folders left by a killed process are removed first.
* Sharding: under ``torchrun --nproc_per_node N`` every rank takes the cases ``RANK::WORLD_SIZE``
  of the manifest, writes its own records, waits at a ``torch.distributed`` barrier (gloo), and
  rank 0 writes the table from all the records. The merge reads only files, so re-running
  without torchrun also rebuilds the table of a sharded run.
* ``--workers N`` reads (and checks) the next N cases in threads while the current one runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from responseai import registry
from responseai.errors import ResponseAIError
from responseai.manifest import ManifestError, ManifestSchema, read_manifest
from responseai.progress import log_progress

log = logging.getLogger(__name__)

RECORDS = ".cases"
TABLE = "predictions.csv"
SUMMARY = "summary.json"
RESULT = "result.json"
STATUS_OK, STATUS_ERROR, STATUS_FAILED = "ok", "error", "failed"
COHORT_EPILOG = ("a whole cohort, models loaded once: responseai predict {family} --manifest CSV --out DIR "
                 "(its options: responseai predict {family} --manifest CSV --help)")


@dataclass(frozen=True)
class CohortHook:
    """What a family gives the cohort runner (``COHORT`` in its inference module).

    ``load_models(args)`` verifies and loads the networks once (its result is ``models``);
    ``read_case(row, models)`` turns one validated manifest row (canonical names, absolute paths,
    ``None`` for empty cells) into checked inputs, raising a ResponseAIError on bad input; it may
    run in a worker thread. ``predict_case(inputs, out_dir, models)`` predicts, writes the case
    folder all-or-nothing and returns the main outputs (one flat dict: the table's columns).
    """

    schema: ManifestSchema
    add_arguments: Callable[[argparse.ArgumentParser], None]
    load_models: Callable[[argparse.Namespace], Any]
    read_case: Callable[[Mapping[str, object], Any], Any]
    predict_case: Callable[[Any, Path, Any], dict]


@dataclass(frozen=True)
class Shard:
    """This process's place in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Shard":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    def take(self, items: list) -> list:
        return items[self.rank :: self.world_size]


class Interrupted(BaseException):
    """SIGTERM during a cohort run: unwinds like Ctrl-C (past the per-case error capture) so
    staging folders are cleaned up and the table of the finished cases is written."""


def folder_name(case_id: str) -> str:
    """A case id as a folder name (characters outside ``A-Za-z0-9._-`` become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", case_id).lstrip(".") or "_"


def _write_json(path: Path, data: dict) -> None:
    """Atomic: a reader (or a resumed run) never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def _finished(out: Path, folder: str) -> bool:
    record = out / RECORDS / f"{folder}.json"
    if not (record.exists() and (out / folder / RESULT).exists()):
        return False
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("status") == STATUS_OK
    except (OSError, json.JSONDecodeError):
        return False


def _clean_stale(out: Path, folders: list[str]) -> None:
    """Remove staging folders / partial records of *these* cases left by a killed process."""
    for folder in folders:
        for stale in [*out.glob(f".{folder}.partial-*"), *(out / RECORDS).glob(f".{folder}.json.partial-*")]:
            log.info("removing the half-written %s of an interrupted run", stale.name)
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def _prefetch(read: Callable, rows: list[dict], workers: int) -> Iterator[tuple[dict, Callable[[], Any]]]:
    """(row, get inputs) in order; with workers, the next ``workers`` rows are read ahead in threads."""
    if workers <= 0:
        for row in rows:
            yield row, (lambda row=row: read(row))
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: list[tuple[dict, Future]] = []
        for row in rows:
            pending.append((row, pool.submit(read, row)))
            if len(pending) > workers:
                done_row, future = pending.pop(0)
                yield done_row, future.result
        for done_row, future in pending:
            yield done_row, future.result


def _attempt(hook: CohortHook, get_inputs: Callable[[], Any], out: Path, models: Any) -> dict:
    """One case → its record fields; an error is recorded, never raised (KeyboardInterrupt is)."""
    start = time.perf_counter()
    record: dict = {"status": STATUS_OK, "error_type": "", "message": ""}
    try:
        inputs = get_inputs()
        record["read_s"] = round(time.perf_counter() - start, 3)
        record.update(hook.predict_case(inputs, out, models))
    except ResponseAIError as exc:
        record.update(status=STATUS_ERROR, error_type=type(exc).__name__, message=str(exc))
        log.error("%s: %s", out.name, exc)
    except Exception as exc:  # noqa: BLE001 - an internal failure of one case must not stop the cohort
        record.update(status=STATUS_FAILED, error_type=type(exc).__name__, message=str(exc))
        log.error("%s: internal error %s: %s", out.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def run_cohort(hook: CohortHook, rows: list[dict], out: Path, models: Any, shard: Shard = Shard(),
               workers: int = 0) -> dict[str, int]:
    """Predict this shard's cases of ``rows`` (validated manifest rows) into ``out``; counts by status."""
    id_column = hook.schema.id_column
    mine = shard.take(rows)
    folders = [folder_name(str(row[id_column])) for row in mine]
    _clean_stale(out, folders)
    todo = [row for row, folder in zip(mine, folders) if not _finished(out, folder)]
    counts = {"skipped": len(mine) - len(todo), STATUS_OK: 0, STATUS_ERROR: 0, STATUS_FAILED: 0}
    if counts["skipped"]:
        log.info("resuming: %d of %d cases already done", counts["skipped"], len(mine))
    bar = tqdm(total=len(todo), desc=f"cases (rank {shard.rank})" if shard.world_size > 1 else "cases", unit="case")
    for i, (row, get_inputs) in enumerate(_prefetch(lambda row: hook.read_case(row, models), todo, workers)):
        folder = folder_name(str(row[id_column]))
        log_progress(int(100 * i / max(len(todo), 1)), f"case {i + 1}/{len(todo)}: {row[id_column]}")
        record = {"case_id": str(row[id_column]), "output": folder, "rank": shard.rank,
                  **_attempt(hook, get_inputs, out / folder, models)}
        _write_json(out / RECORDS / f"{folder}.json", record)
        counts[record["status"]] += 1
        bar.update(1)
    bar.close()
    return counts


def merge_records(out: Path, rows: list[dict], id_column: str, extra: Mapping[str, object]) -> dict:
    """``predictions.csv`` (manifest order; cases never attempted: ``pending``) and ``summary.json``."""
    import pandas as pd

    table = []
    for row in rows:
        folder = folder_name(str(row[id_column]))
        path = out / RECORDS / f"{folder}.json"
        record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        table.append({"case_id": str(row[id_column]), "output": folder, "status": "pending", **record})
    frame = pd.DataFrame(table)
    first = ["case_id", "output", "status", "seconds", "error_type", "message"]
    frame = frame[[c for c in first if c in frame] + [c for c in frame if c not in first and c != "rank"]
                  + (["rank"] if "rank" in frame else [])]
    partial = out / f".{TABLE}.partial-{os.getpid()}"
    frame.to_csv(partial, index=False)
    partial.replace(out / TABLE)
    status = frame["status"].value_counts().to_dict()
    done = frame[frame["status"] != "pending"]
    summary = {"n_cases": len(frame), **{k: int(status.get(k, 0)) for k in (STATUS_OK, STATUS_ERROR, STATUS_FAILED, "pending")},
               "case_seconds_total": round(float(done["seconds"].sum()), 3) if len(done) else 0.0,
               "stage_seconds_median": _stage_medians(frame[frame["status"] == STATUS_OK]),
               "table": TABLE, **extra}
    _write_json(out / SUMMARY, summary)
    return summary


def _stage_medians(done) -> dict[str, float]:
    """Median seconds of every ``<stage>_s`` column of the finished cases: where a case's time goes."""
    return {column[:-2]: round(float(done[column].median()), 3) for column in done if column.endswith("_s")
            and len(done) and done[column].notna().any()}


def _barrier(shard: Shard) -> None:
    """Wait for every rank (torchrun sets MASTER_ADDR / MASTER_PORT); gloo works on CPU and GPU hosts."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world_size)
    dist.barrier()
    dist.destroy_process_group()


def hook_of(family: registry.Family) -> CohortHook:
    """The family's ``COHORT`` hook; a family without one says so."""
    module = registry.resolve(family.predict)
    hook = getattr(module, "COHORT", None)
    if hook is None:
        raise registry.UnknownEntryError(f"family '{family.name}' cannot predict a cohort (--manifest) yet; "
                                         "predict its cases one by one")
    return hook


def build_parser(family: str, hook: CohortHook) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"responseai predict {family} --manifest",
                                     description=f"predict every case of a {family} manifest (models loaded once)",
                                     epilog="manifest columns (* required; paths relative to the manifest): "
                                            + ", ".join(c.name + "*" * c.required for c in hook.schema.columns))
    parser.add_argument("--manifest", required=True, type=Path, help="cohort manifest.csv (paths relative to it)")
    parser.add_argument("--out", required=True, type=Path, help="cohort output folder (re-run the command to resume)")
    parser.add_argument("--columns", help="map schema names to the CSV's: age=AGE,pcr=PCR_LABEL, or a JSON file")
    parser.add_argument("--workers", type=int, default=0, help="threads reading the next cases ahead (default 0)")
    hook.add_arguments(parser)
    return parser


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise Interrupted("terminated")


def main(family: registry.Family, argv: list[str]) -> int:
    """``responseai predict <family> --manifest …``: 0 all cases ok, 2 some input errors, 1 internal failures."""
    return run(hook_of(family), family.name, argv)


def run(hook: CohortHook, family: str, argv: list[str]) -> int:
    """Validate the manifest, load the models, predict this shard's unfinished cases, write the table."""
    args = build_parser(family, hook).parse_args(argv)
    manifest = read_manifest(args.manifest, hook.schema, args.columns)
    rows = manifest.frame.to_dict("records")
    folders = [folder_name(str(row[hook.schema.id_column])) for row in rows]
    clashes = sorted({f for f in folders if folders.count(f) > 1})
    if clashes:
        raise ManifestError(args.manifest, [f"patient ids that differ only in characters a folder name cannot hold: "
                                            f"{', '.join(clashes)}"])
    shard = Shard.from_env()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    models = hook.load_models(args)
    load_seconds = round(time.perf_counter() - start, 3)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        counts = run_cohort(hook, rows, args.out, models, shard, args.workers)
    except (KeyboardInterrupt, Interrupted):
        summary = merge_records(args.out, rows, hook.schema.id_column, {"interrupted": True})
        log.error("interrupted: %d cases done; run the same command again to resume", summary[STATUS_OK])
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    run_seconds = time.perf_counter() - start
    if shard.world_size > 1:
        _barrier(shard)
        if shard.rank != 0:
            return 0
    summary = merge_records(args.out, rows, hook.schema.id_column, {
        "family": family, "manifest": str(args.manifest), "world_size": shard.world_size,
        "workers": args.workers, "model_load_seconds": load_seconds, "run_seconds": round(run_seconds, 3),
        "this_process": counts,  # under torchrun: rank 0's share
        "cases_per_second_this_process": round((counts[STATUS_OK] + counts[STATUS_ERROR] + counts[STATUS_FAILED])
                                               / max(run_seconds - load_seconds, 1e-9), 3)})
    log_progress(100, f"done: {summary[STATUS_OK]} ok, {summary[STATUS_ERROR]} input errors, "
                      f"{summary[STATUS_FAILED]} internal failures -> {args.out / TABLE}")
    return 1 if summary[STATUS_FAILED] else 2 if summary[STATUS_ERROR] else 0
