"""``aicp verify``: options and help only; the run itself is imported when the command runs.

Start-up stays fast: this module imports typer, the standard library and the checklist
table (``checklist.SUPPORTED``), never the ``kubernetes`` client or rich's live views
(``aicp.verify.session`` does, on demand).
"""

from __future__ import annotations

from pathlib import Path

import typer

from .checklist import SUPPORTED
from .completion import checklist_versions, report_formats, requirement_ids, stack_names

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
    stack: str = typer.Option(None, "--stack", metavar="NAME", autocompletion=stack_names,
                              help="Pulumi stack: kubeconfig and expectations from its outputs."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", metavar="PATH",
                                    help="Kubeconfig file (default: $KUBECONFIG or "
                                         "~/.kube/config)."),
    context: str = typer.Option(None, "--context", help="Kubeconfig context to use."),
    checklist: str = typer.Option(None, "--checklist", metavar="|".join(SUPPORTED),
                                  autocompletion=checklist_versions,
                                  help="Checklist version (default: the stack's "
                                       "checklistVersion, else the cluster's minor)."),
    checklist_template: Path = typer.Option(
        None, "--checklist-template", metavar="PATH",
        help="The CNCF AIConformance-<version>.yaml (default: downloaded from "
             "cncf/k8s-ai-conformance)."),
    only: list[str] = typer.Option(None, "--only", metavar="ID", autocompletion=requirement_ids,
                                   help="Run only these requirement ids (repeatable)."),
    skip: list[str] = typer.Option(None, "--skip", metavar="ID", autocompletion=requirement_ids,
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
                                     autocompletion=report_formats,
                                     help="Reports to write (repeatable)."),
    # A str, not a Path: Path("") is ".", and an empty value must be refused, not guessed.
    output_dir: str = typer.Option("aicp-verify-results", "--output-dir",
                                    metavar="PATH",
                                    help="Where reports and evidence go; with --output "
                                         "checklist, as v<version>/<product>/ in it."),
    metadata: Path = typer.Option(None, "--metadata", metavar="FILE",
                                  help="YAML with the checklist's metadata (vendor, product)."),
    registry_mirror: str = typer.Option(None, "--registry-mirror", metavar="HOST[/PATH]",
                                        help="Pull probe images from this mirror."),
    run_id: str = typer.Option(None, "--run-id", help="Label value for this run's objects "
                                                      "(default: random)."),
    performance: bool = typer.Option(
        False, "--performance",
        help="After the probes, measure every GPU and the fabric against their published "
             "figures (own report; never changes a CNCF verdict)."),
    performance_diag: int = typer.Option(1, "--performance-diag", metavar="1|2|3|4",
                                         help="dcgmi diag level for --performance."),
    performance_pool: list[str] = typer.Option(None, "--performance-pool", metavar="NAME",
                                               help="Only these GPU pools (repeatable)."),
    performance_thresholds: Path = typer.Option(
        None, "--performance-thresholds", metavar="FILE",
        help="YAML of floors as fractions: {defaults: {...}, pools: {NAME: {...}}}."),
    wg_suite: bool = typer.Option(False, "--wg-suite",
                                  help="Also run the working group's suite "
                                       "(kubernetes-sigs/ai-conformance test/) with go test, "
                                       "flags derived from the stack and the cluster."),
    wg_suite_source: Path = typer.Option(None, "--wg-suite-source", metavar="DIR",
                                         help="A checkout of that suite at aicp's pinned "
                                              "commit (for --wg-suite)."),
    wg_suite_mode: str = typer.Option(
        "local", "--wg-suite-mode", metavar="local|job",
        help="Where --wg-suite runs the suite: local (go test with your Go toolchain, "
             "needs --wg-suite-source) or job (in the cluster as a Job on the pinned Go "
             "image, --registry-mirror honoured)."),
    sign_key: Path = typer.Option(None, "--sign-key", metavar="PEM",
                                  help="Ed25519 or ECDSA private key signing the evidence "
                                       "manifest (password: $AICP_SIGN_KEY_PASSWORD)."),
    sign_keyless: bool = typer.Option(
        False, "--sign-keyless",
        help="Also sign the evidence manifest with Sigstore, as the ambient OIDC identity "
             "(CI; needs: pip install 'aicp[sigstore]')."),
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
      aicp verify --stack dev --performance --performance-diag 2 --output json
      aicp verify cleanup --kubeconfig kubeconfig.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from . import session

    plan, perf = None, None
    if performance:  # checked before any probe: a bad option runs nothing (exit 2)
        from .performance import session as perf

        try:
            plan = perf.check(performance_diag, performance_pool, performance_thresholds,
                              registry_mirror)
        except perf.UsageError as exc:
            session.err(str(exc))
            raise typer.Exit(2) from None

    opts = session.Options(
        stack=stack, kubeconfig=kubeconfig, context=context, checklist=checklist,
        checklist_template=checklist_template, only=only or [], skip=skip or [],
        read_only=read_only, long=long, concurrency=concurrency, timeout=timeout,
        probe_timeout=probe_timeout, output=output or [], output_dir=output_dir,
        metadata=metadata, registry_mirror=registry_mirror, run_id=run_id,
        wg_suite=wg_suite, wg_suite_source=wg_suite_source, wg_suite_mode=wg_suite_mode,
        sign_key=sign_key, sign_keyless=sign_keyless,
        strict_platform=strict_platform)
    code = session.run(opts)
    # Not after a usage error or an interrupt: only once the probes ran.
    if perf is not None and plan is not None and code in (0, 1, 3):
        if perf.run(opts, plan) is None:  # interrupted: objects deleted, as for the probes
            raise typer.Exit(130)
    raise typer.Exit(code)


