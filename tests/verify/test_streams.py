"""``aicp`` as a user starts it with odd standard streams (#27, "Also"): stdout closed
(``>&-``: Python then has no ``sys.stdout``) and an ASCII-only locale. Neither may end in a
traceback, and the closing line must get out in what the terminal can show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared import REPO
from tests.verify.conftest import require_shared


def aicp(args: list[str], *, close_stdout: bool = False, env: dict[str, str] | None = None,
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "aicp.cli.main", *args]
    if close_stdout:
        command = ["sh", "-c", 'exec "$@" >&-', "sh", *command]
    return subprocess.run(command, cwd=cwd, capture_output=not close_stdout, text=True,
                          env={**os.environ, **(env or {})}, timeout=300,
                          stderr=subprocess.PIPE if close_stdout else None)


@pytest.fixture
def cluster(kubeapi_factory, tmp_path):
    kube = kubeapi_factory("reference-platform", minor="1.35", gpu_nodes=1)
    kube.settle()
    template = require_shared("conformance", "AIConformance-1.35.yaml")
    return ["verify", "--kubeconfig", str(kube.write_kubeconfig(tmp_path / "kc.yaml")),
            "--checklist-template", str(template), "--only", "accelerator_metrics"]


def test_verify_with_stdout_closed_ends_without_a_traceback(cluster):
    run = aicp(cluster, close_stdout=True)
    assert "Traceback" not in run.stderr and "Error" not in run.stderr, run.stderr
    assert run.returncode in (0, 1)  # what the probe found, not a crash


def test_verify_in_an_ascii_locale_prints_its_closing_line(cluster):
    run = aicp(cluster, env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C", "LANG": "C"})
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert "MUST ran" in last and f"exit {run.returncode}" in last
    assert " - exit " in last  # the dash spelled out, not lost
    last.encode("ascii")


def test_plan_with_stdout_closed_or_in_ascii_ends_cleanly():
    closed = aicp(["plan", "--stack", "aws"], close_stdout=True)
    assert (closed.returncode, "Traceback" in closed.stderr) == (0, False), closed.stderr
    ascii_run = aicp(["plan", "--stack", "aws"],
                     env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C", "LANG": "C"})
    assert ascii_run.returncode == 0, ascii_run.stderr
    assert "Every MUST requirement" in ascii_run.stdout
