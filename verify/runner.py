"""Runs the planned probes by the scheduling rules below, and always cleans up after them.

The rules (proved in ``tests/verify/test_runner.py``; the budget, the heartbeat and a
namespace deleted under a probe against the emulated API server, in ``test_workload_worlds``
and the kube tests; signals and a lost API server end to end, in ``test_interruptions``):

1. Nothing to run. A requirement the plan does not run (manual, ``--only``/``--skip``,
   ``--read-only``, ``--long``, not applicable to the stack) gets its verdict at once.
2. Order. Probes start in the template's order, except that ``exclusive`` probes (they
   change what others observe cluster-wide, e.g. add a node) come after every other one: a
   node one of them adds mid-run, still joining with no exporter yet, must not be judged
   by a probe that surveys every GPU node. aicp's platform checks (``Planned.platform``)
   start after every requirement probe, by id; their outcomes go to ``report.platform``.
3. Concurrency. At most ``concurrency`` probes run at once, each in its own thread. An
   exclusive probe starts only when nothing else runs, and nothing starts beside it.
4. Budget. A probe may run for ``--probe-timeout`` seconds, or longer when its own waits
   need longer (``Probe.budget``: a cold GPU node joining); never past the global deadline.
5. Timeout. Python threads cannot be killed: at its deadline a probe is reported ERROR at
   once, naming the step it was in, and cancelled; its next checkpoint (``ctx.step``,
   ``sleep``, ``wait_for``) raises ``Cancelled``, and what it returns later is dropped.
6. Global deadline (``--timeout``). No probe starts after it; those left are ERROR, "not
   started".
7. Interruption. Ctrl-C, SIGTERM and SIGHUP arrive as ``KeyboardInterrupt`` in the main
   thread (``signals``): running probes are ERROR "interrupted ... at step ..." and
   cancelled, probes not started are NOT_RUN, and cleanup (9) runs as on every other path.
   Python drops an exception raised inside a finalizer (``__del__``), a signal's included,
   so the scheduler also asks ``interrupted`` each tick: the session's ``Guard.received``,
   or without it the runner's own record of Ctrl-C (``signals.remembered_ctrl_c``).
8. Heartbeat. While probes run, the run's namespaces are stamped every ``heartbeat``
   seconds, so ``aicp verify cleanup`` in another terminal leaves a live run alone; and
   ``waits`` says what each running probe waits for (its ``ctx.wait_for``: what, since
   when, until when), so the progress lines name a wait of minutes.
9. Cleanup, in reverse order of creation. A probe that ends reports first (its evidence
   is complete), then deletes what it created and asks for its namespaces' deletion. When
   the run ends, every probe still running is cancelled and given ``grace`` seconds to
   reach a checkpoint, so what it was creating is tracked; then everything still tracked
   is deleted, and the runner waits up to ``cleanup_timeout`` until the namespaces are
   gone. A signal during that wait ends it; the namespaces are named as ``leftovers``.
10. A lost API server. Cleanup never raises: a failed delete is a ``cleanup_errors`` line,
    namespaces not seen gone are ``leftovers`` (the session prints the ``aicp verify
    cleanup`` command). A probe's own requests end it with ``kube.Lost`` ("lost the
    connection to the cluster ..."), an environment problem: ERROR.
11. A namespace deleted under a probe (a forced ``aicp verify cleanup``, kubectl) makes its
    FAIL or ERROR say so: nothing was decided about the platform.

What a verdict means, and what a probe's answer becomes (``verdicts.judge``), lives in
``verdicts``; this module decides only when things run.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import verdicts
from .kube import Kube
from .probe import Cancelled, CleanupStack, Context, ProbeError, Settings, Wait, one_line
from .registry import Planned
from .result import Result, Verdict
from .signals import Interrupted, name_of, remembered_ctrl_c
from .verdicts import Outcome, RunReport
from .version import VERSION

HEARTBEAT_SECONDS = 10.0
# The longest the scheduler sleeps between two looks at the clock, whatever the deadlines.
TICK_SECONDS = 0.5


def exclusive(item: Planned) -> bool:
    return bool(item.probe and item.probe.exclusive)


class Queue:
    """Rules 2 and 3 as data: the probes still to start, and which may start now."""

    def __init__(self, planned: Iterable[Planned], concurrency: int):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        # sorted() is stable: the template's order within each group.
        self.pending = deque(sorted((p for p in planned if p.runs),
                                    key=lambda p: (p.platform, exclusive(p))))

    def __bool__(self) -> bool:
        return bool(self.pending)

    def next(self, running: Collection[Planned]) -> Planned | None:
        """The probe to start beside ``running``, or None: wait for one to end."""
        if (not self.pending or len(running) >= self.concurrency
                or any(exclusive(p) for p in running)
                or (running and exclusive(self.pending[0]))):
            return None
        return self.pending.popleft()

    def drain(self) -> list[Planned]:
        """Every probe not started, in order; the queue is left empty."""
        left = list(self.pending)
        self.pending.clear()
        return left


@dataclass
class _Running:
    """One started probe: its thread, its deadline, and what it answered."""

    planned: Planned
    ctx: Context
    budget: float
    deadline: float  # time.monotonic()
    started: float = field(default_factory=time.monotonic)
    wall_started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    answer: Any = None  # what the probe returned; None when cancelled

    @property
    def id(self) -> str:
        return self.planned.requirement.id


class Runner:
    """Runs probes in threads; ``on_start``/``on_done`` feed the live terminal view."""

    def __init__(self, cluster: Kube, settings: Settings, *, concurrency: int = 4,
                 probe_timeout: float = 600.0, global_timeout: float = 3600.0,
                 cleanup_timeout: float = 300.0, grace: float = 5.0,
                 heartbeat: float = HEARTBEAT_SECONDS,
                 on_finish: Callable[[], None] | None = None,
                 interrupted: Callable[[], str | None] | None = None,
                 on_start: Callable[[Planned], None] | None = None,
                 on_done: Callable[[Planned, Result], None] | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.cluster = cluster
        self.settings = settings
        self.concurrency = concurrency
        self.probe_timeout = probe_timeout
        self.global_timeout = global_timeout
        self.cleanup_timeout = cleanup_timeout
        self.grace = grace
        self.heartbeat = heartbeat
        # Called once cleanup is over: the session stops signals from cutting the reports.
        self.on_finish = on_finish or (lambda: None)
        # The signal received, if any (rule 7): a KeyboardInterrupt can be lost. Without
        # the session's record, ``run`` remembers Ctrl-C itself (``remembered_ctrl_c``).
        self._own_record = interrupted is None
        self.interrupted = interrupted or (lambda: None)
        self.on_start = on_start or (lambda planned: None)
        self.on_done = on_done or (lambda planned, result: None)
        self.cleanup = CleanupStack(cluster)
        self._contexts: dict[str, Context] = {}  # each started probe's, for ``waits``
        self._cleanup_wait: Wait | None = None  # the run's own wait for its namespaces

    def waits(self) -> dict[str, Wait]:
        """What each running probe is waiting for now (``ctx.wait_for``), and ``cleanup``
        while the run waits for its namespaces to go: the progress lines print them."""
        found = {rid: wait for rid, ctx in list(self._contexts.items())
                 if (wait := ctx.waiting) is not None}
        if self._cleanup_wait is not None:
            found["cleanup"] = self._cleanup_wait
        return found

    def run(self, planned: list[Planned]) -> RunReport:
        if not self._own_record:
            return self._run(planned)
        with remembered_ctrl_c() as received:
            self.interrupted = received
            return self._run(planned)

    def _run(self, planned: list[Planned]) -> RunReport:
        report = RunReport(self.settings, VERSION, started=time.time())
        begun = time.monotonic()
        run = _Run(self, planned, end=begun + self.global_timeout)
        beating = self._start_heartbeat()
        try:
            run.schedule()
        except KeyboardInterrupt as exc:
            report.interrupted, report.signal = True, name_of(exc)
            run.interrupt(report.signal)
        finally:
            beating.set()
            run.cancel()
            self._clean(run.started, report)
            self.on_finish()
        report.duration = time.monotonic() - begun
        outcomes = [(p, Outcome(p.requirement, run.results.get(p.requirement.id)
                                # A signal between two statements of the loop.
                                or verdicts.unsettled(report.signal))) for p in planned]
        report.outcomes = [o for p, o in outcomes if not p.platform]
        report.platform = [o for p, o in outcomes if p.platform]
        return report

    # Rule 8 -----------------------------------------------------------------------------
    def _start_heartbeat(self) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self._beat, args=(stop,), name="verify-heartbeat",
                         daemon=True).start()
        return stop

    def _beat(self, stop: threading.Event) -> None:
        """Refresh the heartbeat on the run's namespaces until the probes are over."""
        beat = getattr(self.cluster, "heartbeat", None)
        if beat is None:
            return
        while not stop.wait(self.heartbeat):
            if self.cleanup.namespaces:
                try:
                    beat(list(self.cleanup.namespaces))
                except Exception:  # noqa: BLE001 - a lost heartbeat only ages; probes go on
                    pass

    # One probe, in its thread -----------------------------------------------------------
    def launch(self, item: Planned, end: float, finished: queue.Queue[str]) -> _Running:
        """Rule 4: the probe's budget and deadline; then its thread."""
        own = item.probe.budget(self.settings) if item.probe is not None else None
        budget = max(self.probe_timeout, own or 0.0)
        deadline = min(time.monotonic() + budget, end)
        ctx = Context(item.requirement.id, self.settings, self.cluster, deadline=deadline,
                      cleanup=self.cleanup)
        running = _Running(item, ctx, budget, deadline)
        self._contexts[running.id] = ctx
        self.on_start(item)
        running.thread = threading.Thread(target=self._work, args=(running, finished),
                                          name=f"probe-{running.id}", daemon=True)
        running.thread.start()
        return running

    def _work(self, running: _Running, finished: queue.Queue[str]) -> None:
        try:
            running.answer = self._answer(running)
        finally:
            # Rule 9: report first (the evidence is complete), then delete what it created.
            finished.put(running.id)
            ctx = running.ctx
            self.cleanup.unwind(only=[o for o in ctx.evidence.objects if o.kind != "Namespace"])
            for name in ctx.namespaces:
                self.cleanup.delete_namespace(name)

    def _answer(self, running: _Running) -> object:
        """What the probe answered: its return value, or the ERROR/SKIP it earned."""
        ctx, probe = running.ctx, running.planned.probe
        try:
            if probe is None:  # a Queue holds only items that run (Planned.runs)
                raise ProbeError(f"{running.id} has no probe to run")
            unmet = [u for u in (self.cluster.unmet(n) for n in probe.needs) if u]
            if unmet:
                return verdicts.not_applicable(unmet, ctx.evidence)
            answer: object = probe().run(ctx)
        except Cancelled:
            return None  # the runner has already reported why it gave up
        except ProbeError as exc:  # an environment problem, kube.Lost included (rule 10)
            answer = ctx.error(str(exc))
        except Exception as exc:  # noqa: BLE001 - an exception in a probe is ERROR
            answer = ctx.error(one_line(exc))
            answer.traceback = traceback.format_exc()
        if (isinstance(answer, Result) and ctx.namespaces
                and answer.verdict in (Verdict.FAIL, Verdict.ERROR)):
            try:
                vanished = self._vanished(ctx.namespaces)
            except Exception:  # noqa: BLE001 - the namespace check is a courtesy
                vanished = None
            if vanished:  # rule 11
                return Result(Verdict.ERROR, vanished, ctx.evidence)
        return answer

    def _vanished(self, namespaces: list[str]) -> str | None:
        # A namespace being deleted has status.phase Terminating and refuses creates with a
        # 403 "unable to create new content in namespace X because it is being terminated"
        # (kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/
        # lifecycle/admission.go): a probe would read that as a missing permission.
        state = getattr(self.cluster, "namespace_state", None)
        if state is None:
            return None
        for name in namespaces:
            found = state(name)
            if found in ("gone", "terminating"):
                return (f"namespace {name} was deleted while the probe ran, not by this run "
                        f"({'already gone' if found == 'gone' else 'terminating'}): nothing "
                        "was decided about the platform (a forced `aicp verify cleanup`?)")
        return None

    # Rules 9 and 10 ---------------------------------------------------------------------
    def _clean(self, started: list[_Running], report: RunReport) -> None:
        """Delete everything the run created, then wait (bounded) until namespaces are gone.

        Never raises for the cluster's sake: a failure is recorded, and the namespaces not
        seen gone are ``leftovers`` (the session names the cleanup command).
        """
        namespaces: list[str] = []
        try:
            # Let cancelled probes reach a checkpoint so what they were creating is tracked.
            end = time.monotonic() + self.grace
            for running in started:
                if running.thread is not None:
                    running.thread.join(timeout=max(0.0, end - time.monotonic()))
            self.cleanup.unwind()
            namespaces = list(self.cleanup.namespaces)
            for name in namespaces:
                self.cleanup.delete_namespace(name)
            if namespaces:
                self._cleanup_wait = Wait(f"{len(namespaces)} namespaces of run "
                                          f"{self.settings.run_id} to be deleted",
                                          time.monotonic(), self.cleanup_timeout)
                try:
                    report.leftovers = self.cluster.wait_namespaces_gone(namespaces,
                                                                         self.cleanup_timeout)
                finally:
                    self._cleanup_wait = None
        except KeyboardInterrupt as exc:
            report.interrupted = True
            report.signal = report.signal or name_of(exc)
            report.leftovers = list(self.cleanup.namespaces) or ["(cleanup interrupted)"]
        except Exception as exc:  # noqa: BLE001 - results must survive a failed cleanup
            self.cleanup.errors.append(f"cleanup stopped: {one_line(exc)}")
            report.leftovers = namespaces or list(self.cleanup.namespaces)
        report.cleanup_errors = list(self.cleanup.errors)


