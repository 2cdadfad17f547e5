"""cluster-autoscaler, on targets whose node groups do not scale themselves (EKS, on-prem).

The target hands over the cloud half of the chart values (``ClusterOutputs.
autoscaler_values``: cloud provider, region, auto-discovery, service-account identity);
this addon adds the scaling policy and the image that matches the cluster minor.

GPU nodes: cluster-autoscaler has no flag for a GPU node label. Each cloud provider
hard-codes one (AWS ``GPULabel = "k8s.amazonaws.com/accelerator"``, in
``cloudprovider/aws/aws_cloud_provider.go``; GCE ``cloud.google.com/gke-accelerator``)
and treats a node with that label but no GPU allocatable yet as unready instead of
scaling up again. The target puts the label on its GPU node groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS, KUBERNETES

# The target's workload identity (IRSA on EKS) trusts this namespace's service account.
NAMESPACE = "kube-system"


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    expander: Literal["least-waste", "priority", "random", "most-pods", "price"] = \
        "least-waste"
    # How long an idle GPU node lives before removal; GPU nodes are expensive to idle.
    scale_down_unneeded_time: str = "10m"


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top; maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class ClusterAutoscaler(Addon):
    """The cluster-autoscaler chart, or nothing where the target scales its own nodes."""

    token = "aicp:addons:ClusterAutoscaler"
    serves = ("cluster_autoscaling",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 args: ClusterAutoscalerArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or ClusterAutoscalerArgs()
        self.release: k8s.helm.v3.Release | None = None
        if cluster.autoscaler != "cluster-autoscaler":
            # GKE/AKS scale node pools themselves; the target serves the requirement.
            self.serves = ()
            self.finish(installed=False, autoscaler=cluster.autoscaler)
            return

        chart = CHARTS["cluster-autoscaler"]
        image_tag = KUBERNETES[cluster.kubernetes_version]["cluster-autoscaler"]
        ours = {
            # cluster-autoscaler supports only the Kubernetes minor it was built for.
            "image": {"tag": image_tag},
            "extraArgs": {
                "expander": args.expander,
                "balance-similar-node-groups": True,
                # Let nodes running only DaemonSets and kube-system pods scale down.
                "skip-nodes-with-system-pods": False,
                "scale-down-unneeded-time": args.scale_down_unneeded_time,
            },
            "resources": {"requests": {"cpu": "100m", "memory": "300Mi"},
                          "limits": {"memory": "600Mi"}},
        }
        self.release = self.helm_release(
            f"{name}-release", chart, name="cluster-autoscaler", namespace=NAMESPACE,
            values=deep_merge(ours, cluster.autoscaler_values))
        self.finish(installed=True, autoscaler=cluster.autoscaler, imageTag=image_tag,
                    expander=args.expander)
