"""The evidence bundle: the run log and, per requirement, what its probe observed."""

from __future__ import annotations

import json
from pathlib import Path

from ..result import Verdict
from . import testcase_name

RAN = (Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR)


def write(report, output_dir: Path) -> list[Path]:
    written = [_e2e_log(report, output_dir / "results" / "e2e.log")]
    for outcome in report.outcomes:
        result = outcome.result
        if result.verdict not in RAN:
            continue
        folder = output_dir / "evidence" / outcome.requirement.id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "result.json"
        path.write_text(json.dumps({"id": outcome.requirement.id, **result.to_dict()},
                                   indent=2, default=str) + "\n")
        written.append(path)
        for name, content in result.evidence.artifacts.items():
            target = folder / Path(name).name  # a probe names files, never paths
            target.write_text(content)
            written.append(target)
        if result.traceback:
            target = folder / "traceback.log"
            target.write_text(result.traceback)
            written.append(target)
    return written


def evidence_files(outcome) -> list[str]:
    """The bundle files for one requirement, relative to the output dir."""
    base = f"evidence/{outcome.requirement.id}"
    names = ["result.json", *(Path(n).name for n in outcome.result.evidence.artifacts)]
    return [f"{base}/{name}" for name in names]


def _e2e_log(report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = report.settings
    lines = [f"aicp verify run {s.run_id}: checklist {s.checklist_version}"]
    lines += [f"{key}: {value}" for key, value in report.info.items()]
    for outcome in report.outcomes:
        result, name = outcome.result, testcase_name(outcome.requirement.id)
        lines.append(f"=== RUN   {name} ({outcome.requirement.level})")
        for step in result.evidence.steps:
            took = "" if step.duration is None else f" {step.duration:.2f}s"
            lines.append(f"    step {step.name}{took}" + (f" [{step.error}]" if step.error
                                                             else ""))
        lines += [f"    {line}" for line in result.evidence.log]
        lines += [f"    check {'ok' if c.passed else 'FAILED'}: {c.name}"
                  + (f" ({c.observed})" if c.observed else "") for c in result.evidence.checks]
        word = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.ERROR: "FAIL",
                Verdict.SKIP: "SKIP"}.get(result.verdict, "SKIP")
        lines.append(f"--- {word}: {name} ({result.duration:.2f}s) "
                     f"{result.verdict.value}: {result.reason}")
    if report.leftovers:
        lines.append(f"cleanup: still present after the wait: {', '.join(report.leftovers)}")
    lines += [f"cleanup: {e}" for e in report.cleanup_errors]
    lines.append(f"exit code {report.exit_code}")
    path.write_text("\n".join(lines) + "\n")
    return path
