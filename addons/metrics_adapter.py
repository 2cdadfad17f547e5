"""prometheus-adapter: Prometheus series as ``custom.metrics.k8s.io`` for the HPA.

It registers the aggregated APIService ``v1beta1.custom.metrics.k8s.io``. While its pod is
not Ready, discovery reports that group as failed; Helm (v3.21.4 ``pkg/action/action.go``)
and pulumi-kubernetes (``provider/pkg/clients/clients.go``) warn and go on with the groups
that answered, so it installs beside the other addons, after the Prometheus it reads
(``after``).

GPU utilisation per pod comes from the DCGM exporter. The GPU Operator's ServiceMonitor
keeps ``honorLabels: false``, so Prometheus renames the exporter's ``pod``/``namespace``
labels (the workload's) to ``exported_pod``/``exported_namespace`` and the plain ones name
the exporter pod (NVIDIA/dcgm-exporter#85). The rule maps the exported ones to the pod and
namespace resources; set ``honor_labels=True`` if the exporter's monitor honours labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

GPU_METRIC = "gpu_utilization"
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"


@dataclass(frozen=True)
class MetricsAdapterArgs:
    # Prometheus base URL without the port, e.g. Monitoring.prometheus_service.
    prometheus_url: str
    prometheus_port: int = 9090
    namespace: str = "monitoring"
    # Whether the DCGM exporter's ServiceMonitor honours the exporter's pod labels.
    honor_labels: bool = False
    # The Prometheus it reads (the Monitoring addon) and everything to install before it.
    after: Sequence[pulumi.Resource] = ()


def gpu_utilization_rule(honor_labels: bool = False) -> dict:
    """A custom-metrics rule: average DCGM GPU utilisation (%) per pod and namespace."""
    pod, namespace = ("pod", "namespace") if honor_labels else (
        "exported_pod", "exported_namespace")
    return {
        "seriesQuery": f'{DCGM_GPU_UTIL}{{{namespace}!="",{pod}!=""}}',
        "resources": {"overrides": {
            namespace: {"resource": "namespace"}, pod: {"resource": "pod"}}},
        "name": {"matches": f"^{DCGM_GPU_UTIL}$", "as": GPU_METRIC},
        "metricsQuery": "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }


class MetricsAdapter(Addon):
    """prometheus-adapter serving ``gpu_utilization`` per pod to HorizontalPodAutoscalers."""

    token = "aicp:addons:MetricsAdapter"
    serves = ("pod_autoscaling",)

    def __init__(self, name: str, cluster: ClusterOutputs, args: MetricsAdapterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        chart = CHARTS["prometheus-adapter"]
        values = {
            "prometheus": {"url": args.prometheus_url, "port": args.prometheus_port},
            "rules": {"custom": [gpu_utilization_rule(args.honor_labels)]},
        }
        self.release = self.helm_release(
            f"{name}-release", chart, name="prometheus-adapter", namespace=args.namespace,
            values=values, depends_on=args.after)
        self.finish(customMetrics=[GPU_METRIC], apiService="v1beta1.custom.metrics.k8s.io")
