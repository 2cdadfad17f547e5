"""virtualized_accelerator against the emulated reference platform."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.virtualized_accelerator import VirtualizedAccelerator
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.verify.conftest import planned


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("va1", "1.35", images.catalog()),
                    cleanup_timeout=10).run(planned(VirtualizedAccelerator, level="SHOULD"))
    assert report.leftovers == [] and report.outcomes[0].result.evidence.objects == []
    return report.outcomes[0].result


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_bare_metal_gpus_only_is_not_implemented(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("no virtualized accelerator is exposed on the 2 GPU nodes")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_vgpu_node_labelled_by_gfd_passes(kubeapi, kubeconfig):
    kubeapi.mutate("nodes", "gpu-h100-1", lambda n: n["metadata"]["labels"].update({
        "nvidia.com/vgpu.present": "true", "nvidia.com/vgpu.host-driver-version": "580.95.02"}))
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason == ("virtualized accelerators on 1 of 2 GPU nodes: gpu-h100-1: "
                             "nvidia.com/vgpu.present=true (host driver 580.95.02)")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_dra_vfio_passthrough_devices_pass(kubeapi, kubeconfig):
    kubeapi.create(o.device_class("vfio.gpu.nvidia.com"))

    def vfio(s):
        for d in s["spec"]["devices"][:2]:
            d["attributes"]["type"] = {"string": "vfio"}
    kubeapi.mutate("resourceslices.resource.k8s.io", "gpu-h100-0-gpu.nvidia.com", vfio)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert "gpu-h100-0: 2 DRA vfio devices (DeviceClass vfio.gpu.nvidia.com)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_vfio_device_class_without_devices_is_not_enough(kubeapi, kubeconfig):
    kubeapi.create(o.device_class("vfio.gpu.nvidia.com"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "DeviceClasses vfio.gpu.nvidia.com exist but publish no device" in result.reason


@pytest.mark.kubeapi("empty")
def test_without_gpu_nodes_the_requirement_is_not_applicable(kubeconfig):
    assert run(kubeconfig).verdict is Verdict.SKIP
