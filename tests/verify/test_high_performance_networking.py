"""high_performance_networking: read-only discovery of DRA/Multus/RDMA network resources."""

from __future__ import annotations

import pytest

from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.high_performance_networking import HighPerformanceNetworking
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.verify.conftest import planned


def run(kubeapi, kubeconfig):
    kubeapi.requests.clear()
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("hpn1", "1.36")).run(
        planned(HighPerformanceNetworking, level="SHOULD"))
    writes = [r for r in kubeapi.requests.requests if r.method != "GET"]
    assert writes == [] and report.leftovers == []
    return report.outcomes[0].result


def nad_crd() -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
            "spec": {"group": "k8s.cni.cncf.io", "scope": "Namespaced",
                     "names": {"plural": "network-attachment-definitions",
                               "singular": "network-attachment-definition",
                               "kind": "NetworkAttachmentDefinition",
                               "listKind": "NetworkAttachmentDefinitionList",
                               "shortNames": ["net-attach-def"]},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}]}}


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_gpu_slices_alone_are_not_high_performance_networking(kubeapi, kubeconfig):
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("not implemented: no network DRA driver ResourceSlices")
    assert result.evidence.observations["network DRA drivers"] == {}


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=2)
def test_dranet_devices_published_through_dra_pass(kubeapi, kubeconfig):
    kubeapi.seed([o.dranet_slice("gpu-h100-0"), o.dranet_slice("gpu-h100-1"),
                  o.device_class("compute-domain-default-channel.nvidia.com",
                                 "compute-domain.nvidia.com")])
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["network DRA drivers"] == {"dra.net": 4}
    check = result.evidence.checks[0]
    assert check.name == "network devices are published through DRA"
    assert "dra.net: 4 devices" in check.observed
    # The ComputeDomain channel class is installed by the NVIDIA DRA chart on any GPU
    # cluster, NVLink or not (dra-driver-nvidia-gpu#438): recorded, never evidence.
    assert "compute-domain-default-channel.nvidia.com" not in check.observed
    assert result.evidence.observations["computeDomainDeviceClasses (not counted)"] == [
        "compute-domain-default-channel.nvidia.com"]


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_the_compute_domain_channel_class_alone_is_not_implemented(kubeapi, kubeconfig):
    kubeapi.seed([o.device_class("compute-domain-default-channel.nvidia.com",
                                 "compute-domain.nvidia.com")])
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "ComputeDomain devices and DeviceClasses alone do not count" in result.reason


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_multus_attachments_and_rdma_resources_pass(kubeapi, kubeconfig):
    kubeapi.create(nad_crd())
    kubeapi.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                    "metadata": {"name": "rdma-net", "namespace": "default"},
                    "spec": {"config": '{"cniVersion": "0.3.1", "type": "macvlan"}'}})
    kubeapi.seed([o.node("rdma-0", extended={"rdma/rdma_shared_device_a": "63"})])
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert {c.name: c.observed for c in result.evidence.checks} == {
        "pods can attach extra interfaces (Multus)": "default/rdma-net",
        "nodes advertise RDMA resources": "rdma/rdma_shared_device_a on 1 nodes"}


@pytest.mark.kubeapi("empty", minor="1.36")
def test_a_bare_cluster_is_not_implemented_not_an_error(kubeapi, kubeconfig):
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "not implemented" in result.reason
