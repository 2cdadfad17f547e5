"""aicp's platform checks (``verify/checks/``) in a whole ``aicp verify`` run: reported in
their own section of the terminal, results.json and the evidence bundle, never in the
checklist, its JUnit or e2e.log, nor in ``conformant``; the exit code changes only with
``--strict-platform``."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from aicp.verify import registry, session
from aicp.verify.checks.data_access import DEFAULT_CLASS
from tests.verify.conftest import require_shared, submission, template

VERSION = "1.35"


def verify(kube, tmp_path, name: str, **options) -> tuple[int, dict, str]:
    out = tmp_path / name
    log = tmp_path / f"{name}.log"
    opts = session.Options(
        kubeconfig=kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"),
        output=["json", "junit", "checklist"], output_dir=out, run_id=name,
        checklist_template=require_shared("conformance", f"AIConformance-{VERSION}.yaml"),
        **options)
    with open(log, "w") as stream:
        code = session.run(opts, Console(file=stream, width=300))
    out = submission(out)  # --output checklist: v1.35/<product>/
    return code, json.loads((out / "results" / "aicp-results.json").read_text()), log.read_text()


def test_every_check_module_defines_one_check_apart_from_the_requirement_ids(
        shared_templates):
    checks = registry.discover(registry.CHECKS_PACKAGE)
    assert "data_access" in checks
    probes = registry.discover()
    assert not set(checks) & set(probes)  # an id names a requirement or a check, never both


@pytest.fixture
def platform(kubeapi_factory):
    kube = kubeapi_factory("conformant-platform", minor=VERSION)
    kube.settle()
    return kube


def test_a_passing_check_has_its_own_section_and_no_place_in_the_checklist(platform,
                                                                           tmp_path):
    code, doc, log = verify(platform, tmp_path, "pass", only=["data_access"])
    assert code == 3  # no requirement ran: not a conformance result, whatever the check
    assert doc["conformant"] is False and doc["musts"]["ran"] == 0
    checks = {c["id"]: c for c in doc["platformChecks"]["checks"]}
    check = checks.pop("data_access")
    assert all(c["verdict"] == "NOT_RUN" for c in checks.values())  # not selected
    assert (check["id"], check["verdict"], check["category"]) == ("data_access", "PASS",
                                                                   "storage")
    assert doc["platformChecks"]["strict"] is False
    assert "data_access" not in {r["id"] for r in doc["requirements"]}
    out = submission(tmp_path / "pass")
    for artifact in ("PRODUCT.yaml", "results/aicp-junit.xml", "results/aicp-verify.log"):
        assert "data_access" not in (out / artifact).read_text(), artifact
    page = (out / "evidence/platform/data_access/README.md").read_text()
    assert page.startswith("# aicp platform check data_access: PASS")
    assert "not in PRODUCT.yaml, results/aicp-junit.xml or results/aicp-verify.log" in page
    assert not (out / "evidence/data_access").exists()
    assert "aicp platform checks (not part of the CNCF checklist)" in log
    assert ("aicp platform checks: 1/1 passed, 1 not run — not part of the conformance "
            "result") in log


def test_a_failed_check_changes_the_exit_code_only_with_strict_platform(platform, tmp_path):
    platform.mutate("storageclasses.storage.k8s.io", "gp3",
                    lambda c: c["metadata"]["annotations"].pop(DEFAULT_CLASS))
    # Every requirement and the other checks left out: fast.
    skip = [*template(VERSION).ids, "team_fairness"]
    code, doc, log = verify(platform, tmp_path, "lax", skip=skip)
    strict, strict_doc, strict_log = verify(platform, tmp_path, "strict", skip=skip,
                                            strict_platform=True)
    assert (code, doc["exitCode"]) == (3, 3)
    assert (strict, strict_doc["exitCode"]) == (1, 1)
    assert doc["conformant"] is strict_doc["conformant"] is False
    check = next(c for c in strict_doc["platformChecks"]["checks"] if c["id"] == "data_access")
    assert check["verdict"] == "FAIL"
    assert check["reason"].startswith("no default StorageClass")
    assert "aicp platform checks: 0/1 passed, 1 failed (data_access), 1 not run — not part" \
        in log
    assert ("aicp platform checks: 0/1 passed, 1 failed (data_access), 1 not run — a failed "
            "or undecided check fails the run (--strict-platform)") in strict_log
    junit = (submission(tmp_path / "strict") / "results" / "aicp-junit.xml").read_text()
    assert "data_access" not in junit and 'failures="0"' in junit


def test_read_only_leaves_the_mutating_check_out(platform, tmp_path):
    code, doc, _ = verify(platform, tmp_path, "ro", read_only=True,
                          only=["data_access", "accelerator_metrics"])
    check = next(c for c in doc["platformChecks"]["checks"] if c["id"] == "data_access")
    assert (check["verdict"], check["reason"]) == (
        "NOT_RUN", "creates objects, left out by --read-only")
    assert code == 3
