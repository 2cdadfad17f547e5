"""The terminal: effective settings first, live progress while probes run, a summary.

When output is not a terminal (CI logs, a pipe) the spinner shows nothing, so each probe
running longer than ``heartbeat`` seconds gets a line every ``heartbeat`` seconds. Both say
what a probe waits for, for how long and until when (``waits``: the runner's record of each
probe's ``ctx.wait_for``), so a wait of minutes for a pool that cannot grow is named. The
last line of a run is ``closing_line``: MUSTs passed and run, SHOULDs, exit code, reports.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ..probe import Wait, span
from ..result import Result, Verdict
from ..verdicts import MUST, SHOULD, RunReport, said

if TYPE_CHECKING:
    from ..registry import Planned


# What an ASCII-only terminal (LANG=C, PYTHONIOENCODING=ascii) gets for the few non-ASCII
# characters aicp prints; anything else becomes "?".
_PLAIN = str.maketrans({"—": "-", "–": "-", "…": "...", "→": "->", "←": "<-", "≥": ">=",
                        "≤": "<=", "×": "x", "’": "'", "‘": "'", "“": '"', "”": '"',
                        "✓": "ok", "✗": "x", "·": "-"})


class Tolerant(io.TextIOBase):
    """A stream that outlives its reader: an SSH session dropped (the SIGHUP case), a CI log
    collector gone, ``| head`` closed. The first failed write sends the rest, and Python's
    own flush at exit, to /dev/null, so the run still writes its reports and cleans up.

    It also survives what the process started with: no stream at all (``aicp verify >&-``:
    Python sets ``sys.stdout`` to None) and a terminal whose encoding cannot show a
    character (an ASCII-only locale): the text is written in what the encoding can show,
    so the closing line always gets out.
    """

    def __init__(self, stream):
        self.stream = stream
        self.gone = stream is None

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(self.shown(text))
            except (OSError, ValueError):  # ValueError: the stream was closed
                self._lose()
        return len(text)

    def shown(self, text: str) -> str:
        """``text`` in what this stream's encoding can show."""
        try:
            text.encode(self.encoding)
            return text
        except (UnicodeEncodeError, LookupError):
            pass
        plain = text.translate(_PLAIN)
        return plain.encode(self.encoding, "replace").decode(self.encoding, "replace")

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._lose()

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise io.UnsupportedOperation("no stream")
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def _lose(self) -> None:
        self.gone = True
        if self.stream is None:
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass  # not a real file descriptor (a test's capture): nothing flushes it at exit


STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.ERROR: "magenta",
         Verdict.SKIP: "yellow", Verdict.MANUAL: "cyan", Verdict.NOT_RUN: "dim"}


