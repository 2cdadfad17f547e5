"""``results/aicp-junit.xml``: one testcase per requirement, named by its id, marked as
written by aicp (never ``junit.xml``, the name the CNCF hybrid validator reads as the working
group's suite output, and never an upstream test name).

A testcase fails (``failure``) or errs (``error``) only for a MUST that failed or could not
be decided; a SHOULD the platform leaves out, a not-applicable requirement, a manual check
and a probe left out of the run are ``skipped`` with the reason (``verdicts.test_result``), so a
run that exits 0 is green in CI and in the CNCF hybrid validator, which rejects a
submission whose referenced junit.xml holds any failing test (cncf/k8s-ai-conformance#141).

The root is ``<testsuites>`` holding one ``<testsuite>``, the shape go-junit-report and
gotestsum write and that validator reads; both carry the counts.
"""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET

from .. import verdicts
from ..verdicts import RunReport
from . import public_info
from .bundle import evidence_files, has_evidence


def _properties(parent: ET.Element, values: dict) -> None:
    props = ET.SubElement(parent, "properties")
    for key, value in values.items():
        ET.SubElement(props, "property", {"name": key, "value": str(value)})


def document(report: RunReport) -> ET.ElementTree:
    s = report.settings
    outcomes = report.outcomes
    results = [verdicts.test_result(o) for o in outcomes]
    counts = {"tests": str(len(outcomes)), "failures": str(results.count("failure")),
              "errors": str(results.count("error")), "skipped": str(results.count("skipped")),
              "time": f"{report.duration:.3f}"}
    producer = verdicts.producer(report)
    root = ET.Element("testsuites", {"name": f"{producer}, checklist {s.checklist_version}",
                                     **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": f"aicp-verify-{s.checklist_version}", **counts,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.started))})
    _properties(suite, {"producer": producer, "aicpVersion": report.aicp_version,
                        "runId": s.run_id, "checklistVersion": s.checklist_version,
                        **public_info(report)})
    classname = f"aicp-verify-{report.aicp_version}"
    for o, result in zip(outcomes, results, strict=True):
        r, req = o.result, o.requirement
        case = ET.SubElement(suite, "testcase", {
            "name": verdicts.testcase_name(req.id), "classname": f"{classname}/{req.category}",
            "time": f"{r.duration:.3f}"})
        props = {"producer": producer, "requirement": req.id, "level": req.level,
                 "verdict": r.verdict.value, "status": verdicts.status(o)}
        if has_evidence(o):  # manual and not-run requirements have no evidence page
            props["evidence"] = evidence_files(o)[0]
        _properties(case, props)
        line = verdicts.explanation(o)
        if result in ("failure", "error"):
            ET.SubElement(case, result, {"message": line, "type": r.verdict.value}).text = line
        elif result == "skipped":
            ET.SubElement(case, "skipped", {"message": line}).text = line
        out = [f"{r.verdict.value}: {r.reason}"]
        out += [f"check {'ok' if c.passed else 'FAILED'}: {c.name}"
                + (f" ({c.observed})" if c.observed else "") for c in r.evidence.checks]
        out += [f"created {obj}" for obj in r.evidence.objects]
        ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.ElementTree(root)


def text(report: RunReport) -> bytes:
    out = io.BytesIO()
    document(report).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue()
