"""The platform aicp builds, at checklist 1.37, on emulated worlds (issue #25).

The sandbox worlds hold the RuntimeClass each target really has, with the nodes it lands on:

- GKE: GKE Sandbox creates RuntimeClass ``gvisor`` (handler ``gvisor``) and labels and
  taints the sandbox pool's nodes ``sandbox.gke.io/runtime=gvisor``
  (https://cloud.google.com/kubernetes-engine/docs/how-to/sandbox-pods);
- AKS: Pod Sandboxing creates ``kata-vm-isolation`` (handler ``kata``) whose nodeSelector is
  ``kubernetes.azure.com/kata-vm-isolation=true``, the label of the pool's nodes
  (https://learn.microsoft.com/azure/aks/use-pod-sandboxing); the preview's
  ``kata-mshv-vm-isolation`` (handler ``kata``, as ``kubectl get runtimeclasses`` listed it
  on a preview cluster) had no scheduling;
- EKS: the RuntimeClass is aicp's own, so the world holds exactly what the aws plan
  declares (its RuntimeClass and node group labels and taint), read from the plan.

The conformant platform at 1.37 is ``conformant-platform`` (tests/kubeapi/scenarios.py) with
GKE's sandbox shapes, the time-sliced DeviceClass the DRA driver addon declares, and the
stack outputs a GKE stack exports (``notApplicable`` for virtualized_accelerator), read by
``aicp verify --stack`` through a stand-in ``pulumi`` on PATH as in test_stack.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aicp.verify import images
from aicp.verify.checklist import LEVELS
from aicp.verify.evidence import cncf as cncf_validator
from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.workload_sandboxing import WorkloadSandboxing
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.kubeapi.controllers.sandbox import probe_logs
from tests.verify.conftest import planned, require_shared, submission
from tests.verify.test_conformant_platform import FAST
from tests.verify.test_submission import metadata_file, spec, submit

VERSION = "1.37"


def _aws_sandbox() -> tuple[dict, dict, list]:
    """The RuntimeClass and the sandbox group's labels and taint, as the aws plan declares."""
    from aicp.cli.plan import run_stack, stack_config

    _, run = run_stack(stack_config(Path(__file__).resolve().parents[2], "aws"), "aws")
    rc = next(r for r in run.resources
              if r.type == "kubernetes:node.k8s.io/v1:RuntimeClass").inputs
    group = next(r for r in run.resources if r.type == "aws:eks/nodeGroup:NodeGroup"
                 and r.name.endswith("-sandbox")).inputs
    effects = {"NO_SCHEDULE": "NoSchedule"}
    taints = [{"key": t["key"], "value": t["value"], "effect": effects[t["effect"]]}
              for t in group["taints"]]
    return (o.runtime_class(rc["metadata"]["name"], rc["handler"], rc["scheduling"]),
            dict(group["labels"]), taints)


GKE_TAINT = {"key": "sandbox.gke.io/runtime", "value": "gvisor", "effect": "NoSchedule"}


def _world(cloud: str) -> tuple[dict, dict, list]:
    if cloud == "gke":
        return (o.runtime_class("gvisor", "gvisor", {
            "nodeSelector": {"sandbox.gke.io/runtime": "gvisor"},
            "tolerations": [{**GKE_TAINT, "operator": "Equal"}]}),
            {"sandbox.gke.io/runtime": "gvisor"}, [GKE_TAINT])
    if cloud == "aks":
        return (o.runtime_class("kata-vm-isolation", "kata", {
            "nodeSelector": {"kubernetes.azure.com/kata-vm-isolation": "true"}}),
            {"kubernetes.azure.com/kata-vm-isolation": "true"}, [])
    if cloud == "aks-preview":
        return o.runtime_class("kata-mshv-vm-isolation", "kata"), {}, []
    return _aws_sandbox()


def add_sandbox(kube, cloud: str) -> str:
    """The cloud's RuntimeClass and one sandbox node; the scenario's generic class goes."""
    rc, labels, taints = _world(cloud)
    if kube.find("runtimeclasses.node.k8s.io", "gvisor"):
        kube.delete("runtimeclasses.node.k8s.io", "gvisor")
    kube.create(rc)
    kube.create(o.node("sandbox-0", cpu="4", memory="16Gi", labels=labels, taints=taints,
                       minor=VERSION, ip="10.0.9.1"))
    return rc["metadata"]["name"]


