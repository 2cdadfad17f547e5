"""Components found by their wiring (verify/discover.py), labels only as hints."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings, Timing
from aicp.verify.probes.robust_controller import RobustController
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import worlds_workloads as w
from tests.kubeapi.scenarios import reference_platform
from tests.shared import require_shared
from tests.verify.conftest import planned

FAST = Timing(timeout=3.0, poll=0.05)


def _robust_controller(build, tmp_path, **options):
    kube = reference_platform("1.35", gpu_nodes=1, **options)
    kube.start()
    try:
        build(kube)
        kube.settle()
        client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
        report = Runner(client, Settings("dc1", "1.37", images.catalog(), timing=FAST),
                        cleanup_timeout=10).run(planned(RobustController))
        assert report.leftovers == []
        return report.outcomes[0].result
    finally:
        kube.stop()


def test_an_operator_is_found_behind_the_webhook_covering_its_api_group(tmp_path):
    # Trainer by kustomize: labels app.kubernetes.io/name=trainer, which no list knew.
    result = _robust_controller(w.kubeflow_trainer_kustomize, tmp_path, kuberay=False)
    assert result.verdict is Verdict.PASS, result.reason
    found = result.evidence.observations["operatorFoundBy"]
    assert len(found) == 1
    assert found[0].startswith(
        "ValidatingWebhookConfiguration validator.trainer.kubeflow.org webhook "
        "validator.trainjob.trainer.kubeflow.org -> Service "
        "kubeflow-system/kubeflow-trainer-controller-manager -> EndpointSlice "
        "kubeflow-system/kubeflow-trainer-controller-manager-x7k2p -> Pod kubeflow-system/")
    assert found[0].endswith("-> Deployment kubeflow-system/kubeflow-trainer-controller-manager")


def test_without_a_webhook_labels_are_a_hint_and_the_evidence_says_so(tmp_path):
    require_shared("fixtures")
    result = _robust_controller(w.kuberay_helm, tmp_path, kuberay=False)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["operatorFoundBy"] == [
        "hint: Deployment ray-system/kuberay-operator by its image or install labels (no "
        "admission webhook leads to it)"]


@pytest.mark.parametrize("name", ["trainer", "kuberay"])
def test_an_operator_found_neither_way_cannot_be_judged(tmp_path, name):
    def unlabelled(kube):
        if name == "trainer":
            w.kubeflow_trainer(kube)
            kube.delete("validatingwebhookconfigurations.admissionregistration.k8s.io",
                        "validator.trainer.kubeflow.org")
            w._operator(kube, "kubeflow-trainer-controller-manager", "kubeflow-system",
                        "example.com/trainer:1", {"app": "something-else"})
        else:
            w.kuberay_helm(kube)
            w._operator(kube, "kuberay-operator", "ray-system", "example.com/op:1",
                        {"app": "something-else"})
    if name == "kuberay":
        require_shared("fixtures")
    result = _robust_controller(unlabelled, tmp_path, kuberay=False)
    assert result.verdict is Verdict.ERROR
    assert "none behind an admission webhook covering" in result.reason


def _istio_ambient_classes(kube) -> None:
    """Istio 1.24+ with ambient and multicluster on: istiod creates and accepts
    istio-waypoint (istio.io/mesh-controller) and istio-east-west
    (istio.io/eastwest-controller) beside the ingress class, here a platform's own class
    ``public`` of istio.io/gateway-controller (a GatewayClass of Istio's controller under
    another name, as Gateway API allows)."""
    classes = "gatewayclasses.gateway.networking.k8s.io"
    kube.delete(classes, "istio")
    accepted = [{"type": "Accepted", "status": "True", "reason": "Accepted",
                 "message": "Handled by Istio controller", "observedGeneration": 1,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    kube.seed([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": name, "generation": 1},
                "spec": {"controllerName": controller},
                "status": {"conditions": accepted}}
               for name, controller in (("istio-east-west", "istio.io/eastwest-controller"),
                                        ("istio-waypoint", "istio.io/mesh-controller"))])
    kube.create({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                 "metadata": {"name": "public"},
                 "spec": {"controllerName": "istio.io/gateway-controller"}})
    kube.settle()


def test_a_mesh_internal_or_east_west_gateway_class_is_not_taken_for_ingress(tmp_path):
    from aicp.verify.probes.ai_inference import AiInference
    from tests.kubeapi.controllers.gateway import curl_logs
    kube = reference_platform("1.35", gpu_nodes=1, logs=curl_logs)
    kube.start()
    try:
        _istio_ambient_classes(kube)
        client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
        timing = Timing(poll=0.05, overrides={"gateway_timeout": 1.0, "route_timeout": 1.0,
                                              "pod_timeout": 5.0})
        report = Runner(client, Settings("gc1", "1.35", images.catalog(), timing=timing),
                        cleanup_timeout=5).run(planned(AiInference))
    finally:
        kube.stop()
    result = report.outcomes[0].result
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["gatewayClass"] == "public"
    assert result.evidence.observations["gatewayClassesNotIngress"] == {
        "istio-east-west": "east-west between clusters (Istio multicluster)",
        "istio-waypoint": "mesh-internal (Istio ambient waypoints)"}


def test_kueues_configuration_is_read_where_its_webhook_leads(tmp_path):
    from aicp.verify.probes.gang_scheduling import GangScheduling
    from tests.kubeapi.controllers.kubelet import sleeps_forever
    kube = reference_platform("1.35", gpu_nodes=2)
    sleeps_forever(kube)
    kube.start()
    try:
        w.kueue_in_its_own_namespace(kube)
        client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
        timing = Timing(timeout=3.0, poll=0.05, overrides={"over_quota_wait": 0.6})
        report = Runner(client, Settings("kq1", "1.37", images.catalog(), timing=timing),
                        cleanup_timeout=10).run(planned(GangScheduling))
    finally:
        kube.stop()
    result = report.outcomes[0].result
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["kueueConfig"] == "ml-platform/kueue-manager-config"
    (found,) = result.evidence.observations["kueueFoundBy"]
    assert found.startswith("ValidatingWebhookConfiguration kueue-validating-webhook-"
                            "configuration webhook vclusterqueue.kb.io -> Service "
                            "ml-platform/kueue-webhook-service -> EndpointSlice")
    assert found.endswith("-> Deployment ml-platform/kueue-controller-manager")
