"""``results/results.json``: the whole run, machine-readable."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def document(report) -> dict:
    s = report.settings
    return {
        "runId": s.run_id,
        "checklistVersion": s.checklist_version,
        "cluster": report.info,
        "started": round(report.started, 3),
        "durationSeconds": round(report.duration, 3),
        "interrupted": report.interrupted,
        "exitCode": report.exit_code,
        "summary": dict(Counter(o.result.verdict.value for o in report.outcomes)),
        "requirements": [
            {"id": o.requirement.id, "category": o.requirement.category,
             "level": o.requirement.level, **o.result.to_dict()}
            for o in report.outcomes],
        "cleanup": {"leftovers": report.leftovers, "errors": report.cleanup_errors},
    }


def write(report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(report), indent=2, default=str) + "\n")
    return path
