"""``aicp plan``: what a stack would build, offline, and the requirement each part serves."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from ..verify.completion import stack_names
from ..verify.verdicts import UsageError, error_line


class Output(StrEnum):
    table = "table"
    json = "json"


class BadKey(Exception):
    """A mapping key Pulumi would refuse: given twice, or not a plain name."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _loader() -> type:
    """A safe YAML loader that reads a stack file as Pulumi does: it refuses a key given twice
    in one mapping and a key that is a list or mapping, takes anchors, aliases and merge keys,
    and reads only ``true``/``false`` as booleans.

    PyYAML keeps the last of two equal keys without a word, so one value would win unseen;
    go-yaml v3 refuses the file ("mapping key %#v already defined at line %d", yaml/go-yaml
    v3 decode.go), and so does this. A merge key (``<<: *base``) is go-yaml's too: the
    mapping's own keys win over merged ones, so only its own keys count as given twice.
    Pulumi reads stack files with go-yaml v3, a YAML 1.2 reader: ``yes``, ``no``, ``on`` and
    ``off`` are strings there (yaml/go-yaml v3 resolve.go: "true"/"false" in three cases are
    the only booleans), not YAML 1.1's booleans PyYAML would make of them.
    """
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"))

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys: construct_mapping lays the mapping's own over them
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise BadKey(line, f"a key must be a plain name, not {key!r}")
            if key in seen:
                raise BadKey(line, f"key {key!r} is given twice (first at line "
                                         f"{seen[key]}); keep one")
            seen[key] = line
        return loader.construct_mapping(node, deep=True)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def stack_file_name(stack: str) -> str:
    """The config file Pulumi reads for ``--stack``: ``Pulumi.<name>.yaml``, where
    ``<name>`` is the stack's own name, the last part of ``ORG/NAME`` or
    ``ORG/PROJECT/NAME``.

    Pulumi loads ``workspace.DetectProjectStackPath(stack.Ref().Name().Q())``
    (pulumi/pulumi pkg/cmd/pulumi/stack, ``LoadProjectStack``): ``Ref().Name()`` is the
    stack name without organization or project, and ``DetectProjectStackPath``
    (sdk/go/common/workspace/paths.go) makes it ``Pulumi.<name>.yaml`` beside Pulumi.yaml.
    A reference has at most three parts (``ParseStackReference`` of the cloud backend:
    ``stack``, ``org/stack``, ``org/project/stack``).
    """
    return f"Pulumi.{stack_name(stack)}.yaml"


def stack_name(stack: str) -> str:
    """The stack's own name: ``aws`` for ``aws``, ``myorg/aws`` and ``myorg/aicp/aws``
    (what ``pulumi.get_stack()`` returns to the program, and what its URNs carry)."""
    parts = stack.split("/")
    if len(parts) > 3 or not all(parts):
        raise UsageError(f"--stack {stack}: a Pulumi stack is NAME, ORG/NAME or "
                         "ORG/PROJECT/NAME")
    return parts[-1]


def stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """The ``config:`` map of the stack's ``Pulumi.<name>.yaml`` (``ns:key`` → value);
    ``stack`` may be fully qualified (``stack_file_name``)."""
    import yaml

    path = project_dir / stack_file_name(stack)
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a FIFO, socket or device)"
        raise UsageError(f"{path.name}: is {kind}; the stack's config must be a file")
    if not path.is_file():
        found = sorted(p.name[len("Pulumi."):-len(".yaml")]
                       for p in project_dir.glob("Pulumi.*.yaml"))
        hint = f"; stacks here: {', '.join(found)}" if found else ""
        option = "--stack" if "/" not in stack else f"--stack {stack}"
        raise UsageError(f"{option}: no {path.name} in {project_dir}{hint}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path.name}: cannot read it: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path.name} line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                         "save the file as UTF-8") from None
    try:
        doc = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except BadKey as exc:
        raise UsageError(f"{path.name} line {exc.line}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path.name}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") \
            from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(f"{path.name}: expected a mapping with a config: section at the top, "
                         f"got a {_kind(doc)}")
    config = doc.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise UsageError(f"{path.name}: 'config' must be a mapping of keys")
    for key in config:
        # Pulumi config keys are <namespace>:<name> (pulumi/pulumi
        # sdk/go/common/resource/config/key.go, ParseKey); pulumi refuses the file otherwise.
        if not isinstance(key, str) or key.count(":") != 1 or key.startswith(":") \
                or key.endswith(":"):
            raise UsageError(f"{path.name}: config key {key!r} is not <namespace>:<name>; "
                             f"write it as aicp:{str(key).strip(':')}")
    # Encrypted values ({secure: ...}) cannot be read offline; plan with a placeholder.
    return {k: (SECRET if isinstance(v, dict) and set(v) == {"secure"} else v)
            for k, v in config.items()}


SECRET = "[secret]"


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number",
            bool: "boolean"}.get(type(value), type(value).__name__)


