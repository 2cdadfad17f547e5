"""Admission webhooks, called as kube-apiserver calls them.

For every request that arrives over HTTP (the emulator's own controllers write around them,
see below), the Mutating- then ValidatingWebhookConfigurations are matched and called, the
way k8s.io/apiserver pkg/admission/plugin/webhook does it (kubernetes/kubernetes v1.35):

- matching (``predicates/rules/rules.go``, ``predicates/namespace``, ``predicates/object``):
  ``rules`` by operation, API group, version, resource (``*``, ``*/*``, ``pods/status``,
  ``*/status``) and ``scope``; ``matchPolicy: Equivalent`` (the default) also matches a rule
  naming another served version of the same resource; ``namespaceSelector`` against the
  labels of the object's namespace (the Namespace itself for namespaces; every namespace
  carries ``kubernetes.io/metadata.name``), ignored for other cluster-scoped objects;
  ``objectSelector`` against the labels of the new or the old object.
  ``matchConditions`` (CEL) are not evaluated: a webhook with them is called.
- calling (``webhook/client.go``, ``config/serviceresolver``): ``clientConfig.service`` is
  ``https://<name>.<namespace>.svc:<port><path>?timeout=<timeoutSeconds>s``, dialled through
  the Service (kube-apiserver's default ``--enable-aggregator-routing=false`` resolves its
  ClusterIP): a missing Service is ``service "<name>" not found``, a Service without a ready
  endpoint (EndpointSlices labelled ``kubernetes.io/service-name``, else the Ready pods its
  selector picks) ``dial tcp <clusterIP>:<port>: connect: connection refused``. TLS trusts
  only ``caBundle``: one that does not parse as PEM certificates is ``could not get REST
  client: unable to load root certificates: unable to parse bytes as PEM block``; one
  without the server's CA is ``x509: certificate signed by unknown authority``.
- failures (``validating/dispatcher.go``, ``mutating/dispatcher.go``): a call that fails is
  ``failed calling webhook "<name>": failed to call webhook: <error>``; with
  ``failurePolicy: Ignore`` the request goes on, with ``Fail`` (the v1 default) it is refused
  as ``apierrors.NewInternalError``: HTTP 500, reason InternalError, message ``Internal error
  occurred: failed calling webhook ...``.
- answers (``errors/statuserror.go`` ``ToStatusErr`` as released since v1.15,
  kubernetes/kubernetes#77022): a denial is ``admission webhook "<name>" denied the request:
  <message>`` with the webhook's code (below 400 becomes 400); a mutating webhook's
  ``JSONPatch`` is applied; ``warnings`` come back as ``Warning: 299 - "..."`` headers.
  A webhook whose ``sideEffects`` is ``Some``/``Unknown`` refuses a dry run with 400
  (``NewDryRunUnsupportedErr``). No reinvocation (``reinvocationPolicy``), no timeouts.

Who answers: a webhook server registered with ``serve(kube, handler, namespace=, service=)``
(or ``url=``), which stands for the pods behind the Service and sees the AdmissionReview
``request``; ``handler(request) -> response`` returns the ``response`` part (``uid`` is
filled in). A webhook whose Service the world never created and for which no server is
registered, or whose Service has ready endpoints but no registered server, is left to the
in-process admission hooks (``kube.admit``), as before: this emulator cannot know what
unmodelled pods would answer. ``clientConfig.url`` webhooks are called only when a server
is registered for that URL (no network here).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import errors
from .json_tree import clone
from .patch import json_patch
from .selectors import matches_label_selector

# The CA that the emulator's webhook servers present by default; a configuration trusts it
# when its caBundle carries this certificate (a PEM block as cert-manager's CA injector
# writes one; the content is the emulator's, not a real key).
CA_PEM = ("-----BEGIN CERTIFICATE-----\n"
          "TUlJQmVtdWxhdG9yLXdlYmhvb2stY2E=\n"
          "-----END CERTIFICATE-----\n")
CA_BUNDLE = base64.b64encode(CA_PEM.encode()).decode()

Handler = Callable[[dict], dict]
_local = threading.local()


@dataclass
class Server:
    handler: Handler
    ca: str = CA_PEM


class CallError(Exception):
    """The API server could not get an answer from the webhook."""


def servers(kube) -> dict:
    """The webhook servers registered on ``kube`` (created on first use)."""
    found = getattr(kube, "_webhook_servers", None)
    if found is None:
        found = kube._webhook_servers = {}
    return found


def serve(kube, handler: Handler, *, namespace: str | None = None,
          service: str | None = None, url: str | None = None, ca: str = CA_PEM) -> None:
    """Register the server behind a webhook's Service (or URL)."""
    key = url if url is not None else (namespace, service)
    servers(kube)[key] = Server(handler, ca)
    install(kube)


