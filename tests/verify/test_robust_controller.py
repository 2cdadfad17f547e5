"""robust_controller against the emulated reference platform (KubeRay-like operator)."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes import robust_controller
from aicp.verify.probes.robust_controller import RobustController
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import errors
from tests.kubeapi.controllers.kuberay import KubeRay
from tests.kubeapi.worlds_workloads import kubeflow_trainer, kuberay_helm, kuberay_kustomize
from tests.verify.conftest import planned


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


# The emulator answers in milliseconds: poll often, give up early.
FAST = Timing(timeout=3.0, poll=0.05)


def run(kubeconfig, kubeapi=None):
    if kubeapi is not None:
        kubeapi.settle()  # the operator's pods exist before the run, as on a real cluster
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("rc1", "1.35", images.catalog(), timing=FAST),
                    cleanup_timeout=10).run(planned(RobustController))
    return report.outcomes[0].result, report


def no_leftovers(kubeapi, report):
    assert report.leftovers == []
    assert kubeapi.list("namespaces", labels=RUN_LABEL) == []
    if "ray.io" in {r.group for r in kubeapi.discovery.by_ref.values()}:
        assert kubeapi.list("rayclusters.ray.io") == []
    assert kubeapi.list("pods", labels="ray.io/cluster") == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_operator_ready_webhook_denies_and_a_raycluster_reconciles(kubeapi, kubeconfig):
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.PASS, result.reason
    checks = {c.name: c for c in result.evidence.checks}
    assert all(c.passed for c in checks.values())
    denial = checks["the webhook denies an invalid RayCluster (dry run)"].observed
    assert denial.startswith('HTTP 422: admission webhook "vraycluster.kb.io" denied the request')
    assert "worker group names must be unique" in denial
    assert "no more than 53 characters" in denial
    assert "state=ready" in checks["a RayCluster reconciles to ready"].observed
    assert "raycluster.json" in result.evidence.artifacts
    assert result.evidence.observations["webhooks covering rayclusters"] == [
        "kuberay-validating-webhook-configuration/vraycluster.kb.io"]
    # The dry run persisted nothing: the only RayCluster ever created was the valid one.
    creates = kubeapi.requests.matching(method="POST", resource="rayclusters.ray.io")
    assert [r.query.get("dryRun") for r in creates] == ["All", None]
    assert [r.status for r in creates] == [422, 201]
    no_leftovers(kubeapi, report)


def arm64_only(kubeapi) -> None:
    """Every node arm64: rayproject/ray's plain tags (amd64 only) could run on none."""
    for node in kubeapi.list("nodes"):
        def relabel(n: dict) -> None:
            n["metadata"]["labels"]["kubernetes.io/arch"] = "arm64"
            n["status"]["nodeInfo"]["architecture"] = "arm64"
        kubeapi.mutate("nodes", node["metadata"]["name"], relabel)


def head_pods(kubeapi) -> dict[str, dict]:
    """The head pods the emulated KubeRay creates from now on, by name, as last written."""
    seen: dict[str, dict] = {}

    def record(event) -> None:
        if (event.obj["metadata"].get("labels") or {}).get("ray.io/node-type") == "head":
            seen[event.obj["metadata"]["name"]] = event.obj
    kubeapi.on("pods", record)
    return seen


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_the_head_runs_on_arm64_only_nodes_where_kuberay_keeps_its_command(kubeapi,
                                                                         kubeconfig):
    # Before: the head was the amd64-only Ray image pinned to amd64 nodes; here it could not
    # be scheduled (ERROR). The emulated KubeRay replaces a command without the
    # ray.io/overwrite-container-cmd annotation and injects Ray health probes where none
    # are set (pod.go BuildPod, v1.7.0): busybox becomes ready only with both avoided.
    arm64_only(kubeapi)
    heads = head_pods(kubeapi)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.PASS, result.reason
    assert "state=ready" in checks(result)["a RayCluster reconciles to ready"][1]
    [head] = heads.values()
    node = kubeapi.find("nodes", head["spec"]["nodeName"])
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    [container] = head["spec"]["containers"]
    assert container["image"] == images.CATALOG["busybox"]
    # KubeRay kept the probe's command: not /bin/bash -c -- "...; ray start --head ...".
    assert container["command"][:2] == ["sh", "-c"] and "ray start" not in str(container)
    assert "nodeSelector" not in head["spec"]
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_head_whose_command_kuberay_replaces_is_an_error_naming_the_image(kubeapi,
                                                                            kubeconfig,
                                                                            monkeypatch):
    # Without the annotation KubeRay runs "/bin/bash -c -- ...; ray start --head": busybox
    # has neither, the head backs off, and the reason names the image to check.
    monkeypatch.setattr(robust_controller, "OVERWRITE_CMD", "example.com/not-kuberays")
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.ERROR
    assert "CrashLoopBackOff" in result.reason
    assert result.reason.endswith(f"that {images.CATALOG['busybox']} can be pulled")
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=KubeRay(admit_all=True))
def test_a_webhook_that_admits_invalid_objects_fails(kubeapi, kubeconfig):
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL
    assert result.partial  # pods and reconcile passed
    assert "the webhook denies an invalid RayCluster (dry run)" in result.reason
    assert "admitted" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=False)
