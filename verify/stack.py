"""A Pulumi stack's outputs: the kubeconfig and what the stack asked for.

``pulumi stack output --json --show-secrets --stack NAME`` runs as a subprocess, so aicp
verify never imports Pulumi. The kubeconfig never reaches the terminal or a report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .kube import GPU_RESOURCES, ConfigError, Kube, quantity

EXPECTATION_KEYS = ("gpuPools", "addons", "autoscaler", "target", "defaultStorageClass")
# A checklist version is "1.<minor>" (verify/checklist.py VERSION).
VERSION = re.compile(r"^1\.\d+$")
# kubernetes.io/docs/concepts/storage/storage-classes/#default-storageclass
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# What each addon key of the ``addons`` output serves once installed (stacks/program.py
# keys); an addon without an API of its own (cluster-autoscaler) is only noted.
ADDON_APIS: dict[str, tuple[str, ...]] = {
    "monitoring": ("monitoring.coreos.com/v1",),
    "gpu-operator": ("nvidia.com/v1",),
    "dra-driver": ("resource.k8s.io/v1", "resource.nvidia.com/v1beta1"),
    "kuberay": ("ray.io/v1",),
    "jobset": ("jobset.x-k8s.io/v1alpha2",),
    "kueue": ("kueue.x-k8s.io/v1beta2",),
    "gateway-api": ("gateway.networking.k8s.io/v1",),
    "istio": ("networking.istio.io/v1",),
    "inference-extension": ("inference.networking.k8s.io/v1",),
    "leaderworkerset": ("leaderworkerset.x-k8s.io/v1",),
    "metrics-adapter": ("custom.metrics.k8s.io/v1beta1",),
}


@dataclass
class StackOutputs:
    name: str
    kubeconfig: dict = field(repr=False)
    checklist_version: str | None = None
    expectations: dict[str, Any] = field(default_factory=dict)
    # requirement id → why the stack says it does not apply (reported N/A).
    not_applicable: dict[str, str] = field(default_factory=dict)


@dataclass
class StackCheck:
    """What the cluster shows against the stack: ``problems`` are mismatches, ``notes``
    are expected absences (pools scaled to zero, addons without an API)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read(name: str, *, timeout: float = 120.0) -> StackOutputs:
    """Run ``pulumi stack output`` for ``name``; every failure is one ConfigError line."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ConfigError("pulumi CLI not found on PATH: install it "
                          "(https://www.pulumi.com/docs/install/) or pass --kubeconfig")
    try:
        proc = subprocess.run([pulumi, "stack", "output", "--json", "--show-secrets",
                               "--stack", name], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"pulumi stack output --stack {name} did not answer in "
                          f"{timeout:g}s") from None
    if proc.returncode != 0:
        why = next((line.strip() for line in proc.stderr.splitlines() if line.strip()),
                   f"exit code {proc.returncode}")
        raise ConfigError(f"pulumi stack output --stack {name} failed: {why}")
    try:
        outputs = json.loads(proc.stdout or "{}")
    except ValueError:
        raise ConfigError(f"pulumi stack output --stack {name} did not print JSON") from None
    return parse(name, outputs)


def parse(name: str, outputs: Any) -> StackOutputs:
    if not isinstance(outputs, dict):
        raise ConfigError(f"stack {name}: outputs are not a JSON object")
    raw = outputs.get("kubeconfig")
    if not raw:
        raise ConfigError(f"stack {name} has no 'kubeconfig' output: run `pulumi up "
                          f"--stack {name}` first, or pass --kubeconfig")
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"stack {name}: the 'kubeconfig' output is not YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"stack {name}: the 'kubeconfig' output is not a kubeconfig")
    version = outputs.get("checklistVersion")
    if version is not None and (not isinstance(version, str) or not VERSION.match(version)):
        # The stack's own output, not the cluster: say whose it is and the way round it.
        raise ConfigError(f"stack {name}: the 'checklistVersion' output {version!r} is not a "
                          "checklist version (like \"1.35\"); fix the stack's output or pass "
                          "--checklist")
    not_applicable = outputs.get("notApplicable") or {}
    if not isinstance(not_applicable, dict):
        raise ConfigError(f"stack {name}: the 'notApplicable' output is not a mapping")
    for key, (kind, what) in OUTPUT_SHAPES.items():
        if key in outputs and outputs[key] is not None and not _shaped(outputs[key], kind):
            raise ConfigError(f"stack {name}: the '{key}' output is not {what}, as aicp's "
                              f"stack exports it (got {_kind(outputs[key])}); fix the output "
                              "or pass --kubeconfig")
    return StackOutputs(name, raw, version,
                        {k: outputs[k] for k in EXPECTATION_KEYS if k in outputs},
                        {str(k): str(v) for k, v in not_applicable.items()})


# The shape of each output aicp reads besides the kubeconfig, as stacks/program.py exports
# it: "pools" a list of mappings, "names" a mapping of names to versions, "text" a string.
OUTPUT_SHAPES: dict[str, tuple[str, str]] = {
    "gpuPools": ("pools", "a list of GPU pools (mappings)"),
    "addons": ("names", "a mapping of addon names to versions"),
    "autoscaler": ("text", "a string"),
    "target": ("text", "a string"),
}


def _shaped(value: Any, kind: str) -> bool:
    if kind == "pools":
        return isinstance(value, list) and all(isinstance(p, dict) for p in value)
    if kind == "names":
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items())
    return isinstance(value, str)


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "a string", bool: "true/false",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def check(expectations: dict[str, Any], kube: Kube) -> StackCheck:
    """Every GPU pool's accelerator is visible and every addon's API is served."""
    pools = [p for p in expectations.get("gpuPools") or [] if isinstance(p, dict)]
    # Only the pools' nodes are kept: a 5,000-node cluster is read a page at a time.
    nodes = [n for n in kube.items("/api/v1/nodes")
             if any(_carries(n, _pool_labels(p)) for p in pools)]
    slices = []
    if any(isinstance(p, dict) and p.get("allocator") != "device-plugin"
           for p in expectations.get("gpuPools") or []) and kube.resources("resource.k8s.io/v1"):
        slices = list(kube.items("/apis/resource.k8s.io/v1/resourceslices"))
    result = StackCheck()
    pools = unmet_expectations(expectations, nodes, slices)
    result.problems += pools.problems
    result.notes += pools.notes
    for addon, version in sorted((expectations.get("addons") or {}).items()):
        apis = ADDON_APIS.get(addon)
        if not apis:
            result.notes.append(f"addon {addon} {version}: serves no API of its own, "
                                "not checked")
            continue
        missing = [api for api in apis if not kube.resources(api)]
        if missing:
            result.problems.append(f"addon {addon} {version}: {', '.join(missing)} "
                                   "not served")
    problem = default_class_problem(expectations.get("defaultStorageClass"), kube)
    if problem:
        result.problems.append(problem)
    return result


def default_class_problem(name: Any, kube: Kube) -> str | None:
    """The class the stack names (``defaultStorageClass``) exists and is the default: a
    claim without storageClassName gets the default, so another default would take it."""
    if not name:
        return None
    classes = {c["metadata"]["name"]: c
               for c in kube.items("/apis/storage.k8s.io/v1/storageclasses")}
    defaults = sorted(n for n, c in classes.items()
                      if (c["metadata"].get("annotations") or {}).get(
                          DEFAULT_CLASS_ANNOTATION) == "true")
    if name not in classes:
        return (f"defaultStorageClass {name}: no such StorageClass (classes: "
                f"{', '.join(sorted(classes)) or 'none'})")
    if name not in defaults:
        return (f"defaultStorageClass {name}: not marked default ({DEFAULT_CLASS_ANNOTATION}; "
                f"default: {', '.join(defaults) or 'none'})")
    return None


def unmet_expectations(expectations: dict[str, Any], nodes: list[dict],
                       slices: Sequence[dict] = ()) -> StackCheck:
    """GPU pools the cluster does not show (one sentence each).

    A pool's nodes carry its labels (``aicp.dev/gpu-pool``, ``aicp.dev/accelerator``...);
    one of them must advertise GPUs the way the pool's allocator does: DRA pools through
    ResourceSlices on the node, device-plugin pools as allocatable ``nvidia.com/gpu``
    (either counts when the allocator is unknown). A pool with ``minNodes`` 0 and no node
    has scaled to zero: a note, not a problem.
    """
    with_slices = {(s.get("spec") or {}).get("nodeName") for s in slices
                   if (s.get("spec") or {}).get("devices")}
    result = StackCheck()
    for pool in expectations.get("gpuPools") or []:
        if not isinstance(pool, dict):
            continue
        name, accel = pool.get("name"), pool.get("accelerator")
        min_nodes = int(pool.get("minNodes") or 0)
        labels = _pool_labels(pool)
        matching = [n for n in nodes if _carries(n, labels)]
        allocator = str(pool.get("allocator") or "")

        def advertises(node: dict, allocator=allocator) -> bool:
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            plugin = any(quantity(allocatable.get(r)) > 0 for r in GPU_RESOURCES)
            dra = node["metadata"]["name"] in with_slices
            return {"dra": dra, "device-plugin": plugin}.get(allocator, dra or plugin)

        visible = [n for n in matching if advertises(n)]
        what = f"GPU pool {name} ({accel}, {allocator or 'any'} allocator, minNodes {min_nodes})"
        if not matching and min_nodes <= 0:
            result.notes.append(f"{what}: no node now; the pool scales from zero")
        elif not visible:
            how = {"dra": "publishes DRA ResourceSlices",
                   "device-plugin": f"advertises {'/'.join(GPU_RESOURCES[:1])}"}.get(
                allocator, "advertises GPUs")
            result.problems.append(f"{what}: no node with labels {labels} {how} "
                                   f"({len(matching)} nodes carry the labels)")
        elif len(matching) < min_nodes:
            result.notes.append(f"{what}: {len(matching)} nodes carry the labels, fewer "
                                "than minNodes (still joining?)")
    return result


def _pool_labels(pool: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in
            (pool.get("labels") or {"aicp.dev/gpu-pool": pool.get("name")}).items()}


def _carries(node: dict, labels: dict[str, str]) -> bool:
    have = node.get("metadata", {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())
