"""``aicp plan``: what a stack would build, offline, and the requirement each part serves."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer


class Output(StrEnum):
    table = "table"
    json = "json"


class UsageError(Exception):
    """A problem with the command line or the stack file, as one line."""


def stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """The ``config:`` map of ``Pulumi.<stack>.yaml`` (``ns:key`` → value)."""
    import yaml

    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        found = sorted(p.name[len("Pulumi."):-len(".yaml")]
                       for p in project_dir.glob("Pulumi.*.yaml"))
        hint = f"; stacks here: {', '.join(found)}" if found else ""
        raise UsageError(f"--stack: no {path.name} in {project_dir}{hint}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path.name}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") \
            from None
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise UsageError(f"{path.name}: 'config' must be a mapping of keys")
    # Encrypted values ({secure: ...}) cannot be read offline; plan with a placeholder.
    return {k: ("[secret]" if isinstance(v, dict) and set(v) == {"secure"} else v)
            for k, v in config.items()}


def plan(
    stack: str = typer.Option(
        "aws", "--stack", "-s", help="Stack name: reads Pulumi.<stack>.yaml."),
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json."),
    project_dir: Path = typer.Option(
        Path("."), "--project-dir", help="Folder holding Pulumi.yaml."),
) -> None:
    """Show every resource a stack declares, offline, and the requirement it serves.

    Runs the real stacks/ program under Pulumi's mocks: no cloud account, no Pulumi CLI,
    no network. Exit codes: 0 planned; 2 usage or configuration error.

    \b
    Examples:
      aicp plan --stack aws
      aicp plan --stack gcp --output json > plan.json
    """
    try:
        raw = stack_config(project_dir, stack)
        result = build_plan(raw, stack)
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if output is Output.json:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(render_table(result))


def run_stack(raw: dict[str, Any], stack: str):
    """Validate the config, then run the real program offline: ``(config, offline.Plan)``."""
    from ..stacks.config import ConfigError, parse

    try:
        cfg = parse({k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("aicp:")})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None

    import pulumi

    from ..stacks.program import main as program
    from . import offline

    try:
        return cfg, offline.run(program, raw, stack=stack)
    except pulumi.RunError as exc:
        # What the program reports while declaring resources (a missing kubeconfig file).
        raise UsageError(str(exc)) from None


def build_plan(raw: dict[str, Any], stack: str) -> dict[str, Any]:
    """The plan document: every resource with the requirement ids it serves."""
    cfg, result = run_stack(raw, stack)
    return describe(cfg, result, stack)


def describe(cfg: Any, result: Any, stack: str) -> dict[str, Any]:
    """The plan document of a program already run offline (``run_stack``)."""
    from ..components.contract import CONFORMANCE_OUTPUT
    from . import offline
    from .conformance import LEVELS, musts

    by_urn = {r.urn: r for r in result.resources}

    def served_by(resource: offline.Resource) -> list[str]:
        ids: list[str] = []
        for r in (resource, *result.ancestors(resource)):
            for rid in r.outputs.get(CONFORMANCE_OUTPUT, []):
                if rid not in ids:
                    ids.append(rid)
        return ids

    version = cfg.checklist_version
    resources, served = [], {}
    for r in result.resources:
        ids = served_by(r)
        for rid in ids:
            served.setdefault(rid, []).append(r.urn)
        resources.append({
            "type": r.type, "name": r.name,
            "parent": r.parent if r.parent in by_urn else None,
            "urn": r.urn, "dependsOn": r.dependencies, "inputs": r.inputs,
            "secretPaths": r.secret_paths, "requirements": ids,
        })
    not_applicable = result.outputs.get("notApplicable") or {}
    unserved = [rid for rid in musts(version) if rid not in served and rid not in not_applicable]
    return {
        "stack": stack, "target": cfg.target, "checklistVersion": version,
        "resources": resources,
        "requirements": {rid: {"level": LEVELS[version].get(rid, "not in checklist"),
                               "servedBy": urns} for rid, urns in served.items()},
        "notApplicable": not_applicable,
        "unservedMust": unserved,
        "outputs": result.outputs, "secretOutputs": result.secret_outputs,
    }


def render_table(result: dict[str, Any]) -> str:
    """Resources grouped by component as a tree, each with the requirement ids it serves."""
    resources = result["resources"]
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in resources:
        children.setdefault(r["parent"], []).append(r)
    lines: list[str] = [
        f"Plan for stack {result['stack']} (target {result['target']}, "
        f"checklist {result['checklistVersion']}): {len(resources)} resources", ""]

    def walk(parent: str | None, depth: int, inherited: list[str]) -> None:
        for r in children.get(parent, []):
            own = [i for i in r["requirements"] if i not in inherited]
            tag = f"  [{', '.join(own)}]" if own else ""
            lines.append(f"{'  ' * depth}{r['type']}  {r['name']}{tag}")
            walk(r["urn"], depth + 1, r["requirements"])

    for top in children.get(None, []):
        reqs = top["requirements"]
        tag = f"  [{', '.join(reqs)}]" if reqs else ""
        lines.append(f"{top['type']}  {top['name']}{tag}")
        walk(top["urn"], 1, reqs)
        lines.append("")
    from .conformance import musts

    version = result["checklistVersion"]
    for rid, why in result["notApplicable"].items():
        lines.append(f"N/A {rid}: {why}")
    if result["unservedMust"]:
        lines.append(f"MUST requirements of checklist {version} no resource serves: "
                     f"{', '.join(result['unservedMust'])}")
    else:
        served = [rid for rid in musts(version) if rid in result["requirements"]]
        lines.append(f"Every MUST requirement of checklist {version} is served "
                     f"({len(served)}): {', '.join(served)}")
    return "\n".join(lines) + "\n"
