"""A node-group autoscaler: adds a node from a template when pods cannot schedule.

``make(index) -> list[objects]`` builds the next node (and anything that comes with it,
e.g. its ResourceSlice). A node is added when a pod is ``Unschedulable`` and would fit
the template node; at most ``max_nodes`` are added. The pod gets the events
cluster-autoscaler emits (kubernetes/autoscaler FAQ.md: ``TriggeredScaleUp``, and
``NotTriggerScaleUp`` "max node group size reached" once the group is full).

Scale-down as cluster-autoscaler does it for the nodes it added: a node that has run no
pod but DaemonSet pods for ``unneeded`` seconds of the emulator's clock is removed, with
the objects that came with it (kubernetes/autoscaler FAQ.md "How does scale-down work?":
a node is considered for removal when "all pods running on this node (except these that
run on all nodes by default, like manifest-run pods or pods created by daemonsets) can be
moved" and it has been unneeded for ``--scale-down-unneeded-time``, default 10 minutes).
Only the added nodes go: the group never shrinks below its size when the world began.

``status_configmap`` is the status ConfigMap cluster-autoscaler writes; ``fixture_status``
takes its body from the real captures in ``../shared/fixtures`` (legacy text or YAML).
``helm_deployment`` is the Deployment the upstream chart renders in its release namespace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import yaml

from ...shared import require_shared
from ..objects import ready_deployment
from ..store import now
from .base import Controller
from .scheduler import claim_node_selectors, why_not

IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.1"


def fixture_status(name: str) -> str:
    """``data.status`` of ``../shared/fixtures/cluster-autoscaler-status-<name>.yaml``."""
    path = require_shared("fixtures", f"cluster-autoscaler-status-{name}.yaml")
    return yaml.safe_load(path.read_text())["data"]["status"]


def status_configmap(kube, namespace: str = "kube-system",
                     name: str = "cluster-autoscaler-status",
                     status: str = "time: 2026-01-01 00:00:00\nautoscalerStatus: Running\n"
                     ) -> None:
    """What cluster-autoscaler writes in its ``--namespace`` while it runs."""
    kube.seed([{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": {"status": status}}])


def helm_deployment(namespace: str, args: list[str] | None = None) -> dict:
    """The chart's Deployment, Ready: ``--namespace={{ .Release.Namespace }}`` among its
    args (kubernetes/autoscaler@55c37cd5 charts/cluster-autoscaler/templates/deployment.yaml
    L66-72, cited in ../shared/fixtures/cluster-autoscaler-status-legacy.yaml)."""
    dep = ready_deployment("cluster-autoscaler-aws-cluster-autoscaler", namespace, IMAGE,
                           labels={"app.kubernetes.io/name": "aws-cluster-autoscaler",
                                   "app.kubernetes.io/instance": "cluster-autoscaler"})
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["./cluster-autoscaler", "--cloud-provider=aws",
                            f"--namespace={namespace}", *(args or [])]
    return dep


def _unbound(pod: dict) -> bool:
    """The pods a scale-up may be for (``KubeAPI.view``'s ``where``)."""
    return not pod["spec"].get("nodeName")


class NodeGroupAutoscaler(Controller):
    name = "node-group-autoscaler"
    watches = ("pods",)
    resync = None  # the scheduler's write of Unschedulable is what it waits for

    # cluster-autoscaler's --scale-down-unneeded-time default (FAQ.md, "What are the
    # parameters to CA?"), and aicp's own value (addons/cluster_autoscaler.py).
    UNNEEDED = 600.0

    def __init__(self, make: Callable[[int], list[dict]], max_nodes: int = 3,
                 unneeded: float = UNNEEDED):
        self.make, self.max_nodes, self.unneeded = make, max_nodes, unneeded
        self.added: list[str] = []
        self.made: dict[str, list[dict]] = {}  # node → the objects that came with it
        self.empty_since: dict[str, float] = {}
        self.reported: set[tuple[str, str]] = set()

    def sync(self, kube) -> None:
        self._scale_down(kube)
        self._scale_up(kube)

    def _scale_down(self, kube) -> None:
        if not self.added:
            return  # nothing of its own to remove: no pass over every pod
        now = kube.clock.now()
        busy = {pod["spec"].get("nodeName") for name in self.added
                for pod in kube.view("pods", fields=f"spec.nodeName={name}")
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and not any(o.get("kind") == "DaemonSet"
                            for o in pod["metadata"].get("ownerReferences") or [])}
        for name in list(self.added):
            if name in busy:
                self.empty_since.pop(name, None)
                continue
            since = self.empty_since.setdefault(name, now)
            if now - since < self.unneeded:
                kube.controllers.timer(self, since + self.unneeded)
                continue
            for obj in reversed(self.made.pop(name, [])):
                res, meta = kube.discovery.for_object(obj), obj["metadata"]
                ref = f"{res.plural}.{res.group}" if res.group else res.plural
                if kube.find(ref, meta["name"], meta.get("namespace")) is not None:
                    kube.delete(ref, meta["name"], meta.get("namespace"))
            self.added.remove(name)
            self.empty_since.pop(name, None)

    def _scale_up(self, kube) -> None:
        full = len(self.added) >= self.max_nodes
        template = self.make(len(self.added) if not full else 0)
        node = next(o for o in template if o["kind"] == "Node")
        for pod in kube.view("pods", where=_unbound):
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
                if full:
                    self._event(kube, pod, "NotTriggerScaleUp", "pod didn't trigger scale-up: "
                                "1 max node group size reached")
                    continue
                kube.seed(template)  # at once: no reader sees the node without its slice
                self.added.append(node["metadata"]["name"])
                self.made[node["metadata"]["name"]] = template
                self._event(kube, pod, "TriggeredScaleUp", "pod triggered scale-up: "
                            f"[{{gpu {len(self.added) - 1}->{len(self.added)} "
                            f"(max: {self.max_nodes})}}]")
                return

    def _event(self, kube, pod: dict, reason: str, message: str) -> None:
        meta = pod["metadata"]
        if (meta["uid"], reason) in self.reported:
            return
        self.reported.add((meta["uid"], reason))
        kube.create({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"generateName": meta["name"] + ".",
                                  "namespace": meta["namespace"]},
                     "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                        "namespace": meta["namespace"], "uid": meta["uid"]},
                     "reason": reason, "message": message, "type": "Normal",
                     "source": {"component": "cluster-autoscaler"},
                     "reportingComponent": "cluster-autoscaler", "count": 1,
                     "firstTimestamp": now(), "lastTimestamp": now()})
