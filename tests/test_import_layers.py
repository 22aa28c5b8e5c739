"""The package's import graph keeps its layers and has no cycle: `lint-imports` (import-linter, from
the dev extra) checks the contracts in pyproject.toml ([tool.importlinter]) on every import, those
inside functions included. The contracts are shown to bite: a copy of the package with one import
added where it must not be fails them, naming the contract it breaks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import REPO, executable

CONTRACTS = {c["id"]: c["name"] for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under ``root`` with the configuration in ``root``'s pyproject.toml."""
    # No cache: it would be written into the working directory (the repository).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([executable("lint-imports"), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def verdicts(result: subprocess.CompletedProcess) -> dict[str, str]:
    """Each contract's id: KEPT or BROKEN, from the summary lines."""
    found = {}
    for contract, name in CONTRACTS.items():
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith(f"{name} ")]
        assert len(lines) == 1, (name, result.stdout, result.stderr)
        found[contract] = lines[0].rsplit(" ", 1)[1]
    return found


def test_the_package_keeps_its_layers_and_has_no_cycle():
    assert set(CONTRACTS) == {"layers", "acyclic"}
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result) == {"layers": "KEPT", "acyclic": "KEPT"}


@pytest.mark.parametrize("module, line, expected, named", [
    # An upward import: a bottom-layer module imports a command (the cycle it closes is found too).
    ("errors.py", "import slimdeploy.commands.run", {"layers": "BROKEN"},
     "slimdeploy.errors is not allowed to import slimdeploy.commands"),
    # Independent siblings of one layer (data | recipes | records) import each other: no cycle, still refused.
    ("recipes.py", "import slimdeploy.data", {"layers": "BROKEN", "acyclic": "KEPT"},
     "slimdeploy.recipes is not allowed to import slimdeploy.data"),
    # Two modules of one package, both in the report layer, import each other (document imports facts).
    ("report/facts.py", "import slimdeploy.report.document", {"layers": "KEPT", "acyclic": "BROKEN"},
     "No cycles are allowed in slimdeploy.report"),
    # The same inside a function: lazy imports count.
    ("export/target.py", "def _f():\n    import slimdeploy.export.registry", {"layers": "KEPT", "acyclic": "BROKEN"},
     "No cycles are allowed in slimdeploy.export"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, expected, named):
    shutil.copytree(REPO / "slimdeploy", tmp_path / "slimdeploy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "slimdeploy" / module, "a") as file:
        file.write(f"\n\n{line}  # a forbidden import\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    found = verdicts(result)
    assert {contract: found[contract] for contract in expected} == expected
    assert named in result.stdout
