"""``results/aicp-results.json``: the whole run, machine-readable.

One time format (ISO 8601 UTC, ``result.iso``) and one duration name (``durationSeconds``)
everywhere; ``started`` is when a run or probe began. ``summary`` splits verdicts by level,
``conformant`` is true exactly when ``exitCode`` is 0 (``verdicts.conformant``), and
``musts.allRan`` says only that every MUST was exercised, passed or not. ``platformChecks``
holds aicp's own checks beyond the checklist (``verify/checks/``): they never count in
``summary``, ``musts`` or ``conformant``; ``exitCode`` includes them only when
``platformChecks.strict`` (``--strict-platform``).
"""

from __future__ import annotations

import json

from ..result import iso, seconds
from ..verdicts import MUST, SHOULD, RunReport
from . import public_info


def document(report: RunReport) -> dict:
    s = report.settings
    ran, total = report.ran(MUST)
    return {
        "aicpVersion": report.aicp_version,
        "runId": s.run_id,
        "checklistVersion": s.checklist_version,
        "cluster": plain(public_info(report)),
        "started": iso(report.started),
        "finished": iso(report.started + report.duration),
        "durationSeconds": seconds(report.duration),
        "interrupted": report.interrupted,
        "signal": report.signal or None,
        "conformant": report.conformant,
        "exitCode": report.exit_code,
        "musts": {"total": total, "ran": ran,
                  "passed": report.count(MUST).get("PASS", 0),
                  "allRan": report.all_musts_ran},
        "summary": {level: report.count(level) for level in (MUST, SHOULD)},
        "requirements": [
            {"id": o.requirement.id, "category": o.requirement.category,
             "level": o.requirement.level, **o.result.to_dict()}
            for o in report.outcomes],
        "platformChecks": {
            "strict": report.strict_platform,
            "checks": [{"id": o.requirement.id, "category": o.requirement.category,
                        "title": o.requirement.description, **o.result.to_dict()}
                       for o in report.platform]},
        "cleanup": {"leftovers": report.leftovers, "errors": report.cleanup_errors},
    }


def plain(info: dict[str, str]) -> dict:
    """The printed settings with machine keys: "run id" → runId, "image cuda" → images.cuda."""
    out: dict = {}
    for key, value in info.items():
        if key.startswith("image "):
            out.setdefault("images", {})[key.removeprefix("image ")] = value
            continue
        first, *rest = key.split()
        out[first + "".join(word.capitalize() for word in rest)] = value
    return out


def text(report: RunReport) -> str:
    return json.dumps(document(report), indent=2, default=str) + "\n"
