"""The DCGM emulation's utilisation rule: 0 on an idle GPU, as the captured exporter shows,
and busy only while a Running container holding the GPU runs a CUDA compute binary."""

from __future__ import annotations

import pytest

from tests.kubeapi import objects as o
from tests.kubeapi import upstream
from tests.kubeapi.controllers.dcgm import NAMESPACE, PORT, exporters, pod_gpu_util, runs_compute
from tests.kubeapi.emulator import KubeAPI
from tests.kubeapi.scenarios import standard_controllers


@pytest.fixture
def kube():
    kube = KubeAPI("1.35")
    kube.seed([o.namespace(NAMESPACE), o.gpu_node("gpu-0", gpus=2)])
    standard_controllers(kube, dra=False, kueue=False)
    kube.start()
    exporters(kube, ["gpu-0"])
    yield kube
    kube.stop()


def utilisation(kube) -> dict[str, float]:
    with kube.client() as api:
        response = api.call_api(
            "GET", f"{api.configuration.host}/api/v1/namespaces/{NAMESPACE}/pods/"
                   f"nvidia-dcgm-exporter-gpu-0:{PORT}/proxy/metrics")
        response.read()
        text = response.data.decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("DCGM_FI_DEV_GPU_UTIL{"):
            gpu = line.split('gpu="', 1)[1].split('"', 1)[0]
            out[gpu] = float(line.rsplit(" ", 1)[1])
    return out


def gpu_pod(kube, name: str, command: list[str]) -> dict:
    body = o.pod(name, command=command, limits={"nvidia.com/gpu": "1"},
                 tolerations=[{"operator": "Exists"}], restart_policy="Always")
    kube.create(body)
    kube.settle()
    return kube.find("pods", name, "default")


def test_an_idle_gpu_reports_zero_as_the_captured_exporter_does(kube):
    require = upstream.dcgm_series(1)  # skips without ../shared
    idle = next(v for m, _, v in require if m == "DCGM_FI_DEV_GPU_UTIL")
    assert utilisation(kube) == {"0": float(idle), "1": float(idle)} == {"0": 0.0, "1": 0.0}


def test_nbody_on_a_gpu_makes_it_busy_and_only_that_gpu(kube):
    pod = gpu_pod(kube, "nbody", ["/usr/local/cuda/samples/nbody", "-benchmark"])
    assert pod["status"]["phase"] == "Running"
    assert utilisation(kube) == {"0": 100.0, "1": 0.0}
    assert pod_gpu_util(kube, pod) == 100.0
    kube.delete("pods", "nbody", "default")
    kube.settle()
    assert utilisation(kube) == {"0": 0.0, "1": 0.0}


def test_an_nbody_container_waiting_in_crash_loop_back_off_runs_no_kernel(kube):
    pod = gpu_pod(kube, "nbody", ["nbody", "-benchmark"])

    def crash(p: dict) -> None:
        p["status"]["containerStatuses"][0]["state"] = {
            "waiting": {"reason": "CrashLoopBackOff"}}
    pod = kube.mutate("pods", "nbody", crash, "default", status=True)
    assert pod["status"]["phase"] == "Running"
    assert utilisation(kube) == {"0": 0.0, "1": 0.0}
    assert pod_gpu_util(kube, pod) == 0.0


def test_an_nvidia_smi_loop_runs_no_kernel(kube):
    pod = gpu_pod(kube, "smi", ["sh", "-c", "while true; do nvidia-smi -q; sleep 1; done"])
    assert utilisation(kube) == {"0": 0.0, "1": 0.0}
    assert pod_gpu_util(kube, pod) == 0.0


def test_a_pod_without_a_gpu_has_no_utilisation(kube):
    kube.create(o.pod("cpu", command=["nbody", "-benchmark"], restart_policy="Always"))
    kube.settle()
    assert pod_gpu_util(kube, kube.find("pods", "cpu", "default")) is None


@pytest.mark.parametrize(("command", "busy"), [
    (["nbody", "-benchmark", "-numbodies=1024000"], True),
    (["sh", "-c", "dcgmproftester12 --no-dcgm-validation -t 1004 -d 60"], True),
    (["/bin/nbody"], True), (["nvidia-smi", "-l", "1"], False), (["sleep", "3600"], False),
    (["sh", "-c", "echo nbody-results"], False)])
def test_which_commands_are_compute_loads(command, busy):
    assert runs_compute(command) is busy
