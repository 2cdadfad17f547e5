"""One ``aicp verify`` run, from options to exit code; imported only when the command runs."""

from __future__ import annotations

import math
import re
import secrets
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from rich.console import Console

from . import checklist, images, registry, signals, stack
from .checklist import SUPPORTED
from .kube import ConfigError, Kube, from_dict
from .kube import connect as connect_kubeconfig
from .probe import ProbeError, Settings, Timing, one_line
from .registry import Planned
from .reports import FORMATS
from .reports.terminal import closing_line
from .result import Verdict
from .runner import Runner
from .verdicts import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    RunReport,
    UsageError,
    error_line,
    exit_code,
    platform_line,
    said,
)
from .version import VERSION

if TYPE_CHECKING:
    from .reports.terminal import TerminalView

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
    long_implied: bool = False  # set by --output checklist (``validate``)
    concurrency: int = 4
    timeout: float = 3600.0
    probe_timeout: float = 600.0
    output: list[str] = field(default_factory=list)
    output_dir: Path | str = Path("aicp-verify-results")
    metadata: Path | None = None
    registry_mirror: str | None = None
    run_id: str | None = None
    force: bool = False  # cleanup: also runs that are alive
    strict_platform: bool = False  # a failed aicp platform check fails the run (exit 1)
    timing: Timing = field(default_factory=Timing)  # the probes' waits as declared, or replaced
    wg_suite: bool = False  # also run the working group's suite (verify/wgsuite)
    wg_suite_source: Path | None = None  # a checkout of it at the pinned commit
    wg_suite_mode: str = "local"  # local (the user's go) or job (in the cluster)
    sign_key: Path | None = None  # PEM private key signing the evidence manifest
    sign_keyless: bool = False  # also sign it with Sigstore (an ambient OIDC identity)


