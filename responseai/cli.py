"""``responseai`` command line: ``demo``, ``synth``, ``predict``, ``report``, ``train``, ``evaluate``, ``bench``, ``predict-gradeguided``.

Heavy libraries (torch, MONAI, SimpleITK) are imported inside each command so that
``responseai --help`` answers instantly and a bad argument fails before any import cost.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from responseai.errors import ResponseAIError

log = logging.getLogger("responseai")


def _cmd_demo(args: argparse.Namespace) -> None:
    from responseai.demo import run_demo

    summary = run_demo(Path(args.out))
    log.info("demo case %s written to %s", summary["case_id"], args.out)


def _read_clinical(path: str | None) -> dict:
    """Clinical record from a JSON object file; absent file means every variable unknown."""
    import json

    if not path:
        return {}
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResponseAIError(f"{path}: clinical record is not a readable JSON object ({exc})") from exc
    if not isinstance(record, dict):
        raise ResponseAIError(f"{path}: clinical record must be a JSON object of variable: value")
    return record


def _cmd_predict(args: argparse.Namespace) -> None:
    from responseai.pipeline import load_case, run_case, write_outputs

    phases = {"pre": args.pre, "post1": args.post1, "post2": args.post2}
    case = load_case(args.case_id, phases, _read_clinical(args.clinical), args.mask, args.resample)
    outputs = run_case(case, args.seg_weights, args.pcr_weights)
    files = write_outputs(outputs, args.out)
    log.info("pCR probability %.3f (%s) -> %s", outputs.result.probability, outputs.result.predicted_class,
             ", ".join(sorted(p.name for p in files.values())))


def _cmd_report(args: argparse.Namespace) -> None:
    """Report on a prediction folder; ``modality_importance`` is written by grade-guided predictions only."""
    import json

    record = json.loads((Path(args.prediction) / "result.json").read_text(encoding="utf-8"))
    if "modality_importance" in record:
        from responseai.reports.gradeguided import gradeguided_report_from_prediction as report_from_prediction
    else:
        from responseai.reports.export import report_from_prediction
    files = report_from_prediction(args.prediction, args.out)
    log.info("report written: %s", ", ".join(sorted(p.name for p in files.values())))


def _cmd_synth(args: argparse.Namespace) -> None:
    from responseai.synthetic.breast import write_cohort

    manifest = write_cohort(args.out, n=args.n, seed=args.seed, workers=args.workers)
    log.info(
        "%d cases, %d external, pCR prevalence %.1f%% -> %s",
        len(manifest), int(manifest["external"].sum()), 100 * manifest["pcr"].mean(), Path(args.out) / "manifest.csv",
    )
    if args.check_shortcut:
        from responseai.synthetic.shortcut import shortcut_auc

        log.info("shortcut outside the tumour: %s", shortcut_auc(Path(args.out), manifest))


# Sub-tools with their own argument parsers: ``responseai evaluate pcr --help`` shows theirs.
DELEGATES = {
    "train": ("training.train", "train a model from a manifest (pcr, seg, …)"),
    "evaluate": ("responseai.evaluation", "evaluate on an external cohort: pcr | segmentation | gradeguided | gradeguided_missing"),
    "bench": ("responseai.bench", "per-case inference time and peak memory"),
    "predict-gradeguided": ("responseai.inference.gradeguided",
                            "grade, response probability, subtype and spatial map for one CT/MRI/PET case"),
}


def _delegate(command: str, argv: list[str]) -> int:
    """Run a sub-tool's own ``main(argv)``; ``evaluate X`` maps to ``responseai.evaluation.X``."""
    import importlib

    module = DELEGATES[command][0]
    if command == "evaluate":
        if not argv or argv[0].startswith("-"):
            raise SystemExit("usage: responseai evaluate {pcr,segmentation,gradeguided,gradeguided_missing} [options]")
        module, argv = f"{module}.{argv[0]}", argv[1:]
    return int(importlib.import_module(module).main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in DELEGATES.items():
        sub.add_parser(name, help=help_text, add_help=False)

    demo = sub.add_parser("demo", help="run the main job on the embedded demo case")
    demo.add_argument("--out", default="demo-output", help="output folder (default: ./demo-output)")
    demo.set_defaults(func=_cmd_demo)

    predict = sub.add_parser("predict", help="tumour mask + pCR probability + attention for one breast case")
    predict.add_argument("--pre", required=True, help="pre-contrast phase (NRRD/NIfTI file or DICOM folder)")
    predict.add_argument("--post1", required=True, help="first post-contrast phase (the reference grid)")
    predict.add_argument("--post2", help="later post-contrast phase (optional)")
    predict.add_argument("--mask", help="tumour mask (.nrrd/.nii.gz/.seg.nrrd); skips automatic segmentation")
    predict.add_argument("--clinical", help="JSON file of clinical variables (missing ones are unknown)")
    predict.add_argument("--case-id", default="case", help="identifier written to the outputs")
    predict.add_argument("--resample", action="store_true", help="resample phases/mask onto the post1 grid")
    predict.add_argument("--seg-weights", help="segmentation weights (.safetensors, default: shipped)")
    predict.add_argument("--pcr-weights", help="pCR weights (.safetensors, default: shipped)")
    predict.add_argument("--out", required=True, help="output folder")
    predict.set_defaults(func=_cmd_predict)

    report = sub.add_parser("report", help="per-patient PDF + JSON report (+ .seg.nrrd, DICOM SEG) from a prediction")
    report.add_argument("--prediction", required=True, help="folder written by `responseai predict`")
    report.add_argument("--out", required=True, help="report folder")
    report.set_defaults(func=_cmd_report)

    synth = sub.add_parser("synth", help="generate a phantom cohort (image files + CSV manifest)")
    synth.add_argument("cohort", choices=["breast", "gradeguided"],
                       help="which phantom cohort (gradeguided has its own options: synth gradeguided --help)")
    synth.add_argument("--n", type=int, default=200, help="number of patients")
    synth.add_argument("--seed", type=int, default=1, help="cohort seed (same seed, same bytes)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--workers", type=int, default=2, help="worker processes")
    synth.add_argument("--check-shortcut", action="store_true",
                       help="report how well a feature outside the tumour predicts pCR per domain")
    synth.set_defaults(func=_cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["synth", "gradeguided"]:
        from responseai.synthetic.gradeguided import main as synth_gradeguided

        return int(synth_gradeguided(argv[2:]) or 0)
    if argv and argv[0] in DELEGATES:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            return _delegate(argv[0], argv[1:])
        except ResponseAIError as exc:
            log.error("%s", exc)
            return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    try:
        args.func(args)
    except ResponseAIError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
