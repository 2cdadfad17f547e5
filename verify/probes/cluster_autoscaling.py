"""cluster_autoscaling: a pending GPU pod makes its accelerator's node pool grow (and shrink).

The WG test's shape (kubernetes-sigs/ai-conformance KAR-0055 "Automated Tests", HEAD
af907ca): a pool of N nodes, a pod requesting the pool's accelerator that is first
``Pending`` (Unschedulable), the pool grows to N+1 and the pod runs; deleting it returns
the pool to N. Here, the cases in order:

1. a node autoscaler is found, by what it is, in any namespace: a Deployment running
   cluster-autoscaler, recognised by its command line (the binary, or ``--cloud-provider``
   with its own flags, any provider: ``verify.discover``; the image name is a hint),
   whose ``--namespace`` (default ``kube-system``, the flag's default in
   cluster-autoscaler/main.go; the upstream chart passes ``{{ .Release.Namespace
   }}``) and ``--status-config-map-name`` (default ``cluster-autoscaler-status``) say where
   its status ConfigMap is; that ConfigMap in ``kube-system`` (managed autoscalers: GKE,
   AKS); Karpenter NodePools. A 403 while looking is not "no autoscaler": without another
   signal it is ERROR. No signal at all is SKIP (not applicable).
2. a GPU pool below its maximum: from the stack's ``gpuPools``, else from GPU nodes' pool
   labels, with the autoscaler's status (both formats: the YAML of kubernetes/autoscaler
   cluster-autoscaler/clusterstate/api/types.go, as in its test fixture
   kubernetes/autoscaler@5952da6d cluster-autoscaler/clusterstate/utils/status_test.yaml, and
   the legacy text, ``LEGACY_GROUP``) telling a node group already at
   ``maxSize``. A pool already at its maximum is ERROR at once, naming it (a previous run's
   node may still be there), as is ``NotTriggerScaleUp ... max node group size reached``
   while waiting.
3. a pod only a new node of the pool can take: the pool's nodes recorded by UID, a pod
   requesting one GPU kept off them.
4. the GPU pod is first Unschedulable;
5. the pool grows and the pod runs on a new node (a node UID not seen before).
6. With ``--long``: deleting the pod returns the pool to its baseline nodes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml
from kubernetes.client.exceptions import ApiException

from .. import discover
from ..kube import GPU_RESOURCES, Forbidden
from ..probe import Context, Fail, Probe, ProbeError, Settings, Skip
from . import _gpus as _gpu_survey
from . import _pods

STATUS_CONFIGMAP = "cluster-autoscaler-status"  # --status-config-map-name default (main.go)
DEFAULT_NAMESPACE = "kube-system"                # --namespace default (main.go)
# registry.k8s.io/autoscaling/cluster-autoscaler:v1.x (and mirrors of it).
AUTOSCALER_IMAGE = re.compile(r"(^|/)cluster-autoscaler([:@]|$)")
KARPENTER = "karpenter.sh/v1"
# Node labels naming the pool (node group) a node belongs to, ours first.
POOL_LABELS = ("aicp.dev/gpu-pool", "cloud.google.com/gke-nodepool",
               "kubernetes.azure.com/agentpool", "eks.amazonaws.com/nodegroup",
               "karpenter.sh/nodepool")
HOSTNAME = "kubernetes.io/hostname"
# The autoscaler's pod event when the group cannot grow (kubernetes/autoscaler
# cluster-autoscaler/FAQ.md, its events table: "NotTriggerScaleUp  pod didn't trigger
# scale-up: 1 max node group size reached").
AT_MAX = re.compile(r"max node group size reached|max cluster (cpu|memory|size)", re.I)
# Legacy status text: "Name: <group>" then "Health: <status> (ready=... cloudProviderTarget=N
# (minSize=A, maxSize=B))" (kubernetes/autoscaler cluster-autoscaler/clusterstate/
# clusterstate.go buildHealthStatusNodeGroup).
LEGACY_GROUP = re.compile(r"Name:\s+(\S+)\s*\n\s*Health:\s+\w+\s+\(.*?cloudProviderTarget=(\d+)"
                          r"\s+\(minSize=(\d+),\s*maxSize=(\d+)\)", re.S)


class ClusterAutoscaling(Probe):
    id = "cluster_autoscaling"
    category = "schedulingOrchestration"
    mutating = True
    exclusive = True  # the node it adds would be judged half-joined by GPU-node surveys
    title = "GPU node pools scale up for pending accelerator pods"
    timeouts = {
        # the scheduler marks the pod Unschedulable (seconds at most)
        "unschedulable_timeout": 120.0,
        # 20 minutes for the scale-up, as kOps' AI-conformance test allows
        # (kubernetes/kops@268927e tests/e2e/scenarios/ai-conformance/validators/
        # scheduling-orchestration/clusterautoscaling/clusterautoscaling_test.go: "40 * 30s =
        # 20 minutes"; the WG's KAR-0055 names no figure): cold GPU nodes with a driver
        # install take 10-15 min on real clouds.
        "scale_up_timeout": 1200.0,
        # scale-down-delay-after-add 10 min + scale-down-unneeded-time 10 min
        # (cluster-autoscaler FAQ.md defaults), plus the node's drain and deletion; kOps
        # allows 20 min (same file).
        "scale_down_timeout": 1500.0,
        # kOps polls every 30 s; here every 10 s once the wait has gone on, after polls 1, 2,
        # 4 and 8 s apart, so a fast autoscaler is seen at once
        "poll": 10.0,
        "first_poll": 1.0,
        "margin": 60.0,      # requests, events and cleanup between the waits
    }

    @classmethod
    def budget(cls, settings: Settings) -> float:
        """The Unschedulable wait and the scale-up, and with ``--long`` the scale-down."""
        return (cls.timeout(settings, "unschedulable_timeout")
                + cls.timeout(settings, "scale_up_timeout")
                + (cls.timeout(settings, "scale_down_timeout") if settings.long else 0.0)
                + cls.timeout(settings, "margin"))

    def cases(self, ctx: Context) -> str:
        nodes, found = _a_node_autoscaler_is_found(ctx)
        scale = _a_gpu_pool_below_its_maximum(ctx, nodes, found)
        _a_pod_only_a_new_node_of_the_pool_can_take(ctx, scale)
        _the_gpu_pod_is_first_unschedulable(ctx, scale)
        _the_pool_grows_and_the_pod_runs_on_a_new_node(ctx, scale)
        pool, before, after = scale.pool["name"], len(scale.before), len(scale.after)
        if not ctx.settings.long:
            ctx.observe("scaleDown", "not waited for (pass --long)")
            ctx.log("scale-down not waited for: pass --long to wait for the node's removal")
            return (f"GPU pool {pool} scaled up {before} -> {after} nodes and the pending pod "
                    f"ran on new node {scale.node_name}; scale-down was not waited for "
                    "(pass --long)")
        _deleting_the_pod_returns_the_pool_to_its_baseline(ctx, scale)
        return (f"GPU pool {pool} scaled up {before} -> {after} nodes for a pending GPU pod "
                f"and back to {before} after its deletion")


@dataclass
class _ScaleUp:
    """What the scale-up cases share: the pool, its nodes before, the pod, what was seen."""

    pool: dict
    before: dict[str, str]         # uid -> name of the pool's nodes before the pod
    ns: str = ""
    name: str = ""                 # the pod's
    # The last poll's pod and events; whether (and why) the pod was seen Unschedulable.
    state: dict = field(default_factory=lambda: {"unschedulable": False})
    after: dict[str, str] = field(default_factory=dict)  # uid -> name after the scale-up
    added: list[str] = field(default_factory=list)       # names of the nodes added
    node_name: str | None = None   # where the pod runs

    def poll(self, ctx: Context) -> bool | str:
        """Read the pod and its events; "at max" once the autoscaler says it cannot grow."""
        state = self.state
        state["pod"] = ctx.kube.request("GET", f"/api/v1/namespaces/{self.ns}/pods/{self.name}")
        state["events"] = _events(ctx, self.ns, self.name)
        if any(AT_MAX.search(e) for e in state["events"]):
            return "at max"
        failed = [e for e in state["events"] if e.startswith("FailedScheduling")]
        if not state["unschedulable"] and (_pods.unschedulable(state["pod"]) or failed):
            state["unschedulable"] = True
            state["why"] = failed[0] if failed else _pod_state(state["pod"])
        return False

    def not_at_max(self) -> None:
        at_max = _at_max(self.state)
        if at_max:
            raise ProbeError(f"pool {self.pool['name']} is at its maximum size, the autoscaler "
                             f"will not add a node: {at_max}")


def _a_node_autoscaler_is_found(ctx: Context) -> tuple[list[dict], _Found]:
    """The cluster's nodes and the autoscaler's signals; none is SKIP, none readable ERROR."""
    with ctx.step("detect a node autoscaler"):
        expected = str(ctx.settings.expectations.get("autoscaler") or "")
        if expected == "none":
            raise Skip("the stack has no node autoscaler (autoscaler: none): nodes are fixed, "
                       "the requirement does not apply")
        nodes = _nodes(ctx)
        found = _Found()
        _look_for_autoscalers(ctx, nodes, found)
        signals = ([f"stack autoscaler: {expected}"] if expected else []) + found.signals
        ctx.observe("autoscalerSignals", signals)
        if found.forbidden:
            ctx.observe("forbidden", found.forbidden)
        if found.groups:
            ctx.observe("nodeGroups", found.groups)
        if not signals:
            if found.forbidden:
                raise ProbeError("could not look for a node autoscaler: "
                                 f"{'; '.join(found.forbidden)}; grant read access to "
                                 "Deployments and ConfigMaps there, or pass --stack")
            raise Skip("no node autoscaler found (no cluster-autoscaler Deployment in any "
                       f"namespace, no {STATUS_CONFIGMAP} ConfigMap, no Karpenter NodePools): "
                       "the requirement does not apply")
    return nodes, found


def _a_gpu_pool_below_its_maximum(ctx: Context, nodes: list[dict], found: _Found) -> _ScaleUp:
    with ctx.step("choose a GPU pool below its maximum"):
        pool = _choose_pool(ctx, nodes, found.groups)
        if isinstance(pool, str):
            raise ProbeError(pool)
        before = _pool_uids(ctx, pool["labels"])
        ctx.observe("pool", {**pool, "nodesBefore": sorted(before.values())})
        # A pool that already has nodes shows a scale-up from N, not from zero: on EKS and
        # AKS a DRA pool keeps a node because cluster-autoscaler has no DRA template for a
        # node that does not exist yet (kubernetes/autoscaler#7799).
        ctx.observe("scaleFromZero", "shown: the pool had no node before the probe"
                    if not before else f"not provable: pool {pool['name']} had "
                    f"{len(before)} node(s) before the probe, so only a scale-up from "
                    f"{len(before)} was observed")
    return _ScaleUp(pool, before)


def _a_pod_only_a_new_node_of_the_pool_can_take(ctx: Context, scale: _ScaleUp) -> None:
    with ctx.step("create a pod only a new node of the pool can take"):
        scale.ns = ctx.namespace()
        pod = _pending_pod(ctx, scale.ns, scale.pool, sorted(scale.before.values()))
        scale.name = pod["metadata"]["name"]


def _the_gpu_pod_is_first_unschedulable(ctx: Context, scale: _ScaleUp) -> None:
    """The WG test's first state: the scheduler finds no node for the pod (else a free node
    took it, and a scale-up could not be told from it: ERROR)."""
    timeout = ctx.timeout("unschedulable_timeout")
    with ctx.step("wait for the pod to be Unschedulable"):
        state = scale.state

        def pending() -> bool | str:
            verdict = scale.poll(ctx)
            return verdict or state["unschedulable"] or _phase(state["pod"]) == "Running"
        ctx.wait_for("the GPU pod Unschedulable", pending, timeout=timeout,
                     interval=ctx.timeout("poll"), first=ctx.timeout("first_poll"))
        scale.not_at_max()
        if not ctx.check("the GPU pod is first Unschedulable", state["unschedulable"],
                         state.get("why") or _pod_state(state["pod"])):
            raise ProbeError(f"the scheduler did not report the GPU pod Unschedulable "
                             f"within {timeout:g}s ({_pod_state(state['pod'])}): cannot tell "
                             "a scale-up from a free node")


def _the_pool_grows_and_the_pod_runs_on_a_new_node(ctx: Context, scale: _ScaleUp) -> None:
    """The pool gains a node (a UID not there before) and the pod runs on it."""
    pool, before, state = scale.pool, scale.before, scale.state
    timeout = ctx.timeout("scale_up_timeout")
    with ctx.step("wait for the pool to scale up and the pod to run on a new node"):
        def on_new_node() -> bool | str:
            verdict = scale.poll(ctx)
            if verdict:
                return verdict
            node = (state["pod"].get("spec") or {}).get("nodeName")
            if _phase(state["pod"]) != "Running" or not node:
                return False
            uid = _node_uid(ctx, node)
            state["node"] = (node, uid)
            return uid is not None and uid not in before
        ran = ctx.wait_for(f"a new node of pool {pool['name']} to join and run the GPU pod",
                           on_new_node,
                           timeout=timeout, interval=ctx.timeout("poll"),
                           first=ctx.timeout("first_poll"))
        scale.not_at_max()
        scale.after = after = _pool_uids(ctx, pool["labels"])
        scale.added = added = sorted(n for uid, n in after.items() if uid not in before)
        events = state.get("events") or []
        ctx.observe("nodesAfter", sorted(after.values()))
        ctx.observe("podEvents", events)
        ctx.artifact("pod.json", json.dumps(state.get("pod"), indent=2))
        scale.node_name = node_name = (state.get("pod") or {}).get("spec", {}).get("nodeName")
        triggered = [e for e in events if e.startswith("TriggeredScaleUp")]
        grew = ctx.check(f"pool {pool['name']} gains a node for the pending GPU pod",
                         bool(added), f"{len(before)} -> {len(after)} nodes"
                         + (f"; {triggered[0]}" if triggered else ""))
        if not grew:
            raise Fail(f"no node was added to GPU pool {pool['name']} within {timeout:g}s "
                       f"for a pending pod requesting {pool['resource']} "
                       f"({_last(events) or 'no events'})")
        on_new = ctx.check("the pod runs on the added node (a new node UID)",
                           ran is True and node_name in added,
                           f"phase {_phase(state['pod'])}, node {node_name or 'none'}")
        if not on_new:
            raise Fail(f"pool {pool['name']} gained {', '.join(added)} but the GPU pod did not "
                       f"run there within {timeout:g}s ({_last(events) or 'no events'})",
                       partial=True)


def _deleting_the_pod_returns_the_pool_to_its_baseline(ctx: Context, scale: _ScaleUp) -> None:
    """With ``--long``: once the pod is gone, the added node is removed again."""
    pool, before = scale.pool, scale.before
    timeout = ctx.timeout("scale_down_timeout")
    with ctx.step("delete the pod and wait for the pool to return to its baseline"):
        ctx.cleanup.unwind(only=[o for o in ctx.cleanup.pending()
                                 if o.kind == "Pod" and o.name == scale.name])
        left: dict = {}

        def baseline() -> bool:
            left["uids"] = _pool_uids(ctx, pool["labels"])
            return set(left["uids"]) <= set(before)
        gone = ctx.wait_for(f"pool {pool['name']} back to its {len(before)} baseline nodes",
                            baseline, timeout=timeout,
                            interval=ctx.timeout("poll"), first=ctx.timeout("first_poll"))
        if not ctx.check(f"pool {pool['name']} returns to its {len(before)} baseline nodes",
                         bool(gone), ", ".join(sorted(left["uids"].values()))):
            raise Fail(f"GPU pool {pool['name']} scaled up but did not remove "
                       f"{', '.join(scale.added)} within {timeout:g}s of the pod's deletion",
                       partial=True)


class _Found:
    """What the search for an autoscaler saw: signals, node groups, what was forbidden."""

    def __init__(self) -> None:
        self.signals: list[str] = []
        self.groups: list[dict] = []
        self.forbidden: list[str] = []


def _nodes(ctx: Context) -> list[dict]:
    return list(ctx.kube.items("/api/v1/nodes"))


def _labels(node: dict) -> dict:
    return node.get("metadata", {}).get("labels") or {}


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _pool_uids(ctx: Context, labels: dict[str, str]) -> dict[str, str]:
    """uid -> name of the pool's nodes (by label selector: a poll reads the pool only)."""
    return {n["metadata"]["uid"]: n["metadata"]["name"]
            for n in ctx.kube.items("/api/v1/nodes", query={"labelSelector": _selector(labels)})}


