"""Layers are enforced, not only drawn: data flows config → components → addons, and
``verify`` needs only a kubeconfig.

import-linter cannot see this tree (its folders are mapped into the ``aicp`` package by
setuptools, and grimp walks only the root package's folder), so the contracts are
checked here from the source: every import statement, top-level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PULUMI = ("pulumi", "pulumi_kubernetes", "pulumi_aws", "pulumi_gcp", "pulumi_azure_native",
          "pulumi_command", "pulumi_tls")

# folder → modules it must never import
FORBIDDEN = {
    "verify": ("aicp.components", "aicp.addons", "aicp.stacks", "aicp.plan", "aicp.offline",
               *PULUMI),
    "components": ("aicp.addons", "aicp.stacks", "aicp.verify"),
    "addons": ("aicp.stacks", "aicp.verify"),
    "stacks": ("aicp.verify",),
}


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def breaks(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layer_imports_only_what_lies_below_it(folder):
    violations = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((REPO / folder).rglob("*.py"))
        for line, module in imports(path)
        if breaks(module, FORBIDDEN[folder])
    ]
    assert violations == []


def test_the_contract_check_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("def run():\n    from aicp.components.aws import AwsCluster\n")
    assert [m for _, m in imports(bad) if breaks(m, FORBIDDEN["verify"])] == [
        "aicp.components.aws"]
