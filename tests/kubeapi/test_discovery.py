"""Version and discovery, as the client and DynamicClient read them."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, dynamic


def test_version_reports_the_configured_minor_as_a_complete_versioninfo(kubeapi_factory):
    kube = kubeapi_factory("empty", minor="1.34")
    with kube.client() as api:
        info = client.VersionApi(api).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "34", "v1.34.0")
    assert info.build_date and info.platform == "linux/amd64"


def test_core_discovery_lists_pods_with_their_subresources(kube_client):
    resources = client.CoreV1Api(kube_client).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert by_name["pods"].kind == "Pod" and by_name["pods"].namespaced
    assert "watch" in by_name["pods"].verbs
    assert {"pods/log", "pods/status", "pods/binding", "pods/proxy"} <= set(by_name)
    assert by_name["nodes"].namespaced is False


def test_api_groups_list_preferred_versions_and_trailing_slashes_work(kube_client):
    groups = {g.name: g for g in client.ApisApi(kube_client).get_api_versions().groups}
    assert groups["autoscaling"].preferred_version.version == "v2"
    assert groups["resource.k8s.io"].preferred_version.version == "v1"
    assert client.CoreApi(kube_client).get_api_versions().versions == ["v1"]


def test_minor_decides_which_group_versions_exist(kubeapi_factory):
    old = kubeapi_factory("empty", minor="1.33")
    with old.client() as api:
        versions = [v.version for v in client.ResourceApi(api).get_api_group().versions]
    assert "v1" not in versions and "v1beta1" in versions


def test_unknown_resource_is_404_shaped_like_the_api_server(kube_client):
    with pytest.raises(client.ApiException) as err:
        client.CustomObjectsApi(kube_client).list_cluster_custom_object(
            "nope.example", "v1", "widgets")
    assert err.value.status == 404
    assert json.loads(err.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server could not find the requested resource", "reason": "NotFound",
        "details": {}, "code": 404}


def test_dynamic_client_discovers_builtin_kinds(kube_client):
    dc = dynamic.DynamicClient(kube_client)
    deployments = dc.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.name == "deployments" and deployments.namespaced
    assert dc.resources.get(api_version="v1", kind="Node").namespaced is False
