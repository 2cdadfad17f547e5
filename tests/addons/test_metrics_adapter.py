"""prometheus-adapter: GPU utilisation per pod through custom.metrics.k8s.io, installed last.

``../shared`` has no copy of the prometheus-adapter chart. Keys read upstream in
prometheus-community/helm-charts ``charts/prometheus-adapter/values.yaml``:
``prometheus.url``/``prometheus.port`` (the URL without the port, the chart joins them)
and ``rules.custom`` (the adapter's rule format: seriesQuery, resources.overrides,
name.matches/as, metricsQuery).
"""

from __future__ import annotations

import pytest

from aicp.addons.catalog import CHARTS
from aicp.cli import offline
from aicp.components.contract import CONFORMANCE_OUTPUT
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import declared_objects, release_of, unpinned_releases

TOKEN = "aicp:addons:MetricsAdapter"
ADAPTER = CHARTS["prometheus-adapter"]


def _plan(**adapter_args) -> offline.Plan:
    def program() -> None:
        from aicp.addons.metrics_adapter import MetricsAdapter, MetricsAdapterArgs
        from aicp.addons.monitoring import Monitoring

        cluster = make_cluster()
        monitoring = Monitoring("monitoring", cluster)
        MetricsAdapter("adapter", cluster, MetricsAdapterArgs(
            prometheus_url=monitoring.prometheus_service,
            prometheus_port=monitoring.prometheus_port, namespace=monitoring.namespace,
            after=(monitoring,), **adapter_args))

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def values(plan: offline.Plan) -> dict:
    return release_of(plan, ADAPTER).inputs["values"]


def gpu_rule(plan: offline.Plan) -> dict:
    [rule] = [r for r in values(plan)["rules"]["custom"] if r["name"]["as"] == "gpu_utilization"]
    return rule


def test_chart_is_pinned_to_the_catalog(plan):
    assert unpinned_releases(plan) == []
    assert release_of(plan, ADAPTER)


def test_reads_the_prometheus_that_monitoring_publishes(plan):
    prometheus = values(plan)["prometheus"]
    published = plan.one("aicp:addons:Monitoring").outputs["prometheusUrl"]
    assert f"{prometheus['url']}:{prometheus['port']}" == published


def test_installed_after_kube_prometheus_stack(plan):
    adapter = release_of(plan, ADAPTER)
    assert plan.depends_on(adapter, release_of(plan, CHARTS["kube-prometheus-stack"]))
    assert plan.depends_on(adapter, release_of(plan, CHARTS["prometheus-operator-crds"]))


def test_gpu_utilization_is_the_workload_pods_not_the_exporters(plan):
    # The GPU Operator's DCGM ServiceMonitor has honorLabels false: Prometheus keeps the
    # exporter's own pod/namespace and renames the workload's to exported_*.
    rule = gpu_rule(plan)
    assert rule["seriesQuery"].startswith("DCGM_FI_DEV_GPU_UTIL{")
    assert 'exported_pod!=""' in rule["seriesQuery"]
    assert 'exported_namespace!=""' in rule["seriesQuery"]
    assert rule["resources"]["overrides"] == {
        "exported_namespace": {"resource": "namespace"},
        "exported_pod": {"resource": "pod"}}


def test_honoured_labels_map_pod_and_namespace_directly():
    rule = gpu_rule(_plan(honor_labels=True))
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert "exported_" not in rule["seriesQuery"]


def test_gpu_utilization_averages_per_requested_object(plan):
    rule = gpu_rule(plan)
    assert rule["name"]["matches"] == "^DCGM_FI_DEV_GPU_UTIL$"
    assert rule["metricsQuery"] == "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"


def test_shares_the_monitoring_namespace_and_declares_no_objects_of_its_own(plan):
    assert release_of(plan, ADAPTER).inputs["namespace"] == "monitoring"
    adapter = plan.one(TOKEN)
    assert [r for r in declared_objects(plan) if r in plan.descendants(adapter)] == []


def test_metrics_adapter_serves_pod_autoscaling(plan):
    outputs = plan.one(TOKEN).outputs
    assert outputs[CONFORMANCE_OUTPUT] == ["pod_autoscaling"]
    assert outputs["customMetrics"] == ["gpu_utilization"]
