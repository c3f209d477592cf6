"""How the mask-extent caution fares on an evaluation's masks with another manifest's clinical sizes.

The masks' volumes do not depend on the form, so a segmentation evaluation's per-case volumes can be
set against other diameters (e.g. ``manifest-diameters-error0.2.csv``: a rougher reader) without
running the network again.

Usage: python Testing/Scripts/extent_flags.py EVAL/segmentation.json MANIFEST.csv
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from responseai.breast.segmentation.evaluation import extent_caution_summary, mask_flagged, yardstick_kind


def main(evaluation: str, manifest: str) -> dict:
    cases = pd.DataFrame(json.loads(Path(evaluation).read_text(encoding="utf-8"))["per_case"])
    rows = pd.read_csv(manifest).set_index("patient_id")
    cases["extent_flagged"] = [mask_flagged(v, rows.loc[p]) for p, v in zip(cases["patient_id"], cases["volume_ml"])]
    cases["extent_yardstick"] = [yardstick_kind(rows.loc[p]) for p in cases["patient_id"]]
    return extent_caution_summary(cases)


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
