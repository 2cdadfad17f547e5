"""The contract every target (aws, gcp, azure, onprem) hands to the addon layer.

A target builds a cluster and its GPU pools and returns ``ClusterOutputs``; addons read
only this, never a target's children. A team forking one target needs this file and the
accelerator catalog, nothing else.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
from pulumi.errors import InputPropertyError

from .accelerators import ACCELERATORS, TARGETS, machine_types, offered, offering, racked
from .fabric import LABEL_FABRIC, pool_fabric
from .storage import StorageOutputs

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
# How a pool's machines are bought: on-demand, spot (every cloud), an EC2 Capacity Block for
# ML (aws), GKE Dynamic Workload Scheduler flex-start VMs or flex-start with queued
# provisioning (gcp). Each target refuses what it does not sell (``capacity_types``).
CapacityType = Literal["on-demand", "spot", "capacity-block", "flex-start",
                       "queued-provisioning"]
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
    capacity_type: CapacityType = "on-demand"
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
    # The pool's GPU fabric (components/fabric.py pool_fabric), None on other machine types.
    fabric: Mapping[str, Any] | None = None

    def export(self) -> dict[str, Any]:
        """The stack-output shape ``aicp verify --stack`` reads."""
        fabric = {"fabric": dict(self.fabric)} if self.fabric is not None else {}
        return {
            "name": self.name, "accelerator": self.accelerator, "product": self.product,
            "machineType": self.machine_type, "gpusPerNode": self.gpus_per_node,
            "gpuMemoryGiB": self.gpu_memory_gib, "minNodes": self.min_nodes,
            "maxNodes": self.max_nodes, "allocator": self.allocator,
            "capacityType": self.capacity_type, "labels": dict(self.labels),
            "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in self.taints],
            **fabric,
        }


class PropertyError(InputPropertyError):
    """``InputPropertyError`` whose reason also names other properties of the same args.

    Components refuse bad arguments with ``InputPropertyError(property_path, reason)``, as
    pulumi/pulumi-eks does (nodejs/eks/nodes/ami.ts ``getOperatingSystem``: property path
    ``amiType``); the stack maps the path to the config key a person sets. Where the reason
    must point at another property ("or give subnet_ids"), ``template`` holds ``{0}``,
    ``{1}``... for the paths in ``see`` and ``{name}`` for ``values``, so the stack can name
    those properties by their config keys too (``render``); ``reason`` names them by their
    property paths.
    """

    def __init__(self, property_path: str, template: str, see: tuple[str, ...] = (),
                 **values: Any) -> None:
        super().__init__(property_path, template.format(*see, **values))
        self.template = template
        self.see = see
        self.values = values

    def render(self, name: Callable[[str], str]) -> str:
        """The reason with every property in ``see`` called ``name(path)``."""
        return self.template.format(*(name(path) for path in self.see), **self.values)


def ipv4_network(property_path: str, value: str, example: str) -> ipaddress.IPv4Network:
    """``value`` as an IPv4 network, or ``InputPropertyError`` naming ``property_path``."""
    try:
        net = ipaddress.ip_network(value)
    except ValueError:
        raise InputPropertyError(
            property_path, f"{value!r} is not an IPv4 CIDR block (like {example})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InputPropertyError(
            property_path, f"{value!r} is IPv6; give an IPv4 CIDR block (like {example})")
    return net


# A cluster's system pool runs the cluster's own services (DNS, the addons' controllers):
# it never scales to zero.
SYSTEM_MIN_NODES = 1


def node_range(property_path: str, low: int, high: int, high_name: str,
               least: int = 0) -> None:
    """A pool's node range: ``low`` (at ``property_path``) at least ``least`` and no more
    than ``high`` (its property ``high_name``), or ``InputPropertyError``."""
    if low < least:
        raise InputPropertyError(property_path, f"{low} must be at least {least}")
    if low > high:
        raise InputPropertyError(property_path, f"{low} is more than {high_name} {high}")


def region_code(property_path: str, region: str, code: re.Pattern[str], example: str,
                a_cloud: str, target: str) -> None:
    """A region is given, as its code (``example``), never as a display name ("US West
    (Oregon)"); ``code`` is the cloud's form, from its component."""
    if not region:
        raise InputPropertyError(property_path, f"required for target {target}")
    if not code.match(region):
        raise InputPropertyError(
            property_path, f"{region!r} is not {a_cloud} region code (like {example})")


def of_form(property_path: str, value: str | None, form: re.Pattern[str], what: str) -> None:
    """``value``, unless None, has the cloud's ``form`` (from its component, with the
    source); else ``InputPropertyError``: "<value> is not <what>" (``what`` names it and
    gives an example)."""
    if value is not None and not form.match(value):
        raise InputPropertyError(property_path, f"{value!r} is not {what}")


def validate_pools(target: str, pools: Sequence[GpuPoolRequest]) -> None:
    """What every target refuses in its ``gpu_pools``, as ``InputPropertyError``.

    Pool names are unique; the accelerator and machine type are in the accelerator catalog
    of ``target``; the GPU count per node is given on-prem (racked hardware) and follows the
    machine type elsewhere; capacity reservations hold on-demand capacity (EC2 "On-Demand
    Capacity Reservations", GCE reservations, Azure capacity reservation groups: none of
    them applies to Spot).
    """
    seen: set[str] = set()
    choices = offered(target)
    for i, p in enumerate(pools):
        if p.name in seen:
            raise InputPropertyError(f"gpu_pools[{i}].name",
                                     f"{p.name!r} is used by another pool")
        seen.add(p.name)
        if p.accelerator not in choices:
            raise InputPropertyError(
                f"gpu_pools[{i}].accelerator",
                f"{p.accelerator!r} is not one of {', '.join(choices)} on {target}")
        node_range(f"gpu_pools[{i}].min_nodes", p.min_nodes, p.max_nodes, "max_nodes")
        if racked(target):
            if p.gpus_per_node is None:
                raise InputPropertyError(f"gpu_pools[{i}].gpus_per_node",
                                         f"required on {target} (how many GPUs a node has)")
        else:
            if p.gpus_per_node is not None:
                raise InputPropertyError(
                    f"gpu_pools[{i}].gpus_per_node",
                    f"only for {' and '.join(t for t in TARGETS if racked(t))}; on {target} "
                    "it follows the instance type")
            types = [o.machine_type for o in machine_types(target, p.accelerator)]
            if p.instance_type is not None and p.instance_type not in types:
                raise InputPropertyError(
                    f"gpu_pools[{i}].instance_type",
                    f"{p.instance_type!r} does not carry {p.accelerator} on {target}; use one "
                    f"of {', '.join(types)}")
        if p.capacity_reservation_id and p.capacity_type == "spot":
            raise PropertyError(
                f"gpu_pools[{i}].capacity_reservation_id",
                "capacity reservations are on-demand; drop it or set {0}: on-demand",
                (f"gpu_pools[{i}].capacity_type",))


def taint_tolerations(pools: Sequence[GpuPool]) -> list[dict[str, str]]:
    """Each distinct taint of the pools, tolerated exactly as the pool sets it (``Equal``,
    key, value and effect), in pool order: for a DaemonSet kept to some pools' nodes."""
    out: list[dict[str, str]] = []
    for pool in pools:
        for t in pool.taints:
            entry = {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
            if entry not in out:
                out.append(entry)
    return out


def gpu_node_tolerations(pools: Sequence[GpuPool]) -> list[dict[str, str]]:
    """Tolerations a DaemonSet needs to run on every GPU node: each distinct taint key and
    effect of the pools, the GPU taint first. On AKS a Spot pool's nodes also carry
    ``kubernetes.azure.com/scalesetpriority=spot:NoSchedule`` (AKS "Add an Azure Spot node
    pool": "nodes ... are assigned a taint of kubernetes.azure.com/scalesetpriority=spot:
    NoSchedule"), so a GPU DaemonSet tolerating only the GPU taint never starts there.
    ``Exists`` as the GPU charts' own defaults tolerate ``nvidia.com/gpu``."""
    seen: list[tuple[str, str]] = [(GPU_TAINT_KEY, "NoSchedule")]
    for pool in pools:
        for t in pool.taints:
            if (t.key, t.effect) not in seen:
                seen.append((t.key, t.effect))
    return [{"key": key, "operator": "Exists", "effect": effect} for key, effect in seen]


def capacity_types(target: str, pools: Sequence[GpuPoolRequest],
                   sold: Sequence[str]) -> None:
    """Each pool's ``capacity_type`` is one ``target`` sells (``sold``, from its component,
    with the source of each), or ``InputPropertyError``."""
    for i, p in enumerate(pools):
        if p.capacity_type not in sold:
            raise InputPropertyError(
                f"gpu_pools[{i}].capacity_type",
                f"{p.capacity_type!r} is not sold on {target}; use one of {', '.join(sold)}")


def resolve_pool(target: str, request: GpuPoolRequest) -> GpuPool:
    """Fill a pool request in from the accelerator catalog: machine type, GPUs, labels, taint."""
    accel = ACCELERATORS[request.accelerator]
    if racked(target):
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
    fabric = pool_fabric(target, machine, request.name, request.allocator)
    if fabric is not None:
        labels[LABEL_FABRIC] = fabric["kind"]
    return GpuPool(
        name=request.name, accelerator=request.accelerator, product=accel.product,
        machine_type=machine, gpus_per_node=gpus, gpu_memory_gib=memory,
        min_nodes=request.min_nodes, max_nodes=request.max_nodes,
        allocator=request.allocator, capacity_type=request.capacity_type,
        labels=labels, taints=(GPU_TAINT,), fabric=fabric)


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
    storage: StorageOutputs | None = None  # default class, model bucket, identity (#20)


# ClusterOutputs.features key: the cluster admits pods of the system-node-critical and
# system-cluster-critical PriorityClasses outside kube-system only in namespaces holding a
# ResourceQuota scoped to them (GKE; NVIDIA/aicr#915, NVIDIA/gpu-operator#660).
CRITICAL_PODS_NEED_QUOTA = "criticalPodsNeedQuota"


# ClusterOutputs.features keys for the 1.37 SHOULDs (issue #25).
# SANDBOX: the kernel-isolating runtime the target runs (``SandboxRuntime.export()``), read
# by aicp.addons.sandbox; absent where the target has none.
SANDBOX = "sandbox"
# VIRTUALIZATION: a virtualization layer the GPU nodes of some pools serve VMs through
# (on-prem ``VirtualizationLayer.export()``), read by aicp.addons.gpu_operator; absent where
# the GPUs run containers only.
VIRTUALIZATION = "virtualization"


@dataclass(frozen=True)
class SandboxRuntime:
    """A sandbox runtime on the cluster and the RuntimeClass pods name to use it.

    ``created_by``: ``"cloud"`` where the cloud creates the RuntimeClass itself (GKE
    Sandbox, AKS Pod Sandboxing), ``"aicp"`` where aicp.addons.sandbox must create it.
    ``node_selector``/``tolerations`` are the RuntimeClass ``scheduling`` that lands pods
    where the handler exists (https://kubernetes.io/docs/concepts/containers/
    runtime-class/#scheduling).
    """

    runtime: str  # "gvisor" or "kata"
    runtime_class: str
    handler: str
    created_by: Literal["cloud", "aicp", "kata-deploy"]  # kata-deploy: its chart makes it
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, str], ...] = ()
    pool: str = ""  # the node pool it runs on
    note: str = ""  # what the sandbox offers or lacks (GPUs inside it...)

    def export(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "runtimeClass": self.runtime_class,
                "handler": self.handler, "createdBy": self.created_by,
                "nodeSelector": dict(self.node_selector),
                "tolerations": [dict(t) for t in self.tolerations], "pool": self.pool,
                "note": self.note}
