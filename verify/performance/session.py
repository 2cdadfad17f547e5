"""``aicp verify --performance``: options checked first, the run after the probes, its report.

The CNCF run is untouched: ``verify/cli.py`` checks the performance options before it
starts (a bad one is one line and exit 2, nothing run), runs ``aicp verify`` as always, then
this run on the same cluster. Its verdict is its own: printed last, and written as
``performance/performance.json`` and ``performance/README.md`` (with every pod's log beside
them) under ``--output-dir`` when reports are asked for. The exit code stays the CNCF run's.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from .. import images
from ..probe import Settings, one_line
from ..result import Verdict
from . import catalog
from .judge import Finding
from .run import Outcome, Plan, UsageError, execute, prepare, to_json

__all__ = ["Plan", "UsageError", "check", "run"]

FOLDER = "performance"


def check(diag_level: int, pools: list[str] | None, thresholds: Path | None,
          mirror: str | None) -> Plan:
    """The options, checked before the CNCF run starts (raises ``UsageError``)."""
    try:
        refs = images.performance_catalog(mirror)
    except images.MirrorError as exc:
        raise UsageError(str(exc)) from None
    return prepare(diag_level, pools, thresholds, refs)


def run(opts, plan: Plan, out=None) -> Verdict | None:
    """Connect as the CNCF run did, measure, print and write the report; None when Ctrl-C,
    SIGTERM or SIGHUP interrupted it (what it created is deleted first, as the probes')."""
    from .. import session, signals

    out = out or sys.stdout
    say = lambda line: print(line, file=out, flush=True)  # noqa: E731
    try:
        kube, outputs = session.cluster(opts)
    except Exception as exc:  # noqa: BLE001 - the CNCF run connected; say why this did not
        say(f"performance: ERROR: could not connect: {one_line(exc)}")
        return Verdict.ERROR
    run_id = f"{opts.run_id or secrets.token_hex(3)}"
    settings = Settings(run_id, "", plan.images, False,
                        outputs.expectations if outputs else {}, timing=opts.timing)
    shown = {"run id": run_id, "dcgmi diag level": str(plan.diag_level),
             "pools": ", ".join(plan.pools) or "all GPU pools",
             "thresholds": plan.thresholds_file or "defaults (catalog.DEFAULT_FRACTIONS)",
             **{f"image {k}": v for k, v in plan.images.items()}}
    for key, value in shown.items():
        say(f"performance: {key}: {value}")
    try:
        with signals.interrupts():
            outcome = execute(kube, settings, plan, log=say)
    except KeyboardInterrupt as exc:
        say(f"performance: interrupted ({signals.name_of(exc)}); deleted what it created "
            f"(leftovers, if any: aicp verify cleanup --run-id {run_id})")
        return None
    finally:
        try:
            kube.close()
        except Exception:  # noqa: BLE001 - closing a dead pool changes nothing
            pass
    outcome.settings = shown
    for line in summary(outcome):
        say(line)
    if opts.output:
        where = Path(opts.output_dir).expanduser().absolute() / FOLDER
        try:
            write(outcome, where)
            say(f"performance: report: {where}")
        except OSError as exc:
            say(f"performance: report NOT saved in {where} ({one_line(exc)})")
    if outcome.cleanup["leftovers"] or outcome.cleanup["errors"]:
        say(f"performance: cleanup not finished: {', '.join(outcome.cleanup['leftovers'])} "
            f"{'; '.join(outcome.cleanup['errors'])}; run: aicp verify cleanup --run-id "
            f"{run_id}")
    say(f"performance: {outcome.verdict.value}: {outcome.reason}")
    return outcome.verdict


def _row(f: Finding) -> str:
    where = " ".join(p for p in (f.pool, f.node, f.gpu and f"gpu {f.gpu}") if p)
    numbers = ""
    if f.expected is not None and f.fraction is not None:
        numbers = (f" measured {f.measured} {f.unit}, expected {f.expected} {f.unit}, "
                   f"{f.fraction:.0%} (floor {f.threshold:.0%})")
    return f"  {f.verdict.value:5} {f.scope:4} {where} {f.metric}:{numbers} {f.reason}"


def summary(outcome: Outcome) -> list[str]:
    """Per pool, per node, per GPU: what was measured, against what, and the verdict."""
    lines = ["performance: results (measured, published figure, fraction, verdict)"]
    order = {"pool": 0, "node": 1, "gpu": 2}
    for f in sorted(outcome.findings, key=lambda f: (f.pool, order.get(f.scope, 3), f.node,
                                                     f.gpu, f.metric)):
        lines.append(_row(f))
    return lines


def page(outcome: Outcome) -> str:
    """``performance/README.md``: the settings, then a table per scope with sources."""
    out = ["# aicp verify --performance", "",
           f"**Verdict: {outcome.verdict.value}** — {outcome.reason}", "",
           "It never changes a CNCF requirement's verdict. Fractions are of the published "
           "figure named in *source* (the catalog: `verify/performance/catalog.py`).", "",
           "## Settings", ""]
    out += [f"- {k}: `{v}`" for k, v in outcome.settings.items()]
    out += ["", "## Pools", ""]
    out += [f"- {p['name']}: {len(p['nodes'])} node(s) ({', '.join(p['nodes'])}), "
            f"{p['product'] or 'GPU product unknown'}, machine type "
            f"{p['machineType'] or 'unknown'}, allocator {p['allocator']}, fabric resources "
            f"{p['fabricResources'] or 'none'}" for p in outcome.pools]
    for scope, title in (("pool", "Per pool (fabric, stragglers)"), ("node", "Per node"),
                         ("gpu", "Per GPU")):
        rows = [f for f in outcome.findings if f.scope == scope]
        if not rows:
            continue
        out += ["", f"## {title}", "",
                "| verdict | pool | node | GPU | metric | measured | expected | fraction | "
                "floor | source | why |", "|" + " --- |" * 11]
        for f in rows:
            cells = (f.verdict.value, f.pool, f.node, f.gpu, f.metric,
                     f"{f.measured} {f.unit}".strip() if f.measured is not None else "",
                     f"{f.expected} {f.unit}" if f.expected is not None else "",
                     f"{f.fraction:.0%}" if f.fraction is not None else "",
                     f"{f.threshold:.0%}" if f.threshold is not None else "",
                     f.source, f.reason)
            out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    if outcome.image_ids:
        out += ["", "## Images the kubelets ran (by digest)", ""]
        out += [f"- {pod}: `{image}`" for pod, image in sorted(outcome.image_ids.items())]
    out += ["", "## Default floors", ""]
    out += [f"- {k}: {v:.0%}" for k, v in catalog.DEFAULT_FRACTIONS.items()]
    out += ["", "Logs of every pod sit beside this page."]
    return "\n".join(out) + "\n"


def write(outcome: Outcome, where: Path) -> None:
    """The JSON, the page and the pods' logs, each written whole (temporary file, rename)."""
    from ..reports.bundle import _atomic

    where.mkdir(parents=True, exist_ok=True)
    _atomic(where / "performance.json", to_json(outcome))
    _atomic(where / "README.md", page(outcome))
    for name, content in outcome.artifacts.items():
        _atomic(where / name, content)
