"""Building the book: execute chapters, write the generated pages, render HTML.

``build(profile)`` executes every chapter with papermill into ``book/chapters/``, records how
long each took, writes the pages generated from the package (``book/generated/``: the settings
and provenance page, the timings table), then runs ``jupyter-book build . -W -n --keep-going``
(warnings are errors). Used by ``make book`` and ``equivar book``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from equivar import settings
from equivar.book import notebooks
from equivar.cache import atomic_path
from equivar.paths import figures_dir, project_root, writable_dir
from equivar.provenance import SOURCES, show


def generated_dir() -> Path:
    return project_root() / "book" / "generated"


def run_chapters(names, profile: str, params: dict | None = None,
                 output: Path | None = None, progress: bool = True, workers: int | None = None,
                 scheduler: str | None = None, say=None) -> dict[str, float]:
    """Execute chapters (ids, numbers or stems; all if empty; each once) and return seconds
    per chapter.

    A parameter goes to every chosen chapter that has it; one that no chosen chapter has is
    an error. All parameters are validated for every chapter, and the output directory
    checked, before the first one runs. With ``workers`` or ``scheduler`` the chapters'
    expensive units are first computed on Dask (:mod:`equivar.book.sweep`), and the notebooks
    then run ``workers`` at a time, each in its own process. ``say`` (e.g.
    ``print``) is told what runs and where its outputs went.
    """
    chosen = list(dict.fromkeys(notebooks.find(n) for n in names)) if names \
        else notebooks.chapters()
    params = dict(params or {})
    if "profile" in params:
        raise ValueError("set the profile with --profile, not as a parameter")
    known = {ch: notebooks.parameters(ch) for ch in chosen}
    for key in params:
        if not any(key in names_ for names_ in known.values()):
            if len(chosen) == 1:
                raise ValueError(f"chapter {chosen[0].id!r} has no parameter {key!r}; "
                                 f"parameters: {', '.join(known[chosen[0]])}")
            raise ValueError(f"no chosen chapter has a parameter {key!r}; chapters: "
                             f"{', '.join(ch.id for ch in chosen)}")
    per_chapter = {}
    for chapter in chosen:
        mine = {k: v for k, v in params.items() if k in known[chapter]}
        per_chapter[chapter] = notebooks.check_parameters(chapter, {**mine, "profile": profile})
    output = notebooks.book_chapters_dir() if output is None else Path(output).absolute()
    writable_dir(output, "--output")
    timings = {}
    if workers is not None or scheduler is not None:
        from equivar.book import sweep  # Dask and the studies: only for a sweep

        start = time.perf_counter()
        units = sweep.plan(chosen, profile, per_chapter)
        done = sweep.compute(units, workers, scheduler, progress)
        timings["sweep"] = time.perf_counter() - start
        _record_timings(output, profile, {"sweep": timings["sweep"]},
                        {"stages": {k: round(v, 1) for k, v in done["stages"].items()},
                         "by kind": sweep.cost_table(units, done["units"])})
    run_start = time.perf_counter() - timings.get("sweep", 0.0)
    parallel = min(workers or 1, len(chosen)) if scheduler is None else 1
    if parallel > 1:
        timings.update(_execute_parallel(chosen, per_chapter, output, parallel, profile, say))
        timings[WALL] = time.perf_counter() - run_start
        _record_timings(output, profile, {WALL: timings[WALL]})
        return timings
    for i, chapter in enumerate(chosen, 1):
        start = time.perf_counter()
        step = (lambda line, i=i: say(f"[{i}/{len(chosen)}] {line}")) if say else None
        notebooks.execute(chapter, per_chapter[chapter], output / chapter.path.name,
                          progress=progress, say=step)
        timings[chapter.stem] = time.perf_counter() - start
        _record_timings(output, profile, {chapter.stem: timings[chapter.stem]})
    timings[WALL] = time.perf_counter() - run_start
    _record_timings(output, profile, {WALL: timings[WALL]})
    return timings


WALL = "whole run (wall)"   # run-info.json's entry for the whole run_chapters call


def _execute_timed(chapter, params: dict, path: Path, prefix: str | None) -> float:
    """Execute one chapter (in a pool process); seconds it took."""
    start = time.perf_counter()
    say = functools.partial(_say_prefixed, prefix) if prefix is not None else None
    notebooks.execute(chapter, params, path, progress=False, say=say)
    return time.perf_counter() - start


def _say_prefixed(prefix: str, line: str) -> None:
    print(f"{prefix} {line}", flush=True)


def _execute_parallel(chosen, per_chapter, output: Path, n: int, profile: str,
                      say) -> dict[str, float]:
    """Execute ``chosen`` chapters ``n`` at a time, each in its own process (after a sweep the
    notebooks only read the cache and score, one core each); seconds per chapter, in chapter
    order. The first failure is re-raised once the running chapters have finished."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    timings = {}
    numbers = {chapter: i for i, chapter in enumerate(chosen, 1)}
    # the longest chapters of the last recorded run first, so that no long one starts last
    last = _last_seconds(output)
    order = sorted(chosen, key=lambda ch: -last.get(ch.stem, 0.0))
    # spawn: the parent may still hold threads (Dask's, tqdm's) that fork would copy mid-state
    with ProcessPoolExecutor(max_workers=n,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        submitted = {chapter: pool.submit(_execute_timed, chapter, per_chapter[chapter],
                                          output / chapter.path.name,
                                          f"[{numbers[chapter]}/{len(chosen)}]" if say else None)
                     for chapter in order}
        futures = {chapter: submitted[chapter] for chapter in chosen}
        for chapter, future in futures.items():
            timings[chapter.stem] = future.result()
            _record_timings(output, profile, {chapter.stem: timings[chapter.stem]})
    return timings


def _last_seconds(output: Path) -> dict[str, float]:
    """Seconds per chapter stem of the run last recorded in ``output`` (empty if none)."""
    try:
        rows = json.loads((output / "run-info.json").read_text())["chapters"]
        return {stem: float(row["seconds"]) for stem, row in rows.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _record_timings(output: Path, profile: str, timings: dict[str, float],
                    sweep_cost: dict | None = None) -> None:
    path = output / "run-info.json"
    info = json.loads(path.read_text()) if path.exists() else {"chapters": {}}
    for stem, seconds in timings.items():
        info["chapters"][stem] = {"profile": profile, "seconds": round(seconds, 1)}
    if sweep_cost is not None:   # the sweep's stages (wall) and worker seconds by unit kind
        info["sweep"] = {"profile": profile, **sweep_cost}
    info["machine"] = machine()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def machine() -> dict[str, object]:
    """A short description of this machine (for the reproducibility page)."""
    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "processor": platform.machine(), "cpu_count": os.cpu_count()}


def settings_classes() -> list[type]:
    return [cls for cls in vars(settings).values()
            if isinstance(cls, type) and issubclass(cls, settings.Settings)
            and cls is not settings.Settings]


def settings_page() -> str:
    """Markdown of every chapter's settings: value per profile, source, reason."""
    lines = ["# Settings and their provenance", "",
             "Generated from `equivar/settings.py` when the book is built. Sources:", ""]
    lines += [f"- `{key}`: {text}" for key, text in SOURCES.items()]
    lines += ["", "## Ring sampling (all chapters)", "",
              "| setting | value | source | why |", "|---|---|---|---|"]
    for f in dataclasses.fields(settings.Sampling):
        lines.append(f"| `{f.name}` | {getattr(settings.SAMPLING, f.name)} | "
                     f"{f.metadata['source']} | {f.metadata['why']} |")
    for cls in settings_classes():
        lines += ["", f"## {cls.__doc__.strip().splitlines()[0]}", "",
                  "| setting | " + " | ".join(settings.PROFILES) + " | source | why |",
                  "|---|" + "---|" * len(settings.PROFILES) + "---|---|"]
        per_profile = {p: cls.for_profile(p) for p in settings.PROFILES}
        for f in dataclasses.fields(cls):
            if f.name == "profile":
                continue
            values = [show(getattr(per_profile[p], f.name)) for p in settings.PROFILES]
            lines.append(f"| `{f.name}` | " + " | ".join(values) +
                         f" | {f.metadata['source']} | {f.metadata['why']} |")
    return "\n".join(lines) + "\n"


def timings_page(chapters_dir: Path | None = None) -> str:
    """Markdown table of the last recorded chapter run times and the machine."""
    path = (chapters_dir or notebooks.book_chapters_dir()) / "run-info.json"
    if not path.exists():
        return "No chapter run has been recorded yet.\n"
    info = json.loads(path.read_text())
    m = info["machine"]
    lines = [f"Machine: Python {m['python']}, {m['platform']} ({m['processor']}), "
             f"{m['cpu_count']} CPU cores.", "",
             "| chapter | profile | seconds |", "|---|---|---|"]
    rows = info["chapters"]
    for stem, row in sorted(rows.items(), key=lambda item: (item[0] == WALL, item[0])):
        lines.append(f"| {stem} | {row['profile']} | {row['seconds']} |")
    if "sweep" in rows:
        lines += ["", "The sweep computes the chapters' units on Dask workers first; the chapters "
                      "then run as many at a time as there are workers, so their times overlap "
                      f"and the '{WALL}' row, where recorded, is the run's elapsed time."]
    cost = info.get("sweep")
    if cost and cost.get("by kind"):
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in cost["stages"].items())
        lines += ["", f"Where the sweep's time went (elapsed per stage: {stages}). Worker "
                      "seconds add up over the workers, so they exceed the elapsed time; a unit "
                      "whose results were already cached counts near 0.", "",
                  "| unit kind | units | worker seconds | largest unit (s) |", "|---|---|---|---|"]
        lines += [f"| {kind} | {row['units']} | {row['seconds']:.0f} | {row['largest']:.0f} |"
                  for kind, row in cost["by kind"].items()]
        busy = sum(row["seconds"] for row in cost["by kind"].values())
        elapsed = sum(cost["stages"].values())
        if elapsed > 0:   # how many workers were computing, on average, while the sweep ran
            lines += ["", f"In all, {busy:.0f} worker seconds in {elapsed:.0f} s of elapsed "
                          f"sweep time: on average {busy / elapsed:.2f} workers were computing."]
    return "\n".join(lines) + "\n"


