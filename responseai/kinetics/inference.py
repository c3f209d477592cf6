"""DCE kinetics of one patient: PE / SER / kinetic-class maps, FTV, worst curve, optional follow-up.

    responseai predict kinetics --pre PRE --post1 POST1 --post2 POST2 --mask MASK \
        [--followup-pre .. --followup-post1 .. --followup-post2 .. [--followup-mask ..]] \
        [--patient-id ID --followup-patient-id ID] [--config CONFIG.json] [--pe-threshold 70] \
        [--bspline] [--resample] --out DIR

No model, no weights: standard DCE definitions with every threshold in
:class:`~responseai.kinetics.analysis.KineticsConfig` (``--config`` takes a JSON object of its
fields). Outputs (all or nothing, through a staging folder): ``result.json`` (``"family":
"kinetics"``; both timepoints, the changes, the registration, the thresholds, the inputs),
``pe.nrrd``, ``ser.nrrd``, ``kinetic_class.nrrd`` (0 not assessed, 1 persistent, 2 plateau,
3 washout) and, with a follow-up, the same maps prefixed ``followup_`` *on the baseline grid*
plus ``followup_to_baseline.tfm`` (the SimpleITK transform: baseline point → follow-up point).
Progress as ``PROGRESS <pct> <msg>`` log lines for the Slicer job. :data:`COHORT` plugs the same
reading and writing into ``responseai predict kinetics --manifest`` (:mod:`responseai.batch`): the
manifest's columns are named as the options are (``pre`` … ``followup_mask``, ``patient_id``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import SimpleITK as sitk

from responseai.batch import COHORT_EPILOG, CohortHook
from responseai.dynamic import choice_record, dynamic_phases, parse_frames, read_dynamic
from responseai.errors import InputFileError
from responseai.image import Image
from responseai.io import read_image, read_mask, write_image
from responseai.kinetics.analysis import PHASE_TIME_FIELDS, KineticMaps, KineticsConfig, analyse_exam
from responseai.kinetics.constants import (
    CLASS_COLORS, CLASS_NAMES, FOLLOWUP_PREFIX, MANIFEST_SCHEMA, MAP_FILES, PHASES,
)
from responseai.kinetics.longitudinal import FollowUp, Timepoint, analyse_followup, check_same_patient
from responseai.outputs import json_safe, staged_output_dir

log = logging.getLogger(__name__)

FAMILY = "kinetics"
TRANSFORM_FILE = "followup_to_baseline.tfm"
# The input files, in the order result.json lists them: option dests and manifest columns alike.
INPUT_FILES = (*PHASES, "mask", *(FOLLOWUP_PREFIX + p for p in PHASES), "followup_mask", "dce", FOLLOWUP_PREFIX + "dce")
FRAMES = "dce_frames"  # the frames of a dce series to read as pre, post1, post2 (``FOLLOWUP_PREFIX`` for the follow-up)
Progress = Callable[[int, str], None]


@dataclass
class KineticsResult:
    """Both timepoints (the follow-up may be absent), their changes and the thresholds used."""

    baseline: Timepoint
    followup: FollowUp | None
    config: KineticsConfig
    patient_id: str | None = None
    followup_patient_id: str | None = None

    def record(self) -> dict:
        """JSON-able summary (``result.json`` without case id and inputs); non-finite numbers → None."""
        followup = self.followup
        maps = {"baseline": dict(MAP_FILES)}
        if followup is not None:
            maps["followup"] = {key: FOLLOWUP_PREFIX + name for key, name in MAP_FILES.items()}
        return json_safe({
            "patient_id": self.patient_id, "followup_patient_id": self.followup_patient_id,
            "config": self.config.record(),
            "baseline": self.baseline.summary,
            "followup": followup.timepoint.summary if followup else None,
            "followup_roi_source": followup.roi_source if followup else None,
            "registration": followup.registration.record() if followup else None,
            "changes": followup.changes if followup else None,
            "class_labels": {str(value): name for value, name in CLASS_NAMES.items()},
            "class_colors": {str(value): list(rgb) for value, rgb in CLASS_COLORS.items()},
            "maps": maps, "maps_grid": "baseline post1 grid (follow-up maps resampled through the registration)",
            "research_use_only": True,
        })


def predict_kinetics(phases: Mapping[str, Image | None], mask: Image,
                     followup_phases: Mapping[str, Image | None] | None = None, followup_mask: Image | None = None,
                     config: KineticsConfig | None = None, patient_id: str | None = None,
                     followup_patient_id: str | None = None, bspline: bool = False, resample: bool = False,
                     progress: Progress | None = None) -> KineticsResult:
    """Baseline kinetics and, when follow-up phases are given, the registered comparison."""
    progress = progress or (lambda pct, msg: None)
    config = config or KineticsConfig()
    if followup_phases is not None:
        check_same_patient(patient_id, followup_patient_id)  # before any work: the cheapest refusal
    progress(20, "baseline: percent enhancement, SER, kinetic classes, FTV")
    images, roi, maps, summary = analyse_exam(phases, mask, config, resample)
    baseline = Timepoint(images, roi, maps, summary)
    followup = None
    if followup_phases is not None:
        progress(45, "registering the follow-up exam onto the baseline")
        followup = analyse_followup(baseline, followup_phases, followup_mask, config, bspline, resample)
    return KineticsResult(baseline, followup, config, patient_id, followup_patient_id)


def _write_maps(maps: KineticMaps, folder: Path, prefix: str = "") -> None:
    for key, image in (("pe", maps.pe), ("ser", maps.ser), ("class", maps.kinetic_class)):
        write_image(image, folder / f"{prefix}{MAP_FILES[key]}")


def write_result(result: KineticsResult, out: str | Path, inputs: Mapping[str, str] | None = None,
                 case_id: str | None = None, dynamic: Mapping[str, dict] | None = None) -> dict[str, Path]:
    """``result.json`` + the maps (+ the follow-up's and its transform) into ``out``: all or none."""
    out = Path(out)
    with staged_output_dir(out) as staging:
        _write_maps(result.baseline.maps, staging)
        if result.followup is not None:
            _write_maps(result.followup.timepoint.maps, staging, FOLLOWUP_PREFIX)
            sitk.WriteTransform(result.followup.registration.transform, str(staging / TRANSFORM_FILE))
        record = {"family": FAMILY, "case_id": case_id or result.patient_id or out.name, **result.record(),
                  "inputs": dict(inputs or {}), **({"dce_series": dict(dynamic)} if dynamic else {})}
        (staging / "result.json").write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        names = [p.name for p in staging.iterdir()]
    return {name: out / name for name in names}


def config_from(text: str | None, pe_threshold: float | None = None) -> KineticsConfig:
    """A config from a JSON file or object of :class:`KineticsConfig` fields; unknown fields are refused."""
    values = _json_object(text) if text else {}
    known = {f.name for f in fields(KineticsConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputFileError(f"--config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if pe_threshold is not None:
        values["pe_threshold"] = pe_threshold
    try:
        return KineticsConfig(**values)
    except (TypeError, ValueError) as exc:
        raise InputFileError(f"--config: {exc}") from exc


def _json_object(text: str) -> dict:
    try:
        values = json.loads(text if text.lstrip().startswith("{") else Path(text).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"--config {text}: neither a readable JSON file nor a JSON object ({exc})") from exc
    if not isinstance(values, dict):
        raise InputFileError(f"--config {text}: expected a JSON object of threshold: value")
    return values


@dataclass
class KineticsInputs:
    """One patient read from files (the follow-up may be absent) and the files it came from."""

    phases: dict[str, Image | None]
    mask: Image
    followup_phases: dict[str, Image | None] | None
    followup_mask: Image | None
    files: dict[str, str]
    case_id: str | None = None
    patient_id: str | None = None
    followup_patient_id: str | None = None
    dynamic: dict[str, dict] = field(default_factory=dict)  # "baseline" / "followup" → frames taken from a dce series


@dataclass(frozen=True)
class AnalysisSettings:
    """The options every case of a run shares: thresholds, registration, resampling."""

    config: KineticsConfig
    bspline: bool = False
    resample: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "AnalysisSettings":
        return cls(config_from(args.config, args.pe_threshold), args.bspline, args.resample)


def read_inputs(files: Mapping[str, object], case_id: str | None = None, patient_id: str | None = None,
                followup_patient_id: str | None = None) -> KineticsInputs:
    """Phases and ROIs from files or DICOM folders; ``files`` maps :data:`INPUT_FILES` names to paths (or None).

    The command line and a manifest row name their inputs alike, so both read through here. Any
    follow-up file (a phase or its ROI) means a follow-up exam, whose missing phases are then named.
    """
    given = {name: str(files[name]) for name in INPUT_FILES if files.get(name)}
    has_followup = any(name.startswith(FOLLOWUP_PREFIX) for name in given)
    followup_mask = given.get("followup_mask")
    dynamic: dict[str, dict] = {}
    phases = _read_exam(given, "", files.get(FRAMES), dynamic)
    followup = _read_exam(given, FOLLOWUP_PREFIX, files.get(FOLLOWUP_PREFIX + FRAMES), dynamic) if has_followup else None
    return KineticsInputs(phases, read_mask(given.get("mask")), followup,
                          read_mask(followup_mask) if followup_mask else None, given, case_id, patient_id,
                          followup_patient_id, dynamic)


def _read_exam(given: Mapping[str, str], prefix: str, frames: object, dynamic: dict[str, dict]) -> dict[str, Image | None]:
    """One exam's phases: single files, or the frames of one dynamic series (recorded in ``dynamic``)."""
    label = "follow-up " if prefix else ""
    paths = {phase: given.get(f"{prefix}{phase}") for phase in PHASES}
    series_path = given.get(f"{prefix}dce")
    if series_path:
        if any(paths.values()):
            raise InputFileError(f"{label}exam: both a DCE series and single phases were given: give one or the other")
        series = read_dynamic(series_path, f"{label}DCE series")
        chosen, choice = dynamic_phases(series, parse_frames(frames if isinstance(frames, str) else None))
        dynamic["followup" if prefix else "baseline"] = choice_record(series, choice)
        return {phase: chosen.get(phase) for phase in PHASES}
    if frames:
        raise InputFileError(f"{label}exam: frames '{frames}' were given without a DCE series to take them from")
    return {phase: read_image(path, f"{label}{phase}") if path else None for phase, path in paths.items()}


def analyse_and_write(case: KineticsInputs, settings: AnalysisSettings, out: str | Path,
                      progress: Progress | None = None) -> KineticsResult:
    """One patient end to end (the command and each cohort case): analysis, then its folder, all or nothing."""
    progress = progress or (lambda pct, msg: None)
    result = predict_kinetics(case.phases, case.mask, case.followup_phases, case.followup_mask,
                              _with_series_times(settings.config, case.dynamic),
                              case.patient_id, case.followup_patient_id, settings.bspline, settings.resample, progress)
    progress(90, "writing results")
    write_result(result, out, case.files, case.case_id, case.dynamic)
    return result


def _with_series_times(config: KineticsConfig, dynamic: Mapping[str, Mapping]) -> KineticsConfig:
    """Each exam's curve at its own series' frame times when it gave them (else the nominal ones): a follow-up
    acquired with another protocol must not be drawn at the baseline's times."""
    times = {}
    for exam, field in PHASE_TIME_FIELDS.items():
        series = dynamic.get(exam)
        if series and series.get("times_s") is not None and set(series["frames"]) == set(PHASES):
            times[field] = tuple(float(series["times_s"][series["frames"][p]]) for p in PHASES)
    return replace(config, **times)


def _analysis_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON file or object of KineticsConfig fields (thresholds)")
    parser.add_argument("--pe-threshold", type=float, help="FTV percent-enhancement threshold (default 70)")
    parser.add_argument("--bspline", action="store_true", help="refine the rigid registration with a coarse B-spline")
    parser.add_argument("--resample", action="store_true", help="resample phases / masks onto each exam's post1 grid")


def _load_settings(args: argparse.Namespace) -> AnalysisSettings:
    """No network to load: the thresholds are checked once, so a bad --config stops the run before any case."""
    return AnalysisSettings.from_args(args)


def _read_row(row: Mapping[str, object], settings: AnalysisSettings) -> KineticsInputs:  # noqa: ARG001 - hook signature
    """A validated manifest row (absolute paths; empty follow-up cells: baseline only)."""
    patient = str(row["patient_id"])
    followup_patient = row.get("followup_patient_id")
    return read_inputs(row, patient, patient, str(followup_patient) if followup_patient else None)


def _predict_row(case: KineticsInputs, out: Path, settings: AnalysisSettings) -> dict:
    """One cohort case: its folder, and the table's columns (FTV, worst curve, changes; empty without follow-up)."""
    result = analyse_and_write(case, settings, out)
    summary, followup = result.baseline.summary, result.followup
    changes = followup.changes if followup is not None else {}
    return json_safe({"ftv_ml": summary["ftv_ml"], "worst_curve": summary["worst_curve"],
                      "majority_class": summary["majority_class"],
                      "followup_ftv_ml": followup.timepoint.summary["ftv_ml"] if followup is not None else None,
                      "delta_ftv_ml": changes.get("delta_ftv_ml"), "delta_ftv_percent": changes.get("delta_ftv_percent"),
                      "delta_longest_diameter_mm": changes.get("delta_longest_diameter_mm")})


COHORT = CohortHook(MANIFEST_SCHEMA, _analysis_arguments, _load_settings, _read_row, _predict_row)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai predict kinetics", description=__doc__.split("\n\n")[0],
                                     epilog=COHORT_EPILOG.format(family=FAMILY))
    for phase in PHASES:
        parser.add_argument(f"--{phase}", help=f"baseline {phase} phase (file or DICOM folder)")
        parser.add_argument(f"--followup-{phase}", help=f"follow-up {phase} phase (file or DICOM folder)")
    for prefix, label in (("", "baseline"), ("followup-", "follow-up")):
        parser.add_argument(f"--{prefix}dce", help=f"instead of the {label} phases: one dynamic series (4D NIfTI / NRRD or "
                                                   "a DICOM folder); frame 0 = pre, the frame nearest 120 s = post1, "
                                                   "the last = post2")
        parser.add_argument(f"--{prefix}dce-frames", help=f"the {label} series' frames as 'PRE,POST1,POST2', e.g. 0,2,5")
    parser.add_argument("--mask", required=True, help="lesion ROI (.nrrd/.nii.gz or .seg.nrrd with a 'Tumour' segment)")
    parser.add_argument("--followup-mask", help="follow-up lesion ROI (default: the baseline ROI through the registration)")
    parser.add_argument("--patient-id", help="baseline patient ID (checked against --followup-patient-id)")
    parser.add_argument("--followup-patient-id")
    parser.add_argument("--case-id", help="case identifier for result.json and the report (default: patient ID or --out name)")
    _analysis_arguments(parser)
    parser.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Analyse one patient from files; 0 on success, 2 on an input error (logged as ERROR)."""
    from responseai.progress import log_progress, run_case_command

    args = build_parser().parse_args(argv)

    def analyse() -> str:
        log_progress(5, "reading the inputs")
        settings = AnalysisSettings.from_args(args)
        case = read_inputs(vars(args), args.case_id, args.patient_id, args.followup_patient_id)
        result = analyse_and_write(case, settings, args.out, log_progress)
        summary = result.baseline.summary
        message = f"done: FTV {summary['ftv_ml']:.2f} ml, worst curve {summary['worst_curve']}"
        if result.followup is not None and result.followup.changes["delta_ftv_percent"] is not None:
            message += f", ΔFTV {result.followup.changes['delta_ftv_percent']:+.0f} %"
        return message

    return run_case_command(analyse)

if __name__ == "__main__":
    raise SystemExit(main())
