"""A Gateway API implementation in the style of Istio's, and curl pods that call it.

``Gateways`` (in the reference-platform scenario; ``gateways=Gateways(...)`` replaces
it) accepts GatewayClasses of its ``controller_name``, provisions a Service
``<gateway>-istio`` (labelled ``gateway.networking.k8s.io/gateway-name``) for each of their
Gateways and marks them Accepted/Programmed with an address; it
marks HTTPRoutes' and InferencePools' ``status.parents``. ``request`` routes one HTTP
request the way the data plane would: listener port, HTTPRoute matches (path prefix/exact,
exact headers; the most specific match wins), weighted backendRefs picked with a seeded
RNG, Services to their Ready pods, InferencePools to their selected pods (the endpoint
picker played as a random pick); pods answer through ``httpd.serve``. ``weights=False``
or ``headers=False`` make a non-conformant data plane (equal split; header matches
never match); ``programs=False`` never programs a Gateway.

``curl_logs`` is a kubelet ``LogFn``: a container whose command is ``curl`` gets the
output curl would print (``-H``, ``-w`` with ``%{http_code}``, URL globs ``[1-N]``).
"""

from __future__ import annotations

import random
import re
from urllib.parse import urlsplit

from ..selectors import matches_label_selector
from . import httpd, llmd
from .base import Controller
from .kubelet import nvidia_smi_logs

ISTIO = "istio.io/gateway-controller"
GW = "gateway.networking.k8s.io"
GW_V1 = f"{GW}/v1"
POOLS = "inferencepools.inference.networking.k8s.io"
NAME_LABEL = f"{GW}/gateway-name"


def condition(type_: str, ok: bool, reason: str, generation: int = 1, message: str = "") -> dict:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason,
            "message": message or reason, "observedGeneration": generation,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}