def benchmark_page(name: str = "simulator.md", command: str = "make bench") -> str:
    """A benchmark's last results (``benchmarks/results/<name>``) without its title line, or
    how to produce them."""
    path = project_root() / "benchmarks" / "results" / name
    if not path.exists():
        return f"Not measured in this build: run `{command}`.\n"
    text = path.read_text()
    return text.split("\n", 1)[1].lstrip("\n") if text.startswith("# ") else text


def threads_summary(name: str = "threads.json") -> str:
    """One sentence on the thread benchmark, computed from its last results (so the prose
    cannot contradict the table under it): the best and worst ratio of a multi-threaded step
    to the one-thread step, over every scenario and model."""
    path = project_root() / "benchmarks" / "results" / name
    if not path.exists():
        return "The thread benchmark has not been run in this build (`make bench`).\n"
    results = json.loads(path.read_text())
    ratios = []
    for scenario, block in results.items():
        medians = block["medians"]
        for config, times in medians.items():
            if config == "1 thread":
                continue
            for model, seconds in times.items():
                ratios.append((seconds / medians["1 thread"][model], scenario, config, model))
    scenarios = {"idle": "as the machine was", "busy": "next to two busy processes",
                 "twins": "two copies at once"}
    models = {"quantum": "quantum step", "cnn": "CNN step"}

    def where(r):
        return f"{models.get(r[3], r[3])}, {r[2]}, {scenarios.get(r[1], r[1])}"

    best, worst = min(ratios), max(ratios)
    return (f"In the last run, a step with two threads took between {best[0]:.2f}× "
            f"({where(best)}) and {worst[0]:.1f}× ({where(worst)}) the time of the same step "
            f"on one thread.\n")


