"""Sphinx extension: serve MathJax with the book, so equations render without a network.

The theme would load MathJax 3 from a CDN. This extension points Sphinx's ``mathjax_path`` at
``_static/mathjax/tex-chtml.js`` and, after an HTML build, copies MathJax 3.2.2 there from the
PyPI package ``django-static-mathjax`` (pinned in ``requirements/lock.txt``; Apache-2.0; it
installs a plain ``mathjax`` folder of static files and needs no Django). Only what the book
uses is copied: the TeX-input/CommonHTML-output component, its fonts and the TeX extensions
MathJax loads on demand. A missing package is an error naming the package, not a silent CDN
fallback. Enabled in ``_config.yml`` (``sphinx.extra_extensions``).
"""
from __future__ import annotations

import shutil
from importlib import util
from pathlib import Path

from sphinx.errors import ExtensionError

ENTRY = "tex-chtml.js"
# the component, the fonts it loads, and TeX packages it autoloads (e.g. \boldsymbol)
PARTS = (ENTRY, "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui/menu.js")


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax package; ExtensionError if it is missing."""
    spec = util.find_spec("mathjax")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" \
        if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / ENTRY).exists():
        raise ExtensionError("MathJax is served with the book from the package "
                             "django-static-mathjax (requirements/lock.txt); install it with "
                             "`pip install --no-deps django-static-mathjax==3.2.2.1`")
    return folder


def configure(app, config) -> None:
    mathjax_source()  # fail before the build, not after it
    config.mathjax_path = f"mathjax/{ENTRY}"


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in PARTS:
        src, dst = source / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dst)


def setup(app):
    app.connect("config-inited", configure)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