def test_kuberay_by_helm_ships_no_webhook_and_is_judged_on_the_rest(kubeapi, kubeconfig):
    # Before: found only by the Helm label, then FAIL for the webhook the chart never ships.
    kuberay_helm(kubeapi)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.PASS, result.reason
    assert "it ships no admission webhook for rayclusters, judged without one" in result.reason
    passed, observed = checks(result)[
        "the API server refuses an invalid RayCluster (schema validation, dry run)"]
    assert passed and observed.startswith("HTTP 422")
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=False)
def test_kuberay_by_kustomize_is_found_by_its_labels_and_its_webhook_denies(kubeapi,
                                                                          kubeconfig):
    # Before: app.kubernetes.io/name=kuberay-operator matched nothing: ERROR.
    kuberay_kustomize(kubeapi)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["webhooks covering rayclusters"] == [
        "validating-webhook-configuration/vraycluster.kb.io"]
    assert checks(result)["webhook vraycluster.kb.io's Service ray-system/webhook-service has "
                          "ready endpoints"] == (True, "1 ready endpoints")
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=False)
def test_a_webhook_without_a_ca_bundle_fails(kubeapi, kubeconfig):
    kuberay_kustomize(kubeapi, ca_bundle=False)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL and result.partial
    assert "webhook vraycluster.kb.io has a caBundle: observed empty" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=False)
def test_a_webhook_service_without_endpoints_fails(kubeapi, kubeconfig):
    kuberay_kustomize(kubeapi, endpoints=0)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL
    assert "has ready endpoints: observed 0 ready endpoints" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=False)
def test_kubeflow_trainer_is_exercised_where_ray_is_not_served(kubeapi, kubeconfig):
    kubeflow_trainer(kubeapi)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["operator"] == "Kubeflow Trainer"
    assert result.evidence.observations["denied by"] == "validator.trainjob.trainer.kubeflow.org"
    assert checks(result)["a TrainJob reconciles to Complete"][0] is True
    assert checks(result)["CRD trainjobs.trainer.kubeflow.org is Established"][0] is True
    assert report.leftovers == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=False)
def test_a_trainjob_that_fails_fails_the_reconcile_part(kubeapi, kubeconfig):
    kubeflow_trainer(kubeapi, outcome="Failed")
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL and result.partial
    assert "a TrainJob reconciles to Complete: observed Failed: JobsFailed" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=KubeRay(reconcile=False))
def test_a_raycluster_nobody_reconciles_fails(kubeapi, kubeconfig):
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL
    assert "the operator did not reconcile it" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, kuberay=KubeRay(webhook=False))
def test_a_schema_rejection_is_not_mistaken_for_the_webhook(kubeapi, kubeconfig):
    def schema(res, obj, old):
        if res.key == ("ray.io", "rayclusters") and len(obj["metadata"]["name"]) > 53:
            raise errors.invalid("ray.io", "RayCluster", obj["metadata"]["name"], [{
                "field": "spec.workerGroupSpecs[1]", "reason": "FieldValueDuplicate",
                "message": 'Duplicate value: {"groupName":"workers"}'}])
    kubeapi.seed([{"apiVersion": "admissionregistration.k8s.io/v1",
                   "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "other"},
                   "webhooks": [{"name": "vraycluster.example.com", "sideEffects": "None",
                                 "admissionReviewVersions": ["v1"],
                                 "clientConfig": {"url": "https://example.com"},
                                 "rules": [{"apiGroups": ["*"], "apiVersions": ["*"],
                                            "operations": ["*"], "resources": ["*"]}]}]}])
    kubeapi.admit(schema)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.ERROR
    assert "schema validation before any webhook was asked" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_webhook_that_cannot_be_reached_fails(kubeapi, kubeconfig, monkeypatch):
    monkeypatch.setattr("aicp.verify.kube.sweep.time.sleep", lambda s: None)
    monkeypatch.setattr("aicp.verify.kube.retry._backoff", lambda *a: 0.0)

    def down(res, obj, old):
        if res.key == ("ray.io", "rayclusters") and len(obj["metadata"]["name"]) > 53:
            raise errors.internal('failed calling webhook "vraycluster.kb.io": failed to call '
                                  "webhook: Post \"https://kuberay-webhook-service.ray-system"
                                  '.svc:443/validate-ray-io-v1-raycluster": connection refused')
    kubeapi.store.admission.insert(0, down)
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL
    assert "the webhook did not answer: HTTP 500" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_operator_pods_not_ready_fail(kubeapi, kubeconfig):
    kubeapi.settle()
    kubeapi.mutate("deployments.apps", "kuberay-operator",
                   lambda d: d["status"].update(readyReplicas=0, availableReplicas=0),
                   "ray-system", status=True)
    kubeapi.controllers.controllers[:] = [c for c in kubeapi.controllers.controllers
                                          if c.name != "deployments"]
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.FAIL
    assert "kuberay-operator Deployment is available" in result.reason
    assert "ray-system/kuberay-operator 0/1 ready" in result.reason
    no_leftovers(kubeapi, report)


@pytest.mark.kubeapi("empty")
def test_without_kuberay_it_cannot_decide(kubeapi, kubeconfig):
    result, report = run(kubeconfig, kubeapi)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith(
        "no supported AI operator found: neither ray.io/v1 rayclusters (KubeRay) nor "
        "trainer.kubeflow.org/v1alpha1 trainjobs (Kubeflow Trainer) is served")
    no_leftovers(kubeapi, report)
