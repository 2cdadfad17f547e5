"""Watch streams through ``kubernetes.watch.Watch``."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, watch

from .clock import Clock
from .objects import pod


def _first(stream, n):
    """The first ``n`` events, then stop watching (no waiting for the timeout)."""
    events = []
    for event in stream:
        events.append(event)
        if len(events) == n:
            break
    return events


@pytest.fixture
def core(kube_client):
    return client.CoreV1Api(kube_client)


def test_watch_from_a_resource_version_streams_added_modified_deleted(core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a"))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    core.delete_namespaced_pod("a", "default")
    events = [(e["type"], e["object"].metadata.name) for e in _first(watch.Watch().stream(
        core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=5), 3)]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_sees_writes_made_while_it_waits(core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    timer = threading.Timer(0.2, core.create_namespaced_pod, ("default", pod("late")))
    timer.start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, "default", resource_version=rv,
                          timeout_seconds=5):
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "late")
        w.stop()
    timer.join()


def test_watch_without_resource_version_starts_with_the_current_objects(core):
    core.create_namespaced_pod("default", pod("a"))
    events = _first(watch.Watch().stream(core.list_namespaced_pod, "default",
                                         timeout_seconds=5), 1)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "a")]


def test_label_selected_watch_reports_objects_leaving_the_selection_as_deleted(core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a", labels={"sel": "yes"}))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"sel": "no"}}})
    events = [e["type"] for e in _first(watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="sel=yes", resource_version=rv,
        timeout_seconds=5), 2)]
    assert events == ["ADDED", "DELETED"]


def test_watch_from_a_compacted_resource_version_is_410_gone(kubeapi_factory):
    kube = kubeapi_factory("empty", history=10)
    core = client.CoreV1Api(kube.client())
    for i in range(30):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    with pytest.raises(client.ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                  resource_version="1", timeout_seconds=1))
    assert err.value.status == 410


def test_bookmarks_carry_the_current_resource_version_when_asked(kubeapi, core):
    kubeapi.bookmark_interval = 0.1
    rv = core.list_namespaced_pod("default").metadata.resource_version
    stream = watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv,
                                  allow_watch_bookmarks=True, timeout_seconds=1)
    (event,) = _first(stream, 1)
    assert event["type"] == "BOOKMARK"
    assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(rv)


@pytest.mark.kubeapi("empty", clock=Clock(scale=0))
def test_watch_ends_after_timeout_seconds_of_the_emulators_clock(kubeapi, core):
    """timeoutSeconds runs on ``kube.clock``: frozen, the watch stays open however long the
    machine takes; advanced past it, the server ends the stream at once."""
    kubeapi.create(pod("p"))
    started, ended = threading.Event(), threading.Event()

    def watch_pods() -> None:
        for _ in watch.Watch().stream(core.list_namespaced_pod, "default",
                                      resource_version="1", timeout_seconds=30):
            started.set()  # the pod's ADDED: the watch is being served
        ended.set()
    thread = threading.Thread(target=watch_pods, daemon=True)
    thread.start()
    assert started.wait(60)
    kubeapi.clock.advance(29)
    assert not ended.is_set()
    kubeapi.clock.advance(1)
    thread.join(60)
    assert ended.is_set()
