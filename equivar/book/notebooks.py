"""Executing the chapter notebooks with papermill (used by the CLI, the Makefile and the tests).

Chapters are ``notebooks/NN_<id>.ipynb``; an executed copy goes to ``book/chapters/`` (what
the book renders) or to any directory given. Parameters are checked against the notebook's
``parameters`` cell before anything runs.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from equivar import settings
from equivar.paths import absolute_environment, project_root, writable_dir
from equivar.settings import PROFILES

# The settings class each chapter builds from its parameters (validated before a kernel starts).
CHAPTER_SETTINGS = {"twirl": settings.TwirlSettings, "sector-reliance": settings.RelianceSettings,
                    "transfer": settings.TransferSettings,
                    "suppression": settings.SuppressionSettings, "open": settings.OpenSettings}
# Parameters a chapter has besides its settings' fields.
PLUMBING = ("profile", "figures_dir")


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook: number, id (``twirl``), source path."""

    number: int
    id: str
    path: Path

    @property
    def stem(self) -> str:
        return self.path.stem


def chapters(root: Path | None = None) -> list[Chapter]:
    """The chapter notebooks, in order."""
    root = project_root() if root is None else root
    out = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number, _, name = path.stem.partition("_")
        out.append(Chapter(int(number), name.replace("_", "-"), path))
    return out


def find(name: str, root: Path | None = None) -> Chapter:
    """A chapter by id (``twirl``), number (``1``, ``01``) or file stem (``01_twirl``)."""
    found = chapters(root)
    for ch in found:
        if name in (ch.id, ch.stem, str(ch.number), f"{ch.number:02d}"):
            return ch
    raise ValueError(f"unknown chapter {name!r}; chapters: "
                     f"{', '.join(f'{c.number:02d} {c.id}' for c in found)}")


