"""The AWS target (stacks/targets/aws.py): what EKS and EC2 refuse is refused before
anything is declared, as one line naming the config key; what they accept is accepted."""

from __future__ import annotations

import pytest

from aicp.cli import fakes
from tests.stacks.test_config import DELETE, _set

from .cases import accepted, planned, refused, refused_by_preflight

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


# --- preflight: what EC2 answers before the first resource ------------------------------

OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"
QUOTA = "aws:servicequotas/getServiceQuota:getServiceQuota"
INSTANCE_TYPE = "aws:ec2/getInstanceType:getInstanceType"


def p5_beside_l4(raw: dict) -> None:
    """The example with an H100 (P-family, on-demand quota) pool before an L4 one: the shape
    the EC2 quota and offering lookups are about (the example itself starts L4s only)."""
    raw["aicp:gpuPools"] = [
        {"name": "h100", "accelerator": "h100", "minNodes": 1, "maxNodes": 2,
         "allocator": "dra"},
        {"name": "l4", "accelerator": "l4", "minNodes": 1, "maxNodes": 2, "allocator": "dra"}]
    raw.pop("aicp:teams", None)


def test_all_fine_every_pool_is_checked_and_nothing_is_warned():
    p = planned("aws", p5_beside_l4)
    report = p.outputs["preflight"]
    assert report["warnings"] == []
    assert "h100: p5.48xlarge offered in us-west-2a, us-west-2b" in report["checked"]
    assert "l4: g6.xlarge carries 1 GPUs" in report["checked"]
    assert any(c.startswith("quota Running On-Demand P instances") for c in report["checked"])
    asked = {token for token, _ in p.invokes}
    assert {OFFERINGS, QUOTA, INSTANCE_TYPE} <= asked


def test_machine_type_not_offered_in_a_zone_fails_naming_pool_zone_and_offer(monkeypatch):
    # EC2 DescribeInstanceTypeOfferings per availability zone: p5.48xlarge only in -2a.
    def offerings(args):
        out = fakes._ec2_offerings(args)
        pairs = zip(out["instanceTypes"], out["locations"], strict=True)
        keep = [i for i, (t, z) in enumerate(pairs)
                if not (t == "p5.48xlarge" and z == "us-west-2b")]
        for k in ("instanceTypes", "locations", "locationTypes"):
            out[k] = [out[k][i] for i in keep]
        return out

    monkeypatch.setitem(fakes.INVOKES, OFFERINGS, offerings)
    assert refused_by_preflight("aws", p5_beside_l4) == (
        "aicp:gpuPools[0]: p5.48xlarge (pool h100) is not offered in us-west-2b (us-west-2); "
        "of the configured zones it is offered in us-west-2a")


def test_quota_below_min_nodes_fails_before_any_resource(monkeypatch):
    # h100 minNodes 1 on p5.48xlarge: 192 vCPUs of "Running On-Demand P instances".
    def quota(args):
        out = fakes._service_quota(args)
        if args.get("quotaCode") == "L-417A185B":
            out["value"] = 0.0  # a new account
        return out

    monkeypatch.setitem(fakes.INVOKES, QUOTA, quota)
    message = refused_by_preflight("aws", p5_beside_l4)
    assert message == (
        "aicp:gpuPools: h100 need 192 vCPUs of EC2 quota 'Running On-Demand P instances' "
        "(L-417A185B) at minNodes in us-west-2, the account has 0; request more in Service "
        "Quotas or lower minNodes")


def test_quota_below_max_nodes_is_a_warning(monkeypatch):
    def quota(args):
        out = fakes._service_quota(args)
        out["value"] = 200.0  # one node of 192 fits, two do not
        return out

    monkeypatch.setitem(fakes.INVOKES, QUOTA, quota)
    report = planned("aws", p5_beside_l4).outputs["preflight"]
    assert any("at maxNodes need 384 vCPUs" in w and "scale-up will stop short" in w
               for w in report["warnings"])


def test_accelerator_count_that_differs_from_the_catalog_fails(monkeypatch):
    def described(args):
        out = fakes._ec2_instance_type(args)
        if args.get("instanceType") == "g6.xlarge":
            out["gpuses"] = [{**out["gpuses"][0], "count": 4}]
        return out

    monkeypatch.setitem(fakes.INVOKES, INSTANCE_TYPE, described)
    assert refused_by_preflight("aws", p5_beside_l4).startswith(
        "aicp:gpuPools[1]: g6.xlarge (pool l4) carries 4 GPUs in us-west-2, the accelerator "
        "catalog says 1")
