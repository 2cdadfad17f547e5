"""One ``aicp verify`` run, from options to exit code; imported only when the command runs."""

from __future__ import annotations

import re
import secrets
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from rich.console import Console

from . import checklist, images, registry, signals, stack
from .kube import ConfigError, Kube, connect, from_dict
from .probe import ProbeError, Settings, Timing, one_line
from .reports import FORMATS
from .result import Verdict
from .runner import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Runner
from .version import VERSION

SUPPORTED = ("1.34", "1.35", "1.36", "1.37")
RUN_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")


@dataclass
class Options:
    stack: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    checklist: str | None = None
    checklist_template: Path | None = None
    only: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    read_only: bool = False
    long: bool = False
    concurrency: int = 4
    timeout: float = 3600.0
    probe_timeout: float = 600.0
    output: list[str] = field(default_factory=list)
    output_dir: Path = Path("aicp-verify-results")
    metadata: Path | None = None
    registry_mirror: str | None = None
    run_id: str | None = None
    force: bool = False  # cleanup: also runs that are alive
    timing: Timing = field(default_factory=Timing)  # the probes' waits as declared, or replaced


class UsageError(Exception):
    """Bad options, one line (exit code 2)."""


def split(values: list[str] | None) -> list[str]:
    """Repeatable options also accept comma-separated values."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def err(message: str) -> None:
    print(f"error: {message}", file=_tolerant(sys.stderr))


def _tolerant(stream: IO[str]) -> IO[str]:
    from .reports.terminal import Tolerant

    return cast(IO[str], Tolerant(stream))


def run(opts: Options, console: Console | None = None) -> int:
    """Run ``aicp verify``; returns the exit code. Foreseeable problems are one line.

    SIGINT, SIGTERM and SIGHUP all interrupt the run the same way (``signals``).
    """
    with signals.interrupts() as guard:
        try:
            return _run(opts, console or Console(highlight=False,
                                                  file=_tolerant(sys.stdout)), guard)
        except (UsageError, registry.UsageError, ConfigError, checklist.ChecklistError,
                images.MirrorError) as exc:
            err(str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt as exc:
            said = signals.describe(signals.name_of(exc))
            if guard.run_id:  # between two steps of the runner's own handling: rare
                err(f"interrupted ({said}) while run {guard.run_id} was finishing; run: "
                    f"{cleanup_command(opts, guard.run_id)}")
            else:
                err(f"interrupted ({said}) before any probe started; nothing was created")
            return EXIT_INTERRUPTED


def check_output_dir(path: Path) -> None:
    """Fail before the first probe when the reports could not be written.

    Tries a file where the reports would go (the folder, or its nearest existing parent),
    so a read-only mount or a file in the way is found now, and nothing is created.
    """
    where = Path(path).expanduser().absolute()
    existing = next(p for p in (where, *where.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--output-dir {path}: {existing} is a file, not a directory: "
                         "choose another --output-dir")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"--output-dir {path}: cannot write in {existing} "
                         f"({exc.strerror or type(exc).__name__}): choose a writable "
                         "--output-dir") from None


def cleanup_command(opts: Options, run_id: str) -> str:
    """The exact ``aicp verify cleanup`` that targets this run's cluster."""
    words = ["aicp", "verify", "cleanup", "--run-id", run_id]
    if opts.stack:
        words += ["--stack", opts.stack]
    if opts.kubeconfig:
        words += ["--kubeconfig", str(Path(opts.kubeconfig).expanduser().absolute())]
    if opts.context:
        words += ["--context", opts.context]
    return shlex.join(words)


