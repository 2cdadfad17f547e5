"""``KubeAPI``: the emulated cluster (store, discovery, controllers) and its HTTP server."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml

from . import errors
from .clock import Clock
from .controllers.base import Controller, Dispatcher
from .discovery import Discovery, Resource
from .faults import Faults, RequestLog
from .json_tree import clone
from .patch import MERGE_PATCH
from .selectors import field_selector, label_selector
from .server import Server
from .store import Event, Store, now
from .validation import ObjectValidator

# (method, path, query, body) -> (status, headers, body)
ProxyHandler = Callable[[str, str, dict, bytes], tuple[int, dict, bytes | str]]


class KubeAPI:
    """An emulated Kubernetes API server for one minor; start it, then talk HTTP to it."""

    def __init__(self, minor: str = "1.35", *, alpha: bool = False,
                 user: str = "kubernetes-admin", history: int = 20_000,
                 clock: Clock | None = None):
        self.minor = minor
        # What resyncs, timers, pods' trailing sleeps, watch timeouts and scrape intervals
        # measure (tests/kubeapi/clock.py): a test advances it rather than sleeping.
        self.clock = clock or Clock()
        self.user = user
        self.discovery = Discovery(minor, alpha)
        self.validator = ObjectValidator(minor)
        self.store = Store(self.discovery, self.validator, history)
        self.faults = Faults()
        self.requests = RequestLog()
        self.server_errors: list[str] = []
        self.logs: dict[tuple[str, str, str], str] = {}
        self.bookmark_interval = 1.0
        self._proxies: dict[tuple[str, str, str, str | None], ProxyHandler] = {}
        # API group -> handler of an aggregated API server (an APIService's backend).
        self.aggregated: dict[str, ProxyHandler] = {}
        self.controllers = Dispatcher(self)
        self.store.listeners.append(self.controllers.notify)
        self.clock.on_change(self._clock_changed)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
                   for n in ("default", "kube-system", "kube-public", "kube-node-lease")])

    # Lifecycle --------------------------------------------------------------------------
    def start(self, port: int = 0, host: str = "127.0.0.1") -> KubeAPI:
        self._server = Server((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="kubeapi-http", daemon=True)
        self._thread.start()
        self.controllers.start()
        return self

    def stop(self) -> None:
        self.controllers.stop()
        if self._server is not None:
            self._server.stopping = True
            with self.store.lock:
                self.store.changed.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeAPI:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configuration(self) -> kubernetes.client.Configuration:
        config = kubernetes.client.Configuration(host=self.url)
        config.api_key = {"BearerToken": "emulator"}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        return config

    def client(self) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(self.configuration())

    def write_kubeconfig(self, path: str | Path, context: str = "aicp-emulator") -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": self.user, "user": {"token": "emulator"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": self.user}}],
        }))
        return path

    def version_info(self) -> dict:
        major, minor = self.minor.split(".")
        return {"major": major, "minor": minor, "emulationMajor": major,
                "emulationMinor": minor, "minCompatibilityMajor": major,
                "minCompatibilityMinor": str(int(minor) - 1),
                "gitVersion": f"v{self.minor}.0", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"}

    # Objects, for tests, scenarios and controllers (no HTTP) -----------------------------
    def resolve(self, ref: str) -> Resource:
        return self.discovery.resolve(ref)

    def _res(self, obj: dict) -> Resource:
        res = self.discovery.for_object(obj)
        if res is None:
            raise errors.no_such_resource()
        return res

    def seed(self, objects: Iterable[dict], *, validate: bool = False) -> int:
        """Insert objects as given (status kept), quickly; validation is optional."""
        return self.store.seed(objects, validate=validate)

    def create(self, obj: dict, *, validate: bool = True) -> dict:
        obj_ns = (obj.get("metadata") or {}).get("namespace")
        return clone(self.store.create(self._res(obj), obj, obj_ns, validate=validate))

    def get(self, ref: str, name: str, namespace: str | None = None) -> dict:
        return clone(self.store.get(self.resolve(ref), namespace, name))

    def find(self, ref: str, name: str, namespace: str | None = None) -> dict | None:
        stored = self.store.lookup(self.resolve(ref), namespace, name)
        return clone(stored.obj) if stored else None

    def list(self, ref: str, namespace: str | None = None, *, labels: str | None = None,
             fields: str | None = None, where: Callable[[dict], Any] | None = None
             ) -> list[dict]:
        return [clone(obj) for obj in self.view(ref, namespace, labels=labels, fields=fields,
                                                where=where)]

    def view(self, ref: str, namespace: str | None = None, *, labels: str | None = None,
             fields: str | None = None, where: Callable[[dict], Any] | None = None
             ) -> list[dict]:
        """As ``list``, but the stored objects themselves: for controllers that only read.

        Never modify what it returns (write through ``mutate``/``update``). The store
        replaces an object on every write, so a view stays a consistent snapshot; skipping
        the copies is what lets a controller scan 100,000 pods on each sync. ``where``
        (a module-level predicate on the object) keeps only what it holds for, from a set
        the store keeps current (``Store.subset``): a pass costs what it acts on, not the
        whole cluster.
        """
        res = self.resolve(ref)
        lsel, fsel = label_selector(labels), field_selector(fields, res.ref)
        match = (lambda o: (lsel is None or lsel(o)) and (fsel is None or fsel(o))) \
            if lsel or fsel else None
        on_node = ON_NODE.fullmatch(fields or "") if res.key == ("", "pods") else None
        if where is not None or on_node:
            # From the store's own sets: a predicate's, or its index of pods by node (how
            # the kubelet and the device plugin read the pods of one node).
            found = self.store.subset(res, where) if where is not None else \
                self.store.indexed(res, _node_name, on_node.group(1) if on_node else "")
            ns = namespace if res.namespaced else None
            return [s.obj for s in found
                    if (not ns or s.obj["metadata"].get("namespace") == ns)
                    and (match is None or match(s.obj))]
        items, *_ = self.store.list(res, namespace, match)
        return [s.obj for s in items]

    def update(self, obj: dict, *, status: bool = False) -> dict:
        meta = obj["metadata"]
        return clone(self.store.update(self._res(obj), obj, meta.get("namespace"),
                                               meta["name"],
                                               subresource="status" if status else None))

    def patch(self, ref: str, name: str, patch: Any, namespace: str | None = None, *,
              patch_type: str = MERGE_PATCH, status: bool = False) -> dict:
        obj, _ = self.store.patch(self.resolve(ref), namespace, name, patch_type, patch,
                                  subresource="status" if status else None)
        return clone(obj)

    def mutate(self, ref: str, name: str, fn: Callable[[dict], Any],
               namespace: str | None = None, *, status: bool = False) -> dict | None:
        """Read-modify-write atomically; ``fn`` edits a copy. None when the object is gone."""
        res = self.resolve(ref)
        with self.store.lock:
            stored = self.store.lookup(res, namespace, name)
            if stored is None:
                return None
            obj = clone(stored.obj)
            fn(obj)
            return clone(self.store.update(res, obj, namespace, name,
                                                   subresource="status" if status else None))

    def delete(self, ref: str, name: str, namespace: str | None = None, *,
               propagation: str | None = "Background") -> dict | None:
        try:
            return clone(self.store.delete(self.resolve(ref), namespace, name,
                                                   propagation=propagation))
        except errors.ApiError as e:
            if e.code == 404:
                return None
            raise

    # Controllers ------------------------------------------------------------------------
    def add(self, *controllers: Controller) -> KubeAPI:
        for c in controllers:
            self.controllers.add(c)
        return self

    def on(self, ref: str, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` on the controller thread for each write to ``ref``."""
        self.controllers.react(self.resolve(ref).ref, fn)

    def admit(self, fn: Callable[[Resource, dict, dict | None], None]) -> None:
        """A mutating admission hook: ``fn(resource, obj, old)`` may edit ``obj`` on create."""
        self.store.admission.append(fn)

    def settle(self, timeout: float = 60.0) -> None:
        """Return once no write is queued and no controller runs (event-driven: at once on
        an idle cluster); ``timeout`` real seconds only bound a controller that never stops."""
        self.controllers.settle(timeout)

    def resync(self) -> None:
        """Run every controller's sync once, as its resync period would, and settle: for a
        test that changed what a controller reads without a write (a kubelet hook, a metric)."""
        self.controllers.resync()
        self.settle()

    def _clock_changed(self) -> None:
        self.controllers.wake()
        with self.store.lock:
            self.store.changed.notify_all()  # watches re-read their timeout and bookmarks

    # Subresources -----------------------------------------------------------------------
    def bind(self, namespace: str, name: str, node: str) -> None:
        """What ``pods/binding`` does: set nodeName and mark the pod scheduled."""
        res = self.resolve("pods")
        with self.store.lock:
            pod = clone(self.store.get(res, namespace, name))
            if pod["spec"].get("nodeName"):
                raise errors.conflict("", "pods", name,
                                      f"pod {name} is already assigned to node "
                                      f'"{pod["spec"]["nodeName"]}"')
            pod["spec"]["nodeName"] = node
            conds = [c for c in pod.setdefault("status", {}).get("conditions") or []
                     if c["type"] != "PodScheduled"]
            pod["status"]["conditions"] = conds + [{
                "type": "PodScheduled", "status": "True", "lastTransitionTime": now(),
                "lastProbeTime": None}]
            self.store._write(res, self.store.get(res, namespace, name), pod, "all", True)

    def pod_log(self, namespace: str, name: str, query: dict) -> str:
        pod = self.store.get(self.resolve("pods"), namespace, name)
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        container = query.get("container")
        if not container:
            if len(names) != 1:
                raise errors.bad_request(f"a container name must be specified for pod {name}, "
                                         f"choose one of: [{' '.join(names)}]")
            container = names[0]
        elif container not in names + [c["name"] for c in
                                       pod["spec"].get("initContainers") or []]:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to '
                                     "start: ContainerCreating")
        text = self.logs.get((namespace, name, container), "")
        tail = query.get("tailLines")
        if tail:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail):]) if int(tail) else ""
        return text

    def proxy(self, kind: str, name: str, handler: ProxyHandler, namespace: str = "default",
              port: str | int | None = None) -> None:
        """Serve ``services|pods/<name>[:port]/proxy/...`` with ``handler``."""
        plural = {"service": "services", "pod": "pods"}.get(kind, kind)
        self._proxies[(plural, namespace, name, str(port) if port is not None else None)] = \
            handler

    def aggregate(self, group: str, handler: ProxyHandler) -> None:
        """Serve ``/apis/<group>/...`` with ``handler``, as kube-aggregator would."""
        self.aggregated[group] = handler

    def proxy_request(self, plural: str, namespace: str, target: str, method: str, path: str,
                      query: dict, body: bytes) -> tuple[int, dict, bytes | str]:
        parts = target.split(":")
        if parts[0] in ("http", "https") and len(parts) > 1:
            parts = parts[1:]
        name, port = parts[0], (parts[1] if len(parts) > 1 and parts[1] else None)
        handler = self._proxies.get((plural, namespace, name, port)) or self._proxies.get(
            (plural, namespace, name, None))
        self.store.get(self.resolve(plural), namespace, name)  # 404 when it does not exist
        if handler is None and plural in ("services", "pods"):
            from .controllers import httpd  # the pods' own servers answer what they serve
            answer = httpd.proxied(self, plural, namespace, name, port, method, path, query)
            if answer is not None:
                return answer
        if handler is None:
            raise errors.internal(f'no endpoints available for service "{name}"'
                                  if plural == "services" else
                                  f"error trying to reach service: dial tcp {name}:{port}: "
                                  "connect: connection refused", 503)
        return handler(method, path, query, body)

    def scale_of(self, res: Resource, namespace: str | None, name: str) -> dict:
        obj = self.store.get(res, namespace, name)
        meta = obj["metadata"]
        spec_path, status_path = res.scale_paths or (".spec.replicas", ".status.replicas")
        selector = (obj.get("spec") or {}).get("selector") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": _dig(obj, spec_path) or 0},
                "status": {"replicas": _dig(obj, status_path) or 0,
                           "selector": ",".join(f"{k}={v}" for k, v in
                                                (selector.get("matchLabels") or {}).items())}}

    def set_replicas(self, res: Resource, namespace: str | None, name: str,
                     replicas: int) -> None:
        spec_path = (res.scale_paths or (".spec.replicas", ""))[0]
        parts = spec_path.strip(".").split(".")
        with self.store.lock:
            obj = clone(self.store.get(res, namespace, name))
            cur = obj
            for part in parts[:-1]:
                cur = cur.setdefault(part, {})
            cur[parts[-1]] = replicas
            self.store.update(res, obj, namespace, name)

    def review(self, res: Resource, body: dict) -> dict:
        """Answer create-only review kinds (access reviews, token reviews) without storing."""
        out = clone(body)
        out.setdefault("apiVersion", res.api_version)
        out.setdefault("kind", res.kind)
        out.setdefault("metadata", {})
        spec = out.get("spec") or {}
        if res.kind in ("SelfSubjectAccessReview", "SubjectAccessReview",
                        "LocalSubjectAccessReview"):
            attrs = spec.get("resourceAttributes")
            allowed = True
            if attrs:
                group = attrs.get("group", "")
                ref = f"{attrs.get('resource', '')}.{group}" if group else attrs.get(
                    "resource", "")
                allowed = not self.faults.denies(attrs.get("verb", ""), ref,
                                                 attrs.get("namespace") or None)
            out["status"] = {"allowed": allowed}
            if not allowed:
                out["status"].update(denied=True, reason="forbidden by the test")
        elif res.kind == "SelfSubjectRulesReview":
            out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"],
                                                "resources": ["*"]}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                             "incomplete": False}
        elif res.kind == "SelfSubjectReview":
            out["status"] = {"userInfo": {"username": self.user,
                                          "groups": ["system:masters", "system:authenticated"]}}
        else:
            out.setdefault("status", {})
        return out


ON_NODE = re.compile(r"spec\.nodeName=([^=,]*)")


def _node_name(pod: dict) -> str:
    return pod["spec"].get("nodeName") or ""


def _dig(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur
