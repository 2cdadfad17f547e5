"""Reports a user submits or feeds to CI: the CNCF checklist, JUnit XML, JSON, evidence."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from itertools import cycle

import pytest
import yaml

from aicp.verify import checklist
from aicp.verify.reports import testcase_name as junit_name
from aicp.verify.reports import write
from aicp.verify.result import CreatedObject, Evidence, Result, Verdict
from aicp.verify.runner import Outcome, RunReport
from tests.verify.conftest import VERSIONS, settings, template

STATUSES = {"Implemented", "Not Implemented", "Partially Implemented", "N/A"}
VERDICTS = [Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR, Verdict.MANUAL,
            Verdict.NOT_RUN]


def report_for(tmpl, verdicts=None) -> RunReport:
    """Every requirement of the template with a verdict, cycling through all of them."""
    report = RunReport(settings(version=tmpl.version), info={"cluster": "https://k:6443"})
    for req, verdict in zip(tmpl.requirements, verdicts or cycle(VERDICTS), strict=False):
        evidence = Evidence()
        if verdict is Verdict.PASS:
            evidence.artifacts["nvidia-smi.log"] = "GPU 0: NVIDIA H100 (UUID: GPU-1)\n"
            evidence.objects.append(CreatedObject("Pod", "p", "ns"))
        result = Result(verdict, f"{req.id} said why", evidence,
                        partial=req.id == "gang_scheduling")
        if verdict is Verdict.ERROR:
            result.traceback = "Traceback (most recent call last):\n  boom\n"
        report.outcomes.append(Outcome(req, result))
    return report


@pytest.fixture(params=VERSIONS)
def tmpl(request):
    return template(request.param)


def test_checklist_keeps_every_id_description_level_and_category_of_the_template(tmpl, tmp_path):
    write(report_for(tmpl), tmpl, ["checklist"], tmp_path)
    text = (tmp_path / "PRODUCT.yaml").read_text()
    data = yaml.safe_load(text)
    assert list(data["spec"]) == list(tmpl.data["spec"])
    for category, items in tmpl.data["spec"].items():
        assert [(i["id"], i["description"], i["level"]) for i in data["spec"][category]] == [
            (i["id"], i["description"], i["level"]) for i in items]
    # header comments stay
    assert text.splitlines()[0] == tmpl.text.splitlines()[0]


def test_checklist_uses_only_the_four_statuses_and_never_claims_without_a_pass(tmpl, tmp_path):
    report = report_for(tmpl)
    write(report, tmpl, ["checklist"], tmp_path)
    data = yaml.safe_load((tmp_path / "PRODUCT.yaml").read_text())
    verdict = {o.requirement.id: o.result.verdict for o in report.outcomes}
    for items in data["spec"].values():
        for item in items:
            assert item["status"] in STATUSES | {""}
            if item["status"] == "Implemented":
                assert verdict[item["id"]] is Verdict.PASS
            if item["status"] == "N/A":
                assert item["notes"].strip()
            if item["status"] == "":
                assert item["evidence"] == [] and item["notes"]


def test_mapping_of_each_verdict_to_a_checklist_status(tmp_path):
    tmpl = template("1.35")
    write(report_for(tmpl), tmpl, ["checklist"], tmp_path)
    got = {i["id"]: i["status"] for items in yaml.safe_load(
        (tmp_path / "PRODUCT.yaml").read_text())["spec"].values() for i in items}
    # template order 1.35: dra(PASS) driver(FAIL) gpu_sharing(SKIP) virtualized(ERROR)
    # ai_inference(MANUAL) gang(NOT_RUN) cluster_autoscaling(PASS) pod_autoscaling(FAIL)
    assert got["dra_support"] == "Implemented"
    assert got["driver_runtime_management"] == "Not Implemented"
    assert got["gpu_sharing"] == "N/A"
    assert got["virtualized_accelerator"] == ""
    assert got["ai_inference"] == "" and got["gang_scheduling"] == ""


def test_a_partial_failure_is_partially_implemented(tmp_path):
    tmpl = template("1.35")
    verdicts = [Verdict.FAIL if r.id == "gang_scheduling" else Verdict.PASS
                for r in tmpl.requirements]
    write(report_for(tmpl, verdicts), tmpl, ["checklist"], tmp_path)
    data = yaml.safe_load((tmp_path / "PRODUCT.yaml").read_text())
    assert data["spec"]["schedulingOrchestration"][0]["status"] == "Partially Implemented"


def test_every_evidence_entry_is_a_file_that_exists_or_a_junit_testcase(tmpl, tmp_path):
    write(report_for(tmpl), tmpl, ["checklist"], tmp_path)
    data = yaml.safe_load((tmp_path / "PRODUCT.yaml").read_text())
    cases = {c.get("name") for c in ET.parse(tmp_path / "results/junit.xml").iter("testcase")}
    entries = [e for items in data["spec"].values() for i in items for e in i["evidence"]]
    assert entries
    for entry in entries:
        path, _, anchor = entry.removeprefix("file://").partition("#")
        assert (tmp_path / path).is_file(), entry
        if anchor:
            assert anchor in cases
    assert "file://results/junit.xml#TestDraSupport" in entries or tmpl.version >= "1.36"


def test_metadata_file_fills_the_header_and_unknown_keys_are_refused(tmp_path):
    tmpl = template("1.35")
    given = {k: f"value of {k}" for k in tmpl.metadata if k != "kubernetesVersion"}
    meta = tmp_path / "product.yaml"
    meta.write_text(yaml.safe_dump(given))
    metadata = checklist.load_metadata(meta, tmpl)
    write(report_for(tmpl), tmpl, ["checklist"], tmp_path, metadata)
    data = yaml.safe_load((tmp_path / "PRODUCT.yaml").read_text())
    assert data["metadata"]["vendorName"] == "value of vendorName"
    assert data["metadata"]["kubernetesVersion"] == "v1.35"
    assert checklist.placeholders(data["metadata"]) == []

    meta.write_text(yaml.safe_dump({**given, "vendor": "x"}))
    with pytest.raises(checklist.ChecklistError, match="unknown key vendor"):
        checklist.load_metadata(meta, tmpl)
    meta.write_text(yaml.safe_dump({"platform_name": "snake case is fine"}))
    with pytest.raises(checklist.ChecklistError, match="missing platformVersion"):
        checklist.load_metadata(meta, tmpl)


def test_junit_has_one_testcase_per_requirement_with_failures_errors_and_skips(tmp_path):
    tmpl = template("1.36")
    report = report_for(tmpl)
    write(report, tmpl, ["junit"], tmp_path)
    suite = ET.parse(tmp_path / "results" / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == [junit_name(r.id) for r in tmpl.requirements]
    assert "TestSecureAcceleratorAccess" in cases
    for o in report.outcomes:
        case = cases[junit_name(o.requirement.id)]
        kinds = [child.tag for child in case if child.tag != "system-out"]
        expected = {Verdict.PASS: [], Verdict.FAIL: ["failure"], Verdict.ERROR: ["error"]}
        assert kinds == expected.get(o.result.verdict, ["skipped"])
    assert suite.get("tests") == str(len(tmpl.requirements))
    assert int(suite.get("failures")) == sum(o.result.verdict is Verdict.FAIL
                                             for o in report.outcomes)


def test_json_and_evidence_bundle_keep_what_was_observed(tmp_path):
    tmpl = template("1.37")
    report = report_for(tmpl)
    write(report, tmpl, ["json"], tmp_path)
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    assert [r["id"] for r in doc["requirements"]] == tmpl.ids
    assert doc["checklistVersion"] == "1.37" and doc["exitCode"] == report.exit_code
    passed = next(o for o in report.outcomes if o.result.verdict is Verdict.PASS)
    folder = tmp_path / "evidence" / passed.requirement.id
    assert (folder / "nvidia-smi.log").read_text().startswith("GPU 0")
    assert json.loads((folder / "result.json").read_text())["verdict"] == "PASS"
    errored = next(o for o in report.outcomes if o.result.verdict is Verdict.ERROR)
    assert "Traceback" in (tmp_path / "evidence" / errored.requirement.id /
                           "traceback.log").read_text()
    log = (tmp_path / "results" / "e2e.log").read_text()
    assert f"--- PASS: {junit_name(passed.requirement.id)}" in log


def test_template_version_comes_from_its_metadata_and_bad_templates_are_one_line(tmp_path):
    assert [template(v).version for v in VERSIONS] == list(VERSIONS)
    bad = tmp_path / "t.yaml"
    bad.write_text("metadata: {}\n")
    with pytest.raises(checklist.ChecklistError, match="has no 'spec' mapping"):
        checklist.load(bad)
    with pytest.raises(checklist.ChecklistError, match="cannot read checklist template"):
        checklist.load(tmp_path / "missing.yaml")
