"""Inference benchmarks (not tests): per-case latency and peak memory of the shipped models.

Why not a timed test: timings depend on the machine and on whatever else runs on it; a test
that fails on a busy CI runner teaches nothing. The numbers go into the docs with the machine
they were measured on. Run: ``responseai bench breast --n 10 --threads 2``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_case(weights_path: str | Path | None = None, n_cases: int = 10, seed: int = 3, threads: int = 2,
               seg_weights: str | Path | None = None) -> dict:
    """Time one whole exam as a user runs it: checks, breast region + tumour segmentation, pCR, maps.

    The first call (model loads + warm-up) is reported separately; the per-case numbers are the
    median / p95 / mean of the following ``n_cases`` calls on full phantom exams (both breasts,
    heart, axillae in the field of view). Memory: peak RSS of the process (which includes the
    Python, torch and MONAI imports) and its growth during inference.
    """
    from responseai.breast.inference import make_case, run_case
    from responseai.breast.pcr.inference import DEFAULT
    from responseai.breast.phantom import generate_case

    torch.set_num_threads(threads)
    weights_path = Path(weights_path or DEFAULT)
    cases = [generate_case(seed, i) for i in range(n_cases + 1)]
    silent = lambda percent, message: None  # noqa: E731 - no progress lines inside a benchmark
    rss_before = _peak_rss_mb()

    def run(case) -> float:
        start = time.perf_counter()
        run_case(make_case(case.patient_id, case.phases, case.clinical), seg_weights, weights_path, silent)
        return time.perf_counter() - start

    first = run(cases[0])
    times = [run(case) for case in cases[1:]]
    times_arr = np.asarray(times)
    result = {
        "weights": str(weights_path),
        "n_cases": n_cases,
        "input_shapes_zyx": sorted({tuple(c.phases["post1"].shape) for c in cases}),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai bench breast", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="pCR weights (default: shipped)")
    parser.add_argument("--seg-weights", default=None, help="segmentation weights (default: shipped)")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = bench_case(args.weights, args.n, threads=args.threads, seg_weights=args.seg_weights)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
