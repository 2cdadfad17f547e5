"""Runs the planned probes: a concurrency limit, timeouts, verdict rules, cleanup always.

Python threads cannot be killed, so a probe that overruns its timeout is reported ERROR at
once and cancelled: its next checkpoint (``ctx.step``/``sleep``/``wait_for``) raises.
Whatever it created is tracked in the shared ``CleanupStack`` and deleted at the end of the
run on every path: success, failure, timeout, exception, Ctrl-C, SIGTERM and SIGHUP (the
session turns those into ``KeyboardInterrupt``), and a cluster that stops answering (what
could not be deleted is named in ``leftovers``, never raised). While probes run, their
namespaces carry a heartbeat so ``aicp verify cleanup`` leaves a live run alone.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .checklist import Requirement
from .kube import Kube
from .probe import (
    Cancelled,
    CleanupStack,
    Context,
    Probe,
    ProbeError,
    Settings,
    one_line,
)
from .registry import Planned
from .result import PROBE_VERDICTS, Result, Verdict
from .signals import describe, name_of

# 3: no MUST failed, but not every MUST ran (--only, --skip, --read-only, a manual check):
# not a conformance result. 130: interrupted by SIGINT, SIGTERM or SIGHUP, after reports and
# cleanup (a process killed outright by TERM or HUP exits 143 or 129 instead).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# Verdicts of a requirement that was exercised (SKIP: decided not applicable).
DECIDED = frozenset({Verdict.PASS, Verdict.FAIL, Verdict.ERROR, Verdict.SKIP})
HEARTBEAT_SECONDS = 10.0


@dataclass
class Outcome:
    requirement: Requirement
    result: Result
    probe: type[Probe] | None = None


@dataclass
class RunReport:
    """A finished run: one outcome per checklist requirement, in the template's order."""

    settings: Settings
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    duration: float = 0.0
    interrupted: bool = False
    signal: str = ""  # SIGINT, SIGTERM or SIGHUP when interrupted
    cleanup_errors: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    # Printed and reported context: cluster server, kubeconfig context, images.
    info: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """130 interrupted; 1 a MUST failed or could not be decided; 3 a MUST did not run;
        else 0.

        MANUAL, NOT_RUN and SKIP (not applicable) never fail a run: nothing was violated.
        But a MUST that was not exercised (MANUAL, NOT_RUN) leaves the run short of a
        conformance result, so it cannot be 0.
        """
        if self.interrupted:
            return EXIT_INTERRUPTED
        musts = [o for o in self.outcomes if o.requirement.level == "MUST"]
        if any(o.result.verdict in (Verdict.FAIL, Verdict.ERROR) for o in musts):
            return EXIT_FAILED
        if any(o.result.verdict not in DECIDED for o in musts):
            return EXIT_INCOMPLETE
        return EXIT_OK

    def count(self, level: str) -> dict[str, int]:
        """Verdict → how many requirements of ``level`` got it (only verdicts that occur)."""
        found: dict[str, int] = {}
        for o in self.outcomes:
            if o.requirement.level == level:
                found[o.result.verdict.value] = found.get(o.result.verdict.value, 0) + 1
        return found

    def ran(self, level: str = "MUST") -> tuple[int, int]:
        """(requirements of ``level`` that were exercised, requirements of ``level``)."""
        of_level = [o for o in self.outcomes if o.requirement.level == level]
        return sum(o.result.verdict in DECIDED for o in of_level), len(of_level)


@dataclass
class _Worker:
    planned: Planned
    ctx: Context
    deadline: float
    timeout: float = 0.0
    thread: threading.Thread | None = None
    result: Result | None = None
    started: float = field(default_factory=time.monotonic)
    wall_started: float = field(default_factory=time.time)


