"""cluster_autoscaling: a pending GPU pod makes its accelerator's node pool grow.

When the platform has a node autoscaler (cluster-autoscaler, Karpenter, GKE's or AKS's
own), a pod requesting one GPU of a pool below its maximum, kept off the pool's current
nodes, must make the pool gain a node and then run there. With ``--long`` the probe also
deletes the pod and waits for the added node to be removed; without it, scale-down is
noted as not waited for. A cluster without an autoscaler makes the requirement not
applicable (SKIP).
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from ..kube import GPU_RESOURCES
from ..probe import Context, Probe, ProbeError
from ..result import Result
from . import _pods

STATUS_CONFIGMAP = "cluster-autoscaler-status"
KARPENTER = "karpenter.sh/v1"
# Node labels naming the pool (node group) a node belongs to, ours first.
POOL_LABELS = ("aicp.dev/gpu-pool", "cloud.google.com/gke-nodepool",
               "kubernetes.azure.com/agentpool", "eks.amazonaws.com/nodegroup",
               "karpenter.sh/nodepool")
HOSTNAME = "kubernetes.io/hostname"

SCALE_UP_TIMEOUT = 540.0     # GPU nodes: provisioning, driver and device plugin (~5-9 min)
SCALE_DOWN_TIMEOUT = 1500.0  # cluster-autoscaler's scale-down-unneeded-time is 10 min
POLL = 10.0


class ClusterAutoscaling(Probe):
    id = "cluster_autoscaling"
    category = "schedulingOrchestration"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    mutating = True
    exclusive = True  # the node it adds would be judged half-joined by GPU-node surveys
    title = "GPU node pools scale up for pending accelerator pods"

    def run(self, ctx: Context) -> Result:
        with ctx.step("detect a node autoscaler"):
            expected = str(ctx.settings.expectations.get("autoscaler") or "")
            if expected == "none":
                return ctx.skip("the stack has no node autoscaler (autoscaler: none): nodes "
                                "are fixed, the requirement does not apply")
            nodes = _nodes(ctx)
            signals = _autoscaler_signals(ctx, nodes)
            if expected:
                signals.insert(0, f"stack autoscaler: {expected}")
            ctx.observe("autoscalerSignals", signals)
            if not signals:
                return ctx.skip("no node autoscaler found (no cluster-autoscaler Deployment or "
                                f"{STATUS_CONFIGMAP} ConfigMap in kube-system, no Karpenter "
                                "NodePools): the requirement does not apply")
        with ctx.step("choose a GPU pool below its maximum"):
            pool = _choose_pool(ctx, nodes)
            if isinstance(pool, str):
                return ctx.error(pool)
            before = _pool_nodes(nodes, pool["labels"])
            ctx.observe("pool", {**pool, "nodesBefore": before})
        with ctx.step("create a pod only a new node of the pool can take"):
            ns = ctx.namespace()
            pod = _pending_pod(ctx, ns, pool, before)
            name = pod["metadata"]["name"]
        with ctx.step("wait for the pool to scale up and the pod to run"):
            state: dict = {}

            def running() -> bool:
                state["pod"] = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
                return (state["pod"].get("status") or {}).get("phase") == "Running"
            ran = ctx.wait_for("the GPU pod to run on a new node", running,
                               timeout=SCALE_UP_TIMEOUT, interval=POLL)
            after = _pool_members(ctx, pool["labels"])
            added = [n for n in after if n not in before]
            events = _events(ctx, ns, name)
            ctx.observe("nodesAfter", after)
            ctx.observe("podEvents", events)
            ctx.artifact("pod.json", json.dumps(state.get("pod"), indent=2))
            node_name = (state.get("pod") or {}).get("spec", {}).get("nodeName")
            triggered = [e for e in events if e.startswith("TriggeredScaleUp")]
            grew = ctx.check(f"pool {pool['name']} gains a node for the pending GPU pod",
                             bool(added), f"{len(before)} -> {len(after)} nodes"
                             + (f"; {triggered[0]}" if triggered else ""))
            if not grew:
                at_max = [e for e in events if "max node group size" in e
                          or "max cluster" in e.lower()]
                if at_max:
                    return ctx.error(f"pool {pool['name']} is at its maximum size, the "
                                     f"autoscaler would not add a node: {at_max[0]}")
                return ctx.failed(f"no node was added to GPU pool {pool['name']} within "
                                  f"{SCALE_UP_TIMEOUT:g}s for a pending pod requesting "
                                  f"{pool['resource']} ({_last(events) or 'no events'})")
            on_new = ctx.check("the pod runs on the added node", bool(ran) and node_name in added,
                               f"phase {(state['pod'].get('status') or {}).get('phase')}, "
                               f"node {node_name or 'none'}")
            if not on_new:
                return ctx.failed(f"pool {pool['name']} gained {', '.join(added)} but the GPU "
                                  f"pod did not run there within {SCALE_UP_TIMEOUT:g}s "
                                  f"({_last(events) or 'no events'})", partial=True)
        if not ctx.settings.long:
            ctx.observe("scaleDown", "not waited for (pass --long)")
            ctx.log("scale-down not waited for: pass --long to wait for the node's removal")
            return ctx.passed(f"GPU pool {pool['name']} scaled up {len(before)} -> {len(after)} "
                              f"nodes and the pending pod ran on {node_name}; scale-down was "
                              "not waited for (pass --long)")
        with ctx.step("delete the pod and wait for the added node to go"):
            ctx.cleanup.unwind(only=[o for o in ctx.cleanup.pending()
                                     if o.kind == "Pod" and o.name == name])
            gone = ctx.wait_for("the added node to be removed",
                                lambda: not set(added) & set(_pool_members(ctx,
                                                                           pool["labels"])),
                                timeout=SCALE_DOWN_TIMEOUT, interval=POLL)
            if not ctx.check(f"pool {pool['name']} removes the node once it is unneeded",
                             bool(gone), ", ".join(_pool_members(ctx, pool["labels"]))):
                return ctx.failed(f"GPU pool {pool['name']} scaled up but did not remove "
                                  f"{', '.join(added)} within {SCALE_DOWN_TIMEOUT:g}s of the "
                                  "pod's deletion", partial=True)
        return ctx.passed(f"GPU pool {pool['name']} scaled up {len(before)} -> {len(after)} "
                          f"nodes for a pending GPU pod and back down after its deletion")


def _nodes(ctx: Context) -> list[dict]:
    return list(ctx.kube.items("/api/v1/nodes"))


def _pool_members(ctx: Context, labels: dict[str, str]) -> list[str]:
    """The pool's nodes by label selector: a poll reads the pool, not the whole cluster."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return sorted(n["metadata"]["name"]
                  for n in ctx.kube.items("/api/v1/nodes", query={"labelSelector": selector}))


