"""The segmentation on unilateral exams: each external exam cropped to the tumour's half of the body.

Many breast MRI protocols (sagittal ones above all) image one breast. The shipped segmentation is
built around a bilateral field of view (breast region = the one or two largest breast components,
candidates discarded outside it), so this checks it still finds and outlines the tumour when the
other breast, half of the heart and the contralateral axilla are not in the volume. The crop keeps
the tumour's half plus 10 % of the left-right extent (the field of view of a unilateral coil); the
reference mask is cropped the same way.

Usage: python Testing/Scripts/segmentation_unilateral.py MANIFEST.csv [--split external] [--out table.csv]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from responseai.breast.segmentation.inference import segment_exam
from responseai.errors import ResponseAIError
from responseai.image import Image
from responseai.io import read_image
from responseai.metrics import bootstrap, dice

log = logging.getLogger("segmentation_unilateral")


def crop_axis(image: Image, axis: int, start: int, stop: int) -> Image:
    """``image`` cropped to [start, stop) along array axis ``axis`` (z, y, x), its origin moved so that every
    kept voxel stays where it was in the world."""
    index = [slice(None)] * 3
    index[axis] = slice(start, stop)
    shift = np.zeros(3)
    shift[2 - axis] = start * image.spacing[2 - axis]
    origin = np.asarray(image.origin) + np.asarray(image.direction) @ shift
    return Image(np.ascontiguousarray(image.array[tuple(index)]), image.spacing, tuple(origin), image.direction)


def tumour_half(truth: Image) -> tuple[int, int, int]:
    """(array axis along the patient's left-right, start, stop) of the tumour's half plus 10 %."""
    axis = 2 - int(np.argmax(np.abs(np.asarray(truth.direction)[0, :])))  # the axis moving most along LPS x
    size = truth.shape[axis]
    centre = np.argwhere(truth.array > 0)[:, axis].mean()
    margin = size // 10
    return (axis, 0, size // 2 + margin) if centre < size / 2 else (axis, size // 2 - margin, size)


def score(phases: dict[str, Image], truth: np.ndarray) -> tuple[float, bool]:
    """Dice and found of the automatic mask; a refusal (no tumour or no breast found) scores 0."""
    try:
        mask = segment_exam(phases).mask.array > 0
    except ResponseAIError as error:
        log.info("refused: %s", error)
        return 0.0, False
    return dice(mask, truth), bool((mask & truth).any())


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--split", default="external")
    parser.add_argument("--out", type=Path, help="per-exam table (CSV)")
    args = parser.parse_args(argv)
    rows = pd.read_csv(args.manifest)
    rows = rows[rows["split"] == args.split]
    records = []
    for _, row in tqdm(rows.iterrows(), total=len(rows), desc="bilateral and unilateral"):
        phases = {p: read_image(args.manifest.parent / row[p], p) for p in ("pre", "post1", "post2")
                  if isinstance(row.get(p), str)}
        truth = read_image(args.manifest.parent / row["mask"], "mask")
        axis, start, stop = tumour_half(truth)
        half = {name: crop_axis(image, axis, start, stop) for name, image in phases.items()}
        half_truth = crop_axis(truth, axis, start, stop).array > 0
        bilateral_dice, bilateral_found = score(phases, truth.array > 0)
        unilateral_dice, unilateral_found = score(half, half_truth)
        records.append({"patient_id": row["patient_id"], "bilateral_dice": bilateral_dice,
                        "bilateral_found": bilateral_found, "unilateral_dice": unilateral_dice,
                        "unilateral_found": unilateral_found,
                        "tumour_kept": float(half_truth.sum() / (truth.array > 0).sum())})
    table = pd.DataFrame(records)
    if args.out is not None:
        table.to_csv(args.out, index=False)
    stats = bootstrap(lambda a, b, c, d: {"bilateral_dice": float(np.mean(a)), "unilateral_dice": float(np.mean(b)),
                                          "bilateral_found": float(np.mean(c)), "unilateral_found": float(np.mean(d))},
                      (table["bilateral_dice"].to_numpy(), table["unilateral_dice"].to_numpy(),
                       table["bilateral_found"].to_numpy(float), table["unilateral_found"].to_numpy(float)), 1000)
    for name, value in stats.items():
        log.info("%s: %.3f [%.3f, %.3f]", name, value["value"], value["ci_low"], value["ci_high"])
    log.info("tumour kept by the crop: min %.3f", table["tumour_kept"].min())
    return table


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