def install(kube) -> None:
    """Have ``kube``'s store call webhooks for requests over HTTP (idempotent)."""
    if getattr(kube.store, "webhooks", None) is None:
        kube.store.webhooks = Dispatcher(kube)


class over_http:  # noqa: N801 - a context manager, used like a function
    """Marks the current thread as serving one HTTP request for ``target`` (resource key,
    name or None): the writes webhooks are called for. What the store does besides (a
    namespace's contents deleted with it, dependents collected) is the controllers' work,
    which a real API server admits separately; it is not admitted here."""

    def __init__(self, user: str, target: tuple | None):
        self.user, self.target = user, target

    def __enter__(self) -> list[str]:
        _local.request, _local.target, _local.warnings = self.user, self.target, []
        return _local.warnings

    def __exit__(self, *exc: object) -> None:
        _local.request = _local.target = None


def reset() -> None:
    """A new request on this thread (a kept-alive connection): no warnings yet."""
    _local.warnings = []


def warnings() -> list[str]:
    """Warnings the webhooks of the current request returned."""
    return list(getattr(_local, "warnings", None) or [])


def _for_request(res, obj: dict | None, old: dict | None) -> bool:
    if getattr(_local, "request", None) is None:
        return False
    target = getattr(_local, "target", None)
    if target is None:
        return False
    key, name = target
    meta = (obj or old or {}).get("metadata") or {}
    return key == res.key and (name is None or name == meta.get("name"))


# Matching -------------------------------------------------------------------------------------
def _rule_resource_matches(patterns: list[str], plural: str, sub: str | None) -> bool:
    for p in patterns:
        if p == "*/*" or (p == "*" and not sub):
            return True
        name, _, psub = p.partition("/")
        if name not in (plural, "*"):
            continue
        if (not sub and not psub) or (sub and psub in (sub, "*")):
            return True
    return False


def rule_matches(hook: dict, discovery, operation: str, res, sub: str | None) -> bool:
    equivalent = hook.get("matchPolicy", "Equivalent") == "Equivalent"
    for rule in hook.get("rules") or []:
        if not {operation, "*"} & set(rule.get("operations") or []):
            continue
        if not {res.group, "*"} & set(rule.get("apiGroups") or []):
            continue
        versions = set(rule.get("apiVersions") or [])
        if not {res.version, "*"} & versions and not (equivalent and any(
                (res.group, v, res.plural) in discovery.by_path for v in versions)):
            continue
        if not _rule_resource_matches(rule.get("resources") or [], res.plural, sub):
            continue
        scope = rule.get("scope", "*")
        if scope == "Cluster" and res.namespaced or scope == "Namespaced" and not res.namespaced:
            continue
        return True
    return False


def _namespace_labels(kube, name: str) -> dict | None:
    ns = kube.store.lookup(kube.resolve("namespaces"), None, name)
    if ns is None:
        return None
    # The apiserver labels every namespace with its name (NamespaceDefaultLabelName, GA 1.22).
    return {**(ns.obj["metadata"].get("labels") or {}), "kubernetes.io/metadata.name": name}


def selectors_match(kube, hook: dict, res, obj: dict | None, old: dict | None) -> bool:
    target = obj or old or {}
    meta = target.get("metadata") or {}
    ns_selector = hook.get("namespaceSelector") or {}
    if res.key == ("", "namespaces"):
        labels = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta.get("name")}
        if not matches_label_selector(ns_selector, labels):
            return False
    elif res.namespaced and ns_selector:
        labels = _namespace_labels(kube, meta.get("namespace", ""))
        if labels is None or not matches_label_selector(ns_selector, labels):
            return False
    obj_selector = hook.get("objectSelector") or {}
    if obj_selector and not any(
            matches_label_selector(obj_selector, (o.get("metadata") or {}).get("labels") or {})
            for o in (obj, old) if o is not None):
        return False
    return True


