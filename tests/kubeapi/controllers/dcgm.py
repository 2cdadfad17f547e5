"""The GPU Operator's DCGM exporter: a pod per GPU node serving dcgm-exporter's exposition.

``exporters(kube, nodes)`` starts one exporter pod on each named node, its ``/metrics``
served through the API server's pod proxy (``pods/<pod>:9400/proxy/metrics``);
``text(node)`` is what it serves (``dcgm_text``: the default counters), ``labels`` how it
is labelled. ``DcgmExporters`` does it for every node labelled
``nvidia.com/gpu.present=true``, nodes an autoscaler adds included, as the operator's
DaemonSet would.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Controller

NAMESPACE = "gpu-operator"
PORT = 9400
GPU_PRESENT = "nvidia.com/gpu.present=true"
TextFn = Callable[[str], str]


def dcgm_text(node: str, gpus: int = 8, memory: bool = True) -> str:
    """What dcgm-exporter 4.x serves with its default counters (default-counters.csv)."""
    metrics = [("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "37"),
               ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "41"),
               ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "118.625")]
    if memory:
        metrics += [("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
                     "80562"),
                    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "517")]
    lines = []
    for name, kind, help_text, value in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{gpu="{i}",UUID="GPU-{node}-{i:02d}",pci_bus_id="00000000:{i:02X}:00.0",'
                  f'device="nvidia{i}",modelName="NVIDIA H100 80GB HBM3",Hostname="{node}",'
                  f'DCGM_FI_DRIVER_VERSION="580.65.06"}} {value}' for i in range(gpus)]
    return "\n".join(lines) + "\n"


def pod_name(node: str) -> str:
    return f"nvidia-dcgm-exporter-{node}"


def exporter(kube, node: str, text: TextFn = dcgm_text, labels: dict | None = None) -> None:
    """One exporter pod on ``node``, labelled as the GPU Operator labels it, and its proxy."""
    name = pod_name(node)
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": NAMESPACE,
        "labels": labels or {"app": "nvidia-dcgm-exporter"}},
        "spec": {"nodeName": node, "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "nvidia-dcgm-exporter",
                                 "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3",
                                 "ports": [{"name": "metrics", "containerPort": PORT}]}]}})
    body = text(node)
    kube.proxy("pod", name, lambda *_, b=body: (200, {"Content-Type": "text/plain"}, b),
               namespace=NAMESPACE, port=PORT)


def exporters(kube, nodes: list[str], text: TextFn = dcgm_text,
              labels: dict | None = None) -> None:
    """An exporter on each of ``nodes`` (a started emulator), Running once this returns."""
    for node in nodes:
        exporter(kube, node, text, labels)
    kube.settle()


class DcgmExporters(Controller):
    name = "dcgm-exporters"
    watches = ("nodes",)
    resync = None  # only a new node needs an exporter

    def __init__(self, text: TextFn = dcgm_text):
        self.text = text

    def sync(self, kube) -> None:
        for node in kube.view("nodes", labels=GPU_PRESENT):
            name = node["metadata"]["name"]
            if kube.find("pods", pod_name(name), NAMESPACE) is None:
                exporter(kube, name, self.text)
