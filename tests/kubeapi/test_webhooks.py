"""Admission webhooks as kube-apiserver calls them (tests/kubeapi/webhooks.py).

Expected answers are kube-apiserver's own (k8s.io/apiserver pkg/admission/plugin/webhook):
a webhook that cannot be called and fails closed is HTTP 500 ``Internal error occurred:
failed calling webhook "<name>": failed to call webhook: Post "https://<svc>.<ns>.svc:443
<path>?timeout=10s": ...``; a denial is ``admission webhook "<name>" denied the request:
<message>`` with the webhook's code.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from tests.kubeapi import objects as o
from tests.kubeapi import webhooks
from tests.kubeapi.controllers.kubelet import Kubelet
from tests.kubeapi.controllers.scheduler import Scheduler

NS, SVC, HOOK = "guard-system", "guard", "validate.guard.example.com"


def _request(kube, method: str, path: str, body: dict | None = None,
             query: str = "") -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(kube.url + path + query, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def _cm(name: str, namespace: str = "default", labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "data": {"k": "v"}}


def _create_cm(kube, name: str, namespace: str = "default", labels: dict | None = None,
               query: str = ""):
    return _request(kube, "POST", f"/api/v1/namespaces/{namespace}/configmaps",
                    _cm(name, namespace, labels), query)


def _configuration(kind: str = "ValidatingWebhookConfiguration", **hook) -> dict:
    """As controller-runtime's generated config/webhook/manifests.yaml writes one."""
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": "guard"},
            "webhooks": [{"name": HOOK, "admissionReviewVersions": ["v1"],
                          "sideEffects": "None",
                          "clientConfig": {"service": {"name": SVC, "namespace": NS,
                                                       "path": "/validate"},
                                           "caBundle": webhooks.CA_BUNDLE},
                          "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                     "operations": ["CREATE", "UPDATE"],
                                     "resources": ["configmaps"]}],
                          **hook}]}


def _slice(ready: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{SVC}-x1", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": SVC}},
            "addressType": "IPv4", "ports": [{"name": "https", "port": 9443}],
            "endpoints": [{"addresses": [f"10.244.1.{i + 5}"], "conditions": {"ready": True}}
                          for i in range(ready)]}


def deny_labelled(request: dict) -> dict:
    """A validating server: denies objects labelled deny=yes as controller-runtime's
    admission.Denied does (code 403, reason Forbidden)."""
    labels = ((request.get("object") or {}).get("metadata") or {}).get("labels") or {}
    if labels.get("deny") == "yes":
        return {"allowed": False, "status": {"code": 403, "reason": "Forbidden",
                                             "message": "labelled deny=yes"}}
    return {"allowed": True}


@pytest.fixture
def guarded(kubeapi_factory):
    """A cluster with the webhook's namespace, Service (port 443 -> 9443) and server."""
    def build(*, ready: int = 1, server=deny_labelled, **hook):
        kube = kubeapi_factory("empty")
        kube.seed([o.namespace(NS), o.namespace("tenant", {"guard": "on"})])
        svc = o.service(SVC, NS, 443)
        svc["spec"]["ports"][0]["targetPort"] = 9443
        kube.create(svc)
        kube.seed([_slice(ready), _configuration(**hook)])
        if server is not None:
            webhooks.serve(kube, server, namespace=NS, service=SVC)
        return kube
    return build


def test_a_validating_webhook_behind_a_ready_endpoint_denies_and_admits(guarded):
    kube = guarded()
    code, _, status = _create_cm(kube, "bad", labels={"deny": "yes"})
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == f'admission webhook "{HOOK}" denied the request: labelled ' \
                                "deny=yes"
    assert _create_cm(kube, "good")[0] == 201
    assert kube.find("configmaps", "bad", "default") is None


def test_no_ready_endpoint_and_failure_policy_fail_is_http_500(guarded):
    kube = guarded(ready=0, failurePolicy="Fail")
    ip = kube.get("services", SVC, NS)["spec"]["clusterIP"]
    code, _, status = _create_cm(kube, "any")
    cause = (f'failed calling webhook "{HOOK}": failed to call webhook: Post "https://{SVC}.'
             f'{NS}.svc:443/validate?timeout=10s": dial tcp {ip}:443: connect: connection '
             "refused")
    assert (code, status["reason"]) == (500, "InternalError")
    assert status["message"] == f"Internal error occurred: {cause}"
    assert status["details"] == {"causes": [{"message": cause}]}
    assert kube.find("configmaps", "any", "default") is None


