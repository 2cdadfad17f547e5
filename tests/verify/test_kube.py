"""The cluster side against the emulator: retries, permissions, cleanup of earlier runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import kubernetes.client
import pytest

from aicp.verify.kube import ALIVE_SECONDS, HEARTBEAT, Forbidden, Lost, cleanup, connect
from aicp.verify.probe import RUN_LABEL, ProbeError
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.verify.conftest import planned, probe, settings


@pytest.fixture
def kube(kubeconfig):
    retries: list[str] = []
    k = connect(kubeconfig, on_retry=retries.append)
    k.retries = retries
    yield k
    k.close()


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


def run_creating(kube, body_after_create):
    def body(ctx):
        ns = ctx.namespace()
        core = ctx.kube.api(kubernetes.client.CoreV1Api)
        cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "cm",
                                                                  "labels": ctx.labels}})
        ctx.track(cm, kind="ConfigMap")
        return body_after_create(ctx)
    return Runner(kube, settings("r2"), cleanup_timeout=10).run(
        planned(probe("secure_accelerator_access", body)))


def labelled(kube):
    return kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"]


def test_an_exception_mid_probe_leaves_nothing_behind(kube):
    report = run_creating(kube, lambda ctx: 1 / 0)
    assert report.outcomes[0].result.verdict is Verdict.ERROR
    assert labelled(kube) == [] and report.leftovers == []


def test_a_run_under_injected_faults_still_cleans_up(kubeapi, kube):
    kubeapi.faults.error(503, verbs=["delete"], times=2)
    kubeapi.faults.throttle(verbs=["create"], times=2, retry_after=0)

    def passes(ctx):
        ctx.check("config map created", True)
        return ctx.passed("ok")

    report = run_creating(kube, passes)
    assert report.outcomes[0].result.verdict is Verdict.PASS
    assert labelled(kube) == []


def test_cleanup_deletes_leftover_namespaces_and_cluster_scoped_objects(kubeapi, kube):
    kube.create_namespace("aicp-verify-old-a", {RUN_LABEL: "old"})
    # An earlier run's namespace without a heartbeat (from before heartbeats existed).
    kubeapi.seed([o.namespace("aicp-verify-new-a", labels={RUN_LABEL: "new"})])
    kube.request("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", body={
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 10,
        "metadata": {"name": "aicp-verify-old", "labels": {RUN_LABEL: "old"}}})
    deleted, left, alive = cleanup(kube, "old", timeout=10)
    assert sorted(deleted) == ["Namespace aicp-verify-old-a", "PriorityClass aicp-verify-old"]
    assert left == [] and alive == {}
    assert [n["metadata"]["name"] for n in labelled(kube)] == ["aicp-verify-new-a"]
    deleted, _, _ = cleanup(kube, timeout=10)
    assert deleted == ["Namespace aicp-verify-new-a"]


def beat(kubeapi, name: str, seconds_ago: float) -> None:
    stamp = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubeapi.patch("namespaces", name, {"metadata": {"annotations": {HEARTBEAT: stamp}}})


def test_cleanup_without_a_run_id_leaves_a_live_run_alone_unless_forced(kubeapi, kube):
    kube.create_namespace("aicp-verify-live-a", {RUN_LABEL: "live"})
    kube.create_namespace("aicp-verify-live-b", {RUN_LABEL: "live"})
    kube.create_namespace("aicp-verify-dead-a", {RUN_LABEL: "dead"})
    kube.request("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", body={
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 10,
        "metadata": {"name": "aicp-verify-live", "labels": {RUN_LABEL: "live"}}})
    beat(kubeapi, "aicp-verify-live-a", ALIVE_SECONDS + 30)  # one namespace's beat is old,
    beat(kubeapi, "aicp-verify-live-b", 2)                    # the run's newest is fresh
    beat(kubeapi, "aicp-verify-dead-a", ALIVE_SECONDS + 30)   # a run that died

    deleted, left, alive = cleanup(kube, timeout=10)
    assert deleted == ["Namespace aicp-verify-dead-a"] and left == []
    assert list(alive) == ["live"] and 0 <= alive["live"] < 10
    assert sorted(n["metadata"]["name"] for n in labelled(kube)) == [
        "aicp-verify-live-a", "aicp-verify-live-b"]
    assert kubeapi.find("priorityclasses.scheduling.k8s.io", "aicp-verify-live") is not None

    deleted, _, alive = cleanup(kube, force=True, timeout=10)
    assert alive == {} and sorted(deleted) == [
        "Namespace aicp-verify-live-a", "Namespace aicp-verify-live-b",
        "PriorityClass aicp-verify-live"]
    assert labelled(kube) == []


def test_a_runs_heartbeat_is_refreshed_while_its_probes_run(kubeapi, kube):
    seen = []

    def body(ctx):
        ns = ctx.namespace()
        beat(kubeapi, ns, ALIVE_SECONDS + 30)  # as if the run had been going a while
        ctx.sleep(0.3)
        until_gone = time.monotonic() + 5
        while kubeapi.find("namespaces", "aicp-verify-t1-quick") and \
                time.monotonic() < until_gone:
            ctx.sleep(0.05)
        beat(kubeapi, ns, ALIVE_SECONDS + 30)
        ctx.sleep(0.6)
        seen.append(kubeapi.get("namespaces", ns)["metadata"]["annotations"][HEARTBEAT])
        ctx.check("looked", True)
        return ctx.passed("ok")

    def quick(ctx):  # done first: its namespace is gone while the other probe still runs
        ctx.namespace()
        ctx.check("looked", True)
        return ctx.passed("ok")

    report = Runner(kube, settings(), heartbeat=0.2, cleanup_timeout=10).run(
        planned(probe("quick", quick), probe("beats", body)))
    assert [o.result.verdict for o in report.outcomes] == [Verdict.PASS, Verdict.PASS]
    age = datetime.now(UTC) - datetime.strptime(seen[0], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC)
    assert age.total_seconds() < 5


def test_a_probe_whose_namespace_is_deleted_under_it_is_error_saying_so(kubeapi, kube):
    def body(ctx):
        ns = ctx.namespace()
        kubeapi.delete("namespaces", ns)  # a forced cleanup from another terminal
        ctx.check("the gang ran together", False, "0 of 4 pods started")
        return ctx.failed("the gang never started")

    def unrelated(ctx):
        ctx.namespace()
        ctx.check("the gang ran together", False, "0 of 4 pods started")
        return ctx.failed("the gang never started")

    report = Runner(kube, settings(), cleanup_timeout=10).run(
        planned(probe("vanished", body), probe("kept", unrelated)))
    got = {o.requirement.id: o.result for o in report.outcomes}
    assert got["vanished"].verdict is Verdict.ERROR
    assert got["vanished"].reason.startswith(
        "namespace aicp-verify-t1-vanished was deleted while the probe ran, not by this run")
    assert (got["kept"].verdict, got["kept"].reason) == (Verdict.FAIL, "the gang never started")


def test_a_server_answering_html_is_one_line_naming_the_login_page(kubeapi, kube):
    kubeapi.aggregate("html.example", lambda *a: (200, {"Content-Type": "text/html"},
                                                  b"<html><body>Sign in</body></html>"))
    with pytest.raises(ProbeError, match=r"answered GET /apis/html.example/v1 with "
                                         r"text/html, not the Kubernetes API \('<html>"):
        kube.request("GET", "/apis/html.example/v1")


def test_a_cluster_that_went_away_is_lost_and_later_requests_fail_fast(kubeapi, kube):
    kubeapi.stop()
    start = time.monotonic()
    with pytest.raises(Lost, match=r"lost the connection to the cluster http://127.0.0.1:\d+ "
                                   r"\(Connection refused\) during get /api/v1/namespaces"):
        kube.request("GET", "/api/v1/namespaces")
    assert kube.lost == "Connection refused"
    first = time.monotonic() - start
    start = time.monotonic()
    assert kube.wait_namespaces_gone(["a", "b"], timeout=60) == ["a", "b"]
    assert time.monotonic() - start < min(1.0, first)


def test_needs_are_read_from_the_cluster(kubeapi_factory, tmp_path):
    platform = kubeapi_factory("reference-platform")
    k = connect(platform.write_kubeconfig(tmp_path / "kc.yaml"))
    assert k.unmet("gpu_nodes") is None
    assert k.unmet("api:resource.k8s.io/v1") is None
    assert k.unmet("addon:kueue") is None
    assert "volcano not detected" in k.unmet("addon:volcano")
    empty = connect(kubeapi_factory("empty").write_kubeconfig(tmp_path / "e.yaml"))
    assert "no node advertises an accelerator" in empty.unmet("gpu_nodes")


def test_a_dra_only_gpu_pool_counts_as_gpu_nodes(kubeapi_factory, tmp_path):
    platform = kubeapi_factory("reference-platform", gpu_nodes=1)

    def dra_only(node: dict) -> None:
        # The aicp DRA pool: device plugin off, so no extended resource; no GFD label yet.
        node["metadata"]["labels"].pop("nvidia.com/gpu.present", None)
        node["status"]["allocatable"].pop("nvidia.com/gpu", None)
        node["status"]["capacity"].pop("nvidia.com/gpu", None)

    platform.mutate("nodes", "gpu-h100-0", dra_only)
    platform.mutate("nodes", "gpu-h100-0", dra_only, status=True)
    node = platform.find("nodes", "gpu-h100-0")
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]
    assert "nvidia.com/gpu.present" not in node["metadata"]["labels"]
    k = connect(platform.write_kubeconfig(tmp_path / "kc.yaml"))
    assert k.unmet("gpu_nodes") is None


def _config_maps(kubeapi, count: int, prefix: str = "c") -> list[str]:
    names = [f"{prefix}{i:04d}" for i in range(count)]
    kubeapi.seed({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": n, "namespace": "default"}} for n in names)
    return names


def test_lists_are_read_a_page_at_a_time_and_walk_every_item(kubeapi, kube):
    names = _config_maps(kubeapi, 1_203)
    kubeapi.requests.clear()
    listed = [c["metadata"]["name"] for c in kube.items("/api/v1/namespaces/default/configmaps")]
    assert listed == names
    pages = kubeapi.requests.matching(verb="list", resource="configmaps")
    assert [r.query.get("limit") for r in pages] == ["500"] * 3
    assert [bool(r.query.get("continue")) for r in pages] == [False, True, True]


def test_a_listing_whose_snapshot_expired_goes_on_from_the_token_the_410_offers(
        kubeapi_factory, tmp_path):
    kubeapi = kubeapi_factory("empty", history=10)
    names = _config_maps(kubeapi, 9)
    k = connect(kubeapi.write_kubeconfig(tmp_path / "kc.yaml"))
    listing = k.items("/api/v1/namespaces/default/configmaps", page=3)
    seen = [next(listing)["metadata"]["name"] for _ in range(3)]
    _config_maps(kubeapi, 30, prefix="later")  # compacts the history the first page came from
    seen += [c["metadata"]["name"] for c in listing]
    assert kubeapi.requests.count(verb="list", status=410) == 1
    assert seen[:9] == names and len(seen) == len(set(seen))  # on from where it stopped


def test_an_expired_listing_without_a_way_on_is_one_clear_error(kubeapi, kube):
    _config_maps(kubeapi, 4)
    listing = kube.items("/api/v1/namespaces/default/configmaps", page=2)
    next(listing)
    kubeapi.faults.error(410, verbs=["list"], resource="configmaps")
    with pytest.raises(ProbeError, match="expired the listing after some pages"):
        list(listing)
