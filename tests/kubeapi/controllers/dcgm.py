"""The GPU Operator's DCGM exporter: a pod per GPU node serving dcgm-exporter's exposition.

``exporters(kube, nodes)`` starts one exporter pod on each named node, its ``/metrics``
served through the API server's pod proxy (``pods/<pod>:9400/proxy/metrics``) and computed
at each scrape; ``text(node)`` overrides what it serves, ``labels`` how it is labelled.
``DcgmExporters`` does it for every node labelled ``nvidia.com/gpu.present=true``, nodes
an autoscaler adds included, as the operator's DaemonSet would.

Utilisation follows NVML's definition: ``nvmlUtilization_t.gpu`` is the "percent of time
over the past sample period during which one or more kernels was executing on the GPU"
(NVML API reference, ``nvmlDeviceGetUtilizationRates``), so an idle GPU reports 0
(../shared/fixtures/dcgm-exporter-metrics.txt part 1: an idle L40S, ``DCGM_FI_DEV_GPU_UTIL``
0 and ``DCGM_FI_DEV_FB_USED`` 0). A GPU is busy only while a running container holding it
runs a CUDA compute binary (``COMPUTE_BINARIES``: the CUDA samples' ``nbody``, e.g.
``nbody -benchmark``, or DCGM's ``dcgmproftester``); ``nvidia-smi`` loops, everything else
and a container waiting in CrashLoopBackOff launch no kernel and leave it at 0.
``pod_gpu_util(kube, pod)`` is the same rule for one pod (what a metrics adapter serves per
pod).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .base import Controller
from .kubelet import allocated_gpus, argv, container_running

NAMESPACE = "gpu-operator"
PORT = 9400
GPU_PRESENT = "nvidia.com/gpu.present=true"
TextFn = Callable[[str], str]
COMPUTE_BINARIES = ("nbody", "dcgmproftester")
BUSY = 100.0  # a kernel running the whole sample period
_COMPUTE = re.compile(r"(?:^|[\s/;&|(])(?:nbody|dcgmproftester\d*)(?=$|[\s;&|)])")


def runs_compute(words: list[str]) -> bool:
    """Whether a container's command/args run a CUDA compute binary (module doc)."""
    return bool(_COMPUTE.search(" ".join(words)))


def _index(device: dict) -> int | None:
    attrs = device.get("attributes") or {}
    value = (attrs.get("index") or {}).get("int")
    if value is not None:
        return int(value)
    m = re.match(r"gpu-(\d+)", device.get("name", ""))
    return int(m.group(1)) if m else None


def _compute_containers(kube, pod: dict) -> list[str]:
    if (pod.get("status") or {}).get("phase") != "Running":
        return []
    return [c["name"] for c in pod["spec"].get("containers") or []
            if runs_compute(argv(pod, c["name"])) and container_running(pod, c["name"])]


def busy_gpus(kube, node: str) -> set[int]:
    """Indices of the node's GPUs a Running compute container holds."""
    busy: set[int] = set()
    for pod in kube.view("pods", fields=f"spec.nodeName={node}"):
        for container in _compute_containers(kube, pod):
            busy |= {i for d in allocated_gpus(kube, pod, container)
                     if (i := _index(d)) is not None}
    return busy


def pod_gpu_util(kube, pod: dict) -> float | None:
    """DCGM's utilisation of the GPUs a pod holds: ``BUSY`` while one of its containers
    holding a GPU runs a compute binary, 0 otherwise; None when it holds no GPU or is not
    Running (no series is attributed to it)."""
    if (pod.get("status") or {}).get("phase") != "Running" or not allocated_gpus(kube, pod):
        return None
    return BUSY if any(allocated_gpus(kube, pod, c) for c in _compute_containers(kube, pod)) \
        else 0.0