class Runner:
    """Runs probes in threads; ``on_start``/``on_done`` feed the live terminal view."""

    def __init__(self, cluster: Kube, settings: Settings, *, concurrency: int = 4,
                 probe_timeout: float = 600.0, global_timeout: float = 3600.0,
                 cleanup_timeout: float = 300.0, grace: float = 5.0,
                 heartbeat: float = HEARTBEAT_SECONDS,
                 on_finish: Callable[[], None] | None = None,
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
        self.on_start = on_start or (lambda planned: None)
        self.on_done = on_done or (lambda planned, result: None)
        self.cleanup = CleanupStack(cluster)

    def run(self, planned: list[Planned]) -> RunReport:
        report = RunReport(self.settings)
        results: dict[str, Result] = {}
        for item in planned:
            if not item.runs:
                results[item.requirement.id] = Result(item.verdict or Verdict.MANUAL, item.reason,
                                                      duration=0.0)
        # Exclusive probes go last: a node one of them adds mid-run (still joining, no
        # exporter yet) must not be judged by a probe that surveys every GPU node.
        pending = deque(sorted((item for item in planned if item.runs), key=_exclusive))
        running: dict[str, _Worker] = {}
        workers: list[_Worker] = []
        finished: queue.Queue[str] = queue.Queue()
        start = time.monotonic()
        global_end = start + self.global_timeout

        def settle(worker: _Worker, result: Result) -> None:
            rid = worker.planned.requirement.id
            result.started = worker.wall_started
            result.duration = time.monotonic() - worker.started
            results[rid] = result
            self.on_done(worker.planned, result)

        beating = threading.Event()
        heart = threading.Thread(target=self._beat, args=(beating,), name="verify-heartbeat",
                                 daemon=True)
        heart.start()
        try:
            while pending or running:
                while (pending and len(running) < self.concurrency
                       and time.monotonic() < global_end
                       and not (running and _exclusive(pending[0]))
                       and not any(_exclusive(w.planned) for w in running.values())):
                    worker = self._worker(pending.popleft(), global_end)
                    running[worker.planned.requirement.id] = worker
                    workers.append(worker)
                    self._launch(worker, finished)
                now = time.monotonic()
                wait = min([w.deadline for w in running.values()] + [global_end]) - now
                try:
                    rid = finished.get(timeout=max(0.01, min(wait, 0.5)))
                except queue.Empty:
                    rid = None
                if rid is not None and rid in running:
                    worker = running.pop(rid)
                    if worker.result is None and time.monotonic() >= worker.deadline:
                        # Cancelled by its own deadline just before the runner noticed.
                        settle(worker, Result(Verdict.ERROR, self._timeout(worker, global_end),
                                              worker.ctx.evidence))
                    else:
                        settle(worker, _judge(worker))
                now = time.monotonic()
                for rid, worker in list(running.items()):
                    if now >= worker.deadline:
                        worker.ctx.cancelled.set()
                        running.pop(rid)
                        settle(worker, Result(Verdict.ERROR, self._timeout(worker, global_end),
                                              worker.ctx.evidence))
                if now >= global_end:
                    while pending:
                        item = pending.popleft()
                        results[item.requirement.id] = Result(
                            Verdict.ERROR, f"not started: global timeout "
                            f"{self.global_timeout:g}s reached")
                        self.on_done(item, results[item.requirement.id])
        except KeyboardInterrupt as exc:
            report.interrupted, report.signal = True, name_of(exc)
            for worker in list(running.values()):
                worker.ctx.cancelled.set()
                settle(worker, Result(Verdict.ERROR, f"interrupted ({describe(report.signal)})"
                                      f" at step {worker.ctx.current_step}",
                                      worker.ctx.evidence))
            for item in pending:
                results[item.requirement.id] = Result(Verdict.NOT_RUN,
                                                      "interrupted before it started")
        finally:
            beating.set()
            for worker in workers:
                worker.ctx.cancelled.set()
            self._clean(workers, report)
            self.on_finish()
        report.duration = time.monotonic() - start
        # A signal between two statements of the loop may leave an id unsettled.
        why = f"interrupted ({describe(report.signal or 'SIGINT')})"
        report.outcomes = [Outcome(p.requirement, results.get(p.requirement.id) or Result(
            Verdict.ERROR, why), p.probe) for p in planned]
        return report

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

    def _timeout(self, worker: _Worker, global_end: float) -> str:
        step = worker.ctx.current_step
        if worker.deadline >= global_end:
            return f"global timeout {self.global_timeout:g}s reached at step {step}"
        return f"timed out after {worker.timeout:g}s at step {step}"

    def _worker(self, item: Planned, global_end: float) -> _Worker:
        # A probe whose own waits need longer than --probe-timeout (a cold GPU node) says so.
        own = item.probe.budget(self.settings) if item.probe is not None else None
        timeout = max(self.probe_timeout, own or 0.0)
        deadline = min(time.monotonic() + timeout, global_end)
        ctx = Context(item.requirement.id, self.settings, self.cluster, deadline=deadline,
                      cleanup=self.cleanup)
        return _Worker(item, ctx, deadline, timeout)

    def _launch(self, worker: _Worker, finished: queue.Queue) -> None:
        self.on_start(worker.planned)
        worker.thread = threading.Thread(target=self._work, args=(worker, finished),
                                         name=f"probe-{worker.planned.requirement.id}",
                                         daemon=True)
        worker.thread.start()

    def _work(self, worker: _Worker, finished: queue.Queue) -> None:
        ctx, probe = worker.ctx, worker.planned.probe
        try:
            try:
                if probe is None:  # _start takes only items that run (Planned.runs)
                    raise ProbeError(f"{worker.planned.requirement.id} has no probe to run")
                unmet = [u for u in (self.cluster.unmet(n) for n in probe.needs) if u]
                if unmet:
                    worker.result = ctx.skip(f"not applicable: {'; '.join(unmet)}")
                else:
                    worker.result = probe().run(ctx)
            except Cancelled:
                worker.result = None  # the runner has already reported why it gave up
            except ProbeError as exc:
                worker.result = ctx.error(str(exc))
            except Exception as exc:  # noqa: BLE001 - an exception in a probe is ERROR
                worker.result = ctx.error(one_line(exc))
                worker.result.traceback = traceback.format_exc()
            # Someone deleted the probe's namespace under it (a forced cleanup, kubectl):
            # a FAIL or ERROR then says that, not something about the platform.
            if (isinstance(worker.result, Result) and ctx.namespaces
                    and worker.result.verdict in (Verdict.FAIL, Verdict.ERROR)):
                vanished = self._vanished(ctx.namespaces)
                if vanished:
                    worker.result = Result(Verdict.ERROR, vanished, ctx.evidence)
        except Exception:  # noqa: BLE001 - the namespace check is a courtesy
            pass
        finally:
            # Report first (evidence is complete), then delete what this probe created.
            finished.put(worker.planned.requirement.id)
            mine = [o for o in ctx.evidence.objects if o.kind != "Namespace"]
            self.cleanup.unwind(only=mine)
            for name in ctx.namespaces:
                self.cleanup.delete_namespace(name)

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

    def _clean(self, workers: list[_Worker], report: RunReport) -> None:
        """Delete everything the run created, then wait (bounded) until namespaces are gone.

        Never raises for the cluster's sake: a failure is recorded, and the namespaces not
        seen gone are ``leftovers`` (the session names the cleanup command).
        """
        namespaces: list[str] = []
        try:
            # Let cancelled probes reach a checkpoint so what they were creating is tracked.
            end = time.monotonic() + self.grace
            for worker in workers:
                if worker.thread is not None:
                    worker.thread.join(timeout=max(0.0, end - time.monotonic()))
            self.cleanup.unwind()
            namespaces = list(self.cleanup.namespaces)
            for name in namespaces:
                self.cleanup.delete_namespace(name)
            if namespaces:
                report.leftovers = self.cluster.wait_namespaces_gone(namespaces,
                                                                     self.cleanup_timeout)
        except KeyboardInterrupt as exc:
            report.interrupted = True
            report.signal = report.signal or name_of(exc)
            report.leftovers = list(self.cleanup.namespaces) or ["(cleanup interrupted)"]
        except Exception as exc:  # noqa: BLE001 - results must survive a failed cleanup
            self.cleanup.errors.append(f"cleanup stopped: {one_line(exc)}")
            report.leftovers = namespaces or list(self.cleanup.namespaces)
        report.cleanup_errors = list(self.cleanup.errors)


def _exclusive(item: Planned) -> bool:
    return bool(item.probe and item.probe.exclusive)


def _judge(worker: _Worker) -> Result:
    """Apply the verdict rules to what the probe returned."""
    result = worker.result
    evidence = worker.ctx.evidence
    if result is None:
        return Result(Verdict.ERROR, "the probe returned no result", evidence)
    if not isinstance(result, Result) or result.verdict not in PROBE_VERDICTS:
        return Result(Verdict.ERROR, f"the probe returned {result!r}, not a verdict", evidence)
    if result.verdict is Verdict.PASS:
        checks = result.evidence.checks
        failed = [c for c in checks if not c.passed]
        if not checks:
            return Result(Verdict.ERROR, "the probe claimed PASS with zero checks run; "
                          "zero checks is never a PASS", result.evidence)
        if failed:
            return Result(Verdict.FAIL, f"check failed: {failed[0].name} "
                          f"(observed: {failed[0].observed})", result.evidence,
                          )
    return result
