"""Writing a phantom cohort to disk in the layout a real cohort uses, whatever the generator.

``images/<patient>/<name>.nrrd`` + ``mask.nrrd``, ``manifest.csv`` (what a real cohort has),
``truth.csv`` (latent phantom features, never a model input) and ``cohort.json`` (generator,
seed, label rule). Cases are generated in worker processes, each from its own seed stream, so
the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from responseai.image import Image
from responseai.io import write_image

log = logging.getLogger(__name__)


def case_stream(seed: int, index: int, sites: Sequence, site=None) -> tuple[np.random.Generator, object]:
    """Case ``index`` of cohort ``seed``: its own random stream, and its site (drawn by weight unless given).

    The site is drawn even when given, so a case's other draws do not depend on that choice.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    draw = rng.choice(len(sites), p=[s.weight for s in sites])
    return rng, site or sites[draw]


def write_case_images(out: str | Path, patient_id: str, images: Mapping[str, Image], mask: Image) -> dict[str, str]:
    """Write one case's volumes and mask; returns manifest-relative paths by column name."""
    folder = Path(out) / "images" / patient_id
    files = {name: str(write_image(image, folder / f"{name}.nrrd").relative_to(out)) for name, image in images.items()}
    files["mask"] = str(write_image(mask, folder / "mask.nrrd").relative_to(out))
    return files


def write_cohort_files(
    out: str | Path, n: int, seed: int, worker: Callable[[tuple[int, int, str]], dict],
    columns: Sequence[str], meta: Mapping, workers: int = 2,
) -> pd.DataFrame:
    """Run ``worker((seed, index, out))`` for every case (→ ``{"row", "truth"}``) and write the tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, str(out)) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(tqdm(pool.map(worker, jobs, chunksize=4), total=n, desc="phantom cases"))
    else:
        results = [worker(job) for job in tqdm(jobs, desc="phantom cases")]
    manifest = pd.DataFrame([r["row"] for r in results], columns=list(columns))
    manifest.to_csv(out / "manifest.csv", index=False)
    pd.DataFrame([r["truth"] for r in results]).to_csv(out / "truth.csv", index=False)
    (out / "cohort.json").write_text(json.dumps({**meta, "seed": seed, "n": n}, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %d cases to %s", n, out)
    return manifest


def cohort_parser(prog: str, description: str, default_n: int, default_seed: int) -> argparse.ArgumentParser:
    """The options every phantom command shares (``--n --seed --out --workers``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--n", type=int, default=default_n, help=f"number of patients (default {default_n})")
    parser.add_argument("--seed", type=int, default=default_seed, help="cohort seed (same seed, same bytes)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (the bytes do not depend on it)")
    return parser


def parse_cohort_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the shared options (a cohort needs at least one patient and one worker)."""
    args = parser.parse_args(argv)
    if args.n < 1 or args.workers < 1:
        parser.error("--n and --workers must be at least 1")
    return args
