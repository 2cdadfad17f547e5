"""The runner's verdict rules, limits, timeouts and cleanup, with probes in memory."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from aicp.verify.kube import Forbidden
from aicp.verify.probe import Context
from aicp.verify.registry import Planned
from aicp.verify.result import Verdict
from aicp.verify.runner import Queue, Runner
from aicp.verify.signals import interrupts
from aicp.verify.verdicts import EXIT_INCOMPLETE, EXIT_INTERRUPTED
from tests.verify.conftest import planned, probe, settings


@pytest.fixture
def ctrl_c_as_in_a_terminal():
    """SIGINT as a process in a terminal's foreground has it: Python's default handler.

    A process a non-interactive shell starts in the background inherits SIGINT ignored
    (POSIX "Shell Command Language" 2.11, asynchronous lists without job control), and
    Python then installs no handler of its own (Python ``signal`` docs: SIG_IGN at start
    is kept), so a Ctrl-C sent to it is ignored; a test of Ctrl-C must not depend on how
    the suite was started.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def run(cluster, *probes, level="MUST", **options):
    return Runner(cluster, settings(), **options).run(planned(*probes, level=level))


def verdicts(report):
    return {o.requirement.id: (o.result.verdict, o.result.reason) for o in report.outcomes}


def passing(ctx):
    with ctx.step("look"):
        ctx.check("something observed", True, "3 nodes")
    return ctx.passed("all good")


def test_a_probe_that_checks_and_passes_is_pass_and_exit_code_0(cluster):
    report = run(cluster, probe("a", passing))
    assert verdicts(report) == {"a": (Verdict.PASS, "all good")}
    assert report.exit_code == 0


def test_zero_checks_is_never_a_pass(cluster):
    report = run(cluster, probe("a", lambda ctx: ctx.passed("nothing to see")))
    verdict, reason = verdicts(report)["a"]
    assert verdict is Verdict.ERROR and "zero checks" in reason
    assert report.exit_code == 1


def test_a_pass_with_a_failed_check_is_a_fail(cluster):
    def body(ctx):
        ctx.check("pod without claim sees no GPU", False, "saw GPU-0")
        return ctx.passed("looks fine")

    assert verdicts(run(cluster, probe("a", body)))["a"][0] is Verdict.FAIL


def test_an_exception_is_error_with_its_message_and_the_traceback_kept_aside(cluster):
    def body(ctx):
        with ctx.step("create pod"):
            raise RuntimeError("boom\nsecond line")

    report = run(cluster, probe("a", body))
    result = report.outcomes[0].result
    assert (result.verdict, result.reason) == (Verdict.ERROR, "RuntimeError: boom")
    assert "Traceback" in result.traceback
    assert result.evidence.steps[0].error.startswith("RuntimeError")


def test_forbidden_is_error_naming_the_missing_permission(cluster):
    def body(ctx):
        raise Forbidden("create", "pods", "ns1")

    assert verdicts(run(cluster, probe("a", body)))["a"] == (
        Verdict.ERROR, "missing permission: create pods in namespace ns1")


def test_a_timed_out_probe_is_error_naming_the_step_and_its_objects_are_deleted(cluster):
    ended = threading.Event()

    def body(ctx):
        try:
            ns = ctx.namespace()
            ctx.track({"kind": "Pod", "metadata": {"name": "p", "namespace": ns}})
            with ctx.step("wait for pod Running"):
                ctx.sleep(30)
            return ctx.passed("never")
        finally:
            ended.set()

    report = run(cluster, probe("slow_probe", body), probe_timeout=0.3)
    # The probe's 30 s sleep was cut at its deadline: its thread is over when the run is,
    # its step ended Cancelled (not after the sleep: the runner gives a cancelled probe
    # only its grace before cleanup).
    assert ended.is_set()
    step = report.outcomes[0].result.evidence.steps[-1]
    assert (step.name, step.error) == ("wait for pod Running",
                                       "Cancelled: cancelled at step wait for pod Running")
    assert verdicts(report)["slow_probe"] == (
        Verdict.ERROR, "timed out after 0.3s at step wait for pod Running")
    assert cluster.deleted == ["Pod p", "Namespace aicp-verify-t1-slow-probe"]
    assert cluster.namespaces == set()


