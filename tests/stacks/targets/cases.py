"""What the per-target tests share: a stack with one change, parsed (the config's shape)
and then checked by its target, as ``pulumi up`` and ``aicp plan`` do before anything is
declared."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest

from aicp.cli import offline
from aicp.cli.plan import stack_config
from aicp.stacks.config import ConfigError, PlatformConfig, parse
from aicp.stacks.program import main as program
from aicp.stacks.program import pool_node_range
from aicp.stacks.targets import target
from tests.stacks.test_config import AWS, example

REPO = Path(__file__).resolve().parents[3]

Change = Callable[[dict], None]


def stack(name: str, *changes: Change) -> dict:
    """The fixed EKS stack (aws) or the target's example stack, with ``changes`` made."""
    cfg = copy.deepcopy(AWS if name == "aws" else example(name))
    for change in changes:
        change(cfg)
    return cfg


def checked(raw: dict) -> PlatformConfig:
    cfg = parse(raw, pool_node_range)
    target(cfg.target).check(cfg)
    return cfg


def refused(name: str, *changes: Change) -> str:
    with pytest.raises(ConfigError) as err:
        checked(stack(name, *changes))
    message = str(err.value)
    assert "\n" not in message
    return message


def accepted(name: str, *changes: Change) -> PlatformConfig:
    return checked(stack(name, *changes))


# --- the whole program under mocks: what the preflight lookups answer decides ----------------

def planned(name: str, *changes: Callable[[dict], None]) -> offline.Plan:
    """The example stack of ``name`` (its ``aicp:...`` keys, with ``changes`` made), planned
    by the real program."""
    raw = stack_config(REPO, name)
    for change in changes:
        change(raw)
    return offline.run(program, raw, stack=name)


def refused_by_preflight(name: str, *changes: Callable[[dict], None]) -> str:
    with pytest.raises(pulumi.RunError) as err:
        planned(name, *changes)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def created(p: offline.Plan) -> list[str]:
    return [r.type for r in p.resources if r.custom and not r.type.startswith("pulumi:")]
