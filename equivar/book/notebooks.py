"""Executing the chapter notebooks with papermill (used by the CLI, the Makefile and the tests).

Chapters are ``notebooks/NN_<id>.ipynb``; an executed copy goes to ``book/chapters/`` (what
the book renders) or to any directory given. Parameters are checked against the notebook's
``parameters`` cell before anything runs.
"""
from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import nbformat

from equivar import settings
from equivar.paths import absolute_environment, project_root, writable_dir
from equivar.settings import PROFILES

# The settings class each chapter builds from its parameters (validated before a kernel starts).
CHAPTER_SETTINGS = {"twirl": settings.TwirlSettings, "sector-reliance": settings.RelianceSettings,
                    "transfer": settings.TransferSettings,
                    "suppression": settings.SuppressionSettings}
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
    nb = nbformat.read(chapter.path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            values = {}
            for node in ast.parse(cell.source).body:
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
            progress: bool = True, cwd: Path | None = None) -> Path:
    """Run ``chapter`` with papermill into ``output`` (a file or a directory).

    Raises :class:`ChapterFailed` naming the notebook, the failing cell and the error.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    params = check_parameters(chapter, params)
    absolute_environment()  # the kernel starts in notebooks/: pass it absolute paths
    output = Path(output).absolute()
    if output.suffix != ".ipynb":
        output = output / chapter.path.name
    writable_dir(output.parent, "output directory")
    try:
        pm.execute_notebook(str(chapter.path), str(output), parameters=params, kernel_name="python3",
                            progress_bar=progress, cwd=str(cwd or chapter.path.parent),
                            request_save_on_cell_execute=False)
    except PapermillExecutionError as err:
        index, first_line = _failed_cell(output, err.exec_count)
        raise ChapterFailed(f"{chapter.path.name} failed in cell {index} (In [{err.exec_count}], "
                            f"starting {first_line!r}): {err.ename}: {err.evalue}. The partly "
                            f"executed notebook is {output}") from None
    return output


def _failed_cell(path: Path, exec_count) -> tuple[int | str, str]:
    """Index (among the source notebook's cells) and first code line of the failed cell."""
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
