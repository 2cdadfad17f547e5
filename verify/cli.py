"""``aicp verify``: options and help only; the run itself is imported when the command runs.

Start-up stays fast: this module imports typer, the standard library and the checklist
table (``checklist.SUPPORTED``), never the ``kubernetes`` client or rich's live views
(``aicp.verify.session`` does, on demand).
"""

from __future__ import annotations

from pathlib import Path

import typer

from .checklist import SUPPORTED

app = typer.Typer(
    add_completion=False,  # completion is installed from the top-level ``aicp`` command
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain click help: rich's help renderer costs ~0.2 s of start-up (target 0.5 s).
    rich_markup_mode=None,
    # A kubeconfig holds tokens: never print locals in a traceback.
    pretty_exceptions_show_locals=False,
)


@app.callback(invoke_without_command=True)
def verify(
    ctx: typer.Context,
    stack: str = typer.Option(None, "--stack", metavar="NAME",
                              help="Pulumi stack: kubeconfig and expectations from its outputs."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", metavar="PATH",
                                    help="Kubeconfig file (default: $KUBECONFIG or "
                                         "~/.kube/config)."),
    context: str = typer.Option(None, "--context", help="Kubeconfig context to use."),
    checklist: str = typer.Option(None, "--checklist", metavar="|".join(SUPPORTED),
                                  help="Checklist version (default: the stack's "
                                       "checklistVersion, else the cluster's minor)."),
    checklist_template: Path = typer.Option(
        None, "--checklist-template", metavar="PATH",
        help="The CNCF AIConformance-<version>.yaml (default: downloaded from "
             "cncf/k8s-ai-conformance)."),
    only: list[str] = typer.Option(None, "--only", metavar="ID",
                                   help="Run only these requirement ids (repeatable)."),
    skip: list[str] = typer.Option(None, "--skip", metavar="ID",
                                   help="Do not run these requirement ids (repeatable)."),
    read_only: bool = typer.Option(False, "--read-only",
                                   help="Run only probes that create nothing."),
    long: bool = typer.Option(False, "--long",
                              help="Also run long probes (node scale-up and scale-down)."),
    concurrency: int = typer.Option(4, "--concurrency", help="Probes running at once."),
    timeout: float = typer.Option(3600, "--timeout", metavar="SECONDS",
                                  help="Global timeout for the run."),
    probe_timeout: float = typer.Option(600, "--probe-timeout", metavar="SECONDS",
                                        help="Timeout for each probe."),
    output: list[str] = typer.Option(None, "--output", metavar="json|junit|checklist",
                                     help="Reports to write (repeatable)."),
    # A str, not a Path: Path("") is ".", and an empty value must be refused, not guessed.
    output_dir: str = typer.Option("aicp-verify-results", "--output-dir",
                                    metavar="PATH", help="Where reports and evidence go."),
    metadata: Path = typer.Option(None, "--metadata", metavar="FILE",
                                  help="YAML with the checklist's metadata (vendor, product)."),
    registry_mirror: str = typer.Option(None, "--registry-mirror", metavar="HOST[/PATH]",
                                        help="Pull probe images from this mirror."),
    run_id: str = typer.Option(None, "--run-id", help="Label value for this run's objects "
                                                      "(default: random)."),
    strict_platform: bool = typer.Option(
        False, "--strict-platform",
        help="A failed or undecided aicp platform check (verify/checks/, e.g. data_access) "
             "makes the run exit 1; it never changes the checklist or `conformant`."),
) -> None:
    """Verify a cluster against Kubernetes AI Conformance, one probe per requirement.

    Prints the effective settings, runs the probes and deletes what it created; the
    last line says how many MUSTs ran and passed, the exit code and where the reports are.

    \b
    Exit codes:
      0    every MUST ran and passed (SHOULDs never change the code)
      1    a MUST failed or could not be decided (ERROR)
      2    usage or configuration error, found before any probe ran
      3    no MUST failed, but not every MUST ran (--only, --skip, --read-only):
           not a conformance result
      130  interrupted by Ctrl-C, SIGTERM or SIGHUP: reports of finished probes
           written, the run's objects deleted
    aicp's own platform checks (data_access, ...) run after the requirements and are
    reported apart, on their own line: they change the exit code only with
    --strict-platform (a 0 or 3 becomes 1).

    \b
    Examples:
      aicp verify --kubeconfig kubeconfig.yaml
      aicp verify --checklist-template AIConformance-1.35.yaml --output json
      aicp verify --stack dev --output checklist --metadata product.yaml
      aicp verify --context emulator --read-only --only accelerator_metrics
      aicp verify --kubeconfig kubeconfig.yaml --only data_access --strict-platform
      aicp verify --skip cluster_autoscaling --registry-mirror mirror.local/hub
      aicp verify cleanup --kubeconfig kubeconfig.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from . import session

    opts = session.Options(
        stack=stack, kubeconfig=kubeconfig, context=context, checklist=checklist,
        checklist_template=checklist_template, only=only or [], skip=skip or [],
        read_only=read_only, long=long, concurrency=concurrency, timeout=timeout,
        probe_timeout=probe_timeout, output=output or [], output_dir=output_dir,
        metadata=metadata, registry_mirror=registry_mirror, run_id=run_id,
        strict_platform=strict_platform)
    raise typer.Exit(session.run(opts))


@app.command("cleanup")
def cleanup(
    stack: str = typer.Option(None, "--stack", metavar="NAME", help="Pulumi stack to clean."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", metavar="PATH",
                                    help="Kubeconfig file."),
    context: str = typer.Option(None, "--context", help="Kubeconfig context to use."),
    run_id: str = typer.Option(None, "--run-id", help="Only this run's leftovers."),
    force: bool = typer.Option(False, "--force",
                               help="Also delete runs that are still going (fresh heartbeat)."),
) -> None:
    """Delete what earlier runs left behind (objects labelled aicp.dev/verify-run).

    Without --run-id, a run still in progress (its namespaces' heartbeat is under a
    minute old) is skipped and named; --force deletes it too.
    Exit codes: 0 done; 1 something is still terminating or the cluster stopped
    answering; 2 usage or configuration error; 130 interrupted.

    \b
    Examples:
      aicp verify cleanup --kubeconfig kubeconfig.yaml
      aicp verify cleanup --stack dev --run-id 3f9a1c
    """
    from . import session

    raise typer.Exit(session.cleanup(session.Options(stack=stack, kubeconfig=kubeconfig,
                                                     context=context, run_id=run_id,
                                                     force=force)))
