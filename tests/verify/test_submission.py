"""A CNCF submission from ``aicp verify --output checklist``: it passes both
generations of the CNCF validator (``verify/evidence/cncf.py``, the rules aicp checks before
writing; the rules themselves are pinned below on GKE's real v1.37 submission, which the
upstream CI accepted), its test artifacts fail only where a MUST did, and every requirement
has an evidence page a reviewer can read.

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
from aicp.verify.evidence import cncf as cncf_validator
from tests.verify.conftest import require_shared, template
from tests.verify.conftest import submission as product_folder
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
            ET.parse(folder / "results" / "aicp-junit.xml").getroot().iter("testcase")}


def spec(folder: Path) -> dict[str, dict]:
    data = yaml.safe_load((folder / "PRODUCT.yaml").read_text())
    return {i["id"]: i for items in data["spec"].values() for i in items}


# The acceptance runs: the conformant emulated platform ------------------------------------
@pytest.mark.parametrize("version", ["1.35", "1.37"])
def test_conformant_platform_submission_passes_both_validators_with_a_page_per_requirement(
        version, kubeapi_factory, tmp_path, capsys):
    kube = kubeapi_factory("conformant-platform", minor=version)
    kube.settle()
    out = tmp_path / "out"
    code, log = submit(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"), out, version,
                       metadata_file(tmp_path, version), probe_timeout=30.0, timing=FAST)
    # Written as the pull request adds it: v<version>/<platformName, as a folder name>/.
    folder = product_folder(out)
    assert folder == out / f"v{version}" / "aicp-emulated-platform"
    doc = json.loads((folder / "results" / "aicp-results.json").read_text())
    reasons = {r["id"]: f"{r['verdict']}: {r['reason']}" for r in doc["requirements"]}
    assert code == 0, reasons
    # cluster_autoscaling "Implemented" claims scale up and down: a submission waited for
    # the scale-down, as --long does (#27 item 8).
    assert "and back to 2 after its deletion" in reasons["cluster_autoscaling"], reasons
    assert "long: on: scale-down is waited for (a --output checklist submission claims it)" \
        in log
    assert validate(folder / "PRODUCT.yaml") == {"legacy": [], "hybrid": []}
    # Nothing private in a submission, meant for a public pull request (#27 item 11): not
    # the API server's address, the kubeconfig's path nor the context's name.
    for path in (p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        for private in (kube.url, str(tmp_path / "kubeconfig.yaml"), "aicp-emulator"):
            assert private not in text, (path, private)
    assert kube.url in log  # the terminal still shows where the run went
    assert "not checked offline" in log and "vendorName must be a CNCF member" in log

    # The SHOULDs this platform leaves out: Not Implemented, skipped with the reason.
    items, tests = spec(folder), cases(folder)
    suite = ET.parse(folder / "results" / "aicp-junit.xml").getroot()
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    e2e = (folder / "results" / "aicp-verify.log").read_text()
    assert "--- FAIL" not in e2e and e2e.splitlines()[-2] == "PASS"
    for rid in NOT_IMPLEMENTED:
        assert items[rid]["status"] == "Not Implemented"
        skipped = tests[rid].find("skipped")
        assert skipped is not None and skipped.get("message", "").startswith(
            "Not Implemented (SHOULD): ")
    assert list(tests) == [r["id"] for r in doc["requirements"]]  # named by id, by aicp
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
    assert not (tmp_path / "v1.37" / "x").exists()


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
    assert code in (0, 1) and (tmp_path / "json" / "results" / "aicp-results.json").is_file()
    # A local report (no checklist) keeps where the run went; never the kubeconfig's path.
    local = json.loads((tmp_path / "json" / "results" / "aicp-results.json").read_text())
    assert local["cluster"]["cluster"] == kube.url
    assert "kubeconfig" not in local["cluster"]


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
    metadata = checklist.load_metadata(metadata_file(tmp_path, "1.37"), tmpl)
    write(report_for(tmpl, [Verdict.PASS] * len(tmpl.ids)), tmpl, ["junit", "checklist"],
          tmp_path / "out", metadata)
    return product_folder(tmp_path / "out")


def test_the_emulated_validators_accept_a_clean_submission(submission):
    assert validate(submission / "PRODUCT.yaml") == {"legacy": [], "hybrid": []}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_legacy_validator_rejects_file_urls_and_hybrid_accepts_them(submission):
    edit(submission / "PRODUCT.yaml", '"results/aicp-junit.xml"',
         '"file://results/aicp-junit.xml#gang_scheduling"')
    found = validate(submission / "PRODUCT.yaml")
    assert found["hybrid"] == []
    assert found["legacy"] and all("file://results/aicp-junit.xml" in e
                                   for e in found["legacy"])


def rename(folder: Path, old: str, new: str) -> None:
    (folder / old).rename(folder / new)
    edit(folder / "PRODUCT.yaml", f'"{old}"', f'"{new}"')


def test_aicps_own_files_under_the_canonical_names_would_fail_the_hybrid_validator(
        submission):
    # Why aicp never writes junit.xml or e2e.log: the hybrid validator would read aicp's
    # results as the working group's suite and look for its tests there.
    rename(submission, "results/aicp-junit.xml", "results/junit.xml")
    rename(submission, "results/aicp-verify.log", "results/e2e.log")
    found = validate(submission / "PRODUCT.yaml")
    assert found["legacy"] == []  # the legacy validator never opens the files
    assert found["hybrid"] == [
        f"Test {test} for '{rid}' not found in results/{name}"
        for rid, test in [("gang_scheduling", "TestGangScheduling"),
                          ("cluster_autoscaling", "TestAcceleratorClusterAutoscaling"),
                          ("secure_accelerator_access", "TestSecureAcceleratorAccess")]
        for name in ("junit.xml", "e2e.log")]
    junit = submission / "results" / "junit.xml"
    edit(junit, "</testcase>", '<failure message="not implemented" /></testcase>')
    found = validate(submission / "PRODUCT.yaml")
    assert any("contains failing tests" in e for e in found["hybrid"]), found


def gke_submission(tmp_path: Path) -> Path:
    """GKE's v1.37 submission as it sits in cncf/k8s-ai-conformance, v1.37/gke/."""
    folder = tmp_path / "v1.37" / "gke"
    folder.mkdir(parents=True)
    for name in ("PRODUCT.yaml", "results.json", "e2e.log", "junit.xml"):
        (folder / name).write_bytes(require_shared("fixtures", "wg-suite-gke-v1.37",
                                                   name).read_bytes())
    return folder


