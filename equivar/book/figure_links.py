"""Sphinx extension: under every figure of the book, its files and its citation line.

For each ``{figure}`` whose name is a figure id with a record in ``book/figures/<id>.json``
(written by :func:`equivar.book.plots.save_figure`), a paragraph is added after the figure:
download links to the figure's PDF, PNG, CSV (the plotted numbers) and JSON (provenance), and
the ready-to-paste citation (:func:`equivar.book.site.cite_figure`). The links are Sphinx
download references, so the build copies the four files into the site (``_downloads/``) and a
missing file is a build warning (an error under ``-W``). A caption that differs from the one
recorded in the JSON is a warning too: the caption is written once, in the page. In the PDF
the links become the files' names.

Enabled in ``_config.yml`` (``sphinx.extra_extensions``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

LABELS = {"pdf": "PDF", "png": "PNG", "csv": "CSV (plotted data)", "json": "JSON (provenance)"}


QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"',
                        "–": "--", "—": "---"})


def _plain(text: str) -> str:
    """Caption text compared without Markdown markup, Sphinx's smart quotes and dashes, and
    whitespace differences."""
    text = text.translate(QUOTES).replace("--", "-").replace("--", "-")
    return " ".join(re.sub(r"[*`$\\]", "", text).split())


def figure_record(figures: Path, name: str) -> dict | None:
    """The JSON record of figure ``name`` in ``figures``, or None if there is none."""
    path = figures / f"{name}.json"
    if not name.startswith("fig-") or not path.exists():
        return None
    return json.loads(path.read_text())


def add_figure_files(app, doctree) -> None:
    """``doctree-read`` handler (runs before Sphinx collects download references)."""
    from equivar.book.site import cite_figure

    srcdir = Path(app.srcdir)
    folder = srcdir / app.config.equivar_figures_dir  # not resolved: a staged rerun links it
    for figure in list(doctree.findall(nodes.figure)):
        for name in figure["names"]:
            record = figure_record(folder, name)
            if record is None:
                continue
            caption = " ".join(n.astext() for n in figure.children
                               if isinstance(n, (nodes.caption, nodes.legend)))
            if _plain(caption) != _plain(record["caption"]):
                logger.warning(f"figure {name}: the caption in the page differs from the one "
                               f"recorded in {name}.json (rerun the chapter)", location=figure)
            para = nodes.paragraph(classes=["figure-files"])
            para += nodes.strong(text="Files: ")
            for i, (ext, label) in enumerate(LABELS.items()):
                file = record["files"].get(ext)
                if file is None:
                    logger.warning(f"figure {name}: no {ext} file recorded", location=figure)
                    continue
                if i:
                    para += nodes.Text(" · ")
                target = "/" + str((folder / file).relative_to(srcdir))
                ref = addnodes.download_reference("", "", refexplicit=True, reftarget=target,
                                                  refdoc=app.env.docname, refdomain="",
                                                  reftype="download")
                ref += nodes.literal(text=label, classes=["download"])
                para += ref
            para += nodes.Text(". ")
            para += nodes.strong(text="Cite as: ")
            para += nodes.Text(cite_figure(record) + ".")
            figure.parent.insert(figure.parent.index(figure) + 1, para)


def name_files_outside_html(app, doctree, docname) -> None:
    """``doctree-resolved`` handler: in the PDF a download link leads nowhere, so it shows the
    file's name in ``book/figures/`` instead."""
    if app.builder.format == "html":
        return
    for para in doctree.findall(nodes.paragraph):
        if "figure-files" not in para["classes"]:
            continue
        for ref in list(para.findall(addnodes.download_reference)):
            ref.replace_self(nodes.literal(text=Path(ref["reftarget"]).name))
        for strong in para.findall(nodes.strong):
            if strong.astext() == "Files: ":
                strong.replace_self(nodes.strong(text="Files (book/figures/ in the repository): "))
                break


def setup(app):
    app.add_config_value("equivar_figures_dir", "book/figures", "env")
    # before the builtin collectors (priority 500) turn download references into files
    app.connect("doctree-read", add_figure_files, priority=400)
    app.connect("doctree-resolved", name_files_outside_html)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
