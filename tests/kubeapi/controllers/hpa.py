"""A HorizontalPodAutoscaler (autoscaling/v2) controller with test-provided metrics.

``metric(hpa, metric_spec) -> float`` returns the current per-pod average (or value) of a
metric; the controller applies the upstream formula
``desired = ceil(current_replicas * current / target)`` clamped to min/max, scales the
target through its ``scale`` subresource and reports status.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kubernetes.utils import parse_quantity

from ..store import now
from .base import Controller

MetricFn = Callable[[dict, dict], float]


def _target(metric: dict) -> float:
    spec = next(v for k, v in metric.items() if k != "type")
    target = spec.get("target") or {}
    if "averageUtilization" in target:
        return float(target["averageUtilization"])
    return float(parse_quantity(target.get("averageValue") or target.get("value") or 0))


class HorizontalPodAutoscalers(Controller):
    name = "hpa"
    watches = ("horizontalpodautoscalers.autoscaling",)
    resync = 0.2

    def __init__(self, metric: MetricFn):
        self.metric = metric

    def sync(self, kube) -> None:
        for hpa in kube.list("horizontalpodautoscalers.autoscaling"):
            spec, meta = hpa["spec"], hpa["metadata"]
            ref = spec["scaleTargetRef"]
            group = ref.get("apiVersion", "apps/v1").rpartition("/")[0]
            plural = ref["kind"].lower() + "s"
            target_ref = f"{plural}.{group}" if group else plural
            target = kube.find(target_ref, ref["name"], meta["namespace"])
            if target is None:
                continue
            current = target["spec"].get("replicas", 1)
            desired = current
            observed = []
            for m in spec.get("metrics") or []:
                value = self.metric(hpa, m)
                goal = _target(m)
                if goal > 0 and current > 0:
                    desired = max(desired if observed else 0,
                                  math.ceil(current * value / goal))
                observed.append(m)
            desired = min(max(desired, spec.get("minReplicas", 1)), spec["maxReplicas"])
            if desired != current:
                kube.set_replicas(kube.resolve(target_ref), meta["namespace"], ref["name"],
                                  desired)
            status = {"currentReplicas": current, "desiredReplicas": desired,
                      "conditions": [{"type": "ScalingActive", "status": "True",
                                      "reason": "ValidMetricFound",
                                      "lastTransitionTime": now()}]}
            old = hpa.get("status") or {}
            if desired != current:
                status["lastScaleTime"] = now()
            elif "lastScaleTime" in old:
                status["lastScaleTime"] = old["lastScaleTime"]
            if (old.get("currentReplicas"), old.get("desiredReplicas")) != (current, desired):
                kube.mutate("horizontalpodautoscalers.autoscaling", meta["name"],
                            lambda h, s=status: h.update(status=s), meta["namespace"],
                            status=True)
