"""Transient failures are retried; a cluster that went away is ``Lost`` (verify/kube/retry.py)."""

from __future__ import annotations

import kubernetes.client
import pytest

from aicp.verify.kube import Lost
from aicp.verify.probe import RUN_LABEL


def test_throttling_and_unavailable_are_retried_until_the_call_succeeds(kubeapi, kube):
    kubeapi.faults.throttle(verbs=["list"], resource="nodes", times=2, retry_after=0)
    kubeapi.faults.error(503, verbs=["list"], resource="nodes", times=1)
    nodes = kube.api(kubernetes.client.CoreV1Api).list_node()
    assert nodes.items == []
    assert [r.split(",")[0] for r in kube.retries] == ["list_node: HTTP 429"] * 2 + [
        "list_node: HTTP 503"]


def test_a_dropped_connection_is_retried(kubeapi, kube):
    kubeapi.faults.drop(path="/api/v1/namespaces$", times=1)
    kube.create_namespace("aicp-verify-r1-x", {RUN_LABEL: "r1"})
    assert kube.request("GET", "/api/v1/namespaces/aicp-verify-r1-x")["metadata"]["name"]


def test_a_cluster_that_went_away_is_lost_and_later_requests_fail_fast(
        kubeapi, kube, monkeypatch):
    monkeypatch.setattr("aicp.verify.kube.retry._backoff", lambda *a: 0.0)
    kubeapi.stop()
    with pytest.raises(Lost, match=r"lost the connection to the cluster http://127.0.0.1:\d+ "
                                   r"\(Connection refused\) during get /api/v1/namespaces"):
        kube.request("GET", "/api/v1/namespaces")
    assert kube.lost == "Connection refused"
    assert len(kube.retries) == 5  # six attempts before giving up
    # Once lost, a request is tried once: the wait gives up at the first refusal.
    assert kube.wait_namespaces_gone(["a", "b"], timeout=60) == ["a", "b"]
    assert len(kube.retries) == 5
