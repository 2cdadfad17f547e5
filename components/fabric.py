"""The fabric catalog: which machine types of the accelerator catalog carry a GPU fabric.

One row per fabric-class machine type (``components/accelerators.py`` OFFERINGS), data
only, each with its upstream source. A pool of one of these types gets its fabric by
default (interfaces, placement, the device plugin or installer, the network objects), a
pool of any other type is unchanged: ``fabric(target, machine_type)`` is None for it.

``pool_fabric`` is what a pool exports in the stack's ``gpuPools`` output (``fabric``) for
``aicp verify`` and the NCCL proof: the kind, interfaces, bandwidth class and placement,
and what a pod asks for to get the fabric's devices on that target (extended resources,
or GKE's network annotations; EFA's huge pages, the RDMA fabrics' IPC_LOCK capability).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["efa", "gpudirect-tcpx", "gpudirect-tcpxo", "gpudirect-rdma", "infiniband"]

# Node label every fabric pool carries: the fabric's device plugin / installer selects on it.
LABEL_FABRIC = "aicp.dev/fabric"

# EFA device plugin's extended resource (EKS user guide, device-management-efa.adoc
# "Install the EFA Kubernetes device plugin": "advertises EFA devices as
# vpc.amazonaws.com/efa extended resources").
EFA_RESOURCE = "vpc.amazonaws.com/efa"
# RDMA shared device plugin resource on AKS InfiniBand nodes: resourceName "shared_ib" under
# the plugin's default "rdma" prefix (Azure/aks-rdma-infiniband
# configs/nicclusterpolicy/rdma-shared-device-plugin/rdma.yaml; Mellanox/
# k8s-rdma-shared-dev-plugin README: resources are advertised as rdma/<resourceName>).
IB_RESOURCE = "rdma/shared_ib"
# EFA huge pages. "Amazon EC2 instances with the EFA driver installed pre-allocate 5128 2MiB
# Huge Pages, which you can request as resources to consume in your job specifications"
# (awsdocs/amazon-eks-user-guide@4d52b4d latest/ug/ml/node-efa.adoc, "IMPORTANT"); the EKS
# AL2023 accelerated AMI is built with the EFA installer (awslabs/amazon-eks-ami@81fec2e
# templates/al2023/provisioners/install-efa.sh, enable_efa "true" in
# templates/al2023/variables-default.json), so its nodes come with them: aicp writes no user
# data for it. libfabric's EFA provider takes its buffers from that pool by default
# (ofiwg/libfabric#9739), so a container using EFA asks for huge pages as the guide's NCCL
# test does (hugepages-2Mi: 5120Mi beside vpc.amazonaws.com/efa); without the request its
# cgroup allows none.
EFA_HUGEPAGES_NODE = f"{5128 * 2}Mi"  # what the kubelet reports allocatable
EFA_HUGEPAGES_POD = {"hugepages-2Mi": "5120Mi"}
# The EFA DRA driver's DeviceClass (EKS user guide device-management-efa.adoc, "Install the
# EFA DRA driver (DRANET)": driver dra.net, DeviceClass efa.networking.k8s.aws).
EFA_DEVICE_CLASS = "efa.networking.k8s.aws"


@dataclass(frozen=True)
class Fabric:
    """The fabric of one machine type."""

    target: str
    machine_type: str
    kind: Kind
    interfaces: int  # fabric NICs per node (EFA network cards, GPU NICs, IB HCAs)
    gbps: int  # the fabric's total bandwidth per node
    source: str
    mtu: int | None = None  # of the extra VPCs, where the target creates them (GKE)
    # Node labels of the network hierarchy, outermost first (a Kueue Topology's levels);
    # empty where the nodes carry none.
    topology: tuple[str, ...] = ()

    @property
    def bandwidth_class(self) -> str:
        return f"{self.gbps} Gbps {self.kind}"


_EFA_DOC = ("EC2 user guide efa-acc-inst-types (Maximize network bandwidth ... multiple "
            "network cards) and efa.html#efa-instance-types")
# The AWS cloud controller manager labels instances whose type EC2 DescribeInstanceTopology
# covers (p4d, p5 families) with their network nodes, top layer first
# (kubernetes/cloud-provider-aws: topology.k8s.aws/network-node-layer-1..3; SageMaker
# HyperPod task governance schedules on the same labels).
AWS_TOPOLOGY = ("topology.k8s.aws/network-node-layer-1", "topology.k8s.aws/network-node-layer-2",
                "topology.k8s.aws/network-node-layer-3", "kubernetes.io/hostname")
# GKE's compact-placement topology labels, as cluster-toolkit's A3 Mega Kueue configuration
# lists them (examples/gke-a3-megagpu/kueue-configuration.yaml.tftpl, Topology
# "gke-default"); Google documents them for A3 Mega, A3 Ultra and A4 (AI Hypercomputer,
# "Schedule GKE workloads with Topology Aware Scheduling"). Not on A3 High.
GKE_TOPOLOGY = ("cloud.google.com/gce-topology-block", "cloud.google.com/gce-topology-subblock",
                "cloud.google.com/gce-topology-host", "kubernetes.io/hostname")
# AKS publishes no InfiniBand switch labels: the InfiniBand domain is the scale set, whose
# nodes carry kubernetes.azure.com/agentpool (AKS docs, "Use labels in an AKS cluster").
AKS_TOPOLOGY = ("kubernetes.azure.com/agentpool", "kubernetes.io/hostname")

_GKE_DOC = ("GKE docs gpu-bandwidth-gpudirect-tcpx (A3 Mega up to eight, A3 High up to four "
            "secondary NICs of up to 200 Gbps each); GoogleCloudPlatform/cluster-toolkit "
            "examples/gke-a3-megagpu/gke-a3-megagpu.yaml (gpunets: 8 networks, mtu 8244)")

FABRICS: dict[tuple[str, str], Fabric] = {(f.target, f.machine_type): f for f in (
    # "P5 and P5e instances support up to 32 network cards and can provide up to 3,200 Gbps"
    Fabric("aws", "p5.48xlarge", "efa", 32, 3200, _EFA_DOC, topology=AWS_TOPOLOGY),
    Fabric("aws", "p5e.48xlarge", "efa", 32, 3200, _EFA_DOC, topology=AWS_TOPOLOGY),
    # p5en: 16 network cards (EFAv3), the same 3,200 Gbps total ("p5.48xlarge, p5e.48xlarge
    # and p5en.48xlarge ... total network bandwidth capacity of 3200 Gbps").
    Fabric("aws", "p5en.48xlarge", "efa", 16, 3200, _EFA_DOC, topology=AWS_TOPOLOGY),
    # P4d/P4de: 4 network cards, 400 Gbps EFA (EC2 P4 instances, efa-instance-types).
    Fabric("aws", "p4de.24xlarge", "efa", 4, 400, _EFA_DOC, topology=AWS_TOPOLOGY),
    Fabric("aws", "p4d.24xlarge", "efa", 4, 400, _EFA_DOC, topology=AWS_TOPOLOGY),
    Fabric("gcp", "a3-highgpu-8g", "gpudirect-tcpx", 4, 800, _GKE_DOC, mtu=8244),
    Fabric("gcp", "a3-megagpu-8g", "gpudirect-tcpxo", 8, 1600, _GKE_DOC, mtu=8244,
           topology=GKE_TOPOLOGY),
    # A3 Ultra: eight ConnectX-7 RDMA NICs (400 Gbps each) on one RDMA VPC with the zone's
    # RoCE network profile, MTU 8896 (GKE docs gpu-bandwidth-gpudirect-rdma; cluster-toolkit
    # examples/gke-a3-ultragpu).
    Fabric("gcp", "a3-ultragpu-8g", "gpudirect-rdma", 8, 3200,
           "GKE docs gpu-bandwidth-gpudirect-rdma; GoogleCloudPlatform/cluster-toolkit "
           "examples/gke-a3-ultragpu", mtu=8896, topology=GKE_TOPOLOGY),
    # ND H100 v5 / ND H200 v5: eight 400 Gb/s NDR InfiniBand links (3.2 Tb/s); ND A100 v4:
    # eight 200 Gb/s HDR (1.6 Tb/s) (Azure VM sizes docs, ND-H100-v5 / ND-H200-v5 /
    # NDasrA100_v4 series).
    Fabric("azure", "Standard_ND96isr_H100_v5", "infiniband", 8, 3200,
           "Azure docs sizes/gpu-accelerated/nd-h100-v5-series", topology=AKS_TOPOLOGY),
    Fabric("azure", "Standard_ND96isr_H200_v5", "infiniband", 8, 3200,
           "Azure docs sizes/gpu-accelerated/nd-h200-v5-series", topology=AKS_TOPOLOGY),
    Fabric("azure", "Standard_ND96asr_v4", "infiniband", 8, 1600,
           "Azure docs sizes/gpu-accelerated/ndasra100v4-series", topology=AKS_TOPOLOGY),
)}

# Where each target puts a fabric pool's nodes, as ``aicp plan`` says it.
PLACEMENT = {
    "aws": "cluster placement group, one zone",
    "gcp": "compact placement policy, one zone",
    "azure": "one scale set (the agent pool)",
}


def fabric(target: str, machine_type: str) -> Fabric | None:
    """The fabric of a machine type on a target, or None (not a fabric-class type)."""
    return FABRICS.get((target, machine_type))


def gke_network_names(pool: str, f: Fabric) -> list[str]:
    """The cluster's ``networking.gke.io`` Network objects a pod of the pool attaches to."""
    if f.kind == "gpudirect-rdma":
        return [f"{pool}-gvnic", *(f"{pool}-rdma-{i}" for i in range(f.interfaces))]
    return [f"{pool}-nic-{i}" for i in range(f.interfaces)]


