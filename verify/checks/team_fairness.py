"""Teams share GPUs fairly: a team gets its nominal quota back from a team borrowing it.

A platform check beyond the CNCF checklist (issue #24), against Kueue's cohorts
(kubernetes-sigs/kueue v0.19.2 site/content/en/docs/concepts/cluster_queue.md: "Cohort",
"BorrowingLimit", "LendingLimit", "Preemption"; concepts/preemption.md). Cases:

1. two ClusterQueues share a cohort: team B's queue has nominal GPU quota of a flavor and
   team A's queue may borrow it (the queue that can take the most of the cohort);
2. the probe's namespaces, one selected by each queue, with a LocalQueue in each (and, for
   a DRA quota of Kueue's ``deviceClassMappings``, a one-device ResourceClaimTemplate);
3. team A borrows the whole cohort: a Job of A using everything A may use of the flavor is
   admitted (its queue's usage above its nominal quota);
4. team B's Job within B's nominal quota is admitted within ``reclaim_timeout``, by
   preempting A's borrowing workload (its ``Preempted`` condition, reason
   ``InCohortReclamation`` or ``InCohortFairSharing``: apis/kueue/v1beta2 workload_types.go).

Without ``preemption.reclaimWithinCohort`` (Kueue's default ``Never``) B's job waits for as
long as A's runs: the check FAILs and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from ..probe import Context, Fail, Probe, ProbeError, Skip
from ..probes import _gpus, _kueue, _pods

KUEUE = "kueue.x-k8s.io"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_LABEL = "aicp.dev/verify-team-job"
# Namespaces aicp's Kueue manages carry this label (addons/kueue.py
# managedJobsNamespaceSelector); a Job with a queue label is managed whatever its namespace
# (kueue v0.19.2 apis/config/v1beta2/configuration_types.go ManagedJobsNamespaceSelector).
MANAGED_LABEL = "aicp.dev/kueue-managed"
METADATA_NAME = "kubernetes.io/metadata.name"
# Preempted condition reasons of a reclaim (kueue v0.19.2 pkg/scheduler/preemption
# preemption.go HumanReadablePreemptionReasons).
RECLAIM_REASONS = ("InCohortReclamation", "InCohortFairSharing",
                   "InCohortReclaimWhileBorrowing")


@dataclass
class _Pair:
    api: str
    mapped: dict[str, str]  # DRA: quota resource name -> DeviceClass (deviceClassMappings)
    cohort: str
    flavor: str
    resource: str
    a: dict  # the borrowing team's ClusterQueue
    b: dict  # the team reclaiming its nominal quota
    a_gpus: int = 0
    b_gpus: int = 0
    ns: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)

    def name(self, team: str) -> str:
        return (self.a if team == "a" else self.b)["metadata"]["name"]


class TeamFairness(Probe):
    id = "team_fairness"
    category = "platform"
    mutating = True
    title = "A team gets its GPU quota back from a team borrowing the cohort"
    # Admission of small pods on free quota: the same two minutes gang_scheduling allows
    # (verify/probes/gang_scheduling.py admit_timeout). Kueue preempts in the scheduling
    # cycle that finds the reclaimer does not fit, and admits it once the victims' quota is
    # released (concepts/preemption.md), so the same bound holds for the reclaim.
    timeouts = {"admit_timeout": 120.0, "reclaim_timeout": 120.0, "poll": 2.0}

    def cases(self, ctx: Context) -> str:
        pair = _two_cluster_queues_share_a_cohort(ctx)
        _a_namespace_and_local_queue_per_team(ctx, pair)
        _team_a_borrows_the_whole_cohort(ctx, pair)
        waited = _team_b_within_its_quota_is_admitted_by_reclaiming(ctx, pair)
        return (f"cohort {pair.cohort}: with ClusterQueue {pair.name('a')} borrowing all "
                f"{pair.a_gpus} {pair.resource} of flavor {pair.flavor}, a {pair.b_gpus}-GPU "
                f"job of {pair.name('b')} (within its nominal quota) was admitted in "
                f"{waited:.0f}s by preempting the borrower")


# 1 -------------------------------------------------------------------------------------
def _two_cluster_queues_share_a_cohort(ctx: Context) -> _Pair:
    with ctx.step("find two ClusterQueues sharing a cohort"):
        api = next((f"{KUEUE}/{v}" for v in ("v1beta2", "v1beta1")
                    if ctx.kube.resources(f"{KUEUE}/{v}")), None)
        if api is None:
            raise Skip("Kueue (kueue.x-k8s.io) is not served: no queues for teams to share")
        mapped = _kueue.device_class_mappings(ctx)
        queues = ctx.kube.request("GET", f"/apis/{api}/clusterqueues").get("items", [])
        cohorts: dict[str, list[dict]] = {}
        for cq in sorted(queues, key=lambda q: q["metadata"]["name"]):
            cohort = _kueue.cohort(cq)
            if cohort and not _pins_names(cq):
                cohorts.setdefault(cohort, []).append(cq)
        ctx.observe("cohorts", {c: [q["metadata"]["name"] for q in qs]
                                for c, qs in cohorts.items()})
        for cohort, members in sorted(cohorts.items()):
            pair = _pick(api, mapped, cohort, members)
            if pair is not None:
                ctx.observe("pair", {"cohort": cohort, "flavor": pair.flavor,
                                     "resource": pair.resource, "borrower": pair.name("a"),
                                     "reclaimer": pair.name("b"), "borrowerGPUs": pair.a_gpus,
                                     "reclaimerGPUs": pair.b_gpus})
                return pair
        raise Fail(f"no two ClusterQueues with GPU quota share a cohort "
                   f"({len(queues)} ClusterQueues, cohorts: "
                   f"{', '.join(sorted(cohorts)) or 'none'}): one team's jobs can hold every "
                   "GPU while another's wait, or GPUs lie idle in a queue no other team can "
                   "borrow from")


def _pick(api: str, mapped: dict[str, str], cohort: str,
          members: list[dict]) -> _Pair | None:
    for b in members:
        for flavor, resource, quota in _gpu_quotas(b, mapped):
            if quota["nominal"] < 1:
                continue
            best: tuple[int, dict] | None = None
            for a in members:
                if a is b:
                    continue
                usable = _usable(a, members, flavor, resource, mapped)
                if usable > (best[0] if best else 0):
                    best = (usable, a)
            if best is None:
                continue
            reserved = sum(_kueue.reserved(m, flavor, resource) for m in members)
            if reserved:
                raise ProbeError(f"cohort {cohort} already holds {reserved} {resource} of "
                                 f"flavor {flavor}: the check needs it idle to make one team "
                                 "borrow all of it")
            return _Pair(api, mapped, cohort, flavor, resource, best[1], b, a_gpus=best[0],
                         b_gpus=int(quota["nominal"]))
    return None


def _gpu_quotas(cq: dict, mapped: dict[str, str]):
    for group in (cq.get("spec") or {}).get("resourceGroups") or []:
        for flavor in group.get("flavors") or []:
            for r in flavor.get("resources") or []:
                if _gpus.is_gpu_resource(r["name"]) or r["name"] in mapped:
                    yield flavor["name"], r["name"], _quota(r)


def _quota(entry: dict | None) -> dict[str, Any]:
    entry = entry or {}
    nominal = parse_quantity(entry.get("nominalQuota", 0))
    lending = entry.get("lendingLimit")
    borrowing = entry.get("borrowingLimit")
    return {"nominal": nominal,
            "lendable": nominal if lending is None else min(nominal, parse_quantity(lending)),
            "borrowing": None if borrowing is None else parse_quantity(borrowing)}


def _quota_of(cq: dict, flavor: str, resource: str, mapped: dict[str, str]) -> dict[str, Any]:
    for f, r, q in _gpu_quotas(cq, mapped):
        if (f, r) == (flavor, resource):
            return q
    return _quota(None)


def _usable(a: dict, members: list[dict], flavor: str, resource: str,
            mapped: dict[str, str]) -> int:
    """What queue ``a`` may hold of the flavor with the cohort idle: its nominal quota plus
    what the others lend, up to its borrowingLimit (cluster_queue.md)."""
    own = _quota_of(a, flavor, resource, mapped)
    if not any((f, r) == (flavor, resource) for f, r, _ in _gpu_quotas(a, mapped)):
        return 0
    lent = sum((_quota_of(m, flavor, resource, mapped)["lendable"]
                for m in members if m is not a), Decimal(0))
    borrow = lent if own["borrowing"] is None else min(lent, own["borrowing"])
    return int(own["nominal"] + borrow)


def _pins_names(cq: dict) -> bool:
    """A selector on kubernetes.io/metadata.name can never select the probe's namespace."""
    selector = (cq.get("spec") or {}).get("namespaceSelector") or {}
    return METADATA_NAME in (selector.get("matchLabels") or {}) or any(
        e.get("key") == METADATA_NAME for e in selector.get("matchExpressions") or [])


