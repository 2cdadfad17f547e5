"""A KubeRay-like operator: the RayCluster validating webhook and a head-only reconciler.

The webhook mirrors KubeRay's ``RayClusterWebhook.validateRayCluster``
(ray-operator/pkg/webhooks/v1/raycluster_webhook.go): the name must be a DNS-1035 label of
at most 53 characters (``utils.MaxRayClusterNameLength``) and worker group names must be
unique. A denial reads as kube-apiserver words a webhook's answer: HTTP 422, message
``admission webhook "vraycluster.kb.io" denied the request: RayCluster.ray.io "<name>" is
invalid: [...]``. The ``ValidatingWebhookConfiguration`` is upstream's
``config/webhook/manifests.yaml`` entry. The reconciler creates the head pod from
``headGroupSpec.template`` (owned by the RayCluster, so deletion removes it) and reports
``status.state: ready`` plus the ``HeadPodReady``/``RayClusterProvisioned`` conditions of
KubeRay 1.7 once the pod is Ready. No workers, services, autoscaler or suspend.
"""

from __future__ import annotations

import re

from .. import errors
from ..store import now
from .base import Controller
from .workloads import owner_ref, pod_from_template

WEBHOOK = "vraycluster.kb.io"
MAX_NAME = 53
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def invalid_fields(obj: dict) -> list[str]:
    """KubeRay's reasons to deny a RayCluster, as ``field: Invalid value: ...`` strings."""
    name = obj["metadata"].get("name", "")
    out = []
    if len(name) > MAX_NAME:
        out.append(f'metadata.name: Invalid value: "{name}": RayCluster name should be no '
                   f"more than {MAX_NAME} characters")
    elif not _DNS1035.match(name):
        out.append(f'metadata.name: Invalid value: "{name}": RayCluster name should be a '
                   "valid DNS1035 label")
    seen: set[str] = set()
    for i, group in enumerate((obj.get("spec") or {}).get("workerGroupSpecs") or []):
        if group.get("groupName") in seen:
            out.append(f"spec.workerGroupSpecs[{i}]: Invalid value: \"{group['groupName']}\": "
                       "worker group names must be unique")
            break
        seen.add(group.get("groupName"))
    return out


# A PEM bundle as cert-manager's CA injector writes it (base64 of "-----BEGIN CERTIFICATE").
CA_BUNDLE = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="


def webhook_configuration(namespace: str = "ray-system",
                          name: str = "kuberay-validating-webhook-configuration",
                          service: str = "kuberay-webhook-service",
                          ca_bundle: str = CA_BUNDLE) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": WEBHOOK, "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": service,
                                             "namespace": namespace,
                                             "path": "/validate-ray-io-v1-raycluster",
                                             "port": 443},
                                 **({"caBundle": ca_bundle} if ca_bundle else {})},
                "failurePolicy": "Fail", "sideEffects": "None", "timeoutSeconds": 10,
                "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
                "rules": [{"apiGroups": ["ray.io"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["rayclusters"],
                           "scope": "*"}]}]}


def webhook_service(namespace: str, name: str, endpoints: int = 1) -> list[dict] | dict:
    """The webhook's Service and the EndpointSlice naming its ready operator pods."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 9443, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.244.9.{i + 10}"], "conditions": {"ready": True}}
                          for i in range(endpoints)]}


class KubeRay(Controller):
    """``KubeRay().install(kube)``; ``webhook=False`` leaves the webhook out entirely,
    ``admit_all=True`` registers it but admits everything (a broken webhook)."""

    name = "kuberay"
    watches = ("rayclusters.ray.io", "pods")

    def __init__(self, *, webhook: bool = True, admit_all: bool = False,
                 reconcile: bool = True, namespace: str = "ray-system",
                 configuration: dict | None = None, endpoints: int = 1):
        self.webhook, self.admit_all = webhook, admit_all
        self.reconcile, self.namespace = reconcile, namespace
        self.configuration = configuration or webhook_configuration(namespace)
        self.endpoints = endpoints

    def install(self, kube) -> KubeRay:
        if self.webhook:
            service = self.configuration["webhooks"][0]["clientConfig"]["service"]
            kube.seed([self.configuration,
                       webhook_service(service["namespace"], service["name"], self.endpoints)])
            kube.admit(self.admit)
        if self.reconcile:
            kube.add(self)
        return self

    def admit(self, res, obj: dict, old) -> None:
        if res.key != ("ray.io", "rayclusters") or self.admit_all:
            return
        causes = invalid_fields(obj)
        if causes:
            name = obj["metadata"].get("name", "")
            summary = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
            raise errors.ApiError(
                422, "Invalid", f'admission webhook "{WEBHOOK}" denied the request: '
                f'RayCluster.ray.io "{name}" is invalid: {summary}',
                {"name": name, "group": "ray.io", "kind": "RayCluster"})

    def sync(self, kube) -> None:
        pods = kube.list("pods", labels="ray.io/node-type=head")
        for rc in kube.list("rayclusters.ray.io"):
            meta = rc["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            ns, name = meta["namespace"], meta["name"]
            head = next((p for p in pods if p["metadata"]["namespace"] == ns
                         and (p["metadata"].get("labels") or {}).get("ray.io/cluster") == name),
                        None)
            if head is None:
                template = rc["spec"]["headGroupSpec"]["template"]
                pod = pod_from_template(rc, f"{name}-head-{meta['uid'][:5]}", template)
                pod["metadata"]["labels"] = {**pod["metadata"]["labels"],
                                             "ray.io/cluster": name, "ray.io/node-type": "head",
                                             "ray.io/is-ray-node": "yes"}
                pod["metadata"]["ownerReferences"] = [owner_ref(rc)]
                kube.create(pod)
                continue
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in (head.get("status") or {}).get("conditions") or [])
            status = rc.get("status") or {}
            if ready and status.get("state") != "ready":
                stamp = now()
                conditions = [
                    {"type": "HeadPodReady", "status": "True", "reason": "HeadPodRunningAndReady",
                     "message": "", "lastTransitionTime": stamp},
                    {"type": "RayClusterProvisioned", "status": "True",
                     "reason": "AllPodRunningAndReadyFirstTime",
                     "message": "All Ray Pods are ready for the first time",
                     "lastTransitionTime": stamp}]

                def report(obj: dict, conditions=conditions, stamp=stamp, head=head) -> None:
                    obj["status"] = {"state": "ready", "conditions": conditions,
                                     "readyWorkerReplicas": 0, "availableWorkerReplicas": 0,
                                     "desiredWorkerReplicas": 0, "observedGeneration":
                                         obj["metadata"].get("generation", 1),
                                     "head": {"podName": head["metadata"]["name"],
                                              "podIP": head["status"].get("podIP", "")},
                                     "lastUpdateTime": stamp}
                kube.mutate("rayclusters.ray.io", name, report, ns, status=True)
