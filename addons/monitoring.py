"""Prometheus for accelerator and AI-service metrics: prometheus-operator CRDs, then
kube-prometheus-stack.

The CRDs are their own release, installed first and exposed as ``crds``: the GPU Operator
must find the ServiceMonitor CRD when it reconciles or it silently skips the DCGM
exporter's ServiceMonitor, and the endpoint picker's chart creates a ServiceMonitor too.
kube-prometheus-stack then runs with ``crds.enabled: false`` and selects every
ServiceMonitor/PodMonitor/rule/probe/scrape config in the cluster, not only those
labelled ``release: <this release>`` (its default), so DCGM and workload monitors are
scraped as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

# Release name and fullnameOverride: the chart names the Prometheus Service
# "<fullname>-prometheus" (fullname truncated to 26 characters).
STACK_NAME = "kube-prometheus-stack"
PROMETHEUS_PORT = 9090

# Control-plane components a managed Kubernetes service does not let anyone scrape: their
# targets would stay down and their alerts fire forever.
_MANAGED_CONTROL_PLANE = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class MonitoringArgs:
    namespace: str = "monitoring"
    retention: str = "15d"
    grafana: bool = False


class Monitoring(Addon):
    """prometheus-operator CRDs, then kube-prometheus-stack scraping every ServiceMonitor."""

    token = "aicp:addons:Monitoring"
    serves = ("ai_service_metrics", "accelerator_metrics")

    def __init__(self, name: str, cluster: ClusterOutputs, args: MonitoringArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or MonitoringArgs()
        # node-exporter needs the host's network, PID namespace and filesystem.
        ns = self.create_namespace(f"{name}-ns", args.namespace, "privileged")

        crds_chart, stack_chart = CHARTS["prometheus-operator-crds"], CHARTS[
            "kube-prometheus-stack"]
        self.crds = self.helm_release(
            f"{name}-crds", crds_chart, name="prometheus-operator-crds",
            namespace=ns.metadata.name, values={}, depends_on=[ns])

        spec: dict[str, Any] = {"retention": args.retention}
        for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig"):
            spec[f"{kind}SelectorNilUsesHelmValues"] = False
        values = {
            "fullnameOverride": STACK_NAME,
            "crds": {"enabled": False},
            "prometheus": {"prometheusSpec": spec},
            "grafana": {"enabled": args.grafana},
        }
        if cluster.target in _MANAGED_CONTROL_PLANE:
            for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):
                values[component] = {"enabled": False}
        for component in unscrapable(cluster):
            values[component] = {"enabled": False}
        self.stack = self.helm_release(
            f"{name}-stack", stack_chart, name=STACK_NAME, namespace=ns.metadata.name,
            values=values,
            # The operator's admission-webhook certificate is made by Helm hook Jobs.
            timeout=600, depends_on=[self.crds, ns])

        self.namespace = args.namespace
        self.prometheus_service = f"http://{STACK_NAME}-prometheus.{args.namespace}.svc"
        self.prometheus_port = PROMETHEUS_PORT
        self.prometheus_url = f"{self.prometheus_service}:{PROMETHEUS_PORT}"
        self.finish(namespace=args.namespace, prometheusUrl=self.prometheus_url,
                    operatorCrdsVersion=crds_chart.version, stackVersion=stack_chart.version)


def unscrapable(cluster: ClusterOutputs) -> tuple[str, ...]:
    """kube-prometheus-stack components (each ``<key>.enabled``, true by default in
    kube-prometheus-stack-88.5.3 values.yaml) whose targets this cluster never serves.

    - EKS: the kube-proxy add-on binds its metrics to 127.0.0.1:10249
      (``metricsBindAddress: 127.0.0.1:10249`` in the kube-proxy-config ConfigMap EKS
      creates; https://docs.aws.amazon.com/eks/latest/userguide/managing-kube-proxy.html),
      so Prometheus cannot reach it from a pod.
    - GKE: Dataplane V2 (on in components/gcp.py) runs no kube-proxy at all
      (https://cloud.google.com/kubernetes-engine/docs/concepts/dataplane-v2: "kube-proxy
      is not deployed").
    - k3s: controller-manager, scheduler and kube-proxy run inside the k3s process and
      bind their metrics to 127.0.0.1, and etcd metrics are off unless
      ``--etcd-expose-metrics`` (https://docs.k3s.io/cli/server, "Listeners" and
      "Database" flags). An existing on-prem cluster is left to the chart's defaults.
    """
    if cluster.target in ("aws", "gcp"):
        return ("kubeProxy",)
    if cluster.target == "onprem" and cluster.features.get("mode") == "k3s":
        return ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")
    return ()
