"""More than one Prometheus in a world, and Prometheus under a ``routePrefix``.

prometheus-operator runs each Prometheus with ``--web.route-prefix`` = ``spec.routePrefix``
(``/`` when unset), and Prometheus serves its HTTP API only under that prefix
(prometheus/prometheus web/web.go); each Prometheus scrapes the ServiceMonitors its own
selectors pick.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.kubeapi import objects as o
from tests.kubeapi.controllers.kubelet import Kubelet
from tests.kubeapi.controllers.prometheus import MON, add_prometheus, monitoring
from tests.kubeapi.controllers.scheduler import Scheduler


def _exporter(kube, name: str, value: str) -> None:
    """A busybox httpd serving ``<name>_up <value>`` as text/plain at /metrics.txt."""
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": name, "namespace": "default"},
                 "data": {"metrics.txt": f"# TYPE demo_up gauge\ndemo_up {value}\n"}})
    pod = o.pod(f"{name}-0", command=["httpd", "-f", "-p", "8080", "-h", "/www"],
                labels={"app": name}, restart_policy="Always")
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "www", "mountPath": "/www"}]
    pod["spec"]["volumes"] = [{"name": "www", "configMap": {"name": name}}]
    kube.create(pod)
    svc = o.service(name, "default", 8080, selector={"app": name})
    svc["metadata"]["labels"] = {"app": name}
    kube.create(svc)


def _monitor(kube, name: str, app: str, prometheus: str) -> None:
    kube.create({"apiVersion": f"{MON}/v1", "kind": "ServiceMonitor",
                 "metadata": {"name": name, "namespace": "default",
                              "labels": {"prometheus": prometheus}},
                 "spec": {"selector": {"matchLabels": {"app": app}},
                          "endpoints": [{"port": "http", "path": "/metrics.txt"}]}})


@pytest.fixture
def two_prometheuses(kubeapi_factory):
    kube = kubeapi_factory("empty")
    kube.seed([o.node("n1"), o.namespace("mon-a"), o.namespace("mon-b")])
    kube.add(Scheduler(), Kubelet())
    monitoring(kube, prometheus=False)  # the operator's CRDs only
    add_prometheus(kube, "prom-a", "mon-a", selector={"matchLabels": {"prometheus": "a"}},
                   route_prefix="/prometheus")
    add_prometheus(kube, "prom-b", "mon-b", selector={"matchLabels": {"prometheus": "b"}})
    _exporter(kube, "alpha", "1")
    _exporter(kube, "beta", "0")
    _monitor(kube, "alpha", "alpha", "a")
    _monitor(kube, "beta", "beta", "b")
    kube.settle()
    return kube


def _get(kube, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(kube.url + path, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _query(kube, ns: str, svc: str, prefix: str, expr: str) -> list[tuple[str, str]]:
    code, body = _get(kube, f"/api/v1/namespaces/{ns}/services/{svc}:9090/proxy{prefix}"
                            f"/api/v1/query?query={expr}")
    assert code == 200, body
    return [(r["metric"]["job"], r["value"][1]) for r in json.loads(body)["data"]["result"]]


def test_the_query_api_lives_under_the_route_prefix(two_prometheuses):
    kube = two_prometheuses
    assert _query(kube, "mon-a", "prom-a", "/prometheus", "demo_up") == [("alpha", "1")]
    code, body = _get(kube, "/api/v1/namespaces/mon-a/services/prom-a:9090/proxy/api/v1/"
                            "query?query=demo_up")
    assert (code, body) == (404, "404 page not found\n")


def test_each_prometheus_scrapes_what_its_own_selectors_pick(two_prometheuses):
    kube = two_prometheuses
    assert _query(kube, "mon-b", "prom-b", "", "demo_up") == [("beta", "0")]
    assert _query(kube, "mon-a", "prom-a", "/prometheus", "demo_up") == [("alpha", "1")]


def test_a_route_prefix_set_later_moves_the_api(two_prometheuses):
    kube = two_prometheuses
    kube.patch(f"prometheuses.{MON}", "prom-b", {"spec": {"routePrefix": "/b/"}}, "mon-b")
    assert _query(kube, "mon-b", "prom-b", "/b", "demo_up") == [("beta", "0")]
    assert _get(kube, "/api/v1/namespaces/mon-b/services/prom-b:9090/proxy/api/v1/query"
                      "?query=demo_up")[0] == 404


def test_the_default_monitoring_stack_still_answers_at_the_root(kubeapi_factory):
    kube = kubeapi_factory("empty")
    kube.seed([o.namespace("monitoring")])
    monitoring(kube)
    code, body = _get(kube, "/api/v1/namespaces/monitoring/services/"
                            "kube-prometheus-stack-prometheus:9090/proxy/api/v1/targets")
    assert code == 200 and json.loads(body)["status"] == "success"