def _pool_nodes(nodes: list[dict], labels: dict[str, str]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in nodes
                  if all(_labels(n).get(k) == v for k, v in labels.items()))


def _node_uid(ctx: Context, name: str) -> str | None:
    try:
        return ctx.kube.request("GET", f"/api/v1/nodes/{name}")["metadata"]["uid"]
    except ApiException:
        return None


def _look_for_autoscalers(ctx: Context, nodes: list[dict], found: _Found) -> None:
    configmaps: list[tuple[str, str]] = []
    deployments: list[dict] = []
    for path in ("/apis/apps/v1/deployments",
                 f"/apis/apps/v1/namespaces/{DEFAULT_NAMESPACE}/deployments"):
        try:
            deployments = list(ctx.kube.items(path))
            break
        except Forbidden as exc:  # cluster-wide denied: kube-system may still be readable
            found.forbidden.append(str(exc))
    for d in deployments:
        recognised = discover.autoscaler_container(d, AUTOSCALER_IMAGE)
        if recognised is None:
            continue
        args, how = recognised
        meta = d["metadata"]
        found.signals.append(f"Deployment {meta['namespace']}/{meta['name']}")
        ctx.observe("autoscalerFoundBy", {f"{meta['namespace']}/{meta['name']}": how})
        configmaps.append((args.get("namespace", DEFAULT_NAMESPACE),
                           args.get("status-config-map-name", STATUS_CONFIGMAP)))
    # Managed autoscalers (GKE, AKS) run off-cluster and write the ConfigMap in kube-system.
    configmaps.append((DEFAULT_NAMESPACE, STATUS_CONFIGMAP))
    for ns, name in dict.fromkeys(configmaps):
        try:
            cm = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{name}")
        except Forbidden as exc:
            found.forbidden.append(str(exc))
            continue
        except ApiException:
            continue
        found.signals.append(f"ConfigMap {ns}/{name}")
        found.groups += node_groups(((cm or {}).get("data") or {}).get("status", ""))
    if ctx.kube.resources(KARPENTER):
        try:
            pools = ctx.kube.request("GET", f"/apis/{KARPENTER}/nodepools").get("items", [])
            found.signals += [f"Karpenter NodePool {p['metadata']['name']}" for p in pools]
        except Forbidden as exc:
            found.forbidden.append(str(exc))
    providers = {k for n in nodes for k in _labels(n)
                 if k in ("cloud.google.com/gke-nodepool", "kubernetes.azure.com/agentpool")}
    if found.signals and providers:
        found.signals.append(f"managed node pools ({', '.join(sorted(providers))})")


