"""The repository keeps its own rules: layers, lint, and the README's promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_code_passes_the_linter():
    run = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=REPO, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = ".venv/bin/python -m pytest -q"
    assert command in readme and ci.strip().splitlines()[-1] == command


def test_every_package_folder_is_installed_under_aicp():
    # A folder missing from pyproject's mapping imports in a dev checkout but is absent
    # from a built wheel.
    import tomllib

    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {folder for folder in mapping["package-dir"].values()}
    for top in ("cli", "stacks", "components", "addons", "verify"):
        for init in (REPO / top).rglob("__init__.py"):
            assert str(init.parent.relative_to(REPO)) in folders, init.parent
    assert set(mapping["package-dir"]) == set(mapping["packages"])
