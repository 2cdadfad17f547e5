"""Pulumi's own entry into the program: ``Pulumi.yaml`` names ``main: stacks/``.

The Python language host runs that folder as a script, outside any package
(``runpy.run_path(PROGRAM, run_name="__main__")`` in pulumi/pulumi
sdk/python/cmd/pulumi-language-python-exec), with ``stacks/`` first on ``sys.path``.
The test does the same in a fresh interpreter, under the offline engine's mocks, and
expects the very resources ``aicp plan`` builds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

HOST = """
import json, runpy, sys
import pulumi, pulumi.runtime  # imported first, as the language host does
from aicp.cli import offline
from aicp.cli.plan import stack_config
repo = sys.argv[1]
result = offline.run(lambda: runpy.run_path(repo + "/stacks", run_name="__main__"),
                     stack_config(__import__("pathlib").Path(repo), "aws"), stack="aws")
print(json.dumps(sorted(r.urn for r in result.resources)))
"""


def test_pulumi_yaml_names_the_stacks_folder():
    assert yaml.safe_load((REPO / "Pulumi.yaml").read_text())["main"].rstrip("/") == "stacks"


def test_the_language_host_runs_the_program_as_aicp_plan_does(tmp_path):
    from aicp.cli.plan import run_stack, stack_config

    run = subprocess.run([sys.executable, "-c", HOST, str(REPO)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    urns = json.loads(run.stdout.strip().splitlines()[-1])
    _, planned = run_stack(stack_config(REPO, "aws"), "aws")
    assert urns == sorted(r.urn for r in planned.resources)
    assert len(urns) > 50


def test_no_module_of_the_program_shadows_the_standard_library():
    # With stacks/ first on sys.path, stacks/platform.py would stand in for `platform`.
    names = {p.stem for p in (REPO / "stacks").glob("*.py")} - {"__init__", "__main__"}
    assert names.isdisjoint(sys.stdlib_module_names)
