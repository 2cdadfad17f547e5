"""gang_scheduling: a job's pods start all together or not at all.

With Kueue (its strong semantic check), against a ClusterQueue's quota from a LocalQueue in
the probe's own namespace, the cases in order:

1. a gang scheduler is served: Kueue, else a PodGroup scheduler (below); neither is ERROR.
2. a ClusterQueue has free quota for a gang: GPU quota where two GPUs are free, else CPU
   quota (a CPU gang: a queue without GPU quota, or a one-GPU cluster). A ClusterQueue whose
   ``namespaceSelector`` names namespaces by ``kubernetes.io/metadata.name`` cannot admit the
   probe's namespace (the API server sets that label; no relabelling meets it): ERROR at once.
3. a LocalQueue in the probe's namespace, labelled so Kueue's manager and the ClusterQueue
   select it.
4. (a) a gang within the free quota runs all together: a Job of N pods that fits is admitted
   and all N pods run at once;
5. (b) a job over the free quota starts none of its pods: while (a) holds its quota, a Job
   whose total exceeds what is left starts no pod and its Workload stays unadmitted;
6. (c) deleting the gang releases its quota: (b) is then admitted.

Quota is the ClusterQueue's across all its flavors: Kueue gives a Job's pods one flavor per
resource, trying the flavors in order and taking the first that fits (Kueue docs "Cluster
Queue", ``flavorFungibility`` defaults; kubernetes-sigs/kueue pkg/scheduler/flavorassigner),
so a job sized against one flavor may be admitted, rightly, to another. Where the quota'd
GPU resource has several flavors, both jobs are pinned by ``nodeSelector`` to the flavor
with the most free quota, since Kueue assigns only a flavor whose ``nodeLabels`` match the
pod's node selector (Kueue docs "Resource Flavor", "ResourceFlavor label matching"), and
the quota of every flavor is in the evidence (``quotaByFlavor``). A ClusterQueue in a
cohort may borrow what the cohort's other queues leave unused, up to its
``borrowingLimit`` and their ``lendingLimit`` (Kueue docs "Cluster Queue", "Borrowing" and
"LendingLimit"): that is its quota too, so the jobs are sized against the free quota plus
what it can borrow (``borrowable``).

With a PodGroup scheduler instead (KAI ``scheduling.run.ai/v2alpha2``, Volcano
``scheduling.volcano.sh/v1beta1``), the WG test's shape on CPU pods
(kubernetes-sigs/ai-conformance KAR-0053 "Automated Tests"):

1. a full PodGroup runs together: ``minMember: 2`` and its 2 pods all run;
2. a PodGroup short of its minMember starts no pod: ``minMember: 3`` and only 2 pods start
   none of them within the wait.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from ..probe import Context, Fail, Probe, ProbeError
from . import _gpus, _kueue, _pods

KUEUE = "kueue.x-k8s.io"
VOLCANO = "scheduling.volcano.sh"
METADATA_NAME = "kubernetes.io/metadata.name"
# PodGroup schedulers: (name, API, schedulerName, how a pod joins its group, queue).
# KAI: NVIDIA/aicr@bc05c6b validators/conformance/gang_scheduling_check.go (PodGroup
# minMember/queue "default-queue", schedulerName kai-scheduler, pod labels
# pod-group.scheduling.run.ai/name) and KAI's docs (annotation pod-group-name, label
# kai.scheduler/queue). Volcano: annotation scheduling.k8s.io/group-name, schedulerName volcano,
# queue "default" (volcano-sh/volcano docs).
PODGROUP_SCHEDULERS = (
    ("KAI scheduler", "scheduling.run.ai/v2alpha2", "kai-scheduler", "default-queue",
     lambda pg, queue: ({"pod-group.scheduling.run.ai/name": pg,
                         "pod-group.scheduling.run.ai/group-id": pg,
                         "kai.scheduler/queue": queue}, {"pod-group-name": pg})),
    ("Volcano", "scheduling.volcano.sh/v1beta1", "volcano", "default",
     lambda pg, queue: ({}, {"scheduling.k8s.io/group-name": pg})),
)
PODGROUP_MEMBERS = 2
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GANG_LABEL = "aicp.dev/verify-gang"
# Namespaces aicp's Kueue manages carry this label (addons/kueue.py, managedJobsNamespaceSelector).
MANAGED_LABEL = "aicp.dev/kueue-managed"

GANG_PODS = 4            # pods of job (a), one GPU each (fewer when the free quota is smaller)


class GangScheduling(Probe):
    id = "gang_scheduling"
    category = "schedulingOrchestration"
    mutating = True
    title = "All-or-nothing admission of multi-pod GPU jobs"
    # aicr (NVIDIA/aicr@bc05c6b pkg/defaults/timeouts.go) gives gang pods GangTestPodTimeout
    # 5 min to complete, each pulling a CUDA image; kOps waits 300 s for its Kueue job to
    # complete (kubernetes/kops@268927e tests/e2e/scenarios/ai-conformance/validators/
    # scheduling-orchestration/gangscheduling/gangscheduling_test.go). These pods are busybox,
    # so 2 min. The WG test (KAR-0053) leaves the negative case's wait configurable.
    timeouts = {
        "admit_timeout": 120.0,    # (a) admitted, all its pods Running (small pods, free quota)
        "over_quota_wait": 30.0,   # (b) watched for pods starting
        "release_timeout": 120.0,  # (c) (b) admitted once (a) is gone
        "poll": 2.0,
    }

    def cases(self, ctx: Context) -> str:
        found = _a_gang_scheduler_is_served(ctx)
        if not isinstance(found, str):  # a PodGroup scheduler: the WG test's two cases
            groups = _podgroups_in_the_probes_namespace(ctx, *found)
            _a_full_podgroup_runs_together(ctx, groups)
            _a_podgroup_short_of_its_min_member_starts_no_pod(ctx, groups)
            return (f"{groups.scheduler}: a PodGroup of {PODGROUP_MEMBERS} pods ran together; "
                    f"one with minMember {PODGROUP_MEMBERS + 1} and {PODGROUP_MEMBERS} pods "
                    f"started none within {ctx.timeout('over_quota_wait'):g}s")
        kueue = _a_cluster_queue_has_free_quota_for_a_gang(ctx, found)
        _a_local_queue_in_the_probes_namespace(ctx, kueue)
        _a_gang_within_the_free_quota_runs_all_together(ctx, kueue)
        _a_job_over_the_free_quota_starts_none_of_its_pods(ctx, kueue)
        _deleting_the_gang_releases_its_quota(ctx, kueue)
        return (f"Kueue ClusterQueue {kueue.name}: a {kueue.n}-pod gang ran together, a job "
                f"exceeding the free quota started 0 of {kueue.over_pods} pods until the "
                "gang's quota was released, then was admitted")


def _a_gang_scheduler_is_served(ctx: Context) -> str | tuple:
    """Kueue's API (``kueue.x-k8s.io/<version>``), else the served PodGroup scheduler's
    ``PODGROUP_SCHEDULERS`` entry; neither is ERROR."""
    with ctx.step("detect a gang scheduler"):
        version = _served_version(ctx, KUEUE, ("v1beta2", "v1beta1"))
        ctx.observe("kueueVersion", version)
        if version is not None:
            return f"{KUEUE}/{version}"
        for sched in PODGROUP_SCHEDULERS:
            if "podgroups" in {r["name"] for r in ctx.kube.resources(sched[1])}:
                return sched
        raise ProbeError("no gang scheduler found: neither Kueue (kueue.x-k8s.io), KAI "
                         "(scheduling.run.ai) nor Volcano (scheduling.volcano.sh) is served")


# Kueue ---------------------------------------------------------------------------------
@dataclass
class _Kueue:
    """What the Kueue cases share: the ClusterQueue, the two jobs' sizes, the namespace."""

    api: str                    # kueue.x-k8s.io/<version>
    cq: dict                    # the ClusterQueue
    config: dict                # Kueue's manager Configuration ({} when unreadable)
    resource: str               # the quota'd resource the gang holds: a GPU's, or cpu
    quota: Decimal              # the flavor's nominal quota of it
    free: int                   # what is left of it
    device_class: str | None    # the DeviceClass GPUs are claimed from (DRA quota)
    node_selector: dict = field(default_factory=dict)  # pins the jobs to one flavor
    n: int = 0                  # pods of the gang (a), one ``resource`` each
    per_pod: int = 0            # ``resource`` per pod of the over-quota job (b)
    over_pods: int = 0          # pods of (b)
    ns: str = ""
    gang: dict = field(default_factory=dict)  # the Jobs as created
    over: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cq["metadata"]["name"]