def _plain(value):
    """``value`` without lastTransitionTime, to compare statuses."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _same(old: list[dict] | None, new: list[dict]) -> bool:
    return _plain(old or []) == _plain(new)


class Gateways(Controller):
    name = "gateways"
    watches = (f"gatewayclasses.{GW}", f"gateways.{GW}", f"httproutes.{GW}", POOLS, "services")

    def __init__(self, controller_name: str = ISTIO, *, weights: bool = True,
                 headers: bool = True, programs: bool = True, seed: int = 7):
        self.controller_name = controller_name
        self.weights, self.headers, self.programs = weights, headers, programs
        self.rng = random.Random(seed)

    # Control plane ----------------------------------------------------------------------
    def sync(self, kube) -> None:
        mine = set()
        for gc in kube.list(f"gatewayclasses.{GW}"):
            if gc["spec"].get("controllerName") != self.controller_name:
                continue
            mine.add(gc["metadata"]["name"])
            want = [condition("Accepted", True, "Accepted", gc["metadata"].get("generation", 1),
                              "Handled by Istio controller")]
            if not _same((gc.get("status") or {}).get("conditions"), want):
                kube.mutate(f"gatewayclasses.{GW}", gc["metadata"]["name"],
                            lambda o, w=want: o.update(status={"conditions": w}), status=True)
        routes = kube.list(f"httproutes.{GW}")
        gateways = [g for g in kube.list(f"gateways.{GW}")
                    if g["spec"].get("gatewayClassName") in mine]
        for gw in gateways:
            self._gateway(kube, gw, routes)
        names = {(g["metadata"]["namespace"], g["metadata"]["name"]) for g in gateways}
        for route in routes:
            self._route(kube, route, names)
        for pool in kube.list(POOLS):
            self._pool(kube, pool, routes, names)

    def _gateway(self, kube, gw: dict, routes: list[dict]) -> None:
        ns, name = gw["metadata"]["namespace"], gw["metadata"]["name"]
        gen = gw["metadata"].get("generation", 1)
        svc_name = f"{name}-istio"
        listeners = gw["spec"].get("listeners") or []
        if self.programs and kube.find("services", svc_name, ns) is None:
            kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": svc_name, "namespace": ns, "labels": {NAME_LABEL: name}},
                "spec": {"type": "ClusterIP", "selector": {NAME_LABEL: name},
                         "ports": [{"name": f"{lis['protocol'].lower()}-{lis['port']}",
                                    "port": lis["port"], "protocol": "TCP"}
                                   for lis in listeners]}})
        attached = sum(1 for r in routes if self._parent(r, ns, name))
        status = {"conditions": [condition("Accepted", True, "Accepted", gen),
                                 condition("Programmed", self.programs,
                                           "Programmed" if self.programs else "Pending", gen)],
                  "listeners": [{"name": lis["name"], "attachedRoutes": attached,
                                 "supportedKinds": [{"group": GW, "kind": "HTTPRoute"}],
                                 "conditions": [condition(t, True, t, gen) for t in (
                                     "Accepted", "Programmed", "ResolvedRefs")]}
                                for lis in listeners]}
        if self.programs:
            # An IPAddress: tests/schemas.py closes the CRD's oneOf branches
            # (additionalProperties: false), which rejects a Hostname address.
            status["addresses"] = [{"type": "IPAddress", "value": _cluster_ip(kube, svc_name,
                                                                              ns)}]
        self._write(kube, f"gateways.{GW}", gw, status)

    @staticmethod
    def _parent(route: dict, ns: str, name: str) -> dict | None:
        for ref in route["spec"].get("parentRefs") or []:
            if (ref.get("kind", "Gateway") == "Gateway" and ref["name"] == name
                    and ref.get("namespace", route["metadata"]["namespace"]) == ns):
                return ref
        return None

    def _route(self, kube, route: dict, gateways: set) -> None:
        ns = route["metadata"]["namespace"]
        gen = route["metadata"].get("generation", 1)
        refs = [b for rule in route["spec"].get("rules") or [] for b in rule.get("backendRefs")
                or []]
        missing = [b["name"] for b in refs if _backend(kube, b, ns) is None]
        parents = []
        for (gns, gname) in sorted(gateways):
            ref = self._parent(route, gns, gname)
            if ref is None:
                continue
            parents.append({"parentRef": {"group": GW, "kind": "Gateway", "name": gname,
                                          "namespace": gns},
                            "controllerName": self.controller_name,
                            "conditions": [condition("Accepted", True, "Accepted", gen),
                                           condition("ResolvedRefs", not missing,
                                                     "BackendNotFound" if missing
                                                     else "ResolvedRefs", gen,
                                                     f"missing: {missing}" if missing else "")]})
        if parents:
            self._write(kube, f"httproutes.{GW}", route, {"parents": parents})

    def _pool(self, kube, pool: dict, routes: list[dict], gateways: set) -> None:
        ns, name = pool["metadata"]["namespace"], pool["metadata"]["name"]
        gen = pool["metadata"].get("generation", 1)
        epp = (pool["spec"].get("endpointPickerRef") or {}).get("name", "")
        resolved = kube.find("services", epp, ns) is not None
        parents = []
        for route in routes:
            if route["metadata"]["namespace"] != ns or not any(
                    b.get("kind") == "InferencePool" and b["name"] == name
                    for rule in route["spec"].get("rules") or []
                    for b in rule.get("backendRefs") or []):
                continue
            for gns, gname in sorted(gateways):
                if self._parent(route, gns, gname):
                    parents.append({"parentRef": {"group": GW, "kind": "Gateway",
                                                  "name": gname, "namespace": gns},
                                    "controllerName": self.controller_name,
                                    "conditions": [
                                        condition("Accepted", True, "SupportedByParent", gen),
                                        condition("ResolvedRefs", resolved,
                                                  "ResolvedRefs" if resolved
                                                  else "InvalidExtensionRef", gen)]})
        if parents:
            self._write(kube, POOLS, pool, {"parents": parents})

    @staticmethod
    def _write(kube, ref: str, obj: dict, status: dict) -> None:
        if _plain(obj.get("status") or {}) == _plain(status):
            return
        kube.mutate(ref, obj["metadata"]["name"], lambda o: o.update(status=status),
                    obj["metadata"]["namespace"], status=True)

    # Data plane -------------------------------------------------------------------------
    def request(self, kube, host: str, port: int, path: str,
                headers: dict[str, str]) -> tuple[int, str]:
        """(status, body) for ``GET http://host:port/path``, as the cluster would answer."""
        code, _, body = self.exchange(kube, host, port, path, headers)
        return code, body

    def exchange(self, kube, host: str, port: int, path: str, headers: dict[str, str],
                 method: str = "GET", body: str = "") -> tuple[int, dict[str, str], str]:
        """(status, response headers, body) for ``method http://host:port/path``."""
        parts = host.split(".")
        if len(parts) < 2:
            return httpd.REFUSED[0], {}, httpd.REFUSED[1]
        svc = kube.find("services", parts[0], parts[1])
        if svc is None:
            return 0, {}, f"Could not resolve host: {host}"
        gateway = (svc["metadata"].get("labels") or {}).get(NAME_LABEL)
        if gateway is None:
            return _answer(kube, self.rng, httpd.service_endpoints(kube, parts[1], parts[0],
                                                                    port), path,
                           method=method, headers=headers, body=body)
        return self._route_request(kube, parts[1], gateway, port, path,
                                   {k.lower(): v for k, v in headers.items()}, method, body)

    def _route_request(self, kube, ns: str, gateway: str, port: int, path: str,
                       headers: dict[str, str], method: str = "GET",
                       body: str = "") -> tuple[int, dict[str, str], str]:
        gw = kube.find(f"gateways.{GW}", gateway, ns)
        if gw is None or not any(lis["port"] == port for lis in gw["spec"]["listeners"]):
            return httpd.REFUSED[0], {}, httpd.REFUSED[1]
        url_path = urlsplit(path).path or "/"
        best, best_key = None, None
        for route in kube.list(f"httproutes.{GW}"):
            if not self._parent(route, ns, gateway):
                continue
            for rule in route["spec"].get("rules") or []:
                for match in rule.get("matches") or [{}]:
                    key = self._match(match, url_path, headers)
                    if key is not None and (best_key is None or key > best_key):
                        best, best_key = (route, rule), key
        if best is None:
            return 404, {}, ""
        route, rule = best
        refs = [b for b in rule.get("backendRefs") or [] if b.get("weight", 1) > 0]
        if not refs:
            return 500, {}, ""
        weights = [b.get("weight", 1) if self.weights else 1 for b in refs]
        ref = self.rng.choices(refs, weights=weights)[0]
        endpoints = _backend(kube, ref, route["metadata"]["namespace"]) or []
        pool = (kube.find(POOLS, ref["name"], ref.get("namespace", route["metadata"][
            "namespace"])) if ref.get("kind") == "InferencePool" else None)
        if pool is not None:  # the endpoint picker's choice (llmd.schedule)
            endpoints, added = llmd.schedule(kube, self.rng, pool, endpoints, body)
            headers = {**headers, **added}
        return _answer(kube, self.rng, endpoints, path, method=method, headers=headers,
                       body=body)

    def _match(self, match: dict, path: str, headers: dict[str, str]) -> tuple | None:
        spec = match.get("path") or {"type": "PathPrefix", "value": "/"}
        value = spec.get("value", "/")
        if spec.get("type", "PathPrefix") == "Exact":
            if path != value:
                return None
        elif not (path == value or path.startswith(value.rstrip("/") + "/") or value == "/"):
            return None
        wanted = match.get("headers") or []
        if wanted and not self.headers:
            return None
        for h in wanted:
            if headers.get(h["name"].lower()) != h["value"]:
                return None
        return (spec.get("type") == "Exact", len(value), len(wanted))


