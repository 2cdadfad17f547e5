"""high_performance_networking: read-only discovery of DRA/Multus/RDMA network resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.high_performance_networking import HighPerformanceNetworking
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.kubeapi import worlds_fabric
from tests.verify.conftest import planned

REPO = Path(__file__).resolve().parents[2]


def run(kubeapi, kubeconfig, expectations=None):
    kubeapi.requests.clear()
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("hpn1", "1.36", expectations=expectations or {})).run(
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


# --- fabric worlds (tests/kubeapi/worlds_fabric.py) -------------------------------------

FABRIC_VERDICTS = {
    # world: (verdict, the check that found the fabric, or the reason's start)
    "eks-efa-device-plugin": (Verdict.PASS, "nodes advertise RDMA resources",
                              "vpc.amazonaws.com/efa on 2 nodes"),
    "eks-efa-dra": (Verdict.PASS, "network devices are published through DRA",
                    "dra.net: 8 devices"),
    "gke-gpudirect": (Verdict.PASS, "GKE Device networks are Ready", "train-nic-0"),
    "aks-infiniband": (Verdict.PASS, "nodes advertise RDMA resources",
                       "rdma/shared_ib on 2 nodes"),
    "network-operator-sriov": (Verdict.PASS, "nodes advertise RDMA resources",
                               "nvidia.com/hostdev on 2 nodes"),
    "gke-gpudirect-not-ready": (Verdict.FAIL, None, "not implemented"),
    "gpus-renamed": (Verdict.FAIL, None, "not implemented"),
}


@pytest.mark.parametrize("name", sorted(FABRIC_VERDICTS))
@pytest.mark.kubeapi("empty", minor="1.36")
def test_each_fabric_world_gets_its_verdict(kubeapi, kubeconfig, name):
    worlds_fabric.load(kubeapi, worlds_fabric.WORLDS[name]())
    result = run(kubeapi, kubeconfig)
    verdict, check, observed = FABRIC_VERDICTS[name]
    assert result.verdict is verdict, result.reason
    if verdict is Verdict.PASS:
        checks = {c.name: c.observed for c in result.evidence.checks}
        assert observed in checks[check], checks
    else:
        assert result.reason.startswith(observed)


@pytest.mark.kubeapi("empty", minor="1.36")
def test_gke_networks_that_are_not_ready_are_named_not_counted(kubeapi, kubeconfig):
    worlds_fabric.load(kubeapi, worlds_fabric.WORLDS["gke-gpudirect-not-ready"]())
    result = run(kubeapi, kubeconfig)
    assert result.evidence.observations["GKE Device networks Ready"] == []
    assert len(result.evidence.observations["GKE Device networks not Ready"]) == 8


@pytest.mark.kubeapi("empty", minor="1.36")
def test_gpu_resources_never_count_as_network_devices(kubeapi, kubeconfig):
    # nvidia.com/gpu and nvidia.com/gpu.shared are GPUs; only what a Network Operator policy
    # declares for its device plugins is a network resource.
    worlds_fabric.load(kubeapi, worlds_fabric.WORLDS["gpus-renamed"]())
    result = run(kubeapi, kubeconfig)
    assert result.evidence.observations["rdma resources"] == {}
    assert "Network Operator device plugin resources" not in result.evidence.observations


# --- the training examples, planned and then emulated --------------------------------------

TRAINING = ("aws-training", "azure-training", "gcp-training")


@pytest.fixture(scope="module")
def training_pools() -> dict[str, tuple[str, list[dict]]]:
    """Each training example's target and gpuPools output, as `aicp plan` computes them."""
    from aicp.cli.plan import run_stack, stack_config
    out = {}
    for stack in TRAINING:
        _, plan = run_stack(stack_config(REPO, stack), stack)
        out[stack] = (plan.outputs["target"], plan.outputs["gpuPools"])
    return out


@pytest.mark.parametrize("stack", TRAINING)
@pytest.mark.kubeapi("empty", minor="1.36")
def test_a_training_example_passes_on_its_emulated_fabric(kubeapi, kubeconfig, stack,
                                                         training_pools):
    target, pools = training_pools[stack]
    fabric_pools = [p for p in pools if p.get("fabric")]
    assert fabric_pools, f"{stack} plans no fabric pool"
    for pool in fabric_pools:
        worlds_fabric.load(kubeapi, worlds_fabric.FOR_TARGET[target](pool))
    # As `aicp verify --stack` runs it: the stack's pools are the expectations.
    result = run(kubeapi, kubeconfig, {"gpuPools": pools, "target": target})
    assert result.verdict is Verdict.PASS, result.reason
    checks = {c.name: c for c in result.evidence.checks}
    pool_check = checks[f"fabric pool train publishes {fabric_pools[0]['fabric']['kind']}"]
    assert pool_check.passed and pool_check.observed == "2 nodes publish it"
    # What the pool exports is what the cluster publishes: the NCCL proof's pods can ask for it.
    [pool] = fabric_pools
    fabric = pool["fabric"]
    nodes = {n["metadata"]["name"]: n for n in kubeapi.list("nodes")}
    for resource, count in (fabric.get("resources") or {}).items():
        assert all(int(n["status"]["allocatable"][resource]) >= count for n in nodes.values())
    if "networks" in fabric:
        ready = result.evidence.observations["GKE Device networks Ready"]
        assert sorted(ready) == sorted(fabric["networks"])


@pytest.mark.kubeapi("empty", minor="1.36")
def test_a_stack_fabric_pool_whose_nodes_publish_nothing_fails(kubeapi, kubeconfig):
    # The stack built EFA on pool train; its nodes run no EFA device plugin, though another
    # mechanism (a Multus attachment) exists: the pool's pods could not get their fabric.
    pool = {**worlds_fabric.H100_POOL, "fabric": {"kind": "efa", "interfaces": 32,
                                                   "resources": {"vpc.amazonaws.com/efa": 32}}}
    kubeapi.seed(worlds_fabric.gpu_nodes(pool))
    kubeapi.create(nad_crd())
    kubeapi.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                    "metadata": {"name": "macvlan", "namespace": "default"},
                    "spec": {"config": '{"cniVersion": "0.3.1", "type": "macvlan"}'}})
    result = run(kubeapi, kubeconfig, {"gpuPools": [pool]})
    assert result.verdict is Verdict.FAIL and result.partial
    assert result.reason.startswith("the stack's fabric pools do not publish their devices: "
                                    "train (vpc.amazonaws.com/efa >= 32 on train-0, train-1)")


@pytest.mark.kubeapi("empty", minor="1.36")
def test_a_stack_fabric_pool_with_no_node_yet_is_not_judged(kubeapi, kubeconfig):
    pool = {**worlds_fabric.H100_POOL, "fabric": {"kind": "efa", "interfaces": 32,
                                                   "resources": {"vpc.amazonaws.com/efa": 32}}}
    worlds_fabric.load(kubeapi, worlds_fabric.network_operator_sriov())
    result = run(kubeapi, kubeconfig, {"gpuPools": [{**pool, "name": "later"}]})
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["fabric pool later"] == \
        "no node yet (scaled to zero): not judged"
