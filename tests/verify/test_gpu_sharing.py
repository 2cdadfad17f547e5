"""gpu_sharing against the emulated reference platform."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.gpu_sharing import GpuSharing
from aicp.verify.reports.checklist import entry
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.dcgm import exporters
from tests.verify.conftest import planned


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("gs1", "1.35", images.catalog()),
                    cleanup_timeout=10).run(planned(GpuSharing, level="SHOULD"))
    assert report.leftovers == [] and report.outcomes[0].result.evidence.objects == []
    assert report.exit_code == 0  # a SHOULD never fails the run
    run.outcome = report.outcomes[0]
    return report.outcomes[0].result


def edit_node(kubeapi, node, labels=None, allocatable=None):
    kubeapi.mutate("nodes", node, lambda n: n["metadata"]["labels"].update(labels or {}))

    def status(n):
        n["status"]["capacity"].update(allocatable or {})
        n["status"]["allocatable"].update(allocatable or {})
    kubeapi.mutate("nodes", node, status, status=True)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_whole_gpus_only_is_not_implemented(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("no GPU sharing strategy is configured on the 2 GPU nodes")
    assert entry(run.outcome)["status"] == "Not Implemented"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_time_slicing_from_gfd_labels_passes(kubeapi, kubeconfig):
    edit_node(kubeapi, "gpu-h100-0", {"nvidia.com/gpu.sharing-strategy": "time-slicing",
                                      "nvidia.com/gpu.replicas": "4",
                                      "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-SHARED"},
              {"nvidia.com/gpu": "32"})
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason.startswith("more schedulable units (32) than physical GPUs (8) "
                                    "on 1 of 2 GPU nodes: gpu-h100-0: time-slicing (replicas 4")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_dra=False)
def test_allocatable_above_the_physical_count_is_oversubscription(kubeapi, kubeconfig):
    edit_node(kubeapi, "gpu-h100-0", allocatable={"nvidia.com/gpu": "16"})
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert "(16) than physical GPUs (8)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_dra=False)
def test_mig_resources_of_the_mixed_strategy_pass(kubeapi, kubeconfig):
    # Under MIG, GFD's gpu.count is no physical count (single: MIG devices, fixture doc 2a;
    # mixed: unpartitioned GPUs): the physical GPUs are the UUIDs the exporter reports.
    edit_node(kubeapi, "gpu-h100-0", {"nvidia.com/mig.strategy": "mixed"},
              {"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "56"})
    exporters(kubeapi, ["gpu-h100-0"])
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert "MIG mixed strategy (nvidia.com/mig-1g.10gb=56)" in result.reason
    assert "(56) than physical GPUs (8)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_dra=False)
def test_mig_without_a_physical_count_is_an_error_not_a_guess(kubeapi, kubeconfig):
    edit_node(kubeapi, "gpu-h100-0", {"nvidia.com/mig.strategy": "mixed"},
              {"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "56"})
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "the physical GPU count of gpu-h100-0 is unknown" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_dra_mig_devices_pass(kubeapi, kubeconfig):
    def migs(s):
        gpus = s["spec"]["devices"]
        s["spec"]["devices"] = gpus + [
            {"name": f"gpu-{g}-mig-1g10gb-{i}", "attributes": {
                "type": {"string": "mig"}, "profile": {"string": "1g.10gb"},
                "parentUUID": gpus[g]["attributes"]["uuid"]}}
            for g in range(2) for i in range(7)]
    kubeapi.mutate("resourceslices.resource.k8s.io", "gpu-h100-0-gpu.nvidia.com", migs)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert "DRA MIG devices (14: 1g.10gb)" in result.reason
    assert "(14) than physical GPUs (8)" in result.reason


@pytest.mark.kubeapi("empty")
def test_without_gpu_nodes_the_requirement_is_not_applicable(kubeconfig):
    assert run(kubeconfig).verdict is Verdict.SKIP