def _a_cluster_queue_has_free_quota_for_a_gang(ctx: Context, api: str) -> _Kueue:
    """A ClusterQueue that can admit the probe's namespace with 2 or more free GPUs (else
    CPUs), and the two jobs sized to it."""
    with ctx.step("find a ClusterQueue with quota"):
        config = _kueue.manager_config(ctx)
        queue = _pick_cluster_queue(ctx, api, config)
        if isinstance(queue, str):
            raise ProbeError(queue)
        cq, resource, flavor_quota, free, device_class, pin = queue
        kueue = _Kueue(api, cq, config, resource, flavor_quota, free, device_class, pin)
        name = kueue.name
        ctx.observe("clusterQueue", {"name": name, "resource": resource,
                                     "quota": str(flavor_quota), "free": str(free)})
        if pin:
            ctx.observe("pinnedToFlavor", pin)
        pinned = _names_namespaces(cq)
        if pinned:
            raise ProbeError(f"ClusterQueue {name} selects namespaces by {METADATA_NAME} "
                             f"({pinned}): the probe's own namespace can never match it "
                             "(the API server sets that label to the namespace's name); "
                             "select namespaces by another label, or add a ClusterQueue "
                             "for verification")
        if free < 2:
            raise ProbeError(f"ClusterQueue {name} has {free} free {resource} of "
                             f"{flavor_quota}: a gang needs at least 2")
    n = int(min(GANG_PODS, free))
    if resource == "cpu":
        # A CPU gang: n pods of 1 CPU; the waiting job's 2 pods total just more than is
        # left while (a) runs, and fit once it is gone.
        per_pod, over_pods = -(-(int(free) - n + 1) // 2), 2
    else:
        per_pod = min(n, _max_gpus_per_node(ctx, resource, device_class, pin) or 1)
        over_pods = int(free // per_pod)  # total in (free - n, free]: fits only without (a)
    kueue.n, kueue.per_pod, kueue.over_pods = n, per_pod, over_pods
    ctx.observe("jobs", {"gang": f"{n} pods x 1 {resource}",
                         "overQuota": f"{over_pods} pods x {per_pod} {resource}"})
    return kueue


def _a_local_queue_in_the_probes_namespace(ctx: Context, kueue: _Kueue) -> None:
    """The probe's namespace, selected by Kueue's manager and the ClusterQueue, with a
    LocalQueue onto it (and the DRA claim templates the jobs' pods use)."""
    with ctx.step("create namespace and LocalQueue"):
        kueue.ns = ns = ctx.namespace()
        _label_namespace(ctx, ns, kueue.cq, kueue.config)
        _pods.create(ctx, f"/apis/{kueue.api}/namespaces/{ns}/localqueues", {
            "apiVersion": kueue.api, "kind": "LocalQueue", "metadata": {"name": "gang"},
            "spec": {"clusterQueue": kueue.name}}, ns)
        if kueue.device_class:
            for count in sorted({1, kueue.per_pod}):
                _claim_template(ctx, ns, f"gpu-{count}", kueue.device_class, count)


def _a_gang_within_the_free_quota_runs_all_together(ctx: Context, kueue: _Kueue) -> None:
    """(a) A Job of n pods within the free quota is admitted and all n pods run at once."""
    api, ns, n, name = kueue.api, kueue.ns, kueue.n, kueue.name
    timeout = ctx.timeout("admit_timeout")
    with ctx.step("(a) submit a gang that fits"):
        kueue.gang = gang = _job(ctx, ns, "gang", n, kueue.resource, 1, kueue.device_class,
                                 kueue.node_selector)
        admitted = ctx.wait_for(
            "the gang admitted with all pods Running",
            lambda: _ended(ctx, ns, "gang") or (
                _admitted(ctx, api, ns, gang) and _running(ctx, ns, "gang") >= n),
            timeout=timeout, interval=ctx.timeout("poll"))
        wl = _workload(ctx, api, ns, gang)
        running = _running(ctx, ns, "gang")
        ctx.artifact("workload-gang.json", json.dumps(wl, indent=2))
        ended = _ended(ctx, ns, "gang")
        if ended:
            raise ProbeError(f"pods of the gang ended before all {n} ran together "
                             f"({', '.join(ended)}): `sleep 3600` in "
                             f"{ctx.image('busybox')} should keep running")
        if not admitted:
            if wl is None or not _is_admitted(wl):
                raise ProbeError(f"a {n}-pod job within the free quota of ClusterQueue "
                                 f"{name} was not admitted within {timeout:g}s "
                                 f"({_pending_reason(wl)})")
            raise ProbeError(f"the admitted {n}-pod job had {running} of {n} pods Running "
                             f"after {timeout:g}s: not enough schedulable GPU nodes "
                             "for the quota")
        ctx.check(f"a {n}-pod job within quota is admitted with all pods Running together",
                  True, f"{running}/{n} Running, Workload "
                  f"{wl['metadata']['name'] if wl else '(gone since)'} admitted")


def _a_job_over_the_free_quota_starts_none_of_its_pods(ctx: Context, kueue: _Kueue) -> None:
    """(b) While (a) holds its quota, a Job needing more than is left starts no pod and its
    Workload stays unadmitted, watched for the whole ``over_quota_wait``."""
    api, ns, name = kueue.api, kueue.ns, kueue.name
    with ctx.step("(b) submit a job exceeding the free quota"):
        kueue.over = over = _job(ctx, ns, "over", kueue.over_pods, kueue.resource,
                                 kueue.per_pod, kueue.device_class, kueue.node_selector)
        most = {"started": 0, "admitted": False}

        def observe_over() -> bool:
            most["started"] = max(most["started"], _started(ctx, ns, "over"))
            most["admitted"] = most["admitted"] or _admitted(ctx, api, ns, over)
            return False
        ctx.wait_for("pods of the over-quota job (expecting none)", observe_over,
                     timeout=ctx.timeout("over_quota_wait"), interval=ctx.timeout("poll"))
        wl_over = _workload(ctx, api, ns, over)
        ctx.observe("overQuotaPending", _pending_reason(wl_over))
        ended = _ended(ctx, ns, "gang")
        if ended:
            # A finished gang gives its quota back: what (b) saw proves nothing.
            raise ProbeError(f"pods of the gang ended while the over-quota job waited "
                             f"({', '.join(ended)}), releasing its quota: `sleep 3600` in "
                             f"{ctx.image('busybox')} should keep running")
        if wl_over is not None:
            ctx.artifact("workload-over.json", json.dumps(wl_over, indent=2))
        started, total = most["started"], kueue.over_pods
        no_partial = ctx.check("a job exceeding the free quota starts none of its pods",
                               started == 0, f"{started} of {total} pods started")
        held = ctx.check("its Workload is not admitted while the gang holds the quota",
                         not most["admitted"], _pending_reason(wl_over))
        if not no_partial and started < total:
            raise Fail(f"{started} of {total} pods started for a job exceeding the "
                       f"quota of ClusterQueue {name} (no all-or-nothing)")
        if not (no_partial and held):
            if _kueue.cohort(kueue.cq):
                raise ProbeError(f"the over-quota job was admitted while the gang held its "
                                 f"quota: ClusterQueue {name} may borrow from cohort "
                                 f"{_kueue.cohort(kueue.cq)}, so no over-quota condition could be "
                                 "made")
            raise Fail(f"a job needing {total * kueue.per_pod} {kueue.resource} was admitted "
                       f"while only {kueue.free - kueue.n} of ClusterQueue {name}'s quota "
                       f"was free ({started} of {total} pods started)")


def _deleting_the_gang_releases_its_quota(ctx: Context, kueue: _Kueue) -> None:
    """(c) Once (a) is deleted, its quota goes back and (b) is admitted."""
    api, ns, over = kueue.api, kueue.ns, kueue.over
    timeout = ctx.timeout("release_timeout")
    with ctx.step("(c) delete the gang, expect its quota released"):
        ctx.cleanup.unwind(only=[o for o in ctx.cleanup.pending()
                                 if o.kind == "Job" and o.name == "gang"])
        released = ctx.wait_for("the over-quota job admitted once the gang is gone",
                                lambda: _admitted(ctx, api, ns, over),
                                timeout=timeout, interval=ctx.timeout("poll"))
        usage = _cq_usage(ctx, api, kueue.name, kueue.resource)
        ctx.observe("clusterQueueReservedAfterRelease", usage)
        if not ctx.check("deleting the gang releases its quota: the waiting job is admitted",
                         bool(released), _pending_reason(_workload(ctx, api, ns, over))):
            raise Fail(f"after the {kueue.n}-pod gang was deleted, the waiting job was not "
                       f"admitted within {timeout:g}s "
                       f"({_pending_reason(_workload(ctx, api, ns, over))})", partial=True)


# PodGroup schedulers ------------------------------------------------------------------
@dataclass(frozen=True)
class _PodGroups:
    """A PodGroup scheduler as the two cases use it, and the probe's namespace."""

    scheduler: str        # "KAI scheduler", "Volcano"
    api: str
    scheduler_name: str   # the pods' schedulerName
    queue: str
    membership: Callable[[str, str], tuple[dict, dict]]  # (group, queue) -> labels, annotations
    ns: str

    def submit(self, ctx: Context, group: str, min_member: int) -> None:
        """A PodGroup of ``min_member`` and ``PODGROUP_MEMBERS`` small CPU pods in it."""
        _podgroup(ctx, self.api, self.ns, group, min_member, self.queue)
        for i in range(PODGROUP_MEMBERS):
            _member(ctx, self.ns, group, i, self.scheduler_name, self.queue, self.membership)


def _podgroups_in_the_probes_namespace(ctx: Context, scheduler: str, api: str,
                                       scheduler_name: str, default_queue: str,
                                       membership) -> _PodGroups:
    ctx.observe("scheduler", scheduler)
    ns = ctx.namespace()
    return _PodGroups(scheduler, api, scheduler_name, _podgroup_queue(ctx, api, default_queue),
                      membership, ns)


def _a_full_podgroup_runs_together(ctx: Context, groups: _PodGroups) -> None:
    """A PodGroup with ``minMember`` of its own size runs all of its pods."""
    timeout = ctx.timeout("admit_timeout")
    with ctx.step(f"({groups.scheduler}) a PodGroup of {PODGROUP_MEMBERS} pods runs together"):
        groups.submit(ctx, "gang", PODGROUP_MEMBERS)
        together = ctx.wait_for("every pod of the PodGroup Running",
                                lambda: _running(ctx, groups.ns, "gang") >= PODGROUP_MEMBERS,
                                timeout=timeout, interval=ctx.timeout("poll"))
        running = _running(ctx, groups.ns, "gang")
        if not together:
            raise ProbeError(f"a {PODGROUP_MEMBERS}-pod PodGroup (minMember "
                             f"{PODGROUP_MEMBERS}) had {running} of {PODGROUP_MEMBERS} pods "
                             f"Running after {timeout:g}s with {groups.scheduler}: cannot "
                             "decide (no room for two small CPU pods?)")
        ctx.check(f"a PodGroup with minMember {PODGROUP_MEMBERS} and its pods runs together",
                  True, f"{running}/{PODGROUP_MEMBERS} Running")


def _a_podgroup_short_of_its_min_member_starts_no_pod(ctx: Context,
                                                      groups: _PodGroups) -> None:
    """A PodGroup with ``minMember`` one more than its pods starts none of them, watched
    for the whole ``over_quota_wait``."""
    short = PODGROUP_MEMBERS + 1
    with ctx.step(f"({groups.scheduler}) a PodGroup short of its minMember starts no pod"):
        groups.submit(ctx, "short", short)
        most = {"started": 0}

        def observe() -> bool:
            most["started"] = max(most["started"], _started(ctx, groups.ns, "short"))
            return False
        ctx.wait_for("pods of the short PodGroup (expecting none)", observe,
                     timeout=ctx.timeout("over_quota_wait"), interval=ctx.timeout("poll"))
        if not ctx.check(f"a PodGroup with minMember {short} and {PODGROUP_MEMBERS} pods starts "
                         "none of them", most["started"] == 0,
                         f"{most['started']} of {PODGROUP_MEMBERS} pods started"):
            raise Fail(f"{most['started']} of {PODGROUP_MEMBERS} pods of a PodGroup "
                       f"needing {short} started with {groups.scheduler} (no all-or-nothing)",
                       partial=True)


def _podgroup_queue(ctx: Context, api: str, default: str) -> str:
    group = api.split("/")[0]
    try:
        names = [q["metadata"]["name"] for q in ctx.kube.request(
            "GET", f"/apis/{api}/queues").get("items", [])]
    except (ApiException, ProbeError):
        names = []
    if not names and group == "scheduling.run.ai":  # KAI's Queue may be served in v2
        try:
            names = [q["metadata"]["name"] for q in ctx.kube.request(
                "GET", f"/apis/{group}/v2/queues").get("items", [])]
        except (ApiException, ProbeError):
            names = []
    return default if default in names or not names else names[0]


def _podgroup(ctx: Context, api: str, ns: str, name: str, members: int, queue: str) -> None:
    _pods.create(ctx, f"/apis/{api}/namespaces/{ns}/podgroups", {
        "apiVersion": api, "kind": "PodGroup", "metadata": {"name": name},
        "spec": {"minMember": members, "queue": queue}}, ns)


def _member(ctx: Context, ns: str, group: str, index: int, scheduler_name: str, queue: str,
            membership) -> None:
    labels, annotations = membership(group, queue)
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{group}-{index}",
                     "labels": {**labels, GANG_LABEL: group}, "annotations": annotations},
        "spec": {"schedulerName": scheduler_name, "restartPolicy": "Never",
                 "terminationGracePeriodSeconds": 0, "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "main", "image": ctx.image("busybox"),
                                 "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m",
                                                            "memory": "16Mi"}}}]}}, ns)


