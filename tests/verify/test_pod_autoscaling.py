"""pod_autoscaling against the emulated platform with aggregated custom/external metrics APIs.

The emulated DCGM utilisation follows the real rule (tests/kubeapi/custom_metrics.py
``gpu_util``): 0 for a GPU pod that runs no CUDA kernel, busy while n-body runs.
"""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes import pod_autoscaling
from aicp.verify.probes.pod_autoscaling import PodAutoscaling
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.hpa import HorizontalPodAutoscalers
from tests.kubeapi.controllers.kubelet import kubelet
from tests.kubeapi.custom_metrics import CustomMetrics, gpu_util, runs_compute
from tests.verify.conftest import planned

# The probe's waits, short: the emulator answers in milliseconds.
FAST = {"pod_timeout": 3.0, "metric_timeout": 1.0, "scale_timeout": 2.0,
        "scale_down_timeout": 2.0, "poll": 0.05}


def run(kubeconfig, **waits: float):
    """One run of the probe; ``waits`` replace FAST's by name (``pod_timeout=30.0``)."""
    kube = connect(kubeconfig)
    settings = Settings("pa1", "1.35", images.catalog(),
                        timing=Timing(overrides={**FAST, **waits}))
    report = Runner(kube, settings, cleanup_timeout=10).run(planned(PodAutoscaling))
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.outcomes[0].result


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


def queue_length(pod: dict) -> float | None:
    """A serving queue that fills while the pod computes (a metric named neither gpu nor
    dcgm)."""
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    return 12.0 if runs_compute(pod) else 0.0


