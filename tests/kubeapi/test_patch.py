"""Merge, strategic merge, JSON patch and server-side apply through the client."""

from __future__ import annotations

import pytest
from kubernetes import client, dynamic

from .objects import pod


@pytest.fixture
def core(kube_client):
    return client.CoreV1Api(kube_client)


def _two_containers():
    body = pod("a")
    body["spec"]["containers"] = [
        {"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]},
        {"name": "side", "image": "busybox"}]
    return body


def test_strategic_merge_merges_containers_and_env_by_name(core):
    core.create_namespaced_pod("default", _two_containers())
    patched = core.patch_namespaced_pod("a", "default", {"spec": {"containers": [
        {"name": "main", "env": [{"name": "B", "value": "2"}]}]}})
    main = patched.spec.containers[0]
    assert [c.name for c in patched.spec.containers] == ["main", "side"]
    assert [(e.name, e.value) for e in main.env] == [("A", "1"), ("B", "2")]


def test_strategic_merge_patch_delete_directive_removes_a_list_item(core):
    core.create_namespaced_pod("default", _two_containers())
    patched = core.patch_namespaced_pod("a", "default", {"spec": {"containers": [
        {"name": "main", "env": [{"name": "A", "$patch": "delete"}]}]}})
    assert not patched.spec.containers[0].env


def test_json_merge_patch_replaces_lists(kube_client):
    dc = dynamic.DynamicClient(kube_client)
    pods = dc.resources.get(api_version="v1", kind="Pod")
    pods.create(body=_two_containers(), namespace="default")
    patched = pods.patch(name="a", namespace="default",
                         content_type="application/merge-patch+json",
                         body={"spec": {"containers": [{"name": "side", "image": "alpine"}]}})
    assert [c["name"] for c in patched.to_dict()["spec"]["containers"]] == ["side"]


def test_json_patch_applies_operations_in_order(core):
    core.create_namespaced_pod("default", pod("a", labels={"old": "1"}))
    patched = core.patch_namespaced_pod("a", "default", [
        {"op": "add", "path": "/metadata/labels/new", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/old"}])
    assert patched.metadata.labels == {"new": "2"}


def test_server_side_apply_creates_then_updates_and_drops_unapplied_fields(kube_client):
    dc = dynamic.DynamicClient(kube_client)
    cms = dc.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "1", "b": "2"}}
    created = cms.server_side_apply(body=body, name="cfg", namespace="default",
                                    field_manager="aicp")
    assert created.to_dict()["data"] == {"a": "1", "b": "2"}
    body["data"] = {"a": "3"}
    applied = cms.server_side_apply(body=body, name="cfg", namespace="default",
                                    field_manager="aicp")
    assert applied.to_dict()["data"] == {"a": "3"}
