"""The AWS target (stacks/targets/aws.py): what EKS and EC2 refuse is refused before
anything is declared, as one line naming the config key; what they accept is accepted."""

from __future__ import annotations

import pytest

from tests.stacks.test_config import DELETE, _set

from .cases import accepted, refused

BAD = [
    ("unknown accelerator", _set("gpuPools[1].accelerator", "h200x"),
     "aicp:gpuPools[1].accelerator: 'h200x' is not one of h100, h200, a100, l40s, l4 on aws"),
    ("instance type without that GPU", _set("gpuPools[0].instanceType", "g6.xlarge"),
     "aicp:gpuPools[0].instanceType: 'g6.xlarge' does not carry h100 on aws; use one of"),
    ("duplicate pool names", _set("gpuPools[1].name", "h100"),
     "aicp:gpuPools[1].name: 'h100' is used by another pool"),
    ("one zone only", _set("zones", ["us-west-2a"]),
     "aicp:zones: list at least two availability zones (EKS needs subnets in two), or give "
     "aicp:network.subnetIds"),
    ("one subnet only", _set("network", {"subnetIds": ["subnet-1"]}),
     "aicp:network.subnetIds: give subnets in at least two zones"),
    ("no region", _set("region", DELETE), "aicp:region: required for target aws"),
    ("DRA pool from zero on EKS", _set("gpuPools[1].minNodes", 0),
     "aicp:gpuPools[1].minNodes: 0 cannot scale up for DRA claims on aws"),
    ("gpusPerNode on a cloud", _set("gpuPools[0].gpusPerNode", 8),
     "aicp:gpuPools[0].gpusPerNode: only for onprem"),
    ("reservation on spot", _set("gpuPools[0]", {
        "name": "h100", "accelerator": "h100", "maxNodes": 2, "allocator": "device-plugin",
        "capacityType": "spot", "capacityReservationId": "cr-0123456789abcdef0"}),
     "aicp:gpuPools[0].capacityReservationId: capacity reservations are on-demand; drop it or "
     "set aicp:gpuPools[0].capacityType: on-demand"),
    ("VPC smaller than /22", _set("network", {"vpcCidr": "10.0.0.0/24"}),
     "aicp:network.vpcCidr: '10.0.0.0/24' must be /16 to /22 on aws"),
    ("41 public ranges", _set("endpoint.publicAccessCidrs",
                              [f"203.0.113.{i}/32" for i in range(41)]),
     "aicp:endpoint.publicAccessCidrs: 41 ranges; EKS takes at most 40 per cluster"),
]


@pytest.mark.parametrize("change,expected", [(c, e) for _, c, e in BAD],
                         ids=[n for n, _, _ in BAD])
def test_what_eks_refuses_is_one_line_naming_the_key(change, expected):
    message = refused("aws", change)
    assert message.startswith(expected), message


GOOD = [
    (_set("region", "us-gov-west-1"), _set("zones", ["us-gov-west-1a", "us-gov-west-1b"])),
    (_set("gpuPools[0].maxNodes", 450), _set("systemPool.maxNodes", 450)),
    (_set("gpuPools[0].capacityReservationId", "cr-0123456789abcdef0"),
     _set("endpoint.publicAccessCidrs", ["203.0.113.0/24", "198.51.100.7/32"])),
    (_set("endpoint", {"privateAccess": True, "publicAccess": False}),
     _set("addons.kueue.waitForPodsReadyTimeout", "1h30m")),
    (_set("network", {"vpcCidr": "10.8.0.0/22"}),
     _set("addons.kueue.waitForPodsReadyTimeout", "90s")),
    (_set("network", {"subnetIds": ["subnet-1", "subnet-2"]}), _set("zones", [])),
]


@pytest.mark.parametrize("first,second", GOOD, ids=[f"aws-{i}" for i in range(len(GOOD))])
def test_what_eks_accepts_is_accepted(first, second):
    assert accepted("aws", first, second).target == "aws"
