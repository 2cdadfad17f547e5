"""pod_autoscaling against the emulated platform with an aggregated custom metrics API."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings
from aicp.verify.probes import pod_autoscaling
from aicp.verify.probes.pod_autoscaling import PodAutoscaling
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.custom_metrics import CustomMetrics, gpu_util
from tests.verify.conftest import planned


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    for name, value in (("POD_TIMEOUT", 3.0), ("METRIC_TIMEOUT", 1.0),
                        ("SCALE_TIMEOUT", 2.0), ("POLL", 0.05)):
        monkeypatch.setattr(pod_autoscaling, name, value)


def idle(pod: dict) -> float | None:
    return 0.0


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("pa1", "1.35", images.catalog()), kube=kube,
                    cleanup_timeout=10).run(planned(PodAutoscaling))
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.outcomes[0].result


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_the_hpa_scales_a_gpu_deployment_on_a_dcgm_metric(kubeapi, kubeconfig):
    CustomMetrics({"DCGM_FI_DEV_GPU_TEMP": lambda pod: 40.0,
                   "DCGM_FI_DEV_GPU_UTIL": gpu_util,
                   "http_requests": lambda pod: 3.0}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    obs = result.evidence.observations
    assert obs["customMetrics"] == {"version": "v1beta2", "gpuPodMetrics": [
        "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL"]}
    # Utilisation preferred over temperature; the target is half of what the pod reports.
    assert obs["hpaMetric"] == {"name": "DCGM_FI_DEV_GPU_UTIL", "observed": "85.0",
                                "target": "42500m"}
    passed, observed = checks(result)[
        "the HPA scales the GPU Deployment on DCGM_FI_DEV_GPU_UTIL above its target"]
    assert passed and "replicas 2" in observed
    assert "to 2 replicas on custom metric DCGM_FI_DEV_GPU_UTIL" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_an_hpa_that_never_scales_on_a_high_metric_fails(kubeapi, kubeconfig):
    CustomMetrics({"gpu_utilization": gpu_util}).install(kubeapi, hpa=False)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("the HPA did not scale the GPU Deployment within 2s while "
                                    "gpu_utilization was 85 per pod against a target of 42500m")
    assert checks(result)["the HPA scales the GPU Deployment on gpu_utilization above its "
                          "target"][0] is False


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_the_custom_metrics_api_it_cannot_decide(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("the custom metrics API (custom.metrics.k8s.io) is not "
                                    "served")
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_custom_metrics_api_without_gpu_metrics_cannot_decide(kubeapi, kubeconfig):
    CustomMetrics({"http_requests": lambda pod: 3.0}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "serves no GPU metric for pods" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_gpu_metric_reading_zero_cannot_be_scaled_on(kubeapi, kubeconfig):
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": idle}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "(all read 0)" in result.reason
