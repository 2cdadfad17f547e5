"""Stack configuration: a good stack parses; every bad one is one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from aicp.stacks.config import ConfigError, parse
from aicp.stacks.program import pool_node_range

REPO = Path(__file__).resolve().parents[2]


def example(stack: str = "aws") -> dict:
    doc = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in doc.items() if k.startswith("aicp:")}


# The mistakes below are made to one fixed EKS stack, not to the example files, which
# change as the examples do: an H100 pool from zero on the device plugin, an L4 pool on DRA.
AWS = {
    "target": "aws", "clusterName": "aicp-aws", "kubernetesVersion": "1.35",
    "region": "us-west-2", "zones": ["us-west-2a", "us-west-2b"],
    "endpoint": {"privateAccess": True, "publicAccess": True},
    "systemPool": {"minNodes": 2, "maxNodes": 4},
    "gpuPools": [
        {"name": "h100", "accelerator": "h100", "minNodes": 0, "maxNodes": 2,
         "allocator": "device-plugin"},
        {"name": "l4", "accelerator": "l4", "minNodes": 1, "maxNodes": 2, "allocator": "dra"}],
    "addons": {"kueue": {"waitForPodsReadyTimeout": "10m"},
               "autoscaler": {"expander": "least-waste"}},
}


def test_an_eks_stack_asks_for_an_h100_pool_from_zero_and_an_l4_pool():
    cfg = parse(copy.deepcopy(AWS))
    h100, l4 = cfg.gpu_pools
    assert (h100.accelerator, h100.min_nodes, h100.max_nodes) == ("h100", 0, 2)
    assert l4.accelerator == "l4"
    assert cfg.kubernetes_version == "1.35" and cfg.checklist_version == "1.35"


def test_example_stacks_parse_into_the_pools_they_list():
    for stack in ("aws", "azure", "gcp", "onprem"):
        raw = example(stack)
        cfg = parse(raw)
        assert [(p.name, p.accelerator, p.max_nodes) for p in cfg.gpu_pools] == [
            (p["name"], p["accelerator"], p["maxNodes"]) for p in raw["gpuPools"]]


def test_defaults_fill_in_what_a_stack_leaves_out():
    cfg = parse({"target": "aws", "region": "eu-west-1", "zones": ["eu-west-1a", "eu-west-1b"],
                 "gpuPools": [{"name": "a", "accelerator": "a100", "minNodes": 1,
                               "maxNodes": 1}]})
    assert cfg.kubernetes_version == "1.35"
    assert cfg.gpu_pools[0].allocator == "dra"
    assert cfg.addons.kueue.enabled and cfg.addons.kuberay.webhook


def _set(path: str, value):
    def change(cfg: dict) -> None:
        node = cfg
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if value is DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return change


DELETE = object()

BAD = [
    # A near miss is named: the key one letter away is what was meant.
    ("unknown top-level key", _set("gpuPool", []),
     "aicp:gpuPool: unknown key; did you mean gpuPools? allowed here: target,"),
    ("unknown pool key", _set("gpuPools[0].gpus", 8),
     "aicp:gpuPools[0].gpus: unknown key; allowed here: name, accelerator,"),
    ("unknown addon option", _set("addons.kueue.waitForPodsReady", True),
     "aicp:addons.kueue.waitForPodsReady: unknown key"),
    ("wrong type for a count", _set("gpuPools[1].maxNodes", "two"),
     "aicp:gpuPools[1].maxNodes: 'two' is not a whole number"),
    ("min above max", _set("gpuPools[0].minNodes", 3),
     "aicp:gpuPools[0].minNodes: 3 is more than maxNodes 2"),
    ("unsupported Kubernetes minor", _set("kubernetesVersion", "1.33"),
     "aicp:kubernetesVersion: '1.33' is not supported; use one of 1.34, 1.35, 1.36"),
    ("unquoted minor read as a number", _set("kubernetesVersion", 1.35),
     "aicp:kubernetesVersion: 1.35 is not a string"),
    ("empty pools", _set("gpuPools", []), "aicp:gpuPools: must list at least one entry"),
    ("missing max", _set("gpuPools[0].maxNodes", DELETE),
     "aicp:gpuPools[0].maxNodes: required key is missing"),
    ("negative minimum", _set("gpuPools[0].minNodes", -1),
     "aicp:gpuPools[0].minNodes: -1 must be at least 0"),
    ("pool name not a DNS label", _set("gpuPools[0].name", "H100_Pool"),
     "aicp:gpuPools[0].name: 'H100_Pool' must be a lowercase DNS label"),
    ("unknown allocator", _set("gpuPools[0].allocator", "mig"),
     "aicp:gpuPools[0].allocator: 'mig' is not one of dra, device-plugin"),
    ("switch not a boolean", _set("addons.kuberay.enabled", "yes"),
     "aicp:addons.kuberay.enabled: 'yes' is not true or false"),
    ("pools not a list", _set("gpuPools", "h100"), "aicp:gpuPools: expected a list"),
]


def test_every_example_stack_parses():
    for stack in ("aws", "azure", "gcp", "onprem"):
        assert parse(example(stack)).target == stack


OTHER_TARGETS_BAD = [
    ("onprem", "unknown mode", _set("onprem.mode", "kubeadm"),
     "aicp:onprem.mode: 'kubeadm' is not one of existing, k3s"),
    ("onprem", "unknown key", _set("onprem.nodes", ["gpu-0"]),
     "aicp:onprem.nodes: unknown key; allowed here: mode, kubeconfig"),
]


# Each target's example stack with one mistake: (stack, name, change, expected message start).
CASES = [("aws", *case) for case in BAD] + OTHER_TARGETS_BAD


@pytest.mark.parametrize("stack,change,expected", [(s, c, e) for s, _, c, e in CASES],
                         ids=[f"{s}-{n}" for s, n, _, _ in CASES])
def test_bad_config_is_one_line_naming_the_key(stack, change, expected):
    cfg = copy.deepcopy(AWS if stack == "aws" else example(stack))
    change(cfg)
    with pytest.raises(ConfigError) as err:
        parse(cfg, pool_node_range)  # the pools' node ranges as the stack checks them
    message = str(err.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_the_config_model_leaves_the_node_range_to_the_pool_contract():
    # components/contract.py node_range is the rule's one home: parse without it says nothing.
    cfg = copy.deepcopy(AWS)
    _set("gpuPools[0].minNodes", 3)(cfg)
    assert parse(cfg).gpu_pools[0].min_nodes == 3