# 2 -------------------------------------------------------------------------------------
def _a_namespace_and_local_queue_per_team(ctx: Context, pair: _Pair) -> None:
    with ctx.step("create a namespace and LocalQueue per team"):
        for team, cq in (("a", pair.a), ("b", pair.b)):
            ns = pair.ns[team] = ctx.namespace(team)
            labels = {MANAGED_LABEL: "true", **_selected_by(cq)}
            current = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}")
            current["metadata"].setdefault("labels", {}).update(labels)
            ctx.kube.request("PUT", f"/api/v1/namespaces/{ns}", body=current)
            _pods.create(ctx, f"/apis/{pair.api}/namespaces/{ns}/localqueues", {
                "apiVersion": pair.api, "kind": "LocalQueue", "metadata": {"name": "team"},
                "spec": {"clusterQueue": cq["metadata"]["name"]}}, ns)
            ctx.observe(f"namespace{team.upper()}", {"name": ns, "labels": labels})


def _selected_by(cq: dict) -> dict[str, str]:
    selector = (cq.get("spec") or {}).get("namespaceSelector") or {}
    labels = dict(selector.get("matchLabels") or {})
    for e in selector.get("matchExpressions") or []:
        if e.get("operator") == "In" and e.get("values"):
            labels[e["key"]] = e["values"][0]
        elif e.get("operator") == "Exists":
            labels.setdefault(e["key"], "true")
    return labels


