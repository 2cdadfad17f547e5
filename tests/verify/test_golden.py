"""Every report of one fixed run, byte for byte: the golden files are the reports' spec.

The run (``golden_report``) has fixed times, ids and versions and one requirement for each
kind of outcome a reviewer meets: a MUST that passed with full evidence, a MUST that
partly failed, a MUST not applicable, a MUST undecided with a traceback, a MUST checked by
hand, a MUST left out of the run, a SHOULD not implemented, a SHOULD undecided. It is
rendered by the real writers into ``tests/verify/golden/out/v1.37/<product>/``
(PRODUCT.yaml, results/, evidence/) and by the terminal view into
``tests/verify/golden/terminal/summary.txt``.

A change to a report shows as a diff of these files. After an intended change, regenerate
them and read the diff as a CNCF reviewer would:

    AICP_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/verify/test_golden.py
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from aicp.verify import checklist, verdicts
from aicp.verify.checklist import Requirement
from aicp.verify.probe import Settings
from aicp.verify.registry import MANUAL_REMEDIATION, Planned
from aicp.verify.reports import write
from aicp.verify.reports.terminal import TerminalView, closing_line
from aicp.verify.result import Check, CreatedObject, Evidence, Result, Step, Verdict
from aicp.verify.verdicts import Outcome, RunReport

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("AICP_UPDATE_GOLDEN") == "1"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
BUSYBOX = "docker.io/library/busybox:1.36.1@sha256:" + "7" * 64
CUDA = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04@sha256:" + "c" * 64

# Shaped as cncf/k8s-ai-conformance docs/AIConformance-1.37.yaml (header comments, metadata
# placeholders, spec categories, status/evidence/notes per id), with fewer requirements
# and short descriptions of our own: the reports keep whatever the template says.
TEMPLATE = """\
# Kubernetes AI Conformance Checklist - v1.37 (shortened for aicp's golden reports)
# Participants should fill in the 'status', 'evidence', and 'notes' fields for each requirement.

metadata:
  kubernetesVersion: v1.37
  platformName: "[Platform Name]"
  platformVersion: "[Platform Version]"
  vendorName: "[Vendor Name]"
  websiteUrl: "[Website URL]"
  repoUrl: "[Repository URL]"
  documentationUrl: "[Documentation URL]"
  productLogoUrl: "[Documentation URL]"
  description: "[Description]"
  contactEmailAddress: "[Contact Email Address]"

spec:
  accelerators:
    - id: driver_runtime_management
      description: "Accelerator drivers and runtimes are verifiably installed."
      level: SHOULD
      status: ""
      evidence: []
      notes: ""
    - id: gpu_sharing
      description: "At least one GPU sharing strategy is offered."
      level: SHOULD
      status: ""
      evidence: []
      notes: ""
  networking:
    - id: ai_inference
      description: "The Gateway API routes inference traffic."
      level: MUST
      status: ""
      evidence: []
      notes: ""
  schedulingOrchestration:
    - id: gang_scheduling
      description: "All-or-nothing scheduling of multi-pod jobs."
      level: MUST
      status: ""
      evidence: []
      notes: ""
    - id: cluster_autoscaling
      description: "Accelerator node pools scale with pending pods."
      level: MUST
      status: ""
      evidence: []
      notes: ""
    - id: pod_autoscaling
      description: "The HorizontalPodAutoscaler scales accelerator workloads."
      level: MUST
      status: ""
      evidence: []
      notes: ""
  observability:
    - id: accelerator_metrics
      description: "Per-accelerator metrics are exposed in Prometheus format."
      level: MUST
      status: ""
      evidence: []
      notes: ""
  security:
    - id: secure_accelerator_access
      description: "Access to accelerators is isolated between workloads."
      level: MUST
      status: ""
      evidence: []
      notes: ""
