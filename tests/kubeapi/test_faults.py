"""Fault injection and the request log."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
import urllib3
from kubernetes import client

from . import server
from .objects import pod


@pytest.fixture
def core(kube_client):
    return client.CoreV1Api(kube_client)


def test_counted_throttling_is_retried_by_the_client_after_retry_after(kubeapi, core,
                                                                         monkeypatch):
    # urllib3 under the client honours Retry-After on 429: one throttled call costs a retry,
    # after the sleep the header asks for (urllib3 2.x, src/urllib3/util/retry.py,
    # Retry.sleep_for_retry: time.sleep(retry_after)); recorded here, not slept.
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry, "time",
                        SimpleNamespace(time=time.time, sleep=slept.append))
    kubeapi.faults.throttle(r"/pods$", verbs={"list"}, times=1, retry_after=1)
    assert core.list_namespaced_pod("default").items == []
    assert slept == [1]
    assert [r.status for r in kubeapi.requests.matching(verb="list", resource="pods")] == [
        429, 200]


def test_throttling_surfaces_as_429_when_the_client_does_not_retry(kubeapi):
    kubeapi.faults.throttle(r"/pods$", retry_after=2)
    config = kubeapi.configuration()
    config.retries = False
    with client.ApiClient(config) as api, pytest.raises(client.ApiException) as err:
        client.CoreV1Api(api).list_namespaced_pod("default")
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "2"
    assert json.loads(err.value.body)["reason"] == "TooManyRequests"


def test_permanent_server_errors_use_status_bodies(kubeapi, core):
    kubeapi.faults.error(503, resource="configmaps")
    for _ in range(2):
        with pytest.raises(client.ApiException) as err:
            core.list_namespaced_config_map("default")
        assert err.value.status == 503
    assert core.list_namespaced_pod("default").items == []


def test_forbidden_verb_is_403_worded_like_rbac(kubeapi, core):
    kubeapi.faults.forbid({"create"}, "pods", namespace="default")
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod("default", pod("a"))
    body = json.loads(err.value.body)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods is forbidden: User "kubernetes-admin" cannot create '
                               'resource "pods" in API group "" in the namespace "default"')


def test_access_reviews_follow_forbid_rules(kubeapi, kube_client):
    kubeapi.faults.forbid({"delete"}, "nodes")
    authz = client.AuthorizationV1Api(kube_client)

    def allowed(verb: str, resource: str) -> bool:
        return authz.create_self_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource}}}).status.allowed
    assert allowed("list", "nodes") and not allowed("delete", "nodes")


def test_slow_responses_are_delayed(kubeapi, core, monkeypatch):
    # The server's sleep before it answers, recorded rather than slept.
    slept: list[float] = []
    monkeypatch.setattr(server, "time", SimpleNamespace(monotonic=time.monotonic,
                                                        sleep=slept.append))
    kubeapi.faults.slow(0.3, r"/namespaces$", times=1)
    core.list_namespace()
    assert slept == [0.3]
    core.list_namespace()  # times=1: the next answer is not delayed
    assert slept == [0.3]
    assert [r.status for r in kubeapi.requests.matching(verb="list",
                                                        resource="namespaces")] == [200, 200]


def test_dropped_connection_surfaces_as_a_protocol_error(kubeapi):
    kubeapi.faults.drop(r"/nodes$")
    config = kubeapi.configuration()
    config.retries = False
    with client.ApiClient(config) as api, pytest.raises(urllib3.exceptions.HTTPError):
        client.CoreV1Api(api).list_node()


def test_request_log_counts_calls_by_verb_and_resource(kubeapi, core):
    kubeapi.requests.clear()
    core.create_namespaced_pod("default", pod("a"))
    core.read_namespaced_pod("a", "default")
    core.list_namespaced_pod("default")
    assert kubeapi.requests.count(verb="create", resource="pods") == 1
    assert kubeapi.requests.count(method="GET", path=r"/pods") == 2
    last = kubeapi.requests.requests[-1]
    assert (last.status, last.verb) == (200, "list") and last.bytes_sent > 0