def test_global_timeout_errors_running_and_unstarted_probes(cluster):
    def body(ctx):
        with ctx.step("sleep"):
            ctx.sleep(30)

    report = run(cluster, probe("a", body), probe("b", body), concurrency=1,
                 global_timeout=0.3)
    got = verdicts(report)
    assert got["a"] == (Verdict.ERROR, "global timeout 0.3s reached at step sleep")
    assert got["b"] == (Verdict.ERROR, "not started: global timeout 0.3s reached")


def test_concurrency_limit_is_respected(cluster):
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def body(ctx):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        ctx.sleep(0.1)
        with lock:
            state["now"] -= 1
        ctx.check("ran", True)
        return ctx.passed("ok")

    report = run(cluster, *(probe(f"p{i}", body) for i in range(7)), concurrency=2)
    assert state["max"] == 2
    assert {o.result.verdict for o in report.outcomes} == {Verdict.PASS}


def test_an_exclusive_probe_runs_alone_after_every_other_probe(cluster):
    lock, log, state = threading.Lock(), [], {"now": 0}

    def body(name):
        def run_(ctx):
            with lock:
                state["now"] += 1
                log.append((name, state["now"]))
            ctx.sleep(0.05)
            with lock:
                state["now"] -= 1
            ctx.check("ran", True)
            return ctx.passed("ok")
        return run_

    adds_a_node = probe("adds_a_node", body("adds_a_node"))
    adds_a_node.exclusive = True
    report = run(cluster, probe("a", body("a")), adds_a_node,
                 *(probe(f"p{i}", body(f"p{i}")) for i in range(4)), concurrency=4)
    assert log[-1] == ("adds_a_node", 1)  # last, and nothing else running beside it
    assert max(n for _, n in log[:-1]) > 1  # the others still ran side by side
    assert [o.requirement.id for o in report.outcomes][:2] == ["a", "adds_a_node"]


def test_cleanup_deletes_in_reverse_order_of_creation_then_waits_for_namespaces(cluster):
    def body(ctx):
        ns = ctx.namespace()
        ctx.track({"kind": "ResourceClaimTemplate", "metadata": {"name": "rct",
                                                                 "namespace": ns}})
        ctx.track({"kind": "Pod", "metadata": {"name": "pod", "namespace": ns}})
        ctx.track({"kind": "DeviceClass", "metadata": {"name": "dc"}})
        ctx.check("made", True)
        return ctx.failed("the pod without a claim saw /dev/nvidia0")

    report = run(cluster, probe("a", body))
    assert cluster.deleted == ["DeviceClass dc", "Pod pod", "ResourceClaimTemplate rct",
                               "Namespace aicp-verify-t1-a"]
    assert cluster.waited == [["aicp-verify-t1-a"]]
    assert report.leftovers == [] and report.exit_code == 1


def test_a_failed_delete_is_reported_and_the_rest_still_deleted(cluster):
    def body(ctx):
        ctx.track({"kind": "Pod", "metadata": {"name": "first", "namespace": "x"}})
        ctx.track({"kind": "Pod", "metadata": {"name": "stuck", "namespace": "x"}},
                  delete=lambda: (_ for _ in ()).throw(RuntimeError("finalizer")))
        ctx.check("made", True)
        return ctx.passed("ok")

    report = run(cluster, probe("a", body))
    assert cluster.deleted == ["Pod first"]
    assert report.cleanup_errors == ["could not delete Pod x/stuck: RuntimeError: finalizer"]