def plan(
    stack: str = typer.Option(
        "aws", "--stack", "-s", autocompletion=stack_names,
        help="Stack name (or ORG/NAME, ORG/PROJECT/NAME): reads Pulumi.<name>.yaml."),
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
    notes: list[str] = []
    try:
        raw = stack_config(project_dir, stack)
        cfg, run = run_stack(raw, stack_name(stack), notes)
        result = describe(cfg, run, stack)
    except UsageError as exc:
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if output is Output.json:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(render_table(result))


def offline_kubeconfig(raw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``raw`` with a stand-in kubeconfig where an on-prem one cannot be read here.

    Planning declares what ``pulumi up`` would, and needs no cluster: a kubeconfig file
    that is not on this machine, or one held as an encrypted secret, is replaced by one
    that reaches nothing, and ``notes`` says so. A file that is here is read and checked.
    """
    from ..stacks.kubeconfig import stand_in

    onprem = raw.get("aicp:onprem")
    if raw.get("aicp:target") != "onprem" or not isinstance(onprem, dict) \
            or onprem.get("mode") != "existing":
        return raw
    context = onprem.get("context") if isinstance(onprem.get("context"), str) else None
    path = onprem.get("kubeconfig")
    if isinstance(path, str) and path and "aicp:kubeconfig" not in raw:
        file = Path(os.path.expanduser(path))
        if file.is_file():
            return raw
        notes.append(f"aicp:onprem.kubeconfig: no file at {file}; planned with a stand-in "
                     "kubeconfig (pulumi up needs the real one)")
        rest = {k: v for k, v in onprem.items() if k != "kubeconfig"}
        return {**raw, "aicp:onprem": rest, "aicp:kubeconfig": stand_in(context)}
    if raw.get("aicp:kubeconfig") == SECRET and path is None:
        notes.append("aicp:kubeconfig is an encrypted secret; planned with a stand-in "
                     "kubeconfig (pulumi up decrypts the real one)")
        return {**raw, "aicp:kubeconfig": stand_in(context)}
    return raw


def run_stack(raw: dict[str, Any], stack: str, notes: list[str] | None = None):
    """Validate the config, then run the real program offline: ``(config, offline.Plan)``.

    What was planned differently from ``pulumi up`` (a stand-in kubeconfig) is added to
    ``notes``.
    """
    from ..stacks.config import ConfigError
    from ..stacks.program import checked

    raw = offline_kubeconfig(raw, notes if notes is not None else [])
    try:
        cfg = checked({k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("aicp:")},
                      {k: v for k, v in raw.items() if not k.startswith("aicp:")})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None

    import pulumi

    from ..stacks.program import main as program
    from . import offline

    try:
        planned = offline.run(program, raw, stack=stack)
    except pulumi.RunError as exc:
        # What the program reports while declaring resources, as one line.
        raise UsageError(" ".join(str(exc).split())) from None
    from .fakes import PREFLIGHT_TOKENS

    # The target's preflight (stacks/targets/<target>.py) asked the cloud; offline, fakes
    # answered.
    asked = sum(1 for token, _ in planned.invokes if token in PREFLIGHT_TOKENS)
    if asked and notes is not None:
        notes.append(f"preflight: {asked} read-only lookups answered from canned data "
                     "(cli/fakes.py), not by the cloud; pulumi up asks the cloud")
    return cfg, planned


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
        "shoulds": should_status(version, served, not_applicable),
        "outputs": result.outputs, "secretOutputs": result.secret_outputs,
        "cost": cost(cfg.target, result.outputs.get("gpuPools") or [], cfg.region),
    }


def cost(target: str, pools: list[dict[str, Any]], region: str | None = None
         ) -> dict[str, Any]:
    """GPU machines' USD per hour per pool and in total, at min and at max nodes, from the
    price catalog (components/prices.py), and the machine types it has no price for. A price
    read in another region than the stack's ``region`` says so: list prices differ by region."""
    from ..components.accelerators import racked
    from ..components.prices import VARIABLE, price

    rows, unpriced, sources = [], [], {}
    for p in pools:
        found = price(target, p["machineType"])
        variable = p["capacityType"] in VARIABLE
        row: dict[str, Any] = {"pool": p["name"], "machineType": p["machineType"],
                               "capacityType": p["capacityType"], "variable": variable,
                               "minNodes": p["minNodes"], "maxNodes": p["maxNodes"]}
        if found is not None:
            row.update(usdPerHour=found.usd_per_hour, atMin=p["minNodes"] * found.usd_per_hour,
                       atMax=p["maxNodes"] * found.usd_per_hour)
            elsewhere = f"; this stack builds in {region}, whose price may differ" \
                if region and region != found.region else ""
            sources[found.source] = f"{found.region}, as of {found.as_of}{elsewhere}"
        elif not racked(target):
            unpriced.append(p["machineType"])
        rows.append(row)
    priced = [r for r in rows if "atMin" in r]
    return {"pools": rows, "atMin": sum(r["atMin"] for r in priced),
            "atMax": sum(r["atMax"] for r in priced), "unpriced": unpriced,
            "owned": racked(target), "sources": sources}


def cost_lines(cost: dict[str, Any]) -> list[str]:
    """The plan's cost section: a line per pool, the total, the source, what has no price."""
    if cost["owned"]:
        return ["GPU cost: your own machines (on-prem); a first up starts none"]
    lines = []
    for r in cost["pools"]:
        note = " (spot/blocks/flex-start: variable, counted at on-demand)" \
            if r["variable"] else ""
        if "atMin" in r:
            lines.append(f"GPU cost {r['pool']} ({r['minNodes']}..{r['maxNodes']} x "
                         f"{r['machineType']} at ${r['usdPerHour']:.2f}/h): "
                         f"${r['atMin']:.2f}/h at min, ${r['atMax']:.2f}/h at max{note}")
        else:
            lines.append(f"GPU cost {r['pool']} ({r['machineType']}): no price in the "
                         "catalog")
    lines.append(f"GPU cost total: ${cost['atMin']:.2f}/h at min, ${cost['atMax']:.2f}/h "
                 "at max (on-demand list prices)")
    for source, when in cost["sources"].items():
        lines.append(f"Prices from {source} ({when})")
    if cost["unpriced"]:
        lines.append(f"No price for: {', '.join(dict.fromkeys(cost['unpriced']))} (not "
                     "counted in the total)")
    return lines


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
    lines += storage_lines(result["outputs"].get("storage"))
    lines.extend([*cost_lines(result["cost"]), ""])
    lines.extend(fabric_lines(result))
    for rid, why in result["notApplicable"].items():
        lines.append(f"N/A {rid}: {why}")
    lines.extend(should_lines(result))
    if result["unservedMust"]:
        lines.append(f"MUST requirements of checklist {version} no resource serves: "
                     f"{', '.join(result['unservedMust'])}")
    else:
        served = [rid for rid in musts(version) if rid in result["requirements"]]
        lines.append(f"Every MUST requirement of checklist {version} is served "
                     f"({len(served)}): {', '.join(served)}")
    return "\n".join(lines) + "\n"


def should_status(version: str, served: dict[str, Any], not_applicable: dict[str, str]
                  ) -> dict[str, str]:
    """Each SHOULD of the checklist: ``served``, ``N/A: <why>`` or ``not served``."""
    from .conformance import LEVELS

    out: dict[str, str] = {}
    for rid, level in LEVELS[version].items():
        if level != "SHOULD":
            continue
        if rid in not_applicable:
            out[rid] = f"N/A: {not_applicable[rid]}"
        else:
            out[rid] = "served" if rid in served else "not served"
    return out


def should_lines(result: dict[str, Any]) -> list[str]:
    """One line per SHOULD requirement of the checklist, served or N/A with the reason."""
    version = result["checklistVersion"]
    lines = []
    for rid, status in result.get("shoulds", {}).items():
        if status.startswith("N/A"):
            continue  # listed with its reason above
        if status == "served":
            count = len(result["requirements"][rid]["servedBy"])
            lines.append(f"SHOULD {rid}: served ({count} resource{'s' * (count != 1)})")
        else:
            lines.append(f"SHOULD {rid}: {status} by this stack (checklist {version})")
    return lines


def storage_lines(storage: Any) -> list[str]:
    """The stack's storage outputs (#20): default class, bucket, identity, extras."""
    if not isinstance(storage, dict):
        return []
    lines = ["Storage:", f"  default StorageClass: "
                         f"{storage.get('defaultStorageClass') or '(the cluster default)'}"]
    if storage.get("bucket"):
        lines.append(f"  model bucket: {storage['bucket']} ({storage.get('bucketDriver')}), "
                     f"ServiceAccount {storage.get('serviceAccount')}")
        lines.append(f"  identity: {storage.get('identity')}")
        lines.append("  mount recipe: stack output storage.mountRecipe (PV/PVC and pod spec)")
    if storage.get("s3"):
        s3 = storage["s3"]
        lines.append(f"  S3 endpoint: {s3.get('endpoint')} bucket {s3.get('bucket')}, keys in "
                     f"Secret {s3.get('secret')}")
    for ns, why in (storage.get("teamsWithoutIdentity") or {}).items():  # on-prem teams, #24
        lines.append(f"  team namespace {ns}: {why}")
    if storage.get("parallelFileSystem"):
        lines.append(f"  parallel file system: {storage['parallelFileSystem'].get('driver')}")
    if storage.get("localNvme"):
        lines.append(f"  local NVMe: {storage['localNvme']}")
    return [*lines, ""]


def fabric_lines(result: dict[str, Any]) -> list[str]:
    """Per GPU pool with a fabric (``gpuPools[].fabric``, components/fabric.py): what it
    gets and what a pod asks for to use it; none for pools of other machine types."""
    lines = []
    served = "high_performance_networking" in result["requirements"]
    for pool in result["outputs"].get("gpuPools") or []:
        f = pool.get("fabric")
        if not f:
            continue
        claims = f.get("claims") or {}
        asks = ", ".join(f"{k}: {v}" for k, v in (f.get("resources") or {}).items()) or (
            f"a claim of {claims['count']} {claims['deviceClassName']}" if claims else
            f"networks {', '.join(f.get('networks') or [])}")
        asks += "".join(f", {k}: {v}" for k, v in (f.get("hugePages") or {}).items())
        asks += "".join(f", capability {c}" for c in f.get("capabilities") or [])
        topology = " > ".join(f.get("topologyLevels") or []) or "none published"
        lines.append(
            f"Fabric of GPU pool {pool['name']} ({pool['machineType']}): {f['bandwidthClass']}, "
            f"{f['interfaces']} interfaces, {f['placement']}; pods ask for {asks}; Kueue "
            f"topology: {topology}; high_performance_networking "
            f"{'served' if served else 'NOT served'}")
    return lines
