"""ai_inference against the emulated reference platform: GatewayClass ``istio`` served by
an emulated Istio (``tests/kubeapi/controllers/gateway.py``), curl pods answered by it."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes import ai_inference
from aicp.verify.probes.ai_inference import AiInference
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.gateway import Gateways, curl_logs
from tests.verify.conftest import planned

# The emulator answers in milliseconds: poll often, give up early.
FAST = Timing(poll=0.05, overrides={"gateway_timeout": 1.0, "route_timeout": 1.0,
                                    "pod_timeout": 5.0})


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("ai1", "1.35", images.catalog(), timing=FAST),
                    cleanup_timeout=5).run(planned(AiInference))
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    assert report.leftovers == []
    return report.outcomes[0].result


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs)
def test_weighted_split_and_header_routing_through_the_gateway_pass(kubeapi, kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    obs = result.evidence.observations
    assert obs["gatewayClass"] == "istio"
    assert obs["gatewayUrl"].startswith("http://probe-istio.aicp-verify-ai1-ai-inference.svc")
    a, b = obs["splitCounts"]["backend-a"], obs["splitCounts"]["backend-b"]
    assert a + b == ai_inference.REQUESTS and 70 <= 100 * a / (a + b) <= 90
    assert obs["headerCounts"] == {"backend-b": ai_inference.HEADER_REQUESTS}
    assert all(c.passed for c in result.evidence.checks) and len(result.evidence.checks) == 4
    assert {o.kind for o in result.evidence.objects} >= {"Gateway", "HTTPRoute", "Deployment",
                                                         "Service", "ConfigMap", "Pod"}
    assert "client-split.log" in result.evidence.artifacts


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs,
                    gateways=Gateways(weights=False))
def test_a_gateway_ignoring_weights_fails_with_the_measured_split(kubeapi, kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "weighted split 80/20 within ±10 points" in result.reason
    assert "header" not in result.reason
    split = result.evidence.observations["splitCounts"]
    assert 35 <= 100 * split["backend-a"] / ai_inference.REQUESTS <= 65


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs,
                    gateways=Gateways(headers=False))
def test_a_gateway_ignoring_header_matches_fails(kubeapi, kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "x-model: b reached backend-b only" in result.reason
    assert result.evidence.observations["headerCounts"]["backend-a"] > 0


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=curl_logs,
                    gateways=Gateways(programs=False))
def test_a_gateway_never_programmed_is_an_error(kubeapi, kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "not Programmed" in result.reason and "Programmed=False (Pending)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, with_addons=False)
def test_without_an_accepted_gateway_class_the_probe_cannot_decide(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "no GatewayClass is Accepted" in result.reason


@pytest.mark.kubeapi("empty")
def test_a_cluster_not_serving_the_gateway_api_fails(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "is not served" in result.reason