def split(values: list[str] | None) -> list[str]:
    """Repeatable options also accept comma-separated values."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def err(message: str) -> None:
    print(f"error: {error_line(message)}", file=_tolerant(sys.stderr))


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
        except (UsageError, ConfigError, checklist.ChecklistError, images.MirrorError) as exc:
            err(str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt as exc:
            how = said(signals.name_of(exc))
            if guard.run_id:  # between two steps of the runner's own handling: rare
                err(f"interrupted ({how}) while run {guard.run_id} was finishing; run: "
                    f"{cleanup_command(opts, guard.run_id)}")
            else:
                err(f"interrupted ({how}) before any probe started; nothing was created")
            return EXIT_INTERRUPTED


def check_output_dir(path: Path) -> None:
    """Fail before the first probe when the reports could not be written.

    Tries a file where the reports would go (the folder, or its nearest existing parent),
    so a read-only mount or a file in the way is found now, and nothing is created.
    """
    from .reports import bundle

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
    foreign = bundle.foreign_files(where)
    if foreign:
        raise UsageError(bundle.refusal(Path(path), foreign))


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
    for flag, given in (("--only", opts.only), ("--skip", opts.skip),
                        ("--output", opts.output)):
        # An empty value would otherwise vanish in the split: `--only ''` ran everything.
        if given and not split(given):
            raise UsageError(f"{flag} is empty: name at least one value, or leave {flag} out")
    opts.only, opts.skip = split(opts.only), split(opts.skip)
    opts.output = split(opts.output)
    if not str(opts.output_dir).strip():
        raise UsageError("--output-dir is empty: name a folder (--output-dir . for the "
                         "current one)")
    opts.output_dir = Path(opts.output_dir)
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
    for flag, seconds in (("--timeout", opts.timeout), ("--probe-timeout", opts.probe_timeout)):
        # nan compares false with everything: `--timeout nan` waited forever.
        if not math.isfinite(seconds) or seconds <= 0:
            raise UsageError(f"{flag} {seconds:g}: give a positive number of seconds")
    if opts.run_id is not None and not RUN_ID.match(opts.run_id):
        raise UsageError(f"--run-id {opts.run_id!r}: use up to 20 lowercase letters, digits "
                         "and dashes (it becomes a label value and a namespace name)")
    both = set(opts.only) & set(opts.skip)
    if both:
        raise UsageError(f"{sorted(both)[0]} is in both --only and --skip")
    if "checklist" in opts.output and not opts.long:
        # A submission writes cluster_autoscaling "Implemented", which claims scale up AND
        # down (the requirement's text): it waits for the scale-down, as --long does.
        opts.long = True
        opts.long_implied = True


def cluster(opts: Options, on_retry=None) -> tuple[Kube, stack.StackOutputs | None]:
    if opts.stack:
        outputs = stack.read(opts.stack)
        kube = from_dict(outputs.kubeconfig, opts.context, source=f"stack {opts.stack}",
                         on_retry=on_retry, expectations=outputs.expectations)
        return kube, outputs
    return connect_kubeconfig(opts.kubeconfig, opts.context, on_retry=on_retry), None


def _run(opts: Options, console: Console, guard: signals.Guard) -> int:
    """The phases of a run, in order; each is one function below."""
    from .reports.terminal import TerminalView

    validate(opts)
    if opts.output:
        check_output_dir(Path(opts.output_dir))
    evidence = prepare_evidence(opts)
    image_refs = images.catalog(opts.registry_mirror)
    image_refs.update(images.long_images(opts.registry_mirror) if opts.long else {})
    view = TerminalView(console)
    target = connect(opts, on_retry=view.retry)
    template, metadata = choose_checklist(opts, target)
    planned = plan(opts, template, target)
    settings = Settings(opts.run_id or secrets.token_hex(3), template.version, image_refs,
                        opts.long, target.outputs.expectations if target.outputs else {},
                        timing=opts.timing, read_only=opts.read_only)
    shown = effective_settings(target, template, settings, planned, opts.long_implied)
    view.settings(shown)
    stack_notes = check_stack(target, console)
    warn_about_metadata(opts, template, metadata, console)
    report = run_probes(opts, target, settings, planned, view, guard)
    report.strict_platform = opts.strict_platform
    report.info = {k: v for k, v in shown.items()
                   if k not in ("probes", "platform checks")} | stack_notes
    view.summary(report)
    evidence.run(opts, target, report, console, interrupted=lambda: guard.received)
    # Reports first: whatever happened to the cluster, the results are kept.
    code, reports, unsaved = write_reports(opts, report, template, metadata, console,
                                           **evidence.reports())
    advise_cleanup(opts, report, target.kube, console)
    target.close()
    if report.platform:  # their own line, before the conformance result's
        console.print(platform_line(report), soft_wrap=True)
    console.print(closing_line(report, code, reports, unsaved), soft_wrap=True)
    return code


@dataclass
class Target:
    """The cluster a run talks to: its connection, its stack outputs, its version."""

    kube: Kube
    outputs: stack.StackOutputs | None
    version: dict  # GET /version

    @property
    def minor(self) -> str:
        return checklist.minor_of(self.version)

    def close(self) -> None:
        try:
            self.kube.close()
        except Exception:  # noqa: BLE001 - closing a dead connection pool changes nothing
            pass


def connect(opts: Options, on_retry=None) -> Target:
    """Connect (kubeconfig or stack outputs) and ask the API server its version."""
    kube, outputs = cluster(opts, on_retry=on_retry)
    return Target(kube, outputs, kube.version())


def choose_checklist(opts: Options,
                     target: Target) -> tuple[checklist.Template, dict[str, str] | None]:
    """The template (``--checklist-template``, or downloaded for the version the run uses)
    and the ``--metadata`` for it; refuses a template this run cannot fill."""
    minor = target.minor
    if opts.checklist_template:
        template = checklist.load(opts.checklist_template)
        if opts.checklist and template.version != opts.checklist:
            raise UsageError(f"--checklist {opts.checklist} but the template "
                             f"{opts.checklist_template} is for {template.version}")
    else:
        version = checklist.version_for(
            opts.checklist, target.outputs.checklist_version if target.outputs else None,
            minor)
        if not version:
            raise UsageError("the cluster's /version names no Kubernetes version (neither "
                             "minor nor gitVersion): pass --checklist "
                             f"{'|'.join(SUPPORTED)}")
        if version not in SUPPORTED:
            raise UsageError(f"the cluster runs Kubernetes {minor}, which has no AI "
                             f"conformance checklist here: pass --checklist "
                             f"{'|'.join(SUPPORTED)}")
        template = checklist.download(version)
    problem = checklist.submission_problem(template, minor,
                                           submission="checklist" in opts.output)
    if problem:
        raise UsageError(problem)
    metadata = checklist.load_metadata(opts.metadata, template) if opts.metadata else None
    return template, metadata


def plan(opts: Options, template: checklist.Template, target: Target) -> list[Planned]:
    """What the run does with each requirement, then with each aicp platform check
    (``Planned.platform``); the stack's not-applicable ids are SKIP."""
    checks = registry.discover(registry.CHECKS_PACKAGE)
    only, only_checks = registry.split_ids(opts.only, checks)
    skip, skip_checks = registry.split_ids(opts.skip, checks)
    if only_checks and not only:  # --only naming platform checks alone
        planned = [Planned(r, None, Verdict.NOT_RUN, "not selected (--only)")
                   for r in template.requirements]
    else:
        planned = registry.plan(template, registry.discover(), only=only, skip=skip,
                                read_only=opts.read_only, long=opts.long)
    planned += registry.plan_checks(checks, only=opts.only, skip=skip_checks,
                                    read_only=opts.read_only, long=opts.long)
    outputs = target.outputs
    if not outputs:
        return planned
    return [Planned(p.requirement, p.probe, Verdict.SKIP,
                    f"not applicable (stack {outputs.name}): "
                    f"{outputs.not_applicable[p.requirement.id]}")
            if p.requirement.id in outputs.not_applicable else p for p in planned]


