"""A PodGroup gang scheduler (KAI scheduler or Volcano): binds a group's pods all at once.

Pods naming ``scheduler_name`` join the PodGroup their ``membership`` key names (KAI: the
``pod-group-name`` annotation; Volcano: ``scheduling.k8s.io/group-name``). Nothing of a
group is bound until ``spec.minMember`` of its pods are Pending and fit the nodes
together; then all are bound in one pass (the default scheduler's fit rules). Until then
its pods are ``Unschedulable`` and the PodGroup's ``status.phase`` is ``Pending``
(``Running`` once bound). ``all_or_nothing=False`` binds each pod as it fits (a scheduler
that ignores the gang).
"""

from __future__ import annotations

from collections import Counter

from ..store import now
from .base import Controller
from .resources import pod_requests
from .scheduler import usage_by_node, why_not


class PodGroupScheduler(Controller):
    name = "podgroup-scheduler"
    watches = ("pods", "nodes")

    def __init__(self, scheduler_name: str, podgroups: str, membership: str, *,
                 all_or_nothing: bool = True):
        self.scheduler_name, self.podgroups, self.membership = (scheduler_name, podgroups,
                                                                membership)
        self.all_or_nothing = all_or_nothing

    def sync(self, kube) -> None:
        pods = kube.view("pods")
        nodes = sorted(kube.view("nodes"), key=lambda n: n["metadata"]["name"])
        used = usage_by_node(pods)
        groups: dict[tuple[str, str], list[dict]] = {}
        for pod in pods:
            spec, meta = pod["spec"], pod["metadata"]
            if spec.get("schedulerName") != self.scheduler_name or spec.get("nodeName") \
                    or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
                continue
            group = (meta.get("annotations") or {}).get(self.membership, "")
            groups.setdefault((meta["namespace"], group), []).append(pod)
        for (ns, group), members in groups.items():
            pg = kube.find(self.podgroups, group, ns) if group else None
            need = int(((pg or {}).get("spec") or {}).get("minMember", 1))
            placed = self._place(members, nodes, used)
            if self.all_or_nothing and (len(members) < need or placed is None):
                self._phase(kube, pg, "Pending")
                continue
            for pod, node in (placed or {}).items():
                kube.bind(ns, pod, node)
            self._phase(kube, pg, "Running")

    def _place(self, members: list[dict], nodes: list[dict], used: dict) -> dict | None:
        trial = {k: Counter(v) for k, v in used.items()}
        out = {}
        for pod in members:
            for node in nodes:
                name = node["metadata"]["name"]
                if why_not(pod, node, trial.get(name, Counter()), None) is None:
                    trial.setdefault(name, Counter()).update(pod_requests(pod["spec"]))
                    out[pod["metadata"]["name"]] = name
                    break
            else:
                if self.all_or_nothing:
                    return None
        return out

    def _phase(self, kube, pg: dict | None, phase: str) -> None:
        if pg is None or (pg.get("status") or {}).get("phase") == phase:
            return
        kube.mutate(self.podgroups, pg["metadata"]["name"],
                    lambda g: g.update(status={"phase": phase, "conditions": [{
                        "type": "Scheduled" if phase == "Running" else "Unschedulable",
                        "status": "True", "lastTransitionTime": now()}]}),
                    pg["metadata"]["namespace"], status=True)