def test_failure_policy_ignore_lets_the_request_through(guarded):
    kube = guarded(ready=0, failurePolicy="Ignore")
    assert _create_cm(kube, "any")[0] == 201


def test_an_unready_endpoint_counts_as_none(guarded):
    kube = guarded()
    kube.mutate("endpointslices.discovery.k8s.io", f"{SVC}-x1",
                lambda s: s["endpoints"][0]["conditions"].update(ready=False), NS)
    assert _create_cm(kube, "any")[0] == 500


def test_namespace_selector_leaves_other_namespaces_alone(guarded):
    kube = guarded(ready=0, namespaceSelector={"matchLabels": {"guard": "on"}})
    assert _create_cm(kube, "elsewhere")[0] == 201
    assert _create_cm(kube, "here", "tenant")[0] == 500
    # Every namespace carries kubernetes.io/metadata.name (set by the apiserver).
    by_name = guarded(ready=0, namespaceSelector={"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["default"]}]})
    assert _create_cm(by_name, "skipped")[0] == 201


def test_object_selector_matches_the_new_or_the_old_objects_labels(guarded):
    kube = guarded(objectSelector={"matchLabels": {"guarded": "yes"}},
                   server=lambda r: {"allowed": False, "status": {"message": "no"}})
    assert _create_cm(kube, "plain")[0] == 201
    code, _, status = _create_cm(kube, "watched", labels={"guarded": "yes"})
    assert code == 400  # a denial without a code: ToStatusErr makes it 400
    assert status["message"] == f'admission webhook "{HOOK}" denied the request: no'


def test_rules_match_operation_resource_and_subresource(guarded):
    kube = guarded(ready=0, rules=[{"apiGroups": [""], "apiVersions": ["v1"],
                                    "operations": ["UPDATE"], "resources": ["configmaps"]}])
    assert _create_cm(kube, "created")[0] == 201  # CREATE is not in the rule
    code, _, _ = _request(kube, "PATCH", "/api/v1/namespaces/default/configmaps/created",
                          {"data": {"k": "w"}})
    assert code == 415  # JSON body as a PATCH: the client must name a patch type
    req = urllib.request.Request(
        kube.url + "/api/v1/namespaces/default/configmaps/created",
        data=json.dumps({"data": {"k": "w"}}).encode(), method="PATCH",
        headers={"Content-Type": "application/merge-patch+json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 500
    status_only = guarded(ready=0, rules=[{"apiGroups": [""], "apiVersions": ["v1"],
                                           "operations": ["*"], "resources": ["pods/status"]}])
    assert _request(status_only, "POST", "/api/v1/namespaces/default/pods",
                    o.pod("p"))[0] == 201  # pods/status does not cover pods


def test_a_missing_or_foreign_ca_bundle_fails_the_tls_handshake(guarded):
    hook = _configuration()["webhooks"][0]
    no_ca = {**hook["clientConfig"]}
    del no_ca["caBundle"]
    kube = guarded(clientConfig=no_ca)
    code, _, status = _create_cm(kube, "any")
    assert code == 500 and status["message"].endswith(
        "tls: failed to verify certificate: x509: certificate signed by unknown authority")
    other = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nb3RoZXI=\n"
                             b"-----END CERTIFICATE-----\n").decode()
    foreign = guarded(clientConfig={**hook["clientConfig"], "caBundle": other})
    assert "x509: certificate signed by unknown authority" in _create_cm(foreign, "x")[2][
        "message"]
    # A truncated PEM (no END line) does not load at all.
    garbled = guarded(clientConfig={**hook["clientConfig"], "caBundle": base64.b64encode(
        b"-----BEGIN CERTIFICATE-----\n").decode()})
    assert _create_cm(garbled, "x")[2]["message"] == (
        f'Internal error occurred: failed calling webhook "{HOOK}": could not get REST '
        "client: unable to load root certificates: unable to parse bytes as PEM block")


def test_a_registered_server_whose_service_is_gone_is_service_not_found(guarded):
    kube = guarded()
    kube.delete("services", SVC, NS)
    assert _create_cm(kube, "any")[2]["message"].endswith(
        f'Post "https://{SVC}.{NS}.svc:443/validate?timeout=10s": service "{SVC}" not found')


def test_endpoints_come_from_ready_pods_when_no_endpointslice_exists(kubeapi_factory):
    kube = kubeapi_factory("empty")
    kube.seed([o.node("n1"), o.namespace(NS)])
    kube.add(Scheduler(), Kubelet())
    svc = o.service(SVC, NS, 443, selector={"app": "guard"})
    kube.create(svc)
    kube.seed([_configuration()])
    webhooks.serve(kube, deny_labelled, namespace=NS, service=SVC)
    assert _create_cm(kube, "early")[0] == 500  # no pod yet
    kube.create(o.pod("guard-0", NS, command=["sh", "-c", "sleep 3600"],
                      labels={"app": "guard"}, restart_policy="Always"))
    kube.settle()
    assert _create_cm(kube, "later")[0] == 201


def test_a_mutating_webhook_patches_before_validation(guarded):
    def label(request: dict) -> dict:
        patch = [{"op": "add", "path": "/metadata/labels/stamped", "value": "yes"}]
        return {"allowed": True, "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                "warnings": ["stamped by the guard"]}
    kube = guarded(server=label)
    kube.seed([{**_configuration("MutatingWebhookConfiguration"),
                "metadata": {"name": "stamp"}}])
    code, headers, created = _create_cm(kube, "any")
    assert code == 201 and created["metadata"]["labels"] == {"stamped": "yes"}
    assert headers["Warning"] == '299 - "stamped by the guard"'
    assert kube.get("configmaps", "any", "default")["metadata"]["labels"] == {"stamped": "yes"}


def test_a_webhook_with_side_effects_refuses_a_dry_run(guarded):
    kube = guarded(sideEffects="Unknown")
    code, _, status = _create_cm(kube, "any", query="?dryRun=All")
    assert (code, status["message"]) == (
        400, f'admission webhook "{HOOK}" does not support dry run')


def test_delete_is_admitted_too(guarded):
    kube = guarded(rules=[{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"],
                           "resources": ["configmaps"]}],
                   server=lambda r: {"allowed": r["operation"] != "DELETE",
                                     "status": {"code": 403, "message": "keep it"}})
    assert _create_cm(kube, "kept")[0] == 201
    code, _, status = _request(kube, "DELETE", "/api/v1/namespaces/default/configmaps/kept")
    assert code == 403 and status["message"].endswith("denied the request: keep it")


def test_the_emulators_own_writes_and_unmodelled_webhooks_are_not_called(guarded,
                                                                          kubeapi_factory):
    kube = guarded(ready=0)
    kube.create(_cm("in-process"))  # a controller's write: not an HTTP request
    assert kube.find("configmaps", "in-process", "default") is not None
    # A webhook whose Service the world never built, with no server registered (as the
    # KubeRay worlds seed theirs): left to the in-process hooks, the request goes on.
    bare = kubeapi_factory("empty")
    bare.seed([_configuration()])
    assert _create_cm(bare, "any")[0] == 201


def _two_version_crd() -> dict:
    crd = o.crd("example.com", "v1", "Widget", "widgets")
    v1 = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [{**v1, "storage": False},
                               {**v1, "name": "v2", "storage": True}]
    return crd


@pytest.mark.parametrize("policy, refused", [("Equivalent", True), ("Exact", False)])
def test_match_policy_equivalent_covers_the_other_served_version(guarded, policy, refused):
    kube = guarded(ready=0, matchPolicy=policy, rules=[{
        "apiGroups": ["example.com"], "apiVersions": ["v1"], "operations": ["CREATE"],
        "resources": ["widgets"], "scope": "Namespaced"}])
    kube.create(_two_version_crd())
    widget = {"apiVersion": "example.com/v2", "kind": "Widget",
              "metadata": {"name": "w", "namespace": "default"}}
    code, _, _ = _request(kube, "POST", "/apis/example.com/v2/namespaces/default/widgets",
                          widget)
    assert code == (500 if refused else 201)


def test_scope_cluster_leaves_namespaced_objects_alone(guarded):
    kube = guarded(ready=0, rules=[{"apiGroups": ["*"], "apiVersions": ["*"],
                                    "operations": ["CREATE"], "resources": ["*"],
                                    "scope": "Cluster"}])
    assert _create_cm(kube, "namespaced")[0] == 201
    code, _, _ = _request(kube, "POST", "/api/v1/namespaces",
                          {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "fresh"}})
    assert code == 500
