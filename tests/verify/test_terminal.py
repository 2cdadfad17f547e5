"""What a person (or a CI log) sees: the table at 80 columns, heartbeats, the closing line."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console

from aicp.verify.checklist import Requirement
from aicp.verify.probe import Wait, span
from aicp.verify.registry import Planned
from aicp.verify.reports.terminal import TerminalView, closing_line
from aicp.verify.result import Result, Verdict
from aicp.verify.verdicts import Outcome, RunReport
from aicp.verify.version import VERSION
from tests.verify.conftest import VERSIONS, settings, template


def report_of(*rows: tuple[str, str, Verdict], reason: str = "ok", **fields) -> RunReport:
    report = RunReport(settings(), VERSION, **fields)
    report.outcomes = [Outcome(Requirement(rid, "accelerators", level, rid),
                               Result(verdict, reason)) for rid, level, verdict in rows]
    return report


def test_the_closing_line_reads_as_the_issue_asks():
    rows = [(f"m{i}", "MUST", Verdict.PASS) for i in range(9)]
    rows += [("s1", "SHOULD", Verdict.FAIL), ("s2", "SHOULD", Verdict.FAIL)]
    report = report_of(*rows)
    assert closing_line(report, report.exit_code, Path("/abs/path")) == (
        "9/9 MUST passed, 2 SHOULD not implemented — exit 0; reports: /abs/path")


@pytest.mark.parametrize("verdicts, interrupted, line", [
    ([Verdict.PASS] * 7 + [Verdict.FAIL, Verdict.ERROR], "",
     "7/9 MUST passed, 1 failed, 1 undecided (ERROR) — exit 1; reports: /r"),
    ([Verdict.PASS, Verdict.SKIP] + [Verdict.NOT_RUN] * 7, "",
     "2/9 MUST ran (1 passed, 1 not applicable), 7 not run: not a conformance result "
     "— exit 3; reports: /r"),
    ([Verdict.PASS, Verdict.ERROR] + [Verdict.NOT_RUN] * 7, "SIGTERM",
     "interrupted (SIGTERM): 2/9 MUST ran (1 passed, 1 undecided (ERROR)), 7 not run: not a "
     "conformance result — exit 130; reports: /r"),
])
def test_the_closing_line_says_how_many_musts_ran(verdicts, interrupted, line):
    report = report_of(*[(f"m{i}", "MUST", v) for i, v in enumerate(verdicts)],
                       interrupted=bool(interrupted), signal=interrupted)
    assert closing_line(report, report.exit_code, Path("/r")) == line


def test_without_reports_the_closing_line_says_how_to_get_them():
    report = report_of(("m", "MUST", Verdict.PASS))
    assert closing_line(report, 0, None) == (
        "1/1 MUST passed — exit 0; no reports written (pass --output json|junit|checklist)")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_table_fits_80_columns_and_never_breaks_an_id(version):
    tmpl = template(version)
    reason = ("a claim on DeviceClass gpu.nvidia.com was not allocated within 120s "
              "(https://github.com/NVIDIA/k8s-dra-driver-gpu/blob/main/README.md)")
    report = RunReport(settings(version=version), VERSION)
    report.outcomes = [Outcome(r, Result(Verdict.ERROR, reason)) for r in tmpl.requirements]
    out = io.StringIO()
    TerminalView(Console(file=out, width=80, force_terminal=False)).summary(report)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    cells = [cell.strip() for line in lines for cell in re.split(r"[│┃]", line)]
    for r in tmpl.requirements:
        assert r.id in cells, (r.id, out.getvalue())


def planned(rid: str) -> Planned:
    return Planned(Requirement(rid, "accelerators", "MUST", rid), None)


class Ticks:
    """The heartbeat's clock and wait, driven by the test: each wait moves the clock on by
    the heartbeat at once, ``count`` times, then says the view closed (no real sleep)."""

    def __init__(self, count: int):
        self.now, self.count = 0.0, count
        self.go, self.done = threading.Event(), threading.Event()

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.go.wait()  # the ticks start once the test has started its probes
        if self.count == 0:
            self.done.set()
            return True
        self.count -= 1
        self.now += seconds
        return False


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "tty"])
def test_a_long_probe_gets_a_heartbeat_line_when_output_is_not_a_terminal(terminal):
    out = io.StringIO()
    ticks = Ticks(3)
    view = TerminalView(Console(file=out, width=120, force_terminal=terminal), heartbeat=30.0,
                        clock=ticks.clock, wait=ticks.wait)
    with view:
        view.on_start(planned("gang_scheduling"))
        view.on_start(planned("quick"))
        view.on_done(planned("quick"), Result(Verdict.PASS, "ok"))
        ticks.go.set()
        if not terminal:  # the heartbeat thread has had its three beats
            assert ticks.done.wait(timeout=60)
        view.on_done(planned("gang_scheduling"), Result(Verdict.PASS, "ok"))
    beats = re.findall(r"(\w+) still running \((\w+)\)", out.getvalue())
    if terminal:  # the spinner shows it; no extra lines, no thread to write them
        assert beats == [] and view._beat is None
    else:  # one line a heartbeat, for the probe still running only
        assert beats == [("gang_scheduling", "30s"), ("gang_scheduling", "1m"),
                         ("gang_scheduling", "1m30s")], out.getvalue()


# A wait that began 220 s before the probe's first beat, limited to 23 minutes.
POOL_WAIT = Wait("a new node of pool h100 to join and run the GPU pod", started=-220.0,
                 limit=1380.0)


def test_a_heartbeat_line_says_what_a_probe_waits_for_how_long_and_its_limit():
    out = io.StringIO()
    ticks = Ticks(1)
    view = TerminalView(Console(file=out, width=200), heartbeat=30.0, clock=ticks.clock,
                        wait=ticks.wait)
    view.waits = lambda: {"cluster_autoscaling": POOL_WAIT}
    with view:
        view.on_start(planned("cluster_autoscaling"))
        view.on_start(planned("gang_scheduling"))  # between two waits: nothing to name
        ticks.go.set()
        assert ticks.done.wait(timeout=60)
    assert [line for line in out.getvalue().splitlines() if "still running" in line] == [
        "…     cluster_autoscaling still running (30s): waiting for a new node of pool h100 "
        "to join and run the GPU pod (4m10s of 23m)",
        "…     gang_scheduling still running (30s)"], out.getvalue()


def test_the_runs_cleanup_wait_gets_a_line_too_once_it_lasts():
    out = io.StringIO()
    ticks = Ticks(2)
    view = TerminalView(Console(file=out, width=200), heartbeat=30.0, clock=ticks.clock,
                        wait=ticks.wait)
    view.waits = lambda: {"cleanup": Wait("3 namespaces of run t1 to be deleted",
                                          started=10.0, limit=300.0)}
    with view:
        ticks.go.set()
        assert ticks.done.wait(timeout=60)
    assert [line for line in out.getvalue().splitlines() if line.startswith("…")] == [
        "…     cleanup: waiting for 3 namespaces of run t1 to be deleted (50s of 5m)"]


def test_on_a_terminal_the_spinner_line_names_the_wait():
    ticks = Ticks(0)
    ticks.now = 30.0
    view = TerminalView(Console(file=io.StringIO(), force_terminal=True), clock=ticks.clock,
                        wait=ticks.wait)
    view.waits = lambda: {"cluster_autoscaling": POOL_WAIT}
    view.on_start(planned("cluster_autoscaling"))
    view.on_start(planned("gang_scheduling"))
    column = view.progress.columns[-1]
    shown = [column.render(task).plain for task in view.progress.tasks]  # type: ignore[union-attr]
    assert shown == ["waiting for a new node of pool h100 to join and run the GPU pod "
                     "(4m10s of 23m)", ""]


def test_a_broken_wait_record_never_stops_the_progress_lines():
    view = TerminalView(Console(file=io.StringIO()))
    view.waits = lambda: 1 / 0  # type: ignore[assignment,return-value]
    view.on_start(planned("cluster_autoscaling"))
    assert view.waiting("cluster_autoscaling") == ""


@pytest.mark.parametrize("seconds, said", [(0, "0s"), (45, "45s"), (250, "4m10s"),
                                           (1380, "23m"), (3900, "1h05m")])
def test_durations_read_as_a_person_says_them(seconds, said):
    assert span(seconds) == said