def test_ctrl_c_cleans_up_then_exit_code_130(cluster, ctrl_c_as_in_a_terminal):
    started = threading.Event()

    def body(ctx):
        ns = ctx.namespace()
        ctx.track({"kind": "Pod", "metadata": {"name": "p", "namespace": ns}})
        started.set()
        with ctx.step("wait for logs"):
            ctx.sleep(30)

    def interrupt(ctx):
        started.wait(5)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives in the main thread
        ctx.sleep(30)

    report = run(cluster, probe("a", body), probe("b", interrupt), probe("c", passing),
                 concurrency=2, grace=2)
    got = verdicts(report)
    assert got["a"] == (Verdict.ERROR, "interrupted (Ctrl-C) at step wait for logs")
    assert got["c"] == (Verdict.NOT_RUN, "interrupted before it started")
    assert report.exit_code == 130
    assert "Pod p" in cluster.deleted and cluster.namespaces == set()


# Python reports the KeyboardInterrupt it drops; that report is what this test stages.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_drops_in_a_finalizer_still_interrupts_a_runner_without_a_guard(
        cluster, ctrl_c_as_in_a_terminal):
    # A KeyboardInterrupt raised while a __del__ runs is printed as "Exception ignored" and
    # lost; a loaded machine collects garbage often enough that a real Ctrl-C lands there.
    # The runner remembers Ctrl-C itself, so the run still ends at once.
    started = threading.Event()

    class Finalized:
        def __del__(self):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the Ctrl-C lands here

    def body(ctx):
        ctx.namespace()
        started.set()
        with ctx.step("wait for logs"):
            ctx.sleep(30)

    def on_start(item):
        if item.requirement.id == "b":
            assert started.wait(30)
            Finalized()  # dropped at once: its __del__ runs in the scheduler's thread

    report = run(cluster, probe("a", body), probe("b", passing), probe("c", passing),
                 concurrency=2, grace=2, on_start=on_start)
    got = verdicts(report)
    assert got["a"] == (Verdict.ERROR, "interrupted (Ctrl-C) at step wait for logs")
    assert got["c"] == (Verdict.NOT_RUN, "interrupted before it started")
    assert report.exit_code == EXIT_INTERRUPTED
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_unmet_need_is_skip_with_the_reason(cluster):
    cluster.needs = {"gpu_nodes": "no node advertises an accelerator"}
    report = run(cluster, probe("a", passing, needs=["gpu_nodes"]))
    assert verdicts(report)["a"] == (Verdict.SKIP,
                                     "not applicable: no node advertises an accelerator")
    assert report.exit_code == 0


def test_requirements_not_run_are_reported_with_their_reason(cluster):
    item = planned(probe("a", passing))[0]
    manual = Planned(item.requirement, None, Verdict.MANUAL, "manual check")
    report = Runner(cluster, settings()).run([manual])
    assert verdicts(report) == {"a": (Verdict.MANUAL, "manual check")}
    # Nothing failed, but a MUST nobody exercised is no conformance result.
    assert report.exit_code == EXIT_INCOMPLETE


def test_a_run_that_left_a_must_out_exits_3_and_says_how_many_ran(cluster):
    one, two = planned(probe("a", passing), probe("b", passing))
    left_out = Planned(two.requirement, two.probe, Verdict.NOT_RUN, "not selected (--only)")
    report = Runner(cluster, settings()).run([one, left_out])
    assert report.exit_code == EXIT_INCOMPLETE
    assert report.ran("MUST") == (1, 2)
    should = planned(probe("c", passing), level="SHOULD")[0]
    not_run_should = Planned(should.requirement, None, Verdict.NOT_RUN, "skipped by --skip")
    full = Runner(cluster, settings()).run(planned(probe("a", passing)) + [not_run_should])
    assert full.exit_code == 0 and full.ran("MUST") == (1, 1)  # SHOULDs never hold it back


@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP"),
                                       (signal.SIGINT, "Ctrl-C")])
