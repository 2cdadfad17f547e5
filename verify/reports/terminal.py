"""The terminal: effective settings first, live progress while probes run, a summary."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..result import Verdict

STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.ERROR: "magenta",
         Verdict.SKIP: "yellow", Verdict.MANUAL: "cyan", Verdict.NOT_RUN: "dim"}


class TerminalView:
    """Feeds on the runner's ``on_start``/``on_done``; everything goes to one console."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self._tasks: dict[str, TaskID] = {}

    def settings(self, lines: dict[str, str]) -> None:
        for key, value in lines.items():
            self.console.print(f"[bold]{key}[/]: {value}", soft_wrap=True)

    def __enter__(self) -> TerminalView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_start(self, planned) -> None:
        self._tasks[planned.requirement.id] = self.progress.add_task(
            f"{planned.requirement.id} running", total=None)

    def on_done(self, planned, result) -> None:
        task = self._tasks.pop(planned.requirement.id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.console.print(
            f"[{STYLE[result.verdict]}]{result.verdict.value:<5}[/] {planned.requirement.id} "
            f"({result.duration:.1f}s): {result.reason}", soft_wrap=True)

    def retry(self, message: str) -> None:
        self.console.print(f"[dim]retrying {message}[/]", soft_wrap=True)

    def summary(self, report) -> None:
        table = Table(title=f"Kubernetes AI Conformance {report.settings.checklist_version}",
                      show_lines=False)
        for column in ("Requirement", "Level", "Verdict", "Time", "Reason"):
            table.add_column(column, overflow="fold")
        for o in report.outcomes:
            r = o.result
            table.add_row(o.requirement.id, o.requirement.level,
                          f"[{STYLE[r.verdict]}]{r.verdict.value}[/]",
                          f"{r.duration:.1f}s" if r.verdict not in (Verdict.MANUAL,
                                                                    Verdict.NOT_RUN) else "",
                          r.reason)
        self.console.print(table)
        if report.leftovers:
            self.console.print(f"[red]cleanup:[/] still present: {', '.join(report.leftovers)}"
                               f"; run: aicp verify cleanup --run-id {report.settings.run_id}",
                               soft_wrap=True)
        for error in report.cleanup_errors:
            self.console.print(f"[red]cleanup:[/] {error}", soft_wrap=True)
