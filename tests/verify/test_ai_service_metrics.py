"""ai_service_metrics against the emulated reference platform plus prometheus-operator:
its CRDs are minimal stand-ins (``tests/kubeapi/controllers/prometheus.py``: the real
group, kinds, names and scope of prometheus-operator's monitoring.coreos.com/v1, spec
schema left open) and Prometheus' HTTP API is a proxy handler that discovers targets
through ServiceMonitors and scrapes the probe's workload."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes import ai_service_metrics
from aicp.verify.probes.ai_service_metrics import AiServiceMetrics
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.prometheus import KPS, MON, monitoring
from tests.verify.conftest import planned

# The emulator answers in milliseconds: poll often, give up early (a request keeps its 30 s).
FAST = Timing(poll=0.05, overrides={"series_timeout": 1.0, "count_timeout": 1.0,
                                    "pod_timeout": 5.0})


def run(kubeapi, kubeconfig):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("sm1", "1.35", images.catalog(), timing=FAST),
                    cleanup_timeout=5).run(planned(AiServiceMetrics))
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    assert report.leftovers == []
    if kubeapi.find("customresourcedefinitions.apiextensions.k8s.io",
                    f"servicemonitors.{MON}"):
        assert kubeapi.list(f"servicemonitors.{MON}") == []
    return report.outcomes[0].result


def test_the_budget_the_runner_grants_is_the_waits_as_the_settings_have_them():
    # pod + series + count + 10 single-attempt requests + a minute for the API calls.
    assert AiServiceMetrics.budget(Settings("sm1", "1.35")) == 300 + 180 + 120 + 10 * 30 + 60
    assert AiServiceMetrics.budget(Settings("sm1", "1.35", timing=FAST)) == \
        5 + 1 + 1 + 10 * 30 + 60


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_workload_series_discovered_through_a_service_monitor_passes(kubeapi, kubeconfig):
    monitoring(kubeapi)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    check = next(c for c in result.evidence.checks
                 if c.name == "the workload's series is queryable in Prometheus")
    assert check.passed and '"run": "sm1"' in check.observed
    assert '"namespace": "aicp-verify-sm1-ai-service-metrics"' in check.observed
    assert result.evidence.observations["serviceMonitor"].startswith(
        "aicp-verify-sm1-ai-service-metrics/")
    assert "via service kube-prometheus-stack-prometheus" in \
        result.evidence.observations["prometheus"]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_helm_default_selectors_get_the_release_label_and_the_prometheus_namespace(
        kubeapi, kubeconfig):
    """kps defaults: ServiceMonitors need ``release: <release>``; a null namespace
    selector means only Prometheus' own namespace."""
    monitoring(kubeapi, selector={"matchLabels": {"release": KPS}}, ns_selector=False)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["serviceMonitor"].startswith("monitoring/aicp-verify")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_series_never_collected_from_a_ready_workload_fails(kubeapi, kubeconfig):
    monitoring(kubeapi, discovers=False)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert 'did not collect aicp_verify_probe_up{run="sm1"}' in result.reason
    assert "scrape target: not discovered" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_the_service_monitor_api_the_mechanism_is_unknown(kubeconfig, kubeapi):
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "no ServiceMonitor API" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_a_prometheus_the_probe_cannot_decide(kubeapi, kubeconfig):
    monitoring(kubeapi, prometheus=False)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.ERROR
    assert "Prometheus not found" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_ignore_namespace_selectors_puts_the_workload_beside_its_service_monitor(kubeapi,
                                                                               kubeconfig):
    # Before: the ServiceMonitor in Prometheus' namespace pointed at the probe's namespace,
    # which ignoreNamespaceSelectors makes invisible: a false FAIL.
    monitoring(kubeapi, selector={"matchLabels": {"release": KPS}}, ns_selector=False,
               ignoreNamespaceSelectors=True)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["settings"]["workload"] == "monitoring"
    assert kubeapi.list("deployments.apps", "monitoring", labels=RUN_LABEL) == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_an_enforced_namespace_label_is_the_service_monitors_namespace(kubeapi, kubeconfig):
    monitoring(kubeapi, selector={"matchLabels": {"release": KPS}}, ns_selector=False,
               enforcedNamespaceLabel="namespace")
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["enforcedNamespaceLabel"] == {
        "namespace": "monitoring", "serviceMonitorNamespace": "monitoring"}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_ignore_namespace_selectors_with_a_prometheus_that_never_scrapes_fails(kubeapi,
                                                                             kubeconfig):
    monitoring(kubeapi, selector={"matchLabels": {"release": KPS}}, ns_selector=False,
               ignoreNamespaceSelectors=True, discovers=False)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert "scrape target: not discovered" in result.reason


# The WG test's check (kubernetes-sigs/ai-conformance test/ai_service_metrics_test.go,
# TestAIServiceMetrics): a known number of requests (metricsRequestCount, 10), and
# Prometheus must show that count. Before, any series passed, whatever Prometheus made of
# the workload's traffic.
WORKLOAD_NS = "aicp-verify-sm1-ai-service-metrics"
COUNT = 'aicp_verify_requests_total{run="sm1"}'


def count_check(result):
    return next(c for c in result.evidence.checks if c.name.startswith("Prometheus counts"))