def test_term_and_hup_end_a_run_as_ctrl_c_does(cluster, sig, said):
    started = threading.Event()

    def body(ctx):
        ns = ctx.namespace()
        ctx.track({"kind": "Pod", "metadata": {"name": "p", "namespace": ns}})
        started.set()
        with ctx.step("wait for logs"):
            ctx.sleep(30)

    def signaller(ctx):
        started.wait(5)
        os.kill(os.getpid(), sig)
        ctx.sleep(30)

    with interrupts() as guard:
        report = run(cluster, probe("a", body), probe("b", signaller), probe("c", passing),
                     concurrency=2, grace=2, interrupted=lambda: guard.received)
    got = verdicts(report)
    assert got["a"] == (Verdict.ERROR, f"interrupted ({said}) at step wait for logs")
    assert got["c"] == (Verdict.NOT_RUN, "interrupted before it started")
    assert report.exit_code == EXIT_INTERRUPTED and report.signal == signal.Signals(sig).name
    assert "Pod p" in cluster.deleted and cluster.namespaces == set()


def test_a_cluster_failing_during_cleanup_never_raises_and_names_the_leftovers(cluster):
    def wait_fails(names, timeout):
        raise ConnectionRefusedError("Connection refused")

    cluster.wait_namespaces_gone = wait_fails

    def body(ctx):
        ctx.namespace()
        ctx.check("x", True)
        return ctx.passed("ok")

    report = run(cluster, probe("a", body))
    assert verdicts(report)["a"] == (Verdict.PASS, "ok")
    assert report.leftovers == ["aicp-verify-t1-a"]
    assert report.cleanup_errors == [
        "cleanup stopped: ConnectionRefusedError: Connection refused"]


def test_only_a_must_failure_fails_the_run(cluster):
    def failing(ctx):
        ctx.check("x", False)
        return ctx.failed("x is broken")

    assert run(cluster, probe("a", failing), level="SHOULD").exit_code == 0
    assert run(cluster, probe("a", failing), level="MUST").exit_code == 1


def test_a_backed_off_wait_polls_soon_then_doubles_up_to_its_interval(cluster, monkeypatch):
    # The gaps the wait asks for, not the wall clock between polls: a loaded CI machine
    # oversleeps by tens of milliseconds.
    gaps: list[float] = []
    sleep = Context.sleep

    def recorded(ctx, seconds: float) -> None:
        gaps.append(seconds)
        sleep(ctx, seconds)
    monkeypatch.setattr(Context, "sleep", recorded)

    def body(ctx):
        ctx.wait_for("never", lambda: None, timeout=2.4, interval=0.8, first=0.1)
        ctx.check("waited", True)
        return ctx.passed("ok")

    run(cluster, probe("a", body))
    # 0.1, 0.2, 0.4, then the interval (0.8) until the timeout (1.7 s were still left).
    assert gaps[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8]), gaps
    assert all(g <= 0.8 for g in gaps), gaps


def test_the_runner_says_what_a_running_probe_waits_for_and_until_when(cluster):
    seen = []
    runner = Runner(cluster, settings(), probe_timeout=3600)

    def body(ctx):
        seen.append(runner.waits())

        def look():
            seen.append(runner.waits())
            return ctx.wait_for("an inner condition", lambda: seen.append(runner.waits())
                                or True, timeout=5)
        ctx.wait_for("a node of pool h100 to join", look, timeout=1380, interval=30)
        seen.append(runner.waits())
        ctx.check("waited", True)
        return ctx.passed("ok")

    report = runner.run(planned(probe("cluster_autoscaling", body)))
    assert verdicts(report)["cluster_autoscaling"][0] is Verdict.PASS
    before, during, inner, after = seen
    assert before == {} and after == {}, seen
    wait = during["cluster_autoscaling"]
    assert (wait.what, wait.limit) == ("a node of pool h100 to join", 1380)
    assert wait.describe(wait.started + 250) == (
        "waiting for a node of pool h100 to join (4m10s of 23m)")
    assert inner["cluster_autoscaling"].what == "an inner condition"