class TerminalView:
    """Feeds on the runner's ``on_start``/``on_done``; everything goes to one console."""

    def __init__(self, console: Console | None = None, heartbeat: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None):
        """``clock`` and ``wait`` (sleep up to N seconds, True once the view closes; the
        default waits on the view's own stop event) drive the heartbeat: a test passes its
        own to make beats happen without sleeping."""
        self.console = console or Console(highlight=False)
        # What each running probe waits for now (the session passes ``Runner.waits``).
        self.waits: Callable[[], Mapping[str, Wait]] = dict
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), _WaitColumn(self),
                                 console=self.console, transient=True)
        self._tasks: dict[str, TaskID] = {}
        self.heartbeat = heartbeat
        self._running: dict[str, float] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._clock = clock
        self._wait = wait or self._stop.wait

    def settings(self, lines: dict[str, str]) -> None:
        for key, value in lines.items():
            self.console.print(f"[bold]{key}[/]: {value}", soft_wrap=True)

    def __enter__(self) -> TerminalView:
        self.progress.start()
        if not self.console.is_terminal:
            self._stop.clear()
            self._beat = threading.Thread(target=self._beats, name="verify-progress",
                                          daemon=True)
            self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.progress.stop()

    def _beats(self) -> None:
        while not self._wait(self.heartbeat):
            now = self._clock()
            waits = self._waits()
            for rid, since in sorted(self._running.copy().items()):
                if now - since >= self.heartbeat:
                    wait = waits.get(rid)
                    self.console.print(f"…     {rid} still running ({span(now - since)})"
                                       + (f": {wait.describe(now)}" if wait else ""),
                                       soft_wrap=True)
            for rid, wait in sorted(waits.items()):  # the run's own waits (``cleanup``)
                if rid not in self._running and now - wait.started >= self.heartbeat:
                    self.console.print(f"…     {rid}: {wait.describe(now)}", soft_wrap=True)

    def _waits(self) -> Mapping[str, Wait]:
        try:
            return self.waits()
        except Exception:  # noqa: BLE001 - a progress line must never stop the run
            return {}

    def waiting(self, rid: str) -> str:
        """What probe ``rid`` waits for now, as the live line shows it ("" when nothing)."""
        wait = self._waits().get(rid)
        return wait.describe(self._clock()) if wait else ""

    def on_start(self, planned: Planned) -> None:
        self._running[planned.requirement.id] = self._clock()
        self._tasks[planned.requirement.id] = self.progress.add_task(
            f"{planned.requirement.id} running", total=None, rid=planned.requirement.id)

    def on_done(self, planned: Planned, result: Result) -> None:
        self._running.pop(planned.requirement.id, None)
        task = self._tasks.pop(planned.requirement.id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.console.print(
            f"[{STYLE[result.verdict]}]{result.verdict.value:<5}[/] {planned.requirement.id} "
            f"({result.duration:.1f}s): {result.reason}", soft_wrap=True)

    def _platform(self, report: RunReport) -> None:
        """aicp's own checks, in a table of their own: never rows of the checklist's."""
        if not report.platform:
            return
        table = Table(title="aicp platform checks (not part of the CNCF checklist)",
                      show_lines=False)
        longest = max(len(o.requirement.id) for o in report.platform)
        table.add_column("Check", no_wrap=True, min_width=longest)
        table.add_column("Verdict", no_wrap=True)
        table.add_column("Time", no_wrap=True, justify="right")
        table.add_column("Reason", overflow="fold", ratio=1)
        for o in report.platform:
            r = o.result
            table.add_row(o.requirement.id, f"[{STYLE[r.verdict]}]{r.verdict.value}[/]",
                          f"{r.duration:.1f}s" if r.verdict not in (Verdict.MANUAL,
                                                                    Verdict.NOT_RUN) else "",
                          r.reason)
        self.console.print(table)

    def retry(self, message: str) -> None:
        self.console.print(f"[dim]retrying {message}[/]", soft_wrap=True)

    def summary(self, report: RunReport) -> None:
        table = Table(title=f"Kubernetes AI Conformance {report.settings.checklist_version}",
                      show_lines=False)
        # Ids are never broken (a reader greps for them); the reason takes what is left.
        longest = max((len(o.requirement.id) for o in report.outcomes), default=11)
        table.add_column("Requirement", no_wrap=True, min_width=longest)
        table.add_column("Level", no_wrap=True)
        table.add_column("Verdict", no_wrap=True)
        table.add_column("Time", no_wrap=True, justify="right")
        table.add_column("Reason", overflow="fold", ratio=1)
        for o in report.outcomes:
            r = o.result
            table.add_row(o.requirement.id, o.requirement.level,
                          f"[{STYLE[r.verdict]}]{r.verdict.value}[/]",
                          f"{r.duration:.1f}s" if r.verdict not in (Verdict.MANUAL,
                                                                    Verdict.NOT_RUN) else "",
                          r.reason)
        self.console.print(table)
        self._platform(report)
        for error in report.cleanup_errors:
            self.console.print(f"[red]cleanup:[/] {error}", soft_wrap=True)


class _WaitColumn(ProgressColumn):
    """On a terminal, the spinner's line also says what the probe waits for."""

    def __init__(self, view: TerminalView):
        super().__init__()
        self.view = view

    def render(self, task: Task) -> Text:
        return Text(self.view.waiting(str(task.fields.get("rid", ""))), style="dim")


def closing_line(report: RunReport, code: int, reports: Path | None,
                 unsaved: str | None = None) -> str:
    """``9/9 MUST passed, 2 SHOULD not implemented — exit 0; reports: /abs/path``.

    Says how many MUSTs ran whenever not all did: such a run is no conformance result.
    """
    musts = report.count(MUST)
    ran, total = report.ran(MUST)
    passed = musts.get("PASS", 0)
    rest = ([f"{musts['FAIL']} failed"] if musts.get("FAIL") else []) + (
        [f"{musts['ERROR']} undecided (ERROR)"] if musts.get("ERROR") else []) + (
        [f"{musts['SKIP']} not applicable"] if musts.get("SKIP") else [])
    if ran == total:
        parts = [f"{passed}/{total} MUST passed", *rest]
    else:
        parts = [f"{ran}/{total} MUST ran ({', '.join([f'{passed} passed', *rest])})",
                 f"{total - ran} not run: not a conformance result"]
    words = {"PASS": "passed", "FAIL": "not implemented", "ERROR": "undecided",
             "SKIP": "not applicable", "MANUAL": "manual", "NOT_RUN": "not run"}
    parts += [f"{n} SHOULD {words[v]}" for v, n in report.count(SHOULD).items() if n]
    text = ", ".join(parts)
    if report.interrupted:
        text = f"interrupted ({said(report.signal)}): {text}"
    return text + f" — exit {code}; " + (
        unsaved if unsaved else f"reports: {reports}" if reports
        else "no reports written (pass --output json|junit|checklist)")
