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
        image_tag = KUBERNETES[cluster.kubernetes_version].get("cluster-autoscaler")
        if image_tag is None:
            raise pulumi.InputPropertyError(
                "kubernetes_version", f"no cluster-autoscaler is pinned for Kubernetes "
                f"{cluster.kubernetes_version} (addons/catalog.py KUBERNETES)")
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
        ours["extraArgs"].update(dra_args(cluster))
        self.release = self.helm_release(
            f"{name}-release", chart, name="cluster-autoscaler", namespace=NAMESPACE,
            values=deep_merge(ours, cluster.autoscaler_values))
        self.dra_rbac = self._dra_rbac(name, ours["extraArgs"])
        self.finish(installed=True, autoscaler=cluster.autoscaler, imageTag=image_tag,
                    expander=args.expander)


    def _dra_rbac(self, name: str, extra_args: Mapping[str, Any]
                  ) -> k8s.rbac.v1.ClusterRoleBinding | None:
        """Read access to the DRA objects the autoscaler simulates with the flag on.

        The chart's ClusterRole has no ``resource.k8s.io`` rule (kubernetes/autoscaler
        charts/cluster-autoscaler/templates/clusterrole.yaml); upstream added it to the AWS
        example manifest when DRA handling became default (kubernetes/autoscaler#9487,
        backported in #10278). The binding names the service account the target gives the
        chart (``rbac.serviceAccount.name``).
        """
        account = (self.cluster.autoscaler_values.get("rbac", {})
                   .get("serviceAccount", {}).get("name"))
        if not extra_args.get("enable-dynamic-resource-allocation") or not account:
            return None
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-dra", metadata={"name": "aicp-cluster-autoscaler-dra"},
            rules=[k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["resource.k8s.io"],
                resources=["resourceclaims", "resourceclaimtemplates", "resourceslices",
                           "deviceclasses"],
                verbs=["get", "list", "watch"])],
            opts=self.child_opts())
        return k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-dra", metadata={"name": "aicp-cluster-autoscaler-dra"},
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io",
                                             kind="ClusterRole",
                                             name="aicp-cluster-autoscaler-dra"),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account,
                                              namespace=NAMESPACE)],
            opts=self.child_opts(depends_on=[role]))


def dra_args(cluster: ClusterOutputs) -> dict[str, Any]:
    """``--enable-dynamic-resource-allocation`` where a pool hands GPUs out through DRA.

    Up to v1.34.x the flag defaults to false (kubernetes/autoscaler
    cluster-autoscaler-release-1.34 cluster-autoscaler/main.go: ``flag.Bool(
    "enable-dynamic-resource-allocation", false, ...)``): the autoscaler then ignores
    ResourceClaims and never scales a DRA pool up for a pending claim. From v1.35 it is
    true and locked (false is fatal: config/flags/flags.go "locked to true";
    kubernetes/autoscaler#10278), so setting it true is right on every pinned minor. The
    chart passes each extraArgs key as ``--key=value`` (cluster-autoscaler-chart-9.59.0
    templates/deployment.yaml).
    """
    if any(pool.allocator == "dra" for pool in cluster.gpu_pools):
        return {"enable-dynamic-resource-allocation": True}
    return {}
