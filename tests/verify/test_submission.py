"""A CNCF submission from ``aicp verify --output checklist``: it passes both
generations of the CNCF validator (tests/cncf_validator.py), its test artifacts fail only
where a MUST did, and every requirement has an evidence page a reviewer can read.

The submission folder is laid out as in cncf/k8s-ai-conformance, ``v<minor>/<product>/``,
so the validators find the version in the path as the real one does.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from aicp.verify import session
from tests import cncf_validator
from tests.verify.conftest import require_shared, template
from tests.verify.test_conformant_platform import FAST, NOT_IMPLEMENTED
from tests.verify.test_reports import report_for

METADATA = {
    "platform_name": "aicp emulated platform",
    "platformVersion": "0.1.0",
    "vendorName": "Example Vendor",
    "websiteUrl": "https://aicp.example.org",
    "repoUrl": "https://github.com/example/aicp",
    "documentationUrl": "https://aicp.example.org/docs",
    "productLogoUrl": "https://aicp.example.org/logo.svg",
    "description": "AI-ready Kubernetes platforms built with Pulumi, proven with aicp verify",
    "contactEmailAddress": "conformance@example.org",
}


def metadata_file(tmp_path: Path, version: str, **changes) -> Path:
    values = {**METADATA, "k8sConformanceUrl": "https://github.com/cncf/k8s-conformance/tree/"
              f"master/v{version}/aicp", **changes}
    path = tmp_path / f"product-{version}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in values.items() if v is not None}))
    return path


def validate(product: Path) -> dict[str, list[str]]:
    version = re.search(r"/v(1\.\d+)/", product.as_posix())[1]  # type: ignore[index]
    tmpl = require_shared("conformance", f"AIConformance-{version}.yaml")
    return {"legacy": cncf_validator.legacy(product, tmpl),
            "hybrid": cncf_validator.hybrid(product, tmpl)}


def submit(kubeconfig: Path, folder: Path, version: str, metadata: Path | None, *,
           output=("json", "junit", "checklist"), template_version: str | None = None,
           **options) -> tuple[int, str]:
    log = folder.parent / f"{folder.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    opts = session.Options(
        kubeconfig=kubeconfig, output=list(output), output_dir=folder, metadata=metadata,
        checklist_template=require_shared(
            "conformance", f"AIConformance-{template_version or version}.yaml"),
        run_id=options.pop("run_id", "sub"), **options)
    with log.open("w") as out:
        code = session.run(opts, Console(file=out, width=200))
    return code, log.read_text()


def cases(folder: Path) -> dict[str, ET.Element]:
    return {c.get("name", ""): c for c in
            ET.parse(folder / "results" / "junit.xml").getroot().iter("testcase")}


def spec(folder: Path) -> dict[str, dict]:
    data = yaml.safe_load((folder / "PRODUCT.yaml").read_text())
    return {i["id"]: i for items in data["spec"].values() for i in items}


# The acceptance runs: the conformant emulated platform ------------------------------------
@pytest.mark.parametrize("version", ["1.35", "1.37"])
def test_conformant_platform_submission_passes_both_validators_with_a_page_per_requirement(
        version, kubeapi_factory, tmp_path, capsys):
    kube = kubeapi_factory("conformant-platform", minor=version)
    kube.settle()
    folder = tmp_path / f"v{version}" / "aicp"
    code, log = submit(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"), folder, version,
                       metadata_file(tmp_path, version), probe_timeout=30.0, timing=FAST)
    doc = json.loads((folder / "results" / "results.json").read_text())
    reasons = {r["id"]: f"{r['verdict']}: {r['reason']}" for r in doc["requirements"]}
    assert code == 0, reasons
    # cluster_autoscaling "Implemented" claims scale up and down: a submission waited for
    # the scale-down, as --long does (#27 item 8).
    assert "and back to 2 after its deletion" in reasons["cluster_autoscaling"], reasons
    assert "long: on: scale-down is waited for (a --output checklist submission claims it)" \
        in log
    assert validate(folder / "PRODUCT.yaml") == {"legacy": [], "hybrid": []}
    assert "not checked offline" in log and "vendorName must be a CNCF member" in log

    # The SHOULDs this platform leaves out: Not Implemented, skipped with the reason.
    items, tests = spec(folder), cases(folder)
    suite = ET.parse(folder / "results" / "junit.xml").getroot()
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    e2e = (folder / "results" / "e2e.log").read_text()
    assert "--- FAIL" not in e2e and e2e.splitlines()[-2] == "PASS"
    for rid in NOT_IMPLEMENTED:
        assert items[rid]["status"] == "Not Implemented"
        skipped = tests["Test" + rid.title().replace("_", "")].find("skipped")
        assert skipped is not None and skipped.get("message", "").startswith(
            "Not Implemented (SHOULD): ")
    assert "TestAcceleratorClusterAutoscaling" in tests and "TestClusterAutoscaling" not in tests
    for case in tests.values():  # every skip says why
        skip = case.find("skipped")
        assert skip is None or skip.get("message", "").partition(": ")[2].strip()

    # One page per requirement, first in its evidence, naming what the probe recorded.
    for requirement in doc["requirements"]:
        rid = requirement["id"]
        page_path = folder / "evidence" / rid / "README.md"
        assert items[rid]["evidence"][0] == f"evidence/{rid}/README.md"
        page = page_path.read_text(encoding="utf-8")
        assert page.startswith(f"# {rid}: {requirement['verdict']}")
        assert requirement["reason"] in page
        for obj in requirement["objects"]:
            assert f"| {obj['kind']} |" in page and obj["name"] in page
            for image in obj.get("images", []):
                assert f"`{image}`" in page
        for check in requirement["checks"]:
            assert " ".join(check["name"].split()).replace("|", "\\|") in page
        for key in requirement["observations"]:
            assert f"- {key}: " in page
    # The probes that create pods name their images by digest.
    pages = "".join(p.read_text() for p in folder.glob("evidence/*/README.md"))
    assert re.search(r"`docker\.io/[^`]+@sha256:[0-9a-f]{64}`", pages)


# Refusals before any probe runs ------------------------------------------------------------
@pytest.mark.parametrize(("changes", "message"), [
    ({"vendorName": ""}, "vendorName is empty"),
    ({"vendorName": "[Vendor Name]"}, "vendorName still holds the placeholder"),
    ({"kubernetesVersion": "v1.99"}, "kubernetesVersion 'v1.99' is not the checklist's"),
    ({"k8sConformanceUrl": "hello"}, "k8sConformanceUrl 'hello' is not a cncf/k8s-conformance"),
    ({"k8sConformanceUrl": None}, "missing k8sConformanceUrl"),
    ({"productLogoUrl": "https://aicp.example.org/logo.png"}, "not an SVG, EPS or AI file"),
    ({"websiteUrl": "aicp.example.org"}, "websiteUrl 'aicp.example.org' is not an http(s)"),
], ids=["empty", "placeholder", "version", "url-shape", "url-missing", "logo", "website"])
def test_metadata_the_validator_would_reject_is_one_line_and_exit_2(
        changes, message, kubeapi_factory, tmp_path, capsys):
    kube = kubeapi_factory("empty", minor="1.37")
    code, _ = submit(kube.write_kubeconfig(tmp_path / "kc.yaml"), tmp_path / "v1.37" / "x",
                     "1.37", metadata_file(tmp_path, "1.37", **changes))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "v1.37" / "x" / "PRODUCT.yaml").exists()


def test_a_checklist_newer_than_the_cluster_is_refused_for_a_submission_only(
        kubeapi_factory, tmp_path, capsys):
    kube = kubeapi_factory("empty", minor="1.35")
    kubeconfig = kube.write_kubeconfig(tmp_path / "kc.yaml")
    code, _ = submit(kubeconfig, tmp_path / "v1.36" / "x", "1.36",
                     metadata_file(tmp_path, "1.36"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        "error: checklist 1.36 is newer than the cluster's Kubernetes 1.35: a submission "
        "must use the cluster's version or older (pass --checklist 1.35)")
    # Without --output checklist nothing is submitted: the run goes on.
    code, _ = submit(kubeconfig, tmp_path / "json", "1.36", None, output=["json"],
                     read_only=True)
    assert code in (0, 1) and (tmp_path / "json" / "results" / "results.json").is_file()


def test_without_metadata_the_run_warns_of_every_field_left_to_fill(kubeapi_factory,
                                                                    tmp_path):
    kube = kubeapi_factory("empty", minor="1.37")
    _, log = submit(kube.write_kubeconfig(tmp_path / "kc.yaml"), tmp_path / "v1.37" / "x",
                    "1.37", None, read_only=True)
    warning = next(line for line in log.splitlines() if "not filled in" in line)
    # The template's placeholders, and k8sConformanceUrl that the 1.37 template lacks.
    assert "platformName" in warning and "k8sConformanceUrl" in warning


def test_a_template_outside_the_supported_versions_is_refused_like_checklist(
        kubeapi_factory, tmp_path, capsys):
    kube = kubeapi_factory("empty", minor="1.35")
    code, _ = submit(kube.write_kubeconfig(tmp_path / "kc.yaml"), tmp_path / "out", "1.33",
                     None, output=["json"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is for 1.33: supported versions are 1.34, 1.35, 1.36, 1.37" in err


# The validator emulation itself: it rejects what the issue found ---------------------------
@pytest.fixture
def submission(tmp_path):
    """A synthetic all-PASS 1.37 submission written by the reports, with full metadata."""
    from aicp.verify import checklist
    from aicp.verify.reports import write
    from aicp.verify.result import Verdict

    tmpl = template("1.37")
    folder = tmp_path / "v1.37" / "aicp"
    metadata = checklist.load_metadata(metadata_file(tmp_path, "1.37"), tmpl)
    write(report_for(tmpl, [Verdict.PASS] * len(tmpl.ids)), tmpl, ["junit", "checklist"],
          folder, metadata)
    return folder


def test_the_emulated_validators_accept_a_clean_submission(submission):
    assert validate(submission / "PRODUCT.yaml") == {"legacy": [], "hybrid": []}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_legacy_validator_rejects_file_urls_and_hybrid_accepts_them(submission):
    edit(submission / "PRODUCT.yaml", '"results/junit.xml"',
         '"file://results/junit.xml#TestGangScheduling"')
    found = validate(submission / "PRODUCT.yaml")
    assert found["hybrid"] == []
    assert found["legacy"] and all("file://results/junit.xml" in e for e in found["legacy"])


def test_hybrid_validator_rejects_any_failing_test_and_an_unmapped_name(submission):
    junit = submission / "results" / "junit.xml"
    text = junit.read_text()
    edit(junit, "</testcase>", '<failure message="not implemented" /></testcase>')
    found = validate(submission / "PRODUCT.yaml")
    assert any("contains failing tests" in e for e in found["hybrid"]), found
    assert found["legacy"] == []  # the legacy validator never opens the files
    junit.write_text(text)
    edit(submission / "results" / "e2e.log", "TestAcceleratorClusterAutoscaling",
         "TestClusterAutoscaling")
    found = validate(submission / "PRODUCT.yaml")
    assert found["hybrid"] == [
        "Test TestAcceleratorClusterAutoscaling for 'cluster_autoscaling' not found in "
        "results/e2e.log"]


def test_both_validators_require_k8s_conformance_url_and_reject_placeholders(submission):
    product = submission / "PRODUCT.yaml"
    data = yaml.safe_load(product.read_text())
    del data["metadata"]["k8sConformanceUrl"]
    data["metadata"]["platformName"] = "[Platform Name]"
    product.write_text(yaml.safe_dump(data, sort_keys=False))
    for errors in validate(product).values():
        assert errors == ["Metadata field platformName has placeholder value: [Platform Name]",
                          "Missing metadata field: k8sConformanceUrl (or k8s_conformance_url)"]
