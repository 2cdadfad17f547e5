"""driver_runtime_management against the emulated reference platform."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.driver_runtime_management import DriverRuntimeManagement
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.kubeapi.controllers.kubelet import GpuRuntime
from tests.verify.conftest import planned

GFD_580 = {"nvidia.com/cuda.driver-version.full": "580.65.06",
           "nvidia.com/cuda.driver-version.major": "580",
           "nvidia.com/cuda.driver-version.minor": "65",
           "nvidia.com/cuda.driver-version.revision": "06",
           "nvidia.com/cuda.runtime-version.full": "13.0"}


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("drm1", "1.35", images.catalog()),
                    cleanup_timeout=10).run(planned(DriverRuntimeManagement, level="SHOULD"))
    # The WG suite's plain-image pod is the only thing created, and it is cleaned up.
    assert report.leftovers == []
    created = {o.kind for o in report.outcomes[0].result.evidence.objects}
    assert created <= {"Namespace", "ResourceClaimTemplate", "Pod"}
    return report.outcomes[0].result


def relabel(kubeapi, node, labels):
    kubeapi.mutate("nodes", node, lambda n: n["metadata"]["labels"].update(labels))


def replace_slice(kubeapi, node, **options):
    kubeapi.delete("resourceslices.resource.k8s.io", f"{node}-gpu.nvidia.com")
    slice_ = o.resource_slice(node, **options)
    kubeapi.create(slice_)
    return slice_


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_one_driver_version_from_dra_attributes_passes_and_names_the_source(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason == ("all 2 GPU nodes run driver 580.65.0 "
                             "(source: DRA ResourceSlice attributes); a plain-image pod with one "
                             "GPU on gpu-h100-0: 1 device, nvidia-smi at /usr/bin/nvidia-smi, "
                             "driver 580.65.0 (advertised 580.65.0)")
    assert result.evidence.observations["containerRuntimes"] == ["containerd://2.1.0"]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_node_with_another_driver_fails_naming_nodes_and_versions(kubeapi, kubeconfig):
    replace_slice(kubeapi, "gpu-h100-1", driver_version="570.172.08")
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason == ("GPU nodes run different driver versions: 580.65.0 on "
                             "gpu-h100-0; 570.172.0 on gpu-h100-1")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_dra=False)
def test_gfd_labels_are_the_fallback_and_compare_numerically(kubeapi, kubeconfig):
    relabel(kubeapi, "gpu-h100-0", GFD_580)
    legacy = {"nvidia.com/cuda.driver.major": "580", "nvidia.com/cuda.driver.minor": "65",
              "nvidia.com/cuda.driver.rev": "6", "nvidia.com/cuda.runtime.major": "13",
              "nvidia.com/cuda.runtime.minor": "0"}
    relabel(kubeapi, "gpu-h100-1", legacy)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason.startswith("all 2 GPU nodes run driver 580.65.06, CUDA 13.0 "
                                    "(source: GPU Feature Discovery labels); a plain-image pod "
                                    "with one GPU on gpu-h100-0: 1 device")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_dra=False)
def test_a_node_reporting_nothing_while_others_do_fails(kubeapi, kubeconfig):
    relabel(kubeapi, "gpu-h100-0", GFD_580)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL and result.partial
    assert "1 of 2 GPU nodes report no driver version (gpu-h100-1)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_dra=False)
def test_a_pool_publishing_no_version_is_named_not_failed(kubeapi, kubeconfig):
    # The WG test warns where a node advertises no driver version and lets its
    # in-container probe decide (test/driver_runtime_management_test.go); a node silent
    # beside pool-mates that report still fails (the test above).
    relabel(kubeapi, "gpu-h100-0", GFD_580)
    relabel(kubeapi, "gpu-h100-1", {"aicp.dev/gpu-pool": "l4"})
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["poolsWithoutDriverVersion"] == {
        "gpu-h100-1": "aicp.dev/gpu-pool=l4"}
    assert "gpu-h100-1 publish no driver version (pools aicp.dev/gpu-pool=l4)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_cluster_policy_that_is_not_ready_fails(kubeapi, kubeconfig):
    kubeapi.seed([{"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
                   "metadata": {"name": "cluster-policy"}, "spec": {},
                   "status": {"state": "notReady", "namespace": "gpu-operator"}}])
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason == "the GPU Operator ClusterPolicy is not ready: cluster-policy: notReady"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_dra=False)
def test_without_any_version_source_the_probe_cannot_decide(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "no GPU node reports its driver version: 2 GPU nodes" in result.reason


@pytest.mark.kubeapi("empty")
def test_without_gpu_nodes_the_requirement_is_not_applicable(kubeconfig):
    assert run(kubeconfig).verdict is Verdict.SKIP


def no_smi(kube, pod, container):
    return []


# Belief 6 (the WG suite's pod): a runtime that gives the device but injects no nvidia-smi.
@pytest.mark.kubeapi("reference-platform", gpu_nodes=1,
                     logs=GpuRuntime(tools=no_smi))
def test_a_plain_image_pod_without_injected_nvidia_smi_fails(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason == ("a plain-image pod given one GPU did not get a working driver: "
                             "nvidia-smi was not injected into the container")
