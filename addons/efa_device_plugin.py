"""The AWS EFA device plugin: every EFA interface of a fabric pool's nodes as
``vpc.amazonaws.com/efa``, so a pod asks for the node's EFA devices as it asks for GPUs.

Installed as the EKS user guide does (awsdocs/amazon-eks-user-guide
latest/ug/ml/device-management-efa.adoc, "Install the EFA Kubernetes device plugin": the
``aws-efa-k8s-device-plugin`` chart of aws/eks-charts in ``kube-system``). The EKS AL2023
NVIDIA AMI carries the EFA host components (same page, "Using EKS-optimized AMIs with
EFA") but not the plugin.

Values (aws/eks-charts stable/aws-efa-k8s-device-plugin values.yaml): ``tolerations`` (empty
by default: the plugin would never run on tainted GPU nodes) gets each fabric pool's taints;
``nodeSelector`` keeps it to the device-plugin pools aicp gave EFA interfaces
(``aicp.dev/fabric=efa``, ``aicp.dev/gpu-allocator=device-plugin``; DRA pools get the EFA
DRA driver, aicp.addons.efa_dra_driver), besides the chart's own instance-type affinity.

On the same nodes the NVIDIA device plugin must not mount ``/dev/infiniband`` (its MOFED
mode hands a GPU container every uverbs device, EFA's included; NVIDIA/k8s-device-plugin
#1692): ``aicp.addons.gpu_operator`` sets its ``MOFED_ENABLED=false`` where EFA
device-plugin pools exist (DEVICE_PLUGIN_NO_MOFED_ENV).
"""

from __future__ import annotations

from typing import Any

import pulumi

from ..components.contract import LABEL_ALLOCATOR, ClusterOutputs, GpuPool, taint_tolerations
from ..components.fabric import LABEL_FABRIC
from .base import Addon
from .catalog import CHARTS

RELEASE = "efa"
NAMESPACE = "kube-system"


def efa_pools(pools: tuple[GpuPool, ...]) -> list[GpuPool]:
    """EFA pools on the device plugin (DRA pools get the EFA DRA driver instead)."""
    return [p for p in pools if (p.fabric or {}).get("kind") == "efa"
            and p.allocator == "device-plugin"]


def values(pools: list[GpuPool]) -> dict[str, Any]:
    tolerations = taint_tolerations(pools)
    # Never beside the EFA DRA driver on a node (EKS user guide: the two "cannot coexist").
    return {"tolerations": tolerations,
            "nodeSelector": {LABEL_FABRIC: "efa", LABEL_ALLOCATOR: "device-plugin"}}


class EfaDevicePlugin(Addon):
    """The EFA device plugin's release, on the EFA pools only."""

    token = "aicp:addons:EfaDevicePlugin"
    serves = ("high_performance_networking",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        self.release = self.helm_release(
            f"{name}-release", CHARTS["efa-device-plugin"], name=RELEASE, namespace=NAMESPACE,
            values=values(efa_pools(cluster.gpu_pools)))
        self.finish(namespace=NAMESPACE, release=self.release.name)
