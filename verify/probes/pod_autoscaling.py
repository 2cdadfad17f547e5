"""pod_autoscaling: an HPA scales a GPU Deployment on a custom GPU metric.

The custom metrics API (``custom.metrics.k8s.io``, e.g. prometheus-adapter over DCGM)
must serve a GPU metric for pods. A one-replica Deployment holding a GPU gets an
``autoscaling/v2`` HPA with a ``Pods`` metric on it, targeting half the value the pod
reports: the HPA must then ask for more than one replica. The probe ships no GPU load
generator, so the target is set below the observed value (the metric is "high" relative
to it); a metric reading 0 for the pod cannot be scaled on and is skipped for another.
"""

from __future__ import annotations

import json
import re

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from ..kube import GPU_RESOURCES
from ..probe import Context, Probe
from ..result import Result
from . import _pods

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
# Pod metrics that describe a GPU, utilisation first (DCGM exporter and common adapter names).
GPU_METRIC = re.compile(r"gpu|dcgm", re.I)
PREFERRED = re.compile(r"util", re.I)
APP_LABEL = "aicp.dev/verify-app"
LOAD_COMMAND = ["sh", "-c", "while true; do nvidia-smi -q >/dev/null 2>&1; sleep 1; done"]

POD_TIMEOUT = 300.0     # the GPU pod Running
METRIC_TIMEOUT = 180.0  # a first sample for the pod (scrape + adapter relist intervals)
SCALE_TIMEOUT = 180.0   # HPA sync period is 15 s; metrics lag a scrape interval
POLL = 5.0


