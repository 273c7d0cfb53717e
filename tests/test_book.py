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


# ----------------------------------------------------------------- what the reader sees

def _notebook(cells, exception=False):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["papermill"] = {"exception": exception}
    return nb


def test_terminal_chatter_is_dropped_and_results_are_kept():
    import nbformat

    v4 = nbformat.v4
    cell = v4.new_code_cell("x")
    cell.outputs = [
        v4.new_output("stream", name="stderr", text="models:  40%|████      | 2/5 [00:03<00:05]"),
        v4.new_output("stream", name="stderr", text="Downloading to file '/root/.cache/x'"),
        v4.new_output("stream", name="stderr", text="UserWarning: something"),
        v4.new_output("stream", name="stdout", text="accuracy 0.61\n"),
        v4.new_output("stream", name="stderr", text="a plain note\n"),
        v4.new_output("error", ename="ValueError", evalue="bad", traceback=[]),
    ]
    nb = _notebook([cell])
    assert notebooks.drop_terminal_output(nb) == 3
    kinds = [(o["output_type"], o.get("name")) for o in nb.cells[0].outputs]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("error", None)]
    assert notebooks.drop_terminal_output(nb) == 0


def test_display_tags_show_the_run_parameters_once_and_hide_plumbing():
    import nbformat

    v4 = nbformat.v4
    cells = [v4.new_code_cell('profile = "default"', metadata={"tags": ["parameters"]}),
             v4.new_code_cell('profile = "paper"', metadata={"tags": ["injected-parameters"]}),
             v4.new_code_cell("import numpy as np\nsettings = 1"),
             v4.new_code_cell("x = np.ones(3)\nx.sum()"),
             v4.new_code_cell("fig = plot(x)\nsave_figure(fig, 'fig-a-b', t, chapter='a')"),
             v4.new_code_cell("import os", metadata={"tags": ["show-input"]})]
    nb = _notebook(cells)
    notebooks.apply_display_tags(nb)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert "remove-cell" in tags[0] and tags[1] == ["injected-parameters"]
    assert tags[2] == ["hide-input"] and tags[3] == [] and tags[4] == ["hide-input"]
    assert tags[5] == ["show-input"]
    # without an injected cell the notebook's own parameters are the run's: shown
    alone = _notebook([v4.new_code_cell('profile = "default"', metadata={"tags": ["parameters"]})])
    notebooks.apply_display_tags(alone)
    assert alone.cells[0].metadata["tags"] == ["parameters"]


def test_output_problems_finds_progress_bars_warnings_paths_and_errors():
    import os

    import nbformat

    v4 = nbformat.v4
    stream = lambda text, name="stderr": v4.new_output("stream", name=name, text=text)
    clean = _notebook([v4.new_code_cell("1", outputs=[stream("4 states of dimension 128", "stdout")])])
    assert notebooks.output_problems(clean) == []
    bad = _notebook([
        v4.new_code_cell("a", outputs=[stream("\rmodels:   6%|▌         | 1/18 [01:19<22:30, 79.47s/it]")]),
        v4.new_code_cell("b", outputs=[stream("/x/tqdm/auto.py:21: TqdmWarning: IProgress not found")]),
        v4.new_code_cell("c", outputs=[stream(f"Downloading to '{os.path.expanduser('~')}/.cache/x'")]),
        v4.new_code_cell("d", outputs=[v4.new_output("error", ename="ValueError", evalue="no",
                                                      traceback=[])])])
    found = "\n".join(notebooks.output_problems(bad))
    for what in ("cell 0: progress bar", "cell 1: warning", "cell 2: machine path",
                 "cell 3: error output ValueError"):
        assert what in found, found
    assert notebooks.failed(bad) and not notebooks.failed(clean)
    assert notebooks.failed(_notebook([], exception=True))


def test_the_build_refuses_a_failed_or_missing_chapter(tmp_path):
    import nbformat

    chapters = book.toc_chapters()
    assert [c.stem for c in chapters[:2]] == ["01_twirl", "02_sector_reliance"]
    for chapter in chapters:
        nbformat.write(_notebook([]), tmp_path / chapter.path.name)
    assert book.check_chapters(tmp_path) == []
    nbformat.write(_notebook([], exception=True), tmp_path / chapters[0].path.name)
    (tmp_path / chapters[1].path.name).unlink()
    problems = "\n".join(book.check_chapters(tmp_path))
    assert f"{chapters[0].path.name}: its run failed" in problems
    assert f"{chapters[1].path.name}: missing" in problems


