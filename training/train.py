"""Training dispatcher: ``python -m training.train <family> [<part>] [options]`` (or under ``torchrun``).

The families and their trainable parts come from the core's registry
(:data:`responseai.registry.FAMILY_PACKAGES`), the same table ``responseai train`` reads, so the
two commands always agree. A part may be omitted when the family has one: ``training.train
gradeguided``; ``training.train breast pcr`` / ``breast segmentation``. Each part's module is
imported only when chosen, so one model's training code never breaks another's.
"""

from __future__ import annotations

import logging
import sys

from responseai import registry
from responseai.errors import ResponseAIError

log = logging.getLogger(__name__)


def usage() -> str:
    lines = ["usage: python -m training.train <family> [<part>] [options]"]
    lines += [f"  {f.name} {{{','.join(f.train)}}}" for f in registry.families().values() if f.train]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        log.info("%s", usage())
        return 0 if argv else 2
    try:
        family = registry.family(argv[0])
        target, rest = registry.part_target(family.train, family.name, "train", argv[1:])
        return int(registry.resolve(target).main(rest) or 0)
    except ResponseAIError as exc:
        log.error("%s\n%s", exc, usage())
        return 2


if __name__ == "__main__":
    sys.exit(main())
