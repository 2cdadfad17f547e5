"""What every addon component shares: the cluster it installs into and what it serves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from aicp.components.contract import CONFORMANCE_OUTPUT, ClusterOutputs


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

    def child_opts(self, *, depends_on: Sequence[pulumi.Resource] = (),
                   **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for a child: parented here, on the cluster's Kubernetes provider."""
        return pulumi.ResourceOptions(
            parent=self, provider=self.cluster.provider, depends_on=list(depends_on), **kwargs)

    def finish(self, **outputs: Any) -> None:
        self.register_outputs({**outputs, CONFORMANCE_OUTPUT: list(self.serves)})