def effective_settings(target: Target, template: checklist.Template, settings: Settings,
                       planned: list[Planned], long_implied: bool = False) -> dict[str, str]:
    """What is printed before the first probe, and kept in every report."""
    kube, run_id = target.kube, settings.run_id
    runs = [p for p in planned if p.runs]
    return {
        "aicp": VERSION,
        "cluster": kube.server,
        "context": kube.context or "(current)",
        "kubeconfig": kube.source,
        "kubernetes": str(target.version.get("gitVersion") or target.minor
                          or "unknown (/version names no version)"),
        "checklist": f"{template.version} ({template.source})",
        "run id": f"{run_id} (label aicp.dev/verify-run={run_id})",
        **{f"image {name}": ref for name, ref in settings.images.items()},
        **({"long": "on: scale-down is waited for"
                    + (" (a --output checklist submission claims it)" if long_implied else "")}
           if settings.long else {}),
        "probes": f"{sum(not p.platform for p in runs)} to run, "
                  f"{sum(p.verdict is not None and not p.platform for p in planned)} "
                  "manual or not run",
        **({"platform checks": ", ".join(p.requirement.id for p in runs if p.platform)}
           if any(p.platform for p in runs) else {}),
    }


def check_stack(target: Target, console: Console) -> dict[str, str]:
    """Print what the cluster lacks of the stack's expectations; returns the report line."""
    if not target.outputs:
        return {}
    name = target.outputs.name
    found = stack.check(target.outputs.expectations, target.kube)
    for problem in found.problems:
        console.print(f"[yellow]stack {name}: problem:[/] {problem}", soft_wrap=True)
    for note in found.notes:
        console.print(f"stack {name}: note: {note}", soft_wrap=True)
    return {"stack": "; ".join([f"{name}: {len(found.problems)} problems"]
                               + [f"problem: {p}" for p in found.problems]
                               + [f"note: {n}" for n in found.notes])}


def warn_about_metadata(opts: Options, template: checklist.Template,
                        metadata: dict[str, str] | None, console: Console) -> None:
    """A checklist to submit: say which metadata is still to fill, and what is not checked."""
    if "checklist" not in opts.output:
        return
    left = checklist.unfilled(metadata or {k: str(v) for k, v in template.metadata.items()})
    if left:
        console.print(f"[yellow]warning:[/] checklist metadata is not filled in "
                      f"({', '.join(left)}): pass --metadata FILE", soft_wrap=True)
    if metadata:
        console.print(f"metadata: {checklist.NOT_CHECKED_OFFLINE}", soft_wrap=True)


def run_probes(opts: Options, target: Target, settings: Settings, planned: list[Planned],
               view: TerminalView, guard: signals.Guard) -> RunReport:
    runner = Runner(target.kube, settings, concurrency=opts.concurrency,
                    probe_timeout=opts.probe_timeout, global_timeout=opts.timeout,
                    on_start=view.on_start, on_done=view.on_done,
                    # Probes and cleanup are over: a late signal must not cut the reports.
                    on_finish=guard.defer, interrupted=lambda: guard.received)
    guard.run_id = settings.run_id
    view.waits = runner.waits  # the progress lines name what each probe waits for
    with view:
        return runner.run(planned)


