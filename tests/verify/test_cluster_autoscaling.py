"""cluster_autoscaling against the emulated reference platform (node-group autoscaler)."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes.cluster_autoscaling import ClusterAutoscaling
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.autoscaler import (
    NodeGroupAutoscaler,
    fixture_status,
    status_configmap,
)
from tests.kubeapi.scenarios import gpu_node_objects
from tests.kubeapi.worlds_workloads import helm_autoscaler, karpenter, mig_pool, pool_at_max_status
from tests.verify.conftest import planned

H100_POOL = {"name": "h100", "accelerator": "h100", "gpusPerNode": 8, "minNodes": 1,
             "maxNodes": 3, "allocator": "device-plugin", "labels": {"aicp.dev/gpu-pool": "h100"}}


# The probe's waits, short: the emulator answers in milliseconds.
FAST = {"scale_up_timeout": 3.0, "scale_down_timeout": 1.0, "unschedulable_timeout": 2.0,
        "poll": 0.05}


def run(kubeconfig, *, long=False, waits: dict[str, float] | None = None, **expectations):
    """One run of the probe; ``waits`` replace FAST's by name (``scale_up_timeout``)."""
    kube = connect(kubeconfig)
    settings = Settings("ca1", "1.35", images.catalog(), long=long, expectations=expectations,
                        timing=Timing(overrides={**FAST, **(waits or {})}))
    report = Runner(kube, settings, cleanup_timeout=10).run(
        planned(ClusterAutoscaling))
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.outcomes[0].result


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, autoscale_gpu_nodes=1)
def test_a_pending_gpu_pod_grows_its_pool_and_runs_on_the_new_node(kubeapi, kubeconfig):
    status_configmap(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    # The WG test's shape: first Unschedulable, then Running on a node with a new UID.
    passed, observed = checks(result)["the GPU pod is first Unschedulable"]
    assert passed and observed.startswith("FailedScheduling: 0/")
    assert checks(result)["pool h100 gains a node for the pending GPU pod"] == (
        True, "1 -> 2 nodes; TriggeredScaleUp: pod triggered scale-up: [{gpu 0->1 (max: 1)}]")
    assert checks(result)["the pod runs on the added node (a new node UID)"] == (
        True, "phase Running, node gpu-h100-1")
    obs = result.evidence.observations
    assert obs["autoscalerSignals"] == ["ConfigMap kube-system/cluster-autoscaler-status"]
    assert obs["nodesAfter"] == ["gpu-h100-0", "gpu-h100-1"]
    assert obs["scaleDown"] == "not waited for (pass --long)"
    assert "scale-down was not waited for" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, autoscale_gpu_nodes=1)
def test_the_stacks_pools_and_autoscaler_drive_the_probe(kubeconfig):
    result = run(kubeconfig, autoscaler="cluster-autoscaler", gpuPools=[H100_POOL])
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["autoscalerSignals"] == [
        "stack autoscaler: cluster-autoscaler"]
    assert result.evidence.observations["pool"]["maxNodes"] == 3


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_an_autoscaler_that_never_adds_a_node_fails_the_requirement(kubeapi, kubeconfig):
    status_configmap(kubeapi)
    result = run(kubeconfig, waits={"scale_up_timeout": 1.0})
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("no node was added to GPU pool h100 within 1s for a "
                                    "pending pod requesting nvidia.com/gpu")
    assert "didn't match Pod's node affinity" in result.reason  # the scheduler's event
    assert checks(result)["pool h100 gains a node for the pending GPU pod"] == (
        False, "1 -> 1 nodes")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, autoscale_gpu_nodes=1)
def test_with_long_a_node_that_is_never_removed_fails_scale_down(kubeapi, kubeconfig):
    status_configmap(kubeapi)
    result = run(kubeconfig, long=True)  # the emulated autoscaler never scales down
    assert result.verdict is Verdict.FAIL and result.partial
    assert "did not remove gpu-h100-1" in result.reason
    assert checks(result)["pool h100 returns to its 1 baseline nodes"][0] is False


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, autoscale_gpu_nodes=1)
def test_with_long_the_added_node_removed_after_the_pod_passes(kubeapi, kubeconfig):
    status_configmap(kubeapi)

    def scale_down(event):
        if event.type == "DELETED" and event.obj["metadata"]["name"] == "scale-up":
            kubeapi.delete("nodes", event.obj["spec"]["nodeName"])
    kubeapi.on("pods", scale_down)
    result = run(kubeconfig, long=True)
    assert result.verdict is Verdict.PASS, result.reason
    assert checks(result)["pool h100 returns to its 1 baseline nodes"] == (True, "gpu-h100-0")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_an_onprem_stack_without_autoscaler_is_not_applicable(kubeconfig):
    result = run(kubeconfig, autoscaler="none")
    assert result.verdict is Verdict.SKIP
    assert "autoscaler: none" in result.reason
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_cluster_with_no_autoscaler_signal_is_not_applicable(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.SKIP
    assert result.reason.startswith("no node autoscaler found")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=3, autoscale_gpu_nodes=1)
