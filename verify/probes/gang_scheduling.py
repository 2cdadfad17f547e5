"""gang_scheduling: a job's pods start all together or not at all (Kueue).

Against a ClusterQueue with GPU quota, from a LocalQueue in the probe's own namespace:
(a) a Job of N one-GPU pods that fits the free quota is admitted and all N pods run at
once; (b) while (a) holds its quota, a Job whose total exceeds what is left starts none of
its pods and its Workload stays unadmitted; (c) deleting (a) releases the quota: (b) is
then admitted. Volcano clusters are recognised but not driven (ERROR, check by hand).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from ..kube import GPU_RESOURCES
from ..probe import Context, Probe, ProbeError
from ..result import Result
from . import _pods

KUEUE = "kueue.x-k8s.io"
VOLCANO = "scheduling.volcano.sh"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GANG_LABEL = "aicp.dev/verify-gang"
# Namespaces aicp's Kueue manages carry this label (addons/kueue.py, managedJobsNamespaceSelector).
MANAGED_LABEL = "aicp.dev/kueue-managed"
KUEUE_NAMESPACES = ("kueue-system", "kueue")

GANG_PODS = 4            # pods of job (a), one GPU each (fewer when the free quota is smaller)
ADMIT_TIMEOUT = 120.0    # (a) admitted and all of its pods Running
OVER_QUOTA_WAIT = 30.0   # (b) watched for pods starting
RELEASE_TIMEOUT = 120.0  # (c) (b) admitted once (a) is gone
POLL = 2.0


class GangScheduling(Probe):
    id = "gang_scheduling"
    category = "schedulingOrchestration"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    mutating = True
    title = "All-or-nothing admission of multi-pod GPU jobs"

    def run(self, ctx: Context) -> Result:
        with ctx.step("detect a gang scheduler"):
            version = _served_version(ctx, KUEUE, ("v1beta2", "v1beta1"))
            ctx.observe("kueueVersion", version)
            if version is None:
                if _served_version(ctx, VOLCANO, ("v1beta1",)):
                    return ctx.error("Volcano (scheduling.volcano.sh) is served but this probe "
                                     "drives Kueue only: check gang scheduling by hand")
                return ctx.error("no gang scheduler found: neither Kueue (kueue.x-k8s.io) "
                                 "nor Volcano (scheduling.volcano.sh) is served")
            api = f"{KUEUE}/{version}"
        with ctx.step("find a ClusterQueue with GPU quota"):
            config = _manager_config(ctx)
            queue = _pick_cluster_queue(ctx, api, config)
            if isinstance(queue, str):
                return ctx.error(queue)
            cq, resource, flavor_quota, free, device_class = queue
            name = cq["metadata"]["name"]
            ctx.observe("clusterQueue", {"name": name, "resource": resource,
                                         "quota": str(flavor_quota), "free": str(free)})
            if free < 2:
                return ctx.error(f"ClusterQueue {name} has {free} free {resource} of "
                                 f"{flavor_quota}: a gang needs at least 2")
        n = int(min(GANG_PODS, free))
        per_pod = min(n, _max_gpus_per_node(ctx, resource, device_class) or 1)
        over_pods = int(free // per_pod)  # total in (free - n, free]: fits only without (a)
        ctx.observe("jobs", {"gang": f"{n} pods x 1 {resource}",
                             "overQuota": f"{over_pods} pods x {per_pod} {resource}"})
        with ctx.step("create namespace and LocalQueue"):
            ns = ctx.namespace()
            _label_namespace(ctx, ns, cq, config)
            _pods.create(ctx, f"/apis/{api}/namespaces/{ns}/localqueues", {
                "apiVersion": api, "kind": "LocalQueue", "metadata": {"name": "gang"},
                "spec": {"clusterQueue": name}}, ns)
            if device_class:
                for count in sorted({1, per_pod}):
                    _claim_template(ctx, ns, f"gpu-{count}", device_class, count)
        with ctx.step("(a) submit a gang that fits"):
            gang = _job(ctx, ns, "gang", n, resource, 1, device_class)
            admitted = ctx.wait_for(
                "the gang admitted with all pods Running",
                lambda: _ended(ctx, ns, "gang") or (
                    _admitted(ctx, api, ns, gang) and _running(ctx, ns, "gang") >= n),
                timeout=ADMIT_TIMEOUT, interval=POLL)
            wl = _workload(ctx, api, ns, gang)
            running = _running(ctx, ns, "gang")
            ctx.artifact("workload-gang.json", json.dumps(wl, indent=2))
            ended = _ended(ctx, ns, "gang")
            if ended:
                return ctx.error(f"pods of the gang ended before all {n} ran together "
                                 f"({', '.join(ended)}): `sleep 3600` in "
                                 f"{ctx.image('busybox')} should keep running")
            if not admitted:
                if wl is None or not _is_admitted(wl):
                    return ctx.error(f"a {n}-pod job within the free quota of ClusterQueue "
                                     f"{name} was not admitted within {ADMIT_TIMEOUT:g}s "
                                     f"({_pending_reason(wl)})")
                return ctx.error(f"the admitted {n}-pod job had {running} of {n} pods Running "
                                 f"after {ADMIT_TIMEOUT:g}s: not enough schedulable GPU nodes "
                                 "for the quota")
            ctx.check(f"a {n}-pod job within quota is admitted with all pods Running together",
                      True, f"{running}/{n} Running, Workload "
                      f"{wl['metadata']['name'] if wl else '(gone since)'} admitted")
        with ctx.step("(b) submit a job exceeding the free quota"):
            over = _job(ctx, ns, "over", over_pods, resource, per_pod, device_class)
            most = {"started": 0, "admitted": False}

            def observe_over() -> bool:
                most["started"] = max(most["started"], _started(ctx, ns, "over"))
                most["admitted"] = most["admitted"] or _admitted(ctx, api, ns, over)
                return False
            ctx.wait_for("pods of the over-quota job (expecting none)", observe_over,
                         timeout=OVER_QUOTA_WAIT, interval=POLL)
            wl_over = _workload(ctx, api, ns, over)
            ctx.observe("overQuotaPending", _pending_reason(wl_over))
            ended = _ended(ctx, ns, "gang")
            if ended:
                # A finished gang gives its quota back: what (b) saw proves nothing.
                return ctx.error(f"pods of the gang ended while the over-quota job waited "
                                 f"({', '.join(ended)}), releasing its quota: `sleep 3600` in "
                                 f"{ctx.image('busybox')} should keep running")
            if wl_over is not None:
                ctx.artifact("workload-over.json", json.dumps(wl_over, indent=2))
            started, total = most["started"], over_pods
            no_partial = ctx.check("a job exceeding the free quota starts none of its pods",
                                   started == 0, f"{started} of {total} pods started")
            held = ctx.check("its Workload is not admitted while the gang holds the quota",
                             not most["admitted"], _pending_reason(wl_over))
            if not no_partial and started < total:
                return ctx.failed(f"{started} of {total} pods started for a job exceeding the "
                                  f"quota of ClusterQueue {name} (no all-or-nothing)")
            if not (no_partial and held):
                if _cohort(cq):
                    return ctx.error(f"the over-quota job was admitted while the gang held its "
                                     f"quota: ClusterQueue {name} may borrow from cohort "
                                     f"{_cohort(cq)}, so no over-quota condition could be made")
                return ctx.failed(f"a job needing {total * per_pod} {resource} was admitted "
                                  f"while only {free - n} of ClusterQueue {name}'s quota was "
                                  f"free ({started} of {total} pods started)")
        with ctx.step("(c) delete the gang, expect its quota released"):
            ctx.cleanup.unwind(only=[o for o in ctx.cleanup.pending()
                                     if o.kind == "Job" and o.name == "gang"])
            released = ctx.wait_for("the over-quota job admitted once the gang is gone",
                                    lambda: _admitted(ctx, api, ns, over),
                                    timeout=RELEASE_TIMEOUT, interval=POLL)
            usage = _cq_usage(ctx, api, name, resource)
            ctx.observe("clusterQueueReservedAfterRelease", usage)
            if not ctx.check("deleting the gang releases its quota: the waiting job is admitted",
                             bool(released), _pending_reason(_workload(ctx, api, ns, over))):
                return ctx.failed(f"after the {n}-pod gang was deleted, the waiting job was not "
                                  f"admitted within {RELEASE_TIMEOUT:g}s "
                                  f"({_pending_reason(_workload(ctx, api, ns, over))})",
                                  partial=True)
        return ctx.passed(f"Kueue ClusterQueue {name}: a {n}-pod gang ran together, a job "
                          f"exceeding the free quota started 0 of {over_pods} pods until the "
                          "gang's quota was released, then was admitted")


# Discovery ----------------------------------------------------------------------------
def _served_version(ctx: Context, group: str, versions: tuple[str, ...]) -> str | None:
    for version in versions:
        if ctx.kube.resources(f"{group}/{version}"):
            return version
    return None


def _manager_config(ctx: Context) -> dict:
    """Kueue's manager Configuration from its ConfigMap, when readable (else {})."""
    for ns in KUEUE_NAMESPACES:
        try:
            items = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/configmaps")["items"]
        except (ApiException, ProbeError):  # absent namespace, or no permission
            continue
        for cm in items:
            for text in (cm.get("data") or {}).values():
                try:
                    doc = yaml.safe_load(text)
                except yaml.YAMLError:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "Configuration" and \
                        str(doc.get("apiVersion", "")).startswith("config.kueue.x-k8s.io"):
                    ctx.observe("kueueConfig", f"{ns}/{cm['metadata']['name']}")
                    return doc
    return {}