def validate(opts: Options) -> None:
    opts.only, opts.skip = split(opts.only), split(opts.skip)
    opts.output = split(opts.output)
    for fmt in opts.output:
        if fmt not in FORMATS:
            raise UsageError(f"--output {fmt}: choose from {', '.join(FORMATS)}")
    if opts.checklist is not None and opts.checklist not in SUPPORTED:
        raise UsageError(f"--checklist {opts.checklist}: supported versions are "
                         f"{', '.join(SUPPORTED)}")
    if opts.stack and opts.kubeconfig:
        raise UsageError("pass either --stack NAME or --kubeconfig PATH, not both")
    if opts.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if opts.timeout <= 0 or opts.probe_timeout <= 0:
        raise UsageError("--timeout and --probe-timeout must be positive seconds")
    if opts.run_id is not None and not RUN_ID.match(opts.run_id):
        raise UsageError(f"--run-id {opts.run_id!r}: use up to 20 lowercase letters, digits "
                         "and dashes (it becomes a label value and a namespace name)")
    both = set(opts.only) & set(opts.skip)
    if both:
        raise UsageError(f"{sorted(both)[0]} is in both --only and --skip")


def cluster(opts: Options, on_retry=None) -> tuple[Kube, stack.StackOutputs | None]:
    if opts.stack:
        outputs = stack.read(opts.stack)
        kube = from_dict(outputs.kubeconfig, opts.context, source=f"stack {opts.stack}",
                         on_retry=on_retry, expectations=outputs.expectations)
        return kube, outputs
    return connect(opts.kubeconfig, opts.context, on_retry=on_retry), None


def _run(opts: Options, console: Console, guard: signals.Guard) -> int:
    from .reports import write
    from .reports.terminal import TerminalView, closing_line

    validate(opts)
    if opts.output:
        check_output_dir(opts.output_dir)
    image_refs = images.catalog(opts.registry_mirror)
    metadata_template = None
    view = TerminalView(console)
    kube, outputs = cluster(opts, on_retry=view.retry)
    info = kube.version()
    minor = f"{info.get('major', '1')}.{re.sub(r'[^0-9]', '', str(info.get('minor', '')))}"
    if opts.checklist_template:
        template = checklist.load(opts.checklist_template)
        if opts.checklist and template.version != opts.checklist:
            raise UsageError(f"--checklist {opts.checklist} but the template "
                             f"{opts.checklist_template} is for {template.version}")
    else:
        version = opts.checklist or (outputs.checklist_version if outputs else None) or minor
        if version not in SUPPORTED:
            raise UsageError(f"the cluster runs Kubernetes {minor}, which has no AI "
                             f"conformance checklist here: pass --checklist "
                             f"{'|'.join(SUPPORTED)}")
        template = checklist.download(version)
    problem = checklist.submission_problem(template, minor, SUPPORTED,
                                           submission="checklist" in opts.output)
    if problem:
        raise UsageError(problem)
    metadata = checklist.load_metadata(opts.metadata, template) if opts.metadata else None
    metadata_template = metadata or {k: str(v) for k, v in template.metadata.items()}
    planned = registry.plan(template, registry.discover(), only=opts.only, skip=opts.skip,
                            read_only=opts.read_only, long=opts.long)
    if outputs:
        planned = [registry.Planned(p.requirement, p.probe, Verdict.SKIP,
                                    f"not applicable (stack {outputs.name}): "
                                    f"{outputs.not_applicable[p.requirement.id]}")
                   if p.requirement.id in outputs.not_applicable else p for p in planned]
    run_id = opts.run_id or secrets.token_hex(3)
    settings = Settings(run_id, template.version, image_refs, opts.long,
                        outputs.expectations if outputs else {}, timing=opts.timing)
    runs = [p for p in planned if p.runs]
    shown = {
        "aicp": VERSION,
        "cluster": kube.server,
        "context": kube.context or "(current)",
        "kubeconfig": kube.source,
        "kubernetes": str(info.get("gitVersion", minor)),
        "checklist": f"{template.version} ({template.source})",
        "run id": f"{run_id} (label aicp.dev/verify-run={run_id})",
        **{f"image {name}": ref for name, ref in image_refs.items()},
        "probes": f"{len(runs)} to run, {sum(p.verdict is not None for p in planned)} "
                  "manual or not run",
    }
    view.settings(shown)
    found = stack.check(outputs.expectations, kube) if outputs else None
    stack_name = outputs.name if outputs else ""
    if found:
        for problem in found.problems:
            console.print(f"[yellow]stack {stack_name}: problem:[/] {problem}",
                          soft_wrap=True)
        for note in found.notes:
            console.print(f"stack {stack_name}: note: {note}", soft_wrap=True)
    if "checklist" in opts.output:
        left = checklist.unfilled(metadata_template)
        if left:
            console.print(f"[yellow]warning:[/] checklist metadata is not filled in "
                          f"({', '.join(left)}): pass --metadata FILE", soft_wrap=True)
        if metadata:
            console.print(f"metadata: {checklist.NOT_CHECKED_OFFLINE}", soft_wrap=True)
    runner = Runner(kube, settings, kube=kube, concurrency=opts.concurrency,
                    probe_timeout=opts.probe_timeout, global_timeout=opts.timeout,
                    on_start=view.on_start, on_done=view.on_done,
                    # Probes and cleanup are over: a late signal must not cut the reports.
                    on_finish=guard.defer)
    guard.run_id = run_id
    with view:
        report = runner.run(planned)
    report.info = {k: v for k, v in shown.items() if k != "probes"}
    if found:
        report.info["stack"] = "; ".join(
            [f"{stack_name}: {len(found.problems)} problems"]
            + [f"problem: {p}" for p in found.problems] + [f"note: {n}" for n in found.notes])
    view.summary(report)
    # Reports first: whatever happened to the cluster, the results are kept.
    reports = None
    code = report.exit_code
    if opts.output:
        try:
            written = write(report, template, opts.output, opts.output_dir, metadata,
                            note=lambda line: console.print(line, soft_wrap=True))
            reports = Path(opts.output_dir).expanduser().absolute()
            console.print(f"reports: {reports} ({len(written)} files)", soft_wrap=True)
        except OSError as exc:
            err(f"could not write the reports to {opts.output_dir}: {one_line(exc)}")
            code = max(code, EXIT_FAILED)
    if report.leftovers or report.cleanup_errors:
        lost = f" (the cluster stopped answering: {kube.lost})" if kube.lost else ""
        may = ", ".join(report.leftovers) or "objects named above"
        console.print(f"[red]cleanup:[/] not finished{lost}; may be left: {may}; "
                      f"run: {cleanup_command(opts, run_id)}", soft_wrap=True)
    elif report.interrupted:
        console.print(f"cleanup: deleted what run {run_id} created", soft_wrap=True)
    try:
        kube.close()
    except Exception:  # noqa: BLE001 - closing a dead connection pool changes nothing
        pass
    console.print(closing_line(report, code, reports), soft_wrap=True)
    return code


