"""A scheduler: binds pending pods to nodes that fit.

Honours allocatable (cpu, memory, pods, extended resources such as nvidia.com/gpu),
nodeSelector, required node affinity (In/NotIn/Exists/DoesNotExist), NoSchedule/NoExecute
taints against tolerations, cordoned and NotReady nodes as the scheduler sees them (below)
and DRA: a pod with ``resourceClaims`` waits until every claim is allocated, then goes to
the node the allocation names.
Unschedulable pods get ``PodScheduled=False, reason Unschedulable`` and an Event.

A pod whose claims are not allocated yet is reported Unschedulable ("waiting for resource
claim allocation") until the separate ``DraAllocator`` has run. That is this emulator's own
transient: a real kube-scheduler allocates claims in its scheduling cycle and leaves a pod
whose claim is not visible yet plain Pending (kubernetes/enhancements
keps/sig-scheduling/5501, "Reflect PreEnqueue rejections in Pod status": today "the Pod
simply remains Pending"). Probes must not act on a first sight of Unschedulable anyway: a
real scheduler retries a pod on cluster events and may bind it a moment after reporting it.
"""

from __future__ import annotations

from collections import Counter

from ..store import now
from .base import Controller
from .resources import allocatable, pod_requests

ACTIVE = ("Pending", "Running", "Unknown")

