"""Aggregated metrics APIs (what prometheus-adapter serves) for tests.

``CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": fn}).install(kube)`` serves ``custom.metrics.k8s.io``
discovery (``pods/<metric>`` in v1beta2 and v1beta1) and ``MetricValueList``s for pods, where
``fn(pod) -> float | None`` gives a pod's value (None: no sample). ``external={...}`` serves
the same functions as ``external.metrics.k8s.io/v1beta1`` metrics instead, one
``ExternalMetricValue`` per pod of the namespace with a sample (prometheus-adapter's
external rules keep the series' ``namespace`` label). With ``hpa=True`` the
``HorizontalPodAutoscalers`` controller reads Pods and External metrics from the same
functions.

``gpu_util`` is DCGM's utilisation, following the real rule: the share of time a kernel
ran, so 0 for a GPU pod that runs no CUDA compute binary (``../shared/fixtures/
dcgm-exporter-metrics.txt``: an idle GPU reads 0), busy only while a container runs one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .controllers.hpa import HorizontalPodAutoscalers
from .controllers.kubelet import container_running
from .selectors import label_selector, matches_label_selector
from .store import now

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
EXTERNAL = "external.metrics.k8s.io"
EXTERNAL_VERSION = "v1beta1"
PodValue = Callable[[dict], "float | None"]
# The CUDA compute binaries whose kernels move NVML utilisation (the contract with
# controllers/dcgm.py): the CUDA samples' n-body and DCGM's load generator.
COMPUTE = re.compile(r"(^|[\s/;&|])(nbody|dcgmproftester\d*)(\s|$)")
GPU_RESOURCES = ("nvidia.com/gpu", "nvidia.com/gpu.shared")
BUSY = 85.0  # percent: n-body in benchmark mode keeps a kernel running nearly all the time


def _quantity(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{int(value * 1000)}m"


def holds_gpu(pod: dict) -> bool:
    """A GPU by the device plugin (any nvidia.com/gpu* or MIG resource) or by a DRA claim."""
    for c in pod["spec"]["containers"]:
        res = c.get("resources") or {}
        limits = res.get("limits") or {}
        if res.get("claims") or any(k in GPU_RESOURCES or k.startswith("nvidia.com/mig-")
                                    for k in limits):
            return True
    return False


def runs_compute(pod: dict) -> bool:
    """A running container's command or args run a CUDA compute binary (``nbody
    -benchmark``); one that never started (CrashLoopBackOff) launches no kernel."""
    return any(COMPUTE.search(" ".join((c.get("command") or []) + (c.get("args") or [])))
               and container_running(pod, c["name"]) for c in pod["spec"]["containers"])


def gpu_util(pod: dict) -> float | None:
    """DCGM's utilisation for a Running pod holding a GPU: busy while it runs a compute
    binary, else 0 (no kernel ran); no sample for other pods."""
    if not holds_gpu(pod) or (pod.get("status") or {}).get("phase") != "Running":
        return None
    return BUSY if runs_compute(pod) else 0.0


class CustomMetrics:
    def __init__(self, metrics: dict[str, PodValue] | None = None, *,
                 external: dict[str, PodValue] | None = None):
        self.metrics = metrics or {}
        self.external = external or {}
        self.kube = None

    def install(self, kube, *, hpa: bool = True) -> CustomMetrics:
        self.kube = kube
        if self.metrics:
            kube.aggregate(GROUP, self.handle)
        if self.external:
            kube.aggregate(EXTERNAL, self.handle_external)
        if hpa:
            kube.add(HorizontalPodAutoscalers(self.hpa_metric))
        return self

    # The HPA controller's view: Pods metrics average over the target's pods; External
    # metrics (AverageValue) are the namespace's total divided by the current replicas.
    def hpa_metric(self, hpa: dict, spec: dict) -> float:
        ns = hpa["metadata"]["namespace"]
        if spec.get("type") == "External":
            name = ((spec.get("external") or {}).get("metric") or {}).get("name")
            fn = self.external.get(name)
            if fn is None:
                return 0.0
            total = sum(v for v in (fn(p) for p in self.kube.list("pods", ns)) if v is not None)
            ref = hpa["spec"]["scaleTargetRef"]
            target = self.kube.find("deployments.apps", ref["name"], ns)
            replicas = (target or {}).get("spec", {}).get("replicas") or 1
            return total / replicas
        name = ((spec.get("pods") or {}).get("metric") or {}).get("name")
        fn = self.metrics.get(name)
        ref = hpa["spec"]["scaleTargetRef"]
        target = self.kube.find("deployments.apps", ref["name"], ns)
        if fn is None or target is None:
            return 0.0
        selector = target["spec"]["selector"]
        values = [fn(p) for p in self.kube.list("pods", ns)
                  if matches_label_selector(selector, p["metadata"].get("labels") or {})]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else 0.0

    # external.metrics.k8s.io (k8s.io/metrics pkg/apis/external_metrics/v1beta1 types).
    def handle_external(self, method: str, path: str, query: dict, body: bytes):
        segs = [s for s in path.split("/") if s][1:]
        if method != "GET":
            return self._status(405, "MethodNotAllowed", "the server does not allow this method")
        if len(segs) == 1:
            gv = {"groupVersion": f"{EXTERNAL}/{EXTERNAL_VERSION}", "version": EXTERNAL_VERSION}
            return self._json({"kind": "APIGroup", "apiVersion": "v1", "name": EXTERNAL,
                               "versions": [gv], "preferredVersion": gv})
        if segs[1] != EXTERNAL_VERSION:
            return self._status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        rest = segs[2:]
        if not rest:
            return self._json({"kind": "APIResourceList", "apiVersion": "v1",
                               "groupVersion": f"{EXTERNAL}/{EXTERNAL_VERSION}", "resources": [
                                   {"name": m, "singularName": "", "namespaced": True,
                                    "kind": "ExternalMetricValueList", "verbs": ["get"]}
                                   for m in self.external]})
        if len(rest) != 3 or rest[0] != "namespaces" or rest[2] not in self.external:
            return self._status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        ns, metric = rest[1], rest[2]
        fn = self.external[metric]
        items = [{"metricName": metric, "metricLabels": {"namespace": ns,
                                                         "pod": p["metadata"]["name"]},
                  "timestamp": now(), "value": _quantity(v)}
                 for p in self.kube.list("pods", ns) if (v := fn(p)) is not None]
        return self._json({"kind": "ExternalMetricValueList",
                           "apiVersion": f"{EXTERNAL}/{EXTERNAL_VERSION}", "metadata": {},
                           "items": items})

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
