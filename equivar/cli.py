"""The ``equivar`` command line (also ``python -m equivar``).

    equivar run [CHAPTER ...] --profile smoke|default|paper -p key=value ...
    equivar book [--profile P] [--no-execute]

Arguments are checked before any work starts; a failing chapter is reported with its notebook,
cell and error.
"""
from __future__ import annotations

import argparse
import sys

from equivar import book, notebooks
from equivar.config import PROFILES


def _params(pairs: list[str]) -> dict[str, object]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"parameters are given as key=value, got {pair!r}")
        params[key] = notebooks.literal(value)
    return params


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="equivar", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapter notebooks with papermill")
    run.add_argument("chapters", nargs="*", help="chapter ids or numbers (default: all)")
    run.add_argument("--profile", default="default", choices=PROFILES)
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a notebook parameter (Python literal or string); repeatable")
    run.add_argument("--output", default=None, help="directory for executed notebooks "
                                                    "(default: book/chapters)")
    bk = sub.add_parser("book", help="execute every chapter and build the HTML book")
    bk.add_argument("--profile", default="default", choices=PROFILES)
    bk.add_argument("--no-execute", action="store_true",
                    help="render the chapters already in book/chapters")
    bk.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            book.run_chapters(args.chapters, args.profile, _params(args.param), args.output)
            return 0
        if args.command == "book":
            return book.build(args.profile, execute=not args.no_execute,
                              params=_params(args.param))
    except (ValueError, notebooks.ChapterFailed) as err:
        print(f"equivar: error: {err}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