def _pick_cluster_queue(ctx: Context, api: str, config: dict):
    """(ClusterQueue, GPU resource, its nominal quota, free quota, DeviceClass or None)."""
    queues = ctx.kube.request("GET", f"/apis/{api}/clusterqueues").get("items", [])
    mapped = {m.get("name"): (m.get("deviceClassNames") or [None])[0]
              for m in (config.get("resources") or {}).get("deviceClassMappings") or []}
    seen = []
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
        for group in (cq.get("spec") or {}).get("resourceGroups") or []:
            for resource in group.get("coveredResources") or []:
                if resource not in GPU_RESOURCES and resource not in mapped:
                    continue
                for flavor in group.get("flavors") or []:
                    quota = sum((parse_quantity(r.get("nominalQuota", 0))
                                 for r in flavor.get("resources") or []
                                 if r.get("name") == resource), Decimal(0))
                    if quota <= 0:
                        continue
                    used = _reserved(cq, flavor["name"], resource)
                    return cq, resource, quota, int(quota - used), mapped.get(resource)
        seen.append(f"{name}: no GPU quota")
    ctx.observe("clusterQueues", seen)
    if not queues:
        return "Kueue is installed but no ClusterQueue exists: create one with GPU quota"
    return f"no usable ClusterQueue with GPU quota ({'; '.join(seen)})"


