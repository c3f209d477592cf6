"""``responseai evaluate kinetics``: the kinetic analysis against the phantom's truth.

    responseai evaluate kinetics --n 40 --seed 7 --out DIR [--bspline]

For every phantom case (:mod:`responseai.kinetics.phantom`), every lesion is analysed in its
own VOI: the majority class of its classified voxels against the generator's kinetic type, and
the FTV against the true enhancing volume. The follow-up is registered to the baseline and
analysed as ``responseai predict kinetics`` does: registration error = the largest distance,
over the baseline ROI's voxels, between where the estimated and the true transform put them;
ΔFTV against the true change. Writes ``lesions.csv``, ``cases.csv`` and ``summary.json`` (with
the acceptance checks), and logs the summary table.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from responseai.kinetics.analysis import KineticsConfig, analyse_exam
from responseai.kinetics.inference import predict_kinetics
from responseai.kinetics.phantom import KineticsCase, generate_case, lesion_voi, voxel_points
from responseai.kinetics.registration import transform_error_mm
from responseai.outputs import json_safe, staged_output_dir

log = logging.getLogger(__name__)

TOLERANCE = 0.10  # FTV and ΔFTV within 10 % of the truth


def lesion_rows(case: KineticsCase, config: KineticsConfig) -> list[dict]:
    """Each baseline lesion in its own VOI: measured majority class / worst curve / FTV vs truth."""
    rows = []
    for index, kinetic_type in enumerate(case.kinetic_types):
        _, _, _, summary = analyse_exam(case.baseline.phases, lesion_voi(case.baseline.lesion_labels, index), config)
        truth = case.baseline.true_enhancing_ml[index]
        rows.append({"patient_id": case.patient_id, "lesion": index, "kinetic_type": kinetic_type,
                     "majority_class": summary["majority_class"], "worst_curve": summary["worst_curve"],
                     "true_ftv_ml": truth, "ftv_ml": summary["ftv_ml"],
                     "ftv_error_percent": 100 * (summary["ftv_ml"] - truth) / truth})
    return rows


def case_row(case: KineticsCase, config: KineticsConfig, bspline: bool) -> dict:
    """The index lesion's baseline → follow-up comparison and the registration error."""
    result = predict_kinetics(case.baseline.phases, case.baseline.mask, case.followup.phases, case.followup.mask,
                              config, bspline=bspline)
    roi = case.baseline.mask
    errors = transform_error_mm(result.followup.registration.transform, case.transform,
                                voxel_points(roi)[roi.array.ravel() > 0])
    followup_truth = case.followup.true_enhancing_ml[0]
    measured, truth = result.followup.changes["delta_ftv_percent"], case.truth["true_delta_ftv_percent"]
    return {"patient_id": case.patient_id, "response": case.response,
            "orientation": f"{case.baseline.orientation}→{case.followup.orientation}",
            "registration_error_max_mm": float(errors.max()), "registration_error_mean_mm": float(errors.mean()),
            "voxel_mm": float(min(roi.spacing)),
            "followup_ftv_ml": result.followup.timepoint.summary["ftv_ml"], "followup_true_ftv_ml": followup_truth,
            "followup_ftv_error_percent": 100 * (result.followup.timepoint.summary["ftv_ml"] - followup_truth)
            / followup_truth,
            "delta_ftv_percent": measured, "true_delta_ftv_percent": truth,
            "delta_ftv_error_points": measured - truth}


def summarise(lesions: pd.DataFrame, cases: pd.DataFrame) -> dict:
    """The acceptance numbers (shares of lesions / cases) with their counts."""
    ftv_errors = np.abs(np.concatenate([lesions["ftv_error_percent"], cases["followup_ftv_error_percent"]]))
    shrinking = cases[cases["response"] == "shrinking"]
    delta_ok = np.abs(shrinking["delta_ftv_error_points"]) <= TOLERANCE * np.abs(shrinking["true_delta_ftv_percent"])
    within_voxel = cases["registration_error_max_mm"] <= cases["voxel_mm"]
    by_orientation = {name: {"n": int(len(group)), "within_one_voxel": float(np.mean(
        group["registration_error_max_mm"] <= group["voxel_mm"])), "max_error_mm": float(group[
            "registration_error_max_mm"].max())} for name, group in cases.groupby("orientation")}
    return {
        "n_cases": int(len(cases)), "n_lesions": int(len(lesions)),
        "majority_class_matches_type": float(np.mean(lesions["majority_class"] == lesions["kinetic_type"])),
        "worst_curve_matches_type": float(np.mean(lesions["worst_curve"] == lesions["kinetic_type"])),
        "ftv_n": int(len(ftv_errors)), "ftv_abs_error_percent_median": float(np.median(ftv_errors)),
        "ftv_abs_error_percent_max": float(ftv_errors.max()), "ftv_within_10_percent": float(np.mean(ftv_errors <= 10)),
        "registration_error_max_mm_median": float(cases["registration_error_max_mm"].median()),
        "registration_error_max_mm_worst": float(cases["registration_error_max_mm"].max()),
        "registration_within_one_voxel": float(np.mean(within_voxel)),
        "registration_by_orientation": by_orientation,
        "n_shrinking": int(len(shrinking)),
        "delta_ftv_within_10_percent_of_true_change": float(np.mean(delta_ok)) if len(shrinking) else None,
        "delta_ftv_abs_error_points_median": float(np.median(np.abs(shrinking["delta_ftv_error_points"])))
        if len(shrinking) else None,
    }


def evaluate(n: int, seed: int, bspline: bool = False, config: KineticsConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    config = config or KineticsConfig()
    lesions, cases = [], []
    for index in range(n):
        case = generate_case(seed, index)
        lesions += lesion_rows(case, config)
        cases.append(case_row(case, config, bspline))
        log.info("case %d/%d %s done", index + 1, n, case.patient_id)
    lesions_frame, cases_frame = pd.DataFrame(lesions), pd.DataFrame(cases)
    return lesions_frame, cases_frame, summarise(lesions_frame, cases_frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai evaluate kinetics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="phantom cases (default 40)")
    parser.add_argument("--seed", type=int, default=7, help="phantom cohort seed (default 7)")
    parser.add_argument("--bspline", action="store_true", help="rigid + B-spline registration")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lesions, cases, summary = evaluate(args.n, args.seed, args.bspline)
    summary = {"seed": args.seed, "bspline": args.bspline, **summary}
    with staged_output_dir(args.out) as staging:
        lesions.to_csv(staging / "lesions.csv", index=False)
        cases.to_csv(staging / "cases.csv", index=False)
        (staging / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    log.info("summary:\n%s", json.dumps(json_safe(summary), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
