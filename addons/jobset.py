"""JobSet: the API Kueue's ``jobset.x-k8s.io/jobset`` integration gang-admits.

Installed from the published OCI chart with its defaults (internal certificates, no
cert-manager); Kueue's release waits for this one so the integration finds the API at start.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

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
        namespace = self.create_namespace(f"{name}-namespace", args.namespace, "baseline")
        self.release = self.helm_release(
            f"{name}-release", CHARTS["jobset"], name=RELEASE, namespace=args.namespace,
            values={}, depends_on=[namespace])
        self.finish(namespace=args.namespace, release=self.release.name)