# Cordoned and NotReady nodes as kube-scheduler sees them (kubernetes/kubernetes v1.35):
# - NodeUnschedulable (pkg/scheduler/framework/plugins/nodeunschedulable/
#   node_unschedulable.go): a node with spec.unschedulable is filtered out ("node(s) were
#   unschedulable") unless the pod tolerates the taint node.kubernetes.io/unschedulable:
#   NoSchedule, which `kubectl cordon` does not add but a toleration of it (or a blanket
#   `operator: Exists`) lets the pod land there, as DaemonSet pods do;
# - NotReady: the scheduler reads no node condition, only taints (TaintToleration). The node
#   lifecycle controller (pkg/controller/nodelifecycle/node_lifecycle_controller.go,
#   nodeConditionToTaintKeyStatusMap) taints a node whose Ready is False with
#   node.kubernetes.io/not-ready:NoSchedule and one whose Ready is Unknown (or missing)
#   with node.kubernetes.io/unreachable:NoSchedule; a node in the store without that taint
#   yet is judged as if it had it (the controller's taint is what the scheduler acts on).
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def scheduling_taints(node: dict) -> list[dict]:
    """The node's taints plus the NoSchedule taint its Ready condition implies."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), "Unknown")
    if ready != "True":
        key = NOT_READY if ready == "False" else UNREACHABLE
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _term_matches(term: dict, node: dict) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    for source, exprs in ((labels, term.get("matchExpressions")),
                          (fields, term.get("matchFields"))):
        for e in exprs or []:
            value, op, values = source.get(e["key"]), e["operator"], e.get("values") or []
            if (op == "In" and value not in values) or (op == "NotIn" and value in values) \
                    or (op == "Exists" and value is None) \
                    or (op == "DoesNotExist" and value is not None):
                return False
    return True


def node_selector_matches(selector: dict | None, node: dict) -> bool:
    """A v1 NodeSelector: any term matches."""
    terms = (selector or {}).get("nodeSelectorTerms")
    return not terms or any(_term_matches(t, node) for t in terms)


def why_not(pod: dict, node: dict, used: Counter, claim_nodes: list[dict] | None) -> str | None:
    """None when the pod fits the node, else a short reason as the scheduler words it."""
    spec = pod["spec"]
    if node.get("spec", {}).get("unschedulable") and not tolerates(
            spec.get("tolerations"), {"key": UNSCHEDULABLE, "effect": "NoSchedule"}):
        return "node(s) were unschedulable"
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector"
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if affinity and not node_selector_matches(affinity, node):
        return "node(s) didn't match Pod's node affinity/selector"
    for taint in scheduling_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                spec.get("tolerations"), taint):
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    if claim_nodes is not None and not all(node_selector_matches(s, node) for s in claim_nodes):
        return "node(s) cannot allocate all claims"
    free = allocatable(node)
    for name, qty in pod_requests(spec).items():
        if qty and used.get(name, 0) + qty > free.get(name, 0):
            return f"Insufficient {name}"
    return None


def usage_by_node(pods: list[dict]) -> dict[str, Counter]:
    used: dict[str, Counter] = {}
    for p in pods:
        node = p["spec"].get("nodeName")
        if node and (p.get("status") or {}).get("phase", "Pending") in ACTIVE:
            used.setdefault(node, Counter()).update(pod_requests(p["spec"]))
    return used


def claim_node_selectors(kube, pod: dict) -> list[dict] | None:
    """Allocation node selectors of the pod's claims; None when one is not allocated yet."""
    statuses = {s["name"]: s.get("resourceClaimName")
                for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
    selectors = []
    for ref in pod["spec"].get("resourceClaims") or []:
        name = ref.get("resourceClaimName") or statuses.get(ref["name"])
        if not name:
            return None
        claim = kube.find("resourceclaims.resource.k8s.io", name,
                          pod["metadata"]["namespace"])
        allocation = ((claim or {}).get("status") or {}).get("allocation")
        if not allocation:
            return None
        selectors.append(allocation.get("nodeSelector") or {})
    return selectors


class Scheduler(Controller):
    name = "scheduler"
    watches = ("pods", "nodes", "resourceclaims.resource.k8s.io")

    def __init__(self, scheduler_name: str = "default-scheduler"):
        self.scheduler_name = scheduler_name
        self._reported: dict[str, str] = {}

    def sync(self, kube) -> None:
        pods = kube.view("pods")
        nodes = kube.view("nodes")
        used = usage_by_node(pods)
        for pod in pods:
            spec, meta = pod["spec"], pod["metadata"]
            if spec.get("nodeName") or meta.get("deletionTimestamp") or \
                    spec.get("schedulerName", "default-scheduler") != self.scheduler_name or \
                    (pod.get("status") or {}).get("phase", "Pending") != "Pending":
                continue
            claim_nodes = None
            if spec.get("resourceClaims"):
                claim_nodes = claim_node_selectors(kube, pod)
                if claim_nodes is None:
                    self._unschedulable(kube, pod, "waiting for resource claim allocation")
                    continue
            reasons: Counter = Counter()
            for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
                reason = why_not(pod, node, used.get(node["metadata"]["name"], Counter()),
                                 claim_nodes)
                if reason is None:
                    kube.bind(meta["namespace"], meta["name"], node["metadata"]["name"])
                    used.setdefault(node["metadata"]["name"], Counter()).update(
                        pod_requests(spec))
                    break
                reasons[reason] += 1
            else:
                detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                self._unschedulable(kube, pod, f"0/{len(nodes)} nodes are available"
                                               + (f": {detail}." if detail else "."))

    def _unschedulable(self, kube, pod: dict, message: str) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if self._reported.get(key) == message:
            return
        self._reported[key] = message

        def mark(p: dict) -> None:
            conds = [c for c in p["status"].get("conditions") or [] if c["type"] != "PodScheduled"]
            p["status"]["conditions"] = conds + [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastTransitionTime": now(), "lastProbeTime": None}]
        kube.mutate("pods", meta["name"], mark, meta["namespace"], status=True)
        kube.create({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"generateName": meta["name"] + ".",
                                  "namespace": meta["namespace"]},
                     "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                        "namespace": meta["namespace"], "uid": meta["uid"]},
                     "reason": "FailedScheduling", "message": message, "type": "Warning",
                     "source": {"component": "default-scheduler"},
                     "reportingComponent": "default-scheduler", "count": 1,
                     "firstTimestamp": now(), "lastTimestamp": now()})