def _cluster_ip(kube, name: str, ns: str) -> str:
    svc = kube.find("services", name, ns) or {}
    return svc.get("spec", {}).get("clusterIP") or "10.96.0.80"


def _backend(kube, ref: dict, ns: str) -> list[tuple[dict, int]] | None:
    """The pods and ports a backendRef reaches; None when the referent is missing."""
    ns = ref.get("namespace", ns)
    if ref.get("kind", "Service") == "InferencePool":
        pool = kube.find(POOLS, ref["name"], ns)
        if pool is None:
            return None
        port = pool["spec"]["targetPorts"][0]["number"]
        return [(p, port) for p in kube.list("pods", ns) if httpd.running(p)
                and matches_label_selector(pool["spec"]["selector"],
                                           p["metadata"].get("labels") or {})]
    if kube.find("services", ref["name"], ns) is None:
        return None
    return httpd.service_endpoints(kube, ns, ref["name"], ref.get("port", 80))


def _answer(kube, rng: random.Random, endpoints: list[tuple[dict, int]], path: str, *,
            method: str = "GET", headers: dict[str, str] | None = None,
            body: str = "") -> tuple[int, dict[str, str], str]:
    if not endpoints:
        return 503, {}, "no healthy upstream"
    pod, port = rng.choice(endpoints)
    served = llmd.respond(kube, pod, port, method, path, headers or {}, body)
    return served if served is not None else httpd.respond(kube, pod, port, path, method)


