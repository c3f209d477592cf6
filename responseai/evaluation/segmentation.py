"""External-site evaluation of the tumour segmentation: Dice and HD95 with bootstrap CIs.

Runs exactly what a user runs (:func:`responseai.inference.segmentation.segment_tumour`, on the
original phase files and grid) and compares with the phantom's reference mask.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.metrics import compute_hausdorff_distance
from tqdm import tqdm

from responseai.inference.segmentation import DEFAULT, segment_tumour
from responseai.io import read_image
from responseai.metrics import bootstrap

log = logging.getLogger(__name__)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def _hd95_mm(prediction: np.ndarray, truth: np.ndarray, spacing_zyx: tuple[float, float, float]) -> float:
    pred = torch.from_numpy((prediction > 0)[None, None].astype(np.float32))
    true = torch.from_numpy((truth > 0)[None, None].astype(np.float32))
    return float(compute_hausdorff_distance(pred, true, percentile=95, spacing=list(spacing_zyx))[0, 0])


def evaluate_segmentation(manifest: Path, weights: Path = DEFAULT, split: str = "external",
                          n_boot: int = 1000) -> dict:
    """Per-case Dice / HD95 on ``split`` rows, their means with 95 % bootstrap CIs."""
    frame = pd.read_csv(manifest)
    rows = frame[frame["split"] == split]
    per_case, seconds = [], []
    for _, row in tqdm(rows.iterrows(), total=len(rows), desc=f"segmenting {split}"):
        phases = {p: read_image(manifest.parent / row[p], p) for p in ("pre", "post1", "post2")}
        truth = read_image(manifest.parent / row["mask"], "mask")
        start = time.perf_counter()
        mask = segment_tumour(phases, weights)
        seconds.append(time.perf_counter() - start)
        per_case.append({"patient_id": row["patient_id"], "site": row["site"],
                         "dice": _dice(mask.array, truth.array),
                         "hd95_mm": _hd95_mm(mask.array, truth.array, truth.spacing[::-1])})
    table = pd.DataFrame(per_case)
    stats = bootstrap(lambda d, h: {"dice": float(np.mean(d)), "hd95_mm": float(np.mean(h))},
                      (table["dice"].to_numpy(), table["hd95_mm"].to_numpy()), n_boot)
    return {"split": split, "n_cases": len(table), "weights": str(weights), "metrics": stats,
            "seconds_per_case_mean": float(np.mean(seconds)), "per_case": per_case}


def markdown(result: dict) -> str:
    d, h = result["metrics"]["dice"], result["metrics"]["hd95_mm"]
    return (f"| split | n | Dice (95 % CI) | HD95 mm (95 % CI) |\n| --- | --- | --- | --- |\n"
            f"| {result['split']} | {result['n_cases']} | {d['value']:.3f} ({d['ci_low']:.3f}–{d['ci_high']:.3f}) "
            f"| {h['value']:.2f} ({h['ci_low']:.2f}–{h['ci_high']:.2f}) |\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai evaluate segmentation", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path, help="cohort manifest.csv (not the training seed)")
    parser.add_argument("--weights", type=Path, default=DEFAULT)
    parser.add_argument("--split", default="external")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="folder for segmentation.md / segmentation.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = evaluate_segmentation(args.manifest, args.weights, args.split, args.n_boot)
    log.info("\n%s", markdown(result))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "segmentation.md").write_text(markdown(result), encoding="utf-8")
        (args.out / "segmentation.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