def pod(command: list[str], args: list[str] | None = None) -> dict:
    return {"spec": {"containers": [{"name": "c", "command": command, "args": args or [],
                                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running",
                       "containerStatuses": [{"name": "c", "state": {"running": {}}}]}}


def test_the_emulated_gpu_reads_zero_unless_a_cuda_compute_binary_runs():
    # The old probe's load: nvidia-smi queries run no kernel, so NVML utilisation stays 0.
    assert gpu_util(pod(["sh", "-c", "while true; do nvidia-smi -q; sleep 1; done"])) == 0.0
    assert gpu_util(pod(["sleep", "infinity"])) == 0.0
    assert gpu_util(pod(["nbody"], ["-benchmark", "-i=2000000"])) == 85.0
    assert gpu_util(pod(["/usr/bin/dcgmproftester12", "--no-dcgm-validation"])) == 85.0
    assert gpu_util({**pod(["nbody"]), "status": {"phase": "Pending"}}) is None
    # A Running pod whose n-body container waits in CrashLoopBackOff launches no kernel.
    assert gpu_util({**pod(["nbody"]), "status": {"phase": "Running", "containerStatuses": [
        {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}) == 0.0


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_an_nbody_load_raises_dcgm_utilisation_and_the_hpa_scales_up_and_back_down(
        kubeapi, kubeconfig):
    CustomMetrics({"DCGM_FI_DEV_GPU_TEMP": lambda pod: 40.0,
                   "DCGM_FI_DEV_GPU_UTIL": gpu_util}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    obs = result.evidence.observations
    assert obs["idle"] == {"custom/DCGM_FI_DEV_GPU_TEMP": "40", "custom/DCGM_FI_DEV_GPU_UTIL": "0"}
    assert obs["loaded"] == {"custom/DCGM_FI_DEV_GPU_TEMP": "40",
                             "custom/DCGM_FI_DEV_GPU_UTIL": "85"}
    # Temperature did not move with the load; utilisation did, and the target is half of it.
    assert obs["hpaMetric"] == {"api": "custom", "name": "DCGM_FI_DEV_GPU_UTIL", "idle": "0.0",
                                "loaded": "85.0", "target": "42500m"}
    assert [name for name, (passed, _) in checks(result).items() if passed] == [
        "a metric rises under the GPU load",
        "the HPA scales the GPU Deployment up on DCGM_FI_DEV_GPU_UTIL",
        "the HPA scales the GPU Deployment back down on DCGM_FI_DEV_GPU_UTIL"]
    assert "1 -> 2 -> 1 on custom metric DCGM_FI_DEV_GPU_UTIL" in result.reason
    # Nothing but n-body moves the emulated utilisation: the PASS shows the probe ran it.
    assert images.CATALOG["cuda-nbody"].startswith("nvcr.io/nvidia/k8s/cuda-sample:nbody@sha256:")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_a_metric_of_any_name_that_follows_the_load_is_scaled_on(kubeapi, kubeconfig):
    CustomMetrics({"inference_queue_length": queue_length,
                   "http_requests": lambda pod: 3.0}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["hpaMetric"]["name"] == "inference_queue_length"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_the_external_metrics_api_alone_is_enough(kubeapi, kubeconfig):
    CustomMetrics(external={"dcgm_gpu_utilization": gpu_util}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["metricsApis"] == {
        "external.metrics.k8s.io/v1beta1": ["dcgm_gpu_utilization"]}
    assert result.evidence.observations["hpaMetric"]["api"] == "external"
    assert "on external metric dcgm_gpu_utilization" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_gpu_metric_that_stays_idle_under_the_load_cannot_decide(kubeapi, kubeconfig):
    # A pipeline that serves DCGM utilisation but never sees the pod's kernels.
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": lambda pod: 0.0}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("no metric the metrics APIs serve for the GPU pod rose "
                                    "under an n-body compute load within 1s "
                                    "(DCGM_FI_DEV_GPU_UTIL 0 -> 0)")
    assert checks(result)["a metric rises under the GPU load"][0] is False


def load_only(waiting):
    """``waiting`` for the loaded pod's containers; every other pod starts."""
    def hook(pod: dict, container: str) -> dict | None:
        if (pod["metadata"].get("labels") or {}).get(pod_autoscaling.LOAD_LABEL) != "on":
            return None
        return waiting(pod, container)
    return hook


def start_error(pod: dict, container: str) -> dict:
    """containerd's answer to a binary of the wrong architecture: runc's execve fails;
    containerd's CRI records ``errorStartReason`` "StartError" and ``errorStartExitCode`` 128
    (containerd internal/cri/server/helpers.go) and the kubelet backs off
    (``ErrCrashLoopBackOff``, kubernetes pkg/kubelet/container/sync_result.go)."""
    return {"restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": "back-off 40s restarting failed container"}},
            "lastState": {"terminated": {
                "exitCode": 128, "reason": "StartError",
                "message": "failed to create containerd task: exec: \"nbody\": exec format "
                           "error"}}}


def pull_back_off(pod: dict, container: str) -> dict:
    """An image that cannot be pulled: the container waits in ImagePullBackOff and the pod
    stays Pending (pkg/kubelet/images/types.go ``ErrImagePullBackOff``; image_manager.go's
    "Back-off pulling image" event message)."""
    image = next(c["image"] for c in pod["spec"]["containers"] if c["name"] == container)
    return {"state": {"waiting": {"reason": "ImagePullBackOff",
                                  "message": f'Back-off pulling image "{image}"'}}}


# A load that never runs is not the metrics pipeline's fault: ERROR with the kubelet's words,
# and on an arm64 node the reported n-body arm64 caveat; amd64 GPU nodes are preferred.
@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_load_that_cannot_start_is_an_error_naming_why_not_a_metrics_fault(kubeapi,
                                                                              kubeconfig):
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": gpu_util}).install(kubeapi)
    for node in kubeapi.list("nodes"):
        kubeapi.mutate("nodes", node["metadata"]["name"],
                       lambda n: n["metadata"]["labels"].update({"kubernetes.io/arch": "arm64"}))
    kubelet(kubeapi).waiting = load_only(start_error)
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("the n-body load did not run (pod gpu-load-"), result.reason
    assert "CrashLoopBackOff, exit code 128, StartError, failed to create containerd task" in \
        result.reason
    assert "the node is arm64" in result.reason
    assert "metrics pipeline" not in result.reason


# A load image that cannot be pulled leaves the pod Pending: ERROR at once in the kubelet's
# words, not after the whole pod timeout as "not Running".
@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_load_image_that_cannot_be_pulled_is_named_at_once(kubeapi, kubeconfig):
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": gpu_util}).install(kubeapi)
    kubelet(kubeapi).waiting = load_only(pull_back_off)
    result = run(kubeconfig, pod_timeout=30.0)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("the n-body load did not run (pod gpu-load-"), result.reason
    assert "ImagePullBackOff, Back-off pulling image" in result.reason
    assert "the node is arm64" not in result.reason
    # Named when the kubelet said so, not at the end of the 30 s pod timeout: no wait gave
    # up (Context.wait_for logs "gave up waiting for ..." when it does).
    assert not [line for line in result.evidence.log if "gave up waiting" in line], \
        result.evidence.log


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_constant_metric_is_not_taken_for_gpu_load(kubeapi, kubeconfig):
    CustomMetrics({"http_requests": lambda pod: 3.0}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "(http_requests 3 -> 3)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_an_hpa_that_never_scales_on_a_high_metric_fails(kubeapi, kubeconfig):
    CustomMetrics({"gpu_utilization": gpu_util}).install(kubeapi, hpa=False)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("the HPA did not scale the GPU Deployment within 2s while "
                                    "gpu_utilization was 85 against a target of 42500m")
    assert checks(result)["the HPA scales the GPU Deployment up on gpu_utilization"][0] is False


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_an_hpa_that_scales_up_but_never_back_down_fails_in_part(kubeapi, kubeconfig):
    CustomMetrics({"gpu_utilization": gpu_util}).install(kubeapi, hpa=False)
    kubeapi.add(HorizontalPodAutoscalers(lambda hpa, spec: 85.0))  # a stale, high reading
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL and result.partial
    assert result.reason.startswith("the HPA scaled the GPU Deployment up to 2 on "
                                    "gpu_utilization but not back to 1 within 2s")
    assert checks(result)["the HPA scales the GPU Deployment up on gpu_utilization"][0] is True


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_a_metrics_api_it_cannot_decide(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("neither the custom metrics API (custom.metrics.k8s.io) "
                                    "nor the external metrics API (external.metrics.k8s.io) "
                                    "is served")
    assert result.evidence.objects == []


def test_its_default_waits_need_more_than_the_default_probe_timeout_and_say_so():
    # The probe's own defaults: settings without a Timing.
    # Two pod starts (300 s), two metric waits (180 s), scale-up (180 s), scale-down (300 s).
    assert PodAutoscaling.budget(Settings("pa1", "1.35")) == 1500.0 > 600.0


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2)
def test_many_served_metrics_are_read_gpu_ones_first_and_capped(kubeapi, kubeconfig):
    # prometheus-adapter's default rules serve every container_* series as a pod metric.
    noise = {f"container_metric_{i:02d}": (lambda pod: 1.0) for i in range(40)}
    CustomMetrics({**noise, "DCGM_FI_DEV_GPU_UTIL": gpu_util}).install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    listed = result.evidence.observations["metricsApis"]["custom.metrics.k8s.io/v1beta2"]
    assert listed[0] == "DCGM_FI_DEV_GPU_UTIL" and len(listed) == pod_autoscaling.MAX_METRICS
