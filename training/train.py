"""Training dispatcher: ``python -m training.train {pcr,seg} [options]``.

One entry point for every model keeps the commands in the docs and the build scripts uniform.
Each sub-command's module is imported only when chosen, so one model's training code (or its
absence) never breaks another's.
"""

from __future__ import annotations

import importlib
import logging
import sys

TASKS = {
    "pcr": "training.pcr",
    "seg": "training.seg",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in TASKS:
        logging.basicConfig(level=logging.INFO)
        logging.getLogger(__name__).error("usage: python -m training.train {%s} [options]", ",".join(TASKS))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(TASKS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
