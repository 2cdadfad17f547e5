"""KubeRay: pinned chart, and the webhook wiring the chart lacks (certs, patch, service, config)."""

from __future__ import annotations

import base64

from aicp.addons.catalog import CHARTS
from aicp.addons.kuberay import KubeRay, KubeRayArgs
from aicp.cli import offline
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import kubernetes_objects, patch_errors, schema_errors
from tests.charts import unknown_value_paths, upstream_values

RELEASE = "kubernetes:helm.sh/v3:Release"
PATCH = "kubernetes:apps/v1:DeploymentPatch"
WEBHOOK = "kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"


def plan_for(args: KubeRayArgs | None = None):
    return offline.run(lambda: KubeRay("kuberay", make_cluster(), args), {})


def test_release_is_pinned_to_the_catalog_chart():
    release = plan_for().one(RELEASE)
    chart = CHARTS["kuberay-operator"]
    assert (release.inputs["chart"], release.inputs["version"]) == (chart.chart, chart.version)
    assert release.inputs["repositoryOpts"]["repo"] == chart.repo


def test_every_value_we_set_exists_in_the_pinned_chart():
    values = plan_for().one(RELEASE).inputs["values"]
    assert unknown_value_paths(values, upstream_values("kuberay-operator-v1.7.0")) == []


def test_patch_targets_the_deployment_and_container_the_chart_renders():
    plan = plan_for()
    release, patch = plan.one(RELEASE), plan.one(PATCH)
    # templates/deployment.yaml: Deployment named by fullname, container by .Chart.Name.
    assert patch.inputs["metadata"] == {"name": release.inputs["values"]["fullnameOverride"],
                                        "namespace": release.inputs["namespace"]}
    container, = patch.inputs["spec"]["template"]["spec"]["containers"]
    assert container["name"] == CHARTS["kuberay-operator"].chart


def test_patch_enables_webhooks_with_the_certificate_mounted_where_the_server_reads_it():
    plan = plan_for()
    pod = plan.one(PATCH).inputs["spec"]["template"]["spec"]
    container, = pod["containers"]
    assert {"name": "ENABLE_WEBHOOKS", "value": "true"} in container["env"]
    assert [p["containerPort"] for p in container["ports"]] == [9443]
    mount, = container["volumeMounts"]
    assert mount["mountPath"] == "/tmp/k8s-webhook-server/serving-certs"
    volume, = pod["volumes"]
    assert volume["name"] == mount["name"]
    secret = plan.one(SECRET).inputs
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert secret["type"] == "kubernetes.io/tls"


def test_chart_itself_does_not_enable_webhooks_before_the_cert_is_mounted():
    values = plan_for().one(RELEASE).inputs["values"]
    assert "env" not in values


def test_webhook_service_reaches_the_operator_pods_on_the_webhook_port():
    plan = plan_for()
    release, service = plan.one(RELEASE), plan.one(SERVICE).inputs
    assert service["metadata"]["name"] == "kuberay-webhook-service"
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": release.inputs["values"]["fullnameOverride"],
        "app.kubernetes.io/instance": release.inputs["name"]}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, 9443)]


def test_validating_webhooks_cover_ray_kinds_and_fail_closed():
    plan = plan_for()
    webhooks = plan.one(WEBHOOK).inputs["webhooks"]
    assert sorted(w["clientConfig"]["service"]["path"] for w in webhooks) == [
        "/validate-ray-io-v1-raycluster", "/validate-ray-io-v1-rayjob",
        "/validate-ray-io-v1-rayservice"]
    service = plan.one(SERVICE).inputs["metadata"]
    for hook in webhooks:
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        target = hook["clientConfig"]["service"]
        assert (target["name"], target["namespace"]) == (service["name"], service["namespace"])


def test_ca_bundle_is_the_ca_that_signed_the_serving_certificate():
    plan = plan_for()
    ca = plan.one("tls:index/selfSignedCert:SelfSignedCert")
    cert = plan.one("tls:index/locallySignedCert:LocallySignedCert")
    assert ca.inputs["isCaCertificate"] is True
    signed_by = cert.inputs["caCertPem"]
    for hook in plan.one(WEBHOOK).inputs["webhooks"]:
        assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == signed_by


def test_serving_certificate_names_the_webhook_service_and_renews_early():
    plan = plan_for(KubeRayArgs(cert_validity_hours=100, cert_early_renewal_hours=10))
    csr = plan.one("tls:index/certRequest:CertRequest").inputs
    assert "kuberay-webhook-service.kuberay-system.svc" in csr["dnsNames"]
    cert = plan.one("tls:index/locallySignedCert:LocallySignedCert").inputs
    assert (cert["validityPeriodHours"], cert["earlyRenewalHours"]) == (100, 10)
    assert "server_auth" in cert["allowedUses"]
    assert plan.one("tls:index/selfSignedCert:SelfSignedCert").inputs["earlyRenewalHours"] > 0


def test_private_keys_stay_secret():
    plan = plan_for()
    assert "stringData" in plan.one(SECRET).secret_paths
    assert plan.one(SECRET).inputs["stringData"] == offline.REDACTED
    assert plan.one("tls:index/certRequest:CertRequest").secret_paths == ["privateKeyPem"]
    assert plan.one("tls:index/selfSignedCert:SelfSignedCert").secret_paths == ["privateKeyPem"]
    assert plan.one("tls:index/locallySignedCert:LocallySignedCert").secret_paths == [
        "caPrivateKeyPem"]


def test_webhook_configuration_waits_for_the_patched_operator():
    plan = plan_for()
    webhook, patch = plan.one(WEBHOOK), plan.one(PATCH)
    assert plan.depends_on(webhook, patch)
    assert plan.depends_on(webhook, plan.one(SERVICE))
    assert plan.depends_on(patch, plan.one(RELEASE))
    assert plan.depends_on(patch, plan.one(SECRET))


def test_declared_objects_validate():
    plan = plan_for()
    objects = kubernetes_objects(plan)
    assert {o.inputs["kind"] for o in objects} == {
        "Namespace", "Secret", "Service", "ValidatingWebhookConfiguration"}
    for obj in objects:
        assert schema_errors(obj) == [], obj.name


def test_deployment_patch_uses_only_fields_a_deployment_has():
    # Validated against the strict apps/v1 Deployment schema; "required" errors are dropped
    # because the API server checks the patch merged with the chart's Deployment.
    assert patch_errors(plan_for().one(PATCH)) == []


def test_without_webhook_only_the_release_is_installed():
    plan = plan_for(KubeRayArgs(webhook=False))
    assert plan.of_type(PATCH) == [] and plan.of_type(WEBHOOK) == []
    assert plan.one(RELEASE)


def test_namespace_is_restricted_and_serves_robust_controller():
    plan = plan_for()
    namespace = plan.one("kubernetes:core/v1:Namespace").inputs["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert plan.one("aicp:addons:KubeRay").outputs["conformance"] == ["robust_controller"]