def _labels(node: dict) -> dict:
    return node.get("metadata", {}).get("labels") or {}


def _pool_nodes(nodes: list[dict], labels: dict[str, str]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in nodes
                  if all(_labels(n).get(k) == v for k, v in labels.items()))


def _autoscaler_signals(ctx: Context, nodes: list[dict]) -> list[str]:
    found = []
    try:
        ctx.kube.request("GET", f"/api/v1/namespaces/kube-system/configmaps/{STATUS_CONFIGMAP}")
        found.append(f"ConfigMap kube-system/{STATUS_CONFIGMAP}")
    except (ApiException, ProbeError):
        pass
    try:
        deployments = ctx.kube.request(
            "GET", "/apis/apps/v1/namespaces/kube-system/deployments").get("items", [])
        found += [f"Deployment kube-system/{d['metadata']['name']}" for d in deployments
                  if "cluster-autoscaler" in d["metadata"]["name"]]
    except (ApiException, ProbeError):
        pass
    if ctx.kube.resources(KARPENTER):
        pools = ctx.kube.request("GET", f"/apis/{KARPENTER}/nodepools").get("items", [])
        found += [f"Karpenter NodePool {p['metadata']['name']}" for p in pools]
    # Managed autoscalers run off-cluster; their status ConfigMap (above) is the signal.
    providers = {k for n in nodes for k in _labels(n)
                 if k in ("cloud.google.com/gke-nodepool", "kubernetes.azure.com/agentpool")}
    if found and providers:
        found.append(f"managed node pools ({', '.join(sorted(providers))})")
    return found


def _gpus(node: dict) -> tuple[str, int] | None:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for resource in GPU_RESOURCES:
        count = int(parse_quantity(allocatable.get(resource, 0)))
        if count > 0:
            return resource, count
    return None


def _choose_pool(ctx: Context, nodes: list[dict]) -> dict | str:
    """The pool to grow: from the stack's gpuPools when given, else from GPU nodes' labels."""
    pools = ctx.settings.expectations.get("gpuPools") or []
    if pools:
        full = []
        for p in pools:
            labels = p.get("labels") or {}
            count = len(_pool_nodes(nodes, labels))
            if count >= int(p.get("maxNodes") or 0):
                full.append(f"{p.get('name')} ({count}/{p.get('maxNodes')})")
                continue
            dra = p.get("allocator") == "dra"
            return {"name": p.get("name"), "labels": labels, "maxNodes": p.get("maxNodes"),
                    "resource": "DRA claim" if dra else "nvidia.com/gpu", "dra": dra}
        return f"every GPU pool is at its maximum node count: {', '.join(full)}"
    for node in nodes:
        gpus = _gpus(node)
        key = next((k for k in POOL_LABELS if k in _labels(node)), None)
        if gpus and key:
            return {"name": _labels(node)[key], "labels": {key: _labels(node)[key]},
                    "maxNodes": None, "resource": gpus[0], "dra": False}
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


def _events(ctx: Context, ns: str, pod: str) -> list[str]:
    items = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/events", query={
        "fieldSelector": f"involvedObject.name={pod}"}).get("items", [])
    return [f"{e.get('reason')}: {e.get('message', '')}".strip() for e in items]


def _last(events: list[str]) -> str:
    return events[-1] if events else ""