CITATION = ("equivar: reproducible companion to arXiv:2604.15552 (Krumtünger, Sevior, Usman, "
            "2026)")


def figure_records(figures: Path | None = None) -> list[dict]:
    """The JSON records of every figure written (``book/figures`` by default), in book order.
    ValueError naming the file if a record is not a readable JSON object."""
    folder = figures_dir(figures)
    order = {c.id: c.number for c in notebooks.chapters()}
    records = []
    for path in sorted(folder.glob("fig-*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"figure record {path} cannot be read: {err}") from None
        if not isinstance(record, dict) or not {"id", "chapter", "caption", "files"} <= set(record):
            raise ValueError(f"figure record {path} is not a figure record (needs id, chapter, "
                             "caption and files)")
        records.append(record)
    return sorted(records, key=lambda r: (order.get(r["chapter"], 99), r["id"]))


def cite_figure(record: dict) -> str:
    """Ready-to-paste citation of one figure."""
    version = record.get("versions", {}).get("equivar", "?")
    return (f"{CITATION}, Fig. {record['id']}, version {version}, commit "
            f"{record.get('commit', 'unknown')}, profile {record.get('profile')}")


def _downloads(record: dict) -> str:
    """MyST download links to a figure's files, which the book's sources hold in
    ``book/figures/`` (the build copies them into the site)."""
    return " · ".join(f"{{download}}`{ext.upper()} </book/figures/{record['files'][ext]}>`"
                      for ext in ("pdf", "png", "csv", "json") if ext in record["files"])


def figures_page(figures: Path | None = None) -> str:
    """Markdown of the figure index: one section per figure with its files and provenance."""
    lines = ["# Figure index", "",
             "Every figure of the book with its stable id, its files (PDF, PNG, the plotted "
             "numbers as CSV, the provenance as JSON) and a ready-to-paste citation, generated "
             "from the JSON record written beside each figure (`book/figures/` in the "
             "repository).", "", "```{include} pdf.md", "```", ""]
    records = figure_records(figures)
    if not records:
        return "\n".join(lines + ["No figure has been written yet: run `make book`.", ""])
    lines += ["| id | chapter | profile | files |", "|---|---|---|---|"]
    for r in records:
        lines.append(f"| [{r['id']}](#{r['id']}-provenance) | {r['chapter']} | {r['profile']} "
                     f"| {_downloads(r)} |")
    for r in records:
        settings = ", ".join(f"{k}={v}" for k, v in sorted((r.get("settings") or {}).items()))
        versions = ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
        lines += ["", f"({r['id']}-provenance)=", f"## {r['id']}", "", r["caption"], "",
                  f"- **files**: {_downloads(r)}",
                  f"- **chapter**: {r['chapter']}; **profile**: {r['profile']}",
                  f"- **settings**: {settings}",
                  f"- **made by**: commit `{r.get('commit', 'unknown')}`; {versions}",
                  f"- **cite as**: {cite_figure(r)}"]
    return "\n".join(lines) + "\n"


def scorecard_page(figures: Path | None = None) -> str:
    """Markdown of the claims scorecard (:mod:`equivar.studies.scorecard`), generated from the
    verdict files the chapters wrote beside ``figures``."""
    from equivar.studies import scorecard

    return "\n".join([
        "# Claims scorecard", "",
        "One line per claim of the paper's abstract, as this book's run judged it: the verdict "
        "(reproduced / partly reproduced / not reproduced / refuted), the statistic with its 95 % "
        "confidence interval, the Holm-corrected p-value of the chapter's family of comparisons, "
        "the rule (fixed in `equivar.stats.RULES` before the run) and the figure that shows the "
        "evidence. Nothing on this page is hand-written: each chapter writes its verdict rows to "
        "`book/figures/verdicts/`, and the page is rebuilt from them. The rules, their "
        "thresholds and how each verdict moves when its threshold moves are printed in the "
        "chapters before their results.", "",
        scorecard.markdown(figures_dir(figures)), ""])


def pdf_path() -> Path:
    """Where ``make pdf`` leaves the PDF edition."""
    return project_root() / "_build" / "latex" / "equivar.pdf"


def pdf_page() -> str:
    """Markdown snippet (included by the figure index and the cite page): a link to the PDF
    edition if it has been built, else how to build it."""
    if pdf_path().exists():
        pages = _pdf_pages(pdf_path())
        size = f", {pages} pages" if pages else ""
        return (f"The whole book as one PDF: {{download}}`equivar.pdf </_build/latex/equivar.pdf>` "
                f"({pdf_path().stat().st_size / 1e6:.1f} MB{size}; `make pdf`).\n")
    return "The PDF edition of the book is built by `make pdf` (not built with this copy).\n"


def _pdf_pages(path: Path) -> int | None:
    """Page count of the PDF, from the TeX log beside it ("Output written on ... (N pages)");
    None if there is no log."""
    import re

    log = path.with_suffix(".log")
    if not log.exists():
        return None
    match = re.search(r"Output written on \S+ \((\d+) pages?", log.read_text(errors="replace"))
    return int(match[1]) if match else None


def write_generated_pages(out: Path | None = None, chapters_dir: Path | None = None,
                          figures: Path | None = None, with_pdf: bool = True) -> None:
    """Write the pages generated from the package and the run's records into ``out``
    (``book/generated``): settings, timings (from ``chapters_dir``), benchmarks, the figure
    index (from ``figures``) and the PDF link (``with_pdf``: the committed edition's PDF)."""
    from equivar.book.tables import wrap_long_tables

    out = generated_dir() if out is None else out
    pdf = pdf_page() if with_pdf else "The PDF edition is built from the committed chapters: `make pdf`.\n"
    for name, text in (("settings.md", settings_page()), ("timings.md", timings_page(chapters_dir)),
                       ("benchmark.md", benchmark_page()),
                       ("threads.md", benchmark_page("threads.md",
                                                     "python benchmarks/threads.py")),
                       ("threads-summary.md", threads_summary()),
                       ("workers.md", benchmark_page("workers.md",
                                                     "python benchmarks/workers.py")),
                       ("figures.md", figures_page(figures)), ("pdf.md", pdf),
                       ("scorecard.md", scorecard_page(figures))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(wrap_long_tables(text))  # long tables wrap in the PDF too


def toc_chapters() -> list[notebooks.Chapter]:
    """The chapters the book renders: those ``_toc.yml`` lists (``book/chapters/<stem>``)."""
    import yaml

    toc = yaml.safe_load((project_root() / "_toc.yml").read_text())
    listed = [c["file"].split("/")[-1] for part in toc.get("parts", [])
              for c in part.get("chapters", []) if c["file"].startswith("book/chapters/")]
    return [notebooks.find(stem) for stem in listed]


def book_stems() -> list[str]:
    """The file stems of the chapters the book renders (what ``equivar book`` executes)."""
    return [c.stem for c in toc_chapters()]


def check_chapters(chapters_dir: Path | None = None) -> list[str]:
    """Problems that must stop a build: a chapter of the book (:func:`toc_chapters`) missing
    from ``book/chapters`` or one whose run failed (papermill's exception flag or an error
    output). Empty when all is well."""
    import nbformat

    folder = chapters_dir or notebooks.book_chapters_dir()
    problems = []
    for chapter in toc_chapters():
        path = folder / chapter.path.name
        if not path.exists():
            problems.append(f"{path}: missing (run `equivar run {chapter.id}`)")
        elif notebooks.failed(nbformat.read(path, as_version=4)):
            problems.append(f"{path}: its run failed (a cell raised); rerun the chapter")
    return problems


STRICT = ["-W", "-n", "--keep-going"]


def render_html(strict: bool = True, source: Path | None = None,
                chapters_dir: Path | None = None) -> int:
    """``jupyter-book build`` of the book's sources (the checkout, or a staged tree from
    :func:`stage`) into ``_build/html``; returns its exit code."""
    return _jupyter_book(STRICT if strict else [], source, chapters_dir)


def render_pdf() -> int:
    """The PDF edition: ``jupyter-book build --builder pdflatex`` (XeLaTeX); returns its exit
    code. The PDF lands at :func:`pdf_path`."""
    return _jupyter_book(["--builder", "pdflatex"])


def _jupyter_book(options: list[str], source: Path | None = None,
                  chapters_dir: Path | None = None) -> int:
    problems = check_chapters(chapters_dir)
    if problems:
        raise RuntimeError("the book cannot be built:\n  " + "\n  ".join(problems))
    root = project_root()
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source or root),
           "--path-output", str(root), *options]
    return subprocess.run(cmd, cwd=root).returncode


def rerun_dir() -> Path:
    """Where ``equivar book`` puts a rerun (chapters, figures, staged sources), apart from
    the committed edition in ``book/chapters`` and ``book/figures``."""
    return project_root() / "_build" / "rerun"


def stage(chapters_dir: Path, figures: Path, into: Path | None = None) -> Path:
    """A source tree for rendering a rerun: the checkout's book sources (symbolic links)
    with ``book/chapters`` and ``book/figures`` pointing at the rerun's, and its own generated
    pages. Returns the tree's root (``_build/rerun/src``)."""
    import shutil

    root, src = project_root(), into or rerun_dir() / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "book").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "benchmarks"):
        (src / name).symlink_to(root / name)
    for item in (root / "book").iterdir():
        if item.name not in ("chapters", "figures", "generated"):
            (src / "book" / item.name).symlink_to(item)
    (src / "book" / "chapters").symlink_to(Path(chapters_dir).absolute())
    (src / "book" / "figures").symlink_to(Path(figures).absolute())
    write_generated_pages(src / "book" / "generated", chapters_dir, figures, with_pdf=False)
    return src


