"""GPU fabrics as the clusters that run them publish them, one world per fabric.

A world is the CRDs and objects to load into the emulator (``load``): GPU nodes of one
fabric pool, and what that fabric's software publishes on a real cluster, built from the
upstream manifests and captures named in each row (no capture of these is pinned under
``../shared/fixtures``: the rows cite the upstream documents and sources directly). The
pool a world is built for is an ``aicp`` stack's ``gpuPools[]`` export (labels, taint,
``fabric``), so a training example's plan and its emulated cluster describe the same pool.

tests/verify/test_high_performance_networking.py states the verdict owed to each world.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import objects as o

# Upstream CRD identities (group, version, kind, plural, scope). Their schemas keep unknown
# fields here: the probe reads, and these worlds only need discovery and CRUD.
# kubernetes/cloud-provider-gcp crd/config/crds/networking.gke.io_networks.yaml and
# networking.gke.io_gkenetworkparamsets.yaml: cluster-scoped, v1 served and stored.
GKE_NETWORK_CRD = ("networking.gke.io", "v1", "Network", "networks", False)
GKE_PARAMS_CRD = ("networking.gke.io", "v1", "GKENetworkParamSet", "gkenetworkparamsets", False)
# Mellanox/network-operator deployment/network-operator/crds/mellanox.com_nicclusterpolicies.yaml
NIC_CLUSTER_POLICY_CRD = ("mellanox.com", "v1alpha1", "NicClusterPolicy", "nicclusterpolicies",
                          False)

H100_POOL: Mapping[str, Any] = {
    "name": "train", "machineType": "p5.48xlarge", "gpusPerNode": 8,
    "labels": {"aicp.dev/gpu-pool": "train", "aicp.dev/accelerator": "h100",
               "nvidia.com/gpu.present": "true", "aicp.dev/gpu-allocator": "device-plugin"},
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
}


@dataclass
class World:
    name: str
    source: str
    crds: list[dict] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)


def load(kube: Any, world: World) -> None:
    """CRDs first (the API server serves their kinds once Established), then the objects,
    seeded with their status (node allocatable, Network conditions) as the cluster's own
    controllers would have written it."""
    for crd in world.crds:
        kube.create(crd)
    kube.seed(world.objects, validate=True)


def _crd(spec: tuple) -> dict:
    group, version, kind, plural, namespaced = spec
    return o.crd(group, version, kind, plural, namespaced=namespaced)


def gpu_nodes(pool: Mapping[str, Any], count: int = 2, *,
              extended: Mapping[str, str] | None = None,
              labels: Mapping[str, str] | None = None) -> list[dict]:
    """The pool's GPU nodes: its labels and taints, its GPUs, plus ``extended``."""
    nodes = []
    for i in range(count):
        gpus = str(pool.get("gpusPerNode") or 8)
        node_labels = {**pool["labels"], "node.kubernetes.io/instance-type": pool["machineType"],
                       "kubernetes.io/hostname": f"{pool['name']}-{i}", **(labels or {})}
        extra = {} if node_labels.get("aicp.dev/gpu-allocator") == "dra" else {
            "nvidia.com/gpu": gpus}
        nodes.append(o.node(f"{pool['name']}-{i}", cpu="192", memory="2048Gi",
                            labels=node_labels, taints=[dict(t) for t in pool["taints"]],
                            extended={**extra, **(extended or {})}, ip=f"10.0.2.{i + 1}"))
    return nodes


def eks_efa_device_plugin(pool: Mapping[str, Any] = H100_POOL) -> World:
    fabric = pool.get("fabric") or {"interfaces": 32}
    return World(
        "eks-efa-device-plugin",
        # EKS user guide device-management-efa.adoc "Install the EFA Kubernetes device
        # plugin": nodes show allocatable vpc.amazonaws.com/efa (one per EFA interface; 32
        # on p5.48xlarge, EC2 efa-acc-inst-types); kubernetes/cloud-provider-aws labels
        # the instance's network nodes topology.k8s.aws/network-node-layer-1..3 (values
        # "nn-" + hex, as EC2 DescribeInstanceTopology returns NetworkNodes).
        "awsdocs/amazon-eks-user-guide latest/ug/ml/device-management-efa.adoc; "
        "kubernetes/cloud-provider-aws topology labels",
        objects=gpu_nodes(pool, extended={"vpc.amazonaws.com/efa": str(fabric["interfaces"])},
                          labels={"topology.k8s.aws/network-node-layer-1": "nn-c79422f4e61deb9ca",
                                  "topology.k8s.aws/network-node-layer-2": "nn-6ff5053c3a4d86db7",
                                  "topology.k8s.aws/network-node-layer-3":
                                      "nn-dcbcca51aebf4c95b"}))


