"""``aicp plan`` for each example stack: wall time, resources, and the longest chain of
resources ``pulumi up`` must create one after another (so a change that serialises the
stand-up shows here)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import AICP, example_project, stacks, table, timed


def depth(resources: list[dict[str, Any]]) -> int:
    """Longest chain of real resources, following dependencies and custom parents.

    Components (``aicp:*``) create nothing; a child waits for a parent that is real.
    """
    by_urn = {r["urn"]: r for r in resources}
    real = {u for u, r in by_urn.items() if not r["type"].startswith("aicp:")}
    memo: dict[str, int] = {}

    def longest(urn: str) -> int:
        if urn not in memo:
            r = by_urn[urn]
            before = [d for d in r["dependsOn"] if d in by_urn]
            if r["parent"] in real:
                before.append(r["parent"])
            memo[urn] = (1 if urn in real else 0) + max(map(longest, before), default=0)
        return memo[urn]

    return max(map(longest, by_urn), default=0)


def measure(project: Path, stack: str, repeat: int, empty_cache: Path) -> dict[str, Any]:
    argv = [AICP, "plan", "--stack", stack, "--output", "json", "--project-dir", str(project)]
    seconds, run = timed(argv, repeat=repeat)
    # The same run where no bytecode exists (pip --no-compile, uv): every module the
    # program imports is compiled from source, as on each run when nothing can be written.
    cold, _ = timed(argv, env={"PYTHONPYCACHEPREFIX": str(empty_cache),
                               "PYTHONDONTWRITEBYTECODE": "1"})
    doc = json.loads(run.stdout)
    return {"stack": stack, "seconds": seconds, "cold": cold,
            "resources": len(doc["resources"]), "depth": depth(doc["resources"]),
            "unserved": doc["unservedMust"]}


def main(repeat: int = 3) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        project = example_project(Path(tmp))
        empty = Path(tmp) / "no-bytecode"
        empty.mkdir()
        rows = [measure(project, s, repeat, empty) for s in stacks(project)]
    return table(
        f"aicp plan, per example stack (best of {repeat} as installed; target < 5 s on 2 "
        "cores)",
        ["stack", "wall s", "no bytecode s", "resources", "depth", "unserved MUST"],
        [[r["stack"], f"{r['seconds']:.2f}", f"{r['cold']:.2f}", r["resources"], r["depth"],
          ",".join(r["unserved"]) or "-"] for r in rows])


if __name__ == "__main__":
    print(main())
