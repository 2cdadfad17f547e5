"""CustomResourceDefinitions change what the server serves."""

from __future__ import annotations

import pytest
from kubernetes import client, dynamic

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                       "listKind": "WidgetList", "shortNames": ["wd"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "size": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {
                                   "ready": {"type": "boolean"}}}}}}}]}}


def test_created_crd_is_established_discoverable_and_servable(kube_client):
    crd = client.ApiextensionsV1Api(kube_client).create_custom_resource_definition(WIDGETS)
    assert {c.type for c in crd.status.conditions} == {"Established", "NamesAccepted"}
    dc = dynamic.DynamicClient(kube_client)
    widgets = dc.resources.get(api_version="example.com/v1", kind="Widget")
    widgets.create(body={"apiVersion": "example.com/v1", "kind": "Widget",
                         "metadata": {"name": "w"}, "spec": {"size": 3}}, namespace="default")
    objects = client.CustomObjectsApi(kube_client)
    got = objects.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")
    assert got["spec"] == {"size": 3}


def test_custom_resources_validate_against_the_crd_schema(kube_client):
    client.ApiextensionsV1Api(kube_client).create_custom_resource_definition(WIDGETS)
    with pytest.raises(client.ApiException) as err:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            "example.com", "v1", "default", "widgets",
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
             "spec": {"size": "big"}})
    assert err.value.status == 422


def test_custom_resource_status_is_written_only_through_the_subresource(kube_client):
    client.ApiextensionsV1Api(kube_client).create_custom_resource_definition(WIDGETS)
    objects = client.CustomObjectsApi(kube_client)
    args = ("example.com", "v1", "default", "widgets")
    objects.create_namespaced_custom_object(*args, {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 1}, "status": {"ready": True}})
    assert "status" not in objects.get_namespaced_custom_object(*args, "w")
    objects.patch_namespaced_custom_object_status(*args, "w", {"status": {"ready": True}})
    assert objects.get_namespaced_custom_object(*args, "w")["status"] == {"ready": True}


def test_deleting_a_crd_removes_its_resources_from_discovery(kube_client):
    ext = client.ApiextensionsV1Api(kube_client)
    ext.create_custom_resource_definition(WIDGETS)
    ext.delete_custom_resource_definition("widgets.example.com")
    groups = [g.name for g in client.ApisApi(kube_client).get_api_versions().groups]
    assert "example.com" not in groups
    with pytest.raises(client.ApiException) as err:
        client.CustomObjectsApi(kube_client).list_namespaced_custom_object(
            "example.com", "v1", "default", "widgets")
    assert err.value.status == 404