def dcgm_text(node: str, gpus: int = 8, memory: bool = True, busy: set[int] | None = None,
              model: str = "NVIDIA H100 80GB HBM3") -> str:
    """dcgm-exporter's default counters for ``gpus`` GPUs, labelled as in the fixture
    (gpu, UUID, pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION); GPUs in
    ``busy`` run a kernel, the rest idle (utilisation 0, framebuffer 0 used)."""
    busy = busy or set()
    metrics = [("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).",
                lambda i: f"{BUSY:g}" if i in busy else "0"),
               ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).",
                lambda i: "63" if i in busy else "32"),
               ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).",
                lambda i: "612.5" if i in busy else "71.25")]
    if memory:
        metrics += [("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
                     lambda i: "79000" if i in busy else "81079"),
                    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
                     lambda i: "2079" if i in busy else "0")]
    lines = []
    for name, kind, help_text, value in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{gpu="{i}",UUID="GPU-{node}-{i:02d}",pci_bus_id="00000000:{i:02X}:00.0",'
                  f'device="nvidia{i}",modelName="{model}",Hostname="{node}",'
                  f'DCGM_FI_DRIVER_VERSION="580.65.06"}} {value(i)}' for i in range(gpus)]
    return "\n".join(lines) + "\n"


def node_gpus(node: dict) -> int:
    """Physical GPUs of a node: GFD's count, else allocatable nvidia.com/gpu."""
    labels = node["metadata"].get("labels") or {}
    for key in ("nvidia.com/gpu.count", "nvidia.com/gpu.shared.count"):
        if labels.get(key, "").isdigit():
            return int(labels[key])
    try:
        return int(str(((node.get("status") or {}).get("allocatable") or {}).get(
            "nvidia.com/gpu", 0)))
    except ValueError:
        return 0


def pod_name(node: str) -> str:
    return f"nvidia-dcgm-exporter-{node}"


def exporter(kube, node: str, text: TextFn | None = None, labels: dict | None = None) -> None:
    """One exporter pod on ``node``, labelled as the GPU Operator labels it, and its proxy
    (the exposition computed at each scrape, so utilisation follows the workloads)."""
    name = pod_name(node)
    meta: dict = {"name": name, "namespace": NAMESPACE,
                  "labels": labels or {"app": "nvidia-dcgm-exporter"}}
    # Where the world has the operator's DaemonSet, the pod is its own, as the DaemonSet
    # controller makes it (a controller ownerReference): what cluster-autoscaler's
    # scale-down leaves out of a node's pods (kubernetes/autoscaler FAQ.md).
    owner = kube.find("daemonsets.apps", "nvidia-dcgm-exporter", NAMESPACE)
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                    "name": "nvidia-dcgm-exporter",
                                    "uid": owner["metadata"]["uid"], "controller": True,
                                    "blockOwnerDeletion": True}]
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node, "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "nvidia-dcgm-exporter",
                                 "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3",
                                 "ports": [{"name": "metrics", "containerPort": PORT}]}]}})

    def serve(*_):
        if text is not None:
            body = text(node)
        else:
            found = kube.find("nodes", node) or {"metadata": {}}
            body = dcgm_text(node, gpus=node_gpus(found), busy=busy_gpus(kube, node))
        return 200, {"Content-Type": "text/plain"}, body

    kube.proxy("pod", name, serve, namespace=NAMESPACE, port=PORT)


def exporters(kube, nodes: list[str], text: TextFn | None = None,
              labels: dict | None = None) -> None:
    """An exporter on each of ``nodes`` (a started emulator), Running once this returns."""
    for node in nodes:
        exporter(kube, node, text, labels)
    kube.settle()


class DcgmExporters(Controller):
    name = "dcgm-exporters"
    watches = ("nodes",)
    resync = None  # only a new node needs an exporter

    def __init__(self, text: TextFn | None = None, labels: dict | None = None):
        self.text, self.labels = text, labels

    def sync(self, kube) -> None:
        for node in kube.view("nodes", labels=GPU_PRESENT):
            name = node["metadata"]["name"]
            # The operator runs no exporter on VM GPU hosts (deploy labels are set only for
            # nvidia.com/gpu.workload.config=container: gpu-operator state_manager.go).
            workload = (node["metadata"].get("labels") or {}).get(
                "nvidia.com/gpu.workload.config", "container")
            if workload != "container":
                continue
            if kube.find("pods", pod_name(name), NAMESPACE) is None:
                exporter(kube, name, self.text, self.labels)
