"""The Azure Lustre CSI driver: mounts the Azure Managed Lustre file system that
``components/azure.py`` creates when ``aicp:storage.parallelFs`` is on (issue #20).

AKS has no built-in driver for it; Microsoft's way is the released Helm chart
(learn.microsoft.com/azure/aks/azure-managed-lustre-install; chart pinned in
``catalog.CHARTS["azurelustre-csi"]``), release ``azurelustre`` in ``kube-system``, and "Don't
install a second copy of the driver". Values (kubernetes-sigs/azurelustre-csi-driver
charts/README.md, "Chart configuration"): ``node.tolerations`` defaults to spot,
``sku=gpu`` and ``nvidia.com/gpu`` and "Overriding replaces this set", so aicp passes the
pools' own taints (the GPU taint, and AKS's spot taint on Spot pools), so the node plugin runs
on every GPU pool that mounts the file system.
"""

from __future__ import annotations

from typing import Any

import pulumi

from ..components.contract import ClusterOutputs, GpuPool, taint_tolerations
from .base import Addon
from .catalog import CHARTS

RELEASE = "azurelustre"
NAMESPACE = "kube-system"
DRIVER = "azurelustre.csi.azure.com"  # charts/README.md: csidriver.name


def wanted(cluster: ClusterOutputs) -> bool:
    """Whether the cluster's storage has an Azure Managed Lustre file system to mount."""
    return bool(cluster.storage and cluster.storage.parallel_fs.get("driver") == DRIVER)


def values(pools: tuple[GpuPool, ...]) -> dict[str, Any]:
    tolerations = taint_tolerations(pools)
    return {"node": {"tolerations": tolerations}}


class AzureLustreCsi(Addon):
    """The Azure Lustre CSI driver's release."""

    token = "aicp:addons:AzureLustreCsi"
    serves = ()  # aicp's own data check, no CNCF requirement

    def __init__(self, name: str, cluster: ClusterOutputs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        self.release = self.helm_release(
            f"{name}-release", CHARTS["azurelustre-csi"], name=RELEASE, namespace=NAMESPACE,
            values=values(cluster.gpu_pools))
        self.finish(namespace=NAMESPACE, release=self.release.name, driver=DRIVER)
