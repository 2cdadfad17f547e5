"""Transport: the client from a kubeconfig, JSON requests, and ``Kube``, the one object a
run talks to the cluster through.

Only the ``kubernetes`` client is used (v37, pydantic models). ``Kube`` is what the runner
and every probe get (``ctx.kube``); its requests are retried (``retry``), lists are paged
(``paging``), a 403 names the missing permission (``rbac``), a probe's needs are read from
the cluster (``needs``) and the run's namespaces carry a heartbeat (``sweep``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes.client
import kubernetes.config
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from ..probe import ProbeError, one_line
from ..result import CreatedObject
from . import needs, paging, sweep
from .rbac import Forbidden
from .retry import CONNECTION_ERRORS, Lost, RetryingApi, connection_reason, with_retry

Api = TypeVar("Api")


class ConfigError(Exception):
    """A kubeconfig or cluster problem, one line for a person (exit code 2)."""


class NotJson(ProbeError):
    """The server answered something other than JSON: a proxy's or VPN's login page."""


def default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return Path.home() / ".kube" / "config"


class Kube:
    """One cluster: the API client, and everything the runner and probes ask of it.

    Probes read it as ``ctx.kube``: ``request`` and ``items`` for JSON, ``resources`` for
    discovery, ``api(kubernetes.client.CoreV1Api)`` for a generated API class; the runner
    creates and deletes the run's namespaces, beats their heartbeat and asks ``unmet``.
    """

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

    def api(self, cls: Callable[[kubernetes.client.ApiClient], Api]) -> Api:
        """``ctx.kube.api(kubernetes.client.CoreV1Api)``: that API with retries and 403s
        (each method of the class, retried as ``retry.RetryingApi`` does)."""
        # The proxy answers every method of ``cls``, so callers see ``cls``'s signatures.
        return cast(Api, RetryingApi(cls(self.client), self.on_retry, self))

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
            reason = connection_reason(exc)
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

    def items(self, path: str, *, query: dict | None = None, page: int = paging.PAGE
              ) -> Iterator[dict]:
        """Every item of the list at ``path``, a page at a time (``paging.items``)."""
        return paging.items(self.request, path, query=query, page=page)

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
            proxy = self.client.configuration.proxy
            if proxy and _at_the_proxy(exc):
                # The cluster was never asked: the kubeconfig's proxy-url did not answer.
                raise ConfigError(f"cannot reach the proxy {proxy} (the kubeconfig's "
                                  f"proxy-url for cluster {self.server}): "
                                  f"{connection_reason(exc)}; check proxy-url and that the "
                                  "proxy runs") from None
            raise ConfigError(f"cannot reach cluster {self.server} "
                              f"({connection_reason(exc)}): check --kubeconfig/--context "
                              "and the network") from None

    def _get_version(self, timeout: float) -> dict:
        url_method, url, headers, _, _ = self.client.param_serialize(
            "GET", "/version", header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self.client.call_api(url_method, url, headers, _request_timeout=timeout)
        data = response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response, body=data.decode("utf-8", "replace"))
        return _json(data, response, "GET /version", self.server)

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

    # The run's namespaces ---------------------------------------------------------------
    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels,
                             "annotations": sweep.namespace_annotations()}}
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
        """Tell ``aicp verify cleanup`` these namespaces belong to a live run (``sweep``)."""
        sweep.heartbeat(self, names)

    def namespace_state(self, name: str) -> str:
        """"active", "terminating" or "gone" (404)."""
        return sweep.namespace_state(self, name)

    def wait_namespaces_gone(self, names: list[str], timeout: float) -> list[str]:
        """Wait until each namespace answers 404; returns those still there at ``timeout``
        (all not seen gone, at once, when the cluster stops answering)."""
        return sweep.wait_namespaces_gone(self, names, timeout)

    # Needs ------------------------------------------------------------------------------
    def unmet(self, need: str) -> str | None:
        """Why a probe precondition does not hold here, or None when it does (``needs``);
        asked once per need and run."""
        if need not in self._needs:
            self._needs[need] = needs.unmet(self, need)
        return self._needs[need]

    def close(self) -> None:
        self.client.close()


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


def _at_the_proxy(exc: BaseException) -> bool:
    """Whether the connection failed on the way to the proxy, not at the cluster: urllib3
    raises ``ProxyError`` ("Unable to connect to proxy"), alone or inside ``MaxRetryError``
    (urllib3 2.x ``connectionpool.py`` urlopen)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.ProxyError):
            return True
        seen = getattr(seen, "reason", None) if isinstance(
            seen, urllib3.exceptions.MaxRetryError) else None
    return False


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
                     expectations=expectations, base=path.parent)


