"""The AWS EFA DRA driver (DRANET): every EFA interface of a DRA fabric pool's nodes as a DRA
device of the ``efa.networking.k8s.aws`` DeviceClass.

EKS recommends it "for new deployments with Kubernetes versions 1.34 and later" on managed
node groups (awsdocs/amazon-eks-user-guide latest/ug/ml/device-management-efa.adoc, "Install
the EFA DRA driver (DRANET)": chart ``aws-dranet`` of aws/eks-charts in ``kube-system``,
driver ``dra.net``, DeviceClass ``efa.networking.k8s.aws``); a claim can align its EFA
devices with its GPUs by ``resource.kubernetes.io/pcieRoot`` (same page, "Topology-aware
EFA and GPU/Neuron device allocation"), which the NVIDIA DRA driver's GPUs carry too.

Values (aws/eks-charts stable/aws-dranet 1.0.0 values.yaml): ``tolerations`` (empty by
default) get the pools' taints; ``nodeSelector`` keeps it to the EFA pools on DRA
(``aicp.dev/fabric=efa``, ``aicp.dev/gpu-allocator=dra``): it must not run where the EFA
device plugin runs ("Do not install the EFA DRA driver on nodes where the EFA device plugin
is running"). The chart creates the DeviceClass (``deviceClass.create: true``).
"""

from __future__ import annotations

from typing import Any

import pulumi

from ..components.contract import LABEL_ALLOCATOR, ClusterOutputs, GpuPool, taint_tolerations
from ..components.fabric import EFA_DEVICE_CLASS, LABEL_FABRIC
from .base import Addon
from .catalog import CHARTS

RELEASE = "aws-dranet"
NAMESPACE = "kube-system"


def efa_dra_pools(pools: tuple[GpuPool, ...]) -> list[GpuPool]:
    return [p for p in pools if (p.fabric or {}).get("kind") == "efa" and p.allocator == "dra"]


def values(pools: list[GpuPool]) -> dict[str, Any]:
    tolerations = taint_tolerations(pools)
    return {"tolerations": tolerations,
            "nodeSelector": {LABEL_FABRIC: "efa", LABEL_ALLOCATOR: "dra"},
            "deviceClass": {"create": True, "name": EFA_DEVICE_CLASS}}


class EfaDraDriver(Addon):
    """The EFA DRA driver's release, on the EFA pools that allocate through DRA."""

    token = "aicp:addons:EfaDraDriver"
    serves = ("high_performance_networking",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        self.release = self.helm_release(
            f"{name}-release", CHARTS["efa-dra-driver"], name=RELEASE, namespace=NAMESPACE,
            values=values(efa_dra_pools(cluster.gpu_pools)))
        self.finish(namespace=NAMESPACE, release=self.release.name,
                    deviceClass=EFA_DEVICE_CLASS)
