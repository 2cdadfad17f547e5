"""What every addon component shares: the cluster it installs into, what it serves, and
how it declares its namespace and its pinned Helm releases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import CONFORMANCE_OUTPUT, CRITICAL_PODS_NEED_QUOTA, ClusterOutputs
from .catalog import Chart

PodSecurity = Literal["privileged", "baseline", "restricted"]
# The PriorityClasses GKE admits outside kube-system only under a ResourceQuota scoped to
# them (Kubernetes docs, "Limit Priority Class consumption by default"; NVIDIA/aicr#915: the
# GPU Operator Deployment is rejected with "insufficient quota to match these scopes").
CRITICAL_PRIORITY_CLASSES = ("system-node-critical", "system-cluster-critical")
# The figure NVIDIA's GKE guide uses (NVIDIA/gpu-operator#660); only a ceiling on pods.
CRITICAL_PODS_QUOTA = "100"


class Addon(pulumi.ComponentResource):
    """A ComponentResource installing one addon into a cluster.

    Subclasses set ``token`` (``aicp:addons:<Name>``) and ``serves`` (conformance
    requirement ids); ``aicp plan`` reads ``serves`` from the component's outputs.
    """

    token: str = ""
    serves: Sequence[str] = ()

    def __init__(self, name: str, cluster: ClusterOutputs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.token, name, None, opts)
        self.cluster = cluster
        self.critical_pods_quota: k8s.core.v1.ResourceQuota | None = None

    def child_opts(self, *, depends_on: Sequence[pulumi.Resource] = (),
                   **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for a child: parented here, on the cluster's Kubernetes provider, after
        what the cluster says addons must wait for (a parent's depends_on does not reach
        its children)."""
        return pulumi.ResourceOptions(
            parent=self, provider=self.cluster.provider,
            depends_on=[*self.cluster.ready, *depends_on], **kwargs)

    def create_namespace(self, resource_name: str, name: pulumi.Input[str],
                         pod_security: PodSecurity,
                         labels: Mapping[str, str] | None = None, *,
                         critical_pods: bool = False) -> k8s.core.v1.Namespace:
        """A namespace enforcing (and warning at) a Pod Security level.

        ``critical_pods``: the addon's charts run pods at ``system-node-critical`` or
        ``system-cluster-critical``; where the cluster admits those only under a scoped
        ResourceQuota, the namespace gets one (``self.critical_pods_quota``), and the
        release must wait for it.
        """
        namespace = k8s.core.v1.Namespace(
            resource_name,
            metadata={"name": name, "labels": {
                "pod-security.kubernetes.io/enforce": pod_security,
                "pod-security.kubernetes.io/warn": pod_security, **(labels or {})}},
            opts=self.child_opts())
        if critical_pods and self.cluster.features.get(CRITICAL_PODS_NEED_QUOTA):
            self.critical_pods_quota = k8s.core.v1.ResourceQuota(
                f"{resource_name}-critical-pods",
                metadata={"name": "critical-pods", "namespace": namespace.metadata.name},
                spec=k8s.core.v1.ResourceQuotaSpecArgs(
                    hard={"pods": CRITICAL_PODS_QUOTA},
                    scope_selector=k8s.core.v1.ScopeSelectorArgs(match_expressions=[
                        k8s.core.v1.ScopedResourceSelectorRequirementArgs(
                            scope_name="PriorityClass", operator="In",
                            values=list(CRITICAL_PRIORITY_CLASSES))])),
                opts=self.child_opts(depends_on=[namespace]))
        return namespace

    def namespace_ready(self, namespace: k8s.core.v1.Namespace) -> list[pulumi.Resource]:
        """What a release in ``namespace`` waits for: it, and its critical-pods quota."""
        quota = self.critical_pods_quota
        return [namespace, *([quota] if quota is not None else [])]

    def helm_release(self, resource_name: str, chart: Chart, *, name: str,
                     namespace: pulumi.Input[str], values: Mapping[str, Any],
                     depends_on: Sequence[pulumi.Resource] = (),
                     **kwargs: Any) -> k8s.helm.v3.Release:
        """A Helm release of a catalog chart, at exactly the catalog's version and repo."""
        return k8s.helm.v3.Release(
            resource_name, name=name, chart=chart.ref, version=chart.version,
            repository_opts=None if chart.oci else k8s.helm.v3.RepositoryOptsArgs(
                repo=chart.repo),
            namespace=namespace, values=dict(values),
            opts=self.child_opts(depends_on=depends_on), **kwargs)

    def finish(self, **outputs: Any) -> None:
        self.register_outputs({**outputs, CONFORMANCE_OUTPUT: list(self.serves)})
