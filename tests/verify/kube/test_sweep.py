"""What a run leaves and how it is found: cleanup after a probe, ``aicp verify cleanup`` of
earlier runs, the heartbeat that keeps a live run's namespaces safe (verify/kube/sweep.py)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import kubernetes.client
from rich.console import Console

from aicp.verify import session
from aicp.verify.kube import ALIVE_SECONDS, HEARTBEAT, cleanup, sweep
from aicp.verify.probe import RUN_LABEL
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.verify.conftest import planned, probe, settings


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


def beat(kubeapi, name: str, seconds_ago: float) -> str:
    stamp = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubeapi.patch("namespaces", name, {"metadata": {"annotations": {HEARTBEAT: stamp}}})
    return stamp


def held(kubeapi, name: str, holder: str) -> None:
    kubeapi.patch("namespaces", name, {"metadata": {"annotations": {sweep.HOLDER: holder}}})


# A run held by a process on another machine: this one cannot ask its kernel.
ELSEWHERE = sweep.Holder("gpu-bastion", 4242, "123", "other-boot").annotation()


def ended_process() -> str:
    """The holder record of a process that has run and ended (reaped: its pid is free)."""
    return subprocess.run(
        [sys.executable, "-c", "from aicp.verify.kube import sweep; "
         "print(sweep.this_process().annotation())"],
        capture_output=True, text=True, check=True).stdout.strip()


def test_a_namespace_names_the_process_holding_its_run(kubeapi, kube):
    kube.create_namespace("aicp-verify-mine-a", {RUN_LABEL: "mine"})
    notes = kubeapi.get("namespaces", "aicp-verify-mine-a")["metadata"]["annotations"]
    holder = sweep.Holder.parse(notes[sweep.HOLDER])
    assert holder is not None and holder.pid == os.getpid() and holder.running() is True
    assert HEARTBEAT in notes


def test_cleanup_without_a_run_id_leaves_a_live_run_alone_unless_forced(kubeapi, kube):
    kube.create_namespace("aicp-verify-live-a", {RUN_LABEL: "live"})
    kube.create_namespace("aicp-verify-live-b", {RUN_LABEL: "live"})
    kube.create_namespace("aicp-verify-dead-a", {RUN_LABEL: "dead"})
    for name in ("aicp-verify-live-a", "aicp-verify-live-b", "aicp-verify-dead-a"):
        held(kubeapi, name, ELSEWHERE)  # only the heartbeat can tell
    kube.request("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", body={
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 10,
        "metadata": {"name": "aicp-verify-live", "labels": {RUN_LABEL: "live"}}})
    beat(kubeapi, "aicp-verify-live-a", ALIVE_SECONDS + 30)  # one namespace's beat is old,
    beat(kubeapi, "aicp-verify-live-b", 2)                    # the run's newest is fresh
    beat(kubeapi, "aicp-verify-dead-a", ALIVE_SECONDS + 30)   # a run that died

    logged: list[str] = []
    deleted, left, alive = cleanup(kube, timeout=10, log=logged.append)
    assert deleted == ["Namespace aicp-verify-dead-a"] and left == []
    said = re.fullmatch(r"run dead: heartbeat (\d+)s ago \(pid 4242 on host gpu-bastion\), "
                        rf"older than {ALIVE_SECONDS:g}s: deleting what it left", logged[0])
    assert said and ALIVE_SECONDS + 30 <= int(said[1]) < ALIVE_SECONDS + 40, logged
    assert list(alive) == ["live"]
    assert alive["live"].endswith("s ago; pid 4242 on host gpu-bastion, which cannot be "
                                  "checked from here"), alive
    assert 0 <= int(alive["live"].split()[1].removesuffix("s")) < 10, alive
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
        assert ctx.wait_for("probe quick's namespace gone", lambda: not kubeapi.find(
            "namespaces", "aicp-verify-t1-quick"), timeout=60, interval=0.05)
        stale = beat(kubeapi, ns, ALIVE_SECONDS + 30)
        # The next beat, waited for (not slept): the runner stamps what is left of the run.
        seen.append(ctx.wait_for("a heartbeat after the stale one", lambda: (
            kubeapi.get("namespaces", ns)["metadata"]["annotations"][HEARTBEAT] != stale
            and kubeapi.get("namespaces", ns)["metadata"]["annotations"][HEARTBEAT]),
            timeout=60, interval=0.05))
        # ... so that a cleanup in another terminal now leaves the run alone.
        seen.append(cleanup(kube))
        ctx.check("looked", True)
        return ctx.passed("ok")

    def quick(ctx):  # done first: its namespace is gone while the other probe still runs
        ctx.namespace()
        ctx.check("looked", True)
        return ctx.passed("ok")

    report = Runner(kube, settings(), heartbeat=0.2, cleanup_timeout=10).run(
        planned(probe("quick", quick), probe("beats", body)))
    assert [o.result.verdict for o in report.outcomes] == [Verdict.PASS, Verdict.PASS]
    stamp, sweep = seen
    assert stamp, "no heartbeat after the stale one"
    assert (sweep.deleted, list(sweep.alive)) == ([], ["t1"])


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


def test_a_run_whose_process_ended_is_deleted_at_once_though_its_heartbeat_is_fresh(
        kubeapi, kube):
    # SIGKILL or the OOM killer: the run beat a second ago and will never delete anything.
    kube.create_namespace("aicp-verify-killed-a", {RUN_LABEL: "killed"})
    held(kubeapi, "aicp-verify-killed-a", ended_process())
    beat(kubeapi, "aicp-verify-killed-a", 1)
    # A live process on this host holds the other run: alive, however old its heartbeat
    # (a paused laptop, a slow API server); pid reuse is told by the start time.
    kube.create_namespace("aicp-verify-busy-a", {RUN_LABEL: "busy"})
    beat(kubeapi, "aicp-verify-busy-a", ALIVE_SECONDS + 600)
    kube.create_namespace("aicp-verify-reused-a", {RUN_LABEL: "reused"})
    me = sweep.this_process()
    held(kubeapi, "aicp-verify-reused-a", sweep.Holder(
        me.host, me.pid, "1", me.pid_namespace).annotation())  # my pid, another process

    logged: list[str] = []
    deleted, left, alive = cleanup(kube, timeout=10, log=logged.append)
    assert sorted(deleted) == ["Namespace aicp-verify-killed-a", "Namespace aicp-verify-reused-a"]
    assert left == [] and list(alive) == ["busy"]
    said = re.fullmatch(rf"heartbeat (\d+)s ago; pid {os.getpid()} on this host is alive",
                        alive["busy"])
    assert said and int(said[1]) >= ALIVE_SECONDS + 600, alive
    assert any(line.startswith("run killed: its process (pid ") and "on this host) has ended"
               in line for line in logged), logged
    assert [n["metadata"]["name"] for n in labelled(kube)] == ["aicp-verify-busy-a"]


def test_cleanup_that_cannot_delete_something_names_it_and_exits_1(kubeapi, kubeconfig,
                                                                    capsys):
    kubeapi.seed([o.namespace("aicp-verify-old-a", labels={RUN_LABEL: "old"}),
                  o.namespace("aicp-verify-old-b", labels={RUN_LABEL: "old"})])
    kubeapi.faults.forbid(verbs=["delete"], resource="namespaces", path="aicp-verify-old-a$")
    out = io.StringIO()
    code = session.cleanup(session.Options(kubeconfig=kubeconfig), Console(file=out))
    err = capsys.readouterr().err
    assert code == 1, out.getvalue() + err
    assert err == ("error: cleanup left 1: Namespace aicp-verify-old-a (missing permission: "
                   "delete namespaces (cluster-wide)): run `aicp verify cleanup` again once "
                   "that is fixed\n"), err
    assert out.getvalue().splitlines()[-1] == "deleted 1 objects"
    assert "Traceback" not in err + out.getvalue()
    # The rest was still deleted.
    assert [n["metadata"]["name"] for n in kubeapi.list("namespaces", labels=RUN_LABEL)] == [
        "aicp-verify-old-a"]
