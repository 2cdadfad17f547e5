"""The emulated cluster-autoscaler removes a node it added once the node has run only
DaemonSet pods for ``--scale-down-unneeded-time`` (kubernetes/autoscaler FAQ.md, "How does
scale-down work?"), measured on the emulator's clock: the test moves the clock, never
sleeps."""

from __future__ import annotations

from tests.kubeapi import objects as o
from tests.kubeapi.controllers.autoscaler import NodeGroupAutoscaler
from tests.kubeapi.emulator import KubeAPI


def node_objects(index: int) -> list[dict]:
    return [o.node(f"gpu-{index}", labels={"pool": "gpu"})]


def world() -> KubeAPI:
    kube = KubeAPI("1.35")
    kube.clock.scale = 0  # only advance() moves it
    kube.seed([o.node("gpu-0", labels={"pool": "gpu"})])
    return kube


def test_an_added_node_left_empty_is_removed_after_the_unneeded_time_only():
    kube = world()
    scaler = NodeGroupAutoscaler(node_objects, max_nodes=1, unneeded=600)
    scaler.added, scaler.made = ["gpu-1"], {"gpu-1": node_objects(1)}
    kube.seed(node_objects(1))
    scaler.sync(kube)
    kube.clock.advance(599)
    scaler.sync(kube)
    assert kube.find("nodes", "gpu-1") is not None  # not yet unneeded long enough
    kube.clock.advance(1)
    scaler.sync(kube)
    assert kube.find("nodes", "gpu-1") is None
    assert kube.find("nodes", "gpu-0") is not None  # the group's own nodes stay
    assert scaler.added == []


def test_a_workload_pod_keeps_the_node_and_restarts_the_count_daemonset_pods_do_not():
    kube = world()
    kube.seed([o.namespace("default")])
    scaler = NodeGroupAutoscaler(node_objects, max_nodes=1, unneeded=60)
    scaler.added, scaler.made = ["gpu-1"], {"gpu-1": node_objects(1)}
    kube.seed(node_objects(1))
    ds = kube.create(o.ready_daemonset("exporter", "default", "busybox:1.36", 2))
    daemon = o.pod("exporter-gpu-1")
    daemon["spec"]["nodeName"] = "gpu-1"
    daemon["metadata"]["ownerReferences"] = [{
        "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "exporter",
        "uid": ds["metadata"]["uid"], "controller": True}]
    work = o.pod("train")
    work["spec"]["nodeName"] = "gpu-1"
    kube.create(daemon)
    kube.create(work)
    scaler.sync(kube)
    kube.clock.advance(120)
    scaler.sync(kube)
    assert kube.find("nodes", "gpu-1") is not None  # the workload pod holds it
    kube.delete("pods", "train", "default")
    scaler.sync(kube)  # empty (but for the DaemonSet's pod) from now on
    kube.clock.advance(59)
    scaler.sync(kube)
    assert kube.find("nodes", "gpu-1") is not None
    kube.clock.advance(1)
    scaler.sync(kube)
    assert kube.find("nodes", "gpu-1") is None
