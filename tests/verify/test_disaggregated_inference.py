"""disaggregated_inference: read-only detection of Ready prefill and decode workloads."""

from __future__ import annotations

import pytest

from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.disaggregated_inference import DisaggregatedInference
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.inference import server
from tests.verify.conftest import planned


def run(kubeapi, kubeconfig):
    kubeapi.settle()
    kubeapi.requests.clear()
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("di1", "1.36")).run(
        planned(DisaggregatedInference, level="SHOULD"))
    assert [r for r in kubeapi.requests.requests if r.method != "GET"] == []
    assert report.leftovers == []
    return report.outcomes[0].result


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_ready_llm_d_prefill_and_decode_deployments_pass(kubeapi, kubeconfig):
    kubeapi.create(server("llama-prefill", "llm-d.ai/role", "prefill"))
    kubeapi.create(server("llama-decode", "llm-d.ai/role", "decode"))
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    observed = result.evidence.checks[0].observed
    assert observed.startswith("ai-workloads: prefill ['ReplicaSet/llama-prefill-")
    assert "decode ['ReplicaSet/llama-decode-" in observed


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_dynamo_worker_labels_count_too(kubeapi, kubeconfig):
    label = "nvidia.com/dynamo-sub-component-type"
    kubeapi.create(server("vllmprefillworker", label, "prefill"))
    kubeapi.create(server("vllmdecodeworker", label, "decode"))
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert f"({label})" in result.reason


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_a_decode_phase_that_is_not_ready_is_not_implemented(kubeapi, kubeconfig):
    kubeapi.create(server("llama-prefill", "llm-d.ai/role", "prefill"))
    kubeapi.create(server("llama-decode", "llm-d.ai/role", "decode",
                          node_selector={"aicp.dev/gpu-pool": "b200"}))
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "not implemented: role-labelled serving pods exist" in result.reason
    assert "decode 0/1 Ready, prefill 1/1 Ready" in result.reason


@pytest.mark.kubeapi("reference-platform", minor="1.36", gpu_nodes=1)
def test_no_role_labelled_pods_is_not_implemented(kubeapi, kubeconfig):
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("not implemented: no pods labelled as prefill or decode")