@pytest.mark.parametrize("cloud", ["gke", "aks", "aks-preview", "eks"])
def test_the_wg_test_finds_each_clouds_sandbox_and_it_isolates(cloud, kubeapi_factory,
                                                                tmp_path):
    kube = kubeapi_factory("reference-platform", minor=VERSION, gpu_nodes=1,
                           logs=probe_logs)
    name = add_sandbox(kube, cloud)
    api = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
    report = Runner(api, Settings("k137", VERSION, images.catalog()), cleanup_timeout=10).run(
        planned(WorkloadSandboxing, level="SHOULD"))
    result = report.outcomes[0].result
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason.startswith(f"RuntimeClass {name} (handler ")
    node = result.evidence.observations["kernels"]["node"]
    # Where the class's scheduling says: the sandbox node whenever the class selects one.
    if cloud != "aks-preview":
        assert node == "sandbox-0"
    assert report.leftovers == []


# --- the whole platform at 1.37 ------------------------------------------------------------

def time_sliced_class() -> dict:
    """The DeviceClass the DRA driver addon declares (its spec, from the addon module)."""
    from aicp.addons.dra_driver import TIME_SLICED_CLASS, time_sliced_class_spec

    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": {"name": TIME_SLICED_CLASS}, "spec": time_sliced_class_spec()}


@pytest.fixture
def platform(kubeapi_factory, tmp_path, monkeypatch):
    from aicp.components.gcp import NOT_APPLICABLE

    kube = kubeapi_factory("conformant-platform", minor=VERSION)
    add_sandbox(kube, "gke")
    kube.create(time_sliced_class())
    kube.settle()
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    outputs = {"target": "gcp", "clusterName": "aicp-gcp", "kubernetesVersion": VERSION,
               "checklistVersion": VERSION, "kubeconfig": kubeconfig.read_text(),
               "gpuPools": [], "autoscaler": "gke", "addons": {},
               "notApplicable": dict(NOT_APPLICABLE)}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f'#!/bin/sh\n[ "$6" = gcp ] && cat {tmp_path}/outputs.json && exit 0\n'
                      'echo "error: no stack named \'$6\' found" >&2; exit 255\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return kube, kubeconfig


def _verdicts(folder: Path) -> dict[str, dict]:
    doc = json.loads((folder / "results" / "aicp-results.json").read_text())
    return {r["id"]: r for r in doc["requirements"]}


def test_every_must_and_every_applicable_should_passes_at_1_37(platform, tmp_path):
    code, log = submit(None, tmp_path / "out", VERSION, metadata_file(tmp_path, VERSION),
                       stack="gcp", probe_timeout=30.0, timing=FAST)
    folder = submission(tmp_path / "out")  # v1.37/<product>/
    found = _verdicts(folder)
    levels = LEVELS[VERSION]
    assert code == 0, log
    assert [rid for rid, lvl in levels.items() if lvl == "MUST"
            and found[rid]["verdict"] != "PASS"] == []
    virtualized = found["virtualized_accelerator"]
    assert virtualized["verdict"] == "SKIP"
    assert "passthrough mode" in virtualized["reason"]
    pending = {"gpu_sharing"}  # judged below: the probe is engineer JUDGE's
    assert {rid: found[rid]["reason"] for rid, lvl in levels.items()
            if lvl == "SHOULD" and rid not in pending | {"virtualized_accelerator"}
            and found[rid]["verdict"] != "PASS"} == {}
    assert found["workload_sandboxing"]["reason"].startswith(
        "RuntimeClass gvisor (handler gvisor)")
    # The submission passes both validator generations, N/A with its notes.
    product = folder / "PRODUCT.yaml"
    tmpl = require_shared("conformance", f"AIConformance-{VERSION}.yaml")
    assert cncf_validator.legacy(product, tmpl) == []
    assert cncf_validator.hybrid(product, tmpl) == []
    item = spec(folder)["virtualized_accelerator"]
    assert item["status"] == "N/A" and "passthrough mode" in item["notes"]
    assert str(yaml.safe_load(product.read_text())["metadata"]["kubernetesVersion"]
               ).lstrip("v") == VERSION


def test_the_configured_dra_time_slicing_passes_gpu_sharing(platform, tmp_path):
    folder = tmp_path / "v1.37" / "aicp"
    submit(None, folder, VERSION, None, output=("json",), stack="gcp",
           only=["gpu_sharing"], probe_timeout=30.0, timing=FAST)
    result = _verdicts(folder)["gpu_sharing"]
    assert result["verdict"] == "PASS", result["reason"]
