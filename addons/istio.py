"""Istio as the Gateway API implementation, and the inference Gateway it serves.

Istio is the implementation with the newest passing GAIE conformance report (GAIE v1.5.0
Gateway profile, istio 1.30.1, 13/13) and it installs with plain Helm. Only its control
plane runs: no sidecar injection, no mesh. istiod creates the ``istio`` GatewayClass and
provisions a Deployment and Service for every Gateway of that class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

# Namespaces carrying this label may attach routes to the inference Gateway.
ROUTES_LABEL = "aicp.dev/inference-gateway"
ROUTES_LABEL_VALUE = "allowed"


@dataclass(frozen=True)
class IstioArgs:
    namespace: str = "istio-system"
    gateway_name: str = "inference-gateway"
    gateway_namespace: str = "inference-gateway"
    # LoadBalancer on the clouds; ClusterIP where nothing provisions load balancers.
    service_type: Literal["LoadBalancer", "ClusterIP", "NodePort"] = "LoadBalancer"
    # What owns the Gateway API CRDs (the GatewayApi addon; nothing on GKE, which has them).
    gateway_api: Sequence[pulumi.Resource] = ()


class Istio(Addon):
    """istiod with the inference extension on, and one HTTP Gateway for inference routes."""

    token = "aicp:addons:Istio"
    serves = ("ai_inference",)

    def __init__(self, name: str, cluster: ClusterOutputs, args: IstioArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or IstioArgs()
        # istiod runs unprivileged; baseline leaves room for the gateway proxies too.
        ns = self.create_namespace(f"{name}-ns", args.namespace, "baseline")
        base_chart, istiod_chart = CHARTS["istio-base"], CHARTS["istiod"]
        # Istio's charts ship only istio.io CRDs; the Gateway API CRDs come from the
        # GatewayApi addon, since v1.6's safe-upgrades policy rejects a second source.
        self.base = self.helm_release(
            f"{name}-base", base_chart, name="istio-base", namespace=ns.metadata.name,
            values={"defaultRevision": "default"}, depends_on=[ns])
        self.istiod = self.helm_release(
            f"{name}-istiod", istiod_chart, name="istiod", namespace=ns.metadata.name,
            values={"pilot": {"env": {
                # Without it istiod ignores InferencePool backendRefs (GAIE istio guide).
                "ENABLE_GATEWAY_API_INFERENCE_EXTENSION": "true",
                # Set by GAIE's conformance setup for Istio (conformance/scripts/istio).
                "SUPPORT_GATEWAY_API_INFERENCE_EXTENSION": "true",
            }}},
            # istiod must see the Gateway API CRDs at start to run its Gateway controller.
            depends_on=[self.base, *args.gateway_api])

        gw_ns = self.create_namespace(f"{name}-gateway-ns", args.gateway_namespace, "baseline")
        annotations = {}
        if args.service_type != "LoadBalancer":
            annotations["networking.istio.io/service-type"] = args.service_type
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway", api_version="gateway.networking.k8s.io/v1", kind="Gateway",
            metadata={"name": args.gateway_name, "namespace": gw_ns.metadata.name,
                      **({"annotations": annotations} if annotations else {})},
            spec={
                "gatewayClassName": "istio",
                "listeners": [{
                    "name": "http", "protocol": "HTTP", "port": 80,
                    "allowedRoutes": {"namespaces": {
                        "from": "Selector",
                        "selector": {"matchLabels": {ROUTES_LABEL: ROUTES_LABEL_VALUE}}}},
                }],
            },
            opts=self.child_opts(depends_on=[gw_ns, self.istiod, *args.gateway_api]))

        self.gateway_name = args.gateway_name
        self.gateway_namespace = args.gateway_namespace
        self.finish(
            gatewayName=args.gateway_name, gatewayNamespace=args.gateway_namespace,
            gatewayClassName="istio", routeNamespaceLabel={ROUTES_LABEL: ROUTES_LABEL_VALUE},
            istioVersion=istiod_chart.version)
