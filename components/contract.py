"""The contract every target (aws, gcp, azure, onprem) hands to the addon layer.

A target builds a cluster and its GPU pools and returns ``ClusterOutputs``; addons read
only this, never a target's children. A team forking one target needs this file and the
accelerator catalog, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from .accelerators import ACCELERATORS, offering

# Nodes of GPU pools carry this taint so that pods which ask for no GPU stay off them.
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"

LABEL_POOL = "aicp.dev/gpu-pool"
LABEL_ACCELERATOR = "aicp.dev/accelerator"
LABEL_ALLOCATOR = "aicp.dev/gpu-allocator"
LABEL_GPU_PRESENT = "nvidia.com/gpu.present"
# GPU Operator per-node switch: the DRA driver, not the device plugin, advertises these GPUs.
LABEL_DEVICE_PLUGIN = "nvidia.com/gpu.deploy.device-plugin"
# "true" on DRA nodes; the DRA kubelet plugin selects on it. The GPU Operator's driver manager
# flips it to "paused-for-driver-upgrade" to evict the plugin before a driver reload, when its
# NODE_LABEL_FOR_GPU_POD_EVICTION names it (NVIDIA/k8s-driver-manager@bd62ca7, 2026-08-19,
# cmd/driver-manager/main.go "node-label-for-gpu-pod-eviction"; GPU Operator DRA install docs,
# known issue: "label the nodes ... and pass the node label in driver.manager.env").
LABEL_DRA_KUBELET_PLUGIN = "aicp.dev/dra-kubelet-plugin"

# Component outputs key listing the conformance requirement ids a component serves.
CONFORMANCE_OUTPUT = "conformance"

Allocator = Literal["dra", "device-plugin"]
Autoscaler = Literal["cluster-autoscaler", "gke", "aks", "none"]


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


GPU_TAINT = Taint(GPU_TAINT_KEY, GPU_TAINT_VALUE, "NoSchedule")


@dataclass(frozen=True)
class GpuPoolRequest:
    """What a stack asks of a target for one GPU pool."""

    name: str
    accelerator: str
    max_nodes: int
    min_nodes: int = 0
    instance_type: str | None = None
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    capacity_reservation_id: str | None = None
    allocator: Allocator = "dra"
    gpus_per_node: int | None = None  # on-prem only


@dataclass(frozen=True)
class GpuPool:
    """A GPU pool as built: what the addon layer and ``aicp verify`` rely on."""

    name: str
    accelerator: str
    product: str
    machine_type: str
    gpus_per_node: int
    gpu_memory_gib: int
    min_nodes: int
    max_nodes: int
    allocator: Allocator
    capacity_type: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]

    def export(self) -> dict[str, Any]:
        """The stack-output shape ``aicp verify --stack`` reads."""
        return {
            "name": self.name, "accelerator": self.accelerator, "product": self.product,
            "machineType": self.machine_type, "gpusPerNode": self.gpus_per_node,
            "gpuMemoryGiB": self.gpu_memory_gib, "minNodes": self.min_nodes,
            "maxNodes": self.max_nodes, "allocator": self.allocator,
            "capacityType": self.capacity_type, "labels": dict(self.labels),
            "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in self.taints],
        }


def resolve_pool(target: str, request: GpuPoolRequest) -> GpuPool:
    """Fill a pool request in from the accelerator catalog: machine type, GPUs, labels, taint."""
    accel = ACCELERATORS[request.accelerator]
    if target == "onprem":
        machine, gpus, memory = request.instance_type or "", request.gpus_per_node or 0, \
            accel.memory_gib
    else:
        o = offering(target, request.accelerator, request.instance_type)
        machine, gpus, memory = o.machine_type, o.gpus, o.gpu_memory_gib
    labels = {
        LABEL_POOL: request.name,
        LABEL_ACCELERATOR: request.accelerator,
        LABEL_ALLOCATOR: request.allocator,
        LABEL_GPU_PRESENT: "true",
    }
    if request.allocator == "dra":
        labels[LABEL_DEVICE_PLUGIN] = "false"
        labels[LABEL_DRA_KUBELET_PLUGIN] = "true"
    return GpuPool(
        name=request.name, accelerator=request.accelerator, product=accel.product,
        machine_type=machine, gpus_per_node=gpus, gpu_memory_gib=memory,
        min_nodes=request.min_nodes, max_nodes=request.max_nodes,
        allocator=request.allocator, capacity_type=request.capacity_type,
        labels=labels, taints=(GPU_TAINT,))


@dataclass(frozen=True)
class GpuDriver:
    """Who puts the NVIDIA driver on GPU nodes, and where it ends up on the host."""

    owner: Literal["host", "operator"]
    # Host path of the driver root: the DRA driver's nvidiaDriverRoot must equal it.
    root: str
    # GPU Operator chart values this target needs (runtime class, toolkit paths...).
    operator_values: Mapping[str, Any] = field(default_factory=dict)
    toolkit_on_host: bool = True


@dataclass(frozen=True)
class ClusterOutputs:
    """What a target hands the addon layer."""

    target: str
    name: pulumi.Input[str]
    kubernetes_version: str
    kubeconfig: pulumi.Output[str]  # always a secret
    provider: Any  # pulumi_kubernetes.Provider bound to this cluster
    gpu_pools: tuple[GpuPool, ...]
    gpu_driver: GpuDriver
    autoscaler: Autoscaler
    # Chart values the cluster-autoscaler addon needs on this target (cloud provider,
    # auto-discovery, workload identity); empty where the target scales nodes itself.
    autoscaler_values: Mapping[str, Any] = field(default_factory=dict)
    # Resources the addons must wait for (e.g. the system node group their pods run on).
    ready: Sequence[pulumi.Resource] = ()
    # Target-specific facts addons may honour, e.g. {"gatewayApiCrdsManaged": True} on GKE.
    features: Mapping[str, Any] = field(default_factory=dict)


# ClusterOutputs.features key: the cluster admits pods of the system-node-critical and
# system-cluster-critical PriorityClasses outside kube-system only in namespaces holding a
# ResourceQuota scoped to them (GKE; NVIDIA/aicr#915, NVIDIA/gpu-operator#660).
CRITICAL_PODS_NEED_QUOTA = "criticalPodsNeedQuota"
