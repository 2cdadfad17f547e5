"""KubeRay operator with its validating webhooks, without cert-manager.

Chart 1.7.0 has no webhook support (ray-project/kuberay v1.7.0 ``helm-chart/kuberay-operator/
templates/deployment.yaml`` renders volumes only for logging and config; the webhooks live in
the kustomize overlay ``ray-operator/config/default-with-webhooks``): the operator registers
``/validate-ray-io-v1-{raycluster,rayjob,rayservice}`` only with ``ENABLE_WEBHOOKS=true`` and then
serves TLS on 9443 from ``/tmp/k8s-webhook-server/serving-certs``, a volume the chart cannot
mount. So, after the release:

1. ``pulumi_tls`` makes a CA and a serving certificate for the webhook Service's DNS names;
   ``early_renewal_hours`` makes any ``pulumi up`` inside that window re-issue them (the
   kubelet refreshes the mounted Secret, controller-runtime's cert watcher reloads it).
2. A ``kubernetes.io/tls`` Secret holds them.
3. An ``apps/v1`` ``DeploymentPatch`` (server-side apply, its own field manager) adds to the
   chart's Deployment, pinned by ``fullnameOverride``: the env var, container port 9443 and
   the cert volume. ``ENABLE_WEBHOOKS`` goes here, not in the chart's ``env`` value: set by
   the chart, the operator would start before the certificate is mounted, exit (cert watcher
   cannot read ``tls.crt``) and the release would never become ready for the patch to follow.
   Helm's three-way merge on later upgrades leaves fields it never rendered alone.
4. Service ``kuberay-webhook-service`` (443 → 9443) and the ``ValidatingWebhookConfiguration``
   with the CA as ``caBundle``, created only after the patched Deployment has rolled out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

RELEASE = "kuberay-operator"
# Deployment, Service account and the operator's container are named after these.
FULLNAME = "kuberay-operator"
CONTAINER = "kuberay-operator"  # the chart names its container {{ .Chart.Name }}
WEBHOOK_SERVICE = "kuberay-webhook-service"
WEBHOOK_SECRET = "kuberay-webhook-server-cert"
WEBHOOK_PORT = 9443
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # controller-runtime's default
WEBHOOK_KINDS = ("raycluster", "rayjob", "rayservice")


@dataclass(frozen=True)
class KubeRayArgs:
    namespace: str = "kuberay-system"
    webhook: bool = True
    cert_validity_hours: int = 24 * 365
    # Re-issue the serving certificate on the first `pulumi up` this close to its expiry.
    cert_early_renewal_hours: int = 24 * 30
    ca_validity_hours: int = 24 * 365 * 5
    ca_early_renewal_hours: int = 24 * 90


class KubeRay(Addon):
    """KubeRay operator release plus the webhook wiring the chart lacks."""

    token = "aicp:addons:KubeRay"
    serves = ("robust_controller",)

    def __init__(self, name: str, cluster: ClusterOutputs, args: KubeRayArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or KubeRayArgs()
        ns = args.namespace
        namespace = self.create_namespace(f"{name}-namespace", ns, "restricted")
        self.release = self.helm_release(
            f"{name}-release", CHARTS["kuberay-operator"], name=RELEASE, namespace=ns,
            values={"fullnameOverride": FULLNAME}, depends_on=[namespace])
        if not args.webhook:
            self.finish(namespace=ns, release=self.release.name, webhook=False)
            return

        tls_opts = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256",
                                opts=tls_opts)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=pulumi.Output.secret(ca_key.private_key_pem),
            subject={"common_name": f"{FULLNAME}-webhook-ca"},
            is_ca_certificate=True,
            validity_period_hours=args.ca_validity_hours,
            early_renewal_hours=args.ca_early_renewal_hours,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=tls_opts)
        key = tls.PrivateKey(f"{name}-webhook-key", algorithm="ECDSA", ecdsa_curve="P256",
                             opts=tls_opts)
        dns = [WEBHOOK_SERVICE, f"{WEBHOOK_SERVICE}.{ns}", f"{WEBHOOK_SERVICE}.{ns}.svc",
               f"{WEBHOOK_SERVICE}.{ns}.svc.cluster.local"]
        csr = tls.CertRequest(
            f"{name}-webhook-csr",
            private_key_pem=pulumi.Output.secret(key.private_key_pem),
            subject={"common_name": f"{WEBHOOK_SERVICE}.{ns}.svc"},
            dns_names=dns,
            opts=tls_opts)
        cert = tls.LocallySignedCert(
            f"{name}-webhook-cert",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=pulumi.Output.secret(ca_key.private_key_pem),
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=args.cert_validity_hours,
            early_renewal_hours=args.cert_early_renewal_hours,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=tls_opts)
        secret = k8s.core.v1.Secret(
            f"{name}-webhook-secret",
            metadata={"name": WEBHOOK_SECRET, "namespace": ns},
            type="kubernetes.io/tls",
            string_data={"tls.crt": cert.cert_pem,
                         "tls.key": pulumi.Output.secret(key.private_key_pem)},
            opts=self.child_opts(depends_on=[namespace]))

        self.patch = k8s.apps.v1.DeploymentPatch(
            f"{name}-webhook-patch",
            metadata={"name": FULLNAME, "namespace": ns},
            spec={"template": {"spec": {
                "containers": [{
                    "name": CONTAINER,
                    "env": [{"name": "ENABLE_WEBHOOKS", "value": "true"}],
                    "ports": [{"name": "webhook-server", "container_port": WEBHOOK_PORT,
                               "protocol": "TCP"}],
                    "volume_mounts": [{"name": "webhook-cert", "mount_path": CERT_DIR,
                                       "read_only": True}],
                }],
                "volumes": [{"name": "webhook-cert",
                             "secret": {"secret_name": WEBHOOK_SECRET}}],
            }}},
            opts=self.child_opts(depends_on=[self.release, secret]))
        service = k8s.core.v1.Service(
            f"{name}-webhook-service",
            metadata={"name": WEBHOOK_SERVICE, "namespace": ns},
            spec={"selector": {"app.kubernetes.io/name": FULLNAME,
                               "app.kubernetes.io/instance": RELEASE},
                  "ports": [{"name": "https", "port": 443, "target_port": WEBHOOK_PORT,
                             "protocol": "TCP"}]},
            opts=self.child_opts(depends_on=[namespace]))
        ca_bundle = ca.cert_pem.apply(lambda pem: base64.b64encode(pem.encode()).decode())
        self.webhook = k8s.admissionregistration.v1.ValidatingWebhookConfiguration(
            f"{name}-webhook",
            metadata={"name": f"{FULLNAME}-validating-webhook"},
            webhooks=[{
                "name": f"v{kind}.ray.io",
                "admission_review_versions": ["v1"],
                "client_config": {
                    "service": {"name": WEBHOOK_SERVICE, "namespace": ns,
                                "path": f"/validate-ray-io-v1-{kind}", "port": 443},
                    "ca_bundle": ca_bundle},
                "failure_policy": "Fail",
                "side_effects": "None",
                "timeout_seconds": 10,
                "rules": [{"api_groups": ["ray.io"], "api_versions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": [f"{kind}s"]}],
            } for kind in WEBHOOK_KINDS],
            opts=self.child_opts(depends_on=[self.patch, service]))
        self.finish(namespace=ns, release=self.release.name, webhook=True,
                    webhookService=WEBHOOK_SERVICE)