class _Run:
    """The state of one run while probes run: what waits, what runs, what was decided."""

    def __init__(self, runner: Runner, planned: list[Planned], *, end: float):
        self.runner = runner
        self.end = end  # the global deadline, time.monotonic()
        self.queue = Queue(planned, runner.concurrency)
        self.running: dict[str, _Running] = {}
        self.started: list[_Running] = []
        self.finished: queue.Queue[str] = queue.Queue()
        # Rule 1: what does not run is decided before anything starts.
        self.results: dict[str, Result] = {
            p.requirement.id: Result(p.verdict or Verdict.MANUAL, p.reason, duration=0.0)
            for p in planned if not p.runs}

    def schedule(self) -> None:
        """Start what may start, wait for a probe to end or a deadline, settle; repeat."""
        while self.queue or self.running:
            signal = self.runner.interrupted()
            if signal:  # its KeyboardInterrupt was raised where Python dropped it
                raise Interrupted(signal)
            self._start_what_may_start()
            self._settle_finished(self._next_finished())
            now = time.monotonic()
            self._expire(now)
            if now >= self.end:  # rule 6
                for item in self.queue.drain():
                    self._decide(item, verdicts.not_started(self.runner.global_timeout))

    def _start_what_may_start(self) -> None:
        while time.monotonic() < self.end:
            item = self.queue.next([r.planned for r in self.running.values()])
            if item is None:
                return
            running = self.runner.launch(item, self.end, self.finished)
            self.running[running.id] = running
            self.started.append(running)

    def _next_finished(self) -> str | None:
        """The id of a probe that ended, or None once its deadline or the global one is
        near. Waits at most ``TICK_SECONDS``: a lock wait is where a signal lands."""
        soonest = min([r.deadline for r in self.running.values()] + [self.end])
        wait = max(0.01, min(soonest - time.monotonic(), TICK_SECONDS))
        try:
            return self.finished.get(timeout=wait)
        except queue.Empty:
            return None

    def _settle_finished(self, rid: str | None) -> None:
        running = self.running.pop(rid, None) if rid is not None else None
        if running is None:  # already settled by its deadline (rule 5)
            return
        if running.answer is None and time.monotonic() >= running.deadline:
            # Cancelled by its own deadline just before the runner noticed.
            self._settle(running, self._timeout(running))
        else:
            self._settle(running, verdicts.judge(running.answer, running.ctx.evidence))

    def _expire(self, now: float) -> None:
        """Rule 5: every probe past its deadline is ERROR now, and cancelled."""
        for rid, running in list(self.running.items()):
            if now >= running.deadline:
                running.ctx.cancelled.set()
                del self.running[rid]
                self._settle(running, self._timeout(running))

    def _timeout(self, running: _Running) -> Result:
        step, evidence = running.ctx.current_step, running.ctx.evidence
        if running.deadline >= self.end:
            return verdicts.global_timeout(self.runner.global_timeout, step, evidence)
        return verdicts.timed_out(running.budget, step, evidence)

    def interrupt(self, signal: str) -> None:
        """Rule 7: what runs is ERROR and cancelled; what waits is NOT_RUN."""
        for running in list(self.running.values()):
            running.ctx.cancelled.set()
            self._settle(running, verdicts.interrupted(signal, running.ctx.current_step,
                                                       running.ctx.evidence))
        self.running.clear()
        for item in self.queue.drain():
            self.results[item.requirement.id] = verdicts.interrupted_before_start()

    def cancel(self) -> None:
        """The run is over: every probe still going stops at its next checkpoint."""
        for running in self.started:
            running.ctx.cancelled.set()

    def _settle(self, running: _Running, result: Result) -> None:
        result.started = running.wall_started
        result.duration = time.monotonic() - running.started
        self._decide(running.planned, result)

    def _decide(self, item: Planned, result: Result) -> None:
        self.results[item.requirement.id] = result
        self.runner.on_done(item, result)
