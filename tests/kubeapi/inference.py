"""Model serving as the platform's inference addons deploy it, for the emulator.

``inference_platform(kube)``: what the InferenceExtension addon deploys (an InferencePool
with its endpoint picker Service, behind an Istio Gateway and HTTPRoute) plus vLLM-like
model servers answering ``/v1/models`` (busybox ``httpd`` over a ConfigMap, see
``controllers/httpd.py``); ``epp=False`` leaves the endpoint picker out.
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


def inference_platform(kube, *, epp: bool = True) -> None:
    """The pool and its model servers; the emulated Istio routes them once settled."""
    kube.seed([o.namespace("inference"), o.namespace("inference-gateway")])
    if epp:
        kube.create(o.service("vllm-epp", "inference", 9002))
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
