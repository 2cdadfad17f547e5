"""A node-group autoscaler: adds a node from a template when pods cannot schedule.

``make(index) -> list[objects]`` builds the next node (and anything that comes with it,
e.g. its ResourceSlice). A node is added when a pod is ``Unschedulable`` and would fit
the template node; at most ``max_nodes`` are added. No scale-down.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .base import Controller
from .scheduler import why_not


class NodeGroupAutoscaler(Controller):
    name = "node-group-autoscaler"
    watches = ("pods",)

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
            if stuck and why_not(pod, node, Counter(), None) is None:
                for obj in template:
                    kube.create(obj, validate=False)
                self.added.append(node["metadata"]["name"])
                return
