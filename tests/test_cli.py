"""equivar.cli and equivar.book.notebooks: argument checking before any work starts."""
from __future__ import annotations

import subprocess
import sys

import pytest

from equivar import cli
from equivar.book import notebooks


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


def test_figures_lists_ids_captions_and_files(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("EQUIVAR_FIGURES_DIR", str(tmp_path))
    (tmp_path / "fig-twirl-x.json").write_text(json.dumps({
        "id": "fig-twirl-x", "caption": "A caption.", "chapter": "twirl", "profile": "smoke",
        "files": {"pdf": "fig-twirl-x.pdf", "png": "fig-twirl-x.png"}}))
    assert cli.main(["figures"]) == 0
    out = capsys.readouterr().out
    assert "fig-twirl-x  [chapter twirl, profile smoke]" in out and "A caption." in out
    assert "fig-twirl-x.pdf" in out


def test_data_list_and_fetch(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist" in out and "digits" in out and "mnist-rot" in out
    assert cli.main(["data", "fetch", "digits"]) == 0


def test_data_fetch_unknown(capsys):
    assert cli.main(["data", "fetch", "cifar"]) == 2
    assert "unknown dataset 'cifar'" in capsys.readouterr().err


def test_env_prints_versions(capsys):
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert "pennylane 0.45.1" in out and "torch 2.13.0" in out and out.startswith("python 3.11")


def test_cache_list_and_clear(tmp_path, monkeypatch, capsys):
    import torch

    from equivar import cache

    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    cache.cached("model", {"dataset": "digits", "variant": "west", "seed": 0},
                 lambda: {"w": torch.zeros(2)})
    assert cli.main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 entries" in out and "dataset=digits, variant=west, seed=0" in out
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out and cache.entries() == []