"""

METADATA = {
    "kubernetesVersion": "v1.37", "platformName": "Example AI Platform",
    "platformVersion": "2.0.0", "vendorName": "Example Vendor",
    "websiteUrl": "https://platform.example.org", "repoUrl": "",
    "documentationUrl": "https://platform.example.org/docs",
    "productLogoUrl": "https://platform.example.org/logo.svg",
    "description": "An AI-ready Kubernetes platform",
    "contactEmailAddress": "conformance@example.org",
    "k8sConformanceUrl": "https://github.com/cncf/k8s-conformance/tree/master/v1.37/example",
}


def _requirement(template: checklist.Template, rid: str) -> Requirement:
    return next(r for r in template.requirements if r.id == rid)


def _accelerator_metrics() -> Result:
    """A PASS with every kind of evidence a probe records."""
    ns = "aicp-verify-golden1-accelerator-metrics"
    ev = Evidence(
        steps=[Step("find GPU nodes", T0 + 1, 0.25),
               Step("scrape the DCGM exporter", T0 + 1.25, 1.5)],
        checks=[Check("every GPU node has an exporter pod", True, "2 of 2 nodes"),
                Check("DCGM_FI_DEV_GPU_UTIL per GPU", True, "gpu-node-1: 8 GPUs | "
                      "gpu-node-2: 8 GPUs")],
        objects=[CreatedObject("Namespace", ns),
                 CreatedObject("Pod", "scrape", ns, images=(BUSYBOX,))],
        observations={"exporter": "nvidia-dcgm-exporter", "gpus": 16},
        artifacts={"metrics.txt": 'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 0\n'},
        log=["00:00:01 [find GPU nodes] ok: every GPU node has an exporter pod (2 of 2 nodes)"])
    return Result(Verdict.PASS, "16 GPUs on 2 nodes report DCGM metrics", ev,
                  started=T0 + 1, duration=2.75)


def golden_report() -> tuple[checklist.Template, RunReport]:
    template = checklist.parse(TEMPLATE, "AIConformance-1.37.yaml")
    settings = Settings("golden1", "1.37", {"busybox": BUSYBOX, "cuda": CUDA})
    report = RunReport(settings, "1.2.3", started=T0, duration=754.321, info={
        "aicp": "1.2.3", "cluster": "https://203.0.113.10:6443", "context": "golden",
        "kubeconfig": "/home/someone/.kube/config", "kubernetes": "v1.37.1",
        "checklist": "1.37 (AIConformance-1.37.yaml)",
        "run id": "golden1 (label aicp.dev/verify-run=golden1)",
        "image busybox": BUSYBOX, "image cuda": CUDA})
    gang = Evidence(checks=[Check("all 4 pods of the gang start together", True,
                                  "4 Running within 1.2s"),
                            Check("an over-quota gang stays suspended", False,
                                  "2 of 4 pods Running after 30s")],
                    objects=[CreatedObject("Job", "gang", "aicp-verify-golden1-gang",
                                           "batch/v1", images=(CUDA,))])
    errored = Result(Verdict.ERROR, "lost the connection to the cluster "
                     "https://203.0.113.10:6443 (Connection refused) during list pods",
                     Evidence(steps=[Step("wait for the load", T0 + 20, None,
                                          "Lost: lost the connection")]),
                     started=T0 + 20, duration=61.0,
                     traceback="Traceback (most recent call last):\n  ...\nLost: refused\n")
    results = {
        "driver_runtime_management": Result(
            Verdict.FAIL, "no node reports its CUDA driver version (nvidia.com/cuda.driver."
            "major is missing)", Evidence(checks=[Check("driver version labelled", False,
                                                        "0 of 2 GPU nodes")]),
            started=T0 + 3, duration=0.5),
        "gpu_sharing": Result(Verdict.ERROR, "timed out after 600s at step wait for MPS",
                              started=T0 + 4, duration=600.0),
        "ai_inference": Result(Verdict.MANUAL, MANUAL_REMEDIATION.format(id="ai_inference"),
                               started=T0, duration=0.0),
        "gang_scheduling": Result(Verdict.FAIL, "an over-quota gang was partly admitted",
                                  gang, partial=True, started=T0 + 5, duration=45.5),
        "cluster_autoscaling": Result(
            Verdict.SKIP, "not applicable (stack onprem): no node autoscaler on an existing "
            "cluster", started=T0, duration=0.0),
        "pod_autoscaling": errored,
        "accelerator_metrics": _accelerator_metrics(),
        "secure_accelerator_access": Result(Verdict.NOT_RUN, "skipped by --skip",
                                            started=T0, duration=0.0),
    }
    report.outcomes = [Outcome(_requirement(template, rid), result)
                       for rid, result in results.items()]
    return template, report


def terminal(report: RunReport) -> str:
    out = io.StringIO()
    view = TerminalView(Console(file=out, width=100, force_terminal=False, color_system=None))
    view.settings(report.info)
    for o in report.outcomes:
        if o.result.verdict in verdicts.DECIDED:
            view.on_done(Planned(o.requirement, None), o.result)
    view.summary(report)
    out.write(closing_line(report, report.exit_code, Path("/work/aicp-verify-results")) + "\n")
    return out.getvalue()


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def compare(got: dict[str, bytes], folder: Path) -> None:
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for name, data in got.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    want = files(folder)
    assert sorted(got) == sorted(want), "files written differ from the golden ones"
    for name in got:
        assert got[name].decode() == want[name].decode(), (
            f"{name} differs from tests/verify/golden/{folder.name}/{name}; if intended, "
            "regenerate with AICP_UPDATE_GOLDEN=1 and review the diff")


def golden_signer():
    """A fixed Ed25519 key: its signatures are deterministic (RFC 8032), so the envelope
    is a golden file too."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from aicp.verify.evidence import sign

    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return sign.Signer(key, sign._public_pem(key.public_key()), sign.keyid(key.public_key()))


