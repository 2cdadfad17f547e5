"""An error after a check already failed is FAIL with both facts (issue #22 section 3)."""

from __future__ import annotations

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings, Timing
from aicp.verify.probes.robust_controller import RobustController
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import worlds_workloads as w
from tests.kubeapi.controllers.kubelet import kubelet
from tests.kubeapi.scenarios import reference_platform
from tests.shared import require_shared
from tests.verify.conftest import planned


def test_an_operator_error_after_a_failed_check_is_a_failure_naming_both(tmp_path):
    require_shared("fixtures")
    kube = reference_platform("1.35", gpu_nodes=1, kuberay=False)
    kube.start()
    try:
        # KubeRay by kustomize whose webhook Service has no ready endpoint (a failed
        # check), and a head pod that never starts (an image it cannot pull: an error).
        w.kuberay_kustomize(kube, endpoints=0)
        kubelet(kube).waiting = lambda pod, c: (
            {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
            if c == "ray-head" else None)
        kube.settle()
        client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
        report = Runner(client, Settings("fc1", "1.37", images.catalog(),
                                         timing=Timing(timeout=1.0, poll=0.05)),
                        cleanup_timeout=10).run(planned(RobustController))
    finally:
        kube.stop()
    result = report.outcomes[0].result
    assert result.verdict is Verdict.FAIL, result.reason
    assert result.partial
    assert "has ready endpoints: observed 0 ready endpoints" in result.reason
    assert "; then: the operator created head pod" in result.reason
    assert report.leftovers == []