def node_groups(status: str) -> list[dict]:
    """Node groups in the autoscaler's status, either format: name, target, min, max."""
    if not status.strip():
        return []
    try:
        doc = yaml.safe_load(status)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, dict) and "nodeGroups" in doc:
        # clusterstate/api/types.go: nodeGroups[].health.{cloudProviderTarget,minSize,maxSize}
        out = []
        for g in doc.get("nodeGroups") or []:
            health = g.get("health") or {}
            out.append({"name": str(g.get("name")),
                        "target": int(health.get("cloudProviderTarget") or 0),
                        "minSize": int(health.get("minSize") or 0),
                        "maxSize": int(health.get("maxSize") or 0)})
        return out
    return [{"name": m.group(1), "target": int(m.group(2)), "minSize": int(m.group(3)),
             "maxSize": int(m.group(4))} for m in LEGACY_GROUP.finditer(status)]


def _gpus(node: dict) -> tuple[str, int] | None:
    """The node's GPU resource (whole GPUs first; MIG instances, shared GPUs) and count."""
    found = _gpu_survey.gpu_resources(node)
    if not found:
        return None
    resource = min(found, key=lambda r: (r not in GPU_RESOURCES, r))
    return resource, int(found[resource])


def _group_at_max(pool: str, groups: list[dict]) -> dict | None:
    """The status's node group for ``pool`` (its name contains the pool's: ``eks-h100-…``,
    ``aks-h100-…-vmss``), when it is at its maximum."""
    mine = [g for g in groups if pool and pool in g["name"]]
    if mine and all(g["maxSize"] and g["target"] >= g["maxSize"] for g in mine):
        return mine[0]
    return None


