"""A Prometheus run by prometheus-operator, played as a proxy handler for its HTTP API.

The prometheus-operator CRDs are not in ../shared/crds: ``monitoring_crds()`` gives
minimal stand-ins (real group, kinds, names and scope; spec schema left open). The
handler answers ``/api/v1/query`` (instant vector selectors ``name{l="v",...}`` only) and
``/api/v1/targets`` by doing what Prometheus does with ServiceMonitors: the Prometheus
object's ``serviceMonitorSelector``/``serviceMonitorNamespaceSelector`` (null selects
none / only its own namespace, ``{}`` selects all), each ServiceMonitor's Services and
endpoint ports, the Ready pods behind them scraped through ``httpd.serve``.
``discovers=False`` plays a Prometheus whose operator never picks ServiceMonitors up.
``scrape_every``: seconds between two scrapes of a target (None: every query scrapes
afresh); a query answers the latest scrape, as Prometheus' instant queries do, so a long
interval plays a Prometheus whose data lags behind what the pod serves.
``monitoring(kube)`` installs it all as kube-prometheus-stack would; ``prometheus(kube,
name, namespace, ...)`` adds another Prometheus (a world may run several, each with its own
selectors, Service and ``routePrefix``).

``spec.routePrefix``: prometheus-operator passes it as ``--web.route-prefix`` (``/`` when
unset; prometheus-operator pkg/prometheus/server/statefulset.go, ``webRoutePrefix``), and
Prometheus then serves its API, UI and health endpoints under it only (prometheus/prometheus
web/web.go: ``router.WithPrefix(o.RoutePrefix)``, ``/`` redirecting to the prefix): the query
API is ``<prefix>/api/v1/query`` and ``/api/v1/query`` is 404.
"""

from __future__ import annotations

import json
import re
import time

from .. import objects as o
from ..selectors import matches_label_selector
from . import httpd

MON = "monitoring.coreos.com"
KPS = "kube-prometheus-stack"
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)")
_PAIR = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def monitoring_crds() -> list[dict]:
    return [o.crd(MON, "v1", "ServiceMonitor", "servicemonitors"),
            o.crd(MON, "v1", "Prometheus", "prometheuses")]


def monitoring(kube, *, selector=None, ns_selector=None, discovers=True,
               prometheus=True, scrape_every: float | None = None, **spec_extra) -> None:
    """kube-prometheus-stack as our platform installs it: selectors {} (nil-uses-helm off).

    ``selector``/``ns_selector`` replace the Prometheus' ServiceMonitor selectors
    (``ns_selector=False`` leaves it null); ``prometheus=False`` installs the CRDs only.
    """
    kube.seed(monitoring_crds())
    if not prometheus:
        return
    # spec_extra: e.g. ignoreNamespaceSelectors=True, enforcedNamespaceLabel="namespace".
    add_prometheus(kube, f"{KPS}-prometheus", "monitoring", selector=selector,
                   ns_selector=ns_selector, discovers=discovers, scrape_every=scrape_every,
                   **spec_extra)