@app.command("cleanup")
def cleanup(
    stack: str = typer.Option(None, "--stack", metavar="NAME", autocompletion=stack_names,
                              help="Pulumi stack to clean."),
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


evidence_app = typer.Typer(help="Check a bundle's signed evidence.", no_args_is_help=True,
                           rich_markup_mode=None, pretty_exceptions_show_locals=False)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("check")
def evidence_check(
    folder: Path = typer.Argument(..., metavar="DIR", help="The reports folder (--output-dir)."),
    key: Path = typer.Option(None, "--key", metavar="PEM",
                             help="The signer's public key (default: the one in the bundle, "
                                  "which proves integrity, not who signed)."),
    cert_identity: str = typer.Option(None, "--cert-identity", metavar="IDENTITY",
                                      help="Who must have signed the Sigstore bundle (an "
                                           "email or a CI workflow URI)."),
    cert_oidc_issuer: str = typer.Option(None, "--cert-oidc-issuer", metavar="URL",
                                         help="The OIDC issuer of that identity, e.g. "
                                              "https://token.actions.githubusercontent.com."),
    offline: bool = typer.Option(False, "--offline",
                                 help="Check a Sigstore bundle against the trusted root the "
                                      "sigstore package holds (cached or shipped), without "
                                      "refreshing it from Sigstore's TUF repository."),
) -> None:
    """Verify every file's SHA-256 against results/aicp-manifest.json and its signatures.

    A key's DSSE signature is checked with --key (or the key in the bundle); a Sigstore
    bundle (--sign-keyless) only against --cert-identity and --cert-oidc-issuer.

    DIR is the --output-dir of a run, or the submission folder (v<version>/<product>/) in it.

    Exit codes: 0 every digest and the signature verify; 1 a file or the signature does
    not (the first one is named); 2 usage error.

    \b
    Examples:
      aicp verify evidence check aicp-verify-results
      aicp verify evidence check v1.37/aicp --key key.pub.pem
    """
    from .evidence.sign import bundle_root, check

    if not folder.is_dir():
        typer.echo(f"error: {folder} is not a folder: pass the --output-dir of a run", err=True)
        raise typer.Exit(2)
    if key is not None and not key.is_file():
        typer.echo(f"error: --key {key} not found: pass the signer's public key PEM", err=True)
        raise typer.Exit(2)
    root = bundle_root(folder)
    found = check(root, key, identity=cert_identity, issuer=cert_oidc_issuer,
                  offline=offline)
    where = f" (in {root})" if root != folder else ""
    if found.ok:
        typer.echo(f"evidence ok{where}: {found.message}")
        raise typer.Exit(0)
    typer.echo(f"evidence NOT ok{where}: {found.message}", err=True)
    raise typer.Exit(1)
