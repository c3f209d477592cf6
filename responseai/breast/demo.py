"""The embedded demo case and what ``responseai demo`` does with it.

The demo case is phantom patient 0 of seed 2026, drawn at the external site E, so it is never
part of any training cohort (those use other seeds) and is identical on every machine.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from responseai.breast.inference import load_case, result_record, run_case, write_outputs
from responseai.breast.phantom import SITES, Case, generate_case
from responseai.breast.report import report_from_prediction
from responseai.breast.segmentation.side import side_of
from responseai.io import write_image
from responseai.metrics import dice
from responseai.outputs import staged_output_dir

log = logging.getLogger(__name__)

DEMO_SEED = 2026
DEMO_SITE = next(s for s in SITES if s.external)


def demo_case() -> Case:
    """The deterministic demo patient, its form naming the tumour's breast as a referral does (``laterality``)."""
    case = generate_case(DEMO_SEED, 0, site=DEMO_SITE)
    case.clinical["laterality"] = side_of(case.mask)
    return case


def write_case(case: Case, folder: Path) -> dict[str, str]:
    """Write phases, reference mask and clinical record of a case; return the file names."""
    files = {name: write_image(image, folder / f"{name}.nrrd").name for name, image in case.phases.items()}
    files["mask"] = write_image(case.mask, folder / "mask.nrrd").name
    (folder / "clinical.json").write_text(json.dumps(case.clinical, indent=2) + "\n", encoding="utf-8")
    files["clinical"] = "clinical.json"
    return files


def case_summary(case: Case, files: dict[str, str]) -> dict:
    """What a reader wants to know about the case before any model runs."""
    reference = case.phases["post1"]
    return {
        "case_id": case.patient_id,
        "site": case.site.name,
        "external_site": case.site.external,
        "grid_xyz": list(reference.shape[::-1]),
        "spacing_mm": list(reference.spacing),
        "tumour_volume_ml": round(reference.volume_ml(case.mask.array), 2),
        "clinical": case.clinical,
        "phantom_truth_pcr": case.pcr,
        "files": files,
    }


def run_demo(out: Path) -> dict:
    """Write the demo case's inputs to ``out/input`` and run the full case into ``out``.

    The demo segments the tumour itself (the phantom's reference mask is written only for
    comparison, as ``input/mask.nrrd``), reports the Dice of its mask against it, and writes
    the per-patient report into ``out/report``.
    """
    case = demo_case()
    with staged_output_dir(out / "input") as staging:
        files = write_case(case, staging)
    inputs = out / "input"
    loaded = load_case(case.patient_id, {p: inputs / files[p] for p in case.phases}, case.clinical)
    outputs = run_case(loaded)
    write_outputs(outputs, out)
    report_from_prediction(out, out / "report")
    summary = {**case_summary(case, {k: f"input/{v}" for k, v in files.items()}), **result_record(outputs),
               "dice_vs_phantom_truth": round(dice(outputs.mask.array, case.mask.array), 4)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for key in ("case_id", "site", "tumour_volume_ml", "pcr_probability", "predicted_class",
                "attention_in_mask", "dice_vs_phantom_truth", "phantom_truth_pcr"):
        log.info("%s: %s", key, summary[key])
    return summary


def main(argv: list[str] | None = None) -> int:
    """``responseai demo [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="responseai demo", description="run the main job on the embedded demo case")
    parser.add_argument("--out", default="demo-output", type=Path, help="output folder (default: ./demo-output)")
    args = parser.parse_args(argv)
    summary = run_demo(args.out)
    log.info("demo case %s written to %s", summary["case_id"], args.out)
    return 0