# 3 -------------------------------------------------------------------------------------
def _team_a_borrows_the_whole_cohort(ctx: Context, pair: _Pair) -> None:
    with ctx.step("team A borrows the whole cohort"):
        job = pair.jobs["a"] = _job(ctx, pair, "a", pair.a_gpus)
        timeout = ctx.timeout("admit_timeout")
        admitted = ctx.wait_for("team A's job admitted",
                                lambda: _is_admitted(_workload(ctx, pair, "a", job)),
                                timeout=timeout, interval=ctx.timeout("poll"), first=0.2)
        wl = _workload(ctx, pair, "a", job)
        ctx.observe("borrowerWorkload", _conditions(wl))
        if not ctx.check(f"a {pair.a_gpus}-GPU job of {pair.name('a')} (all it may use of "
                         "the cohort) is admitted", bool(admitted), _pending(wl)):
            raise ProbeError(f"team A's job of {pair.a_gpus} {pair.resource} (its nominal "
                             f"quota plus what the cohort lends) was not admitted within "
                             f"{timeout:g}s ({_pending(wl)}): no borrowing to reclaim from")


# 4 -------------------------------------------------------------------------------------
def _team_b_within_its_quota_is_admitted_by_reclaiming(ctx: Context, pair: _Pair) -> float:
    with ctx.step("team B's job within its nominal quota reclaims it"):
        start = time.monotonic()
        job = pair.jobs["b"] = _job(ctx, pair, "b", pair.b_gpus)
        timeout = ctx.timeout("reclaim_timeout")
        admitted = ctx.wait_for("team B's job admitted",
                                lambda: _is_admitted(_workload(ctx, pair, "b", job)),
                                timeout=timeout, interval=ctx.timeout("poll"), first=0.2)
        waited = time.monotonic() - start
        wl_b = _workload(ctx, pair, "b", job)
        wl_a = _workload(ctx, pair, "a", pair.jobs["a"])
        preempted = _condition(wl_a, "Preempted")
        evicted = _condition(wl_a, "Evicted")
        ctx.observe("reclaimerWorkload", _conditions(wl_b))
        ctx.observe("borrowerAfter", _conditions(wl_a))
        ctx.observe("reclaimSeconds", round(waited, 1))
        ok = ctx.check(f"a {pair.b_gpus}-GPU job of {pair.name('b')} within its nominal quota "
                       f"is admitted within {timeout:g}s", bool(admitted), _pending(wl_b))
        by_reclaim = ctx.check(
            "the borrower's workload was preempted to reclaim the quota",
            preempted is not None and preempted.get("status") == "True"
            and preempted.get("reason") in RECLAIM_REASONS,
            f"Preempted={preempted.get('status')} {preempted.get('reason')}: "
            f"{preempted.get('message', '')}" if preempted else "no Preempted condition")
        if not ok:
            policy = ((pair.b.get("spec") or {}).get("preemption") or {}).get(
                "reclaimWithinCohort", "Never")
            why = (f"ClusterQueue {pair.name('b')} has preemption.reclaimWithinCohort "
                   f"{policy} (Kueue's default is Never): a team never gets its quota back "
                   "while another borrows it; set it to Any or LowerPriority"
                   if policy == "Never" else _pending(wl_b))
            raise Fail(f"team B's job of {pair.b_gpus} {pair.resource}, within the nominal "
                       f"quota of ClusterQueue {pair.name('b')}, was not admitted within "
                       f"{timeout:g}s while {pair.name('a')} borrowed the cohort: {why}")
        if not by_reclaim:
            raise Fail(f"team B's job was admitted but no borrowing workload was preempted "
                       f"({evicted or 'no Evicted condition'}): the cohort had room, so "
                       "reclaiming was not shown", partial=True)
        return waited