def _choose_pool(ctx: Context, nodes: list[dict], groups: list[dict]) -> dict | str:
    """The pool to grow: from the stack's gpuPools when given, else from GPU nodes' labels;
    one the autoscaler's status shows at its maximum is left out."""
    full = []
    pools = ctx.settings.expectations.get("gpuPools") or []
    if pools:
        for p in pools:
            labels = p.get("labels") or {}
            count = len(_pool_nodes(nodes, labels))
            group = _group_at_max(str(p.get("name") or ""), groups)
            if count >= int(p.get("maxNodes") or 0) or group:
                full.append(f"{p.get('name')} ({count}/{p.get('maxNodes')} nodes"
                            + (f"; node group {group['name']} at {group['target']}/"
                               f"{group['maxSize']}" if group else "") + ")")
                continue
            dra = p.get("allocator") == "dra"
            return {"name": p.get("name"), "labels": labels, "maxNodes": p.get("maxNodes"),
                    "resource": "DRA claim" if dra else "nvidia.com/gpu", "dra": dra}
        return (f"every GPU pool is at its maximum node count: {', '.join(full)}; remove the "
                "nodes a previous run left or raise the maximum")
    seen = set()
    for node in nodes:
        gpus = _gpus(node)
        key = next((k for k in POOL_LABELS if k in _labels(node)), None)
        if not gpus or not key or (key, _labels(node)[key]) in seen:
            continue
        name = _labels(node)[key]
        seen.add((key, name))
        group = _group_at_max(name, groups)
        if group:
            full.append(f"{name} (node group {group['name']} at {group['target']}/"
                        f"{group['maxSize']})")
            continue
        return {"name": name, "labels": {key: name}, "maxNodes": None,
                "resource": gpus[0], "dra": False}
    if full:
        return (f"every GPU pool is at its maximum node count: {', '.join(full)}; remove the "
                "nodes a previous run left or raise the maximum")
    return ("no GPU pool to scale: no node advertises GPUs with a pool label "
            f"({', '.join(POOL_LABELS)}); pass --stack so the probe knows the pools")


