"""Talking to the cluster: the client from a kubeconfig, retries, permissions, cleanup.

Only the ``kubernetes`` client is used (v37, pydantic models). Transient errors (429 with
Retry-After, 500/502/503/504, dropped connections) are retried with bounded backoff; a 403
becomes ``Forbidden`` naming the missing permission; everything a run creates carries
``aicp.dev/verify-run=<id>`` so ``aicp verify cleanup`` can find leftovers.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import kubernetes.client
import kubernetes.config
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from .probe import RUN_LABEL, ProbeError, one_line
from .result import CreatedObject

# Items per list request, as kubectl's --chunk-size: a 5,000-node or 100,000-pod cluster is
# read in pages, so memory holds one page, not the whole collection.
PAGE = 500
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
# A running ``aicp verify`` refreshes this annotation on its namespaces every
# runner.HEARTBEAT_SECONDS; ``aicp verify cleanup`` leaves a run alone while its newest
# heartbeat is younger than ALIVE_SECONDS (a few missed beats, not one slow request). Both
# ends read their own clock: machines more than a minute apart misjudge, hence --force and
# --run-id.
HEARTBEAT = "aicp.dev/verify-heartbeat"
ALIVE_SECONDS = 60.0
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe")
# An addon counts as present when its API group is served (no stack says otherwise).
ADDON_APIS = {
    "kueue": "kueue.x-k8s.io", "volcano": "scheduling.volcano.sh", "ray": "ray.io",
    "kuberay": "ray.io", "kubeflow-trainer": "trainer.kubeflow.org",
    "gateway-api": "gateway.networking.k8s.io", "prometheus": "monitoring.coreos.com",
    "kube-prometheus-stack": "monitoring.coreos.com", "keda": "keda.sh",
    "gpu-operator": "nvidia.com", "lws": "leaderworkerset.x-k8s.io",
    "inference-extension": "inference.networking.k8s.io",
}


class ConfigError(Exception):
    """A kubeconfig or cluster problem, one line for a person (exit code 2)."""


class Lost(ProbeError):
    """The cluster stopped answering (connection refused, reset or timed out) after retries."""


class NotJson(ProbeError):
    """The server answered something other than JSON: a proxy's or VPN's login page."""


class Forbidden(ProbeError):
    """A 403: the reason names verb, resource and namespace so an admin can grant it."""

    def __init__(self, verb: str, resource: str, namespace: str | None = None):
        self.verb, self.resource, self.namespace = verb, resource, namespace
        where = f" in namespace {namespace}" if namespace else " (cluster-wide)"
        super().__init__(f"missing permission: {verb} {resource}{where}")


_RBAC = re.compile(r'cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
                   r'(?: in API group "(?P<group>[^"]*)")?'
                   r'(?: in the namespace "(?P<namespace>[^"]+)")?')
_VERBS = ("delete_collection", "create", "read", "list", "patch", "replace", "delete",
          "connect_get", "connect_post", "watch")


def forbidden(exc: ApiException, method: str = "", namespace: str | None = None) -> Forbidden:
    """Turn a 403 into ``Forbidden`` from RBAC's message, else from the API method name."""
    message = ""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except ValueError:
        pass
    found = _RBAC.search(message)
    if found:
        resource = found["resource"]
        if found["group"]:
            resource = f"{resource}.{found['group']}"
        return Forbidden(found["verb"], resource, found["namespace"])
    verb = next((v for v in _VERBS if method.startswith(v)), method or "access")
    rest = method.removeprefix(verb).strip("_").replace("namespaced_", "")
    rest = rest.removesuffix("_for_all_namespaces")
    return Forbidden(verb.replace("delete_collection", "deletecollection").split("_")[0],
                     (rest or "resource") + "s", namespace)


def retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def with_retry(call: Callable[[], Any], *, describe: str = "", namespace: str | None = None,
               attempts: int = 6, base: float = 0.25, cap: float = 8.0,
               sleep: Callable[[float], None] = time.sleep,
               on_retry: Callable[[str], None] | None = None) -> Any:
    """Run ``call``, retrying transient failures with capped exponential backoff.

    429 waits what Retry-After asks (capped at 30 s); 5xx and dropped connections back off
    with jitter. A 403 raises ``Forbidden``; any other error is raised unchanged.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ApiException as exc:
            if exc.status == 403:
                raise forbidden(exc, describe, namespace) from None
            if exc.status not in RETRY_STATUSES or attempt == attempts:
                raise
            delay = retry_after(exc) if exc.status == 429 else None
            delay = min(delay, 30.0) if delay is not None else _backoff(attempt, base, cap)
            why = f"HTTP {exc.status}"
        except CONNECTION_ERRORS as exc:
            if attempt == attempts:
                raise
            delay, why = _backoff(attempt, base, cap), type(exc).__name__
        if on_retry:
            on_retry(f"{describe or 'request'}: {why}, retry {attempt} in {delay:.2f}s")
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _backoff(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class _RetryingApi:
    """A generated API class (``CoreV1Api``...) whose every method is retried."""

    def __init__(self, api: Any, on_retry: Callable[[str], None] | None,
                 kube: Kube | None = None):
        self._api, self._on_retry, self._kube = api, on_retry, kube

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._api, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            state = {"retried": False}

            def note(message: str) -> None:
                state["retried"] = True
                if self._on_retry:
                    self._on_retry(message)

            try:
                if self._kube is not None:
                    return self._kube.retry(lambda: target(*args, **kwargs), describe=name,
                                            namespace=kwargs.get("namespace"), on_retry=note)
                return with_retry(lambda: target(*args, **kwargs), describe=name,
                                  namespace=kwargs.get("namespace"), on_retry=note)
            except ApiException as exc:
                # A create retried after a lost response may have landed the first time.
                if exc.status == 409 and state["retried"] and name.startswith("create_"):
                    return self._read_back(name, args, kwargs)
                raise
        return call

    def _read_back(self, name: str, args: tuple, kwargs: dict) -> Any:
        body = kwargs.get("body", args[-1] if args else None)
        meta = body.get("metadata") if isinstance(body, dict) else getattr(body, "metadata", None)
        obj_name = meta.get("name") if isinstance(meta, dict) else getattr(meta, "name", None)
        read = getattr(self._api, "read_" + name.removeprefix("create_"))
        extra = {"namespace": kwargs["namespace"]} if "namespace" in kwargs else {}
        return read(name=obj_name, **extra)


def _expired_continue(exc: ApiException) -> str | None:
    """The continue token a 410 ResourceExpired offers to list on inconsistently."""
    if exc.status != 410:
        return None
    try:
        return (json.loads(exc.body or "{}").get("metadata") or {}).get("continue") or None
    except (ValueError, AttributeError):
        return None


def default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return Path.home() / ".kube" / "config"


class Kube:
    """One cluster: the API client plus what the runner needs (``probe.Cluster``)."""

    def __init__(self, client: kubernetes.client.ApiClient, *, context: str = "",
                 source: str = "", on_retry: Callable[[str], None] | None = None,
                 expectations: dict[str, Any] | None = None):
        self.client = client
        self.context = context
        self.source = source
        self.on_retry = on_retry
        self.expectations = expectations or {}
        self._resources: dict[str, list[dict]] = {}
        self._needs: dict[str, str | None] = {}
        # Set once a request ran out of retries on a dead connection: later requests try
        # once, so cleanup against a cluster that went away takes seconds, not minutes.
        self.lost: str | None = None

    @property
    def server(self) -> str:
        return self.client.configuration.host

    def api(self, cls: type) -> Any:
        """``ctx.kube.api(kubernetes.client.CoreV1Api)``: that API with retries and 403s."""
        return _RetryingApi(cls(self.client), self.on_retry, self)

    def retry(self, call: Callable[[], Any], *, describe: str = "",
              namespace: str | None = None,
              on_retry: Callable[[str], None] | None = None, once: bool = False) -> Any:
        """``with_retry`` that remembers a lost cluster; a dead connection raises ``Lost``.

        ``once``: a single attempt, for requests whose repetition would change what they
        measure (a counted request that may have reached its server before failing)."""
        try:
            result = with_retry(call, describe=describe, namespace=namespace,
                                attempts=1 if self.lost or once else 6, on_retry=on_retry)
        except CONNECTION_ERRORS as exc:
            reason = _reason(exc)
            if not once:  # one untried connection error says little about the cluster
                self.lost = reason
            raise Lost(f"lost the connection to the cluster {self.server} ({reason}) "
                       f"during {describe or 'a request'}") from None
        self.lost = None
        return result

    # Raw requests ---------------------------------------------------------------------
    def request(self, method: str, path: str, *, query: dict | None = None,
                body: Any = None, timeout: float = 30.0, text: bool = False,
                once: bool = False) -> Any:
        """A JSON request to ``path`` with retries (``once``: none); the decoded body
        (``text``: as str)."""
        def call() -> Any:
            url_method, url, headers, payload, _ = self.client.param_serialize(
                method, path, query_params=list((query or {}).items()),
                header_params={"Accept": "application/json",
                               **({"Content-Type": "application/json"} if body else {})},
                body=body, auth_settings=["BearerToken"])
            response = self.client.call_api(url_method, url, headers, payload,
                                            _request_timeout=timeout)
            data = response.read()
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response, body=data.decode("utf-8", "replace"))
            if text:
                return data.decode("utf-8", "replace")
            return _json(data, response, f"{method} {path}", self.server) if data else None
        return self.retry(call, describe=f"{method.lower()} {path}", on_retry=self.on_retry,
                          once=once)

    def items(self, path: str, *, query: dict | None = None, page: int = PAGE
              ) -> Iterator[dict]:
        """Every item of the list at ``path``, fetched ``page`` at a time (limit/continue).

        Callers keep what they need while iterating, so memory is one page whatever the
        cluster's size. When the server expires the list's snapshot mid-way (410), the
        listing goes on from the inconsistent continue token the 410 carries, as the API
        documents; without one it cannot resume without repeating items, so it fails.
        """
        token = None
        while True:
            params = {**(query or {}), "limit": str(page)}
            if token:
                params["continue"] = token
            try:
                doc = self.request("GET", path, query=params)
            except ApiException as exc:
                resume = _expired_continue(exc) if token else None
                if not resume:
                    if exc.status == 410:
                        raise ProbeError(f"list {path}: the server expired the listing after "
                                         "some pages and offered no way on: rerun") from None
                    raise
                token = resume
                continue
            yield from doc.get("items") or []
            token = ((doc or {}).get("metadata") or {}).get("continue")
            if not token:
                return

    def version(self, timeout: float = 10.0) -> dict:
        """The server's /version; an unreachable cluster is a one-line ConfigError."""
        try:
            return with_retry(lambda: self._get_version(timeout), describe="get /version",
                              attempts=2)
        except ApiException as exc:
            if exc.status == 401:
                raise ConfigError(f"cluster {self.server} rejected the credentials of "
                                  f"context {self.context or '(current)'} (HTTP 401): "
                                  "refresh the kubeconfig") from None
            raise ConfigError(f"cluster {self.server} answered /version with "
                              f"{one_line(exc)}") from None
        except Forbidden:
            return {}
        except NotJson as exc:
            raise ConfigError(str(exc)) from None
        except CONNECTION_ERRORS as exc:
            raise ConfigError(f"cannot reach cluster {self.server} ({_reason(exc)}): check "
                              "--kubeconfig/--context and the network") from None

    def _get_version(self, timeout: float) -> dict:
        url_method, url, headers, _, _ = self.client.param_serialize(
            "GET", "/version", header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self.client.call_api(url_method, url, headers, _request_timeout=timeout)
        data = response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response, body=data.decode("utf-8", "replace"))
        return _json(data, response, "GET /version", self.server)

    def minor(self) -> str:
        info = self.version()
        return f"{info.get('major', '1')}.{re.sub(r'[^0-9]', '', info.get('minor', ''))}"

    # Discovery ------------------------------------------------------------------------
    def resources(self, api_version: str) -> list[dict]:
        """The API resources served for a group/version (empty when not served)."""
        if api_version not in self._resources:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                found = self.request("GET", path).get("resources", [])
            except ApiException as exc:
                if exc.status != 404:
                    raise
                found = []
            self._resources[api_version] = found
        return self._resources[api_version]

    def _path(self, obj: CreatedObject) -> str:
        match = [r for r in self.resources(obj.api_version)
                 if r.get("kind") == obj.kind and "/" not in r.get("name", "")]
        if not match:
            raise ConfigError(f"the cluster does not serve {obj.kind} in {obj.api_version}")
        res = match[0]
        base = "/api/v1" if obj.api_version == "v1" else f"/apis/{obj.api_version}"
        if res.get("namespaced") and obj.namespace:
            return f"{base}/namespaces/{obj.namespace}/{res['name']}/{obj.name}"
        return f"{base}/{res['name']}/{obj.name}"

    # probe.Cluster --------------------------------------------------------------------
    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels,
                             "annotations": {HEARTBEAT: _now()}}}
        try:
            self.request("POST", "/api/v1/namespaces", body=body)
        except ApiException as exc:
            if exc.status == 403:
                raise Forbidden("create", "namespaces") from None
            raise

    def delete(self, obj: CreatedObject) -> None:
        """Delete one object in the background; already gone is fine."""
        try:
            self.request("DELETE", self._path(obj), query={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def heartbeat(self, names: list[str]) -> None:
        """Tell ``aicp verify cleanup`` these namespaces belong to a run that is alive."""
        patch = {"metadata": {"annotations": {HEARTBEAT: _now()}}}
        for name in names:
            try:
                self.client.call_api(*self.client.param_serialize(
                    "PATCH", f"/api/v1/namespaces/{name}",
                    header_params={"Content-Type": "application/merge-patch+json",
                                   "Accept": "application/json"},
                    body=patch, auth_settings=["BearerToken"])[:4],
                    _request_timeout=10).read()
            except ApiException:
                continue  # that namespace is gone already; beat the others
            except CONNECTION_ERRORS:
                return  # one beat missed; the next one tries again

    def namespace_state(self, name: str) -> str:
        """"active", "terminating" or "gone" (404)."""
        try:
            ns = self.request("GET", f"/api/v1/namespaces/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return "gone"
            raise
        meta, status = ns.get("metadata") or {}, ns.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") == "Terminating":
            return "terminating"
        return "active"

    def wait_namespaces_gone(self, names: list[str], timeout: float) -> list[str]:
        """Wait until each namespace answers 404; returns those still there at ``timeout``.

        A cluster that stopped answering ends the wait at once: every namespace not seen
        gone is returned (it may be left).
        """
        end = time.monotonic() + timeout
        left = list(names)
        while left:
            still = []
            for i, name in enumerate(left):
                try:
                    self.request("GET", f"/api/v1/namespaces/{name}")
                    still.append(name)
                except ApiException as exc:
                    if exc.status != 404:
                        still.append(name)
                except Lost:
                    return still + left[i:]
            left = still
            if not left or time.monotonic() >= end:
                break
            time.sleep(min(1.0, max(0.05, end - time.monotonic())))
        return left

    def unmet(self, need: str) -> str | None:
        """Why a probe precondition does not hold here, or None when it does."""
        if need not in self._needs:
            self._needs[need] = self._unmet(need)
        return self._needs[need]

    def _unmet(self, need: str) -> str | None:
        if need == "gpu_nodes":
            count = 0
            for node in self.items("/api/v1/nodes"):
                count += 1
                allocatable = (node.get("status") or {}).get("allocatable") or {}
                labels = (node.get("metadata") or {}).get("labels") or {}
                if any(_quantity(allocatable.get(r)) > 0 for r in GPU_RESOURCES) or \
                        labels.get("nvidia.com/gpu.present") == "true":
                    return None
            # A DRA-only pool advertises no extended resource: its GPUs are ResourceSlices.
            if self.resources("resource.k8s.io/v1") and any(
                    (s.get("spec") or {}).get("driver", "").startswith("gpu.")
                    for s in self.items("/apis/resource.k8s.io/v1/resourceslices")):
                return None
            return (f"no node advertises an accelerator ({', '.join(GPU_RESOURCES)}, the "
                    f"nvidia.com/gpu.present label or GPU ResourceSlices) among "
                    f"{count} nodes")
        if need.startswith("api:"):
            group_version = need.removeprefix("api:")
            return None if self.resources(group_version) else f"{group_version} is not served"
        if need.startswith("addon:"):
            addon = need.removeprefix("addon:")
            expected = self.expectations.get("addons")
            if isinstance(expected, dict) and expected:
                return None if addon in expected else f"the stack does not install {addon}"
            group = ADDON_APIS.get(addon)
            if group and self._serves_group(group):
                return None
            return f"addon {addon} not detected" + (f" (API group {group})" if group else "")
        raise ValueError(f"unknown probe need {need!r}")

    def _serves_group(self, group: str) -> bool:
        groups = self.request("GET", "/apis").get("groups", [])
        return any(g.get("name") == group for g in groups)

    def close(self) -> None:
        self.client.close()


def _quantity(value: Any) -> float:
    try:
        return float(str(value or 0))
    except ValueError:
        return 0.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(data: bytes, response: Any, what: str, server: str) -> Any:
    """The decoded body; HTML or other text (a proxy's login page) is a one-line NotJson."""
    try:
        return json.loads(data)
    except ValueError:
        kind = (response.getheader("Content-Type") if hasattr(response, "getheader")
                else None) or "not JSON"
        start = data[:60].decode("utf-8", "replace").split("\n")[0].strip()
        raise NotJson(f"cluster {server} answered {what} with {kind.split(';')[0]}, not the "
                      f"Kubernetes API ({start!r}...): a proxy or VPN login page? check the "
                      "kubeconfig's server and log in to the proxy") from None


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "certificate verify failed",
                   "nodename nor servname provided"):
        if marker.lower() in text.lower():
            return marker
    return text.splitlines()[0][:160]


def connect(kubeconfig: str | Path | None = None, context: str | None = None, *,
            on_retry: Callable[[str], None] | None = None,
            expectations: dict[str, Any] | None = None) -> Kube:
    """Build the client from a kubeconfig file (and context); one-line ConfigErrors."""
    path = Path(kubeconfig).expanduser() if kubeconfig else default_kubeconfig()
    if not path.is_file():
        raise ConfigError(f"kubeconfig {path} not found: pass --kubeconfig PATH, set "
                          "KUBECONFIG or use --stack NAME")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"kubeconfig {path} is not readable YAML ({first})") from None
    return from_dict(data, context, source=str(path), on_retry=on_retry,
                     expectations=expectations)


def from_dict(data: Any, context: str | None = None, *, source: str = "kubeconfig",
              on_retry: Callable[[str], None] | None = None,
              expectations: dict[str, Any] | None = None) -> Kube:
    """Build the client from a parsed kubeconfig (a file's, or a Pulumi stack output's)."""
    if not isinstance(data, dict) or not data.get("contexts"):
        raise ConfigError(f"kubeconfig {source} has no contexts")
    names = [str(c["name"]) for c in data["contexts"] if isinstance(c, dict) and c.get("name")]
    if not names:
        raise ConfigError(f"kubeconfig {source}: no context has a name")
    chosen = str(context or data.get("current-context") or names[0])
    if chosen not in names:
        raise ConfigError(f"context {chosen!r} is not in kubeconfig {source} "
                          f"(contexts: {', '.join(map(str, names))})")
    configuration = kubernetes.client.Configuration()
    # The loader logs an exec credential plugin's failure on the root logger and goes on
    # without credentials (kubernetes/config/kube_config.py, _load_from_exec_plugin, v37):
    # catch the record instead, so the run stops with one line instead of going on
    # unauthenticated after a raw "ERROR:root:exec" line.
    failures = _Collect()
    root = logging.getLogger()
    root.addHandler(failures)
    try:
        kubernetes.config.load_kube_config_from_dict(
            data, context=chosen, client_configuration=configuration, persist_config=False)
    except Exception as exc:  # noqa: BLE001 - the loader raises many types for a bad file
        raise ConfigError(f"kubeconfig {source}, context {chosen}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None
    finally:
        root.removeHandler(failures)
    plugin = _exec_command(data, chosen)
    if plugin is not None and failures.messages:
        first = failures.messages[0].removeprefix("exec: ").splitlines()[0][:200]
        raise ConfigError(f"kubeconfig {source}, context {chosen}: the exec credential plugin "
                          f"{plugin!r} failed ({first}): fix it or log in again")
    # Our retry wrapper owns retries; urllib3's own would multiply them.
    configuration.retries = False
    return Kube(kubernetes.client.ApiClient(configuration), context=chosen, source=source,
                on_retry=on_retry, expectations=expectations)


class _Collect(logging.Handler):
    """Keeps the messages of ERROR records (and stops them reaching stderr raw)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _exec_command(data: dict, context: str) -> str | None:
    """The exec credential plugin's command of ``context``'s user, if it has one."""
    ctx = next((c.get("context") or {} for c in data.get("contexts") or []
                if isinstance(c, dict) and c.get("name") == context), {})
    user = next((u.get("user") or {} for u in data.get("users") or []
                 if isinstance(u, dict) and u.get("name") == ctx.get("user")), {})
    plugin = user.get("exec") if isinstance(user, dict) else None
    return str(plugin.get("command") or "?") if isinstance(plugin, dict) else None


# Cleanup of earlier runs ---------------------------------------------------------------
class Sweep(NamedTuple):
    """What ``cleanup`` did: "Kind name" deleted, still present, and live runs left alone."""

    deleted: list[str]
    left: list[str]
    alive: dict[str, float]  # run id → seconds since its newest heartbeat


def cleanup(kube: Kube, run_id: str | None = None, *, force: bool = False,
            timeout: float = 300.0, log: Callable[[str], None] = lambda line: None) -> Sweep:
    """Delete namespaces and cluster-scoped objects labelled ``aicp.dev/verify-run``.

    Without ``run_id``, a run whose namespaces carry a heartbeat younger than
    ALIVE_SECONDS is still going: its objects are left alone (``alive``) unless ``force``.
    Naming the run with ``run_id`` is the user's own decision, so no liveness check.
    """
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    found = kube.request("GET", "/api/v1/namespaces",
                         query={"labelSelector": selector}).get("items", [])
    alive = {} if run_id or force else _alive(found)
    deleted: list[str] = []
    for base, resource in _cluster_scoped(kube):
        items = kube.request("GET", f"{base}/{resource['name']}",
                             query={"labelSelector": selector}).get("items", [])
        for item in items:
            name = item["metadata"]["name"]
            if _run_of(item) in alive:
                continue
            try:
                kube.request("DELETE", f"{base}/{resource['name']}/{name}",
                             query={"propagationPolicy": "Background"})
            except ApiException as exc:
                if exc.status != 404:
                    raise
            deleted.append(f"{resource['kind']} {name}")
            log(f"deleted {resource['kind']} {name}")
    namespaces = [n["metadata"]["name"] for n in found if _run_of(n) not in alive]
    for name in namespaces:
        kube.delete(CreatedObject("Namespace", name))
        deleted.append(f"Namespace {name}")
        log(f"deleting Namespace {name}")
    left = kube.wait_namespaces_gone(namespaces, timeout) if namespaces else []
    return Sweep(deleted, [f"Namespace {n}" for n in left], alive)


def _run_of(obj: dict) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL, ""))


def _alive(namespaces: list[dict]) -> dict[str, float]:
    """Run id → age of its newest heartbeat, for runs whose heartbeat is fresh."""
    now = datetime.now(UTC)
    ages: dict[str, float] = {}
    for ns in namespaces:
        stamp = ((ns.get("metadata") or {}).get("annotations") or {}).get(HEARTBEAT)
        try:
            beat = datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue  # no heartbeat: a run from before heartbeats, or not ours to judge
        age = max(0.0, (now - beat).total_seconds())
        run = _run_of(ns)
        if age < ALIVE_SECONDS and (run not in ages or age < ages[run]):
            ages[run] = age
    return ages


def _cluster_scoped(kube: Kube) -> list[tuple[str, dict]]:
    """Every listable, deletable cluster-scoped resource except namespaces and nodes."""
    found = []
    versions = ["v1"] + [g["preferredVersion"]["groupVersion"]
                         for g in kube.request("GET", "/apis").get("groups", [])
                         if g.get("preferredVersion")]
    for api_version in versions:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        for res in kube.resources(api_version):
            verbs = set(res.get("verbs", []))
            if (res.get("namespaced") or "/" in res.get("name", "")
                    or not {"list", "delete"} <= verbs
                    or res.get("kind") in ("Namespace", "Node")):
                continue
            found.append((base, res))
    return found
