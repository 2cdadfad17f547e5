"""The NVIDIA Network Operator: InfiniBand/RDMA devices of fabric pools as ``rdma/shared_ib``.

For AKS ND-series pools (InfiniBand) as Azure/aks-rdma-infiniband lays it out
(configs/values/network-operator/values.yaml, configs/nicclusterpolicy/base/nic.yaml,
configs/nicclusterpolicy/rdma-shared-device-plugin/rdma.yaml): the operator's chart, then a
``NicClusterPolicy`` with the DOCA OFED driver and the RDMA shared device plugin
(``resourceName: shared_ib``, ``rdmaHcaMax: 63``, Mellanox vendor ``15b3``, link type
``infiniband``), which advertises ``rdma/shared_ib`` on each IB node.

Decisions, with the upstream behind them:

- **One Node Feature Discovery.** The chart's own NFD is off (``nfd.enabled: false``,
  Mellanox/network-operator v25.10.0 deployment/network-operator/values.yaml): the GPU
  Operator's NFD already labels PCI class 02 (network) devices by vendor (gpu-operator
  v26.7.0 values.yaml ``node-feature-discovery.worker.config.sources.pci.deviceClassWhitelist``
  "02", "0200", "0207" with ``deviceLabelFields: [vendor]``), so ConnectX HCAs carry
  ``feature.node.kubernetes.io/pci-15b3.present``. Two NFD masters would fight over labels.
- **Only the fabric pools' nodes.** The policy's node affinity selects
  ``aicp.dev/fabric`` (``infiniband`` or ``rdma``), not every Mellanox NIC; its
  ``tolerations`` and the operator's (``operator.tolerations``) take the pools' taints.
- **The NicClusterPolicy is a ``yaml/v2`` ConfigGroup after the release**: its CRD ships in
  the chart (``crds/mellanox.com_nicclusterpolicies.yaml``), and aicp's tests pin no copy
  of it to check the policy against.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs, GpuPool, taint_tolerations
from ..components.fabric import LABEL_FABRIC, RDMA_RESOURCES
from .base import Addon
from .catalog import CHARTS, IMAGES

RELEASE = "network-operator"
NAMESPACE = "network-operator"
# The device plugins' link type selector values: the net device's link type as sysfs
# names it (Mellanox/k8s-rdma-shared-dev-plugin and sriov-network-device-plugin READMEs,
# "linkTypes": ["ether"] / ["infiniband"]).
LINK_TYPES = {"infiniband": "infiniband", "ethernet": "ether"}
RDMA_KINDS = ("infiniband", "rdma")


def rdma_pools(pools: Sequence[GpuPool]) -> list[GpuPool]:
    return [p for p in pools if (p.fabric or {}).get("kind") in RDMA_KINDS]


def chart_values(pools: Sequence[GpuPool]) -> dict[str, Any]:
    return {"nfd": {"enabled": False, "deployNodeFeatureRules": False},
            "operator": {"tolerations": taint_tolerations(pools)}}


def nic_cluster_policy(pools: Sequence[GpuPool], link_type: str) -> dict[str, Any]:
    """The NicClusterPolicy: OFED driver and RDMA shared device plugin on the fabric pools."""
    kinds = sorted({str((p.fabric or {}).get("kind")) for p in pools})
    # The resource the pools export (components/fabric.py): rdma/<resourceName>.
    name = RDMA_RESOURCES[link_type].removeprefix("rdma/")
    config = {"configList": [{
        "resourceName": name, "rdmaHcaMax": 63,
        "selectors": {"vendors": ["15b3"], "linkTypes": [LINK_TYPES[link_type]]}}]}
    return {
        "apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
        "metadata": {"name": "nic-cluster-policy"},
        "spec": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": LABEL_FABRIC, "operator": "In", "values": kinds}]}]}},
            "tolerations": taint_tolerations(pools),
            "ofedDriver": {"repository": "nvcr.io/nvidia/mellanox", "image": "doca-driver",
                           "version": IMAGES["doca-driver"],
                           "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1,
                                             "drain": {"enable": True, "force": True,
                                                       "deleteEmptyDir": True,
                                                       "timeoutSeconds": 300}}},
            "rdmaSharedDevicePlugin": {
                "repository": "nvcr.io/nvidia/mellanox", "image": "k8s-rdma-shared-dev-plugin",
                "version": IMAGES["rdma-shared-device-plugin"],
                "config": json.dumps(config)},
        },
    }


@dataclass(frozen=True)
class NetworkOperatorArgs:
    # "infiniband" on AKS ND-series; "ethernet" for RoCE fabrics (on-prem).
    link_type: str = "infiniband"
    # The GPU Operator release whose NFD labels the NICs.
    after: Sequence[pulumi.Resource] = ()


class NetworkOperator(Addon):
    """The Network Operator release, then its NicClusterPolicy."""

    token = "aicp:addons:NetworkOperator"
    serves = ("high_performance_networking",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 args: NetworkOperatorArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or NetworkOperatorArgs()
        pools = rdma_pools(cluster.gpu_pools)
        # The OFED driver container loads kernel modules: privileged.
        namespace = self.create_namespace(f"{name}-namespace", NAMESPACE, "privileged")
        self.release = self.helm_release(
            f"{name}-release", CHARTS["network-operator"], name=RELEASE, namespace=NAMESPACE,
            values=chart_values(pools), depends_on=[namespace, *args.after])
        # An on-prem pool names its link type (aicp:onprem.rdma); ND-series is InfiniBand.
        link = next((str(p.fabric["linkType"]) for p in pools
                     if p.fabric and "linkType" in p.fabric), args.link_type)
        self.policy = k8s.yaml.v2.ConfigGroup(
            f"{name}-nic-cluster-policy", objs=[nic_cluster_policy(pools, link)],
            opts=self.child_opts(depends_on=[self.release]))
        self.finish(namespace=NAMESPACE, release=self.release.name,
                    resource=RDMA_RESOURCES[link])