def proxied_requests(kubeapi) -> int:
    return kubeapi.requests.count(method="GET",
                                  path=r"/services/metrics:http/proxy/cgi-bin/infer$")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_the_requests_sent_are_the_count_prometheus_shows(kubeapi, kubeconfig):
    # Scrapes 0.3 s apart: the first one (before any request) saw 0; PASS needs a later one.
    monitoring(kubeapi, scrape_every=0.3)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert count_check(result).passed
    assert count_check(result).observed == f"{COUNT} = 10"
    assert "counted the 10 requests" in result.reason
    assert proxied_requests(kubeapi) == ai_service_metrics.REQUESTS


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_count_that_stays_below_the_requests_sent_fails_with_both_figures(kubeapi,
                                                                          kubeconfig):
    # The only scrape is the one that found the series before any request: 0 stays 0.
    monitoring(kubeapi, scrape_every=3600)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL, result.reason
    assert "expected 10, observed 0 after 1s" in result.reason
    assert not count_check(result).passed


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_requests_answered_without_reaching_the_pod_are_not_counted(kubeapi, kubeconfig):
    # Something in front of the Service answers 'ok' itself: the pod counts nothing.
    monitoring(kubeapi)
    kubeapi.proxy("service", "metrics", lambda *a: (200, {"Content-Type": "text/plain"},
                                                     "ok\n"), namespace=WORKLOAD_NS)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL, result.reason
    assert "expected 10, observed 0" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_more_requests_counted_than_sent_fails_at_once(kubeapi, kubeconfig):
    # A proxy that delivers every request twice: 20 counted, and waiting cannot fix it.
    from tests.kubeapi.controllers import httpd
    monitoring(kubeapi)

    def twice(method, path, query, body):
        httpd.proxied(kubeapi, "services", WORKLOAD_NS, "metrics", "http", method, path, query)
        return httpd.proxied(kubeapi, "services", WORKLOAD_NS, "metrics", "http", method,
                             path, query)
    kubeapi.proxy("service", "metrics", twice, namespace=WORKLOAD_NS)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.FAIL, result.reason
    assert "expected 10, observed 20 (more than were sent)" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_failed_request_leaves_the_count_unknown_and_is_not_retried(kubeapi, kubeconfig):
    monitoring(kubeapi)
    kubeapi.proxy("service", "metrics", lambda *a: (502, {"Content-Type": "text/plain"},
                                                     "bad gateway"), namespace=WORKLOAD_NS)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.ERROR, result.reason
    assert "request 1/10" in result.reason and "count Prometheus should show is unknown" in \
        result.reason
    assert proxied_requests(kubeapi) == 1  # a retry could have been counted twice


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_workload_replaced_after_the_requests_cannot_be_judged(kubeapi, kubeconfig):
    # The pod that counted the requests goes away; its replacement starts from 0.
    from tests.kubeapi.controllers import httpd
    monitoring(kubeapi)
    served = []

    def then_evicted(method, path, query, body):
        answer = httpd.proxied(kubeapi, "services", WORKLOAD_NS, "metrics", "http", method,
                               path, query)
        served.append(answer)
        if len(served) == ai_service_metrics.REQUESTS:
            for pod in kubeapi.list("pods", WORKLOAD_NS, labels="app=metrics"):
                kubeapi.delete("pods", pod["metadata"]["name"], WORKLOAD_NS)
        return answer
    kubeapi.proxy("service", "metrics", then_evicted, namespace=WORKLOAD_NS)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.ERROR, result.reason
    assert "was replaced by a new pod, which resets its counter" in result.reason


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_prometheus_that_stops_answering_before_the_count_is_error_not_fail(kubeapi,
                                                                            kubeconfig):
    from tests.kubeapi.controllers.prometheus import Prometheus
    monitoring(kubeapi)
    prometheus = Prometheus(kubeapi, "monitoring", f"{KPS}-prometheus")

    def until_the_count(method, path, query, body):
        if "aicp_verify_requests_total" in query.get("query", "") or \
                query.get("query") == "vector(1)":
            return 503, {"Content-Type": "text/plain"}, "no healthy upstream"
        return prometheus(method, path, query, body)
    kubeapi.proxy("service", f"{KPS}-prometheus", until_the_count, namespace="monitoring",
                  port=9090)
    result = run(kubeapi, kubeconfig)
    assert result.verdict is Verdict.ERROR, result.reason
    assert "cannot query Prometheus through the API server proxy" in result.reason
    assert "HTTP 503" in result.reason


@pytest.mark.kubeapi("reference-platform")
def test_a_single_attempt_request_is_not_repeated_and_does_not_mark_the_cluster_lost(
        kubeapi, kubeconfig):
    from aicp.verify.kube import Lost
    kube = connect(kubeconfig)
    kubeapi.faults.drop(r"/api/v1/namespaces/default/services/x:http/proxy/count$")
    with pytest.raises(Lost):
        kube.request("GET", "/api/v1/namespaces/default/services/x:http/proxy/count",
                     text=True, once=True)
    assert kubeapi.requests.count(path=r"/services/x:http/proxy/count$") == 1
    assert kube.lost is None  # later requests still get their retries
