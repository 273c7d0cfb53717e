"""Tables as the book shows them: Markdown in the page, aligned text in a terminal.

``display(as_table(frame, ...))`` in a chapter renders a real table in the HTML and the PDF
(myst-nb parses ``text/markdown`` outputs, ``_config.yml``: ``nb_render_markdown_format:
myst``), never cut short with "..." and without pandas' index or ``dtype:`` lines. Keep only
the columns the text discusses (``columns``); the rest belongs in the figure's CSV.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pandas as pd

Format = str | Callable[[object], str]

# Sphinx typesets a table of more than 30 rows as a LaTeX longtable whose columns never wrap, so
# a wide one runs off the PDF page; a {tabularcolumns} spec of wrapping columns prevents that.
LONG_TABLE_ROWS = 30


def latex_columns(widths: list[float]) -> str:
    """A MyST ``{tabularcolumns}`` directive of wrapping LaTeX columns (Sphinx's ``\\Y``), each
    as wide as its share of ``widths`` (e.g. the longest cell of each column)."""
    weights = [max(float(w), 1.0) ** 0.5 for w in widths]  # damp: short columns stay legible
    total = sum(weights)
    spec = "|".join(f"\\Y{{{0.94 * w / total:.3f}}}" for w in weights)
    return f"```{{tabularcolumns}} |{spec}|\n```\n\n"


def wrap_long_tables(markdown: str) -> str:
    """``markdown`` with a :func:`latex_columns` spec before every pipe table longer than
    :data:`LONG_TABLE_ROWS` rows (the HTML is unchanged)."""
    lines, out, i = markdown.splitlines(keepends=True), [], 0
    while i < len(lines):
        is_table = (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                    and set(lines[i + 1].strip()) <= set("|-: ") and "-" in lines[i + 1])
        if not is_table:
            out.append(lines[i])
            i += 1
            continue
        end = i
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        rows = [_cells(line) for line in lines[i:end] if not set(line.strip()) <= set("|-: ")]
        if len(rows) - 1 > LONG_TABLE_ROWS:
            n = len(rows[0])
            widths = [max(len(r[c]) if c < len(r) else 0 for r in rows) for c in range(n)]
            out.append(latex_columns(widths))
        out.extend(lines[i:end])
        i = end
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


class Table:
    """A rendered table: ``_repr_markdown_`` for the book, ``repr`` (aligned text) for nbval
    and terminals. ``frame`` holds the formatted cells (strings)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def _repr_markdown_(self) -> str:
        header = "| " + " | ".join(_escape(c) for c in self.frame.columns) + " |"
        rule = "|" + "|".join("---" for _ in self.frame.columns) + "|"
        rows = ["| " + " | ".join(_escape(v) for v in row) + " |"
                for row in self.frame.itertuples(index=False)]
        return wrap_long_tables("\n".join([header, rule, *rows]) + "\n")

    def __repr__(self) -> str:
        return self.frame.to_string(index=False)


def _escape(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _format(value, fmt: Format | None) -> str:
    if fmt is not None:
        return fmt(value) if callable(fmt) else fmt.format(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.3g}" if (value == 0 or 1e-3 <= abs(value) < 1e4) else f"{value:.1e}"
    return str(value)


def as_table(data, columns: list[str] | None = None, headers: Mapping[str, str] | None = None,
          formats: Mapping[str, Format] | None = None,
          names: tuple[str, str] = ("quantity", "value")) -> Table:
    """A :class:`Table` from a DataFrame, a Series or a dict.

    Args:
        data: DataFrame (its index is dropped unless named), or Series/dict (two columns,
            ``names``: one row per entry).
        columns: the columns to show, in order (default: all).
        headers: readable header per column name (default: the column name).
        formats: per column, a format string (``"{:.1e}"``) or a function; otherwise floats
            get 3 significant digits, booleans "yes"/"no".

    Raises:
        ValueError: naming a requested column that ``data`` does not have.
    """
    if isinstance(data, Mapping):
        data = pd.Series(data)
    if isinstance(data, pd.Series):
        frame = pd.DataFrame({names[0]: data.index.astype(str), names[1]: list(data.values)})
    elif isinstance(data, pd.DataFrame):
        frame = data.reset_index() if any(n is not None for n in data.index.names) else data
    else:
        raise ValueError(f"as_table() takes a DataFrame, Series or dict, got {type(data).__name__}")
    columns = list(frame.columns) if columns is None else list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"table has no column {missing[0]!r}; columns: "
                         f"{', '.join(map(str, frame.columns))}")
    formats, headers = dict(formats or {}), dict(headers or {})
    cells = pd.DataFrame({headers.get(c, str(c)): [_format(v, formats.get(c)) for v in frame[c]]
                          for c in columns})
    return Table(cells)
