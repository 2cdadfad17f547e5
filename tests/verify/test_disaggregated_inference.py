"""disaggregated_inference: read-only detection of Ready prefill and decode workloads."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect, sweep
from aicp.verify.probe import RUN_LABEL, Settings
from aicp.verify.probes.disaggregated_inference import DisaggregatedInference
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.llmd import pd_decisions
from tests.kubeapi.inference import server
from tests.verify.conftest import planned
from tests.verify.test_conformant_platform import FAST


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


# --long: a simulated prefill/decode pair through the installed endpoint picker ------------
LONG_IMAGES = {**images.catalog(), **images.long_images()}


def run_long(kubeapi, kubeconfig, *, read_only: bool = False):
    kubeapi.settle()  # the platform's operators and servers exist before the run
    report = Runner(connect(kubeconfig), Settings(
        "di2", "1.37", LONG_IMAGES, True, timing=FAST, read_only=read_only)).run(
        planned(DisaggregatedInference, level="SHOULD"))
    assert report.leftovers == []
    kubeapi.settle()
    # Nothing of the run is left, in its namespaces or in the pool's.
    assert [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
            for ref in ("deployments.apps", "pods", "namespaces")
            for p in kubeapi.list(ref)
            if RUN_LABEL in (p["metadata"].get("labels") or {})
            and not p["metadata"].get("deletionTimestamp")] == []
    return report.outcomes[0].result


@pytest.mark.kubeapi("conformant-platform", minor="1.37")
def test_long_a_completion_is_prefilled_and_decoded_by_separate_pods(kubeapi, kubeconfig):
    no_other_model_in_the_pool(kubeapi)
    result = run_long(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason.startswith("a completion through InferencePool inference/vllm was "
                                    "prefilled by aicp-verify-di2-prefill-")
    assert "(0 -> 1 requests) and decoded by aicp-verify-di2-decode-" in result.reason
    checks = {c.name: c for c in result.evidence.checks}
    assert checks["the x-inference-pod response header names a decode pod"].passed
    assert checks["the prefill pod's vllm:e2e_request_latency_seconds_count went up"].passed
    # The endpoint picker counted the request as upstream's e2e expects it to.
    assert ('llm_d_epp_pd_decision_total{decision_type="prefill-decode",'
            'model_name="aicp-verify-sim"} 1') in pd_decisions(kubeapi)
    # The pair stood where the installed pool selects: its namespace, its labels.
    made = [o for o in result.evidence.objects if o.kind == "Deployment"]
    assert [(o.namespace, o.name) for o in made] == [
        ("inference", "aicp-verify-di2-prefill"), ("inference", "aicp-verify-di2-decode")]
    assert LONG_IMAGES["inference-sim"] in made[0].images
    assert LONG_IMAGES["disagg-sidecar"] in made[1].images


def no_other_model_in_the_pool(kubeapi):
    """The pool selects only the probe's pair, as on a platform where no model is deployed
    yet: llm-d's decode-filter admits role-less pool members too, so with the platform's
    own servers in the pool the endpoint picker may send the request to them."""
    kubeapi.mutate("deployments.apps", "vllm", lambda d: d["spec"].update(replicas=0),
                   "inference")


@pytest.mark.kubeapi("conformant-platform", minor="1.37")
def test_long_a_crowded_pool_is_tried_again_until_the_pair_answers(kubeapi, kubeconfig):
    result = run_long(kubeapi, kubeconfig)  # the platform's two role-less servers stay
    assert result.verdict is Verdict.PASS, result.reason
    tried = result.evidence.observations["completions"]
    # The picker first chose one of the platform's own servers (no x-inference-pod header,
    # busybox's 404 for a POST it cannot serve), then the pair's decode pod.
    assert tried[0].startswith("HTTP 404 from a pod that names no pod")
    assert tried[-1].startswith("HTTP 200 from aicp-verify-di2-decode-")
    assert "decoded by aicp-verify-di2-decode-" in result.reason


@pytest.mark.kubeapi("conformant-platform", minor="1.37")
def test_long_an_endpoint_picker_without_prefill_decode_profiles_fails(kubeapi, kubeconfig):
    # The EPP runs the chart's default config, as an install without aicp's P/D values.
    def default_config(dep):
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        args[args.index("--config-file") + 1] = "/config/default-plugins.yaml"
    kubeapi.mutate("deployments.apps", "vllm-epp", default_config, "inference")
    no_other_model_in_the_pool(kubeapi)
    result = run_long(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL, result.reason
    assert result.reason.startswith("a completion through InferencePool inference/vllm was "
                                    "not disaggregated")
    # Decode-only: the decode pod answered without a remote prefill.
    assert "answered by aicp-verify-di2-decode-" in result.reason
    assert "prefill pod requests 0 -> 0" in result.reason
    checks = {c.name: c.passed for c in result.evidence.checks}
    assert checks == {"the x-inference-pod response header names a decode pod": True,
                      "the prefill pod's vllm:e2e_request_latency_seconds_count went up":
                      False}
    assert "prefill-decode" not in pd_decisions(kubeapi)


@pytest.mark.kubeapi("conformant-platform", minor="1.37")
def test_long_without_an_inference_pool_is_an_error_naming_the_missing_piece(kubeapi,
                                                                             kubeconfig):
    kubeapi.delete("inferencepools.inference.networking.k8s.io", "vllm", "inference")
    result = run_long(kubeapi, kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "--long: no InferencePool is deployed" in result.reason


@pytest.mark.kubeapi("conformant-platform", minor="1.37")
def test_long_with_read_only_creates_nothing(kubeapi, kubeconfig):
    kubeapi.settle()
    kubeapi.requests.clear()
    result = run_long(kubeapi, kubeconfig, read_only=True)
    assert [r for r in kubeapi.requests.requests if r.method != "GET"] == []
    assert result.verdict is Verdict.PASS  # the platform's own llama-prefill/-decode


@pytest.mark.kubeapi("conformant-platform", minor="1.37")
def test_cleanup_deletes_a_dead_runs_model_servers_in_the_pools_namespace(kubeapi,
                                                                         kubeconfig):
    kubeapi.settle()
    dep = server("aicp-verify-dead-decode", "llm-d.ai/role", "decode")
    dep["metadata"].update(namespace="inference", labels={RUN_LABEL: "dead"})
    kubeapi.create(dep)
    swept = sweep.cleanup(connect(kubeconfig), "dead")
    assert swept.deleted == ["Deployment inference/aicp-verify-dead-decode"]
    assert kubeapi.find("deployments.apps", "aicp-verify-dead-decode", "inference") is None


def test_without_long_the_probe_claims_no_extra_time_and_prints_no_extra_images():
    assert DisaggregatedInference.budget(Settings("x", "1.37")) is None
    assert DisaggregatedInference.budget(Settings("x", "1.37", long=True)) == (
        2 * 300.0 + 5 * 180.0 + 60.0)
    assert not set(images.long_images()) & set(images.catalog())
