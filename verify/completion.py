"""What the shell completes ``aicp`` options to: stack names, requirement ids, report
formats, checklist versions. Each answers from what is at hand (the files beside the
command, the checklist table), never from a cluster or the network, and imports nothing
heavy: a completion runs on every TAB. ``ctx`` is the click context Typer hands
completions (its ``params``: the options parsed so far).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checklist import LEVELS, SUPPORTED

# The report formats ``--output`` takes (``verify/reports`` FORMATS; that package imports
# the report writers, too much for a TAB).
REPORT_FORMATS = ("json", "junit", "checklist")


def stack_names(ctx: Any, incomplete: str) -> list[str]:
    """The stacks of the project: each ``Pulumi.<name>.yaml`` in ``--project-dir`` (plan)
    or the current folder."""
    folder = Path(ctx.params.get("project_dir") or ".")
    names = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in folder.glob("Pulumi.*.yaml")
                   if p.is_file())
    return [n for n in names if n.startswith(incomplete)]


def requirement_ids(ctx: Any, incomplete: str) -> list[str]:
    """Every requirement id of the chosen ``--checklist`` (every supported one when none
    is chosen yet), in checklist order."""
    chosen = ctx.params.get("checklist")
    versions = [chosen] if chosen in LEVELS else list(SUPPORTED)
    ids = list(dict.fromkeys(rid for v in versions for rid in LEVELS[v]))
    return [i for i in ids if i.startswith(incomplete)]


def report_formats(incomplete: str) -> list[str]:
    return [f for f in REPORT_FORMATS if f.startswith(incomplete)]


def checklist_versions(incomplete: str) -> list[str]:
    return [v for v in SUPPORTED if v.startswith(incomplete)]
