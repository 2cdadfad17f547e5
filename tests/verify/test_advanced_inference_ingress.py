"""advanced_inference_ingress against the emulated reference platform: the GAIE CRDs are
served; the platform's pool (as llm-d-router-gateway installs it) is seeded by the test
and routed by the emulated Istio, its endpoint picker played as a random pick."""

from __future__ import annotations

import json

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings
from aicp.verify.probes import advanced_inference_ingress
from aicp.verify.probes.advanced_inference_ingress import AdvancedInferenceIngress
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.kubeapi.controllers.gateway import curl_logs
from tests.verify.conftest import planned

GW = "gateway.networking.k8s.io/v1"
MODELS = {"object": "list", "data": [{"id": "Qwen/Qwen3-0.6B", "object": "model",
                                      "owned_by": "vllm", "max_model_len": 40960}]}


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(advanced_inference_ingress, "INTERVAL", 0.05)
    monkeypatch.setattr(advanced_inference_ingress, "POD_TIMEOUT", 5.0)


def inference_platform(kubeapi, *, epp: bool = True) -> None:
    """What the InferenceExtension addon deploys, plus a model server answering /v1/models."""
    kubeapi.seed([o.namespace("inference"), o.namespace("inference-gateway")])
    if epp:
        kubeapi.create(o.service("vllm-epp", "inference", 9002))
    kubeapi.create({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "models", "namespace": "inference"},
                    "data": {"models.json": json.dumps(MODELS)}})
    labels = {"app": "vllm"}
    kubeapi.create({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "vllm", "namespace": "inference"},
                    "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                        "metadata": {"labels": labels}, "spec": {
                            "containers": [{"name": "server", "image": "busybox",
                                            "command": ["httpd", "-f", "-p", "8000", "-h",
                                                        "/www"],
                                            "volumeMounts": [{"name": "www",
                                                              "mountPath": "/www"}]}],
                            "volumes": [{"name": "www", "configMap": {
                                "name": "models",
                                "items": [{"key": "models.json", "path": "v1/models"}]}}]}}}})
    kubeapi.create({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                    "metadata": {"name": "vllm", "namespace": "inference"},
                    "spec": {"selector": {"matchLabels": labels},
                             "targetPorts": [{"number": 8000}],
                             "endpointPickerRef": {"name": "vllm-epp",
                                                   "port": {"number": 9002}}}})
    kubeapi.create({"apiVersion": GW, "kind": "Gateway", "metadata": {
        "name": "inference-gateway", "namespace": "inference-gateway"},
        "spec": {"gatewayClassName": "istio", "listeners": [{
            "name": "http", "protocol": "HTTP", "port": 80,
            "allowedRoutes": {"namespaces": {"from": "All"}}}]}})
    kubeapi.create({"apiVersion": GW, "kind": "HTTPRoute",
                    "metadata": {"name": "vllm", "namespace": "inference"},
                    "spec": {"parentRefs": [{"name": "inference-gateway",
                                             "namespace": "inference-gateway"}],
                             "rules": [{"matches": [{"path": {"type": "PathPrefix",
                                                              "value": "/"}}],
                                        "backendRefs": [{
                                            "group": "inference.networking.k8s.io",
                                            "kind": "InferencePool", "name": "vllm"}]}]}})
    kubeapi.settle()


def run(kubeconfig, version="1.36"):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("gi1", version, images.catalog()), kube=kube,
                    cleanup_timeout=5).run(planned(AdvancedInferenceIngress, level="SHOULD"))
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    assert report.leftovers == []
    return report.outcomes[0].result, report


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs)
def test_a_pool_accepted_by_its_gateway_routes_to_a_model_server(kubeapi, kubeconfig):
    inference_platform(kubeapi)
    result, report = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    checks = {c.name: c for c in result.evidence.checks}
    assert checks["InferencePool inference/vllm is Accepted with ResolvedRefs by a Gateway"
                  ].observed.startswith("inference-gateway: Accepted=True")
    answered = [c for c in result.evidence.checks if "answered by a model server" in c.name][0]
    assert answered.passed and "Qwen/Qwen3-0.6B" in answered.observed
    assert result.evidence.observations["url"] == (
        "http://inference-gateway-istio.inference-gateway.svc.cluster.local:80/v1/models")
    assert report.exit_code == 0


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs)
def test_a_pool_whose_endpoint_picker_is_missing_fails(kubeapi, kubeconfig):
    inference_platform(kubeapi, epp=False)
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "ResolvedRefs=False (InvalidExtensionRef)" in result.reason
    assert "endpoint picker Service inference/vllm-epp exists, observed missing" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_served_api_without_any_pool_is_not_implemented(kubeconfig):
    result, report = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("not implemented: the InferencePool API is served")
    assert report.exit_code == 0  # a SHOULD never fails the run


@pytest.mark.kubeapi("empty")
def test_without_the_inference_pool_api_the_requirement_is_not_implemented(kubeconfig):
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "not implemented: the InferencePool API (inference.networking.k8s.io/v1) is not " \
           "served" in result.reason
