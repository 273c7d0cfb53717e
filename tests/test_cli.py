"""equivar.cli and equivar.book.notebooks: argument checking before any work starts."""
from __future__ import annotations

import os
import shutil
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


# ----------------------------------------------------------------- errors before any work

@pytest.fixture
def never_executes(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a notebook was executed")
    monkeypatch.setattr(notebooks, "execute", never)


@pytest.fixture
def executed(monkeypatch):
    """Record the chapters and parameters that would run (nothing runs)."""
    calls = []
    monkeypatch.setattr(notebooks, "execute",
                        lambda chapter, params, output, progress=True, **kwargs: calls.append(
                            (chapter.id, params)))
    return calls


@pytest.mark.parametrize("argv,match", [
    # regression: these failed 25-30 s later inside a notebook cell
    (["run", "twirl", "-p", "seed=-1"], "chapter 'twirl': seed must lie in 0.."),
    (["run", "twirl", "-p", f"seed={2**70}"], "chapter 'twirl': seed must lie in 0.."),
    (["run", "twirl", "-p", "n_per_class=0"], "chapter 'twirl': n_per_class must be at least 1"),
    (["run", "twirl", "-p", "datasets=['nope']"], "unknown dataset 'nope' in datasets"),
    (["run", "2", "-p", "epochs=0"], "chapter 'sector-reliance': epochs must be at least 1"),
    (["run", "-p", "n_seeds=0"], "chapter 'sector-reliance': n_seeds must be at least 1"),
    (["run", "-p", "nonsense=1"], "no chosen chapter has a parameter 'nonsense'"),
])
def test_settings_are_validated_in_the_cli_process(argv, match, capsys, never_executes):
    assert cli.main(argv) == 2
    assert match in capsys.readouterr().err


def test_figures_dir_that_is_a_file(tmp_path, capsys, never_executes):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["run", "twirl", "-p", f"figures_dir={blocker}"]) == 2
    assert f"figures_dir {blocker} is a file, not a directory" in capsys.readouterr().err


def test_output_that_is_a_file(tmp_path, capsys, never_executes):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["run", "twirl", "--output", str(blocker)]) == 2
    assert f"--output {blocker} is a file, not a directory" in capsys.readouterr().err


def test_a_parameter_goes_to_the_chapters_that_have_it(tmp_path, executed):
    # regression: `equivar run -p n_seeds=1` over all chapters was refused (twirl has none)
    assert cli.main(["run", "-p", "n_seeds=1", "--output", str(tmp_path)]) == 0
    got = dict(executed)
    assert "n_seeds" not in got["twirl"]
    assert all(got[c]["n_seeds"] == 1 for c in ("sector-reliance", "transfer", "suppression"))


def test_a_chapter_named_twice_runs_once(tmp_path, executed):
    # regression: `equivar run 1 01` ran the chapter twice
    assert cli.main(["run", "1", "01", "twirl", "--output", str(tmp_path)]) == 0
    assert [c for c, _ in executed] == ["twirl"]


def test_relative_figures_dir_is_made_absolute(tmp_path, monkeypatch, executed):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "twirl", "-p", "figures_dir=figs", "--output", "out"]) == 0
    assert executed[0][1]["figures_dir"] == str(tmp_path / "figs")


def test_relative_environment_is_made_absolute_before_kernels_start(tmp_path, monkeypatch):
    # regression: relative EQUIVAR_*_DIR resolved against notebooks/ inside the kernel
    import os

    import papermill

    seen = {}

    def fake_execute(source, output, **kwargs):
        seen.update({k: os.environ.get(k) for k in ("EQUIVAR_CACHE_DIR", "EQUIVAR_DATA_DIR",
                                                    "EQUIVAR_FIGURES_DIR")})
        shutil.copy(source, output)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.chdir(tmp_path)
    for name in ("EQUIVAR_CACHE_DIR", "EQUIVAR_DATA_DIR", "EQUIVAR_FIGURES_DIR"):
        monkeypatch.setenv(name, "rel/" + name.lower())
    notebooks.execute(notebooks.find("twirl"), {"profile": "smoke"}, tmp_path / "out",
                      progress=False)
    assert seen == {name: str(tmp_path / "rel" / name.lower()) for name in seen}


def test_cache_clear_refuses_a_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "a.json").write_text("{}")
    assert cli.main(["cache", "clear", "../../foreign"]) == 2
    assert "unknown cache kind '../../foreign'" in capsys.readouterr().err
    assert (tmp_path / "foreign" / "a.json").exists()


def test_cache_list_names_a_broken_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    broken = tmp_path / "results" / "model" / ("a" * 24 + ".json")
    broken.parent.mkdir(parents=True)
    broken.write_text("[not json")
    assert cli.main(["cache", "list"]) == 0
    assert f"not an entry: {broken}" in capsys.readouterr().out


def test_figures_names_a_broken_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EQUIVAR_FIGURES_DIR", str(tmp_path))
    (tmp_path / "fig-twirl-x.json").write_text("{truncated")
    assert cli.main(["figures"]) == 2
    assert f"figure record {tmp_path / 'fig-twirl-x.json'} cannot be read" in \
        capsys.readouterr().err


def test_every_chapter_parameter_is_a_setting_the_cli_validates():
    import dataclasses

    for chapter in notebooks.chapters():
        cls = notebooks.CHAPTER_SETTINGS[chapter.id]
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(notebooks.parameters(chapter)) - set(notebooks.PLUMBING) <= fields, chapter


