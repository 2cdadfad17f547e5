"""A Pulumi stack's outputs: the kubeconfig and what the stack asked for.

``pulumi stack output --json --show-secrets --stack NAME`` runs as a subprocess, so aicp
verify never imports Pulumi. The kubeconfig never reaches the terminal or a report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import yaml

from aicp.verify.kube import ConfigError

EXPECTATION_KEYS = ("gpuPools", "addons", "autoscaler", "target")


@dataclass
class StackOutputs:
    name: str
    kubeconfig: dict = field(repr=False)
    checklist_version: str | None = None
    expectations: dict[str, Any] = field(default_factory=dict)


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
    return StackOutputs(name, raw, str(version) if version else None,
                        {k: outputs[k] for k in EXPECTATION_KEYS if k in outputs})


def unmet_expectations(expectations: dict[str, Any], nodes: list[dict]) -> list[str]:
    """What the stack asked for that the cluster does not show (one sentence each).

    A GPU pool with ``minNodes`` > 0 must have a node carrying its labels and advertising
    its GPUs; pools that scale from zero are not expected to be visible.
    """
    from aicp.verify.kube import GPU_RESOURCES, _quantity

    problems = []
    for pool in expectations.get("gpuPools") or []:
        if not isinstance(pool, dict) or int(pool.get("minNodes") or 0) <= 0:
            continue
        labels = pool.get("labels") or {}
        matching = [n for n in nodes
                    if all((n.get("metadata", {}).get("labels") or {}).get(k) == v
                           for k, v in labels.items())]
        with_gpus = [n for n in matching
                     if any(_quantity(((n.get("status") or {}).get("allocatable") or {}).get(r))
                            > 0 for r in GPU_RESOURCES)]
        if not with_gpus:
            problems.append(f"GPU pool {pool.get('name')} ({pool.get('accelerator')}, "
                            f"minNodes {pool.get('minNodes')}): no node with labels {labels} "
                            f"advertises GPUs ({len(matching)} nodes carry the labels)")
    return problems
