"""equivar.book.site and the book's configuration: generated pages, toc, pins."""
from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import yaml

from equivar.book import notebooks, site as book
from equivar import settings
from equivar.book.plots import project_root

ROOT = project_root()


def test_settings_page_lists_every_setting_of_every_chapter():
    page = book.settings_page()
    for cls in book.settings_classes():
        for f in dataclasses.fields(cls):
            if f.name != "profile":
                assert f"| `{f.name}` |" in page, (cls.__name__, f.name)
    assert "| `n_rings` | 16 | ours |" in page


def test_toc_lists_every_chapter_and_only_existing_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for chapter in notebooks.chapters():
        assert f"book/chapters/{chapter.stem}" in files
    for f in files:
        if not f.startswith(("book/chapters/", "book/generated/")):
            assert (ROOT / f"{f}.md").exists(), f


def test_book_never_executes_notebooks_itself():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True


def test_every_citation_key_exists():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    texts = [p.read_text() for p in (ROOT / "book").glob("*.md")]
    texts += [p.read_text() for p in (ROOT / "notebooks").glob("*.ipynb")]
    cited = {k.strip() for t in texts for group in re.findall(r"\{cite\}`([^`]+)`", t)
             for k in group.split(",")}
    assert cited and cited <= keys, cited - keys


def lock():
    lines = (ROOT / "requirements" / "lock.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_lock_pins_the_toolchain():
    pins = lock()
    assert pins["torch"] == "2.13.0" and pins["pennylane"] == "0.45.1"
    assert pins["jupyter-book"] == "1.0.4.post1" and "torchvision" not in pins


def test_pyproject_dependencies_are_all_locked():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {k.lower().replace("_", "-") for k in lock()}
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values()
                                      for d in extra]
    for dep in deps:
        name = re.split(r"[<>=!~ \[]", dep)[0].lower()
        assert name in pins, name


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert "-r requirements/lock.txt" in pip and "--no-deps" in pip
    assert "python=3.11" in env["dependencies"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_figure_index_page(tmp_path, monkeypatch):
    import json

    record = {"id": "fig-transfer-matrix", "caption": "Cap.", "chapter": "transfer",
              "profile": "paper", "files": {"pdf": "fig-transfer-matrix.pdf"},
              "settings": {"seed": 0}, "versions": {"equivar": "0.1.0"}, "commit": "abc"}
    (tmp_path / "fig-transfer-matrix.json").write_text(json.dumps(record))
    page = book.figures_page(tmp_path)
    assert "## fig-transfer-matrix" in page and "Cap." in page
    assert ("equivar: reproducible companion to arXiv:2604.15552 (Krumtünger, Sevior, Usman, "
            "2026), Fig. fig-transfer-matrix, version 0.1.0, commit abc, profile paper") in page
    assert "No figure" in book.figures_page(tmp_path / "empty")


def test_committed_book_results_are_complete():
    """book/chapters and book/figures hold one full paper-profile run of every chapter."""
    import json

    import nbformat

    from tests.test_notebooks import FIGURE

    for chapter in notebooks.chapters():
        executed = ROOT / "book" / "chapters" / chapter.path.name
        assert executed.exists(), executed
        nb = nbformat.read(executed, as_version=4)
        assert nb.metadata["papermill"]["parameters"]["profile"] == "paper"
        # the figures the executed copy itself shows (the sources may be ahead of the last
        # committed run until the next paper run)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for match in FIGURE.finditer(cell.source):
                record = json.loads((ROOT / "book" / "figures" /
                                     f"{match['name'].strip()}.json").read_text())
                assert record["profile"] == "paper" and not record["commit"].endswith("+dirty")