def test_a_failed_run_never_replaces_a_good_chapter(tmp_path, monkeypatch):
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    good = tmp_path / "01_twirl.ipynb"
    good.write_text("the good chapter")
    kept = {}

    def failing(source, output, **kwargs):
        nb = nbformat.read(source, as_version=4)
        nb.cells[3].execution_count = 2
        nbformat.write(nb, output)
        kept["path"] = output
        raise PapermillExecutionError(cell_index=3, exec_count=2, source="x", ename="ValueError",
                                      evalue="bad value", traceback=[])

    monkeypatch.setattr(papermill, "execute_notebook", failing)
    with pytest.raises(notebooks.ChapterFailed, match="ValueError: bad value") as err:
        notebooks.execute(notebooks.find("twirl"), {"profile": "smoke"}, good, progress=False)
    assert good.read_text() == "the good chapter"
    assert "left as it was" in str(err.value) and kept["path"] in str(err.value)


def test_a_successful_run_is_tagged_stamped_and_reported(tmp_path, monkeypatch):
    import nbformat
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda source, output, **kwargs: shutil.copy(source, output))
    lines = []
    out = notebooks.execute(notebooks.find("twirl"), {"profile": "smoke"}, tmp_path,
                            progress=False, say=lines.append)
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["equivar"]["profile"] == "smoke"
    assert any("hide-input" in c.metadata.get("tags", []) for c in nb.cells)
    assert lines[0].startswith("01_twirl: ") and "cells, profile smoke ->" in lines[0]
    assert "done in" in lines[1] and str(out) in lines[1]


def test_chapters_run_in_parallel_processes_and_a_failure_is_named(tmp_path):
    import nbformat

    from equivar.book import site

    (tmp_path / "notebooks").mkdir()
    for name, body in (("09_fine", "import os\nprint('pid', os.getpid())"),
                       ("10_broken", "raise ValueError('planted failure')")):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        params = nbformat.v4.new_code_cell("profile = 'default'")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    fine = notebooks.find("fine", root=tmp_path)
    broken = notebooks.find("broken", root=tmp_path)
    chosen = [fine, broken]
    params = {c: {"profile": "smoke"} for c in chosen}
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(notebooks.ChapterFailed, match="10_broken.ipynb failed in cell 1"):
        site._execute_parallel(chosen, params, out, 2, "smoke", None)
    done = nbformat.read(out / "09_fine.ipynb", as_version=4)
    assert done.metadata["equivar"]["profile"] == "smoke"
    # each chapter ran in its own process, not in this one
    printed = done.cells[-1].outputs[0]["text"]
    assert printed.startswith("pid ") and int(printed.split()[1]) != os.getpid()
    assert not (out / "10_broken.ipynb").exists()
    assert site._execute_parallel([fine], params, out, 1, "smoke", None).keys() == {"09_fine"}


def test_timings_page_puts_the_whole_run_last_and_explains_overlap(tmp_path):
    import json

    from equivar.book import site

    info = {"machine": {"python": "3.11", "platform": "Linux", "processor": "x86_64",
                        "cpu_count": 2},
            "chapters": {site.WALL: {"profile": "paper", "seconds": 100.0},
                         "sweep": {"profile": "paper", "seconds": 60.0},
                         "02_sector_reliance": {"profile": "paper", "seconds": 30.0},
                         "03_transfer": {"profile": "paper", "seconds": 35.0}}}
    (tmp_path / "run-info.json").write_text(json.dumps(info))
    page = site.timings_page(tmp_path)
    rows = [line for line in page.splitlines() if line.startswith("| ") and "seconds" not in line]
    assert rows[-1] == f"| {site.WALL} | paper | 100.0 |" and len(rows) == 4
    assert "their times overlap" in page
    del info["chapters"]["sweep"]
    (tmp_path / "run-info.json").write_text(json.dumps(info))
    assert "overlap" not in site.timings_page(tmp_path)


def test_timings_page_adds_up_the_sweep_by_unit_kind(tmp_path):
    import json

    from equivar.book import site, sweep
    from equivar.studies.units import Unit

    def train(x):
        return x

    def score(x):
        return x

    units = [Unit(1, "a", train, (1,)), Unit(1, "b", train, (2,)), Unit(2, "c", score, (1,))]
    cost = sweep.cost_table(units, {"a": 10.0, "b": 30.0, "c": 5.0})
    assert list(cost) == ["train", "score"]
    assert cost["train"] == {"units": 2, "seconds": 40.0, "largest": 30.0}
    info = {"machine": {"python": "3.11", "platform": "Linux", "processor": "x86_64",
                        "cpu_count": 2},
            "chapters": {"sweep": {"profile": "paper", "seconds": 30.0}},
            "sweep": {"profile": "paper", "stages": {"stage 1": 20.0, "stage 2": 5.0},
                      "by kind": cost}}
    (tmp_path / "run-info.json").write_text(json.dumps(info))
    page = site.timings_page(tmp_path)
    assert "| train | 2 | 40 | 30 |" in page and "stage 1 20 s" in page
    assert "45 worker seconds in 25 s" in page and "1.80 workers" in page


def test_parallel_chapters_start_with_the_longest_of_the_last_run(tmp_path):
    import json

    from equivar.book import site

    assert site._last_seconds(tmp_path) == {}
    (tmp_path / "run-info.json").write_text("{not json")
    assert site._last_seconds(tmp_path) == {}
    (tmp_path / "run-info.json").write_text(json.dumps(
        {"chapters": {"03_transfer": {"profile": "paper", "seconds": 300.0},
                      "01_twirl": {"profile": "paper", "seconds": 12}}}))
    assert site._last_seconds(tmp_path) == {"03_transfer": 300.0, "01_twirl": 12.0}
