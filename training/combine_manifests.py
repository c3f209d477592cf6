"""Join the train and val rows of several phantom cohorts into one manifest (paths rewritten).

Both breast build scripts train on seeds 1 + 3; the cohorts' external sites stay out, unseen.

Usage: python -m training.combine_manifests OUT_DIR COHORT_DIR [COHORT_DIR …]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd

PATH_COLUMNS = ("pre", "post1", "post2", "mask", "anatomy")


def combine(out_dir: Path, cohorts: list[Path]) -> Path:
    """``out_dir/manifest.csv`` with every cohort's train and val rows, paths relative to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for cohort in cohorts:
        frame = pd.read_csv(cohort / "manifest.csv")
        frame = frame[frame["split"].isin(["train", "val"])].copy()
        prefix = Path(os.path.relpath(cohort, out_dir))
        for column in PATH_COLUMNS:
            if column in frame:
                frame[column] = [str(prefix / path) if isinstance(path, str) else path for path in frame[column]]
        parts.append(frame)
    path = out_dir / "manifest.csv"
    pd.concat(parts).to_csv(path, index=False)
    (out_dir / "cohort.json").write_text(json.dumps(provenance(cohorts), indent=2) + "\n", encoding="utf-8")
    return path


def provenance(cohorts: list[Path]) -> dict:
    """Generator and seed of every joined cohort, so an evaluation can refuse a test cohort trained on.

    ``sources`` keeps each (generator, seed) pair: a join of several generators has no single
    generator, and seed 2 of one generator is not seed 2 of another.
    """
    metas = [json.loads((c / "cohort.json").read_text(encoding="utf-8")) if (c / "cohort.json").exists() else {}
             for c in cohorts]
    generators = {m.get("generator") for m in metas}
    return {"generator": generators.pop() if len(generators) == 1 else None,
            "seeds": [m.get("seed") for m in metas],
            "sources": [{"generator": m.get("generator"), "seed": m.get("seed")} for m in metas],
            "joined": [str(c) for c in cohorts], "splits": ["train", "val"]}


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("Usage: ")[1])
    print(combine(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]))
