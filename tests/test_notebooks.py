"""Every chapter: papermill under `smoke`, nbval on the executed copy, figures and captions."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from equivar.book import notebooks

CHAPTERS = notebooks.chapters()
FIGURE = re.compile(r"```\{figure\}[^\n]*\n:name: (?P<name>[^\n]+)\n(?::[^\n]*\n)*\n"
                    r"(?P<caption>.*?)\n```", re.S)


def normalise(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module", params=CHAPTERS, ids=[c.id for c in CHAPTERS])
def executed(request, tmp_path_factory):
    chapter = request.param
    out = tmp_path_factory.mktemp(chapter.id)
    start = time.perf_counter()
    path = notebooks.execute(chapter, {"profile": "smoke", "figures_dir": str(out / "figures")},
                             out / chapter.path.name, progress=False)
    return chapter, path, out / "figures", time.perf_counter() - start


@pytest.mark.notebook
def test_smoke_profile_runs_within_two_minutes(executed):
    chapter, path, _, seconds = executed
    assert seconds < 120, f"{chapter.id} took {seconds:.0f} s under smoke"
    nb = nbformat.read(path, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.notebook
def test_second_execution_reproduces_checked_outputs(executed):
    """nbval re-executes the executed copy and compares the cells marked NBVAL_CHECK_OUTPUT."""
    _, path, _, _ = executed
    # a fresh result cache: the second run retrains instead of reloading the first run's models
    env = {**os.environ, "EQUIVAR_CACHE_DIR": str(path.parent / "fresh-cache")}
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                             "-p", "no:cacheprovider", "-q", "--rootdir", str(path.parent),
                             "-c", "/dev/null", str(path)],
                            capture_output=True, text=True, cwd=path.parent, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    marked = sum("NBVAL_CHECK_OUTPUT" in c.source for c in nbformat.read(path, as_version=4).cells)
    assert marked >= 2  # the chapter does mark its key results


@pytest.mark.notebook
def test_every_figure_in_the_text_was_written_with_the_same_caption(executed):
    chapter, path, figures, _ = executed
    nb = nbformat.read(chapter.path, as_version=4)
    shown = {m["name"].strip(): normalise(m["caption"])
             for c in nb.cells if c.cell_type == "markdown" for m in FIGURE.finditer(c.source)}
    assert shown, "the chapter shows no figure"
    written = {p.stem: json.loads(p.read_text()) for p in figures.glob("*.json")}
    assert set(shown) == set(written)
    for name, caption in shown.items():
        assert normalise(written[name]["caption"]) == caption, name
        assert written[name]["chapter"] == chapter.id
        for ext in ("pdf", "png", "csv"):
            assert (figures / f"{name}.{ext}").stat().st_size > 0


def test_notebooks_are_saved_clean():
    """Source notebooks: python3 kernel, no outputs, a parameters cell with profile."""
    for chapter in CHAPTERS:
        nb = nbformat.read(chapter.path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert notebooks.parameters(chapter)["profile"] == "default"


@pytest.mark.notebook
def test_rendered_outputs_show_no_progress_warnings_or_machine_paths(executed):
    """No errors, progress bars, warnings or machine paths (the checks the build applies)."""
    _, path, _, _ = executed
    found = notebooks.output_problems(nbformat.read(path, as_version=4))
    assert not found, "\n".join(found[:10])