DRA_POOL: Mapping[str, Any] = {**H100_POOL, "labels": {
    **H100_POOL["labels"], "aicp.dev/gpu-allocator": "dra"}}


def eks_efa_dra(pool: Mapping[str, Any] = DRA_POOL) -> World:
    nodes = gpu_nodes(pool)
    # One device per EFA interface (EFA-only and EFA-with-ENA alike; the chart's filter drops
    # ENA-only and veth devices, aws/eks-charts stable/aws-dranet values.yaml ``filter``).
    efas = int((pool.get("fabric") or {}).get("interfaces") or 4)
    # EKS user guide "Install the EFA DRA driver (DRANET)": ResourceSlices of driver
    # dra.net, DeviceClass efa.networking.k8s.aws; devices carry their PCIe root
    # (resource.kubernetes.io/pcieRoot, the attribute its matchAttribute examples align).
    slices = [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
               "metadata": {"name": f"{n['metadata']['name']}-dra.net"},
               "spec": {"driver": "dra.net", "nodeName": n["metadata"]["name"],
                        "pool": {"name": n["metadata"]["name"], "generation": 1,
                                 "resourceSliceCount": 1},
                        "devices": [{"name": f"rdmap{i}s0", "attributes": {
                            "resource.kubernetes.io/pcieRoot": {
                                "string": f"pci0000:{i // 4:02x}"}}}
                            for i in range(efas)]}} for n in nodes]
    return World("eks-efa-dra", "awsdocs/amazon-eks-user-guide device-management-efa.adoc "
                 "(EFA DRA driver)",
                 objects=[*nodes, o.device_class("efa.networking.k8s.aws", "dra.net"), *slices])