def _reserved(cq: dict, flavor: str, resource: str) -> Decimal:
    status = cq.get("status") or {}
    for entry in status.get("flavorsReservation") or status.get("flavorsUsage") or []:
        if entry.get("name") == flavor:
            for r in entry.get("resources") or []:
                if r.get("name") == resource:
                    return parse_quantity(r.get("total", 0))
    return Decimal(0)


def _cq_usage(ctx: Context, api: str, name: str, resource: str) -> dict:
    cq = ctx.kube.request("GET", f"/apis/{api}/clusterqueues/{name}")
    status = cq.get("status") or {}
    return {key: {e.get("name"): [r for r in e.get("resources") or []
                                  if r.get("name") == resource]
                  for e in status.get(key) or []}
            for key in ("flavorsReservation", "flavorsUsage") if key in status}


def _cohort(cq: dict) -> str | None:
    spec = cq.get("spec") or {}
    return spec.get("cohortName") or spec.get("cohort")


def _max_gpus_per_node(ctx: Context, resource: str, device_class: str | None) -> int:
    """The most ``resource`` one node offers (1 for DRA-quota'd GPUs: one device a claim)."""
    if device_class:
        return 1
    return max((int(parse_quantity(((n.get("status") or {}).get("allocatable") or {})
                                   .get(resource, 0))) for n in ctx.kube.items("/api/v1/nodes")),
               default=0)


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
         device_class: str | None) -> dict:
    """A suspended Job of ``pods`` sleeping pods, each holding ``per_pod`` GPUs."""
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
