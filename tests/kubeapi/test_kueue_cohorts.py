"""The emulated Kueue's cohorts (tests/kubeapi/controllers/kueue.py), each case a rule of
kubernetes-sigs/kueue v0.19.2 site/content/en/docs/concepts/cluster_queue.md ("Cohort",
"BorrowingLimit", "LendingLimit", "Preemption", "Namespace selector") and
concepts/preemption.md, on two 8-GPU nodes, with ClusterQueues shaped as that page's examples."""

from __future__ import annotations

import pytest

from tests.kubeapi import objects as o
from tests.kubeapi.controllers.kubelet import sleeps_forever
from tests.kubeapi.controllers.kueue import KueueAdmitter
from tests.kubeapi.scenarios import kueue_objects

API = "kueue.x-k8s.io/v1beta2"
FLAVOR = [x for x in kueue_objects(16) if x["kind"] == "ResourceFlavor"]


def queue(name: str, nominal: int, *, team: str | None = None, borrowing=None, lending=None,
          reclaim="Never", within="Never") -> dict:
    quota = {"name": "nvidia.com/gpu", "nominalQuota": nominal}
    if borrowing is not None:
        quota["borrowingLimit"] = borrowing
    if lending is not None:
        quota["lendingLimit"] = lending
    return {"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": name},
            "spec": {"cohortName": "teams",
                     "namespaceSelector": {"matchLabels": {"team": team or name}},
                     "preemption": {"reclaimWithinCohort": reclaim,
                                    "withinClusterQueue": within},
                     "resourceGroups": [{"coveredResources": ["nvidia.com/gpu"], "flavors": [
                         {"name": "h100", "resources": [quota]}]}]}}


def world(kube, *queues: dict) -> KueueAdmitter:
    objs = list(FLAVOR) + list(queues)
    for q in queues:
        name = q["metadata"]["name"]
        objs += [o.namespace(name, {"team": name}),
                 {"apiVersion": API, "kind": "LocalQueue",
                  "metadata": {"name": "q", "namespace": name},
                  "spec": {"clusterQueue": name}}]
    kube.seed(objs, validate=True)
    kube.create({"apiVersion": API, "kind": "WorkloadPriorityClass",
                 "metadata": {"name": "high"}, "value": 1000})
    sleeps_forever(kube)
    admitter = KueueAdmitter().install(kube)
    kube.settle()
    return admitter


def job(kube, ns: str, name: str, gpus: int, priority: str | None = None) -> None:
    labels = {"kueue.x-k8s.io/queue-name": "q"}
    if priority:
        labels["kueue.x-k8s.io/priority-class"] = priority
    kube.create({"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": {"name": name, "namespace": ns, "labels": labels},
                 "spec": {"parallelism": gpus, "completions": gpus, "template": {"spec": {
                     "restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "c", "image": "busybox:1.36",
                                     "command": ["sleep", "3600"],
                                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}})
    kube.settle()


def state(kube, ns: str, name: str) -> str:
    assert kube.controllers.errors == []
    wl = next(w for w in kube.list("workloads.kueue.x-k8s.io", ns)
              if w["metadata"]["name"].startswith(f"job-{name}-"))
    conds = {c["type"]: c for c in (wl.get("status") or {}).get("conditions") or []}
    if conds.get("Admitted", {}).get("status") == "True":
        return "admitted"
    if conds.get("Preempted", {}).get("status") == "True":
        return f"preempted ({conds['Preempted']['reason']})"
    return f"pending: {conds['QuotaReserved']['message']}"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_a_queue_borrows_what_its_cohort_leaves_unused(kubeapi):
    world(kubeapi, queue("a", 4), queue("b", 12))
    job(kubeapi, "a", "big", 16)
    assert state(kubeapi, "a", "big") == "admitted"
    status = kubeapi.get("clusterqueues.kueue.x-k8s.io", "a")["status"]
    assert status["flavorsReservation"] == [{"name": "h100", "resources": [
        {"name": "nvidia.com/gpu", "total": "16", "borrowed": "12"}]}]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_borrowing_stops_at_the_borrowing_limit(kubeapi):
    world(kubeapi, queue("a", 4, borrowing=2), queue("b", 12))
    job(kubeapi, "a", "big", 7)
    assert state(kubeapi, "a", "big") == ("pending: couldn't assign flavors to pod set main: "
                                          "insufficient quota in ClusterQueue a")
    job(kubeapi, "a", "fits", 6)
    assert state(kubeapi, "a", "fits") == "admitted"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_a_queue_lends_no_more_than_its_lending_limit(kubeapi):
    world(kubeapi, queue("a", 4), queue("b", 12, lending=4))
    job(kubeapi, "a", "big", 9)  # 4 own + at most 4 lent
    assert state(kubeapi, "a", "big").startswith("pending:")
    job(kubeapi, "a", "fits", 8)
    assert state(kubeapi, "a", "fits") == "admitted"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_reclaim_within_cohort_preempts_the_borrower_for_a_queue_within_its_quota(kubeapi):
    kueue = world(kubeapi, queue("a", 4), queue("b", 12, reclaim="Any"))
    job(kubeapi, "a", "borrower", 16)
    job(kubeapi, "b", "owner", 12)
    assert state(kubeapi, "b", "owner") == "admitted"
    assert state(kubeapi, "a", "borrower") == "preempted (InCohortReclamation)"
    assert kubeapi.get("jobs.batch", "borrower", "a")["spec"]["suspend"] is True
    assert [p["reason"] for p in kueue.preemptions] == ["InCohortReclamation"]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_without_reclaim_the_owner_waits(kubeapi):
    world(kubeapi, queue("a", 4), queue("b", 12))
    job(kubeapi, "a", "borrower", 16)
    job(kubeapi, "b", "owner", 12)
    assert state(kubeapi, "b", "owner").startswith("pending: couldn't assign flavors")
    assert state(kubeapi, "a", "borrower") == "admitted"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_reclaim_never_takes_from_a_queue_within_its_nominal_quota(kubeapi):
    world(kubeapi, queue("a", 8, reclaim="Any"), queue("b", 8, reclaim="Any"))
    job(kubeapi, "a", "own", 8)
    job(kubeapi, "b", "more", 9)  # over b's nominal: not a reclaim
    assert state(kubeapi, "b", "more").startswith("pending:")
    assert state(kubeapi, "a", "own") == "admitted"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_a_higher_priority_preempts_a_lower_one_within_its_queue(kubeapi):
    world(kubeapi, queue("a", 16, within="LowerPriority"))
    job(kubeapi, "a", "low", 16)
    job(kubeapi, "a", "high", 8, priority="high")
    assert state(kubeapi, "a", "high") == "admitted"
    assert state(kubeapi, "a", "low") == "preempted (InClusterQueue)"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_a_namespace_the_selector_does_not_match_stays_pending(kubeapi):
    world(kubeapi, queue("a", 16, team="someone-else"))
    job(kubeapi, "a", "outsider", 1)
    assert state(kubeapi, "a", "outsider") == (
        "pending: Workload namespace doesn't match ClusterQueue selector")
