"""advanced_inference_ingress against the emulated reference platform: the GAIE CRDs are
served; the platform's pool (as llm-d-router-gateway installs it, tests/kubeapi/inference.py)
is added by the test and routed by the emulated Istio, its endpoint picker played as a random
pick."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes.advanced_inference_ingress import AdvancedInferenceIngress
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.gateway import curl_logs
from tests.kubeapi.inference import inference_platform
from tests.verify.conftest import planned

# The emulator answers in milliseconds: poll often, give up early.
FAST = Timing(timeout=5.0, poll=0.05)


def run(kubeconfig, version="1.36"):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("gi1", version, images.catalog(), timing=FAST),
                    cleanup_timeout=5).run(planned(AdvancedInferenceIngress, level="SHOULD"))
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    assert report.leftovers == []
    return report.outcomes[0].result, report


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs)
def test_a_pool_accepted_by_its_gateway_routes_to_a_model_server(kubeapi, kubeconfig):
    inference_platform(kubeapi)
    kubeapi.settle()
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
    kubeapi.settle()
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
