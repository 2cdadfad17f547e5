"""Monitoring: prometheus-operator CRDs first, then kube-prometheus-stack scraping everything.

``../shared`` has no copy of these charts. Keys read upstream in prometheus-community/
helm-charts: ``charts/kube-prometheus-stack/values.yaml`` (``fullnameOverride``,
``crds.enabled``, ``prometheus.prometheusSpec.*SelectorNilUsesHelmValues``, ``grafana``,
``kubeControllerManager``/``kubeScheduler``/``kubeEtcd``) and ``templates/_helpers.tpl``
(Prometheus Service ``<fullname>-prometheus``).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from aicp.addons.catalog import CHARTS
from aicp.cli import offline
from aicp.components.contract import CONFORMANCE_OUTPUT
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import NAMESPACE, invalid_objects, release_of, unpinned_releases

TOKEN = "aicp:addons:Monitoring"
CRDS, STACK = CHARTS["prometheus-operator-crds"], CHARTS["kube-prometheus-stack"]


def _plan(target: str = "aws", **monitoring_args) -> offline.Plan:
    def program() -> None:
        from aicp.addons.monitoring import Monitoring, MonitoringArgs
        from aicp.components.contract import GpuPoolRequest

        pools = None
        if target == "onprem":
            pools = (GpuPoolRequest(name="a100", accelerator="a100", max_nodes=2,
                                    instance_type="dgx", gpus_per_node=8),)
        cluster = make_cluster(target, pools) if pools else make_cluster(target)
        monitoring = Monitoring("monitoring", cluster, MonitoringArgs(**monitoring_args))
        # What the stack does with the GPU Operator: wait for the ServiceMonitor CRD.
        k8s.core.v1.ConfigMap("gpu-operator-stand-in",
                              opts=pulumi.ResourceOptions(depends_on=[monitoring.crds]))

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def stack_values(plan: offline.Plan) -> dict:
    return release_of(plan, STACK).inputs["values"]


def test_crds_and_stack_are_pinned_to_the_catalog(plan):
    assert unpinned_releases(plan) == []
    assert release_of(plan, CRDS) and release_of(plan, STACK)


def test_crds_are_their_own_release_and_the_stack_installs_none(plan):
    assert plan.depends_on(release_of(plan, STACK), release_of(plan, CRDS))
    assert stack_values(plan)["crds"] == {"enabled": False}


def test_the_gpu_operator_can_wait_for_the_servicemonitor_crd(plan):
    waiting = plan.one("kubernetes:core/v1:ConfigMap", "gpu-operator-stand-in")
    assert plan.depends_on(waiting, release_of(plan, CRDS))
    assert not plan.depends_on(waiting, release_of(plan, STACK))


@pytest.mark.parametrize("kind", ["serviceMonitor", "podMonitor", "rule", "probe"])
def test_prometheus_selects_monitors_of_every_release_not_only_its_own(plan, kind):
    spec = stack_values(plan)["prometheus"]["prometheusSpec"]
    assert spec[f"{kind}SelectorNilUsesHelmValues"] is False


def test_published_url_is_the_service_the_chart_names(plan):
    release, outputs = release_of(plan, STACK), plan.one(TOKEN).outputs
    fullname = stack_values(plan)["fullnameOverride"]
    assert len(fullname) <= 26  # the chart truncates longer names
    assert outputs["prometheusUrl"] == (
        f"http://{fullname}-prometheus.{release.inputs['namespace']}.svc:9090")


def test_node_exporter_namespace_is_privileged(plan):
    [ns] = plan.of_type(NAMESPACE)
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    for chart in (CRDS, STACK):
        release = release_of(plan, chart)
        assert release.inputs["namespace"] == ns.inputs["metadata"]["name"]
        assert plan.depends_on(release, ns)


def test_managed_control_planes_are_not_scraped(plan):
    values = stack_values(plan)
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):
        assert values[component] == {"enabled": False}


def test_self_managed_control_planes_are_scraped():
    values = stack_values(_plan("onprem"))
    assert not {"kubeControllerManager", "kubeScheduler", "kubeEtcd"} & set(values)


def test_grafana_is_opt_in():
    assert stack_values(_plan())["grafana"] == {"enabled": False}
    assert stack_values(_plan(grafana=True))["grafana"] == {"enabled": True}


def test_stack_waits_long_enough_for_its_webhook_certificate_jobs(plan):
    assert release_of(plan, STACK).inputs["timeout"] >= 600
    assert not release_of(plan, STACK).inputs.get("skipAwait")


def test_every_declared_object_validates_against_kubernetes_1_35(plan):
    assert invalid_objects(plan) == {}


def test_monitoring_serves_service_and_accelerator_metrics(plan):
    assert plan.one(TOKEN).outputs[CONFORMANCE_OUTPUT] == [
        "ai_service_metrics", "accelerator_metrics"]


# --- targets whose scrape targets do not exist (issue #25 item 6) --------------------------

def _plan_with(target: str, features: dict) -> offline.Plan:
    def program() -> None:
        from aicp.addons.monitoring import Monitoring
        from aicp.components.contract import GpuPoolRequest

        pools = {"onprem": (GpuPoolRequest(name="a100", accelerator="a100", max_nodes=2,
                                           instance_type="dgx", gpus_per_node=8),),
                 "azure": (GpuPoolRequest(name="a100", accelerator="a100",
                                          max_nodes=2),)}.get(target)
        cluster = (make_cluster(target, pools, features=features) if pools
                   else make_cluster(target, features=features))
        Monitoring("monitoring", cluster)

    return offline.run(program, {})


def _chart_top_level_switches() -> dict:
    import yaml

    from tests.shared import require_shared

    path = require_shared("chartdata", f"kube-prometheus-stack-{STACK.version}", "values.yaml")
    return {k: v for k, v in yaml.safe_load(path.read_text()).items()
            if isinstance(v, dict) and "enabled" in v}


@pytest.mark.parametrize("target", ["aws", "gcp"])
def test_kube_proxy_is_not_scraped_where_it_is_unreachable_or_absent(target):
    # EKS binds kube-proxy metrics to 127.0.0.1:10249; GKE Dataplane V2 runs no kube-proxy.
    values = stack_values(_plan_with(target, {}))
    assert values["kubeProxy"] == {"enabled": False}
    # The key switches the chart's own default (true) off, as its values.yaml names it.
    assert _chart_top_level_switches()["kubeProxy"]["enabled"] is True


def test_k3s_control_plane_and_kube_proxy_are_not_scraped():
    # Inside the k3s process, bound to 127.0.0.1; etcd metrics off by default.
    values = stack_values(_plan_with("onprem", {"mode": "k3s"}))
    switches = _chart_top_level_switches()
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert values[component] == {"enabled": False}
        assert switches[component]["enabled"] is True


def test_an_existing_on_prem_cluster_and_aks_keep_kube_proxy_scraped():
    assert "kubeProxy" not in stack_values(_plan_with("onprem", {"mode": "existing"}))
    assert "kubeProxy" not in stack_values(_plan_with("azure", {}))