def from_dict(data: Any, context: str | None = None, *, source: str = "kubeconfig",
              on_retry: Callable[[str], None] | None = None,
              expectations: dict[str, Any] | None = None, base: Path | None = None) -> Kube:
    """Build the client from a parsed kubeconfig (a file's, or a Pulumi stack output's);
    ``base``: the folder a relative ``tokenFile`` is read from (the kubeconfig's)."""
    if not isinstance(data, dict) or not data.get("contexts"):
        raise ConfigError(f"kubeconfig {source} has no contexts")
    names = [str(c["name"]) for c in data["contexts"] if isinstance(c, dict) and c.get("name")]
    if not names:
        raise ConfigError(f"kubeconfig {source}: no context has a name")
    chosen = str(context or data.get("current-context") or names[0])
    if chosen not in names:
        raise ConfigError(f"context {chosen!r} is not in kubeconfig {source} "
                          f"(contexts: {', '.join(map(str, names))})")
    user_name, user = _user_of(data, chosen)
    where = f"kubeconfig {source}, context {chosen}" + (f", user {user_name}" if user_name
                                                       else "")
    data = _with_token(data, user_name, user, where, base)
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
        raise ConfigError(f"{where}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None
    finally:
        root.removeHandler(failures)
    plugin = _exec_command(user)
    if plugin is not None and failures.messages:
        first = failures.messages[0].removeprefix("exec: ").splitlines()[0][:200]
        raise ConfigError(f"{where}: the exec credential plugin "
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


def _user_of(data: dict, context: str) -> tuple[str, dict]:
    """The name and ``user`` mapping of ``context``'s user entry ("" and {} when none)."""
    ctx = next((c.get("context") or {} for c in data.get("contexts") or []
                if isinstance(c, dict) and c.get("name") == context), {})
    name = str(ctx.get("user") or "") if isinstance(ctx, dict) else ""
    user = next((u.get("user") or {} for u in data.get("users") or []
                 if isinstance(u, dict) and u.get("name") == name), {})
    return name, user if isinstance(user, dict) else {}


def _with_token(data: dict, user_name: str, user: dict, where: str, base: Path | None
                ) -> dict:
    """``data`` with the user's bearer token read and trimmed, or a one-line ConfigError.

    kubectl trims the whitespace around a token read from ``tokenFile``
    (kubernetes/client-go transport/token_source.go, fileTokenSource.Token:
    ``strings.TrimSpace``), so a pasted file's trailing newline is fine there. An inline
    ``token`` gets the same trim here: a YAML block scalar (``token: |``) ends in a newline
    that no HTTP header can carry (the Python client would fail at the first request with a
    traceback). What is left must fit a header: no control character, ISO-8859-1 only
    (http.client encodes header values as latin-1).
    """
    token, token_file = user.get("token"), user.get("tokenFile")
    if token is None and token_file is None:
        return data
    if token is None:
        if not isinstance(token_file, str) or not token_file:
            raise ConfigError(f"{where}: tokenFile must be a path: fix the user entry")
        path = Path(token_file).expanduser()
        path = path if path.is_absolute() or base is None else base / path
        try:
            token = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{where}: cannot read tokenFile {token_file} ({why}): "
                              "fix the path") from None
    if not isinstance(token, str):
        raise ConfigError(f"{where}: token must be a string, not a "
                          f"{type(token).__name__}: quote the token")
    token = token.strip()
    if not token:
        raise ConfigError(f"{where}: the token is empty: paste the token again")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise ConfigError(f"{where}: the token has a line break or control character inside "
                          "it, which no HTTP header can carry: paste the token again")
    if any(ord(ch) > 255 for ch in token):
        raise ConfigError(f"{where}: the token has a character outside ISO-8859-1, which no "
                          "HTTP header can carry: paste the token again")
    fixed = {k: v for k, v in user.items() if k != "tokenFile"} | {"token": token}
    users = [({**u, "user": fixed} if isinstance(u, dict) and u.get("name") == user_name
              else u) for u in data.get("users") or []]
    return {**data, "users": users}


def _exec_command(user: dict) -> str | None:
    """The exec credential plugin's command of the user entry, if it has one."""
    plugin = user.get("exec")
    return str(plugin.get("command") or "?") if isinstance(plugin, dict) else None