# Discovery ----------------------------------------------------------------------------
def _served_version(ctx: Context, group: str, versions: tuple[str, ...]) -> str | None:
    for version in versions:
        if ctx.kube.resources(f"{group}/{version}"):
            return version
    return None


def _pick_cluster_queue(ctx: Context, api: str, config: dict):
    """(ClusterQueue, GPU resource, its quota, free quota, DeviceClass or None, the node
    selector pinning the jobs to one flavor); the quota across all flavors (module doc)."""
    queues = ctx.kube.request("GET", f"/apis/{api}/clusterqueues").get("items", [])
    mapped = {m.get("name"): (m.get("deviceClassNames") or [None])[0]
              for m in (config.get("resources") or {}).get("deviceClassMappings") or []}
    seen: list[str] = []
    cpu = None
    for cq in queues:
        name = cq["metadata"]["name"]
        if (cq.get("spec") or {}).get("stopPolicy", "None") != "None":
            seen.append(f"{name}: stopped")
            continue
        active = [c for c in (cq.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Active"]
        if active and active[0].get("status") != "True":
            seen.append(f"{name}: not Active ({active[0].get('message', '')})")
            continue
        gpu_free = None
        for group in (cq.get("spec") or {}).get("resourceGroups") or []:
            for resource in group.get("coveredResources") or []:
                gpu = _gpus.is_gpu_resource(resource) or resource in mapped
                if not gpu and resource != "cpu":
                    continue
                flavors = []
                for flavor in group.get("flavors") or []:
                    quota = sum((parse_quantity(r.get("nominalQuota", 0))
                                 for r in flavor.get("resources") or []
                                 if r.get("name") == resource), Decimal(0))
                    if quota > 0:
                        flavors.append((flavor["name"], quota,
                                        int(quota - _kueue.reserved(cq, flavor["name"], resource))))
                if not flavors:
                    continue
                if len(flavors) > 1:
                    ctx.observe("quotaByFlavor", {f"{name}/{resource}": {
                        f: f"{free} free of {quota}" for f, quota, free in flavors}})
                flavor, quota, free = max(flavors, key=lambda f: f[2])
                borrow = _borrowable(cq, queues, flavor, resource)
                if borrow:
                    ctx.observe("borrowable", {f"{name}/{flavor}/{resource}": borrow})
                    free += borrow
                pin: dict = {}
                if len(flavors) > 1:
                    pin = _flavor_labels(ctx, api, flavor)
                    if not pin:
                        seen.append(f"{name}: {resource} has {len(flavors)} flavors and "
                                    f"flavor {flavor} has no nodeLabels to pin a job to it")
                        continue
                found = (cq, resource, quota, free, mapped.get(resource), pin)
                if gpu and free >= 2:
                    return found
                if gpu:
                    gpu_free = free
                elif cpu is None and free >= 2:
                    cpu = found
        seen.append(f"{name}: " + ("no GPU quota" if gpu_free is None
                                   else f"{gpu_free} free GPU (a GPU gang needs 2)"))
    ctx.observe("clusterQueues", seen)
    if cpu is not None:
        ctx.log("no ClusterQueue has 2 free GPUs: the gang is of CPU pods on CPU quota")
        return cpu
    if not queues:
        return "Kueue is installed but no ClusterQueue exists: create one with quota"
    return f"no usable ClusterQueue with GPU or CPU quota ({'; '.join(seen)})"


def _flavor_quota(cq: dict, flavor: str, resource: str) -> dict:
    for group in (cq.get("spec") or {}).get("resourceGroups") or []:
        for f in group.get("flavors") or []:
            if f.get("name") == flavor:
                return next((r for r in f.get("resources") or []
                             if r.get("name") == resource), {})
    return {}


def _borrowable(cq: dict, queues: list[dict], flavor: str, resource: str) -> int:
    """What ``cq`` can borrow of ``flavor``'s ``resource`` from its cohort now: the other
    members' unused nominal quota within their lendingLimit, capped by cq's
    borrowingLimit (module doc). 0 outside a cohort."""
    cohort = _kueue.cohort(cq)
    if not cohort:
        return 0
    lendable = Decimal(0)
    for other in queues:
        if other is cq or _kueue.cohort(other) != cohort:
            continue
        entry = _flavor_quota(other, flavor, resource)
        nominal = parse_quantity(entry.get("nominalQuota", 0))
        limit = parse_quantity(entry["lendingLimit"]) if "lendingLimit" in entry else nominal
        lendable += max(Decimal(0), min(limit, nominal - _kueue.reserved(other, flavor, resource)))
    mine = _flavor_quota(cq, flavor, resource)
    if "borrowingLimit" in mine:
        lendable = min(lendable, parse_quantity(mine["borrowingLimit"]))
    return int(lendable)


def _flavor_labels(ctx: Context, api: str, flavor: str) -> dict:
    try:
        rf = ctx.kube.request("GET", f"/apis/{api}/resourceflavors/{flavor}")
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return dict((rf.get("spec") or {}).get("nodeLabels") or {})


def _names_namespaces(cq: dict) -> str:
    """How the ClusterQueue's namespaceSelector pins kubernetes.io/metadata.name, if it does."""
    selector = (cq.get("spec") or {}).get("namespaceSelector") or {}
    pinned = [f"{METADATA_NAME}={v}" for k, v in (selector.get("matchLabels") or {}).items()
              if k == METADATA_NAME]
    pinned += [f"{METADATA_NAME} {e.get('operator')} {e.get('values') or []}"
               for e in selector.get("matchExpressions") or []
               if e.get("key") == METADATA_NAME and e.get("operator") in ("In", "NotIn")]
    return ", ".join(pinned)


def _cq_usage(ctx: Context, api: str, name: str, resource: str) -> dict:
    cq = ctx.kube.request("GET", f"/apis/{api}/clusterqueues/{name}")
    status = cq.get("status") or {}
    return {key: {e.get("name"): [r for r in e.get("resources") or []
                                  if r.get("name") == resource]
                  for e in status.get(key) or []}
            for key in ("flavorsReservation", "flavorsUsage") if key in status}


def _max_gpus_per_node(ctx: Context, resource: str, device_class: str | None,
                       node_selector: dict | None = None) -> int:
    """The most ``resource`` one node (of the pinned flavor's) offers (1 for DRA-quota'd
    GPUs: one device a claim)."""
    if device_class:
        return 1
    query = {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(node_selector.items()))
             } if node_selector else None
    return max((int(parse_quantity(((n.get("status") or {}).get("allocatable") or {})
                                   .get(resource, 0)))
                for n in ctx.kube.items("/api/v1/nodes", query=query)), default=0)


def _label_namespace(ctx: Context, ns: str, cq: dict, config: dict) -> None:
    """Make the namespace selected by Kueue's manager and by the ClusterQueue."""
    labels = {MANAGED_LABEL: "true"}
    for selector in (config.get("managedJobsNamespaceSelector"),
                     (cq.get("spec") or {}).get("namespaceSelector")):
        selector = selector or {}
        labels.update(selector.get("matchLabels") or {})
        for expr in selector.get("matchExpressions") or []:
            if expr.get("operator") == "In" and expr.get("values"):
                labels[expr["key"]] = expr["values"][0]
            elif expr.get("operator") == "Exists":
                labels.setdefault(expr["key"], "true")
    _merge_labels(ctx, ns, labels)
    ctx.observe("namespaceLabels", labels)


def _merge_labels(ctx: Context, ns: str, labels: dict[str, str]) -> None:
    current = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}")
    current["metadata"].setdefault("labels", {}).update(labels)
    ctx.kube.request("PUT", f"/api/v1/namespaces/{ns}", body=current)