def add_prometheus(kube, name: str, namespace: str, *, selector=None, ns_selector=None,
                   discovers=True, scrape_every: float | None = None, service: str | None = None,
                   port: int = 9090, route_prefix: str | None = None,
                   **spec_extra) -> Prometheus:
    """One more Prometheus CR, its Service (``service``, default the CR's name) and the
    server behind it; ``route_prefix`` sets ``spec.routePrefix``. The CRDs must be there
    (``monitoring(kube, prometheus=False)``)."""
    spec = {"serviceMonitorSelector": {} if selector is None else selector, **spec_extra}
    if ns_selector is not False:
        spec["serviceMonitorNamespaceSelector"] = ns_selector or {}
    if route_prefix is not None:
        spec["routePrefix"] = route_prefix
    kube.create({"apiVersion": f"{MON}/v1", "kind": "Prometheus",
                 "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    kube.create(o.service(service or name, namespace, port))
    server = Prometheus(kube, namespace, name, discovers=discovers, scrape_every=scrape_every)
    kube.proxy("service", service or name, server, namespace=namespace, port=port)
    return server


class Prometheus:
    """``kube.proxy("service", svc, Prometheus(kube, "monitoring", "kps"), ...)``."""

    def __init__(self, kube, namespace: str, name: str, *, discovers: bool = True,
                 scrape_every: float | None = None):
        self.kube, self.namespace, self.name, self.discovers = kube, namespace, name, discovers
        self.scrape_every = scrape_every
        self._scraped: dict[str, tuple[float, int, str]] = {}  # url -> (when, code, body)

    def __call__(self, method: str, path: str, query: dict, body: bytes):
        prom = self.kube.find(f"prometheuses.{MON}", self.name, self.namespace) or {}
        prefix = ((prom.get("spec") or {}).get("routePrefix") or "/").rstrip("/")
        if prefix:
            if path in ("", "/"):  # web.go: "/" redirects to the route prefix
                return 302, {"Content-Type": "text/html; charset=utf-8",
                             "Location": prefix}, f'<a href="{prefix}">Found</a>.\n\n'
            if path != prefix and not path.startswith(prefix + "/"):
                return 404, {"Content-Type": "text/plain"}, "404 page not found\n"
            path = path[len(prefix):] or "/"
        if path == "/api/v1/query":
            result = [{"metric": labels, "value": [time.time(), value]}
                      for labels, value in self.select(query.get("query", ""))]
            return _json({"status": "success",
                          "data": {"resultType": "vector", "result": result}})
        if path == "/api/v1/targets":
            return _json({"status": "success", "data": {"activeTargets": [
                {"labels": t["labels"], "scrapeUrl": t["url"], "health": t["health"],
                 "lastError": t["error"]} for t in self.targets()], "droppedTargets": []}})
        return 404, {"Content-Type": "text/plain"}, "404 page not found\n"

    def select(self, expr: str) -> list[tuple[dict, str]]:
        match = re.fullmatch(r"\s*([a-zA-Z_:][\w:]*)\s*(\{(.*)\})?\s*", expr)
        if not match:
            return []
        want = dict(_PAIR.findall(match.group(3) or ""))
        out = []
        for target in self.targets():
            for line in target["body"].splitlines():
                sample = _SAMPLE.match(line.strip())
                if not sample or line.startswith("#") or sample.group(1) != match.group(1):
                    continue
                labels = {**target["labels"], **dict(_PAIR.findall(sample.group(3) or "")),
                          "__name__": sample.group(1)}
                if all(labels.get(k) == v for k, v in want.items()):
                    out.append((labels, sample.group(4)))
        return out

    def targets(self) -> list[dict]:
        kube = self.kube
        prom = kube.find(f"prometheuses.{MON}", self.name, self.namespace)
        if prom is None or not self.discovers:
            return []
        spec = prom.get("spec") or {}
        selector, ns_selector = spec.get("serviceMonitorSelector"), spec.get(
            "serviceMonitorNamespaceSelector")
        namespaces = {n["metadata"]["name"]: n["metadata"].get("labels") or {}
                      for n in kube.list("namespaces")}
        out = []
        for sm in kube.list(f"servicemonitors.{MON}"):
            sm_ns = sm["metadata"]["namespace"]
            if not (sm_ns == self.namespace if ns_selector is None else
                    matches_label_selector(ns_selector, namespaces.get(sm_ns, {}))):
                continue
            if not matches_label_selector(selector, sm["metadata"].get("labels") or {}):
                continue
            out += self._scrape(sm, spec)
        return out

    def _scrape(self, sm: dict, prom: dict) -> list[dict]:
        kube, spec = self.kube, sm.get("spec") or {}
        which = spec.get("namespaceSelector") or {}
        names = which.get("matchNames") or ([None] if which.get("any") else
                                            [sm["metadata"]["namespace"]])
        if prom.get("ignoreNamespaceSelectors"):  # only endpoints beside the ServiceMonitor
            names = [sm["metadata"]["namespace"]]
        enforced = prom.get("enforcedNamespaceLabel")
        out = []
        for ns in names:
            for svc in kube.list("services", ns):
                if not matches_label_selector(spec.get("selector") or {},
                                              svc["metadata"].get("labels") or {}):
                    continue
                for endpoint in spec.get("endpoints") or []:
                    port = next((p for p in svc["spec"].get("ports") or []
                                 if p.get("name") == endpoint.get("port")), None)
                    if port is None:
                        continue
                    for pod, number in httpd.service_endpoints(
                            kube, svc["metadata"]["namespace"], svc["metadata"]["name"],
                            port["port"]):
                        path = endpoint.get("path", "/metrics")
                        code, body = self._scrape_one(kube, pod, number, path)
                        ip = (pod.get("status") or {}).get("podIP", "")
                        out.append({
                            "labels": {"job": svc["metadata"]["name"],
                                       "namespace": svc["metadata"]["namespace"],
                                       "service": svc["metadata"]["name"],
                                       "pod": pod["metadata"]["name"],
                                       "endpoint": endpoint.get("port"),
                                       "instance": f"{ip}:{number}",
                                       # the operator's relabelling: the monitor's namespace
                                       **({enforced: sm["metadata"]["namespace"]}
                                          if enforced else {})},
                            "url": f"http://{ip}:{number}{path}",
                            "health": "up" if code == 200 else "down",
                            "error": "" if code == 200 else (
                                body if code == 0 else f"server returned HTTP status {code}"),
                            "body": body if code == 200 else ""})
        return out

    def _scrape_one(self, kube, pod: dict, port: int, path: str) -> tuple[int, str]:
        key = f"{pod['metadata'].get('uid')}:{port}{path}"
        last = self._scraped.get(key)
        if last and self.scrape_every is not None and \
                kube.clock.now() - last[0] < self.scrape_every:
            return last[1], last[2]
        code, headers, body = httpd.respond(kube, pod, port, path)
        if code == 200:
            problem = _content_type_problem(headers.get("Content-Type", ""))
            if problem:
                code, body = 0, problem
        self._scraped[key] = (kube.clock.now(), code, body)
        return code, body


# Prometheus 3 fails a scrape whose Content-Type is blank or not an exposition format,
# unless fallback_scrape_protocol is set (prometheus.io/docs/prometheus/latest/migration/
# #scrape-protocols; the media types of prometheus.io/docs/instrumenting/
# content_negotiation). The error texts are the scrape manager's (scrape.go), as quoted in
# photoprism/photoprism#5042.
_EXPOSITION = ("text/plain", "application/openmetrics-text", "application/vnd.google.protobuf")


def _content_type_problem(ctype: str) -> str:
    media = ctype.split(";", 1)[0].strip().lower()
    if not media:
        return ("non-compliant scrape target sending blank Content-Type and no "
                "fallback_scrape_protocol specified for target")
    if media not in _EXPOSITION:
        return (f"received unsupported Content-Type {ctype!r} and no "
                "fallback_scrape_protocol specified for target")
    return ""


def _json(data: dict):
    return 200, {"Content-Type": "application/json"}, json.dumps(data)