def write_reports(opts: Options, report: RunReport, template: checklist.Template,
                  metadata: dict[str, str] | None,
                  console: Console, **evidence) -> tuple[int, Path | None, str | None]:
    """Write the reports asked for; returns the exit code, where they went and, when some
    could not be written, what (the verdicts are on stdout already).

    The exit code says what the probes found whether or not the reports were saved; the
    closing line says which were not.
    """
    from .reports import bundle, write

    if not opts.output:
        return exit_code(report), None, None
    report.submission = "checklist" in opts.output
    reports = Path(opts.output_dir).expanduser().absolute()
    try:
        written = write(report, template, opts.output, Path(opts.output_dir), metadata,
                        note=lambda line: console.print(line, soft_wrap=True), **evidence)
    except bundle.NotSaved as exc:
        names = ", ".join(name for name, _ in exc.failed)
        whys = "; ".join(dict.fromkeys(why for _, why in exc.failed))
        unsaved = (f"reports NOT saved: could not write {names} in {reports} ({whys}); "
                   f"{len(exc.written)} other files written; the verdicts above stand")
        err(f"could not write the reports to {reports}: {exc}")
        return exit_code(report), None, unsaved
    except (bundle.ForeignFiles, OSError) as exc:
        why = str(exc) if isinstance(exc, bundle.ForeignFiles) else one_line(exc)
        err(f"could not write the reports to {reports}: {why}")
        return exit_code(report), None, (f"reports NOT saved in {reports} ({why}); the "
                                         "verdicts above stand")
    console.print(f"reports: {reports} ({len(written)} files)", soft_wrap=True)
    return exit_code(report), reports, None


def advise_cleanup(opts: Options, report: RunReport, kube: Kube, console: Console) -> None:
    """Name what may be left on the cluster and the command that deletes it."""
    run_id = report.settings.run_id
    if report.leftovers or report.cleanup_errors:
        lost = f" (the cluster stopped answering: {kube.lost})" if kube.lost else ""
        may = ", ".join(report.leftovers) or "objects named above"
        console.print(f"[red]cleanup:[/] not finished{lost}; may be left: {may}; "
                      f"run: {cleanup_command(opts, run_id)}", soft_wrap=True)
    elif report.interrupted:
        console.print(f"cleanup: deleted what run {run_id} created", soft_wrap=True)


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
    for run_id, why in sorted(alive.items()):
        console.print(f"skipped run {run_id}: still running ({why}); "
                      f"pass --force to delete it anyway, or --run-id {run_id}",
                      soft_wrap=True)
    console.print(f"deleted {len(deleted)} objects", soft_wrap=True)
    if left:  # asked to delete and still there: the user must know what, and why
        err(f"cleanup left {len(left)}: {'; '.join(left)}: run `aicp verify cleanup` again "
            "once that is fixed")
    return EXIT_FAILED if left else 0


# The working group's suite and signed evidence (``--wg-suite``, ``--sign-key``) -----------
@dataclass
class Evidence:
    """What a run adds to its evidence: the suite's run (when asked) and the signer."""

    source: Path | None = None
    go: str | None = None
    signer: object | None = None  # evidence.sign.Signer
    keyless: object | None = None  # reads an OIDC identity token (--sign-keyless)
    suite: object | None = None  # wgsuite.run.SuiteRun
    quarantined: str | None = None
    cluster: dict[str, str] = field(default_factory=dict)

    def run(self, opts: Options, target: Target, report: RunReport, console: Console,
            interrupted=lambda: None) -> None:
        """After the probes: the cluster's identity, then the suite when asked for."""
        if not report.interrupted and not target.kube.lost:  # reports first, never a wait
            self.cluster = cluster_identity(target)
        local = self.source is not None and bool(self.go)
        if not opts.wg_suite or report.interrupted or not (local or opts.wg_suite_mode
                                                            == "job"):
            return
        # A signal now is deferred (the reports are being written): Ctrl-C reaches go test
        # itself, which stops with a failure, and the run is quarantined like any failure.
        from .wgsuite import flags as suite_flags
        from .wgsuite import report as suite_report
        from .wgsuite import run as suite_run

        outputs = target.outputs
        found = suite_flags.derive(suite_flags.discover(target.kube),
                                   outputs.expectations if outputs else None,
                                   outputs.name if outputs else None, opts.registry_mirror)
        for flag in found:
            console.print(f"wg-suite: -{flag.name}={flag.shown} ({flag.source})",
                          soft_wrap=True)
        where = "in the cluster as a Job" if opts.wg_suite_mode == "job" else "with go test"
        console.print(f"wg-suite: running {suite_run.PACKAGE} at {suite_run.COMMIT[:12]} "
                      f"{where}, up to {suite_run.GO_TIMEOUT_MINUTES} min", soft_wrap=True)
        if opts.wg_suite_mode == "job":
            from .wgsuite import job as suite_job

            run = suite_job.run_job(
                target.kube, Settings(report.settings.run_id, "", timing=opts.timing),
                found, opts.registry_mirror, interrupted,
                lambda line: console.print(line, soft_wrap=True))
        else:
            assert self.source is not None and self.go is not None
            given = None if outputs else Path(target.kube.source)
            data = outputs.kubeconfig if outputs else yaml_file(Path(target.kube.source))
            run = suite_run.run_local(self.source, self.go, found, data, target.kube.context,
                                      given)
        self.suite = run
        for note in run.notes if run.mode == "job" else ():
            console.print(f"wg-suite: {note}", soft_wrap=True)
        results = [t.result for t in run.tests.values()]
        line = (f"wg-suite: exit {run.returncode}: {results.count('passed')} passed, "
                f"{results.count('failed')} failed, {results.count('skipped')} skipped")
        if not run.passed:
            where = suite_run.quarantine(run, Path(opts.output_dir), report.settings.run_id,
                                         suite_report.page(run, quarantined=True))
            self.quarantined = where.name
            line += f"; the suite's files are quarantined in {where}, out of the submission"
        console.print(line, soft_wrap=True)

    def reports(self) -> dict:
        return {"suite": self.suite, "quarantined": self.quarantined, "signer": self.signer,
                "cluster": self.cluster, "keyless": self.keyless}