class PodAutoscaling(Probe):
    id = "pod_autoscaling"
    category = "schedulingOrchestration"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    needs = ("api:autoscaling/v2",)
    mutating = True
    title = "HorizontalPodAutoscaler scales GPU pods on a custom GPU metric"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find a GPU metric in the custom metrics API"):
            found = _custom_metrics(ctx)
            if isinstance(found, str):
                return ctx.error(found)
            version, metrics = found
            ctx.observe("customMetrics", {"version": version, "gpuPodMetrics": metrics})
            if not metrics:
                return ctx.error(f"{GROUP}/{version} serves no GPU metric for pods (no pods/* "
                                 "resource matching gpu or DCGM): configure the adapter to "
                                 "expose DCGM metrics")
        with ctx.step("find how to request a GPU"):
            resource = _gpu_resource(ctx)
            device_class = None if resource else _pods.device_class(ctx)
            if not resource and not device_class:
                return ctx.error("no node advertises a GPU and no DeviceClass exists")
        with ctx.step("start a one-replica GPU Deployment"):
            ns = ctx.namespace()
            if device_class:
                _pods.claim_template(ctx, ns, "one-gpu", device_class)
            _deployment(ctx, ns, resource)
            pod = ctx.wait_for("the GPU pod Running", lambda: _running_pod(ctx, ns),
                               timeout=POD_TIMEOUT, interval=POLL)
            if not pod:
                return ctx.error(f"the GPU Deployment's pod was not Running within "
                                 f"{POD_TIMEOUT:g}s (no schedulable GPU node, or the image "
                                 "cannot be pulled)")
        with ctx.step("read the pod's GPU metrics"):
            values: dict[str, float] = {}

            def sampled() -> bool:
                values.update(_values(ctx, version, ns, metrics))
                return any(v > 0 for v in values.values())
            ctx.wait_for("a non-zero GPU metric for the pod", sampled,
                         timeout=METRIC_TIMEOUT, interval=POLL)
            ctx.observe("metricValues", {k: str(v) for k, v in values.items()})
            usable = sorted((m for m, v in values.items() if v > 0),
                            key=lambda m: (not PREFERRED.search(m), metrics.index(m)))
            if not usable:
                return ctx.error(f"the custom metrics API served no non-zero value of "
                                 f"{', '.join(metrics)} for the GPU pod within "
                                 f"{METRIC_TIMEOUT:g}s "
                                 f"({'all read 0' if values else 'no samples'})")
            metric, value = usable[0], values[usable[0]]
            target = _half(value)
        with ctx.step("create the HPA and wait for a scale-up"):
            _pods.create(ctx, f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers", {
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "gpu-load"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "gpu-load"},
                         "minReplicas": 1, "maxReplicas": 2,
                         "metrics": [{"type": "Pods", "pods": {
                             "metric": {"name": metric},
                             "target": {"type": "AverageValue", "averageValue": target}}}]}},
                ns)
            ctx.observe("hpaMetric", {"name": metric, "observed": str(value), "target": target})
            scaled = ctx.wait_for("the Deployment scaled above 1 replica",
                                  lambda: _replicas(ctx, ns) > 1, timeout=SCALE_TIMEOUT,
                                  interval=POLL)
            hpa = ctx.kube.request(
                "GET", f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/gpu-load")
            ctx.artifact("hpa.json", json.dumps(hpa, indent=2))
            replicas = _replicas(ctx, ns)
            if ctx.check(f"the HPA scales the GPU Deployment on {metric} above its target",
                         bool(scaled), f"{metric}={value:g} vs target {target}; "
                                       f"replicas {replicas}; {_conditions(hpa)}"):
                return ctx.passed(f"the HPA scaled the GPU Deployment to {replicas} replicas "
                                  f"on custom metric {metric} ({value:g} per pod, target "
                                  f"{target})")
            now = _values(ctx, version, ns, [metric]).get(metric, 0.0)
            if now <= float(parse_quantity(target)):
                return ctx.error(f"{metric} fell to {now:g}, not above the target {target}, "
                                 "before the HPA acted: cannot decide")
            return ctx.failed(f"the HPA did not scale the GPU Deployment within "
                              f"{SCALE_TIMEOUT:g}s while {metric} was {now:g} per pod against "
                              f"a target of {target} ({_conditions(hpa)})")


def _custom_metrics(ctx: Context) -> tuple[str, list[str]] | str:
    """(served version, GPU pod metric names) or why the API cannot be used."""
    for version in VERSIONS:
        try:
            doc = ctx.kube.request("GET", f"/apis/{GROUP}/{version}")
        except ApiException as exc:
            if exc.status == 404:
                continue
            return (f"{GROUP}/{version} is registered but not answering (HTTP {exc.status}): "
                    "check the APIService and the metrics adapter")
        names = [r["name"].removeprefix("pods/") for r in doc.get("resources") or []
                 if r.get("name", "").startswith("pods/")]
        return version, [n for n in names if GPU_METRIC.search(n)]
    return (f"the custom metrics API ({GROUP}) is not served: install a metrics adapter "
            "(e.g. prometheus-adapter) exposing GPU metrics")


def _gpu_resource(ctx: Context) -> str | None:
    for node in ctx.kube.items("/api/v1/nodes"):
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource in GPU_RESOURCES:
            if parse_quantity(allocatable.get(resource, 0)) > 0:
                return resource
    return None


def _deployment(ctx: Context, ns: str, resource: str | None) -> dict:
    container: dict = {"name": "load", "image": ctx.image("cuda"), "command": LOAD_COMMAND}
    spec: dict = {"terminationGracePeriodSeconds": 0, "tolerations": [{"operator": "Exists"}],
                  "containers": [container]}
    if resource:
        container["resources"] = {"limits": {resource: "1"}}
    else:
        container["resources"] = {"claims": [{"name": "gpu"}]}
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    return _pods.create(ctx, f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gpu-load"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {APP_LABEL: "gpu-load"}},
                 "template": {"metadata": {"labels": {**ctx.labels, APP_LABEL: "gpu-load"}},
                              "spec": spec}}}, ns)


def _running_pod(ctx: Context, ns: str) -> dict | None:
    pods = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                            query={"labelSelector": f"{APP_LABEL}=gpu-load"}).get("items", [])
    return next((p for p in pods if (p.get("status") or {}).get("phase") == "Running"), None)


def _values(ctx: Context, version: str, ns: str, metrics: list[str]) -> dict[str, float]:
    out = {}
    for metric in metrics:
        try:
            doc = ctx.kube.request("GET", f"/apis/{GROUP}/{version}/namespaces/{ns}/pods/*/"
                                   f"{metric}", query={"labelSelector": f"{APP_LABEL}=gpu-load"})
        except ApiException:
            continue
        values = [float(parse_quantity(i["value"])) for i in doc.get("items") or []]
        if values:
            out[metric] = sum(values) / len(values)
    return out


def _half(value: float) -> str:
    return f"{max(1, int(value * 500))}m"


def _replicas(ctx: Context, ns: str) -> int:
    dep = ctx.kube.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-load")
    return int((dep.get("spec") or {}).get("replicas") or 0)


def _conditions(hpa: dict) -> str:
    conds = (hpa.get("status") or {}).get("conditions") or []
    return "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip()
                     for c in conds) or "no HPA conditions"
