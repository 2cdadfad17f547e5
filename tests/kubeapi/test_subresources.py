"""Logs, proxies, binding and scale: the subresources probes use."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from .objects import pod, service


@pytest.fixture
def core(kube_client):
    return client.CoreV1Api(kube_client)


def test_pod_log_returns_what_the_container_printed(kubeapi, core):
    core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod_log("a", "default")
    assert err.value.status == 400  # still ContainerCreating
    kubeapi.mutate("pods", "a", lambda p: p["status"].update(phase="Running"), "default",
                   status=True)
    kubeapi.logs[("default", "a", "main")] = "one\ntwo\n"
    assert core.read_namespaced_pod_log("a", "default", container="main") == "one\ntwo\n"
    assert core.read_namespaced_pod_log("a", "default", tail_lines=1) == "two\n"


def test_service_proxy_is_served_by_a_test_handler(kubeapi, core):
    core.create_namespaced_service("monitoring-test" if False else "default",
                                   service("prometheus", "default", 9090))
    seen = []

    def prometheus(method, path, query, body):
        seen.append((method, path, query))
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": []}})
    kubeapi.proxy("service", "prometheus", prometheus, port=9090)
    out = core.connect_get_namespaced_service_proxy_with_path(
        "prometheus:9090", "default", "api/v1/query", path2="?query=up")
    assert "success" in str(out)
    assert seen[0][:2] == ("GET", "/api/v1/query")


def test_pod_proxy_without_a_handler_is_503(core):
    core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(client.ApiException) as err:
        core.connect_get_namespaced_pod_proxy_with_path("a:8080", "default", "metrics")
    assert err.value.status == 503


def test_binding_assigns_a_node(core):
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod_binding("a", "default", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}},
        _preload_content=False)
    assert core.read_namespaced_pod("a", "default").spec.node_name == "n1"


def test_scale_subresource_reads_and_sets_replicas(kube_client):
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 3 and scale.status.selector == "app=web"
