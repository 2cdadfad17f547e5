"""HTTP front of the emulator: routing, verbs, subresources, watch streams and faults.

Stdlib ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive and ``TCP_NODELAY`` (without it
Nagle plus delayed ACK cost 44 ms per request, headers and body being two writes).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from . import errors, openapi, tables, webhooks
from .discovery import Resource, version_priority
from .faults import Request
from .patch import APPLY_PATCH
from .selectors import field_selector, label_selector
from .store import dumps, now

if TYPE_CHECKING:
    from .emulator import KubeAPI

_BODY_VERBS = {"create", "update", "patch"}
# The request bodies this server decodes. A real kube-apiserver also decodes protobuf
# (application/vnd.kubernetes.protobuf) for built-in kinds; without that codec the answer is
# what the apiserver's negotiation gives for any type it has no decoder for: 415 with
# NewUnsupportedMediaTypeError's message (k8s.io/apiserver pkg/endpoints/handlers/
# negotiation/errors.go). client-go's typed clients (kubectl auth can-i) send protobuf.
_DECODABLE = ("", "application/json", "application/yaml", "application/apply-patch+yaml",
              "application/merge-patch+json", "application/strategic-merge-patch+json",
              "application/json-patch+json")
_APISERVICES = ("apiregistration.k8s.io", "apiservices")


@dataclass
class Route:
    verb: str
    res: Resource | None = None
    namespace: str | None = None
    name: str | None = None
    sub: str | None = None
    subpath: str = ""
    document: dict | None = None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], kube: KubeAPI):
        self.kube = kube
        self.stopping = False
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        # Dropped connections (a fault we inject) end in socket errors; not worth a traceback.
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:  # the request log records what matters
        pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = (
        lambda self: self._handle())

    # Plumbing ---------------------------------------------------------------------------
    def _handle(self) -> None:
        kube = self.server.kube
        if self.server.stopping:
            # A stopped server answers nothing, also on kept-alive connections: a client
            # sees the cluster go away as it would at a VPN drop or control-plane restart.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        start = time.monotonic()
        webhooks.reset()
        url = urlsplit(self.path)
        path, query = unquote(url.path), dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self._sent = 0
        self._status = 0
        self._logged = False
        self._start, self._path, self._query = start, path, query
        route = self._route_seen = Route("")
        try:
            segs = path.strip("/").split("/")
            if segs[0] == "apis" and len(segs) > 2 and self._unavailable(segs[1], segs[2]):
                # kube-aggregator's proxy for an APIService whose Available condition is not
                # True (kubernetes/kubernetes staging/src/k8s.io/kube-aggregator/pkg/
                # apiserver/handler_proxy.go: proxyError(w, req, "service unavailable",
                # http.StatusServiceUnavailable), an http.Error: text/plain); kubectl shows
                # it as "the server is currently unable to handle the request".
                return self._send(503, b"service unavailable\n", "text/plain; charset=utf-8")
            if segs[0] == "apis" and len(segs) > 1 and segs[1] in kube.aggregated:
                code, headers, body = kube.aggregated[segs[1]](self.command, path, query, raw)
                return self._send(code, body if isinstance(body, bytes) else str(body).encode(),
                                  headers.get("Content-Type", "application/json"))
            route = self._route_seen = self._route(path, query)
            ref = route.res.ref if route.res else ""
            fault = kube.faults.fire(self.command, route.verb, path, ref, route.namespace)
            if fault is not None:
                if fault.action == "drop":
                    # Logged before the connection goes, as answers are before their last
                    # bytes: a client that saw the drop sees it in the log.
                    self._status = 0
                    self._log()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.action == "slow":
                    time.sleep(fault.seconds)
                elif fault.action == "forbid":
                    res = route.res
                    raise errors.forbidden(kube.user, route.verb, res.group if res else "",
                                           res.plural if res else path, route.namespace,
                                           route.name, route.sub)
                elif fault.code == 429:
                    raise errors.too_many_requests(fault.retry_after)
                else:
                    raise errors.internal(code=fault.code)
            if route.res is not None and route.verb in ("create", "update", "patch", "delete"):
                webhooks.install(kube)  # kube-apiserver's admission webhooks (webhooks.py)
                target = (route.res.key, route.name if route.verb != "create" else None)
                with webhooks.over_http(kube.user, target):
                    self._dispatch(route, query, raw)
            else:
                self._dispatch(route, query, raw)
        except errors.ApiError as e:
            self._send_json(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the emulator must surface, not hang the client
            kube.server_errors.append(f"{self.command} {self.path}: {e!r}")
            self._send_json(500, errors.internal(f"emulator error: {e!r}").status())
        finally:
            self._log()

    def _log(self) -> None:
        # Logged before the last bytes go out, so a client that got its answer sees it logged.
        if self._logged:
            return
        self._logged = True
        route = self._route_seen
        self.server.kube.requests.add(Request(
            self.command, self._path, self._query, self._status, self._sent,
            time.monotonic() - self._start, route.verb, route.res.ref if route.res else ""))

    def _send(self, code: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for warning in webhooks.warnings():  # RFC 7234 warn-code 299, as the apiserver sends
            self.send_header("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._sent += len(body)
        self._status = code
        self._log()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, obj if isinstance(obj, bytes) else dumps(obj), headers=headers)

    def _body(self, raw: bytes) -> Any:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if raw and content_type not in _DECODABLE and not content_type.endswith("yaml"):
            if self.command == "PATCH":
                raise errors.unsupported_media_type(content_type)
            raise errors.ApiError(415, "UnsupportedMediaType",
                                  "the body of the request was in an unknown format - "
                                  "accepted media types include: application/json, "
                                  "application/yaml")
        try:
            if content_type == APPLY_PATCH or content_type.endswith("yaml"):
                return yaml.load(raw or b"{}", Loader=getattr(yaml, "CSafeLoader",
                                                               yaml.SafeLoader))
            return json.loads(raw or b"{}")
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding the request body: {e}") from None

    # Routing ----------------------------------------------------------------------------
    def _route(self, path: str, query: dict) -> Route:
        kube = self.server.kube
        disc = kube.discovery
        segs = [s for s in path.split("/") if s]
        if segs in (["version"], ["healthz"], ["readyz"], ["livez"]):
            return Route("get", document=kube.version_info() if segs == ["version"] else "ok")
        if segs[:1] == ["openapi"]:
            return Route("get", document=self._openapi(segs[1:]))
        if segs[:1] == ["api"]:
            if len(segs) == 1:
                return Route("get", document=disc.api_versions(self.server_address_text()))
            if segs[1] != "v1":
                raise errors.no_such_resource()
            group, version, rest = "", "v1", segs[2:]
        elif segs[:1] == ["apis"]:
            if len(segs) == 1:
                return Route("get", document=self._with_apiservices(disc.api_group_list()))
            if len(segs) == 2:
                doc = disc.api_group(segs[1]) or self._apiservice_group(segs[1])
                if doc is None:
                    raise errors.no_such_resource()
                return Route("get", document={"kind": "APIGroup", "apiVersion": "v1", **doc})
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise errors.no_such_resource()
        if not rest:
            doc = disc.resource_list(group, version)
            if doc is None:
                raise errors.no_such_resource()
            return Route("get", document=doc)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = disc.by_path.get((group, version, rest[2]))
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        res = disc.by_path.get((group, version, rest[0]))
        if res is None or (res.namespaced and namespace is None and len(rest) > 1):
            raise errors.no_such_resource()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in res.subresources:
            raise errors.no_such_resource()
        method = self.command
        if name is None:
            verb = {"GET": "watch" if query.get("watch") in ("true", "1") else "list",
                    "POST": "create", "DELETE": "deletecollection"}.get(method)
        elif sub in ("proxy",):
            verb = method.lower()
        elif sub in ("binding", "eviction"):
            verb = "create" if method == "POST" else None
        else:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch",
                    "DELETE": None if sub else "delete"}.get(method)
        if verb is None or (verb not in res.verbs and sub is None and verb != "watch"):
            raise errors.method_not_allowed()
        return Route(verb, res, namespace, name, sub, "/".join(rest[3:]))

    def _openapi(self, segs: list[str]) -> dict:
        disc = self.server.kube.discovery
        if segs == ["v2"]:
            accept = self.headers.get("Accept") or ""
            if accept and not any(m.split(";")[0].strip() in ("application/json", "*/*")
                                  for m in accept.split(",")):
                raise errors.ApiError(406, "NotAcceptable",
                                      f"only the following media types are accepted: "
                                      f"application/json (not {accept})")
            return openapi.document_v2(disc)
        if segs == ["v3"]:
            return openapi.index(disc)
        doc = openapi.document_v3(disc, "/".join(segs[1:])) if segs[:1] == ["v3"] else None
        if doc is None:
            raise errors.no_such_resource()
        return doc

    # APIServices (kube-aggregator) ------------------------------------------------------
    def _apiservices(self) -> list[dict]:
        kube = self.server.kube
        res = kube.discovery.by_ref.get(".".join(reversed(_APISERVICES)))
        if res is None:
            return []
        items, *_ = kube.store.list(res)
        return [s.obj for s in items if (s.obj.get("spec") or {}).get("service")]

    def _unavailable(self, group: str, version: str) -> bool:
        """An APIService served by another server whose Available condition is not True;
        local APIServices (no spec.service) are served here whatever they say."""
        kube = self.server.kube
        res = kube.discovery.by_ref.get(".".join(reversed(_APISERVICES)))
        stored = kube.store.lookup(res, None, f"{version}.{group}") if res else None
        if stored is None or not (stored.obj.get("spec") or {}).get("service"):
            return False
        return not any(c.get("type") == "Available" and c.get("status") == "True"
                       for c in (stored.obj.get("status") or {}).get("conditions") or [])

    def _apiservice_group(self, group: str) -> dict | None:
        versions = sorted({(s.get("spec") or {}).get("version", "") for s in self._apiservices()
                           if (s.get("spec") or {}).get("group") == group},
                          key=version_priority, reverse=True)
        if not versions:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _with_apiservices(self, doc: dict) -> dict:
        """kube-aggregator lists every APIService's group in /apis, available or not
        (kube-aggregator pkg/apiserver/handler_apis.go)."""
        names = {g["name"] for g in doc["groups"]}
        extra = sorted({(s.get("spec") or {}).get("group", "") for s in self._apiservices()}
                       - names - {""})
        return {**doc, "groups": doc["groups"] + [self._apiservice_group(g) for g in extra]}

    def server_address_text(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    # Verbs ------------------------------------------------------------------------------
    def _dispatch(self, route: Route, query: dict, raw: bytes) -> None:
        kube = self.server.kube
        if route.document is not None:
            if isinstance(route.document, str):
                self._send(200, route.document.encode(), "text/plain")
            else:
                self._send_json(200, route.document)
            return
        res, ns, name, sub = route.res, route.namespace, route.name, route.sub
        store = kube.store
        body = self._body(raw) if route.verb in _BODY_VERBS and sub != "proxy" else None
        dry_run = bool(query.get("dryRun"))
        validate = query.get("fieldValidation", "Strict") != "Ignore"
        if sub == "proxy":
            return self._proxy(route, query, raw)
        if sub == "log":
            return self._send(200, kube.pod_log(ns, name, query).encode(), "text/plain")
        if sub == "scale":
            return self._scale(route, body)
        if sub == "binding":
            kube.bind(ns, name, (body.get("target") or {}).get("name", ""))
            return self._send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                         "status": "Success", "code": 201})
        if sub == "eviction":
            store.delete(res, ns, name)
            return self._send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                         "status": "Success", "code": 201})
        if route.verb in ("list", "watch", "deletecollection"):
            match = _matcher(query, res)
            if route.verb == "watch":
                return self._watch(res, ns, match, query)
            if route.verb == "deletecollection":
                store.delete_collection(res, ns, match)
                return self._send_json(200, {"kind": "Status", "apiVersion": "v1",
                                             "metadata": {}, "status": "Success"})
            return self._list(res, ns, match, query)
        if route.verb == "create":
            if res.verbs == ["create"]:
                return self._send_json(201, kube.review(res, body))
            obj = store.create(res, body, ns, validate=validate, dry_run=dry_run)
            return self._send_obj(201, res, obj)
        if route.verb == "get":
            stored = store.lookup(res, ns, name)
            if stored is None:
                raise errors.not_found(res.group, res.plural, name)
            if tables.wanted(self.headers.get("Accept", "")):
                return self._send_table(res, [stored.obj], {
                    "resourceVersion": stored.obj["metadata"].get("resourceVersion", "")},
                    query)
            return self._send_obj(200, res, stored.obj, stored.raw)
        if route.verb == "update":
            obj = store.update(res, body, ns, name, subresource=sub, validate=validate,
                               dry_run=dry_run)
            return self._send_obj(200, res, obj)
        if route.verb == "patch":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            obj, created = store.patch(res, ns, name, content_type, body, subresource=sub,
                                       manager=query.get("fieldManager"), validate=validate,
                                       dry_run=dry_run)
            return self._send_obj(201 if created else 200, res, obj)
        if route.verb == "delete":
            options = self._body(raw) if raw else {}
            obj = store.delete(res, ns, name, dry_run=dry_run,
                               propagation=query.get("propagationPolicy")
                               or options.get("propagationPolicy"),
                               preconditions=options.get("preconditions"))
            if res.delete_returns_status and res.crd is None:
                return self._send_json(200, {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": res.group, "kind": res.plural,
                                "uid": obj["metadata"]["uid"]}})
            return self._send_obj(200, res, obj)
        raise errors.method_not_allowed()

    def _send_obj(self, code: int, res: Resource, obj: dict, raw: bytes | None = None) -> None:
        if obj.get("apiVersion") != res.api_version:  # served through another version
            obj, raw = {**obj, "apiVersion": res.api_version}, None
        self._send_json(code, raw or dumps(obj))

    def _list(self, res: Resource, ns: str | None, match, query: dict) -> None:
        limit = int(query.get("limit") or 0)
        items, rv, token, remaining = self.server.kube.store.list(
            res, ns, match, limit, query.get("continue") or None)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        if tables.wanted(self.headers.get("Accept", "")):
            return self._send_table(res, [s.obj for s in items], meta, query)
        head = dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta})
        if items and items[0].obj.get("apiVersion") != res.api_version:
            parts = [dumps({**s.obj, "apiVersion": res.api_version}) for s in items]
        else:
            parts = [s.raw for s in items]
        self._send_json(200, head[:-1] + b',"items":[' + b",".join(parts) + b"]}")

    def _send_table(self, res: Resource, objs: list[dict], meta: dict, query: dict) -> None:
        kube = self.server.kube
        version = tables.wanted(self.headers.get("Accept", "")) or "v1"
        if objs and objs[0].get("apiVersion") != res.api_version:
            objs = [{**o, "apiVersion": res.api_version} for o in objs]
        doc = tables.table(res, objs, meta, minor=kube.discovery.minor,
                           crd=kube.discovery.crds.get(res.crd) if res.crd else None,
                           include=query.get("includeObject"), version=version)
        self._send(200, dumps(doc), f"application/json;as=Table;v={version};g=meta.k8s.io")

    def _scale(self, route: Route, body: Any) -> None:
        kube = self.server.kube
        if route.verb in ("update", "patch"):
            if route.verb == "patch":
                from .patch import merge_patch
                body = merge_patch(kube.scale_of(route.res, route.namespace, route.name), body)
            kube.set_replicas(route.res, route.namespace, route.name,
                              int((body.get("spec") or {}).get("replicas") or 0))
        self._send_json(200, kube.scale_of(route.res, route.namespace, route.name))

    def _proxy(self, route: Route, query: dict, raw: bytes) -> None:
        code, headers, body = self.server.kube.proxy_request(
            route.res.plural, route.namespace, route.name, self.command,
            "/" + route.subpath, query, raw)
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/json")
        self._send(code, body if isinstance(body, bytes) else str(body).encode(),
                   content_type, headers)

    # Watch ------------------------------------------------------------------------------
    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        self._sent += len(data)

    def _event(self, type_: str, obj: dict, res: Resource) -> None:
        if obj.get("apiVersion") != res.api_version and type_ != "ERROR":
            obj = {**obj, "apiVersion": res.api_version}
        self._chunk(dumps({"type": type_, "object": obj}) + b"\n")

    def _watch(self, res: Resource, ns: str | None, match, query: dict) -> None:
        kube = self.server.kube
        store = kube.store
        rv_param = query.get("resourceVersion") or "0"
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_wanted = query.get("sendInitialEvents") == "true" or rv_param == "0"

        def visible(obj: dict | None) -> bool:
            if obj is None:
                return False
            if ns and res.namespaced and obj["metadata"].get("namespace") != ns:
                return False
            return match is None or match(obj)

        with store.lock:
            if initial_wanted:
                initial, _, _, _ = store.list(res, ns, match)
                cursor = store.rv
            else:
                try:
                    cursor = int(rv_param)
                except ValueError:
                    raise errors.bad_request(f"invalid resourceVersion {rv_param!r}") from None
                initial = []
                expired = cursor < store.compacted
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = 200
        try:
            if not initial_wanted and expired:
                self._event("ERROR", errors.expired(cursor, store.compacted).status(), res)
                return
            for stored in initial:
                self._event("ADDED", stored.obj, res)
            if bookmarks and query.get("sendInitialEvents") == "true":
                self._bookmark(res, cursor, initial_end=True)
            # timeoutSeconds and bookmarks run on the emulator's clock; a write, a
            # clock.advance or stop() wakes the wait (the cap only bounds a change of scale).
            clock = kube.clock
            deadline = clock.now() + timeout
            last_bookmark = clock.now()
            while not self.server.stopping and clock.now() < deadline:
                with store.lock:
                    events = store.events_since(cursor)
                    if not events:
                        due = min(deadline, last_bookmark + kube.bookmark_interval) \
                            if bookmarks else deadline
                        store.changed.wait(clock.real(due - clock.now(), cap=1.0))
                        events = store.events_since(cursor)
                    if cursor < store.compacted:
                        self._event("ERROR", errors.expired(cursor, store.compacted).status(),
                                    res)
                        return
                for e in events:
                    cursor = e.rv
                    if e.resource.key != res.key:
                        continue
                    now_in, was_in = visible(e.obj), visible(e.old)
                    if e.type == "MODIFIED" and now_in != was_in:
                        self._event("ADDED" if now_in else "DELETED", e.obj, res)
                    elif now_in or (e.type == "DELETED" and was_in):
                        self._event(e.type, e.obj, res)
                if bookmarks and clock.now() - last_bookmark >= kube.bookmark_interval:
                    self._bookmark(res, cursor)
                    last_bookmark = clock.now()
        finally:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True

    def _bookmark(self, res: Resource, rv: int, initial_end: bool = False) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._event("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                 "metadata": meta}, res)


def _matcher(query: dict, res: Resource):
    labels = label_selector(query.get("labelSelector"))
    fields = field_selector(query.get("fieldSelector"), res.ref)
    if labels and fields:
        return lambda o: labels(o) and fields(o)
    return labels or fields


__all__ = ["Server", "now"]
