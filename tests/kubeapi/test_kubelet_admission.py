"""The kubelet admits a pod placed by nodeName only where its node affinity allows."""

from __future__ import annotations

from tests.kubeapi import objects as o
from tests.kubeapi.emulator import KubeAPI
from tests.kubeapi.scenarios import standard_controllers


def _kube() -> KubeAPI:
    kube = KubeAPI("1.35")
    kube.seed([o.node("cpu-0", labels={"pool": "cpu"}), o.gpu_node("gpu-0", gpus=1)])
    standard_controllers(kube, dra=False, kueue=False)
    return kube.start()


def test_a_pod_on_a_node_its_selector_refuses_fails_with_node_affinity():
    kube = _kube()
    try:
        body = o.pod("misplaced", node_selector={"pool": "gpu"}, command=["true"])
        body["spec"]["nodeName"] = "cpu-0"
        kube.create(body)
        fitting = o.pod("placed", node_selector={"pool": "cpu"}, command=["true"])
        fitting["spec"]["nodeName"] = "cpu-0"
        kube.create(fitting)
        kube.settle()
        misplaced = kube.find("pods", "misplaced", "default")["status"]
        assert (misplaced["phase"], misplaced["reason"]) == ("Failed", "NodeAffinity")
        assert misplaced["message"] == "Pod was rejected: Predicate NodeAffinity failed"
        assert kube.find("pods", "placed", "default")["status"]["phase"] == "Succeeded"
    finally:
        kube.stop()
