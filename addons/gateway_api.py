"""Gateway API CRDs (standard channel), the API every inference gateway is built on.

Applied from the upstream release manifest pinned in the catalog. The bundle also carries
the ``safe-upgrades`` ValidatingAdmissionPolicy, which from v1.6 rejects experimental CRDs
over standard ones and any Gateway API CRD with bundle-version v1.0–v1.5: nothing else may
install these CRDs (Istio's charts do not; llm-d's ``crds-gateway-api`` would).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import MANIFESTS

# ClusterOutputs.features key: the platform installs the Gateway API (and GAIE) CRDs itself.
# GKE >= 1.34.0-gke.1626000 does, and ours would fight its reconciler.
MANAGED_FEATURE = "gatewayApiCrdsManaged"


@dataclass(frozen=True)
class GatewayApiArgs:
    """Nothing to choose: the standard channel at the catalog's pin."""


class GatewayApi(Addon):
    """The Gateway API standard CRDs, unless the platform manages them."""

    token = "aicp:addons:GatewayApi"
    serves = ()

    def __init__(self, name: str, cluster: ClusterOutputs, args: GatewayApiArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        manifest = MANIFESTS["gateway-api"]
        self.managed = bool(cluster.features.get(MANAGED_FEATURE))
        self.crds: k8s.yaml.v2.ConfigFile | None = None
        if not self.managed:
            # A remote component: one opaque resource under mocks, real CRDs on `pulumi up`.
            self.crds = k8s.yaml.v2.ConfigFile(
                f"{name}-crds", file=manifest.url,
                opts=self.child_opts())
        self.finish(version=manifest.version, managedByPlatform=self.managed)