# Jobs and Workloads -------------------------------------------------------------------
def _claim_template(ctx: Context, ns: str, name: str, device_class: str, count: int) -> None:
    _pods.create(ctx, f"/apis/{_pods.DRA}/namespaces/{ns}/resourceclaimtemplates", {
        "apiVersion": _pods.DRA, "kind": "ResourceClaimTemplate", "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{
            "name": "gpu", "exactly": {"deviceClassName": device_class,
                                       "allocationMode": "ExactCount", "count": count}}]}}}},
        ns)


def _job(ctx: Context, ns: str, name: str, pods: int, resource: str, per_pod: int,
         device_class: str | None, node_selector: dict | None = None) -> dict:
    """A suspended Job of ``pods`` sleeping pods, each holding ``per_pod`` GPUs (on the
    nodes of one flavor with ``node_selector``)."""
    container: dict[str, Any] = {"name": "main", "image": ctx.image("busybox"),
                                 "command": ["sleep", "3600"]}
    spec: dict[str, Any] = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                            "tolerations": [{"operator": "Exists"}], "containers": [container]}
    if device_class:
        container["resources"] = {"claims": [{"name": "gpu"}]}
        spec["resourceClaims"] = [{"name": "gpu",
                                   "resourceClaimTemplateName": f"gpu-{per_pod}"}]
    else:
        container["resources"] = {"limits": {resource: str(per_pod)}}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    labels = {**ctx.labels, GANG_LABEL: name}
    return _pods.create(ctx, f"/apis/batch/v1/namespaces/{ns}/jobs", {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: "gang"}},
        "spec": {"parallelism": pods, "completions": pods, "suspend": True,
                 "backoffLimit": 0,
                 "template": {"metadata": {"labels": labels}, "spec": spec}}}, ns)