def parameters(chapter: Chapter) -> dict[str, object]:
    """Names and default values of the chapter's ``parameters`` cell."""
    nb = json.loads(chapter.path.read_text())  # plain JSON: `equivar run --help` lists these
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            values = {}
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            for node in ast.parse(source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                        and isinstance(node.targets[0], ast.Name):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
            return values
    raise ValueError(f"{chapter.path} has no cell tagged 'parameters'")


def check_parameters(chapter: Chapter, params: dict[str, object]) -> dict[str, object]:
    """Validate ``params`` against the chapter's parameters (known names, compatible types)
    and its settings class (every range check the notebook would make), and check that
    ``figures_dir`` is a writable directory. Returns the parameters to pass, with
    ``figures_dir`` made absolute (kernels run in ``notebooks/``)."""
    defaults = parameters(chapter)
    if "profile" in params and params["profile"] not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {params['profile']!r}")
    for key, value in params.items():
        if key not in defaults:
            raise ValueError(f"chapter {chapter.id!r} has no parameter {key!r}; "
                             f"parameters: {', '.join(defaults)}")
        default = defaults[key]
        if default is None or value is None:
            continue
        ok = isinstance(value, type(default)) or (isinstance(default, float)
                                                   and isinstance(value, int))
        if isinstance(default, bool) != isinstance(value, bool) or not ok:
            raise ValueError(f"parameter {key!r} of chapter {chapter.id!r} must be "
                             f"{type(default).__name__} (default {default!r}), got {value!r}")
    params = dict(params)
    cls = CHAPTER_SETTINGS.get(chapter.id)
    if cls is not None:
        fields = {f.name for f in dataclasses.fields(cls)}
        overrides = {k: v for k, v in params.items() if k in fields and k != "profile"}
        try:
            cls.for_profile(params.get("profile", defaults.get("profile", "default")),
                            **overrides)
        except ValueError as err:
            raise ValueError(f"chapter {chapter.id!r}: {err}") from None
    if params.get("figures_dir") is not None:
        if not isinstance(params["figures_dir"], str):
            raise ValueError(f"figures_dir must be a path, got {params['figures_dir']!r}")
        params["figures_dir"] = str(writable_dir(Path(params["figures_dir"]).absolute(),
                                                 "figures_dir"))
    return params


class ChapterFailed(RuntimeError):
    """A chapter notebook raised: names the notebook, the cell and the error."""


def execute(chapter: Chapter, params: dict[str, object], output: Path,
            progress: bool = True, cwd: Path | None = None, say=None) -> Path:
    """Run ``chapter`` with papermill into ``output`` (a file or a directory).

    The notebook executes into a temporary file and replaces ``output`` only if every cell ran:
    a failed run never overwrites a good chapter. The executed copy gets the book's display
    tags (:func:`apply_display_tags`). ``say`` (e.g. ``print``) receives one line before and
    one after the run: chapter, cells, profile, where the notebook and figures went.
    Raises :class:`ChapterFailed` naming the notebook, the failing cell, the error and where
    the partly executed copy was kept.
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from equivar.cache import atomic_path
    from equivar.paths import figures_dir

    params = check_parameters(chapter, params)
    absolute_environment()  # the kernel starts in notebooks/: pass it absolute paths
    output = Path(output).absolute()
    if output.suffix != ".ipynb":
        output = output / chapter.path.name
    writable_dir(output.parent, "output directory")
    figures = figures_dir(params.get("figures_dir"))
    n_cells = len(nbformat.read(chapter.path, as_version=4).cells)
    profile = params.get("profile", parameters(chapter).get("profile"))
    if say:
        say(f"{chapter.stem}: {n_cells} cells, profile {profile} -> {_short(output)}")
    scratch = Path(tempfile.mkdtemp(prefix=f"equivar-{chapter.stem}-"))
    partial = scratch / chapter.path.name
    start = time.time()
    try:
        pm.execute_notebook(str(chapter.path), str(partial), parameters=params,
                            kernel_name="python3", cwd=str(cwd or chapter.path.parent),
                            progress_bar={"desc": chapter.stem} if progress else False,
                            request_save_on_cell_execute=False,
                            # the kernel's own warnings (ipykernel 7: "running over TCP without
                            # encryption", a local kernel) broke the progress line; errors stay
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as err:
        index, first_line = _failed_cell(partial, err.exec_count)
        raise ChapterFailed(f"{chapter.path.name} failed in cell {index} (In [{err.exec_count}], "
                            f"starting {first_line!r}): {err.ename}: {err.evalue}. {output} was "
                            f"left as it was; the partly executed notebook is {partial}") from None
    nb = nbformat.read(partial, as_version=4)
    dropped = drop_terminal_output(nb)
    apply_display_tags(nb)
    nb.metadata["equivar"] = {"version": _version(), "chapter": chapter.id, "profile": profile}
    with atomic_path(output) as tmp:
        nbformat.write(nb, tmp)
    shutil.rmtree(scratch, ignore_errors=True)
    if say:
        written = sorted(p.name for p in figures.glob("fig-*") if p.stat().st_mtime >= start)
        n_figures = len({name.rsplit(".", 1)[0] for name in written})
        say(f"{chapter.stem}: done in {time.time() - start:.0f} s; {_short(output)}; "
            f"{n_figures} figures ({len(written)} files) in {_short(figures)}"
            + (f"; {dropped} terminal messages kept out of the book" if dropped else ""))
    return output


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("equivar")
    except metadata.PackageNotFoundError:
        return "unknown"


def _short(path: Path) -> str:
    """``path`` relative to the checkout when inside it (what a user types), else absolute."""
    try:
        return str(Path(path).relative_to(project_root()))
    except ValueError:
        return str(path)


# Display conventions of the executed chapters (myst-nb cell tags). A chapter's source cells may
# carry their own tags; these are added where a cell has none of the display tags.
DISPLAY_TAGS = ("remove-cell", "remove-input", "hide-input", "hide-cell", "remove-output",
                "show-input")


def apply_display_tags(nb) -> None:
    """Tag the cells of an executed chapter for the book, in place.

    - the source ``parameters`` cell: ``remove-cell`` when papermill injected the run's values
      (the reader sees the run's parameters once, in the ``injected-parameters`` cell);
    - plumbing: cells that import modules and cells that save figures (``save_figure(``):
      ``hide-input`` (the code sits behind a toggle; outputs stay visible).

    A cell tagged ``show-input`` (or already carrying a display tag) is left alone.
    """
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if any(t in DISPLAY_TAGS for t in tags):
            continue
        if "parameters" in tags:
            if injected:
                tags.append("remove-cell")
        elif "injected-parameters" not in tags and (_imports(cell.source)
                                                    or "save_figure(" in cell.source):
            tags.append("hide-input")


def _imports(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body)


# What a published chapter must not show: progress bars, warnings, this machine's paths.
UNWANTED = {
    "progress bar": re.compile(r"\d+%\|.*\||it/s\]|s/it\]"),
    "warning": re.compile(r"Warning\b|WARNING"),
    "machine path": re.compile("|".join(re.escape(p) for p in (
        os.path.expanduser("~") + os.sep, "/tmp/", "/work/", ".cache/", "site-packages"))),
}


def drop_terminal_output(nb) -> int:
    """Remove from ``nb`` the stderr stream outputs that belong on a terminal, not in the book:
    progress bars, logged warnings and messages naming this machine's paths (:data:`UNWANTED`;
    ipykernel forwards the kernel's own stderr into the cells). Results, printed tables and
    error outputs are kept. Returns how many outputs were removed."""
    removed = 0
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            chatter = (out.get("output_type") == "stream" and out.get("name") == "stderr"
                       and any(p.search(str(out.get("text", ""))) for p in UNWANTED.values()))
            removed += chatter
            if not chatter:
                kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    return removed


def output_problems(nb) -> list[str]:
    """What an executed notebook's outputs must not contain, one line each: errors (a failed
    cell), progress bars, warnings and machine paths (:data:`UNWANTED`)."""
    found = []
    if nb.metadata.get("papermill", {}).get("exception"):
        found.append("papermill recorded an exception: the run failed")
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {index}: error output {out.get('ename')}: {out.get('evalue')}")
                continue
            texts = [out.get("text", "")] + [str(v) for k, v in out.get("data", {}).items()
                                             if k.startswith("text/")]
            for what, pattern in UNWANTED.items():
                for text in texts:
                    match = pattern.search(text)
                    if match:
                        found.append(f"cell {index}: {what}: {match.group(0)!r}")
    return found


def failed(nb) -> bool:
    """Whether an executed notebook records a failed run (papermill's flag or an error output)."""
    return bool(nb.metadata.get("papermill", {}).get("exception")) or any(
        out.get("output_type") == "error" for c in nb.cells for out in c.get("outputs", []))


FIGURE = re.compile(r"```\{figure\}[^\n]*\n:name: (?P<name>[^\n]+)\n(?::[^\n]*\n)*\n"
                    r"(?P<caption>.*?)\n```", re.S)


def figure_captions(chapter: Chapter) -> dict[str, str]:
    """Captions of the ``{figure}`` directives in a chapter's Markdown cells, by figure name,
    whitespace collapsed: the one place a caption is written (:func:`save_figure` reads it)."""
    import nbformat

    nb = nbformat.read(chapter.path, as_version=4)
    return {m["name"].strip(): " ".join(m["caption"].split())
            for cell in nb.cells if cell.cell_type == "markdown"
            for m in FIGURE.finditer(cell.source)}


def _failed_cell(path: Path, exec_count) -> tuple[int | str, str]:
    """Index (among the source notebook's cells) and first code line of the failed cell."""
    import nbformat

    try:
        cells = nbformat.read(path, as_version=4).cells
    except (OSError, ValueError):
        return "?", "?"
    # papermill adds an error banner cell on top and an injected-parameters cell
    source_cells = [c for c in cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])
                    and "injected-parameters" not in c.metadata.get("tags", [])]
    for index, cell in enumerate(source_cells):
        if cell.cell_type == "code" and cell.get("execution_count") == exec_count:
            lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
            return index, (lines[0] if lines else cell.source[:60])
    return "?", "?"


def literal(text: str) -> object:
    """Parse a ``-p key=value`` value: a Python literal if it is one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def book_chapters_dir() -> Path:
    """Where the book's executed chapters go."""
    return project_root() / "book" / "chapters"
