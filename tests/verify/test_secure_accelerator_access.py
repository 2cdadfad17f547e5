"""secure_accelerator_access against the emulated reference platform."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings
from aicp.verify.probes.secure_accelerator_access import SecureAcceleratorAccess
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.kubelet import allocated_gpus
from tests.verify.conftest import planned


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("sa1", "1.35", images.catalog()), kube=kube,
                    cleanup_timeout=10).run(planned(SecureAcceleratorAccess))
    return kube, report.outcomes[0].result, report


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_claiming_container_sees_its_gpu_and_nothing_else_does(kubeconfig):
    kube, result, report = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    checks = {c.name: c.passed for c in result.evidence.checks}
    assert checks == {"a container with a claim sees exactly its one GPU": True,
                      "the claiming pod's second container sees no GPU": True,
                      "a pod without a claim sees no GPU": True}
    assert any(name.endswith("claiming-with-claim.log") for name in result.evidence.artifacts)
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    assert report.leftovers == []


def leaky_runtime(pod: dict, container: str, kube) -> str:
    """A node whose runtime hands a pod's GPUs to every container (NVIDIA_VISIBLE_DEVICES
    honoured for unprivileged containers): the violation the upstream test exists for."""
    devices = allocated_gpus(kube, pod)
    return "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-leak-{i})\n"
                   for i, _ in enumerate(devices)) or "No devices were found\n"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=leaky_runtime)
def test_a_second_container_seeing_the_claimed_gpu_fails_the_requirement(kubeconfig):
    _, result, report = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "second container sees no GPU" in result.reason
    assert report.leftovers == []


@pytest.mark.kubeapi("empty")
def test_without_gpu_nodes_the_requirement_is_not_applicable(kubeconfig):
    _, result, _ = run(kubeconfig)
    assert result.verdict is Verdict.SKIP
    assert "no GPU node among 0 nodes" in result.reason


DEVICE_PLUGIN_CHECKS = {"a container requesting nvidia.com/gpu: 1 sees exactly one GPU": True,
                        "the requesting pod's second container sees no GPU": True,
                        "a pod without a request on the same GPU node sees no GPU": True}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_dra=False)
def test_with_the_device_plugin_only_the_requesting_container_sees_a_gpu(kubeconfig):
    kube, result, report = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert {c.name: c.passed for c in result.evidence.checks} == DEVICE_PLUGIN_CHECKS
    assert result.reason.startswith("only the container requesting nvidia.com/gpu saw a GPU")
    assert result.evidence.observations["devicePluginNode"] == "gpu-h100-0"
    assert report.leftovers == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_dra=False, logs=leaky_runtime)
def test_a_device_plugin_gpu_leaking_to_a_second_container_fails(kubeconfig):
    _, result, report = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason == ("accelerator access is not isolated: expected that the requesting "
                             "pod's second container sees no GPU, observed GPU 0: NVIDIA H100 "
                             "80GB HBM3 (UUID: GPU-leak-0)")
    assert report.leftovers == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_cluster_with_dra_and_device_plugin_nodes_is_checked_on_both(kubeapi, kubeconfig):
    kubeapi.delete("resourceslices.resource.k8s.io", "gpu-h100-1-gpu.nvidia.com")
    _, result, report = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert len(result.evidence.checks) == 6
    assert result.evidence.observations["devicePluginNode"] == "gpu-h100-1"
    assert report.leftovers == []
