"""Object semantics: identity, versions, conflicts, status, selectors, pagination, deletion."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from .objects import pod


@pytest.fixture
def core(kube_client):
    return client.CoreV1Api(kube_client)


def test_create_fills_identity_and_a_monotonic_resource_version(core):
    a = core.create_namespaced_pod("default", pod("a"))
    b = core.create_namespaced_pod("default", pod("b"))
    assert a.metadata.uid and a.metadata.creation_timestamp and a.metadata.generation == 1
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)
    assert a.status.phase == "Pending" and a.spec.scheduler_name == "default-scheduler"


def test_generate_name_gets_a_random_suffix(core):
    body = pod("x")
    body["metadata"] = {"generateName": "probe-"}
    created = core.create_namespaced_pod("default", body)
    assert created.metadata.name.startswith("probe-") and len(created.metadata.name) == 11


def test_creating_an_existing_name_is_409_already_exists(core):
    core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod("default", pod("a"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_stale_update_is_rejected_with_409(core):
    first = core.create_namespaced_pod("default", pod("a"))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"v": "2"}}})
    first.metadata.labels = {"v": "3"}
    with pytest.raises(client.ApiException) as err:
        core.replace_namespaced_pod("a", "default", first)
    body = json.loads(err.value.body)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_missing_object_is_404_naming_the_resource(core):
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod("ghost", "default")
    body = json.loads(err.value.body)
    assert body["message"] == 'pods "ghost" not found'
    assert body["details"] == {"name": "ghost", "kind": "pods"}


def test_create_in_a_missing_namespace_is_404_namespace_not_found(core):
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod("nowhere", pod("a", "nowhere"))
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "nowhere" not found'


def test_generation_moves_with_spec_changes_only(kube_client):
    apps = client.AppsV1Api(kube_client)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    apps.create_namespaced_deployment("default", dep)
    labelled = apps.patch_namespaced_deployment("web", "default",
                                                {"metadata": {"labels": {"x": "y"}}})
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert (labelled.metadata.generation, scaled.metadata.generation) == (1, 2)


def test_status_subresource_splits_spec_and_status_writes(core):
    core.create_namespaced_pod("default", pod("a"))
    main = core.patch_namespaced_pod("a", "default", {"status": {"phase": "Running"}})
    assert main.status.phase == "Pending"
    status = core.patch_namespaced_pod_status(
        "a", "default", {"status": {"phase": "Running"}, "metadata": {"labels": {"z": "1"}}})
    assert status.status.phase == "Running" and not status.metadata.labels


def test_label_selectors_support_every_operator(core):
    for name, labels in (("a", {"tier": "gpu", "team": "ml"}), ("b", {"tier": "cpu"}),
                         ("c", {"tier": "gpu"})):
        core.create_namespaced_pod("default", pod(name, labels=labels))

    def names(selector):
        return sorted(p.metadata.name for p in
                      core.list_namespaced_pod("default", label_selector=selector).items)
    assert names("tier=gpu") == ["a", "c"]
    assert names("tier==gpu,team") == ["a"]
    assert names("tier!=gpu") == ["b"]
    assert names("tier in (cpu, tpu)") == ["b"]
    assert names("tier notin (cpu)") == ["a", "c"]
    assert names("!team") == ["b", "c"]


def test_field_selectors_filter_on_supported_fields_and_reject_others(kubeapi, core):
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    kubeapi.mutate("pods", "b", lambda p: p["status"].update(phase="Running"), "default",
                   status=True)
    running = core.list_pod_for_all_namespaces(field_selector="status.phase=Running")
    assert [p.metadata.name for p in running.items] == ["b"]
    by_name = core.list_namespaced_pod("default", field_selector="metadata.name!=b")
    assert [p.metadata.name for p in by_name.items] == ["a"]
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert err.value.status == 400


def test_pagination_walks_every_item_with_an_opaque_continue_token(core):
    for i in range(7):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    page = core.list_namespaced_pod("default", limit=3)
    seen = [p.metadata.name for p in page.items]
    assert page.metadata.remaining_item_count == 4 and page.metadata._continue
    while page.metadata._continue:
        page = core.list_namespaced_pod("default", limit=3, _continue=page.metadata._continue)
        seen += [p.metadata.name for p in page.items]
    assert seen == [f"p{i}" for i in range(7)]


def test_listing_across_namespaces_returns_every_namespace(core):
    core.create_namespace({"metadata": {"name": "team-a"}})
    core.create_namespaced_pod("team-a", pod("a", "team-a"))
    core.create_namespaced_pod("default", pod("b"))
    assert {p.metadata.namespace for p in core.list_pod_for_all_namespaces().items} == {
        "default", "team-a"}


def test_finalizers_hold_deletion_until_they_are_removed(core):
    body = pod("a")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_pod("default", body)
    core.delete_namespaced_pod("a", "default")
    held = core.read_namespaced_pod("a", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("a", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod("a", "default")
    assert err.value.status == 404


def test_deleting_a_namespace_cascades_to_its_objects(core):
    core.create_namespace({"metadata": {"name": "gone"}})
    core.create_namespaced_pod("gone", pod("a", "gone"))
    core.create_namespaced_config_map("gone", {"metadata": {"name": "cm"}})
    core.delete_namespace("gone", propagation_policy="Foreground")
    assert not core.list_namespaced_pod("gone").items
    assert "gone" not in [n.metadata.name for n in core.list_namespace().items]


def test_owner_references_garbage_collect_dependents(core):
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    dep = pod("dep")
    dep["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                           "name": "owner", "uid": owner.metadata.uid}]
    core.create_namespaced_pod("default", dep)
    core.delete_namespaced_config_map("owner", "default")
    assert not core.list_namespaced_pod("default").items


def test_a_continue_token_older_than_the_history_is_410_with_a_token_to_go_on(
        kubeapi_factory):
    kube = kubeapi_factory("empty", history=10)
    core = client.CoreV1Api(kube.client())
    for i in range(5):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    page = core.list_namespaced_pod("default", limit=2)
    for i in range(30):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_pod("default", limit=2, _continue=page.metadata._continue)
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"]) == (410, "Expired")
    rest = core.list_namespaced_pod("default", limit=10, _continue=status["metadata"]["continue"])
    assert [p.metadata.name for p in rest.items] == ["p2", "p3", "p4"]
