"""A 403 names the permission an admin must grant (verify/kube/rbac.py)."""

from __future__ import annotations

import kubernetes.client
import pytest

from aicp.verify.kube import Forbidden
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.verify.conftest import planned, probe, settings


def test_forbidden_names_verb_resource_and_namespace(kubeapi, kube):
    kubeapi.faults.forbid(verbs=["create"], resource="pods", namespace="team")
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    with pytest.raises(Forbidden, match="missing permission: create pods in namespace team"):
        kube.api(kubernetes.client.CoreV1Api).create_namespaced_pod("team", body)


def test_a_probe_hitting_403_is_error_naming_the_permission(kubeapi, kube):
    kubeapi.faults.forbid(verbs=["create"], resource="namespaces")

    def body(ctx):
        ctx.namespace()

    report = Runner(kube, settings()).run(planned(probe("dra_support", body)))
    result = report.outcomes[0].result
    assert (result.verdict, result.reason) == (
        Verdict.ERROR, "missing permission: create namespaces (cluster-wide)")
