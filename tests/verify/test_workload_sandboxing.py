"""workload_sandboxing against the emulated reference platform."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings
from aicp.verify.probes.workload_sandboxing import WorkloadSandboxing
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.kubelet import Kubelet, sandbox_kernel
from tests.kubeapi.controllers.scheduler import Scheduler
from tests.kubeapi.objects import runtime_class
from tests.verify.conftest import planned


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("ws1", "1.37", images.catalog()), kube=kube,
                    cleanup_timeout=10).run(planned(WorkloadSandboxing, level="SHOULD"))
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.outcomes[0].result


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_only_runc_runtime_classes_is_not_implemented(kubeapi, kubeconfig):
    kubeapi.create(runtime_class("nvidia", "nvidia"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("no sandbox RuntimeClass (handler runsc/gvisor or kata*): "
                                    "RuntimeClasses nvidia (nvidia)")
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=sandbox_kernel)
def test_a_gvisor_pod_runs_on_its_own_kernel_where_the_runtime_class_schedules_it(
        kubeapi, kubeconfig):
    kubeapi.create(runtime_class("gvisor", "runsc",
                                 {"nodeSelector": {"sandbox.gke.io/runtime": "gvisor"}}))
    kubeapi.mutate("nodes", "system-1", lambda n: n["metadata"]["labels"].update(
        {"sandbox.gke.io/runtime": "gvisor"}))
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason == ("RuntimeClass gvisor (handler runsc) ran a pod on kernel 4.4.0, "
                             "isolated from the host kernel 6.8.0")
    assert result.evidence.observations["kernels"]["node"] == "system-1"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=sandbox_kernel)
def test_a_sandbox_class_whose_pod_sees_the_host_kernel_fails(kubeapi, kubeconfig):
    kubeapi.create(runtime_class("kata", "kata-qemu"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL and result.partial
    assert "saw kernel 6.8.0, the host's is 6.8.0" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, controllers=False)
def test_a_sandbox_pod_that_fails_to_run_fails(kubeapi, kubeconfig):
    kubeapi.add(Scheduler(), Kubelet(exit_code=lambda pod: 128))
    kubeapi.create(runtime_class("kata", "kata-qemu"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("the pod with RuntimeClass kata ended Failed")
