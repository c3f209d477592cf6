"""``responseai``: one command shape for every model family, built from the registry.

    responseai predict  <family> …            one case → result folder
    responseai predict  <family> --manifest CSV --out DIR   a cohort, models loaded once (resumable)
    responseai report   [<family>] --prediction DIR --out DIR   (family read from result.json)
    responseai synth    <family> …            phantom cohort (images + manifest.csv)
    responseai evaluate <family> [<part>] …   held-out evaluation of trained weights / runs
    responseai train    <family> [<part>] …   same as python -m training.train <family> [<part>]
    responseai bench    <family> …            per-case latency and peak memory
    responseai demo     [--out DIR]            the embedded demo case, end to end
    responseai serve    --case DIR | --manifest CSV [--port N] [--host H]   browser viewer (127.0.0.1)

Each family's sub-command keeps its own options (``responseai predict breast --help``). Heavy
libraries are imported only by the chosen sub-command, so ``responseai --help`` answers
instantly and a bad argument fails before any import cost.

Options for every command: --version, -v/--verbose, --debug (traceback of an error).
Exit codes: 0 success; 2 a problem with the input (a file, value, manifest or option: one
line per problem on stderr, nothing half-written); 1 an internal error (a bug: report it
with the --debug traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from responseai import __version__, registry
from responseai.errors import ResponseAIError

log = logging.getLogger("responseai")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
VERB_HELP = {
    "predict": "predict one case (tumour mask, probabilities, maps) into a result folder",
    "report": "per-patient PDF + JSON report (+ .seg.nrrd, DICOM SEG) from a result folder",
    "synth": "generate a phantom cohort (image files + CSV manifest)",
    "evaluate": "evaluate trained weights or runs on held-out cohorts",
    "train": "train a model from a manifest (needs the training/ folder of a source checkout)",
    "bench": "per-case inference time and peak memory of the shipped models",
}


def _main_of(target: str, argv: list[str]) -> int:
    """Run ``main(argv)`` of the module an entry point names."""
    return int(registry.resolve(target).main(argv) or 0)


def _family_verb(verb: str, argv: list[str]) -> int:
    """``<verb> <family> [<part>] …`` → the family's module for that verb."""
    if not argv or argv[0].startswith("-"):
        raise registry.UnknownEntryError(f"usage: responseai {verb} {{{','.join(registry.families())}}} …")
    family = registry.family(argv[0])
    if verb == "predict" and any(a == "--manifest" or a.startswith("--manifest=") for a in argv[1:]):
        from responseai import batch

        return batch.main(family, argv[1:])
    parts = family.evaluate if verb == "evaluate" else family.train if verb == "train" else None
    if parts is not None:
        target, rest = registry.part_target(parts, family.name, verb, argv[1:])
        return _main_of(target, rest)
    target = getattr(family, verb)
    if target is None:
        raise registry.UnknownEntryError(f"family '{family.name}' has nothing to {verb}")
    return _main_of(target, argv[1:])


def _report(argv: list[str]) -> int:
    """Report on a prediction folder, dispatched on the family its ``result.json`` records."""
    parser = argparse.ArgumentParser(prog="responseai report", description=VERB_HELP["report"])
    parser.add_argument("family", nargs="?", help="optional: must match the family in result.json")
    parser.add_argument("--prediction", required=True, help="folder written by `responseai predict <family>`")
    parser.add_argument("--out", required=True, help="report folder")
    args = parser.parse_args(argv)
    result = Path(args.prediction) / "result.json"
    try:
        recorded = json.loads(result.read_text(encoding="utf-8")).get("family")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ResponseAIError(f"{result}: not a readable prediction record ({exc})") from exc
    if not recorded:
        raise ResponseAIError(f"{result} names no model family (written before version 0.2?): predict again")
    if args.family and args.family != recorded:
        raise ResponseAIError(f"{args.prediction} holds a '{recorded}' prediction, not '{args.family}'")
    files = registry.resolve(registry.family(recorded).report)(args.prediction, args.out)
    log.info("report written: %s", ", ".join(sorted(p.name for p in files.values())))
    return 0


def _demo(argv: list[str]) -> int:
    return _main_of(registry.family(registry.DEMO_FAMILY).demo, argv)


def _serve(argv: list[str]) -> int:
    """The browser viewer (trame-slicer); its heavy imports happen only here."""
    from responseai.viewer.serve import main as serve_main

    return serve_main(argv)


def _help() -> str:
    lines = [__doc__.strip(), "", "families:"]
    lines += [f"  {f.name:12s} {f.title}" for f in registry.families().values()]
    return "\n".join(lines)


def _dispatch(verb: str, rest: list[str]) -> int:
    if verb == "report":
        return _report(rest)
    if verb == "demo":
        return _demo(rest)
    if verb == "serve":
        return _serve(rest)
    if verb in VERB_HELP:
        return _family_verb(verb, rest)
    raise registry.UnknownEntryError(f"unknown command '{verb}'; commands: {', '.join([*VERB_HELP, 'demo', 'serve'])}")


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit code says whose fault a failure is (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    debug = "--debug" in argv
    argv = [a for a in argv if a not in ("-v", "--verbose", "--debug")]
    if argv[:1] == ["--version"]:
        print(f"responseai {__version__}")  # noqa: T201 - the version is the command's output
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(_help())  # noqa: T201 - the help text is the command's output
        return 0 if argv else 2
    logging.basicConfig(level=logging.DEBUG if verbose or debug else logging.INFO, format=LOG_FORMAT)
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    try:
        return _dispatch(argv[0], argv[1:])
    except ResponseAIError as exc:
        log.error("%s", exc, exc_info=debug)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        log.error("internal error %s: %s%s", type(exc).__name__, exc,
                  "" if debug else " (a bug, not your input: run again with --debug and report the traceback)",
                  exc_info=debug)
        return 1


if __name__ == "__main__":
    sys.exit(main())
