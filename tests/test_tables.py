"""equivar.book.tables: tables as Markdown for the book, aligned text elsewhere."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from equivar.book.tables import CODE_CHAR, LINE_SHARE, as_table, wrap_long_tables


def rows(md: str) -> list[str]:
    """The pipe-table lines of a Markdown table (without its PDF column spec)."""
    return [line for line in md.splitlines() if line.startswith("|")]


def test_frame_becomes_a_markdown_table_without_index_or_truncation():
    frame = pd.DataFrame({"setting": ["seed", "why|pipe"], "value": [0, 0.000012345],
                          "why": ["x" * 200, "ok"]}, index=[7, 9])
    md = as_table(frame)._repr_markdown_()
    lines = rows(md)
    assert lines[0] == "| setting | value | why |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| seed | 0 | " + "x" * 200 + " |"
    assert "why\\|pipe" in lines[3] and "1.2e-05" in lines[3]
    assert "7" not in lines[2].split("|")[1] and "..." not in md


def test_series_and_dict_become_two_columns_without_dtype_line():
    checks = {"max |f - g|": 2.3e-15, "scale": 0.42}
    for data in (checks, pd.Series(checks)):
        table = as_table(data, names=("check", "value"), formats={"value": "{:.1e}"})
        md = table._repr_markdown_()
        assert rows(md)[0] == "| check | value |"
        assert "| max \\|f - g\\| | 2.3e-15 |" in md and "| scale | 4.2e-01 |" in md
        assert "dtype" not in md and "dtype" not in repr(table)


def test_columns_headers_and_defaults():
    frame = pd.DataFrame({"a": [True, False], "b": [float("nan"), 12345.0], "c": [1, 2]})
    md = as_table(frame, columns=["b", "a"], headers={"a": "invariant"})._repr_markdown_()
    assert rows(md)[0] == "| b | invariant |"
    assert "| – | yes |" in md and "| 1.2e+04 | no |" in md
    assert "c" not in rows(md)[0]


def test_bad_input_names_the_culprit():
    with pytest.raises(ValueError, match="table has no column 'nope'; columns: a"):
        as_table(pd.DataFrame({"a": [1]}), columns=["nope"])
    with pytest.raises(ValueError, match="as_table\\(\\) takes a DataFrame, Series or dict, got list"):
        as_table([1, 2])


def test_a_named_index_is_kept_as_a_column():
    frame = pd.DataFrame({"w_0": [0.7]}, index=pd.Index(["mnist"], name="dataset"))
    assert rows(as_table(frame)._repr_markdown_())[0] == "| dataset | w_0 |"


def test_every_table_gets_pdf_columns_that_fit_its_longest_code_word():
    md = ("text\n\n| setting | why |\n|---|---|\n| `selection_budget` | a long reason " * 1
          + "that goes on |\n\nmore text\n")
    out = wrap_long_tables(md)
    spec = re.search(r"```\{tabularcolumns\} \|(.*)\|\n```\n\n\| setting", out)
    assert spec, out
    shares = [float(x) for x in re.findall(r"\\Y\{([0-9.]+)\}", spec[1])]
    assert len(shares) == 2 and sum(shares) <= LINE_SHARE + 1e-3
    assert shares[0] >= CODE_CHAR * len("selection_budget") - 1e-3
    assert out.endswith("more text\n") and out.count("tabularcolumns") == 1
    assert wrap_long_tables(out) == out  # idempotent: a spec is not added twice