def gke_interfaces_annotation(pool: str, f: Fabric) -> str:
    """``networking.gke.io/interfaces``: eth0 on the default network, one interface per
    fabric network (GKE docs gpu-bandwidth-gpudirect-tcpx, "Deploy a workload": the
    annotation lists interfaceName/network pairs)."""
    names = ["default", *gke_network_names(pool, f)]
    return json.dumps([{"interfaceName": f"eth{i}", "network": n} for i, n in enumerate(names)])


# The RDMA shared device plugin's resource per link type: "shared_ib" as
# Azure/aks-rdma-infiniband names it for InfiniBand; "rdma_shared_device_a", the name of the
# Mellanox/k8s-rdma-shared-dev-plugin README's example config, for RoCE (Ethernet).
RDMA_RESOURCES = {"infiniband": IB_RESOURCE, "ethernet": "rdma/rdma_shared_device_a"}
# An RDMA container registers (pins) its buffers: "A pod without this will have a low locked
# memory value `ulimit -l` value of "64", this changes the value to "unlimited""
# (Azure/aks-rdma-infiniband@700dabb website/docs/configurations/02-gpu-drivers.md, both
# GPUDirect RDMA pod examples add IPC_LOCK).
RDMA_CAPABILITIES = ["IPC_LOCK"]