def test_the_validator_rules_accept_gkes_real_submission_as_upstream_ci_did(tmp_path):
    # Upstream data, not aicp's: the hybrid rules must accept it (its evidence is
    # file://v1.37/gke/junit.xml#TestGangScheduling...), and the legacy rules reject exactly
    # its file:// entries, 9 of them (3 mapped ids x junit.xml, results.json, e2e.log).
    found = validate(gke_submission(tmp_path) / "PRODUCT.yaml")
    assert found["hybrid"] == []
    assert len(found["legacy"]) == 9 and all("file://v1.37/gke/" in e
                                             for e in found["legacy"])


def test_the_validator_rules_reject_gkes_submission_with_one_failing_test(tmp_path):
    folder = gke_submission(tmp_path)
    edit(folder / "e2e.log", "--- PASS: TestGangScheduling/", "--- FAIL: TestGangScheduling/")
    found = validate(folder / "PRODUCT.yaml")
    assert found["hybrid"][0].startswith("Test artifact file://v1.37/gke/e2e.log contains "
                                         "failing tests: TestGangScheduling/")


def test_both_validators_require_k8s_conformance_url_and_reject_placeholders(submission):
    product = submission / "PRODUCT.yaml"
    data = yaml.safe_load(product.read_text())
    del data["metadata"]["k8sConformanceUrl"]
    data["metadata"]["platformName"] = "[Platform Name]"
    product.write_text(yaml.safe_dump(data, sort_keys=False))
    for errors in validate(product).values():
        assert errors == ["Metadata field platformName has placeholder value: [Platform Name]",
                          "Missing metadata field: k8sConformanceUrl (or k8s_conformance_url)"]


