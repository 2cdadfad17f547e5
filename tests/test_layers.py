"""Layers are enforced, not only drawn: data flows stacks → addons → components, and
``verify`` needs only a kubeconfig.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``). import-linter can
follow this tree because every internal import is relative: ``from ..components.contract``
in ``stacks/program.py`` is ``aicp.components.contract`` to Python and
``components/contract.py`` to a tool that reads the folders.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=120)


def test_the_layer_contracts_hold():
    run = lint(REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 kept, 0 broken" in run.stdout


def test_every_product_import_of_a_sibling_is_relative():
    # One name per module: `aicp.verify.kube` and `.kube` in the same tree would be
    # two ways to reach one file (Pulumi's entry, run as a script, is the exception).
    absolute = [
        f"{path.relative_to(REPO)}:{n}"
        for top in ("cli", "components", "addons", "stacks", "verify")
        for path in sorted((REPO / top).rglob("*.py")) if path.name != "__main__.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("from aicp", "import aicp"))
    ]
    assert absolute == []


def test_a_relative_import_across_layers_breaks_the_build(tmp_path):
    # The same shape as the product: a namespace whose folders are packages, and the
    # repository's own contracts, which must see through a relative import.
    for folder in ("verify", "components", "stacks", "addons", "cli"):
        (tmp_path / "aicp" / folder).mkdir(parents=True)
        (tmp_path / "aicp" / folder / "__init__.py").write_text("")
    (tmp_path / "aicp" / "components" / "aws.py").write_text("X = 1\n")
    # The modules the contracts name (import-linter refuses a contract on a missing one).
    (tmp_path / "aicp" / "stacks" / "targets").mkdir()
    for module in ("config", "program", "targets/__init__", "targets/aws", "targets/gcp",
                   "targets/azure", "targets/onprem"):
        (tmp_path / "aicp" / "stacks" / f"{module}.py").write_text("")
    (tmp_path / "aicp" / "verify" / "probe.py").write_text(textwrap.dedent("""\
        def run():
            from ..components.aws import X
            return X
        """))
    text = (REPO / "pyproject.toml").read_text()
    contracts = text.split("[tool.importlinter]", 1)[1].split("\n# pyright", 1)[0]
    (tmp_path / "pyproject.toml").write_text("[tool.importlinter]" + contracts)
    run = lint(tmp_path, PYTHONPATH=str(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "verify never imports the provisioning layers" in run.stdout
    assert "aicp.verify.probe -> aicp.components.aws" in run.stdout
