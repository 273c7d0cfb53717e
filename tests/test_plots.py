"""equivar.book.plots: figure files, determinism, metadata."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from equivar import paths, settings as chapter_settings
from equivar.book import plots  # noqa: E402


def make_figure():
    fig, ax = plt.subplots()
    ax.plot(np.arange(5), np.arange(5) ** 2)
    return fig


def test_save_figure_writes_four_files_deterministically(tmp_path):
    table = pd.DataFrame({"x": np.arange(5), "y": np.arange(5) ** 2})
    settings = chapter_settings.TwirlSettings.for_profile("smoke")
    first = plots.save_figure(make_figure(), "fig-test-thing", table, "A caption.", "test",
                              settings, tmp_path / "a")
    second = plots.save_figure(make_figure(), "fig-test-thing", table, "A caption.", "test",
                               settings, tmp_path / "b")
    for ext in ("pdf", "png", "csv", "json"):
        assert first[ext].read_bytes() == second[ext].read_bytes(), ext
    record = json.loads(first["json"].read_text())
    assert record["id"] == "fig-test-thing" and record["caption"] == "A caption."
    assert record["profile"] == "smoke" and record["settings"]["n_per_class"] == 10
    assert set(record["versions"]) >= {"pennylane", "torch", "equivar"}
    assert pd.read_csv(first["csv"])["y"].tolist() == [0, 1, 4, 9, 16]
    assert not list((tmp_path / "a").glob("*.part"))


def test_figure_is_closed(tmp_path):
    fig = make_figure()
    plots.save_figure(fig, "fig-test-closed", pd.DataFrame({"a": [1]}), "c", "test",
                      out_dir=tmp_path)
    assert not plt.fignum_exists(fig.number)


@pytest.mark.parametrize("bad", ["Fig-Twirl", "fig_twirl_x", "twirl-weights", "fig-"])
def test_bad_figure_id(bad, tmp_path):
    with pytest.raises(ValueError, match="figure id must look like"):
        plots.save_figure(make_figure(), bad, pd.DataFrame(), "c", "t", out_dir=tmp_path)


def test_figures_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("EQUIVAR_FIGURES_DIR", raising=False)
    assert paths.figures_dir() == paths.project_root() / "book" / "figures"
    monkeypatch.setenv("EQUIVAR_FIGURES_DIR", str(tmp_path))
    assert paths.figures_dir() == tmp_path
    assert paths.figures_dir(tmp_path / "x") == tmp_path / "x"


def test_the_caption_is_read_from_the_chapter_page(tmp_path):
    """Written once, in the {figure} directive: save_figure stores that text in the JSON."""
    from equivar.book import notebooks

    shown = notebooks.figure_captions(notebooks.find("twirl"))
    paths_ = plots.save_figure(make_figure(), "fig-twirl-sampling", pd.DataFrame({"a": [1]}),
                               chapter="twirl", out_dir=tmp_path)
    record = json.loads(paths_["json"].read_text())
    assert record["caption"] == shown["fig-twirl-sampling"]
    assert "ring-sampling points" in record["caption"] and "\n" not in record["caption"]


def test_a_figure_the_chapter_does_not_show_is_refused(tmp_path):
    with pytest.raises(ValueError, match="01_twirl.ipynb shows no figure named 'fig-twirl-nope'"):
        plots.save_figure(make_figure(), "fig-twirl-nope", pd.DataFrame(), chapter="twirl",
                          out_dir=tmp_path)
    with pytest.raises(ValueError, match="give the chapter id"):
        plots.save_figure(make_figure(), "fig-twirl-nope", pd.DataFrame(), out_dir=tmp_path)
    assert not list(tmp_path.glob("*"))  # refused before writing anything


def test_use_style_never_truncates_tables():
    plots.use_style()
    wide = pd.DataFrame({"why": ["a reason " * 30]})
    assert "..." not in wide.to_string() and "..." not in wide.to_html()
    assert "..." not in pd.DataFrame({"x": range(120)}).to_string()


def test_git_commit_is_dirty_for_code_not_for_the_runs_own_outputs(tmp_path, monkeypatch):
    import subprocess

    from equivar.book import plots

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "book" / "figures").mkdir(parents=True)
    (tmp_path / "equivar").mkdir()
    (tmp_path / "book" / "figures" / "fig-a.json").write_text("{}")
    (tmp_path / "equivar" / "x.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    monkeypatch.setattr(plots, "project_root", lambda: tmp_path)
    clean = plots.git_commit()
    assert len(clean) == 12 and not clean.endswith("+dirty")
    (tmp_path / "book" / "figures" / "fig-a.json").write_text('{"rerun": 1}')
    assert plots.git_commit() == clean           # a run rewriting its committed figures
    (tmp_path / "scratch.py").write_text("")     # untracked: not the commit's code either way
    assert plots.git_commit() == clean
    (tmp_path / "equivar" / "x.py").write_text("x = 2\n")
    assert plots.git_commit() == clean + "+dirty"