def onprem_rdma_fabric(pool: Any, link_type: str | None) -> Any:
    """An on-prem GPU pool on a racked RDMA fabric (``aicp:onprem.rdma``): labelled for the
    Network Operator's policy, exporting the RDMA shared device plugin's resource. Racked
    hardware has no catalog row: interfaces and bandwidth are whatever is cabled."""
    if link_type is None:
        return pool
    from dataclasses import replace
    fabric = {"kind": "rdma", "linkType": link_type, "interfaces": "every ConnectX HCA",
              "bandwidthClass": f"as racked ({link_type})", "placement": "as racked",
              "resources": {RDMA_RESOURCES[link_type]: 1},
              "capabilities": list(RDMA_CAPABILITIES)}
    return replace(pool, fabric=fabric, labels={**pool.labels, LABEL_FABRIC: "rdma"})


def pool_fabric(target: str, machine_type: str, pool: str,
                allocator: str = "device-plugin") -> dict[str, Any] | None:
    """What a pool exports about its fabric (None for a non-fabric type).

    An EFA pool's devices come the way its GPUs do: a DRA pool's through the EFA DRA driver
    (a claim on ``efa.networking.k8s.aws``, which EKS recommends from Kubernetes 1.34 with
    managed node groups, and which pairs EFA devices with their GPUs by PCIe root), a
    device-plugin pool's as ``vpc.amazonaws.com/efa``. The two never run on one node (EKS
    user guide: "cannot coexist on the same node"). Either way a container using EFA also
    requests ``hugePages`` (EFA_HUGEPAGES_POD), with a cpu or memory request beside it: the
    API server refuses huge pages alone (kubernetes pkg/apis/core/validation
    ValidateResourceRequirements, "HugePages require cpu or memory"). They are a key of
    their own, not in ``resources``, which lists the fabric's devices by count.
    """
    f = fabric(target, machine_type)
    if f is None:
        return None
    out: dict[str, Any] = {
        "kind": f.kind, "interfaces": f.interfaces, "bandwidthGbps": f.gbps,
        "bandwidthClass": f.bandwidth_class, "placement": PLACEMENT[target],
    }
    if f.topology:
        out["topologyLevels"] = list(f.topology)
    if f.kind == "efa":
        if allocator == "dra":
            out["claims"] = {"deviceClassName": EFA_DEVICE_CLASS, "count": f.interfaces}
        else:
            out["resources"] = {EFA_RESOURCE: f.interfaces}
        out["hugePages"] = dict(EFA_HUGEPAGES_POD)
    elif f.kind == "infiniband":
        out["resources"] = {IB_RESOURCE: 1}
        out["capabilities"] = list(RDMA_CAPABILITIES)
    else:
        out["networks"] = gke_network_names(pool, f)
        out["podAnnotations"] = {"networking.gke.io/default-interface": "eth0",
                                 "networking.gke.io/interfaces": gke_interfaces_annotation(
                                     pool, f)}
    return out
