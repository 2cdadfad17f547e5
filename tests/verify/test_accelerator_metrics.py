"""accelerator_metrics against the emulated reference platform, its DCGM exporters played
by proxy handlers serving dcgm-exporter's real exposition (tests/kubeapi/controllers/dcgm.py)."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes import _prom
from aicp.verify.probes.accelerator_metrics import AcceleratorMetrics
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.dcgm import NAMESPACE as NS
from tests.kubeapi.controllers.dcgm import dcgm_text, exporters
from tests.verify.conftest import planned


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("am1", "1.35", images.catalog()),
                    cleanup_timeout=5).run(planned(AcceleratorMetrics))
    return report.outcomes[0].result, report


def test_the_parser_reads_labels_escapes_and_special_values():
    parsed = _prom.parse('# HELP x y\nx{a="1",b="q\\"uote\\\\"} 3 1700000000\n'
                         'y NaN\nz{} +Inf\nbad{a=1} 2\n')
    assert [(s.name, s.labels) for s in parsed.samples] == [
        ("x", {"a": "1", "b": 'q"uote\\'}), ("y", {}), ("z", {})]
    assert parsed.samples[0].value == 3 and parsed.samples[2].value == float("inf")
    assert len(parsed.errors) == 1 and "bad label" in parsed.errors[0]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_every_gpu_node_serving_utilisation_and_memory_per_device_passes(kubeapi, kubeconfig):
    exporters(kubeapi, ["gpu-h100-0", "gpu-h100-1"])
    result, report = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    checks = {c.name: c for c in result.evidence.checks}
    util = checks["gpu-h100-1 exports utilisation DCGM_FI_DEV_GPU_UTIL per device for all 8 GPUs"]
    assert util.passed and util.observed.startswith("8 device(s) on 8 GPU(s): GPU-gpu-h100-1-00")
    # pod Ready + utilisation + memory per node: one memory metric per device suffices, as
    # in the WG suite (kubernetes-sigs/ai-conformance test/accelerator_metrics_test.go).
    assert len(checks) == 2 * 3
    assert result.evidence.observations["gpu-h100-0.power"][0] == "GPU-gpu-h100-0-00"
    assert set(result.evidence.artifacts) == {"metrics-gpu-h100-0.txt", "metrics-gpu-h100-1.txt"}
    assert report.leftovers == [] and result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
@pytest.mark.parametrize("count_label", [True, False], ids=["gpu.count", "replicas"])
def test_a_time_sliced_node_is_judged_on_its_physical_gpus(kubeapi, kubeconfig, count_label):
    # GPU Operator time-slicing, 4 replicas: 32 allocatable, DCGM still sees 8 GPUs.
    def sliced(node: dict) -> None:
        labels = node["metadata"]["labels"]
        labels.update({"nvidia.com/gpu.replicas": "4",
                       "nvidia.com/gpu.sharing-strategy": "time-slicing"})
        if not count_label:
            labels.pop("nvidia.com/gpu.count", None)
        for key in ("allocatable", "capacity"):
            node["status"][key]["nvidia.com/gpu"] = "32"

    kubeapi.mutate("nodes", "gpu-h100-0", sliced)
    kubeapi.mutate("nodes", "gpu-h100-0", sliced, status=True)
    exporters(kubeapi, ["gpu-h100-0"])
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert any(c.name.endswith("per device for all 8 GPUs") for c in result.evidence.checks)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_exporters_labelled_otherwise_are_found_through_their_daemonset(kubeapi, kubeconfig):
    # The reference platform's exporter DaemonSet selects app.kubernetes.io/name only.
    exporters(kubeapi, ["gpu-h100-0", "gpu-h100-1"],
              labels={"app.kubernetes.io/name": "nvidia-dcgm-exporter"})
    kubeapi.requests.clear()
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    # Found by selectors: never a read of every pod in the cluster.
    pod_lists = kubeapi.requests.matching(verb="list", resource="pods")
    assert pod_lists and all("labelSelector" in r.query for r in pod_lists)
    assert any(r.path == f"/api/v1/namespaces/{NS}/pods" for r in pod_lists)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_node_whose_exporter_lacks_memory_metrics_fails_naming_it(kubeapi, kubeconfig):
    exporters(kubeapi, ["gpu-h100-0", "gpu-h100-1"],
              text=lambda node: dcgm_text(node, memory=node != "gpu-h100-1"))
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "gpu-h100-1 exports memory DCGM_FI_DEV_FB_USED" in result.reason
    assert "metric absent" in result.reason
    failed = {c.name for c in result.evidence.checks if not c.passed}
    assert all(name.startswith("gpu-h100-1") for name in failed)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_an_exporter_missing_on_one_gpu_node_fails(kubeapi, kubeconfig):
    exporters(kubeapi, ["gpu-h100-0"])
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "gpu-h100-1 runs a Ready DCGM exporter pod (observed: none)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_any_exporter_pod_the_probe_cannot_decide(kubeconfig):
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "no DCGM exporter pod found" in result.reason
    assert "different accelerator metrics exporter" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_an_exporter_the_api_server_cannot_reach_is_an_error(kubeapi, kubeconfig, monkeypatch):
    monkeypatch.setattr("aicp.verify.kube.retry._backoff", lambda *_: 0.0)  # 503s are retried
    exporters(kubeapi, ["gpu-h100-0"])
    kubeapi.faults.error(503, r"/proxy/metrics$")
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "could not read the DCGM exporter" in result.reason


@pytest.mark.kubeapi("empty")
def test_without_gpu_nodes_the_must_is_an_error_not_not_applicable(kubeconfig):
    # A MUST that could not be exercised is not "not applicable": the checklist's N/A needs
    # a justification that it does not apply (cncf/k8s-ai-conformance
    # docs/AIConformance-1.35.yaml, status and notes).
    result, _ = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("no GPU node to exercise: scale a pool up (or run with --long)")
    assert "no GPU node" in result.reason