CLUSTER = {"kubernetesVersion": "v1.37.0",
           "kubeSystemUid": "5d3c1f6e-0000-4000-8000-0000000000aa"}


def test_the_written_reports_are_the_golden_files(tmp_path):
    template, report = golden_report()
    write(report, template, ["json", "junit", "checklist"], tmp_path, METADATA,
          signer=golden_signer(), cluster=CLUSTER)
    written = files(tmp_path)
    compare(written, GOLDEN / "out")
    # A submission is public: the local kubeconfig path is printed, never written.
    assert not [name for name, data in written.items() if b"/home/someone" in data]


def test_the_terminal_summary_is_the_golden_file():
    _, report = golden_report()
    compare({"summary.txt": terminal(report).encode()}, GOLDEN / "terminal")


@pytest.mark.skipif(UPDATE, reason="regenerating")
def test_the_golden_run_reads_as_its_verdicts_say():
    # The spec in a few lines, so a regenerated golden file cannot quietly change it.
    _, report = golden_report()
    status = {o.requirement.id: verdicts.status(o) for o in report.outcomes}
    assert status == {"driver_runtime_management": "Not Implemented", "gpu_sharing": "",
                      "ai_inference": "", "gang_scheduling": "Partially Implemented",
                      "cluster_autoscaling": "N/A", "pod_autoscaling": "",
                      "accelerator_metrics": "Implemented", "secure_accelerator_access": ""}
    tests = {o.requirement.id: verdicts.test_result(o) for o in report.outcomes}
    assert [rid for rid, t in tests.items() if t in ("failure", "error")] == [
        "gang_scheduling", "pod_autoscaling"]
    assert report.exit_code == verdicts.EXIT_FAILED and report.ran() == (4, 6)


def test_the_verdict_rules_are_pure():
    # No I/O, no cluster, no YAML: the rules import only the result data types.
    code = ("import sys; before = set(sys.modules); import aicp.verify.verdicts; "
            "print(sorted(m for m in set(sys.modules) - before))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    modules = set(ast.literal_eval(loaded))
    assert {m for m in modules if m.startswith("aicp")} <= {
        "aicp", "aicp.verify", "aicp.verify.result", "aicp.verify.verdicts"}, modules
    for heavy in ("kubernetes", "yaml", "rich", "urllib.request", "socket", "threading",
                  "subprocess", "importlib.metadata"):
        assert heavy not in modules, heavy
