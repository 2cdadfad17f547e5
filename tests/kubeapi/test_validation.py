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


# Beyond the schema: what kubernetes pkg/apis/core/validation refuses (pod_validation.py).
def _create_pod(kube_client, body: dict) -> list[dict]:
    with pytest.raises(client.ApiException) as err:
        dynamic.DynamicClient(kube_client).resources.get(api_version="v1", kind="Pod").create(
            body=body, namespace="default")
    return _invalid(err)["details"]["causes"]


def _pinned(values: list[str], key: str = "metadata.name") -> dict:
    body = pod("pinned")
    body["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                                 {"nodeSelectorTerms": [{"matchFields": [{
                                                     "key": key, "operator": "In",
                                                     "values": values}]}]}}}
    return body


TERM = ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
        "nodeSelectorTerms[0]")


def test_a_node_field_selector_with_two_values_is_422(kube_client):
    # ValidateNodeFieldSelectorRequirement: exactly one value for In/NotIn.
    causes = _create_pod(kube_client, _pinned(["gpu-0", "gpu-1"]))
    assert causes == [{"reason": "FieldValueRequired", "field": f"{TERM}.matchFields[0].values",
                       "message": "Required value: must be only one value when `operator` is "
                                  "'In' or 'NotIn' for node field selector"}]


def test_one_value_per_term_is_accepted(kube_client):
    body = _pinned(["gpu-0"])
    terms = body["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    terms.append({"matchFields": [{"key": "metadata.name", "operator": "In",
                                   "values": ["gpu-1"]}]})
    created = dynamic.DynamicClient(kube_client).resources.get(
        api_version="v1", kind="Pod").create(body=body, namespace="default")
    assert created.metadata.name == "pinned"


def test_a_node_field_selector_on_another_field_is_422(kube_client):
    causes = _create_pod(kube_client, _pinned(["x"], key="spec.unschedulable"))
    assert [(c["field"], c["message"]) for c in causes] == [
        (f"{TERM}.matchFields[0].key",
         'Invalid value: "spec.unschedulable": not a valid field selector key')]


def test_an_invalid_label_value_is_422(kube_client):
    # unversionedvalidation.ValidateLabels on metadata.labels and spec.nodeSelector, and
    # ValidateNodeSelectorRequirement on affinity values.
    body = pod("labelled", labels={"app": "not valid!"})
    causes = _create_pod(kube_client, body)
    assert [c["field"] for c in causes] == ["metadata.labels"]
    body = pod("selecting", node_selector={"nvidia.com/gpu.product": "H100 80GB"})
    causes = _create_pod(kube_client, body)
    assert causes[0]["field"] == "spec.nodeSelector"
    assert causes[0]["message"].startswith('Invalid value: "H100 80GB": a valid label must be')
    body = pod("affine")
    body["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                                 {"nodeSelectorTerms": [{"matchExpressions": [{
                                                     "key": "zone", "operator": "In",
                                                     "values": ["a b"]}]}]}}}
    causes = _create_pod(kube_client, body)
    assert causes[0]["field"] == f"{TERM}.matchExpressions[0].values[0]"


def test_requests_above_limits_are_422(kube_client):
    # ValidateResourceRequirements: native requests <= limits; extended requests == limits.
    causes = _create_pod(kube_client, pod("greedy", requests={"cpu": "2"}, limits={"cpu": "1"}))
    assert causes == [{"reason": "FieldValueInvalid",
                       "field": "spec.containers[0].resources.requests[cpu]",
                       "message": 'Invalid value: "2": must be less than or equal to cpu limit '
                                  "of 1"}]
    causes = _create_pod(kube_client, pod("gpus", requests={"nvidia.com/gpu": "2"},
                                          limits={"nvidia.com/gpu": "1"}))
    assert causes[0]["message"] == ('Invalid value: "2": must be equal to nvidia.com/gpu limit '
                                    "of 1")
    causes = _create_pod(kube_client, pod("unlimited", requests={"nvidia.com/gpu": "1"}))
    assert causes[0]["field"] == "spec.containers[0].resources.limits[nvidia.com/gpu]"


def test_duplicate_container_names_and_ports_are_422(kube_client):
    # validateContainers (names unique), validateContainerPorts (port names unique).
    body = pod("twins")
    twin = dict(body["spec"]["containers"][0])
    twin["ports"] = [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]
    body["spec"]["containers"].append(twin)
    causes = _create_pod(kube_client, body)
    assert {(c["reason"], c["field"]) for c in causes} == {
        ("FieldValueDuplicate", "spec.containers[1].name"),
        ("FieldValueDuplicate", "spec.containers[1].ports[1].name")}


def test_deployment_templates_are_validated_too(kube_client):
    template = pod("web", node_selector={"bad key!": "x"})
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": template["spec"]}}}
    with pytest.raises(client.ApiException) as err:
        dynamic.DynamicClient(kube_client).resources.get(
            api_version="apps/v1", kind="Deployment").create(body=body, namespace="default")
    assert _invalid(err)["details"]["causes"][0]["field"] == "spec.template.spec.nodeSelector"
