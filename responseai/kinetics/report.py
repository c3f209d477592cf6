"""Kinetics per-patient report: tables of both timepoints and the change, colour map and curve plot.

:func:`build_kinetics_report` turns ``result.json`` into sections for the shared writer;
:func:`kinetics_report_from_prediction` is what ``responseai report`` runs on a kinetics
prediction folder: the pictures (:mod:`responseai.kinetics.figures`), then PDF + JSON through
:func:`responseai.reports.writer.write_report`, all or nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from responseai.dynamic import recorded_frame
from responseai.image import Image
from responseai.io import read_image, read_mask, resample_to
from responseai.kinetics.analysis import PHASE_TIME_FIELDS, phase_times
from responseai.kinetics.constants import FOLLOWUP_PREFIX, MAP_FILES
from responseai.kinetics.figures import curves_png, kinetic_map_png
from responseai.kinetics.inference import TRANSFORM_FILE
from responseai.kinetics.registration import resample_onto
from responseai.reports.writer import make_report, write_report

log = logging.getLogger(__name__)

REPORT_TYPE = "kinetics"
TITLE = "Breast DCE kinetics — FTV, SER, kinetic curves"
IMAGES = {"baseline_map": "Baseline kinetic map", "followup_map": "Follow-up kinetic map",
          "curves": "Time–intensity curves"}
THRESHOLD_LABELS = {
    "pe_threshold": "FTV: early percent enhancement at least (%)",
    "background_fraction": "Background: pre-contrast below this fraction of its 99th percentile is excluded",
    "kinetic_min_pe": "Kinetic class: early percent enhancement at least (%)",
    "persistent_above": "Persistent: late change above (%)",
    "washout_below": "Washout: late change below (%)",
    "ser_min_late_enhancement": "SER defined where late enhancement is at least (% of pre)",
    "ser_bins": "SER partition of the FTV at",
    "worst_min_fraction": "Worst curve: class share at least",
    "worst_min_voxels": "Worst curve: voxels at least",
    "phase_times_s": "Phase times (s, plot only; nominal unless a DCE series gave them)",
    "followup_phase_times_s": "Follow-up phase times (s, plot only; nominal unless a DCE series gave them)",
}
LEGEND = ("Colours: kinetic class of each voxel enhancing at least {min_pe:g} % early (blue persistent: late change "
          "> {up:+g} %; yellow plateau; red washout: < {down:+g} %) over post-contrast 1, axial, anterior up, patient's "
          "right on the left; cyan: lesion ROI. Follow-up shown on the baseline grid after registration. Curves: mean "
          "relative enhancement per phase, each exam at its phase times (nominal unless a DCE series gave them).")


def _ml(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} ml"


def _timepoint_rows(summary: Mapping) -> list[tuple[str, object]]:
    """FTV and its SER partition, class shares, worst curve, PE / SER statistics, diameters."""
    rows: list[tuple[str, object]] = [("Functional tumour volume (FTV)", _ml(summary["ftv_ml"]))]
    rows += [(f"FTV, {name}", _ml(value)) for name, value in summary["ftv_by_ser_ml"].items()]
    rows += [("Worst curve (most suspicious class with enough voxels)", summary["worst_curve"] or "none"),
             ("Majority class", summary["majority_class"] or "none")]
    rows += [(f"Share {name}", f"{share:.0%}") for name, share in summary["class_fractions"].items()]
    rows += [("Mean PE in FTV", "—" if summary["mean_pe_ftv"] is None else f"{summary['mean_pe_ftv']:.0f} %"),
             ("Peak PE in ROI", f"{summary['peak_pe']:.0f} %"),
             ("Mean SER in FTV", summary["mean_ser_ftv"]),
             ("Longest diameter of the FTV", f"{summary['longest_diameter_ftv_mm']:.1f} mm"),
             ("Longest diameter of the ROI", f"{summary['longest_diameter_roi_mm']:.1f} mm"),
             ("ROI volume", _ml(summary["roi_volume_ml"])),
             ("ROI voxels excluded (no pre-contrast signal)", summary["excluded_background_voxels"])]
    return rows


def _change_rows(changes: Mapping, registration: Mapping, roi_source: str) -> list[tuple[str, object]]:
    def signed(value, unit: str) -> str:
        return "—" if value is None else f"{value:+.1f} {unit}"

    return [("ΔFTV", f"{signed(changes['delta_ftv_percent'], '%')} ({changes['delta_ftv_ml']:+.2f} ml)"),
            ("Δ mean PE in FTV", signed(changes["delta_mean_pe_ftv"], "points")),
            ("Δ peak PE", signed(changes["delta_peak_pe"], "points")),
            ("Δ longest diameter (FTV)", f"{signed(changes['delta_longest_diameter_mm'], 'mm')} "
                                         f"({signed(changes['delta_longest_diameter_percent'], '%')})"),
            ("Worst curve baseline → follow-up", " → ".join(str(c) for c in changes["worst_curve"])),
            ("Registration", "rigid + B-spline" if registration["bspline"] else "rigid"),
            ("Rotation (x, y, z)", ", ".join(f"{a:+.1f}°" for a in registration["rotation_deg"])),
            ("Translation (x, y, z, LPS)", ", ".join(f"{t:+.1f} mm" for t in registration["translation_mm"])),
            ("Baseline ROI inside the follow-up", f"{registration['roi_coverage']:.0%}"),
            ("Follow-up ROI", roi_source)]


def build_kinetics_report(record: Mapping, created: str | None = None, with_images: bool = True) -> dict:
    """The kinetics report from ``result.json`` fields (see the module docstring)."""
    config, baseline, followup = record["config"], record["baseline"], record.get("followup")
    sections = [("Inputs", list(record["inputs"].items()) or [("Inputs", "not recorded")]),
                ("Thresholds", [(THRESHOLD_LABELS.get(name, name), value) for name, value in config.items()
                                if followup is not None or name != PHASE_TIME_FIELDS["followup"]]),
                ("Baseline", _timepoint_rows(baseline))]
    headline = {"label": "Baseline FTV", "value": _ml(baseline["ftv_ml"]),
                "detail": f"worst curve {baseline['worst_curve'] or 'none'}; PE threshold {config['pe_threshold']:g} %"}
    images = {k: v for k, v in IMAGES.items() if followup is not None or k != "followup_map"} if with_images else {}
    if followup is not None:
        changes = record["changes"]
        sections += [("Follow-up", _timepoint_rows(followup)),
                     ("Change baseline → follow-up", _change_rows(changes, record["registration"],
                                                                  record["followup_roi_source"]))]
        delta = changes["delta_ftv_percent"]
        headline = {"label": "ΔFTV", "value": "—" if delta is None else f"{delta:+.0f} %",
                    "detail": f"FTV {_ml(baseline['ftv_ml'])} → {_ml(followup['ftv_ml'])}; worst curve "
                              f"{changes['worst_curve'][0]} → {changes['worst_curve'][1]}"}
    sections.append(("Method", [("Model", "none: standard DCE definitions (PE, SER, late change) with the thresholds "
                                          "above"), ("Note", "research use only; thresholds are conventions")]))
    data = {key: record.get(key) for key in ("config", "baseline", "followup", "changes", "registration", "inputs")}
    legend = LEGEND.format(min_pe=config["kinetic_min_pe"], up=config["persistent_above"], down=config["washout_below"])
    return make_report(REPORT_TYPE, TITLE, str(record["case_id"]), sections, headline, data, images=images,
                       created=created, image_legend=legend)


def _pictures(prediction_dir: Path, record: Mapping, work: Path) -> dict[str, Path]:
    """Baseline (and follow-up) colour maps and the curve plot as PNGs in ``work``."""
    inputs = record["inputs"]
    post1 = _post1(record, "baseline")
    roi = read_mask(inputs["mask"])
    if roi.grid_differences(post1):
        roi = resample_to(roi, post1, is_label=True)
    classes = read_image(prediction_dir / MAP_FILES["class"], "kinetic class map")
    ftv = classes.with_array(((read_image(prediction_dir / MAP_FILES["pe"], "PE map").array
                               >= record["config"]["pe_threshold"]) & (roi.array > 0)).astype(np.uint8))
    pictures = {"baseline_map": kinetic_map_png(post1, classes, roi, ftv, work / "baseline_map.png", "Baseline")}
    if record.get("followup") is not None:
        transform = sitk.ReadTransform(str(prediction_dir / TRANSFORM_FILE))
        followup_post1 = resample_onto(_post1(record, "followup"), post1, transform)
        followup_classes = read_image(prediction_dir / (FOLLOWUP_PREFIX + MAP_FILES["class"]), "follow-up class map")
        pictures["followup_map"] = kinetic_map_png(followup_post1, followup_classes, roi, ftv,
                                                   work / "followup_map.png", "Follow-up (registered)")
    curves = {"baseline": record["baseline"]["curves"], "followup": (record.get("followup") or {}).get("curves")}
    pictures["curves"] = curves_png(curves, phase_times(record["config"]), work / "curves.png")
    return pictures


def _post1(record: Mapping, exam: str) -> Image:
    """An exam's post1 read again: its file, or its frame of the dynamic series the prediction read."""
    dynamic = (record.get("dce_series") or {}).get(exam)
    if dynamic:
        return recorded_frame(dynamic, "post1")[0]
    prefix, label = ("", "post1") if exam == "baseline" else (FOLLOWUP_PREFIX, "follow-up post1")
    return read_image(record["inputs"][f"{prefix}post1"], label)


def kinetics_report_from_prediction(prediction_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """A ``responseai predict kinetics`` folder → report.pdf + report.json + snapshots in ``out_dir``."""
    prediction_dir = Path(prediction_dir)
    record = json.loads((prediction_dir / "result.json").read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="responseai-kinetics-report-"))
    try:
        files = write_report(build_kinetics_report(record), _pictures(prediction_dir, record, work), out_dir)
        log.info("kinetics report for %s written to %s", record["case_id"], out_dir)
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)
