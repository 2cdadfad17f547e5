"""dra_support against the emulated reference platform."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes.dra_support import DraSupport
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.kubeapi.scenarios import standard_controllers
from tests.verify.conftest import planned

# The emulator allocates a claim in milliseconds: a claim it never allocates is given 1.5 s.
FAST = Timing(poll=0.1, overrides={"claim_timeout": 1.5})


def run(kubeconfig, expectations=None):
    kube = connect(kubeconfig)
    settings = Settings("dra1", "1.35", images.catalog(), expectations=expectations or {},
                        timing=FAST)
    report = Runner(kube, settings, cleanup_timeout=10).run(planned(DraSupport))
    result = report.outcomes[0].result
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return result


def checks(result):
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_claim_is_allocated_a_published_device_and_the_pod_sees_exactly_it(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["devicesPerNode"] == {"gpu-h100-0": 8, "gpu-h100-1": 8}
    allocation = result.evidence.observations["allocation"]
    assert len(allocation) == 1 and allocation[0].startswith("gpu.nvidia.com/gpu-h100-")
    assert checks(result)["the pod sees exactly its 1 allocated device(s)"][0]
    assert "DeviceClass gpu.nvidia.com got gpu.nvidia.com/gpu-h100-" in result.reason


def dra_only(kubeapi, node: str) -> None:
    """The node as aicp's DRA pools run it: the GPU Operator's device plugin off
    (``nvidia.com/gpu.deploy.device-plugin=false``), so no ``nvidia.com/gpu`` is advertised."""
    def drop(obj: dict) -> None:
        for key in ("allocatable", "capacity"):
            obj["status"][key].pop("nvidia.com/gpu", None)
    kubeapi.mutate("nodes", node, drop, status=True)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_gpu_node_without_resource_slices_fails(kubeapi, kubeconfig):
    """A DRA node (no device-plugin resources) whose driver publishes nothing."""
    dra_only(kubeapi, "gpu-h100-1")
    kubeapi.delete("resourceslices.resource.k8s.io", "gpu-h100-1-gpu.nvidia.com")
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.partial
    assert "1 of 2 GPU nodes publish no DRA devices: gpu-h100-1" in result.reason
    assert checks(result)["every DRA GPU node publishes devices in a ResourceSlice"] == (
        False, "gpu-h100-0: 8; gpu-h100-1: 0")
    assert result.evidence.objects == []  # nothing was created


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_dra=False)
def test_gpus_only_through_the_device_plugin_do_not_implement_dra(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "no DeviceClass exists although resource.k8s.io/v1 is served" in result.reason
    assert checks(result)["a DeviceClass exists"] == (False, "none")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_device_class_selecting_nothing_fails_before_any_claim(kubeapi, kubeconfig):
    # Belief 1: the class is chosen by what its selectors select, never by its name alone
    # (this one is named gpu.nvidia.com but selects another driver's devices).
    kubeapi.delete("deviceclasses.resource.k8s.io", "gpu.nvidia.com")
    kubeapi.create(o.device_class(driver="tpu.example.com"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason == ("GPU nodes publish DRA devices but no DeviceClass selects them "
                             "(classes: gpu.nvidia.com): no ResourceClaim can ask for a GPU")
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, controllers=False)
def test_without_a_dra_allocator_the_claim_is_never_allocated(kubeapi, kubeconfig):
    standard_controllers(kubeapi, dra=False)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "no scheduler allocates claims" in result.reason


def admin_claim(node: str, devices: int) -> dict:
    """The DRA-mode DCGM exporter's claim: adminAccess on every GPU of its node
    (NVIDIA/gpu-operator internal/state/testdata/golden/gpucluster-dcgm-exporter-embedded.yaml:
    allocationMode All, adminAccess true), as the scheduler records it."""
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": f"nvidia-dcgm-exporter-{node}-admin-gpus",
                         "namespace": "gpu-operator"},
            "spec": {"devices": {"requests": [{"name": "admin-gpus", "exactly": {
                "deviceClassName": "gpu.nvidia.com", "allocationMode": "All",
                "adminAccess": True}}]}},
            "status": {"allocation": {"devices": {"results": [
                {"request": "admin-gpus", "driver": "gpu.nvidia.com", "pool": node,
                 "device": f"gpu-{i}", "adminAccess": True} for i in range(devices)]}}}}


# Belief 8: adminAccess allocations monitor devices without taking them.
@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, controllers=False)
def test_admin_access_allocations_are_not_devices_in_use(kubeapi, kubeconfig):
    standard_controllers(kubeapi, dra=False)
    kubeapi.seed([admin_claim("gpu-h100-0", 8)])
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "although 8 GPU devices are free" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_every_device_already_allocated_is_an_environment_problem(kubeapi, kubeconfig):
    kubeapi.create(o.namespace("busy"))
    kubeapi.create(o.gpu_claim_template("eight", "busy", count=8))
    kubeapi.create(o.pod("hog", "busy", command=["sleep", "inf"], restart_policy="Always",
                         claims={"gpu": "eight"},
                         tolerations=[{"operator": "Exists"}]))
    kubeapi.settle()
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "every one of the 8 published GPU devices is already allocated" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_nodes_of_a_device_plugin_pool_need_no_slices(kubeapi, kubeconfig):
    kubeapi.delete("resourceslices.resource.k8s.io", "gpu-h100-1-gpu.nvidia.com")
    kubeapi.mutate("nodes", "gpu-h100-1", lambda n: n["metadata"]["labels"].update(
        {"aicp.dev/gpu-allocator": "device-plugin"}))
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["devicePluginPoolNodes"] == ["gpu-h100-1"]


@pytest.mark.kubeapi("empty")
def test_without_gpu_nodes_the_must_is_an_error_not_not_applicable(kubeconfig):
    # A MUST that could not be exercised is not "not applicable": the checklist's N/A needs
    # a justification that it does not apply (cncf/k8s-ai-conformance
    # docs/AIConformance-1.35.yaml, status and notes).
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("no GPU node to exercise: scale a pool up (or run with --long)")
    assert "no GPU node among 0 nodes" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_device_plugin_node_beside_working_dra_is_recorded_not_failed(kubeapi, kubeconfig):
    """Issue #22 section 3, "a pool that cannot be DRA on its platform does not fail
    dra_support when DRA works elsewhere": a node that advertises its GPUs as the device
    plugin's ``nvidia.com/gpu`` and publishes no slices, installed by anything (no aicp or
    GKE label), is a device-plugin node by what it publishes; the DRA node is exercised."""
    dra_only(kubeapi, "gpu-h100-0")
    kubeapi.delete("resourceslices.resource.k8s.io", "gpu-h100-1-gpu.nvidia.com")
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["devicePluginPoolWhy"] == {
        "gpu-h100-1": "its accelerators are a device plugin's resources (nvidia.com/gpu)"}
    assert result.evidence.observations["allocation"][0].startswith("gpu.nvidia.com/gpu-h100-0")