def _pending_pod(ctx: Context, ns: str, pool: dict, existing: list[str]) -> dict:
    container = {"name": "main", "image": ctx.image("busybox"), "command": ["sleep", "3600"]}
    spec: dict = {"terminationGracePeriodSeconds": 0, "nodeSelector": dict(pool["labels"]),
                  "tolerations": [{"operator": "Exists"}], "containers": [container]}
    if existing:
        # Off the pool's current nodes: only a node the autoscaler adds can take the pod.
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME, "operator": "NotIn", "values": existing}]}]}}}
    if pool["dra"]:
        device_class = _pods.device_class(ctx)
        if device_class is None:
            raise ProbeError("the pool allocates GPUs with DRA but no DeviceClass exists")
        _pods.claim_template(ctx, ns, "one-gpu", device_class)
        container["resources"] = {"claims": [{"name": "gpu"}]}
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    else:
        container["resources"] = {"limits": {pool["resource"]: "1"}}
    return _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "scale-up"}, "spec": spec}, ns)


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


def _pod_state(pod: dict) -> str:
    conds = [f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip()
             for c in (pod.get("status") or {}).get("conditions") or []]
    return f"phase {_phase(pod)}" + (f"; {', '.join(conds)}" if conds else "")


def _at_max(state: dict) -> str:
    return next((e for e in state.get("events") or [] if AT_MAX.search(e)), "")


def _events(ctx: Context, ns: str, pod: str) -> list[str]:
    items = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/events", query={
        "fieldSelector": f"involvedObject.name={pod}"}).get("items", [])
    return [f"{e.get('reason')}: {e.get('message', '')}".strip() for e in items]


def _last(events: list[str]) -> str:
    return events[-1] if events else ""
