"""Model serving as the platform's inference addons deploy it, for the emulator.

``inference_platform(kube)``: what the InferenceExtension addon deploys (an InferencePool
with its endpoint picker Service, behind an Istio Gateway and HTTPRoute) plus vLLM-like
model servers answering ``/v1/models`` (busybox ``httpd`` over a ConfigMap, see
``controllers/httpd.py``); ``epp=False`` leaves the endpoint picker out. The endpoint
picker's Deployment and ConfigMap are the chart's (llm-d-router v0.10.0
config/charts/routerlib templates ``_deployment.yaml``, ``_config.yaml``): started with
llm-d-router's sample P/D config (``deploy/config/pd-epp-config.yaml``), as aicp's addon
starts it, or with ``pd=False`` with the chart's default (no prefill/decode profiles).
``server(name, label, role)``: a serving Deployment labelled with a disaggregated-serving
role (``prefill``/``decode``), as llm-d (``llm-d.ai/role``) or Dynamo label theirs.
"""

from __future__ import annotations

import json

from . import objects as o
from .controllers.gateway import GW_V1

POOL_API = "inference.networking.k8s.io/v1"
MODELS = {"object": "list", "data": [{"id": "Qwen/Qwen3-0.6B", "object": "model",
                                      "owned_by": "vllm", "max_model_len": 40960}]}


# llm-d-router v0.10.0 config/charts/routerlib/templates/_config.yaml ``default-plugins.yaml``
# as rendered for vLLM over HTTP with the chart's defaults (parsers and the latency
# predictor off), and deploy/config/pd-epp-config.yaml ("Sample EPP configuration for
# running with P/D").
DEFAULT_PLUGINS = """apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
"""
PD_PLUGINS = """apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    maxPrefixTokensToMatch: 16384
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


def inference_platform(kube, *, epp: bool = True, pd: bool = True) -> None:
    """The pool and its model servers; the emulated Istio routes them once settled."""
    kube.seed([o.namespace("inference"), o.namespace("inference-gateway")])
    if epp:
        kube.create(o.service("vllm-epp", "inference", 9002))
        config = "pd-epp-config.yaml" if pd else "default-plugins.yaml"
        kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "vllm-epp", "namespace": "inference"},
                     "data": {"default-plugins.yaml": DEFAULT_PLUGINS,
                              **({config: PD_PLUGINS} if pd else {})}})
        epp_labels = {"llm-d-router-gateway": "vllm-epp"}  # _helpers.tpl selectorLabels
        kube.create({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "vllm-epp", "namespace": "inference"},
                     "spec": {"replicas": 1, "selector": {"matchLabels": epp_labels},
                              "template": {"metadata": {"labels": epp_labels}, "spec": {
                                  "containers": [{
                                      "name": "epp",
                                      "image": "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0",
                                      "args": ["--pool-name", "vllm", "--pool-namespace",
                                               "inference", "--config-file",
                                               f"/config/{config}"]}]}}}})
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "models", "namespace": "inference"},
                 "data": {"models.json": json.dumps(MODELS)}})
    labels = {"app": "vllm"}
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "vllm", "namespace": "inference"},
                 "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                     "metadata": {"labels": labels}, "spec": {
                         "containers": [{"name": "server", "image": "busybox",
                                         "command": ["httpd", "-f", "-p", "8000", "-h", "/www"],
                                         "volumeMounts": [{"name": "www",
                                                           "mountPath": "/www"}]}],
                         "volumes": [{"name": "www", "configMap": {
                             "name": "models",
                             "items": [{"key": "models.json", "path": "v1/models"}]}}]}}}})
    kube.create({"apiVersion": POOL_API, "kind": "InferencePool",
                 "metadata": {"name": "vllm", "namespace": "inference"},
                 "spec": {"selector": {"matchLabels": labels},
                          "targetPorts": [{"number": 8000}],
                          "endpointPickerRef": {"name": "vllm-epp", "port": {"number": 9002}}}})
    kube.create({"apiVersion": GW_V1, "kind": "Gateway", "metadata": {
        "name": "inference-gateway", "namespace": "inference-gateway"},
        "spec": {"gatewayClassName": "istio", "listeners": [{
            "name": "http", "protocol": "HTTP", "port": 80,
            "allowedRoutes": {"namespaces": {"from": "All"}}}]}})
    kube.create({"apiVersion": GW_V1, "kind": "HTTPRoute",
                 "metadata": {"name": "vllm", "namespace": "inference"},
                 "spec": {"parentRefs": [{"name": "inference-gateway",
                                          "namespace": "inference-gateway"}],
                          "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                     "backendRefs": [{"group": "inference.networking.k8s.io",
                                                      "kind": "InferencePool",
                                                      "name": "vllm"}]}]}})


def server(name: str, label: str, role: str, node_selector: dict | None = None) -> dict:
    """A one-replica serving Deployment in ai-workloads whose pods carry ``label: role``."""
    labels = {"app": name, label: role}
    spec = {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "ai-workloads", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}
