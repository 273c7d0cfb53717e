"""The equivar command line (also python -m equivar).

    equivar run [CHAPTER ...] --profile smoke|default|paper -p key=value ... [--workers N]
    equivar book [--profile P] [--no-execute] [--workers N | --scheduler ADDRESS]
    equivar pdf
    equivar figures
    equivar data list | equivar data fetch NAME
    equivar env
    equivar cache list | equivar cache clear [KIND]

Arguments are checked before any work starts; a failing chapter is reported with its notebook,
cell and error. Exit codes: 0 success, 2 bad arguments or a failed step. Heavy packages
(papermill, torch, Jupyter Book) are imported by the command that needs them, so ``--help``
answers at once.
"""
from __future__ import annotations

import argparse
import platform
import sys

from equivar.paths import absolute_environment
from equivar.runtime import pin_threads
from equivar.settings import PROFILES

PROFILE_HELP = ("settings profile: smoke (seconds; what the tests run), default (the book's "
                "quick run), paper (full scale; the committed book); default: %(default)s")


def _params(pairs: list[str]) -> dict[str, object]:
    from equivar.book import notebooks

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"parameters are given as key=value, got {pair!r}")
        params[key] = notebooks.literal(value)
    return params


def _chapters_epilog() -> str:
    """The chapters and their parameters (read from the notebooks' parameters cells)."""
    from equivar.book import notebooks

    lines = ["chapters (id, number or file stem) and their parameters (-p KEY=VALUE; None means "
             "the profile's value):"]
    for chapter in notebooks.chapters():
        params = ", ".join(f"{key}={value!r}" for key, value in
                           notebooks.parameters(chapter).items() if key != "profile")
        lines.append(f"  {chapter.number:02d} {chapter.id:16s} {params}")
    lines.append("example: equivar run twirl --profile paper -p seed=3 "
                 "-p 'datasets=[\"fashion-mnist\",\"digits\"]'")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    from equivar.cache import KINDS

    top = argparse.ArgumentParser(prog="equivar", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapter notebooks with papermill",
                         description="Execute chapter notebooks with papermill. Each executed "
                                     "copy replaces the old one only if every cell ran.",
                         epilog=_chapters_epilog(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("chapters", nargs="*", help="chapter ids or numbers (default: all)")
    run.add_argument("--profile", default="default", choices=PROFILES, help=PROFILE_HELP)
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a notebook parameter (Python literal or string); repeatable")
    run.add_argument("--output", default=None, metavar="DIR",
                     help="directory for executed notebooks (default: book/chapters)")
    _sweep_arguments(run)
    bk = sub.add_parser("book", help="execute every chapter and build the HTML book")
    bk.add_argument("--profile", default="default", choices=PROFILES, help=PROFILE_HELP)
    bk.add_argument("--no-execute", action="store_true",
                    help="render the committed chapters in book/chapters (no execution)")
    bk.add_argument("--update-book", action="store_true",
                    help="execute into book/chapters and book/figures, replacing the committed "
                         "edition (make paper); without it a rerun goes to _build/rerun and "
                         "book/ is left as it is")
    bk.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a notebook parameter, as for run; repeatable")
    _sweep_arguments(bk)
    sub.add_parser("pdf", help="build the book as one PDF from the chapters in book/chapters "
                               "(needs XeLaTeX: make pdf installs it)")
    sub.add_parser("figures", help="list every figure: id, chapter, caption, files")
    dat = sub.add_parser("data", help="list datasets or fetch one ahead of time")
    dsub = dat.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="every dataset and where its files are found")
    fetch = dsub.add_parser("fetch", help="find or download a dataset and verify it")
    fetch.add_argument("name")
    sub.add_parser("env", help="versions of Python and every key package")
    cch = sub.add_parser("cache", help="list or clear cached results")
    csub = cch.add_subparsers(dest="action", required=True)
    csub.add_parser("list", help="every cached result: kind, key, size, what made it")
    clear = csub.add_parser("clear", help="delete cached results")
    clear.add_argument("kind", nargs="?", default=None,
                       help=f"only this kind ({', '.join(KINDS)})")
    return top


def _sweep_arguments(sub: argparse.ArgumentParser) -> None:
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--workers", type=_positive, default=None, metavar="N",
                       help="first compute the chapters' models and attacks on a local Dask "
                            "cluster of N worker processes, then run the notebooks")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="the same on a running Dask scheduler (tcp://host:8786); workers "
                            "need the same EQUIVAR_CACHE_DIR and checkout")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    absolute_environment()  # relative EQUIVAR_*_DIR mean the caller's directory, everywhere
    pin_threads()           # one thread per process; kernels and workers inherit it
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # ChapterFailed, unit failures
        print(f"equivar: error: {err}", file=sys.stderr)
        return 2