def test_a_wait_is_limited_by_the_probes_deadline_and_says_so(cluster):
    seen = []
    runner = Runner(cluster, settings(), probe_timeout=600)

    def body(ctx):
        ctx.wait_for("a node of pool h100 to join", lambda: seen.append(runner.waits())
                     or True, timeout=1380)
        ctx.check("waited", True)
        return ctx.passed("ok")

    runner.run(planned(probe("cluster_autoscaling", body)))
    assert 590 < seen[0]["cluster_autoscaling"].limit <= 600, seen


def test_the_runs_own_wait_for_its_namespaces_is_named_too(cluster):
    seen = []
    runner = Runner(cluster, settings(), cleanup_timeout=300)
    gone = cluster.wait_namespaces_gone

    def waiting(names, timeout):
        seen.append(runner.waits())
        return gone(names, timeout)
    cluster.wait_namespaces_gone = waiting

    def body(ctx):
        ctx.namespace()
        ctx.namespace("b")
        ctx.check("made", True)
        return ctx.passed("ok")

    runner.run(planned(probe("a", body)))
    [during] = seen
    wait = during["cleanup"]
    assert wait.describe(wait.started + 40) == (
        "waiting for 2 namespaces of run t1 to be deleted (40s of 5m)")
    assert runner.waits() == {}

# The scheduling rules as data: no thread, no clock ------------------------------------------
def test_the_queue_keeps_the_template_order_and_puts_exclusive_probes_last():
    adds_a_node = probe("adds_a_node", passing)
    adds_a_node.exclusive = True
    items = planned(probe("a", passing), adds_a_node, probe("b", passing))
    left_out = Planned(items[2].requirement, items[2].probe, Verdict.NOT_RUN, "--skip")
    queue = Queue([*items[:2], left_out, *planned(probe("c", passing))], concurrency=4)
    assert [p.requirement.id for p in queue.drain()] == ["a", "c", "adds_a_node"]


def test_the_queue_fills_the_slots_and_an_exclusive_probe_runs_alone():
    adds_a_node = probe("adds_a_node", passing)
    adds_a_node.exclusive = True
    a, b, c, exclusive = planned(probe("a", passing), probe("b", passing),
                                 probe("c", passing), adds_a_node)
    queue = Queue([a, b, c, exclusive], concurrency=2)
    assert queue.next([]) is a and queue.next([a]) is b
    assert queue.next([a, b]) is None  # both slots taken
    assert queue.next([b]) is c
    assert queue.next([c]) is None  # the exclusive probe waits until nothing runs
    assert queue.next([]) is exclusive
    assert not queue and queue.next([]) is None


def test_two_exclusive_probes_run_one_after_the_other():
    first, second = probe("adds_a_node", passing), probe("removes_a_node", passing)
    first.exclusive = second.exclusive = True
    one, two = planned(first, second)
    queue = Queue([one, two], concurrency=4)
    assert queue.next([]) is one and queue.next([one]) is None and queue.next([]) is two


def test_a_signal_python_dropped_still_interrupts_the_run(cluster):
    # A KeyboardInterrupt raised inside a finalizer (__del__) is lost; the guard that
    # handled the signal still remembers it, and the scheduler asks it every tick.
    started = threading.Event()

    def body(ctx):
        with ctx.step("wait for logs"):
            started.set()
            ctx.sleep(30)

    report = run(cluster, probe("a", body), probe("b", passing), concurrency=1,
                 interrupted=lambda: "SIGTERM" if started.is_set() else None)
    assert verdicts(report) == {
        "a": (Verdict.ERROR, "interrupted (SIGTERM) at step wait for logs"),
        "b": (Verdict.NOT_RUN, "interrupted before it started")}
    assert (report.interrupted, report.signal, report.exit_code) == (True, "SIGTERM", 130)
