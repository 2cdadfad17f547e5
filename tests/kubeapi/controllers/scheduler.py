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
from typing import TYPE_CHECKING

from ..store import now
from .base import Controller
from .resources import allocatable, pod_requests

if TYPE_CHECKING:
    from ..discovery import Resource
    from ..store import Event, Store

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


def why_not(pod: dict, node: dict, used: Counter, claim_nodes: list[dict] | None,
            parsed: dict[str, dict] | None = None) -> str | None:
    """None when the pod fits the node, else a short reason as the scheduler words it
    (``parsed``: nodes' allocatable by name, filled on first use, for a pass over many
    pods)."""
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
    node_name = node["metadata"]["name"]
    free = None if parsed is None else parsed.get(node_name)
    if free is None:
        free = allocatable(node)
        if parsed is not None:
            parsed[node_name] = free
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
        self._index: _PodIndex | None = None

    def sync(self, kube) -> None:
        # A pass reads the pods it may place and the nodes' usage from an index the store
        # keeps current on every write, as kube-scheduler's pod informer feeds assigned
        # pods to its cache and unassigned ones to its scheduling queue (kubernetes
        # pkg/scheduler/eventhandlers.go, addAllEventHandlers), not from all pods: at
        # 100,000 pods a full scan outlasted the resync period and kept the controllers
        # from ever going idle.
        if self._index is None:
            self._index = _PodIndex(kube.store, kube.resolve("pods"), self.scheduler_name)
        pending, used = self._index.snapshot()
        if not pending:
            return
        nodes = kube.view("nodes")  # in name order: the store lists by key
        parsed: dict[str, dict] = {}  # each node's allocatable, parsed once per pass
        for pod in pending:
            spec, meta = pod["spec"], pod["metadata"]
            claim_nodes = None
            if spec.get("resourceClaims"):
                claim_nodes = claim_node_selectors(kube, pod)
                if claim_nodes is None:
                    self._unschedulable(kube, pod, "waiting for resource claim allocation")
                    continue
            reasons: Counter = Counter()
            for node in nodes:
                name = node["metadata"]["name"]
                reason = why_not(pod, node, used.get(name, Counter()), claim_nodes, parsed)
                if reason is None:
                    kube.bind(meta["namespace"], meta["name"], name)
                    used.setdefault(name, Counter()).update(pod_requests(spec))
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


class _PodIndex:
    """What the scheduler reads of the pods, kept current by the store on every write:
    the pods waiting for this scheduler and the requests of the active pods on each node.

    Built from the store once and then fed by its events, under the store's lock (the
    store calls its listeners inside the write), so a snapshot is never torn by a write.
    """

    def __init__(self, store: Store, pods: Resource, scheduler_name: str):
        self.store, self.pods, self.scheduler_name = store, pods, scheduler_name
        self.pending: set[tuple[str, str]] = set()
        self.used: dict[str, Counter] = {}
        self.placed: dict[tuple[str, str], tuple[str, Counter]] = {}  # pod -> node, requests
        with store.lock:
            for stored in store.list(pods)[0]:
                self._add(stored.obj)
            store.listeners.append(self._on_event)

    def snapshot(self) -> tuple[list[dict], dict[str, Counter]]:
        """The pending pods in key order (as a list of all pods gives them) and a copy of
        each node's usage."""
        with self.store.lock:
            pods = [stored.obj for ns, name in sorted(self.pending)
                    if (stored := self.store.lookup(self.pods, ns, name)) is not None]
            used = {n: Counter(c) for n, c in self.used.items()} if pods else {}
        return pods, used

    def _on_event(self, event: Event) -> None:
        if event.resource.key != self.pods.key:
            return
        self._remove(event.old or event.obj)
        if event.type != "DELETED":
            self._add(event.obj)

    def _key(self, pod: dict) -> tuple[str, str]:
        return pod["metadata"].get("namespace", ""), pod["metadata"]["name"]

    def _add(self, pod: dict) -> None:
        spec, meta, key = pod["spec"], pod["metadata"], self._key(pod)
        phase = (pod.get("status") or {}).get("phase", "Pending")
        node = spec.get("nodeName")
        if node and phase in ACTIVE:
            requests = pod_requests(spec)
            self.placed[key] = (node, requests)
            used = self.used.get(node)
            if used is None:
                used = self.used[node] = Counter()
            used.update(requests)
        elif not node and not meta.get("deletionTimestamp") and phase == "Pending" and \
                spec.get("schedulerName", "default-scheduler") == self.scheduler_name:
            self.pending.add(key)

    def _remove(self, pod: dict) -> None:
        key = self._key(pod)
        self.pending.discard(key)
        node, requests = self.placed.pop(key, (None, None))
        if node is not None:
            self.used[node].subtract(requests)