def prepare_evidence(opts: Options) -> Evidence:
    """Check --wg-suite and --sign-key before any probe runs (exit 2 on a problem)."""
    from .evidence.sign import SignKeyError, load_signer
    from .wgsuite.run import SuiteError, preflight

    found = Evidence()
    if opts.wg_suite_mode not in ("local", "job"):
        raise UsageError(f"--wg-suite-mode {opts.wg_suite_mode!r}: use local (the suite "
                         "run with your Go toolchain) or job (in the cluster as a Job)")
    if opts.wg_suite_mode == "job" and not opts.wg_suite:
        raise UsageError("--wg-suite-mode is only read with --wg-suite: add --wg-suite")
    if opts.wg_suite and opts.wg_suite_mode == "job":
        if not opts.output:
            raise UsageError("--wg-suite puts the suite's files into the reports: add "
                             "--output checklist (or json, junit)")
        if opts.wg_suite_source:
            raise UsageError("--wg-suite-source is not read by --wg-suite-mode job (the Job "
                             "fetches the pinned commit itself): leave it out")
    elif opts.wg_suite:
        if not opts.output:
            raise UsageError("--wg-suite puts the suite's files into the reports: add "
                             "--output checklist (or json, junit)")
        try:
            found.source, found.go = preflight(opts.wg_suite_source)
        except SuiteError as exc:
            raise UsageError(str(exc)) from None
    elif opts.wg_suite_source:
        raise UsageError("--wg-suite-source is only read with --wg-suite: add --wg-suite")
    if opts.sign_key:
        if not opts.output:
            raise UsageError("--sign-key signs the reports: add --output checklist (or "
                             "json, junit)")
        try:
            found.signer = load_signer(opts.sign_key)
        except SignKeyError as exc:
            raise UsageError(str(exc)) from None
    if opts.sign_keyless:
        from .evidence.keyless import KeylessError, identity_token

        if not opts.output:
            raise UsageError("--sign-keyless signs the reports: add --output checklist (or "
                             "json, junit)")
        try:  # before any probe: no library or no identity is one line, exit 2
            identity_token()
        except KeylessError as exc:
            raise UsageError(str(exc)) from None
        # Ambient tokens live minutes and the probes may take an hour: signing reads a
        # fresh one.
        found.keyless = identity_token
    return found


def yaml_file(path: Path) -> dict:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def cluster_identity(target: Target) -> dict[str, str]:
    """What names the cluster in a public manifest: the kube-system namespace's UID (it
    lives as long as the cluster; the ClusterProperty ``cluster.clusterset.k8s.io`` of
    KEP-2149 suggests it as a cluster id) and the API server's version."""
    out = {"kubernetesVersion": str(target.version.get("gitVersion", target.minor))}
    try:
        found = target.kube.request("GET", "/api/v1/namespaces/kube-system", once=True,
                                    timeout=5.0)
        out["kubeSystemUid"] = str(((found or {}).get("metadata") or {}).get("uid") or "")
    except Exception as exc:  # noqa: BLE001 - the identity is a fact to record, not a gate
        out["kubeSystemUid"] = f"unknown ({one_line(exc)})"
    return out
