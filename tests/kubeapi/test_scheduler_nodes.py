"""Cordoned and NotReady nodes as kube-scheduler sees them.

kube-scheduler's NodeUnschedulable plugin filters a node with ``spec.unschedulable`` unless
the pod tolerates ``node.kubernetes.io/unschedulable:NoSchedule``; NotReady nodes are seen
only through the taints the node lifecycle controller puts on them
(``node.kubernetes.io/not-ready`` for Ready=False, ``node.kubernetes.io/unreachable`` for
Unknown), so a pod tolerating the taint may land there. Messages are the plugins' own
(``ErrReasonUnschedulable``; TaintToleration's ``node(s) had untolerated taint {k: v}``).
"""

from __future__ import annotations

from tests.kubeapi import objects as o
from tests.kubeapi.controllers.scheduler import Scheduler


def _world(kubeapi_factory, node: dict):
    kube = kubeapi_factory("empty")
    kube.seed([node])
    kube.add(Scheduler())
    return kube


def _placed(kube, pod: dict) -> tuple[str | None, str]:
    kube.create(pod)
    kube.settle()
    got = kube.get("pods", pod["metadata"]["name"], "default")
    cond = next((c for c in got["status"].get("conditions") or []
                 if c["type"] == "PodScheduled"), {})
    return got["spec"].get("nodeName"), cond.get("message", "")


def _not_ready(name: str, status: str) -> dict:
    node = o.node(name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status=status, reason="KubeletNotReady" if status == "False"
                 else "NodeStatusUnknown")
    return node


UNSCHEDULABLE = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                 "effect": "NoSchedule"}


def test_a_cordoned_node_takes_only_pods_tolerating_the_unschedulable_taint(kubeapi_factory):
    cordoned = o.node("cordoned")
    cordoned["spec"]["unschedulable"] = True
    kube = _world(kubeapi_factory, cordoned)
    assert _placed(kube, o.pod("plain")) == (
        None, "0/1 nodes are available: 1 node(s) were unschedulable.")
    assert _placed(kube, o.pod("tolerant", tolerations=[UNSCHEDULABLE]))[0] == "cordoned"
    # A blanket toleration tolerates it too (TolerationsTolerateTaint: empty key, Exists).
    assert _placed(kube, o.pod("blanket", tolerations=[{"operator": "Exists"}]))[0] == \
        "cordoned"


def test_a_not_ready_node_is_seen_through_its_not_ready_taint(kubeapi_factory):
    kube = _world(kubeapi_factory, _not_ready("down", "False"))
    assert _placed(kube, o.pod("plain")) == (
        None, "0/1 nodes are available: 1 node(s) had untolerated taint "
              "{node.kubernetes.io/not-ready: }.")
    tolerant = o.pod("tolerant", tolerations=[{"key": "node.kubernetes.io/not-ready",
                                               "operator": "Exists",
                                               "effect": "NoSchedule"}])
    assert _placed(kube, tolerant)[0] == "down"


def test_a_node_whose_kubelet_stopped_reporting_is_unreachable(kubeapi_factory):
    kube = _world(kubeapi_factory, _not_ready("gone", "Unknown"))
    assert _placed(kube, o.pod("plain"))[1].endswith(
        "untolerated taint {node.kubernetes.io/unreachable: }.")
    # Tolerating not-ready is not enough: the taint is a different key.
    not_ready_only = o.pod("wrong-key", tolerations=[{"key": "node.kubernetes.io/not-ready",
                                                      "operator": "Exists"}])
    assert _placed(kube, not_ready_only)[0] is None


def test_the_lifecycle_controllers_own_taint_is_not_doubled(kubeapi_factory):
    node = _not_ready("down", "False")
    node["spec"]["taints"] = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule",
                               "timeAdded": "2026-01-01T00:00:00Z"},
                              {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute",
                               "timeAdded": "2026-01-01T00:00:00Z"}]
    kube = _world(kubeapi_factory, node)
    # DefaultTolerationSeconds gives every pod not-ready:NoExecute for 300 s; NoSchedule
    # still keeps it off.
    noexecute = {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}
    assert _placed(kube, o.pod("plain", tolerations=[noexecute]))[0] is None
    both = [noexecute, {**noexecute, "effect": "NoSchedule"}]
    both[1].pop("tolerationSeconds")
    assert _placed(kube, o.pod("both", tolerations=both))[0] == "down"


def test_a_ready_schedulable_node_is_unaffected(kubeapi_factory):
    kube = _world(kubeapi_factory, o.node("fine"))
    assert _placed(kube, o.pod("plain"))[0] == "fine"