def test_figure_index_links_every_file_of_every_figure(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(book, "project_root", lambda: tmp_path)
    folder = tmp_path / "book" / "figures"
    folder.mkdir(parents=True)
    files = {ext: f"fig-twirl-x.{ext}" for ext in ("pdf", "png", "csv", "json")}
    record = {"id": "fig-twirl-x", "caption": "Cap.", "chapter": "twirl", "profile": "paper",
              "files": files, "settings": {}, "versions": {}, "commit": "abc"}
    (folder / "fig-twirl-x.json").write_text(json.dumps(record))
    page = book.figures_page(folder)
    for ext, name in files.items():
        assert f"{{download}}`{ext.upper()} </book/figures/{name}>`" in page
    assert "{include} pdf.md" in page


def test_pdf_page_links_the_pdf_only_when_built(tmp_path, monkeypatch):
    pdf = tmp_path / "equivar.pdf"
    monkeypatch.setattr(book, "pdf_path", lambda: pdf)
    assert "make pdf" in book.pdf_page() and "{download}" not in book.pdf_page()
    pdf.write_bytes(b"%PDF-1.5\n")
    (tmp_path / "equivar.log").write_text("Output written on equivar.pdf (83 pages).\n")
    assert "{download}`equivar.pdf" in book.pdf_page() and "83 pages" in book.pdf_page()


def test_committed_chapters_show_no_progress_warnings_or_machine_paths():
    """book/chapters as the book renders them (the smoke runs are checked in test_notebooks)."""
    import nbformat
    import pytest

    for chapter in book.toc_chapters():
        nb = nbformat.read(ROOT / "book" / "chapters" / chapter.path.name, as_version=4)
        if "equivar" not in nb.metadata:
            pytest.skip("book/chapters holds the first edition's paper run (made before "
                        "executed chapters were checked and stamped); the next paper run "
                        "replaces it")
        assert notebooks.output_problems(nb) == [], chapter.stem


# ----------------------------------------------------------------- provenance

def test_quotations_of_the_paper_are_the_abstracts_exact_words():
    """Words in double quotes presented as the paper's (the abstract or the paper is named just
    before them) must occur in the abstract exactly; paraphrase goes without quotes."""
    import nbformat

    from equivar.provenance import ABSTRACT

    texts = {p.name: p.read_text() for p in (ROOT / "book").glob("*.md")}
    nb = nbformat.read(ROOT / "notebooks" / "01_twirl.ipynb", as_version=4)
    texts["01_twirl"] = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    abstract = " ".join(ABSTRACT.split())
    checked = 0
    for name, text in texts.items():
        prose = re.sub(r"```.*?```|`[^`]*`", "", text, flags=re.S)
        for match in re.finditer(r"[\"“]([^\"”]+?)[\"”]", prose):
            before = prose[max(0, match.start() - 150):match.start()].lower()
            if not any(w in before for w in ("abstract", "paper")):
                continue
            words = " ".join(match[1].split()).rstrip(".,;:")
            checked += 1
            assert words in abstract, f"{name}: {match[1]!r} is quoted but not in the abstract"
    assert checked >= 2  # chapter 1 quotes C1 and C2


def test_first_author_and_version_are_right():
    bib = (ROOT / "book" / "references.bib").read_text()
    entry = bib[bib.index("@misc{krumtunger2026"):].split("\n}")[0]
    assert "Krumt{\\\"u}nger, Maureen" in entry and "L." not in entry
    cite = (ROOT / "book" / "cite.md").read_text()
    assert "Krumt{\\\"u}nger, Maureen" in cite
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version.startswith("2.")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == version
    import json

    zenodo = json.loads((ROOT / ".zenodo.json").read_text())
    assert zenodo["version"] == version
    assert any(r["identifier"] == "arXiv:2604.15552" for r in zenodo["related_identifiers"])


def test_every_reference_with_a_doi_has_it():
    bib = (ROOT / "book" / "references.bib").read_text()
    entries = re.split(r"\n(?=@)", bib)
    for entry in entries:
        if "journal" in entry or "booktitle" in entry:
            key = re.match(r"@\w+\{([^,]+),", entry.strip())[1]
            if key in ("lecun1998",):  # a web page, no DOI
                continue
            assert "doi" in entry, key


def test_no_page_names_a_file_outside_the_repository():
    texts = [p.read_text() for p in (ROOT / "book").glob("*.md")] + \
        [(ROOT / "README.md").read_text(), (ROOT / "notebooks" / "01_twirl.ipynb").read_text()]
    for text in texts:
        assert "shared/science" not in text and "science.md" not in text


# ----------------------------------------------------------------- reruns apart from the edition

def test_a_rerun_goes_to_the_build_directory_and_leaves_the_committed_edition(tmp_path,
                                                                              monkeypatch):
    import os

    calls = {}

    def fake_run(names, profile, params=None, output=None, **kwargs):
        calls["run"] = (names, profile, output, os.environ.get("EQUIVAR_FIGURES_DIR"))

    monkeypatch.setattr(book, "run_chapters", fake_run)
    monkeypatch.setattr(book, "rerun_dir", lambda: tmp_path / "rerun")
    monkeypatch.setattr(book, "render_html",
                        lambda source=None, chapters_dir=None, **k: calls.setdefault(
                            "render", (source, chapters_dir)) and 0)
    monkeypatch.delenv("EQUIVAR_FIGURES_DIR", raising=False)
    assert book.build("smoke") == 0
    names, profile, output, figures_env = calls["run"]
    assert names == book.book_stems() and profile == "smoke"
    assert output == tmp_path / "rerun" / "chapters"
    assert figures_env == str(tmp_path / "rerun" / "figures")
    assert "EQUIVAR_FIGURES_DIR" not in os.environ  # restored
    source, chapters_dir = calls["render"]
    assert source == tmp_path / "rerun" / "src" and chapters_dir == output


def test_update_book_writes_the_committed_edition(monkeypatch):
    calls = {}
    monkeypatch.setattr(book, "run_chapters",
                        lambda names, profile, params=None, output=None, **k:
                        calls.setdefault("output", output))
    monkeypatch.setattr(book, "write_generated_pages", lambda *a, **k: None)
    monkeypatch.setattr(book, "render_html", lambda **k: 0)
    assert book.build("paper", update_book=True) == 0
    assert calls["output"] is None  # run_chapters' default: book/chapters


def test_staged_sources_point_at_the_rerun(tmp_path):
    chapters, figures = tmp_path / "chapters", tmp_path / "figures"
    chapters.mkdir()
    figures.mkdir()
    src = book.stage(chapters, figures, into=tmp_path / "src")
    assert (src / "_toc.yml").resolve() == (ROOT / "_toc.yml").resolve()
    assert (src / "book" / "chapters").resolve() == chapters.resolve()
    assert (src / "book" / "figures").resolve() == figures.resolve()
    assert (src / "book" / "intro.md").read_text() == (ROOT / "book" / "intro.md").read_text()
    generated = src / "book" / "generated"
    assert not generated.is_symlink() and "No figure has been written yet" in \
        (generated / "figures.md").read_text()
    assert "No chapter run has been recorded yet" in (generated / "timings.md").read_text()


def test_thread_prose_is_computed_from_the_results(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(book, "project_root", lambda: tmp_path)
    folder = tmp_path / "benchmarks" / "results"
    folder.mkdir(parents=True)
    medians = {"1 thread": {"quantum": 0.01, "cnn": 0.04},
               "2 threads": {"quantum": 0.30, "cnn": 0.02}}
    (folder / "threads.json").write_text(json.dumps({"busy": {"medians": medians}}))
    text = book.threads_summary()
    assert "between 0.50× (CNN step, 2 threads, next to two busy processes)" in text
    assert "and 30.0× (quantum step, 2 threads, next to two busy processes)" in text
    (folder / "threads.json").unlink()
    assert "not been run" in book.threads_summary()
