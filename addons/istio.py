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
from .catalog import ISTIO_HUB, istio_charts

# Namespaces carrying this label may attach routes to the inference Gateway.
ROUTES_LABEL = "aicp.dev/inference-gateway"
ROUTES_LABEL_VALUE = "allowed"
GATEWAY_CLASS = "istio"
# Label istiod selects a Gateway's pods by (istio 1.30.3 manifests/charts/istio-control/
# istio-discovery/files/kube-gateway.yaml, Service selector).
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
HTTP_PORT = 80


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
        base_chart, istiod_chart = istio_charts(cluster.kubernetes_version)
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
            }},
                # istiod's and the injected proxies' images from Docker Hub, where Istio
                # keeps its releases ("Releases are published to docker hub under 'istio'
                # project", the chart's values.yaml ``global.hub``); the GCP-hosted
                # registries go in December 2026 (istio/istio#61467: "Docker images will
                # still be available on DockerHub").
                "global": {"hub": ISTIO_HUB}},
            # istiod must see the Gateway API CRDs at start to run its Gateway controller.
            depends_on=[self.base, *args.gateway_api])

        gw_ns = self.create_namespace(f"{name}-gateway-ns", args.gateway_namespace, "baseline")
        self.service = self._gateway_service(name, args, gw_ns)
        annotations = {}
        if args.service_type != "LoadBalancer":
            annotations["networking.istio.io/service-type"] = args.service_type
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway", api_version="gateway.networking.k8s.io/v1", kind="Gateway",
            metadata={"name": args.gateway_name, "namespace": gw_ns.metadata.name,
                      **({"annotations": annotations} if annotations else {})},
            spec={
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [{
                    "name": "http", "protocol": "HTTP", "port": HTTP_PORT,
                    "allowedRoutes": {"namespaces": {
                        "from": "Selector",
                        "selector": {"matchLabels": {ROUTES_LABEL: ROUTES_LABEL_VALUE}}}},
                }],
            },
            # After its Service, so destroy deletes the Gateway first, then the Service.
            opts=self.child_opts(depends_on=[gw_ns, self.istiod, self.service,
                                             *args.gateway_api]))

        self.gateway_name = args.gateway_name
        self.service_name = gateway_service_name(args.gateway_name)
        self.gateway_namespace = args.gateway_namespace
        self.finish(
            gatewayService=self.service_name,
            gatewayName=args.gateway_name, gatewayNamespace=args.gateway_namespace,
            gatewayClassName=GATEWAY_CLASS, routeNamespaceLabel={ROUTES_LABEL: ROUTES_LABEL_VALUE},
            istioVersion=istiod_chart.version)

    def _gateway_service(self, name: str, args: IstioArgs, namespace: pulumi.Resource
                         ) -> k8s.core.v1.Service:
        """The Gateway's Service, declared so that ``pulumi destroy`` waits for it.

        istiod owns it through an ownerReference without ``blockOwnerDeletion`` (istio
        1.30.3 kube-gateway.yaml), so deleting the Gateway returns before the Service, and
        its cloud load balancer, are gone; the network under it (VPC, subnets) would then
        be deleted with the load balancer's interfaces still in it. Declared here, the
        Service is deleted after the Gateway and Pulumi waits until it is gone, which the
        cloud's ``service.kubernetes.io/load-balancer-cleanup`` finalizer holds until the
        load balancer is deleted. istiod applies the same fields into it.
        """
        return k8s.core.v1.Service(
            f"{name}-gateway-service",
            metadata={"name": gateway_service_name(args.gateway_name),
                      "namespace": args.gateway_namespace,
                      "labels": {GATEWAY_NAME_LABEL: args.gateway_name},
                      # Created before the Gateway whose pods it selects: waiting for
                      # endpoints would deadlock. For a Service skipAwait skips only the
                      # create/update waits; delete still waits until it is gone
                      # (pulumi-kubernetes 94977969d provider/pkg/metadata/overrides.go
                      # DeletedCondition, allowsSkipAwaitWithDelete).
                      "annotations": {"pulumi.com/skipAwait": "true"}},
            spec=_gateway_service_spec(args),
            opts=self.child_opts(depends_on=[namespace]))


def gateway_service_name(gateway: str) -> str:
    """The Service istiod provisions for a Gateway: ``<gateway>-<class>`` (istio 1.30.3
    pilot/pkg/config/kube/gatewaycommon/gateway_utils.go ``GetDefaultName``)."""
    return f"{gateway}-{GATEWAY_CLASS}"


def _gateway_service_spec(args: IstioArgs) -> k8s.core.v1.ServiceSpecArgs:
    # Exactly what istiod applies (gatewaycommon/deploymentcontroller.go
    # extractServicePorts: status-port 15021 first, then one port per listener, appProtocol
    # the listener's protocol lowercased), so both field managers own equal values and
    # neither server-side apply conflicts with the other.
    return k8s.core.v1.ServiceSpecArgs(
        type=args.service_type,
        selector={GATEWAY_NAME_LABEL: args.gateway_name},
        ports=[
            k8s.core.v1.ServicePortArgs(name="status-port", port=15021, app_protocol="tcp"),
            k8s.core.v1.ServicePortArgs(name="http", port=HTTP_PORT, app_protocol="http"),
        ])