# Calling ----------------------------------------------------------------------------------------
def _pem_blocks(bundle: str) -> list[str] | None:
    try:
        text = base64.b64decode(bundle, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    blocks, rest = [], text
    while "-----BEGIN CERTIFICATE-----" in rest:
        start = rest.index("-----BEGIN CERTIFICATE-----")
        end = rest.find("-----END CERTIFICATE-----", start)
        if end < 0:
            return None
        blocks.append(rest[start:end + len("-----END CERTIFICATE-----")].strip())
        rest = rest[end + 1:]
    return blocks or None


def _ready_endpoints(kube, svc: dict, port: int) -> int:
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    slices = kube.view("endpointslices.discovery.k8s.io", ns,
                       labels=f"kubernetes.io/service-name={name}")
    if slices:
        return sum(1 for s in slices for e in s.get("endpoints") or []
                   if (e.get("conditions") or {}).get("ready") is not False)
    from .controllers import httpd  # the EndpointSlice controller's view: Ready pods
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return 0
    return sum(1 for pod in kube.view("pods", ns)
               if httpd.running(pod) and matches_label_selector(
                   {"matchLabels": selector}, pod["metadata"].get("labels") or {})
               and any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (pod.get("status") or {}).get("conditions") or []))


def _endpoint(kube, hook: dict) -> tuple[Server | None, str] | None:
    """(server, URL) to call; raises CallError; None: nobody here can say (left to the
    in-process admission hooks)."""
    config = hook.get("clientConfig") or {}
    registry = servers(kube)
    if config.get("url"):
        server = registry.get(config["url"])
        return None if server is None else (server, config["url"])
    ref = config.get("service") or {}
    ns, name = ref.get("namespace", ""), ref.get("name", "")
    port = int(ref.get("port") or 443)
    url = f"https://{name}.{ns}.svc:{port}{ref.get('path') or ''}" \
          f"?timeout={int(hook.get('timeoutSeconds') or 10)}s"
    server = registry.get((ns, name))
    svc = kube.store.lookup(kube.resolve("services"), ns, name)
    if svc is None:
        if server is None:
            return None
        raise CallError(f'Post "{url}": service "{name}" not found')
    spec_port = next((p for p in svc.obj["spec"].get("ports") or [] if p.get("port") == port),
                     None)
    if spec_port is None or not _ready_endpoints(kube, svc.obj, port):
        ip = svc.obj["spec"].get("clusterIP") or ""
        raise CallError(f'Post "{url}": dial tcp {ip}:{port}: connect: connection refused')
    return (server, url) if server is not None else None


def _call(kube, hook: dict, request: dict) -> dict | None:
    """The webhook's AdmissionReview response; None when it is left to in-process hooks."""
    found = _endpoint(kube, hook)
    if found is None:
        return None
    server, url = found
    assert server is not None
    bundle = (hook.get("clientConfig") or {}).get("caBundle") or ""
    blocks = _pem_blocks(bundle) if bundle else []
    if blocks is None:
        raise CallError("could not get REST client: unable to load root certificates: unable "
                        "to parse bytes as PEM block")
    if server.ca.strip() not in blocks:
        raise CallError(f'Post "{url}": tls: failed to verify certificate: x509: certificate '
                        "signed by unknown authority")
    versions = hook.get("admissionReviewVersions") or []
    if not {"v1", "v1beta1"} & set(versions):
        raise CallError("webhook does not accept v1 or v1beta1 AdmissionReview")
    try:
        response = server.handler(clone(request))
    except ConnectionError as e:
        raise CallError(f'Post "{url}": {e}') from None
    if not isinstance(response, dict):
        raise CallError("received invalid webhook response: response is absent")
    return {**response, "uid": request["uid"]}