def _pods_of(ctx: Context, ns: str, job: str) -> list[dict]:
    return ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                            query={"labelSelector": f"{GANG_LABEL}={job}"}).get("items", [])


def _running(ctx: Context, ns: str, job: str) -> int:
    return sum((p.get("status") or {}).get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp") for p in _pods_of(ctx, ns, job))


def _ended(ctx: Context, ns: str, job: str) -> list[str]:
    return [f"{p['metadata']['name']} {p['status']['phase']}" for p in _pods_of(ctx, ns, job)
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]


def _started(ctx: Context, ns: str, job: str) -> int:
    """Pods bound to a node or past Pending: they got resources."""
    return sum(bool((p.get("spec") or {}).get("nodeName"))
               or (p.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")
               for p in _pods_of(ctx, ns, job))


def _workload(ctx: Context, api: str, ns: str, job: dict) -> dict | None:
    uid = job["metadata"]["uid"]
    for wl in ctx.kube.request("GET", f"/apis/{api}/namespaces/{ns}/workloads").get("items", []):
        if any(ref.get("uid") == uid for ref in wl["metadata"].get("ownerReferences") or []):
            return wl
    return None


def _is_admitted(wl: dict | None) -> bool:
    return wl is not None and any(
        c.get("type") == "Admitted" and c.get("status") == "True"
        for c in (wl.get("status") or {}).get("conditions") or [])


def _admitted(ctx: Context, api: str, ns: str, job: dict) -> bool:
    return _is_admitted(_workload(ctx, api, ns, job))


def _pending_reason(wl: dict | None) -> str:
    if wl is None:
        return "no Workload created for the Job"
    conds = {c.get("type"): c for c in (wl.get("status") or {}).get("conditions") or []}
    if _is_admitted(wl):
        return f"Workload {wl['metadata']['name']} admitted"
    cond = conds.get("QuotaReserved") or conds.get("Admitted")
    if cond:
        return (f"Workload {wl['metadata']['name']} {cond['type']}={cond.get('status')}: "
                f"{cond.get('reason', '')} {cond.get('message', '')}".strip())
    return f"Workload {wl['metadata']['name']} has no admission condition yet"