def test_every_pool_at_its_maximum_cannot_decide(kubeconfig):
    result = run(kubeconfig, autoscaler="cluster-autoscaler", gpuPools=[H100_POOL])
    assert result.verdict is Verdict.ERROR
    assert result.reason == ("every GPU pool is at its maximum node count: h100 (3/3 nodes); "
                             "remove the nodes a previous run left or raise the maximum")
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
@pytest.mark.parametrize("status", ["yaml", "legacy"])
def test_a_helm_autoscaler_in_its_release_namespace_is_found_and_scales(kubeapi, kubeconfig,
                                                                        status):
    # Before: only kube-system was looked at, so this was a false "not applicable".
    helm_autoscaler(kubeapi, status=status)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["autoscalerSignals"] == [
        "Deployment cluster-autoscaler/cluster-autoscaler-aws-cluster-autoscaler",
        "ConfigMap cluster-autoscaler/cluster-autoscaler-status"]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_the_status_config_map_name_flag_is_followed(kubeapi, kubeconfig):
    helm_autoscaler(kubeapi, configmap="ca-status")
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert "ConfigMap cluster-autoscaler/ca-status" in result.evidence.observations[
        "autoscalerSignals"]


def test_both_status_formats_parse():
    from aicp.verify.probes.cluster_autoscaling import node_groups
    assert node_groups(fixture_status("yaml")) == [
        {"name": "sample-node-group", "target": 8, "minSize": 2, "maxSize": 12}]
    # The legacy capture is trimmed before its node groups: nothing to misread.
    assert node_groups(fixture_status("legacy")) == []
    assert node_groups("") == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_forbidden_to_look_in_kube_system_is_not_not_applicable(kubeapi, kubeconfig):
    kubeapi.faults.forbid({"get", "list"}, "configmaps", namespace="kube-system")
    kubeapi.faults.forbid({"list"}, "deployments")
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("could not look for a node autoscaler: missing permission")
    assert "grant read access" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_pool_the_status_shows_at_its_maximum_is_error_at_once(kubeapi, kubeconfig):
    helm_autoscaler(kubeapi)
    status_configmap(kubeapi, "cluster-autoscaler", "cluster-autoscaler-status",
                     pool_at_max_status("h100"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("every GPU pool is at its maximum node count: h100 "
                                    "(node group eks-h100-20260101 at 12/12)")
    assert result.evidence.objects == []  # no pod waited 20 minutes for nothing


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_an_autoscaler_saying_max_node_group_size_reached_is_error_at_once(kubeapi, kubeconfig):
    status_configmap(kubeapi)
    kubeapi.add(NodeGroupAutoscaler(lambda i: gpu_node_objects(1 + i), max_nodes=0))
    result = run(kubeconfig, waits={"scale_up_timeout": 60.0})
    # Decided on the autoscaler's event, not at the end of the 60 s scale-up wait: no wait
    # gave up (Context.wait_for logs "gave up waiting for ..." when it does).
    assert not [line for line in result.evidence.log if "gave up waiting" in line], \
        result.evidence.log
    assert result.evidence.steps[-1].error.startswith("ProbeError: pool h100 is at its max")
    assert result.verdict is Verdict.ERROR
    assert result.reason == ("pool h100 is at its maximum size, the autoscaler will not add a "
                             "node: NotTriggerScaleUp: pod didn't trigger scale-up: 1 max node "
                             "group size reached")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_karpenter_nodepools_grow_their_gpu_pool(kubeapi, kubeconfig):
    karpenter(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["autoscalerSignals"] == ["Karpenter NodePool gpu"]
    assert result.evidence.observations["pool"]["labels"] == {"karpenter.sh/nodepool": "gpu"}


def test_its_default_waits_follow_real_clouds_and_set_its_timeout():
    # 2 min Unschedulable + 20 min scale-up (kOps) + 1 min; --long adds 25 min scale-down.
    assert ClusterAutoscaling.budget(Settings("ca1", "1.35")) == 1380.0
    assert ClusterAutoscaling.budget(Settings("ca1", "1.35", long=True)) == 2880.0


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_mig_mixed_pool_is_a_gpu_pool_too(kubeapi, kubeconfig):
    # Before: only nvidia.com/gpu counted, so "no GPU pool to scale" (ERROR).
    mig_pool(kubeapi)
    status_configmap(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["pool"]["resource"] == "nvidia.com/mig-1g.10gb"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, autoscale_gpu_nodes=1)
def test_evidence_says_scale_from_zero_was_not_provable_when_the_pool_kept_a_node(kubeconfig):
    # An EKS/AKS DRA pool keeps a node (kubernetes/autoscaler#7799): the scale-up seen is
    # from 1, which says nothing of a pool at 0.
    result = run(kubeconfig, autoscaler="cluster-autoscaler", gpuPools=[H100_POOL])
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["scaleFromZero"] == (
        "not provable: pool h100 had 1 node(s) before the probe, so only a scale-up from 1 "
        "was observed")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=0, autoscale_gpu_nodes=1)
def test_evidence_says_scale_from_zero_was_shown_for_an_empty_pool(kubeconfig):
    result = run(kubeconfig, autoscaler="cluster-autoscaler",
                 gpuPools=[{**H100_POOL, "minNodes": 0}])
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["scaleFromZero"] == (
        "shown: the pool had no node before the probe")
