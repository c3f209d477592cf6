"""``responseai`` command line: ``demo``, ``synth``.

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responseai", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job on the embedded demo case")
    demo.add_argument("--out", default="demo-output", help="output folder (default: ./demo-output)")
    demo.set_defaults(func=_cmd_demo)

    synth = sub.add_parser("synth", help="generate a phantom cohort (image files + CSV manifest)")
    synth.add_argument("cohort", choices=["breast"], help="which phantom cohort")
    synth.add_argument("--n", type=int, default=200, help="number of patients")
    synth.add_argument("--seed", type=int, default=1, help="cohort seed (same seed, same bytes)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--workers", type=int, default=2, help="worker processes")
    synth.add_argument("--check-shortcut", action="store_true",
                       help="report how well a feature outside the tumour predicts pCR per domain")
    synth.set_defaults(func=_cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except ResponseAIError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