def _gke_networks(pool: Mapping[str, Any], ready: bool) -> list[dict]:
    """The pool's Network + GKENetworkParamSet pairs as aicp.addons.nccl_plugin declares
    them, with the status GKE's controllers write: Network ``Ready`` and ``ParamsReady``
    (reason ``GNPParamsReady``), kubernetes/cloud-provider-gcp crd/apis/network/v1
    network_types.go and pkg/controller/gkenetworkparamset."""
    nets = (pool.get("fabric") or {}).get("gkeNetworks") or [
        {"network": f"{pool['name']}-nic-{i}", "vpc": f"aicp-{pool['name']}-nic-{i}",
         "subnet": f"aicp-{pool['name']}-nic-{i}", "deviceMode": "NetDevice"}
        for i in range(8)]
    status = "True" if ready else "False"
    objs = []
    for n in nets:
        objs.append({"apiVersion": "networking.gke.io/v1", "kind": "GKENetworkParamSet",
                     "metadata": {"name": n["network"]},
                     "spec": {"vpc": n["vpc"], "vpcSubnet": n["subnet"],
                              "deviceMode": n["deviceMode"]}})
        # Not ready: the GKENetworkParamSet's VPC is taken by another param set
        # (DeviceModeVPCAlreadyInUse), so the Network's Ready is ParamsNotReady. Upstream
        # names no reason for a True Ready (metav1.Condition requires one): "Ready" here.
        conditions = [
            {"type": "ParamsReady", "status": status,
             "reason": "GNPParamsReady" if ready else "DeviceModeVPCAlreadyInUse",
             "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"},
            {"type": "Ready", "status": status,
             "reason": "Ready" if ready else "ParamsNotReady",
             "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]
        objs.append({"apiVersion": "networking.gke.io/v1", "kind": "Network",
                     "metadata": {"name": n["network"]},
                     "spec": {"type": "Device", "parametersRef": {
                         "group": "networking.gke.io", "kind": "GKENetworkParamSet",
                         "name": n["network"]}},
                     "status": {"conditions": conditions}})
    return objs


GKE_POOL: Mapping[str, Any] = {**H100_POOL, "machineType": "a3-megagpu-8g"}


def gke_gpudirect(pool: Mapping[str, Any] = GKE_POOL, *, ready: bool = True) -> World:
    return World(
        "gke-gpudirect" if ready else "gke-gpudirect-not-ready",
        "GoogleCloudPlatform/cluster-toolkit modules/scheduler/gke-cluster (Network + "
        "GKENetworkParamSet per additional network); kubernetes/cloud-provider-gcp CRDs and "
        "Network conditions",
        crds=[_crd(GKE_NETWORK_CRD), _crd(GKE_PARAMS_CRD)],
        objects=[*gpu_nodes(pool), *_gke_networks(pool, ready)])


def _nic_cluster_policy(**plugins: str) -> dict:
    spec: dict[str, Any] = {}
    if "rdma" in plugins:
        spec["rdmaSharedDevicePlugin"] = {
            "repository": "nvcr.io/nvidia/mellanox", "image": "k8s-rdma-shared-dev-plugin",
            "version": "network-operator-v25.10.0", "config": json.dumps({"configList": [{
                "resourceName": plugins["rdma"], "rdmaHcaMax": 63,
                "selectors": {"vendors": ["15b3"], "linkTypes": ["infiniband"]}}]})}
    if "sriov" in plugins:
        spec["sriovDevicePlugin"] = {
            "image": "sriov-network-device-plugin", "repository": "ghcr.io/k8snetworkplumbingwg",
            "version": "v3.7.0", "config": json.dumps({"resourceList": [{
                "resourcePrefix": "nvidia.com", "resourceName": plugins["sriov"],
                "selectors": {"vendors": ["15b3"], "isRdma": True}}]})}
    return {"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
            "metadata": {"name": "nic-cluster-policy"}, "spec": spec}


AKS_POOL: Mapping[str, Any] = {**H100_POOL, "machineType": "Standard_ND96isr_H100_v5"}


def aks_infiniband(pool: Mapping[str, Any] = AKS_POOL) -> World:
    # Azure/aks-rdma-infiniband configs/nicclusterpolicy/rdma-shared-device-plugin/rdma.yaml:
    # resourceName shared_ib, rdmaHcaMax 63; the plugin advertises rdmaHcaMax of
    # rdma/<resourceName> per node (Mellanox/k8s-rdma-shared-dev-plugin README).
    return World("aks-infiniband", "Azure/aks-rdma-infiniband rdma-shared-device-plugin",
                 crds=[_crd(NIC_CLUSTER_POLICY_CRD)],
                 objects=[_nic_cluster_policy(rdma="shared_ib"),
                          *gpu_nodes(pool, extended={"rdma/shared_ib": "63"})])


def network_operator_sriov(pool: Mapping[str, Any] = H100_POOL) -> World:
    # Network Operator docs, NicClusterPolicy with sriovDevicePlugin resourceList
    # {"resourcePrefix": "nvidia.com", "resourceName": "hostdev", "isRdma": true}: one VF
    # per RDMA NIC advertised as nvidia.com/hostdev.
    return World("network-operator-sriov", "Mellanox/network-operator docs (host device "
                 "network, sriovDevicePlugin resourceList)",
                 crds=[_crd(NIC_CLUSTER_POLICY_CRD)],
                 objects=[_nic_cluster_policy(sriov="hostdev"),
                          *gpu_nodes(pool, extended={"nvidia.com/hostdev": "8"})])


def gpus_renamed_beside_a_policy(pool: Mapping[str, Any] = H100_POOL) -> World:
    # A GPU Operator time-slicing rename (nvidia.com/gpu.shared) and a NicClusterPolicy with
    # only the OFED driver: no device plugin declares a network resource.
    policy = _nic_cluster_policy()
    policy["spec"]["ofedDriver"] = {"repository": "nvcr.io/nvidia/mellanox",
                                    "image": "doca-driver", "version": "doca3.2.0-25.10-1.2.8.0-2"}
    return World("gpus-renamed", "../shared/fixtures/gfd-node-labels.yaml doc 2c "
                 "(nvidia.com/gpu.shared); Azure/aks-rdma-infiniband nic.yaml (ofedDriver)",
                 crds=[_crd(NIC_CLUSTER_POLICY_CRD)],
                 objects=[policy, *gpu_nodes(pool, extended={"nvidia.com/gpu.shared": "32"})])


WORLDS: dict[str, Callable[[], World]] = {
    "eks-efa-device-plugin": eks_efa_device_plugin, "eks-efa-dra": eks_efa_dra,
    "gke-gpudirect": gke_gpudirect,
    "gke-gpudirect-not-ready": lambda: gke_gpudirect(ready=False),
    "aks-infiniband": aks_infiniband, "network-operator-sriov": network_operator_sriov,
    "gpus-renamed": gpus_renamed_beside_a_policy,
}

# A stack's target → the world its fabric pools run in.
FOR_TARGET: dict[str, Callable[[Mapping[str, Any]], World]] = {
    "aws": lambda pool: (eks_efa_dra if (pool.get("fabric") or {}).get("claims")
                         else eks_efa_device_plugin)(pool),
    "gcp": gke_gpudirect, "azure": aks_infiniband}
