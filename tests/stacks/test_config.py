"""Stack configuration: a good stack parses; every bad one is one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from aicp.stacks.config import ConfigError, parse

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
    ("unknown accelerator", _set("gpuPools[1].accelerator", "h200x"),
     "aicp:gpuPools[1].accelerator: 'h200x' is not one of h100, h200, a100, l40s, l4 on aws"),
    ("min above max", _set("gpuPools[0].minNodes", 3),
     "aicp:gpuPools[0].minNodes: 3 is more than maxNodes 2"),
    ("unsupported Kubernetes minor", _set("kubernetesVersion", "1.33"),
     "aicp:kubernetesVersion: '1.33' is not supported; use one of 1.34, 1.35, 1.36"),
    ("unquoted minor read as a number", _set("kubernetesVersion", 1.35),
     "aicp:kubernetesVersion: 1.35 is not a string"),
    ("empty pools", _set("gpuPools", []), "aicp:gpuPools: must list at least one entry"),
    ("unknown target", _set("target", "openstack"),
     "aicp:target: 'openstack' is not one of aws, gcp, azure, onprem"),
    ("missing max", _set("gpuPools[0].maxNodes", DELETE),
     "aicp:gpuPools[0].maxNodes: required key is missing"),
    ("instance type without that GPU", _set("gpuPools[0].instanceType", "g6.xlarge"),
     "aicp:gpuPools[0].instanceType: 'g6.xlarge' does not carry h100 on aws; use one of"),
    ("negative minimum", _set("gpuPools[0].minNodes", -1),
     "aicp:gpuPools[0].minNodes: -1 must be at least 0"),
    ("duplicate pool names", _set("gpuPools[1].name", "h100"),
     "aicp:gpuPools[1].name: 'h100' is used by another pool"),
    ("pool name not a DNS label", _set("gpuPools[0].name", "H100_Pool"),
     "aicp:gpuPools[0].name: 'H100_Pool' must be a lowercase DNS label"),
    ("one zone only", _set("zones", ["us-west-2a"]),
     "aicp:zones: list at least two availability zones"),
    ("no region", _set("region", DELETE), "aicp:region: required for target aws"),
    ("DRA pool from zero on EKS", _set("gpuPools[1].minNodes", 0),
     "aicp:gpuPools[1].minNodes: 0 cannot scale up for DRA claims on aws"),
    ("gpusPerNode on a cloud", _set("gpuPools[0].gpusPerNode", 8),
     "aicp:gpuPools[0].gpusPerNode: only for onprem"),
    ("unknown allocator", _set("gpuPools[0].allocator", "mig"),
     "aicp:gpuPools[0].allocator: 'mig' is not one of dra, device-plugin"),
    ("switch not a boolean", _set("addons.kuberay.enabled", "yes"),
     "aicp:addons.kuberay.enabled: 'yes' is not true or false"),
    ("pools not a list", _set("gpuPools", "h100"), "aicp:gpuPools: expected a list"),
]


AZURE_BAD = [
    ("zone not 1-3", _set("zones", ["eastus2-a"]),
     "aicp:zones[0]: 'eastus2-a' is not an Azure zone"),
    ("two node subnets", _set("network", {"subnetIds": ["/subscriptions/a", "/subscriptions/b"]}),
     "aicp:network.subnetIds: AKS takes one node subnet"),
    ("price expander", _set("addons.autoscaler.expander", "price"),
     "aicp:addons.autoscaler.expander: 'price' is not offered by AKS"),
    ("slash in a tag name", _set("tags", {"team/name": "ml"}),
     "aicp:tags.team/name: Azure tag names cannot contain"),
    ("l4 is not offered on azure", _set("gpuPools[0].accelerator", "l4"),
     "aicp:gpuPools[0].accelerator: 'l4' is not one of h100, h200, a100 on azure"),
]


def test_every_example_stack_parses():
    for stack in ("aws", "azure", "gcp", "onprem"):
        assert parse(example(stack)).target == stack


OTHER_TARGETS_BAD = [
    ("gcp", "no project", _set("gcp", DELETE),
     "aicp:gcp.project: required for target gcp"),
    ("gcp", "uppercase label", _set("tags", {"Team": "ml"}),
     "aicp:tags.Team: GCP labels are lowercase"),
    ("gcp", "l40s is not offered on gcp", _set("gpuPools[0].accelerator", "l40s"),
     "aicp:gpuPools[0].accelerator: 'l40s' is not one of h100, h200, a100, l4 on gcp"),
    ("onprem", "no GPU count", _set("gpuPools[0].gpusPerNode", DELETE),
     "aicp:gpuPools[0].gpusPerNode: required on onprem"),
    ("onprem", "unknown mode", _set("onprem.mode", "kubeadm"),
     "aicp:onprem.mode: 'kubeadm' is not one of existing, k3s"),
    ("onprem", "unknown key", _set("onprem.nodes", ["gpu-0"]),
     "aicp:onprem.nodes: unknown key; allowed here: mode, kubeconfig"),
]


# Each target's example stack with one mistake: (stack, name, change, expected message start).
CASES = ([("aws", *case) for case in BAD] + [("azure", *case) for case in AZURE_BAD]
         + OTHER_TARGETS_BAD)


@pytest.mark.parametrize("stack,change,expected", [(s, c, e) for s, _, c, e in CASES],
                         ids=[f"{s}-{n}" for s, n, _, _ in CASES])
def test_bad_config_is_one_line_naming_the_key(stack, change, expected):
    cfg = copy.deepcopy(AWS if stack == "aws" else example(stack))
    change(cfg)
    with pytest.raises(ConfigError) as err:
        parse(cfg)
    message = str(err.value)
    assert message.startswith(expected), message
    assert "\n" not in message


# --- what the clouds accept must still parse (stacks/cloud_rules.py) ----------------------

GOOD = [
    ("aws", _set("region", "us-gov-west-1"),
     _set("zones", ["us-gov-west-1a", "us-gov-west-1b"])),
    ("aws", _set("gpuPools[0].maxNodes", 450), _set("systemPool.maxNodes", 450)),
    ("aws", _set("gpuPools[0].capacityReservationId", "cr-0123456789abcdef0"),
     _set("endpoint.publicAccessCidrs", ["203.0.113.0/24", "198.51.100.7/32"])),
    ("aws", _set("endpoint", {"privateAccess": True, "publicAccess": False}),
     _set("addons.kueue.waitForPodsReadyTimeout", "1h30m")),
    ("aws", _set("network", {"vpcCidr": "10.8.0.0/22"}),
     _set("addons.kueue.waitForPodsReadyTimeout", "90s")),
    ("gcp", _set("region", "northamerica-northeast1"),
     _set("zones", ["northamerica-northeast1-a", "northamerica-northeast1-b"])),
    ("gcp", _set("gcp.masterIpv4CidrBlock", "172.16.0.16/28"),
     _set("gpuPools[0].capacityReservationId", "projects/my-project/reservations/a3-res")),
    ("gcp", _set("zones", []), _set("gpuPools[0].maxNodes", 4000)),
    ("azure", _set("region", "westeurope"), _set("gpuPools[0].maxNodes", 1000)),
    ("azure", _set("gpuPools[0].capacityReservationId",
                   "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/"
                   "capacityReservationGroups/h100-crg"),
     _set("network", {"vpcCidr": "10.0.0.0/16"})),
]


@pytest.mark.parametrize("stack,first,second", GOOD, ids=[f"{s}-{i}" for i, (s, _, _) in
                                                          enumerate(GOOD)])
def test_what_the_cloud_accepts_parses(stack, first, second):
    cfg = copy.deepcopy(AWS if stack == "aws" else example(stack))
    first(cfg)
    second(cfg)
    assert parse(cfg).target == stack


def test_the_aks_rules_follow_the_component():
    from aicp.components import azure
    from aicp.stacks import cloud_rules

    args = azure.AksClusterArgs.__dataclass_fields__
    assert cloud_rules.AKS_POD_CIDR == args["pod_cidr"].default
    assert cloud_rules.AKS_SERVICE_CIDR == args["service_cidr"].default
    assert cloud_rules.AKS_SYSTEM_POOL == azure.SYSTEM_POOL_NAME
    with pytest.raises(ConfigError, match=r"both become AKS pool name 'gpupoolnumbe'"):
        parse({**example("azure"), "gpuPools": [
            {"name": n, "accelerator": "a100", "minNodes": 1, "maxNodes": 1}
            for n in ("gpu-pool-number-1", "gpu-pool-number-2")]})
    assert azure.agent_pool_name("gpu-pool-number-1") == "gpupoolnumbe"
