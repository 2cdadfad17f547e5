"""workload_sandboxing against the emulated reference platform (WG test's isolation script)."""

from __future__ import annotations

import functools

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings
from aicp.verify.probes.workload_sandboxing import WorkloadSandboxing
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.kubelet import Kubelet
from tests.kubeapi.controllers.sandbox import probe_logs
from tests.kubeapi.controllers.scheduler import Scheduler
from tests.kubeapi.objects import runtime_class
from tests.verify.conftest import planned


def run(kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("ws1", "1.37", images.catalog()),
                    cleanup_timeout=10).run(planned(WorkloadSandboxing, level="SHOULD"))
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.outcomes[0].result


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_a_sandbox_runtime_class_it_is_not_implemented(kubeapi, kubeconfig):
    # Not N/A: a SHOULD left out is FAIL "not implemented" (checklist Not Implemented,
    # JUnit skipped, exit code untouched), as the WG test skips it.
    kubeapi.create(runtime_class("nvidia", "nvidia"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL and not result.partial
    assert result.reason.startswith("not implemented: no sandbox RuntimeClass")
    assert "RuntimeClasses nvidia (nvidia)" in result.reason
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, logs=probe_logs)
def test_a_gvisor_pod_differs_from_an_unsandboxed_pod_on_the_same_node(kubeapi, kubeconfig):
    kubeapi.create(runtime_class("gvisor", "runsc",
                                 {"nodeSelector": {"sandbox.gke.io/runtime": "gvisor"}}))
    kubeapi.mutate("nodes", "system-1", lambda n: n["metadata"]["labels"].update(
        {"sandbox.gke.io/runtime": "gvisor"}))
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason.startswith("RuntimeClass gvisor (handler runsc) ran a pod on kernel "
                                    "4.4.0, unlike an unsandboxed pod on system-1 (6.8.0)")
    assert result.evidence.observations["kernels"] == {"node": "system-1", "sandbox": "4.4.0",
                                                       "control": "6.8.0"}
    passed, observed = checks(result)[
        "the sandbox's kernel identity differs from an unsandboxed pod's on the same node"]
    assert passed and observed == "differs in KERNEL_RELEASE, KERNEL_VERSION, BOOT_ID"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1,
                     logs=functools.partial(probe_logs, leaky=("kata-qemu",)))
def test_a_sandbox_class_that_shares_the_host_kernel_and_view_fails(kubeapi, kubeconfig):
    kubeapi.create(runtime_class("kata", "kata-qemu"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL and result.partial
    failed = {name for name, (passed, _) in checks(result).items() if not passed}
    assert failed == {
        "the sandbox's kernel identity differs from an unsandboxed pod's on the same node",
        "the sandbox sees no host processes", "the sandbox sees no host paths"}
    assert "sandbox kernel 6.8.0, unsandboxed 6.8.0" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, controllers=False)
def test_a_sandbox_pod_that_fails_to_run_fails(kubeapi, kubeconfig):
    kubeapi.add(Scheduler(), Kubelet(logs=probe_logs, exit_code=lambda pod: 128))
    kubeapi.create(runtime_class("kata", "kata-qemu"))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("the pod with RuntimeClass kata ended Failed")