def build(profile: str = "default", execute: bool = True, params: dict | None = None,
          workers: int | None = None, scheduler: str | None = None, say=None,
          update_book: bool = False) -> int:
    """Execute every chapter and render the HTML book (``_build/html``).

    - ``execute=False``: render the committed edition (``book/chapters``, ``book/figures``);
    - ``update_book=True``: execute into ``book/chapters`` and ``book/figures`` (a new
      committed edition: ``make paper``), then render it;
    - otherwise (``make book``): execute into :func:`rerun_dir` and render from a staged
      source tree, leaving the committed edition untouched.

    RuntimeError before rendering if a chapter is missing or its run failed.
    """
    if not execute or update_book:
        if execute:
            run_chapters(book_stems(), profile, params, workers=workers, scheduler=scheduler,
                         say=say)
        write_generated_pages()
        return render_html()
    chapters_dir, figures = rerun_dir() / "chapters", rerun_dir() / "figures"
    if os.environ.get("EQUIVAR_FIGURES_DIR", "").strip():
        figures = figures_dir()  # the user's choice wins
    figures.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("EQUIVAR_FIGURES_DIR")
    os.environ["EQUIVAR_FIGURES_DIR"] = str(figures)  # kernels inherit it; no path in the page
    try:
        run_chapters(book_stems(), profile, params, chapters_dir, workers=workers,
                     scheduler=scheduler, say=say)
    finally:
        if previous is None:
            os.environ.pop("EQUIVAR_FIGURES_DIR", None)
        else:
            os.environ["EQUIVAR_FIGURES_DIR"] = previous
    source = stage(chapters_dir, figures)
    if say:
        say(f"rendering the rerun ({_short(chapters_dir)}, {_short(figures)}); the committed "
            "edition in book/ is unchanged")
    return render_html(source=source, chapters_dir=chapters_dir)


def _short(path: Path) -> str:
    try:
        return str(Path(path).relative_to(project_root()))
    except ValueError:
        return str(path)


def build_pdf() -> int:
    """The PDF edition from the chapters in ``book/chapters`` (no execution), then the HTML
    again so that the figure index and the cite page link the fresh PDF."""
    write_generated_pages()
    code = render_pdf()
    if code != 0 or not pdf_path().exists():
        return code or 2
    write_generated_pages()
    return render_html()
