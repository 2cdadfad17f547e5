"""What a person (or a CI log) sees: the table at 80 columns, heartbeats, the closing line."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console

from aicp.verify.checklist import Requirement
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
    beats = re.findall(r"(\w+) still running \((\d+)s\)", out.getvalue())
    if terminal:  # the spinner shows it; no extra lines, no thread to write them
        assert beats == [] and view._beat is None
    else:  # one line a heartbeat, for the probe still running only
        assert beats == [("gang_scheduling", "30"), ("gang_scheduling", "60"),
                         ("gang_scheduling", "90")], out.getvalue()
