"""gang_scheduling against the emulated reference platform (Kueue admitter)."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes.gang_scheduling import GangScheduling
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.kubelet import kubelet, sleeps_forever
from tests.kubeapi.controllers.kueue import KueueAdmitter
from tests.kubeapi.scenarios import kueue_objects
from tests.kubeapi.worlds_workloads import (
    kai_scheduler,
    kueue_cpu_quota,
    kueue_mig_quota,
    kueue_pinned_namespaces,
    mig_pool,
    volcano,
)
from tests.verify.conftest import planned

# The probe's waits, short: the emulator answers in milliseconds.
FAST = {"admit_timeout": 5.0, "over_quota_wait": 0.6, "release_timeout": 5.0, "poll": 0.05}


def run(kubeconfig, **waits: float):
    """One run of the probe; ``waits`` replace FAST's by name (``admit_timeout=60.0``)."""
    kube = connect(kubeconfig)
    settings = Settings("gs1", "1.35", images.catalog(),
                        timing=Timing(overrides={**FAST, **waits}))
    report = Runner(kube, settings, cleanup_timeout=10).run(planned(GangScheduling))
    result = report.outcomes[0].result
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return result


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_kueue_admits_a_gang_whole_holds_an_over_quota_job_and_releases_quota(kubeapi,
                                                                             kubeconfig):
    sleeps_forever(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    seen = checks(result)
    assert seen["a 4-pod job within quota is admitted with all pods Running together"][0]
    assert seen["a job exceeding the free quota starts none of its pods"] == (
        True, "0 of 4 pods started")
    assert "insufficient quota" in seen[
        "its Workload is not admitted while the gang holds the quota"][1]
    assert seen["deleting the gang releases its quota: the waiting job is admitted"][0]
    assert result.evidence.observations["clusterQueue"]["name"] == "aicp"
    assert result.evidence.observations["namespaceLabels"]["aicp.dev/kueue-managed"] == "true"
    kinds = {o.kind for o in result.evidence.objects}
    assert {"Namespace", "LocalQueue", "Job"} <= kinds


class QuotaBlindAdmitter(KueueAdmitter):
    """Admits every queued Job at once, ignoring quota: the violation the probe exists for."""

    name = "quota-blind-kueue"

    def _try_admit(self, kube, job, wl, usage):
        local = kube.find("localqueues.kueue.x-k8s.io", wl["spec"]["queueName"],
                          job["metadata"]["namespace"])
        cq = kube.get("clusterqueues.kueue.x-k8s.io", local["spec"]["clusterQueue"])
        self._admit(kube, job, wl, cq, "h100", self._needs(wl))


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_pods_of_an_over_quota_job_starting_fail_the_requirement(kubeapi, kubeconfig):
    kubeapi.seed(kueue_objects(16))
    sleeps_forever(kubeapi)
    QuotaBlindAdmitter().install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL, result.reason
    # 16 GPUs on two nodes, the gang holds 4: three of the over-quota job's 4-GPU pods fit.
    assert result.reason == ("3 of 4 pods started for a job exceeding the quota of "
                             "ClusterQueue aicp (no all-or-nothing)")
    passed, observed = checks(result)["a job exceeding the free quota starts none of its pods"]
    assert (passed, observed) == (False, "3 of 4 pods started")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_kueue_without_a_cluster_queue_cannot_decide(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason == ("Kueue is installed but no ClusterQueue exists: create one with "
                             "quota")


@pytest.mark.kubeapi("empty")
def test_without_kueue_or_volcano_there_is_no_gang_scheduler(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert ("neither Kueue (kueue.x-k8s.io), KAI (scheduling.run.ai) nor Volcano "
            "(scheduling.volcano.sh) is served") in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_gang_pods_that_exit_early_are_an_environment_problem(kubeapi, kubeconfig):
    # The emulator's kubelet ends Never pods at once; the 60 s admission is not waited for.
    # The fourth pod of the gang (Job "gang") stays in ContainerCreating until another has
    # ended, so the four never run together however a loaded machine orders the polls.
    started: list[str] = []
    held: set[str] = set()

    def fourth_waits_for_an_end(pod, container):
        meta = pod["metadata"]
        if not meta["name"].startswith("gang-"):
            return None
        if meta["name"] not in started and len(started) < 3:
            started.append(meta["name"])
        ended = any(p["metadata"]["name"].startswith("gang-")
                    and (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                    for p in kubeapi.view("pods", meta["namespace"]))
        if meta["name"] in started or ended:
            return None
        held.add(meta["name"])
        return {"state": {"waiting": {"reason": "ContainerCreating"}}}

    kubelet(kubeapi).waiting = fourth_waits_for_an_end
    result = run(kubeconfig, admit_timeout=60.0)
    assert len(held) == 1  # the world held back exactly the fourth pod
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("pods of the gang ended before all 4 ran together")
    # Decided when the pods ended, not at the end of the 60 s wait: no wait gave up
    # (Context.wait_for logs "gave up waiting for ..." when it does).
    assert not [line for line in result.evidence.log if "gave up waiting" in line], \
        result.evidence.log


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_gang_ending_while_the_over_quota_job_waits_is_not_a_verdict(kubeapi, kubeconfig):
    # The gang's pods run until the over-quota job appears, then exit: Kueue gets the quota
    # back and admits the over-quota job, which says nothing about all-or-nothing admission.
    kubelet(kubeapi).completes = lambda pod: kubeapi.find(
        "jobs.batch", "over", pod["metadata"]["namespace"]) is not None
    result = run(kubeconfig, over_quota_wait=2.0)
    assert result.verdict is Verdict.ERROR, result.reason
    assert result.reason.startswith("pods of the gang ended while the over-quota job waited")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_gang_that_cannot_be_scheduled_is_an_environment_problem(kubeapi, kubeconfig):
    # Quota for 16 GPUs, but the only GPU node's 8 GPUs are held by a pod outside Kueue:
    # admitted, never Running. (Not a cordon: the probe's pods tolerate every taint, and
    # kube-scheduler's NodeUnschedulable lets a pod tolerating node.kubernetes.io/
    # unschedulable onto a cordoned node.)
    sleeps_forever(kubeapi)
    kubeapi.create({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "holds-every-gpu", "namespace": "default"},
                    "spec": {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                             "containers": [{"name": "main", "image": "busybox:1.36",
                                             "command": ["sleep", "3600"], "resources": {
                                                 "limits": {"nvidia.com/gpu": "8"}}}]}})
    kubeapi.settle()
    result = run(kubeconfig, admit_timeout=1.0)
    assert result.verdict is Verdict.ERROR
    assert "had 0 of 4 pods Running" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
@pytest.mark.parametrize("scheduler, install", [("KAI scheduler", kai_scheduler),
                                                ("Volcano", volcano)])
def test_a_podgroup_scheduler_runs_a_full_group_and_none_of_a_short_one(kubeapi, kubeconfig,
                                                                        scheduler, install):
    # Before: Volcano was ERROR ("check by hand"), KAI "no gang scheduler found".
    sleeps_forever(kubeapi)
    install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason.startswith(f"{scheduler}: a PodGroup of 2 pods ran together")
    assert checks(result)["a PodGroup with minMember 3 and 2 pods starts none of them"] == (
        True, "0 of 2 pods started")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
@pytest.mark.parametrize("install", [kai_scheduler, volcano])
def test_a_podgroup_scheduler_that_starts_part_of_a_group_fails(kubeapi, kubeconfig, install):
    sleeps_forever(kubeapi)
    install(kubeapi, all_or_nothing=False)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "2 of 2 pods of a PodGroup needing 3 started" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_kueue_with_cpu_quota_only_gangs_cpu_pods(kubeapi, kubeconfig):
    # Before: "no usable ClusterQueue with GPU quota" (ERROR).
    sleeps_forever(kubeapi)
    kueue_cpu_quota(kubeapi, cpu=16)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["clusterQueue"]["resource"] == "cpu"
    # 4 pods of 1 CPU run; the waiting job's 2 pods of 7 CPU (14 > 12 left) start none.
    assert result.evidence.observations["jobs"] == {"gang": "4 pods x 1 cpu",
                                                    "overQuota": "2 pods x 7 cpu"}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, gpus_per_node=1)
def test_a_one_gpu_cluster_gangs_cpu_pods_on_the_queues_cpu_quota(kubeapi, kubeconfig):
    # Before: "ClusterQueue aicp has 1 free nvidia.com/gpu: a gang needs at least 2" (ERROR).
    sleeps_forever(kubeapi)
    kubeapi.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"][
        "resourceGroups"][0]["flavors"][0]["resources"][2].update(nominalQuota=1))
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["clusterQueue"]["resource"] == "cpu"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_cluster_queue_pinning_namespace_names_is_error_at_once(kubeapi, kubeconfig):
    kueue_pinned_namespaces(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("ClusterQueue aicp selects namespaces by "
                                    "kubernetes.io/metadata.name (kubernetes.io/metadata.name "
                                    "In ['ai-workloads']): the probe's own namespace can never "
                                    "match it")
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_kueue_quota_on_mig_instances_gangs_gpu_pods(kubeapi, kubeconfig):
    # Before: a ClusterQueue covering only nvidia.com/mig-* had "no GPU quota".
    sleeps_forever(kubeapi)
    mig_pool(kubeapi, autoscale=0)
    kueue_mig_quota(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["clusterQueue"]["resource"] == "nvidia.com/mig-1g.10gb"