# Dispatching ------------------------------------------------------------------------------------
class Dispatcher:
    """What the store calls around its writes (``Store.webhooks``)."""

    def __init__(self, kube):
        self.kube = kube

    def _hooks(self, kind: str) -> list[tuple[dict, dict]]:
        res = self.kube.discovery.by_ref.get(f"{kind}.admissionregistration.k8s.io")
        if res is None:
            return []
        items, *_ = self.kube.store.list(res)
        return [(s.obj, hook) for s in items for hook in s.obj.get("webhooks") or []]

    def admit(self, phase: str, operation: str, res, obj: dict | None, old: dict | None,
              sub: str | None, dry_run: bool) -> dict | None:
        """Run the ``mutating`` or ``validating`` webhooks; returns the (patched) object."""
        if not _for_request(res, obj, old):
            return obj
        kind = "mutatingwebhookconfigurations" if phase == "mutating" else \
            "validatingwebhookconfigurations"
        hooks = self._hooks(kind)
        if not hooks:
            return obj
        kube = self.kube
        for _config, hook in hooks:
            if not rule_matches(hook, kube.discovery, operation, res, sub) or \
                    not selectors_match(kube, hook, res, obj, old):
                continue
            name = hook.get("name", "")
            if dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
                raise errors.bad_request(f'admission webhook "{name}" does not support dry run')
            request = self._request(operation, res, obj, old, sub, dry_run)
            try:
                response = _call(kube, hook, request)
            except CallError as e:
                if hook.get("failurePolicy", "Fail") == "Ignore":
                    continue
                message = f'failed calling webhook "{name}": failed to call webhook: {e}' \
                    if not str(e).startswith(("could not get REST client", "webhook does not",
                                              "received invalid")) else \
                    f'failed calling webhook "{name}": {e}'
                raise errors.ApiError(500, "InternalError",
                                      f"Internal error occurred: {message}",
                                      {"causes": [{"message": message}]}) from None
            if response is None:
                continue
            for warning in response.get("warnings") or []:
                getattr(_local, "warnings", []).append(warning)
            if not response.get("allowed"):
                raise _denied(name, response.get("status") or {})
            if phase == "mutating" and response.get("patch") and obj is not None:
                patch = json.loads(base64.b64decode(response["patch"]))
                patched = json_patch(obj, patch)
                _replace_in_place(obj, patched)
        return obj

    def _request(self, operation: str, res, obj: dict | None, old: dict | None,
                 sub: str | None, dry_run: bool) -> dict:
        meta = (obj or old or {}).get("metadata") or {}
        gvk = {"group": res.group, "version": res.version, "kind": res.kind}
        gvr = {"group": res.group, "version": res.version, "resource": res.plural}
        out: dict[str, Any] = {
            "uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr, "requestKind": gvk,
            "requestResource": gvr, "name": meta.get("name", ""), "operation": operation,
            "userInfo": {"username": getattr(_local, "request", "") or "",
                         "groups": ["system:masters", "system:authenticated"]},
            "object": clone(obj) if obj is not None and operation != "DELETE" else None,
            "oldObject": clone(old) if old is not None else None, "dryRun": dry_run,
            "options": {"kind": {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                                 "DELETE": "DeleteOptions"}.get(operation, ""),
                        "apiVersion": "meta.k8s.io/v1"}}
        if res.namespaced:
            out["namespace"] = meta.get("namespace", "")
        if sub:
            out["subResource"] = sub
            out["requestSubResource"] = sub
        return out


def _denied(name: str, status: dict) -> errors.ApiError:
    code = int(status.get("code") or 0)
    code = code if code >= 400 else 400
    denied_by = f'admission webhook "{name}" denied the request'
    message = (f"{denied_by}: {status['message']}" if status.get("message") else
               f"{denied_by}: {status['reason']}" if status.get("reason") else
               f"{denied_by} without explanation")
    return errors.ApiError(code, status.get("reason") or "", message, status.get("details"))


def _replace_in_place(obj: dict, new: dict) -> None:
    """Make ``obj`` equal ``new`` keeping its dict and its metadata dict (the store holds
    references to both while it writes)."""
    meta = obj.get("metadata")
    obj.clear()
    obj.update(new)
    if isinstance(meta, dict) and isinstance(new.get("metadata"), dict):
        fresh = new["metadata"]
        meta.clear()
        meta.update(fresh)
        obj["metadata"] = meta
