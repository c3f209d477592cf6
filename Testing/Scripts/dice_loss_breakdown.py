"""Where a segmentation evaluation's mean Dice is lost: missed tumours, spilled masks, or the outline.

Splits 1 − mean Dice into the exams whose tumour was missed, those whose mask is over 1.5 × the
tumour (spilled), and the rest; and says what the mean would be if every spilled mask had the median
Dice of the rest (how much a cure for the spill alone is worth).

Usage: python Testing/Scripts/dice_loss_breakdown.py EVAL/segmentation.json [EVAL2/segmentation.json …]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SPILL = 1.5  # mask volume over the tumour's above which the mask counts as spilled


def breakdown(path: str) -> dict:
    cases = pd.DataFrame(json.loads(Path(path).read_text(encoding="utf-8"))["per_case"])
    dice, found = cases["dice"].to_numpy(), cases["found"].to_numpy(bool)
    spilled = found & (cases["volume_ml"] / cases["reference_volume_ml"].clip(lower=1e-9) > SPILL).to_numpy()
    rest = found & ~spilled
    n = len(cases)
    cured = dice.mean() + (np.median(dice[rest]) - dice[spilled]).sum() / n if rest.any() else float("nan")
    return {"evaluation": path, "mean_dice": round(float(dice.mean()), 3),
            "lost_to_misses": round(float((1 - dice[~found]).sum() / n), 3),
            "lost_to_spilled_masks": round(float((1 - dice[spilled]).sum() / n), 3), "spilled_masks": int(spilled.sum()),
            "lost_in_the_rest": round(float((1 - dice[rest]).sum() / n), 3),
            "mean_if_spills_had_the_rest_median": round(float(cured), 3)}


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(json.dumps(breakdown(argument)))
