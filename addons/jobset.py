"""JobSet: the API Kueue's ``jobset.x-k8s.io/jobset`` integration gang-admits.

Installed from the published OCI chart with its defaults (internal certificates, no
cert-manager); Kueue's release waits for this one so the integration finds the API at start.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from aicp.addons.base import Addon
from aicp.addons.catalog import CHARTS
from aicp.components.contract import ClusterOutputs

RELEASE = "jobset"


@dataclass(frozen=True)
class JobSetArgs:
    namespace: str = "jobset-system"


class JobSet(Addon):
    """The JobSet controller release; Kueue serves gang scheduling on top of it."""

    token = "aicp:addons:JobSet"
    serves = ()

    def __init__(self, name: str, cluster: ClusterOutputs, args: JobSetArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or JobSetArgs()
        chart = CHARTS["jobset"]
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace,
                      "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
            opts=self.child_opts(depends_on=cluster.ready))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE,
            chart=chart.ref,
            version=chart.version,
            repository_opts=None if chart.oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
            namespace=args.namespace,
            values={},
            opts=self.child_opts(depends_on=[namespace, *cluster.ready]))
        self.finish(namespace=args.namespace, release=self.release.name)
