"""Shared by the benchmarks: timing a command, a printed table, example stacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AICP = str(Path(sys.executable).parent / "aicp")


def timed(argv: Sequence[str], *, cwd: Path = REPO, env: dict | None = None,
          repeat: int = 1) -> tuple[float, subprocess.CompletedProcess]:
    """Best wall time of ``repeat`` runs of a command (seconds), and the last run."""
    best, run = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        run = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                             env={**os.environ, **(env or {})}, check=False)
        best = min(best, time.perf_counter() - start)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{run.stderr[-2000:]}")
    return best, run


def example_project(tmp: Path) -> Path:
    """A copy of the example stacks in which the on-prem kubeconfig exists."""
    for path in REPO.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp / path.name)
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    onprem = tmp / "Pulumi.onprem.yaml"
    onprem.write_text(onprem.read_text().replace("~/.kube/config", str(kubeconfig)))
    return tmp


def stacks(project: Path) -> list[str]:
    return sorted(p.name.split(".")[1] for p in project.glob("Pulumi.*.yaml"))


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    out = [title, line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out) + "\n"
