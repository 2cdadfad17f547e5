"""Writes are validated like the API server does: 422 with a Status naming the field."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, dynamic

from tests.shared import require_shared

from .objects import device_class, pod


def _invalid(err: pytest.ExceptionInfo) -> dict:
    body = json.loads(err.value.body)
    assert err.value.status == 422
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status", "Failure", "Invalid", 422)
    return body


def test_misspelled_pod_field_is_422_naming_the_field(kube_client):
    # The typed client refuses unknown fields itself; probes sending dicts go through dynamic.
    pods = dynamic.DynamicClient(kube_client).resources.get(api_version="v1", kind="Pod")
    body = pod("typo")
    body["spec"]["containers"][0]["imagee"] = body["spec"]["containers"][0].pop("image")
    with pytest.raises(client.ApiException) as err:
        pods.create(body=body, namespace="default")
    status = _invalid(err)
    assert status["details"]["name"] == "typo" and status["details"]["kind"] == "Pod"
    fields = {c["field"] for c in status["details"]["causes"]}
    assert "spec.containers[0].imagee" in fields
    assert "spec.containers[0].imagee" in status["message"]


def test_missing_required_field_is_field_value_required(kube_client):
    pods = dynamic.DynamicClient(kube_client).resources.get(api_version="v1", kind="Pod")
    body = pod("nameless")
    del body["spec"]["containers"][0]["name"]
    with pytest.raises(client.ApiException) as err:
        pods.create(body=body, namespace="default")
    causes = _invalid(err)["details"]["causes"]
    assert {"reason": "FieldValueRequired", "field": "spec.containers[0].name",
            "message": "Required value"} in causes


def test_misspelled_device_class_field_is_422(kube_client):
    classes = dynamic.DynamicClient(kube_client).resources.get(
        api_version="resource.k8s.io/v1", kind="DeviceClass")
    body = device_class()
    body["spec"]["selector"] = body["spec"].pop("selectors")
    with pytest.raises(client.ApiException) as err:
        classes.create(body=body)
    status = _invalid(err)
    assert status["details"]["group"] == "resource.k8s.io"
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.selector"]


def test_invalid_name_is_422_on_metadata_name(kube_client):
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(kube_client).create_namespaced_config_map(
            "default", {"metadata": {"name": "Not_Valid"}})
    assert _invalid(err)["details"]["causes"][0]["field"] == "metadata.name"


def test_kind_in_the_body_must_match_the_url(kube_client):
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(kube_client).create_namespaced_config_map(
            "default", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert err.value.status == 400


def test_misspelled_kueue_cluster_queue_field_is_422(kubeapi, kube_client):
    crds = require_shared("crds", "kueue-v0.19.2")
    from tests.schemas import load_crd_files
    ext = client.ApiextensionsV1Api(kube_client)
    for crd in load_crd_files(crds.glob("kueue.x-k8s.io_clusterqueues.yaml")):
        ext.create_custom_resource_definition(crd)
    objects = client.CustomObjectsApi(kube_client)
    good = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
            "metadata": {"name": "aicp"},
            "spec": {"namespaceSelector": {}, "resourceGroups": [{
                "coveredResources": ["nvidia.com/gpu"],
                "flavors": [{"name": "h100", "resources": [
                    {"name": "nvidia.com/gpu", "nominalQuota": 16}]}]}]}}
    objects.create_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", good)
    bad = json.loads(json.dumps(good))
    bad["metadata"]["name"] = "typo"
    bad["spec"]["cohortt"] = "x"
    with pytest.raises(client.ApiException) as err:
        objects.create_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", bad)
    status = _invalid(err)
    assert status["details"]["group"] == "kueue.x-k8s.io"
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.cohortt"]