# The acceptance run of issue 21: the conformant platform, the suite replayed, signed -------
def ed25519_key(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private, public = tmp_path / "key.pem", tmp_path / "key.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_conformant_platform_with_the_replayed_suite_is_a_signed_submission_both_accept(
        kubeapi_factory, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from aicp.cli.main import app
    from aicp.verify.wgsuite import MAPPED
    from tests.verify.test_reports import upstream_test_names
    from tests.verify.test_wg_suite import FIXTURE, stand_ins, suite_source

    bin_dir = stand_ins(tmp_path, monkeypatch)  # go and gotestsum replaying GKE's run
    private, public = ed25519_key(tmp_path)
    kube = kubeapi_factory("conformant-platform", minor="1.37")
    kube.settle()
    out = tmp_path / "out"
    code, log = submit(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"), out, "1.37",
                       metadata_file(tmp_path, "1.37"), output=["checklist"],
                       probe_timeout=30.0, timing=FAST, wg_suite=True,
                       wg_suite_source=suite_source(tmp_path), sign_key=private)
    assert code == 0, log
    folder = product_folder(out)
    assert folder == out / "v1.37" / "aicp-emulated-platform"
    assert validate(folder / "PRODUCT.yaml") == {"legacy": [], "hybrid": []}
    # Checked before writing, laid out as the pull request would hold it (platformName):
    assert ("submission: passes both CNCF validator generations offline, written as "
            "v1.37/aicp-emulated-platform/ (the folder a cncf/k8s-ai-conformance pull "
            "request adds)") in log

    # The suite's files, byte for byte, linked only from the three ids the validator maps.
    for name in ("results.json", "e2e.log", "junit.xml"):
        assert (folder / "wg-suite" / name).read_bytes() == \
            require_shared(*FIXTURE, name).read_bytes(), name
    items = spec(folder)
    linking = {rid for rid, item in items.items()
               if any(e.startswith("wg-suite/") for e in item.get("evidence") or [])}
    assert linking == set(MAPPED)
    for rid in MAPPED:
        assert items[rid]["evidence"][-3:] == ["wg-suite/results.json", "wg-suite/e2e.log",
                                               "wg-suite/junit.xml"]
    args = json.loads((bin_dir / "args.json").read_text())
    assert args[:6] == ["test", "-v", "-timeout", "75m", "./test", "-json"]
    assert args[6:-1] == ["-accelerator-type=nvidia", "-allocation-mode=dra",
                          "-gang-scheduler-namespace=ai-workloads",
                          "-gang-job-labels=kueue.x-k8s.io/queue-name=aicp",
                          "-sandbox-runtime-class=gvisor"]
    assert args[-1] == f"-kubeconfig={tmp_path / 'kubeconfig.yaml'}"  # the run's own file
    page = (folder / "evidence" / "wg-suite" / "README.md").read_text()
    assert "| -allocation-mode | dra | cluster: DeviceClass gpu.nvidia.com and ResourceSlices" \
           in page and str(tmp_path) not in page

    # aicp's own files never use the suite's names; only wg-suite/ holds the suite's output.
    names, header = upstream_test_names(), set(template("1.37").text.splitlines())
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() or rel.startswith("wg-suite/"):
            continue
        assert path.name not in ("junit.xml", "results.json", "e2e.log"), rel
        text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                         if rel != "PRODUCT.yaml" or line not in header)
        assert not [n for n in names if n in text], rel

    # Signed: the manifest names the suite commit, aicp's version and the cluster.
    manifest = json.loads((folder / "results" / "aicp-manifest.json").read_text())
    assert manifest["suite"]["commit"] == "6c1b76b89251efef18a4d18cb438fa6fdca9e77a"
    assert manifest["suite"]["passed"] is True
    assert manifest["cluster"]["kubeSystemUid"] and manifest["cluster"][
        "kubernetesVersion"].startswith("v1.37")
    assert "wg-suite/junit.xml" in manifest["files"]
    result = CliRunner().invoke(app, ["verify", "evidence", "check", str(folder),
                                      "--key", str(public)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("evidence ok: ") and "signature by key" in result.output
    # Given the --output-dir, the check finds the submission folder in it and says so.
    result = CliRunner().invoke(app, ["verify", "evidence", "check", str(out),
                                      "--key", str(public)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"evidence ok (in {folder}): ")
