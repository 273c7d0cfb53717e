"""The built HTML book, walked as a reader's browser would: links, figure files, outputs.

Builds the site from the chapters in ``book/chapters`` into a temporary directory (about 15 s;
``jupyter-book build -W -n``, as ``make html``), then reads every page.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from bs4 import BeautifulSoup

from equivar.book import notebooks, site as book
from equivar.paths import project_root

ROOT = project_root()
FILE_KINDS = ("pdf", "png", "csv", "json")


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    book.write_generated_pages()
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "-n",
                             "--keep-going"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return out / "_build" / "html"


def pages(html: Path) -> dict[Path, BeautifulSoup]:
    return {p: BeautifulSoup(p.read_text(), "html.parser") for p in sorted(html.rglob("*.html"))
            if "_static" not in p.parts}


def test_every_local_link_resolves(html):
    all_pages = pages(html)
    broken = []
    for page, soup in all_pages.items():
        for tag, attr in (("a", "href"), ("img", "src"), ("script", "src"), ("link", "href")):
            for node in soup.find_all(tag):
                url = node.get(attr)
                if not url or url.startswith(("http://", "https://", "mailto:", "javascript:",
                                              "data:", "//")):
                    continue
                parts = urlsplit(url)
                target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
                if not target.exists():
                    broken.append(f"{page.relative_to(html)}: {url}")
                elif parts.fragment and target.suffix == ".html":
                    soup_t = all_pages.get(target) or BeautifulSoup(target.read_text(),
                                                                    "html.parser")
                    if soup_t.find(id=parts.fragment) is None:
                        broken.append(f"{page.relative_to(html)}: {url} (no such anchor)")
    assert not broken, "\n".join(broken[:20])


def test_mathjax_is_served_with_the_book(html):
    for page, soup in pages(html).items():
        sources = [s.get("src", "") for s in soup.find_all("script")]
        assert not any("cdn" in s and "mathjax" in s.lower() for s in sources), page
    index = BeautifulSoup((html / "book" / "chapters" / "01_twirl.html").read_text(),
                          "html.parser")
    local = [s["src"] for s in index.find_all("script", src=True) if "mathjax" in s["src"]]
    assert local and all(not s.startswith("http") for s in local)
    assert (html / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    assert list((html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))


def test_every_figure_links_its_four_files_and_citation(html):
    records = {r["id"]: r for r in book.figure_records()}
    seen = set()
    for chapter in book.toc_chapters():
        soup = BeautifulSoup((html / "book" / "chapters" / f"{chapter.stem}.html").read_text(),
                             "html.parser")
        for figure in soup.find_all("figure"):
            name = figure.get("id")
            if name not in records:
                continue
            files = figure.find_next_sibling("p", class_="figure-files")
            assert files is not None, f"{chapter.stem}: {name} has no files line"
            links = [a["href"] for a in files.find_all("a")]
            assert [Path(h).suffix[1:] for h in links] == list(FILE_KINDS), (name, links)
            page = html / "book" / "chapters"
            for href, ext in zip(links, FILE_KINDS):
                target = (page / unquote(href)).resolve()
                assert target.name == records[name]["files"][ext], (name, href)
                assert target.read_bytes() == (book.figures_dir() / target.name).read_bytes()
            assert f"Fig. {name}" in files.get_text() and "commit" in files.get_text()
            seen.add(name)
    shown = {m["name"].strip() for ch in book.toc_chapters()
             for m in notebooks.FIGURE.finditer(
                 "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                           for c in json.loads((ROOT / "book" / "chapters" /
                                                ch.path.name).read_text())["cells"]
                           if c["cell_type"] == "markdown"))}
    assert seen and seen == shown & set(records)


def test_figure_index_links_every_file(html):
    soup = BeautifulSoup((html / "book" / "generated" / "figures.html").read_text(),
                         "html.parser")
    hrefs = {Path(unquote(a["href"])).name for a in soup.find_all("a", href=True)}
    for record in book.figure_records():
        assert set(record["files"].values()) <= hrefs, record["id"]


def test_outputs_show_no_progress_bars_warnings_or_machine_paths(html):
    found = []
    for chapter in book.toc_chapters():
        soup = BeautifulSoup((html / "book" / "chapters" / f"{chapter.stem}.html").read_text(),
                             "html.parser")
        for output in soup.select("div.cell_output"):
            text = output.get_text(" ")
            for what, pattern in notebooks.UNWANTED.items():
                match = pattern.search(text)
                if match:
                    found.append(f"{chapter.stem}: {what}: {match.group(0)!r}")
            if output.select(".output.traceback, .output.error"):
                found.append(f"{chapter.stem}: an error output")
    assert not found, "\n".join(found[:20])


def test_pages_show_no_pandas_truncation_or_dtype_lines(html):
    """Tables are tables: no "..." cut, no pandas Series footer (chapters run by this edition)."""
    found = []
    for chapter in book.toc_chapters():
        nb = json.loads((ROOT / "book" / "chapters" / chapter.path.name).read_text())
        if "equivar" not in nb["metadata"]:
            continue  # the first edition's run; the next paper run is checked
        soup = BeautifulSoup((html / "book" / "chapters" / f"{chapter.stem}.html").read_text(),
                             "html.parser")
        for output in soup.select("div.cell_output"):
            text = output.get_text(" ")
            if re.search(r"\bdtype: \w+", text) or re.search(r"\w\.\.\.(\s|$)", text):
                found.append(f"{chapter.stem}: {text.strip()[:80]!r}")
    assert not found, "\n".join(found)
