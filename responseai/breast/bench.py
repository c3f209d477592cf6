"""Inference benchmarks (not tests): per-case latency and peak memory of the shipped models.

Why not a timed test: timings depend on the machine and on whatever else runs on it; a test
that fails on a busy CI runner teaches nothing. The numbers go into the docs with the machine
they were measured on. Run: ``responseai bench breast --n 10 --threads 2``.

``--cohort MANIFEST`` compares the two ways to run a cohort, in the same run on the same cases:
one ``responseai predict breast --manifest`` process (models loaded once) against one
``responseai predict breast`` process per case (what a shell loop does: every case pays the
Python, torch and MONAI imports and the model loads). Both segment automatically; each child's
wall time and peak RSS come from the operating system (``os.wait4``), so nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from responseai.breast.constants import BREAST_SCHEMA
from responseai.image import Image
from responseai.io import resample_to

log = logging.getLogger(__name__)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def on_grid(phases: dict[str, Image], grid_zyx: Sequence[int]) -> dict[str, Image]:
    """The phases resampled (linear) onto a ``grid_zyx`` grid spanning the same field of view: a phantom exam as a
    high-resolution clinical acquisition would store it (e.g. 176 × 512 × 512), to measure what size costs."""
    post1 = phases["post1"]
    extent = np.asarray(post1.spacing) * np.asarray(post1.shape[::-1])
    spacing = tuple(extent / np.asarray(grid_zyx[::-1], float))
    reference = Image(np.zeros(tuple(grid_zyx), np.uint8), spacing, post1.origin, post1.direction)
    return {name: resample_to(image, reference) for name, image in phases.items()}


def bench_case(weights_path: str | Path | None = None, n_cases: int = 10, seed: int = 3, threads: int = 2,
               seg_weights: str | Path | None = None, grid_zyx: Sequence[int] | None = None) -> dict:
    """Time one whole exam as a user runs it: checks, breast region + tumour segmentation, pCR, maps.

    The first call (model loads + warm-up) is reported separately; the per-case numbers are the
    median / p95 / mean of the following ``n_cases`` calls on full phantom exams (both breasts,
    heart, axillae in the field of view), each on its own grid or resampled onto ``grid_zyx``
    (before its clock starts, one large exam in memory at a time). Memory: peak RSS of the process
    (which includes the Python, torch and MONAI imports) and its growth during inference (with
    ``grid_zyx``, holding the resampled exam included, as a user's process holds what it read).
    """
    from responseai.breast.inference import make_case, run_case
    from responseai.breast.pcr.inference import DEFAULT
    from responseai.breast.phantom import generate_case

    torch.set_num_threads(threads)
    weights_path = Path(weights_path or DEFAULT)
    cases = [generate_case(seed, i) for i in range(n_cases + 1)]
    silent = lambda percent, message: None  # noqa: E731 - no progress lines inside a benchmark
    rss_before, shapes = _peak_rss_mb(), set()

    def run(case) -> float:
        phases = on_grid(case.phases, grid_zyx) if grid_zyx else case.phases
        shapes.add(tuple(phases["post1"].shape))
        start = time.perf_counter()
        run_case(make_case(case.patient_id, phases, case.clinical), seg_weights, weights_path, silent)
        return time.perf_counter() - start

    first = run(cases[0])
    times_arr = np.asarray([run(case) for case in cases[1:]])
    result = {
        "weights": str(weights_path),
        "n_cases": n_cases,
        "input_shapes_zyx": sorted(shapes),
        "what": "check phases, segment (breast region + tumour), pCR, attention and Grad-CAM on the input grid",
        "threads": threads,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "first_call_s": round(first, 3),
        "median_s": round(float(np.median(times_arr)), 3),
        "p95_s": round(float(np.percentile(times_arr, 95)), 3),
        "mean_s": round(float(times_arr.mean()), 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_growth_during_inference_mb": round(_peak_rss_mb() - rss_before, 1),
        "torch": torch.__version__,
    }
    log.info("one exam, end to end: %s", result)
    return result


def _child(argv: list[str], threads: int, launcher: list[str] | None = None) -> dict:
    """Run ``responseai <argv>`` in a fresh process (``python <launcher> …`` when given): wall seconds,
    the peak RSS of the largest process (a launcher's ranks are its waited-for children), exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *(launcher or ["-m", "responseai.cli"]), *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024, "code": process.returncode}


def _single_case_argv(row: dict, out: Path) -> list[str]:
    argv = ["predict", "breast", "--case-id", str(row["patient_id"]), "--out", str(out / str(row["patient_id"]))]
    argv += [item for column in ("pre", "post1", "post2", "dce", "dce_frames") if row.get(column)
             for item in (f"--{column.replace('_', '-')}", row[column])]
    clinical = {k: v for k, v in row.items() if k in BREAST_SCHEMA and v is not None}
    return [*argv, "--clinical", json.dumps(clinical)]


def _batch(work: Path, name: str, threads: int, processes: int = 1) -> dict:
    """One cohort run of ``predict breast --manifest`` (under ``torchrun`` when ``processes`` > 1)."""
    argv = ["predict", "breast", "--manifest", str(work / "cohort.csv"), "--out", str(work / name), "--segment"]
    launcher = (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m", "responseai.cli"]
                if processes > 1 else None)
    child = _child(argv, threads, launcher)
    summary = json.loads((work / name / "summary.json").read_text(encoding="utf-8"))
    n = summary["n_cases"]
    return {"processes": processes, "threads_per_process": threads, "wall_s": round(child["seconds"], 2),
            "cases_ok": summary["ok"], "exit_code": child["code"], "cases_per_s": round(n / child["seconds"], 3),
            "model_load_s": summary["model_load_seconds"], "peak_rss_mb": round(child["peak_rss_mb"], 1),
            "stage_seconds_median": summary.get("stage_seconds_median", {})}


def bench_cohort(manifest: str | Path, n_cases: int = 10, threads: int = 2, torchrun: int = 0) -> dict:
    """Cohort throughput: one batch process vs one process per case (ratios from the same run).

    With ``torchrun`` N, two more runs of the same cases: N processes of ``threads // N`` threads
    each (the cores shared out between the ranks), and one process of ``threads // N`` threads.
    The first ratio (N ranks vs one process on all the threads) is what a user on this machine
    gains; the second (same threads per process) is how well sharding scales by itself.
    """
    from tqdm import tqdm

    from responseai.breast.constants import MANIFEST_SCHEMA
    from responseai.manifest import read_manifest

    frame = read_manifest(manifest, MANIFEST_SCHEMA).frame.head(n_cases)
    rows = frame.to_dict("records")
    load_before = os.getloadavg()[0]  # a shared machine slows both modes; the load says how much
    with tempfile.TemporaryDirectory(prefix="responseai-bench-") as scratch:
        work = Path(scratch)
        frame.to_csv(work / "cohort.csv", index=False)
        log.info("batch: one process for %d cases", len(rows))
        batch = _batch(work, "batch", threads)
        singles = [_child(_single_case_argv(row, work / "single"), threads)
                   for row in tqdm(rows, desc="one process per case")]
        sharded = _sharding(work, threads, torchrun, batch) if torchrun > 1 else None
    per_case_total = sum(c["seconds"] for c in singles)
    per_case_rss = max(c["peak_rss_mb"] for c in singles)
    result = {
        "manifest": str(manifest), "n_cases": len(rows), "threads": threads,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "what": "whole exam (checks, breast region + tumour segmentation, pCR, attention, Grad-CAM, files) per case",
        "batch": {**batch, "model_loads": 1},
        "one_process_per_case": {
            "wall_s": round(per_case_total, 2), "cases_ok": sum(c["code"] == 0 for c in singles),
            "cases_per_s": round(len(rows) / per_case_total, 3), "model_loads": len(rows),
            "median_case_s": round(float(np.median([c["seconds"] for c in singles])), 2),
            "peak_rss_mb_max": round(per_case_rss, 1)},
        "ratios": {"throughput_batch_over_per_case": round(per_case_total / batch["wall_s"], 2),
                   "peak_rss_batch_over_per_case": round(batch["peak_rss_mb"] / per_case_rss, 2)},
    }
    if sharded:
        result["torchrun"] = sharded
    log.info("cohort throughput: %s", json.dumps(result, indent=2))
    return result


def _sharding(work: Path, threads: int, processes: int, batch: dict) -> dict:
    """``torchrun`` with ``processes`` ranks against one process, on all the threads and on a rank's share."""
    share = max(1, threads // processes)
    log.info("torchrun: %d processes x %d thread(s), and one process x %d thread(s)", processes, share, share)
    ranks = _batch(work, "torchrun", share, processes)
    one = _batch(work, "one-process-share", share)
    return {"ranks": ranks, "one_process_same_threads": one,
            "speedup_over_one_process_all_threads": round(batch["wall_s"] / ranks["wall_s"], 2),
            "speedup_over_one_process_same_threads_per_process": round(one["wall_s"] / ranks["wall_s"], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai bench breast", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="pCR weights (default: shipped)")
    parser.add_argument("--seg-weights", default=None, help="segmentation weights (default: shipped)")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--cohort", type=Path, metavar="MANIFEST",
                        help="compare one cohort process with one process per case on the first --n cases")
    parser.add_argument("--torchrun", type=int, default=0, metavar="N",
                        help="with --cohort: also run the cohort under torchrun with N processes sharing --threads")
    parser.add_argument("--grid", type=int, nargs=3, metavar=("Z", "Y", "X"),
                        help="resample each exam onto this grid over its field of view (a large clinical exam)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cohort:
        result = bench_cohort(args.cohort, args.n, args.threads, args.torchrun)
    else:
        result = bench_case(args.weights, args.n, threads=args.threads, seg_weights=args.seg_weights, grid_zyx=args.grid)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
