"""An aggregated ``custom.metrics.k8s.io`` API (what prometheus-adapter serves) for tests.

``CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": fn}).install(kube)`` serves discovery
(``pods/<metric>`` in v1beta2 and v1beta1) and ``MetricValueList``s for pods, where
``fn(pod) -> float | None`` gives a pod's value (None: no sample). With ``hpa=True`` the
``HorizontalPodAutoscalers`` controller reads Pods metrics from the same functions.
``gpu_util`` is such a function: DCGM's utilisation of a busy GPU pod.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .controllers.hpa import HorizontalPodAutoscalers
from .selectors import label_selector, matches_label_selector
from .store import now

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
PodValue = Callable[[dict], "float | None"]


def _quantity(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{int(value * 1000)}m"


def gpu_util(pod: dict) -> float | None:
    """DCGM's utilisation for a pod holding a GPU and running: a busy 85 %."""
    holds = any("nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {})
                for c in pod["spec"]["containers"])
    return 85.0 if holds and (pod.get("status") or {}).get("phase") == "Running" else None


class CustomMetrics:
    def __init__(self, metrics: dict[str, PodValue]):
        self.metrics = metrics
        self.kube = None

    def install(self, kube, *, hpa: bool = True) -> CustomMetrics:
        self.kube = kube
        kube.aggregate(GROUP, self.handle)
        if hpa:
            kube.add(HorizontalPodAutoscalers(self.hpa_metric))
        return self

    # The HPA controller's view: the average over the target's pods.
    def hpa_metric(self, hpa: dict, spec: dict) -> float:
        name = ((spec.get("pods") or {}).get("metric") or {}).get("name")
        fn = self.metrics.get(name)
        ns = hpa["metadata"]["namespace"]
        ref = hpa["spec"]["scaleTargetRef"]
        target = self.kube.find("deployments.apps", ref["name"], ns)
        if fn is None or target is None:
            return 0.0
        selector = target["spec"]["selector"]
        values = [fn(p) for p in self.kube.list("pods", ns)
                  if matches_label_selector(selector, p["metadata"].get("labels") or {})]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else 0.0

    # The aggregated API server.
    def handle(self, method: str, path: str, query: dict, body: bytes):
        segs = [s for s in path.split("/") if s][1:]  # drop "apis"
        if method != "GET":
            return self._status(405, "MethodNotAllowed", "the server does not allow this method")
        if len(segs) == 1:
            gvs = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS]
            return self._json({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
                               "versions": gvs, "preferredVersion": gvs[0]})
        version = segs[1]
        if version not in VERSIONS:
            return self._status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        rest = segs[2:]
        if not rest:
            return self._json({"kind": "APIResourceList", "apiVersion": "v1",
                               "groupVersion": f"{GROUP}/{version}", "resources": [
                                   {"name": f"pods/{m}", "singularName": "", "namespaced": True,
                                    "kind": "MetricValueList", "verbs": ["get"]}
                                   for m in self.metrics]})
        if len(rest) != 5 or rest[0] != "namespaces" or rest[2] != "pods":
            return self._status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        ns, name, metric = rest[1], rest[3], rest[4]
        fn = self.metrics.get(metric)
        if fn is None:
            return self._status(404, "NotFound", f'the server could not find the metric '
                                                 f'{metric} for pods')
        match = label_selector(query.get("labelSelector", ""))
        items = []
        for pod in self.kube.list("pods", ns):
            meta = pod["metadata"]
            if (name != "*" and meta["name"] != name) or (match and not match(pod)):
                continue
            value = fn(pod)
            if value is None:
                continue
            described = {"kind": "Pod", "namespace": ns, "name": meta["name"],
                         "apiVersion": "/v1"}
            item = {"describedObject": described, "timestamp": now(), "windowSeconds": 60,
                    "value": _quantity(value)}
            item.update({"metric": {"name": metric}} if version == "v1beta2"
                        else {"metricName": metric})
            items.append(item)
        return self._json({"kind": "MetricValueList", "apiVersion": f"{GROUP}/{version}",
                           "metadata": {}, "items": items})

    @staticmethod
    def _json(doc: dict):
        return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()

    @staticmethod
    def _status(code: int, reason: str, message: str):
        return code, {"Content-Type": "application/json"}, json.dumps({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}).encode()
