"""``responseai serve``: the browser viewer on this machine (127.0.0.1 unless told otherwise).

    responseai serve --case DIR [--case DIR …] | --manifest CSV  [--port 8080] [--host 127.0.0.1]

The page is plain HTTP with no login: it binds to the loopback interface by default, so only
this machine can open it. ``--host 0.0.0.0`` (or any other address) must be asked for and
logs a warning: use it on a trusted network only.
"""

from __future__ import annotations

import argparse
import logging

from responseai.errors import ResponseAIError

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="responseai serve", description=__doc__.strip().splitlines()[0])
    p.add_argument("--case", action="append", default=[], metavar="DIR",
                   help="a case folder: pre, post1 [, post2, mask] images + optional clinical.json (repeatable)")
    p.add_argument("--manifest", help="breast manifest CSV: its cases form the page's case list")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only); anything else is for a trusted network")
    p.add_argument("--work-dir", help="folder for job and report files (default: a new temporary folder)")
    return p


def check_host(host: str) -> None:
    if host not in LOOPBACK:
        log.warning("serving on %s: anyone who can reach this address can open the viewer and its cases "
                    "(no login, plain HTTP) — use this on a trusted network only", host)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.case and not args.manifest:
        raise ResponseAIError("responseai serve: give --case DIR (repeatable) or --manifest CSV")
    check_host(args.host)
    for chatty in ("trame_server", "trame_client", "trame_slicer", "wslink", "aiohttp.access"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from responseai.viewer.cases import collect_cases

    cases = collect_cases(args.case, args.manifest)
    from responseai.viewer.app import ViewerApp

    app = ViewerApp(cases, work_dir=args.work_dir)
    app.start(host=args.host, port=args.port)
    return 0
