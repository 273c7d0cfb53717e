"""Tables as the book shows them: Markdown in the page, aligned text in a terminal.

``display(as_table(frame, ...))`` in a chapter renders a real table in the HTML and the PDF
(myst-nb parses ``text/markdown`` outputs, ``_config.yml``: ``nb_render_markdown_format:
myst``), never cut short with "..." and without pandas' index or ``dtype:`` lines. Keep only
the columns the text discusses (``columns``); the rest belongs in the figure's CSV.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import pandas as pd

Format = str | Callable[[object], str]

# In the PDF, Sphinx sizes table columns from their content and never breaks a long name in
# code type, so a narrow column overprints its neighbour, and a table of more than 30 rows
# becomes a longtable whose columns never wrap. Every table of the book therefore gets a
# {tabularcolumns} spec of wrapping columns: each at least as wide as its longest word, the
# rest shared by the amount of text (the HTML is unchanged).
CODE_CHAR = 0.016     # share of the line width one character of code type takes in a PDF table
TEXT_CHAR = 0.011     # the same for roman type (which also breaks after hyphens)
LINE_SHARE = 0.94     # of the line width, for all columns together


def latex_columns(longest_words: list[float], lengths: list[int]) -> str:
    """A MyST ``{tabularcolumns}`` directive of wrapping LaTeX columns (Sphinx's ``\\Y``):
    column ``i`` gets ``longest_words[i]`` of the line width (room for its longest unbreakable
    word), and the rest of the line is shared in proportion to the square root of
    ``lengths[i]`` (its amount of text)."""
    floor = [max(w, 3 * TEXT_CHAR) for w in longest_words]
    if sum(floor) > LINE_SHARE:  # too many wide words: shrink them all alike
        floor = [f * LINE_SHARE / sum(floor) for f in floor]
    weights = [max(n, 1) ** 0.5 for n in lengths]
    spare = LINE_SHARE - sum(floor)
    shares = [f + spare * w / sum(weights) for f, w in zip(floor, weights)]
    spec = "|".join(f"\\Y{{{share:.3f}}}" for share in shares)
    return f"```{{tabularcolumns}} |{spec}|\n```\n\n"


def wrap_long_tables(markdown: str) -> str:
    """``markdown`` with a :func:`latex_columns` spec before every pipe table, so that the PDF
    wraps its columns instead of overprinting or clipping them."""
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
        n = len(rows[0])
        column = [[r[c] if c < len(r) else "" for r in rows] for c in range(n)]
        words = [max((_word_width(cell) for cell in col), default=0.0) for col in column]
        lengths = [sum(len(cell) for cell in col) for col in column]
        if not (i > 0 and "tabularcolumns" in "".join(out[-3:])):
            out.append(latex_columns(words, lengths))
        out.extend(lines[i:end])
        i = end
    return "".join(out)


def _word_width(cell: str) -> float:
    """Share of the line width the longest unbreakable piece of a cell needs in the PDF: code
    (backticks) never breaks; roman text breaks at spaces and after hyphens."""
    if cell.startswith("`") and cell.endswith("`"):
        return CODE_CHAR * len(cell.strip("`"))
    pieces = re.split(r"[\s/-]+", cell.replace("*", ""))
    return TEXT_CHAR * max((len(p) for p in pieces), default=0)


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
