"""The package's layers point one way (import-linter's contract in pyproject.toml), and no
module imports itself through a cycle."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=project, capture_output=True, text=True,
                          env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"})


def test_layers_contract_is_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_that_climbs_breaks_the_contract(tmp_path):
    # negative control: the same contract on a copy where a mechanism imports a chapter study
    shutil.copytree(ROOT / "equivar", tmp_path / "equivar",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    rings = tmp_path / "equivar" / "core" / "rings.py"
    rings.write_text(rings.read_text() + "\nfrom equivar.studies import reliance  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "equivar.core.rings -> equivar.studies.reliance" in result.stdout


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("equivar", cache_dir=None)


def test_no_import_cycles(graph):
    """Every import, module-level or inside a function, forms an acyclic graph."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == 1:
                cycle = path[path.index(imported):] + [imported]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, path + [imported])
        state[module] = 2

    for module in sorted(graph.modules):
        if module not in state:
            visit(module, [module])


def test_settings_import_nothing_above_provenance(graph):
    imported = graph.find_modules_directly_imported_by("equivar.settings")
    assert imported <= {"equivar.provenance"}
