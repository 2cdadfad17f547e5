"""Gateway API Inference Extension: the InferencePool API and an endpoint picker (EPP).

GAIE v1.6.0 keeps only the InferencePool API (``inference.networking.k8s.io/v1``); the
endpoint picker and its chart moved to ``llm-d/llm-d-router`` (chart
``llm-d-router-gateway``). That chart creates the EPP, an InferencePool named after the
release selecting the model-server pods of its namespace, Istio's DestinationRule for
the EPP, the EPP ServiceMonitor and an HTTPRoute from the inference Gateway to the pool.

Chart value keys, read at llm-d/llm-d-router:
``config/charts/README.md`` ("Value Mapping Guide", "EPP Core Configuration", "Model
Server Configuration", "Gateway-Specific Parameters"), ``config/charts/routerlib/
values.yaml`` (``epp.image.tag: main`` / ``pullPolicy: Always``, ``epp.resources``
requests 8 CPU / 8Gi, ``monitoring.prometheus.enabled``, ``modelServers``),
``config/charts/llm-d-router-gateway/values.yaml`` (``provider.name``, ``httpRoute.*``),
``config/charts/routerlib/templates/_inferencepool.yaml`` (pool name = release name).
The chart fails on the legacy GAIE keys (``inferenceExtension``, ``inferencePool``,
``inferenceObjectives``, ``experimentalHttpRoute``) at top level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS, IMAGES, MANIFESTS
from .gateway_api import MANAGED_FEATURE
from .istio import ROUTES_LABEL, ROUTES_LABEL_VALUE


def _default_resources() -> dict[str, Any]:
    # Upstream asks for 8 CPU / 8Gi; that sized for heavy traffic and would not fit a
    # small system node. Raise it with the load.
    return {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}


@dataclass(frozen=True)
class InferenceExtensionArgs:
    # Where the model servers run: an InferencePool selects pods of its own namespace.
    namespace: str = "inference"
    pool_name: str = "vllm"
    model_server_labels: Mapping[str, str] = field(default_factory=lambda: {"app": "vllm"})
    model_server_port: int = 8000
    model_server_type: Literal["vllm", "sglang", "triton-tensorrt-llm", "trtllm-serve",
                               "triton"] = "vllm"
    gateway_provider: Literal["istio", "gke", "none"] = "istio"
    gateway_name: str = "inference-gateway"
    gateway_namespace: str = "inference-gateway"
    epp_resources: Mapping[str, Any] = field(default_factory=_default_resources)
    # The EPP ServiceMonitor needs the prometheus-operator CRDs.
    metrics: bool = True
    # What the chart's objects need first: the gateway implementation (Istio's
    # DestinationRule CRD, the Gateway) and the ServiceMonitor CRD owner.
    after: Sequence[pulumi.Resource] = ()
    # disaggregated_inference: the EPP's prefill/decode scheduling profiles (PD_CONFIG).
    disaggregated: bool = False


class InferenceExtension(Addon):
    """InferencePool CRDs, then the endpoint picker and its pool for one set of model servers."""

    token = "aicp:addons:InferenceExtension"
    serves = ("advanced_inference_ingress",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 args: InferenceExtensionArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or InferenceExtensionArgs()
        manifest, chart = MANIFESTS["inference-extension"], CHARTS["endpoint-picker"]

        self.crds: k8s.yaml.v2.ConfigFile | None = None
        if not cluster.features.get(MANAGED_FEATURE):  # GKE installs the GAIE CRDs too
            self.crds = k8s.yaml.v2.ConfigFile(
                f"{name}-crds", file=manifest.url, opts=self.child_opts())

        # GPU model servers need nothing beyond baseline; the label admits the chart's
        # HTTPRoute to the inference Gateway.
        ns = self.create_namespace(f"{name}-ns", args.namespace, "baseline",
                                   {ROUTES_LABEL: ROUTES_LABEL_VALUE})

        values = {
            "router": {
                "epp": {
                    "image": {"tag": IMAGES["endpoint-picker"], "pullPolicy": "IfNotPresent"},
                    "resources": dict(args.epp_resources),
                    **(pd_epp_values() if args.disaggregated else {}),
                },
                "modelServers": {
                    "matchLabels": dict(args.model_server_labels),
                    "targetPorts": [{"number": args.model_server_port}],
                    "type": args.model_server_type,
                },
                "monitoring": {"prometheus": {"enabled": args.metrics}},
            },
            "provider": {"name": args.gateway_provider},
            "httpRoute": {
                "create": True,
                "inferenceGatewayName": args.gateway_name,
                "inferenceGatewayNamespace": args.gateway_namespace,
            },
        }
        self.epp = self.helm_release(
            f"{name}-epp", chart, name=args.pool_name, namespace=ns.metadata.name,
            values=values, depends_on=[ns, *([self.crds] if self.crds else []), *args.after])

        self.pool_name = args.pool_name
        self.namespace = args.namespace
        if args.disaggregated:
            self.serves = (*self.serves, "disaggregated_inference")
        self.finish(
            inferencePool={"name": args.pool_name, "namespace": args.namespace,
                           "apiVersion": "inference.networking.k8s.io/v1"},
            crdsVersion=manifest.version, endpointPickerVersion=chart.version,
            **({"disaggregated": {"schedulingProfiles": ["prefill", "decode"],
                                  "roleLabel": PD_ROLE_LABEL}} if args.disaggregated else {}))


# --- disaggregated_inference (issue #25) ----------------------------------------------------
# llm-d's prefill/decode scheduling on the same endpoint picker: a request is scheduled
# through the "prefill" profile (pods labelled llm-d.ai/role=prefill) and the "decode"
# profile (llm-d.ai/role=decode) when the decider says the prompt is worth a remote
# prefill. The config is llm-d/llm-d-router deploy/config/pd-epp-config.yaml ("Sample EPP
# configuration for running with P/D", commit e068bab); the chart mounts
# router.epp.pluginsCustomConfig files and starts the EPP with router.epp.pluginsConfigFile
# (llm-d-router v0.10.0 config/charts/routerlib/values.yaml). Nothing runs until model
# servers with those labels join the pool.
PD_ROLE_LABEL = "llm-d.ai/role"
PD_CONFIG_FILE = "pd-epp-config.yaml"
PD_CONFIG = """apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    maxPrefixTokensToMatch: 4096
    lruCapacityPerServer: 31250
- type: prefix-cache-scorer
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: 16
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
"""


def pd_epp_values() -> dict[str, Any]:
    """``router.epp`` values that load the prefill/decode profiles."""
    return {"pluginsConfigFile": PD_CONFIG_FILE,
            "pluginsCustomConfig": {PD_CONFIG_FILE: PD_CONFIG}}