# curl pods -------------------------------------------------------------------------------
_GLOB = re.compile(r"\[(\d+)-(\d+)\]")
_VALUED = {"-H", "--header", "-w", "--write-out", "-m", "--max-time", "-o", "--output",
           "--connect-timeout", "--retry", "-X", "--request", "-d", "--data"}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


def curl_logs(pod: dict, container: str, kube) -> str:
    """What a ``curl`` container prints; other containers as the default kubelet logs."""
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    argv = list(spec.get("command") or []) + list(spec.get("args") or [])
    if not argv or not argv[0].endswith("curl"):
        return nvidia_smi_logs(pod, container, kube)
    controller = next((c for c in kube.controllers.controllers if isinstance(c, Gateways)),
                      None) or Gateways()
    headers, fmt, urls, i = {}, "", [], 1
    method, data, include = "", None, False
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUED and i + 1 < len(argv):
            if arg in ("-H", "--header"):
                name, _, value = argv[i + 1].partition(":")
                headers[name.strip()] = value.strip()
            elif arg in ("-w", "--write-out"):
                fmt = argv[i + 1]
            elif arg in ("-X", "--request"):
                method = argv[i + 1]
            elif arg in ("-d", "--data"):
                data = argv[i + 1]
            i += 2
            continue
        if arg in ("-i", "--include"):
            include = True
        elif not arg.startswith("-"):
            urls.append(arg)
        i += 1
    # curl: -d makes a POST unless -X names the method.
    method = method or ("POST" if data is not None else "GET")
    out = []
    for url in (u for pattern in urls for u in _expand(pattern)):
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        code, got, body = controller.exchange(kube, parts.hostname or "", parts.port or 80,
                                              path or "/", headers, method, data or "")
        if code == 0:
            out.append(f"curl: (7) Failed to connect to {parts.hostname}: {body}\n")
            body = ""
        elif include:
            body = (f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\n"
                    + "".join(f"{k}: {v}\r\n" for k, v in got.items()) + "\r\n" + body)
        out.append(body + fmt.replace("%{http_code}", f"{code:03d}").replace("\\n", "\n"))
    return "".join(out)


def _expand(url: str) -> list[str]:
    match = _GLOB.search(url)
    if not match:
        return [url]
    lo, hi = int(match.group(1)), int(match.group(2))
    return [u for n in range(lo, hi + 1)
            for u in _expand(url[:match.start()] + str(n) + url[match.end():])]
