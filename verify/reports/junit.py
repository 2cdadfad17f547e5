"""``results/junit.xml``: one testcase per requirement, named ``Test<CamelCaseId>``.

FAIL is a ``failure``, ERROR an ``error``; SKIP (not applicable), MANUAL and NOT_RUN are
``skipped`` with the reason, so no CI reads a manual check as passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..result import Verdict
from . import testcase_name


def document(report) -> ET.ElementTree:
    s = report.settings
    outcomes = report.outcomes
    count = {v: sum(o.result.verdict is v for o in outcomes) for v in Verdict}
    suite = ET.Element("testsuite", {
        "name": f"aicp-verify-{s.checklist_version}", "tests": str(len(outcomes)),
        "failures": str(count[Verdict.FAIL]), "errors": str(count[Verdict.ERROR]),
        "skipped": str(count[Verdict.SKIP] + count[Verdict.MANUAL] + count[Verdict.NOT_RUN]),
        "time": f"{report.duration:.3f}"})
    props = ET.SubElement(suite, "properties")
    for key, value in {"runId": s.run_id, "checklistVersion": s.checklist_version,
                       **report.info}.items():
        ET.SubElement(props, "property", {"name": key, "value": str(value)})
    for o in outcomes:
        r = o.result
        case = ET.SubElement(suite, "testcase", {
            "name": testcase_name(o.requirement.id),
            "classname": f"aicp.verify.{o.requirement.category}.{o.requirement.level}",
            "time": f"{r.duration:.3f}"})
        if r.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", {"message": r.reason, "type": "FAIL"}).text = r.reason
        elif r.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", {"message": r.reason, "type": "ERROR"}).text = r.reason
        elif r.verdict is not Verdict.PASS:
            ET.SubElement(case, "skipped", {"message": f"{r.verdict.value}: {r.reason}"})
        out = [f"{r.verdict.value}: {r.reason}"]
        out += [f"check {'ok' if c.passed else 'FAILED'}: {c.name} {c.observed}".rstrip()
                for c in r.evidence.checks]
        out += [f"created {obj}" for obj in r.evidence.objects]
        ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(suite)
    return ET.ElementTree(suite)


def write(report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document(report).write(path, encoding="utf-8", xml_declaration=True)
    return path
