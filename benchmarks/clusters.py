"""Emulated clusters of a given size for the benchmarks: the conformant platform (every
probe can PASS on it) plus CPU nodes, with ``pods_per_node`` running pods on every node
(tests/kubeapi emulator)."""

from __future__ import annotations

from tests.kubeapi import objects
from tests.kubeapi.emulator import KubeAPI
from tests.kubeapi.scenarios import conformant_platform

POD = {"apiVersion": "v1", "kind": "Pod",
       "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
       "status": {"phase": "Running"}}


def sized(nodes: int, pods_per_node: int = 20, *, gpu_nodes: int = 2) -> KubeAPI:
    """A cluster of ``nodes`` nodes (``gpu_nodes`` of them GPU nodes), not yet started.

    Callers ``start()`` it, then ``settle()`` it before measuring: its controllers create
    the operators' pods and DCGM exporters, as a real cluster has them before a run.
    """
    kube = conformant_platform(gpu_nodes=gpu_nodes, cpu_nodes=2)
    extra = max(0, nodes - gpu_nodes - 2)
    kube.seed(objects.node(f"worker-{i:05d}", labels={"aicp.dev/pool": "workers"})
              for i in range(extra))
    names = [f"worker-{i:05d}" for i in range(extra)]
    names += [f"system-{i}" for i in range(2)] + [f"gpu-h100-{i}" for i in range(gpu_nodes)]
    kube.seed(objects.namespace(f"team-{i}") for i in range(10))
    kube.seed({**POD, "metadata": {"name": f"app-{n}-{j}", "namespace": f"team-{j % 10}",
                                   "labels": {"app": f"app-{j}"}},
               "spec": {**POD["spec"], "nodeName": n}}
              for n in names for j in range(pods_per_node))
    return kube
