"""equivar.cli and equivar.notebooks: argument checking before any work starts."""
from __future__ import annotations

import subprocess
import sys

import pytest

from equivar import cli, notebooks


@pytest.mark.parametrize("argv,match", [
    (["run", "nosuchchapter"], "unknown chapter 'nosuchchapter'; chapters: 01 twirl"),
    (["run", "twirl", "-p", "n_per_klass=3"], "chapter 'twirl' has no parameter 'n_per_klass'"),
    (["run", "twirl", "-p", "seed=one"], "parameter 'seed' of chapter 'twirl' must be int"),
    (["run", "twirl", "-p", "seed"], "parameters are given as key=value"),
    (["run", "twirl", "-p", "profile=paper"], "set the profile with --profile"),
])
def test_bad_arguments_fail_before_any_work(argv, match, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a notebook was executed")
    monkeypatch.setattr(notebooks, "execute", never)
    assert cli.main(argv) == 2
    assert match in capsys.readouterr().err


def test_unknown_profile_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--profile", "fast"])
    assert exit_.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "equivar", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "run" in out.stdout and "book" in out.stdout


def test_parameters_of_a_chapter():
    params = notebooks.parameters(notebooks.find("01"))
    assert params["profile"] == "default" and "seed" in params and "figures_dir" in params


def test_find_accepts_number_id_and_stem():
    assert notebooks.find("1") == notebooks.find("twirl") == notebooks.find("01_twirl")


def test_literal():
    assert notebooks.literal("3") == 3 and notebooks.literal("[1, 2]") == [1, 2]
    assert notebooks.literal("fashion-mnist") == "fashion-mnist"


def test_failure_names_notebook_cell_and_error(tmp_path, monkeypatch):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'default'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1\nraise ValueError('planted failure')")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "09_broken.ipynb")
    chapter = notebooks.find("broken", root=tmp_path)
    with pytest.raises(notebooks.ChapterFailed,
                       match=r"09_broken.ipynb failed in cell 1 \(In \[3\], starting 'x = 1'\): "
                             r"ValueError: planted failure"):
        notebooks.execute(chapter, {"profile": "smoke"}, tmp_path / "out", progress=False)
