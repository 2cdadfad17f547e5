"""The evidence bundle: the run log and, per requirement, what its probe observed.

``evidence/<id>/README.md`` is the page a reviewer reads without tools (as kOps ships
``tests/<Test>/output.md`` for its AI-conformance scenario): what the probe created (kinds,
names, images by digest), what it observed with timings, each check with what was expected
and what was seen, the verdict and why. ``result.json`` beside it is the same, for
machines; object dumps and logs a probe kept sit next to them.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from .. import verdicts
from ..verdicts import DECIDED, Outcome, RunReport

PAGE = "README.md"
# What a run writes into --output-dir; a previous run's copies are moved aside, together.
OWN = ("PRODUCT.yaml", "results", "evidence")


def write(report: RunReport, output_dir: Path) -> list[Path]:
    written = [_e2e_log(report, output_dir / "results" / "e2e.log")]
    for outcome in report.outcomes:
        result = outcome.result
        if not has_evidence(outcome):
            continue
        folder = output_dir / "evidence" / outcome.requirement.id
        folder.mkdir(parents=True, exist_ok=True)
        page = folder / PAGE
        page.write_text(evidence_page(report, outcome), encoding="utf-8")
        written.append(page)
        path = folder / "result.json"
        path.write_text(json.dumps({"id": outcome.requirement.id, **result.to_dict()},
                                   indent=2, default=str) + "\n")
        written.append(path)
        for name in _artifact_names(outcome):
            target = folder / name
            target.write_text(result.evidence.artifacts[_artifact_key(outcome, name)])
            written.append(target)
        if result.traceback:
            target = folder / "traceback.log"
            target.write_text(result.traceback)
            written.append(target)
    return written


def has_evidence(outcome: Outcome) -> bool:
    """A requirement whose probe ran has an evidence folder; manual and not-run ones none."""
    return outcome.result.verdict in DECIDED


def evidence_files(outcome: Outcome) -> list[str]:
    """The bundle files for one requirement, relative to the output dir, the page first."""
    base = f"evidence/{outcome.requirement.id}"
    names = [PAGE, "result.json", *_artifact_names(outcome)]
    if outcome.result.traceback:
        names.append("traceback.log")
    return [f"{base}/{name}" for name in names]


def _artifact_names(outcome: Outcome) -> list[str]:
    # A probe names files, never paths; the page and result.json keep their own names.
    reserved = {PAGE, "result.json", "traceback.log"}
    names = []
    for name in outcome.result.evidence.artifacts:
        base = Path(name).name
        if base and base not in reserved and base not in names:
            names.append(base)
    return names


def _artifact_key(outcome: Outcome, name: str) -> str:
    return next(k for k in outcome.result.evidence.artifacts if Path(k).name == name)


def move_aside(output_dir: Path) -> Path | None:
    """Move a previous run's reports out of ``output_dir``; returns where, or None.

    They go to a sibling ``<name>.previous-<UTC time of that run>`` folder: inside the
    folder they would be part of the submission, and deleting them is not ours to do.
    """
    output_dir = Path(output_dir)
    present = [output_dir / name for name in OWN if (output_dir / name).exists()]
    if not present:
        return None
    when = max(p.stat().st_mtime for p in present)
    base = output_dir.resolve()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    target = base.with_name(f"{base.name}.previous-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}.previous-{stamp}-{n}")
    target.mkdir(parents=True)
    for path in present:
        shutil.move(str(path), str(target / path.name))
    return target


# The e2e log ------------------------------------------------------------------------------
# Written the way ``go test -v`` prints (``=== RUN``, ``--- PASS/FAIL/SKIP: Name (1.23s)``,
# then ``PASS``/``FAIL``): the CNCF hybrid validator parses a referenced e2e.log that way
# (cncf/k8s-ai-conformance#141). Output lines are indented, and a line that could read as a
# result line is quoted, so a probe's log can never add or change a test result.
_RESULT_LIKE = re.compile(r"^\s*(---|===) ")
_WORD = {"passed": "PASS", "failure": "FAIL", "error": "FAIL", "skipped": "SKIP"}


def _out(text: str) -> str:
    return f"    {'| ' if _RESULT_LIKE.match(text) else ''}{text}"


def _e2e_log(report: RunReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = report.settings
    lines = [f"{verdicts.producer(report)}, run {s.run_id}: checklist {s.checklist_version} "
             "(written by aicp, not by the kubernetes-sigs/ai-conformance suite)"]
    lines += [f"{key}: {value}" for key, value in report.published_info.items()]
    lines.append(f"exit code {report.exit_code}")
    failed = False
    for outcome in report.outcomes:
        result, name = outcome.result, verdicts.testcase_name(outcome.requirement.id)
        word = _WORD[verdicts.test_result(outcome)]
        failed = failed or word == "FAIL"
        lines.append(f"=== RUN   {name}")
        lines.append(_out(f"requirement {outcome.requirement.id} "
                          f"({outcome.requirement.level})"))
        for step in result.evidence.steps:
            took = "" if step.duration is None else f" {step.duration:.2f}s"
            lines.append(_out(f"step {step.name}{took}" + (f" [{step.error}]" if step.error
                                                             else "")))
        lines += [_out(line) for line in result.evidence.log]
        lines += [_out(f"check {'ok' if c.passed else 'FAILED'}: {c.name}"
                       + (f" ({c.observed})" if c.observed else ""))
                  for c in result.evidence.checks]
        lines.append(f"--- {word}: {name} ({result.duration:.2f}s)")
        lines.append(_out(verdicts.explanation(outcome)))
    if report.leftovers:
        lines.append(f"cleanup: still present after the wait: {', '.join(report.leftovers)}")
    lines += [f"cleanup: {e}" for e in report.cleanup_errors]
    lines.append("FAIL" if failed else "PASS")
    lines.append(f"{'FAIL' if failed else 'ok  '}\taicp-verify\t{report.duration:.3f}s")
    path.write_text("\n".join(lines) + "\n")
    return path


# The evidence page ------------------------------------------------------------------------
def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(str(text).split())
    return (text[:300] + "…" if len(text) > 300 else text).replace("|", "\\|") or "—"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def evidence_page(report: RunReport, outcome: Outcome) -> str:
    """The Markdown page for one requirement: readable as plain text too."""
    s, req, r = report.settings, outcome.requirement, outcome.result
    ev = r.evidence
    name = verdicts.testcase_name(req.id)
    status = verdicts.status(outcome) or "left empty (not decided: a person decides)"
    lines = [f"# {req.id}: {r.verdict.value}", "",
             f"Requirement ({req.level}, {req.category}, Kubernetes AI Conformance "
             f"checklist {s.checklist_version}):", "",
             *[f"> {line}" for line in (req.description.strip() or req.id).splitlines()], "",
             f"- Verdict: **{r.verdict.value}**: {r.reason}",
             f"- Checklist status: {status}",
             f"- Why: {verdicts.explanation(outcome)}",
             f"- Test: `{name}` in `results/junit.xml` and `results/e2e.log` "
             f"({verdicts.test_result(outcome)})",
             f"- Produced by {verdicts.producer(report)}, run `{s.run_id}`, started "
             f"{_utc(r.started)}, took {r.duration:.2f} s; these are aicp's own probes, not "
             "the kubernetes-sigs/ai-conformance suite.", ""]
    if report.info:
        lines += ["## Cluster", ""]
        # Images are listed per object below.
        lines += [f"- {key}: {_cell(value)}" for key, value in report.published_info.items()
                  if not key.startswith("image ")]
        lines.append("")
    lines += ["## What was created", ""]
    if ev.objects:
        lines += ["| kind | apiVersion | namespace | name | images |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {o.kind} | {o.api_version} | {o.namespace or '(cluster)'} | {o.name} | "
                  f"{_cell(', '.join(o.images)) if o.images else '—'} |" for o in ev.objects]
        lines.append("")
        lines.append("Every object carries the label `aicp.dev/verify-run="
                     f"{s.run_id}` and was deleted after the probe"
                     + (f" (still present after the wait: {', '.join(report.leftovers)})."
                        if report.leftovers else
                        " (but cleanup reported errors: see results/e2e.log)."
                        if report.cleanup_errors else "."))
    else:
        lines.append("Nothing: this probe only read the cluster.")
    lines.append("")
    images = [i for o in ev.objects for i in o.images]
    if images:
        lines += ["## Images", ""]
        lines += [f"- `{image}`" for image in dict.fromkeys(images)]
        lines.append("")
    lines += ["## Steps and timings", ""]
    if ev.steps:
        lines += ["| step | started | took | outcome |", "| --- | --- | --- | --- |"]
        lines += [f"| {st.name} | {_utc(st.started)} | "
                  f"{'—' if st.duration is None else f'{st.duration:.2f} s'} | "
                  f"{_cell(st.error) if st.error else 'done'} |" for st in ev.steps]
    else:
        lines.append("No timed step was recorded.")
    lines += ["", "## Checks", ""]
    if ev.checks:
        lines += ["| expected | observed | result |", "| --- | --- | --- |"]
        lines += [f"| {_cell(c.name)} | {_cell(c.observed)} | "
                  f"{'ok' if c.passed else 'FAILED'} |" for c in ev.checks]
    else:
        lines.append(f"No check was recorded: the verdict rests on the reason above "
                     f"({r.verdict.value}).")
    if ev.observations:
        lines += ["", "## Observations", ""]
        lines += [f"- {key}: {_cell(value)}" for key, value in ev.observations.items()]
    if ev.log:
        lines += ["", "## Log", "", "```text", *ev.log, "```"]
    files = [f for f in evidence_files(outcome) if not f.endswith(f"/{PAGE}")]
    lines += ["", "## Files", ""]
    lines += [f"- [{Path(f).name}]({Path(f).name})" for f in files]
    lines += ["- [results/junit.xml](../../results/junit.xml), "
              "[results/e2e.log](../../results/e2e.log)", ""]
    return "\n".join(lines)