# Jobs and Workloads ------------------------------------------------------------------
def _job(ctx: Context, pair: _Pair, team: str, gpus: int) -> dict:
    """A suspended Job of ``gpus`` sleeping pods holding one GPU each, in the team's queue."""
    ns = pair.ns[team]
    container: dict[str, Any] = {"name": "main", "image": ctx.image("busybox"),
                                 "command": ["sleep", "3600"]}
    claims: list[dict] = []
    device_class = pair.mapped.get(pair.resource)
    if device_class:
        # A DRA quota: one device of the mapped DeviceClass per pod, by claim template.
        _pods.create(ctx, f"/apis/{_pods.DRA}/namespaces/{ns}/resourceclaimtemplates", {
            "apiVersion": _pods.DRA, "kind": "ResourceClaimTemplate",
            "metadata": {"name": "gpu"},
            "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                "deviceClassName": device_class, "allocationMode": "ExactCount",
                "count": 1}}]}}}}, ns)
        container["resources"] = {"claims": [{"name": "gpu"}]}
        claims = [{"name": "gpu", "resourceClaimTemplateName": "gpu"}]
    else:
        container["resources"] = {"limits": {pair.resource: "1"}}
    return _pods.create(ctx, f"/apis/batch/v1/namespaces/{ns}/jobs", {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"team-{team}", "labels": {QUEUE_LABEL: "team"}},
        "spec": {"parallelism": gpus, "completions": gpus, "suspend": True, "backoffLimit": 0,
                 "template": {"metadata": {"labels": {**ctx.labels, JOB_LABEL: team}},
                              "spec": {"restartPolicy": "Never",
                                       "terminationGracePeriodSeconds": 0,
                                       "tolerations": [{"operator": "Exists"}],
                                       "containers": [container],
                                       **({"resourceClaims": claims} if claims else {})}}}},
        ns)


def _workload(ctx: Context, pair: _Pair, team: str, job: dict) -> dict | None:
    uid = job["metadata"]["uid"]
    items = ctx.kube.request("GET", f"/apis/{pair.api}/namespaces/{pair.ns[team]}/workloads")
    for wl in items.get("items", []):
        if any(ref.get("uid") == uid for ref in wl["metadata"].get("ownerReferences") or []):
            return wl
    return None


def _condition(wl: dict | None, kind: str) -> dict | None:
    for c in ((wl or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def _is_admitted(wl: dict | None) -> bool:
    cond = _condition(wl, "Admitted")
    return cond is not None and cond.get("status") == "True"


def _conditions(wl: dict | None) -> list[str]:
    if wl is None:
        return ["no Workload"]
    return [f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip()
            for c in (wl.get("status") or {}).get("conditions") or []]


def _pending(wl: dict | None) -> str:
    if wl is None:
        return "no Workload created for the Job"
    cond = _condition(wl, "QuotaReserved")
    if _is_admitted(wl):
        return f"Workload {wl['metadata']['name']} admitted"
    if cond:
        return (f"Workload {wl['metadata']['name']} QuotaReserved={cond.get('status')}: "
                f"{cond.get('message', '')}")
    return f"Workload {wl['metadata']['name']} has no admission condition yet"


