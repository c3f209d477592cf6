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


def bench_pcr(weights_path: str | Path | None = None, n_cases: int = 10, seed: int = 3, threads: int = 2) -> dict:
    """Time :func:`predict_pcr` (validation, preprocessing, network, Grad-CAM, maps) on phantom cases.

    The first call (model load + warm-up) is reported separately; the per-case numbers are the
    median / p95 / mean of the following ``n_cases`` calls. Memory: peak RSS of the process
    (which includes the Python, torch and MONAI imports) and its growth during inference.
    """
    from responseai.breast.pcr.inference import DEFAULT, predict_pcr
    from responseai.breast.phantom import generate_case

    torch.set_num_threads(threads)
    weights_path = Path(weights_path or DEFAULT)
    cases = [generate_case(seed, i) for i in range(n_cases + 1)]
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    predict_pcr(cases[0].phases, cases[0].mask, cases[0].clinical, weights_path)
    first = time.perf_counter() - start
    times = []
    for case in cases[1:]:
        start = time.perf_counter()
        predict_pcr(case.phases, case.mask, case.clinical, weights_path)
        times.append(time.perf_counter() - start)
    times_arr = np.asarray(times)
    result = {
        "weights": str(weights_path),
        "n_cases": n_cases,
        "input_shape_zyx": list(cases[0].phases["post1"].shape),
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
    log.info("pCR inference: %s", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai bench breast", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = bench_pcr(args.weights, args.n, threads=args.threads)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