def _say(line: str) -> None:
    print(f"equivar: {line}", file=sys.stderr, flush=True)


def _run(args) -> int:
    from equivar.book import site

    site.run_chapters(args.chapters, args.profile, _params(args.param), args.output,
                      workers=args.workers, scheduler=args.scheduler, say=_say)
    return 0


def _book(args) -> int:
    from equivar.book import site

    return site.build(args.profile, execute=not args.no_execute, params=_params(args.param),
                      workers=args.workers, scheduler=args.scheduler, say=_say,
                      update_book=args.update_book)


def _pdf(args) -> int:
    from equivar.book import site

    code = site.build_pdf()
    if code == 0:
        _say(f"PDF edition: {site.pdf_path()}")
    return code


def _figures(args) -> int:
    from equivar.book import site

    records = site.figure_records()
    if not records:
        print("no figures yet: run `equivar book` or `equivar run`")
        return 0
    for r in records:
        print(f"{r['id']}  [chapter {r['chapter']}, profile {r['profile']}]")
        print(f"    {r['caption']}")
        print(f"    files: {', '.join(r['files'].values())}")
    return 0


def _data(args) -> int:
    from equivar import data  # numpy, pooch: only for this command

    if args.action == "list":
        for name, info in data.DATASETS.items():
            where = data.locate(name)  # content verified, not just present
            states = {v.split(":")[0].split(" ")[0] for v in where.values()}
            status = "invalid" if "invalid" in states else \
                "missing" if "missing" in states else "ok"
            network = "needs network" if info.needs_network else "no network needed"
            print(f"{name:14s} {status:8s} {network:18s} {info.source}")
            for fname, path in where.items():
                print(f"    {fname}: {path}")
        return 0
    for fname, path in data.fetch(args.name).items():
        print(f"{fname}: {path}")
    return 0


def _env(args) -> int:
    from equivar.book.plots import versions

    print(f"python {platform.python_version()} ({platform.platform(terse=True)})")
    for name, version in versions().items():
        print(f"{name} {version}")
    return 0


def _cache(args) -> int:
    from equivar import cache

    if args.action == "clear":
        removed = cache.clear(args.kind)
        where = cache.results_dir(args.kind)
        print(f"removed {removed} entries from {where}")
        return 0
    entries = cache.entries()
    ok = [e for e in entries if e["status"] == "ok"]
    print(f"{len(ok)} entries in {cache.results_dir()}")
    for e in ok:
        p = e.get("params", {})
        what = ", ".join(f"{k}={p[k]}" for k in ("dataset", "variant", "kind", "seed", "attack",
                                                  "eps") if k in p)
        print(f"{e['kind']:12s} {e['key']}  {e['bytes'] / 1e6:7.2f} MB  {what}")
    for e in entries:
        if e["status"] != "ok":
            print(f"{e['kind']:12s} {e['status']}: {e['path']}")
    return 0


COMMANDS = {"run": _run, "book": _book, "pdf": _pdf, "figures": _figures, "data": _data, "env": _env,
            "cache": _cache}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