def cleanup(opts: Options, console: Console | None = None) -> int:
    """``aicp verify cleanup``: delete leftovers of earlier runs (or of ``--run-id``)."""
    from .kube import cleanup as sweep

    console = console or Console(highlight=False, file=_tolerant(sys.stdout))
    try:
        if opts.run_id is not None and not RUN_ID.match(opts.run_id):
            raise UsageError(f"--run-id {opts.run_id!r} is not a run id")
        kube, _ = cluster(opts)
        kube.version()
        console.print(f"cluster: {kube.server} (context {kube.context or '(current)'})",
                      soft_wrap=True)
        with signals.interrupts():
            deleted, left, alive = sweep(kube, opts.run_id, force=opts.force,
                                         log=console.print)
    except (UsageError, ConfigError) as exc:
        err(str(exc))
        return EXIT_USAGE
    except ProbeError as exc:
        err(f"cleanup stopped: {exc}: run it again")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err("cleanup interrupted: run it again")
        return EXIT_INTERRUPTED
    for run_id, age in sorted(alive.items()):
        console.print(f"skipped run {run_id}: still running (heartbeat {age:.0f}s ago); "
                      f"pass --force to delete it anyway, or --run-id {run_id}",
                      soft_wrap=True)
    console.print(f"deleted {len(deleted)} objects" + (f"; still terminating: "
                                                      f"{', '.join(left)}" if left else ""))
    return 1 if left else 0
