"""A node-group autoscaler: adds a node from a template when pods cannot schedule.

``make(index) -> list[objects]`` builds the next node (and anything that comes with it,
e.g. its ResourceSlice). A node is added when a pod is ``Unschedulable`` and would fit
the template node; at most ``max_nodes`` are added. No scale-down. ``status_configmap``
is the sign of it that cluster-autoscaler leaves in kube-system.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .base import Controller
from .scheduler import claim_node_selectors, why_not


def status_configmap(kube) -> None:
    """What cluster-autoscaler writes in kube-system while it runs."""
    kube.seed([{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"},
                "data": {"status": "time: 2026-01-01 00:00:00\nautoscalerStatus: Running\n"}}])


class NodeGroupAutoscaler(Controller):
    name = "node-group-autoscaler"
    watches = ("pods",)
    resync = None  # the scheduler's write of Unschedulable is what it waits for

    def __init__(self, make: Callable[[int], list[dict]], max_nodes: int = 3):
        self.make, self.max_nodes = make, max_nodes
        self.added: list[str] = []

    def sync(self, kube) -> None:
        if len(self.added) >= self.max_nodes:
            return
        template = self.make(len(self.added))
        node = next(o for o in template if o["kind"] == "Node")
        for pod in kube.view("pods"):
            conds = (pod.get("status") or {}).get("conditions") or []
            stuck = any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                        for c in conds) and not pod["spec"].get("nodeName")
            if not stuck:
                continue
            claims = None
            if pod["spec"].get("resourceClaims"):
                # Unallocated claims: the emulator's DraAllocator has not run yet (a real
                # kube-scheduler allocates them itself), no reason to add a node.
                claims = claim_node_selectors(kube, pod)
                if claims is None:
                    continue
            if why_not(pod, node, Counter(), claims) is None:
                kube.seed(template)  # at once: no reader sees the node without its slice
                self.added.append(node["metadata"]["name"])
                return
