"""Preflight (issue 14): read-only lookups before the first resource, answered here from
test data the way ``aicp plan`` answers them from canned data (``aicp.cli.fakes``).

Each test changes one answer of the canned world and runs the real program under mocks.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from aicp.cli import fakes, offline
from aicp.cli.plan import stack_config
from aicp.stacks.program import main as program

REPO = Path(__file__).resolve().parents[2]
OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"
QUOTA = "aws:servicequotas/getServiceQuota:getServiceQuota"
INSTANCE_TYPE = "aws:ec2/getInstanceType:getInstanceType"
MACHINE_TYPES = "gcp:compute/getMachineTypes:getMachineTypes"


def plan(stack: str) -> offline.Plan:
    return offline.run(program, stack_config(REPO, stack), stack=stack)


def refused(stack: str) -> str:
    with pytest.raises(pulumi.RunError) as err:
        plan(stack)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def created(p: offline.Plan) -> list[str]:
    return [r.type for r in p.resources if r.custom and not r.type.startswith("pulumi:")]


def test_all_fine_every_pool_is_checked_and_nothing_is_warned():
    p = plan("aws")
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
    assert refused("aws") == (
        "aicp:gpuPools[0]: p5.48xlarge (pool h100) is not offered in us-west-2b (us-west-2); "
        "of the configured zones it is offered in us-west-2a")


def test_gce_machine_type_missing_in_a_zone_fails_the_same_way(monkeypatch):
    def machine_types(args):
        out = fakes._gce_machine_types(args)
        if args.get("zone") == "us-central1-c" and "a3-highgpu-8g" in args.get("filter", ""):
            out["machineTypes"] = []
        return out

    monkeypatch.setitem(fakes.INVOKES, MACHINE_TYPES, machine_types)
    assert refused("gcp") == (
        "aicp:gpuPools[0]: a3-highgpu-8g (pool h100) is not offered in us-central1-c "
        "(us-central1); of the configured zones it is offered in us-central1-a")


def test_quota_below_min_nodes_fails_before_any_resource(monkeypatch):
    # h100 minNodes 1 on p5.48xlarge: 192 vCPUs of "Running On-Demand P instances".
    def quota(args):
        out = fakes._service_quota(args)
        if args.get("quotaCode") == "L-417A185B":
            out["value"] = 0.0  # a new account
        return out

    monkeypatch.setitem(fakes.INVOKES, QUOTA, quota)
    message = refused("aws")
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
    report = plan("aws").outputs["preflight"]
    assert any("at maxNodes need 384 vCPUs" in w and "scale-up will stop short" in w
               for w in report["warnings"])


def test_accelerator_count_that_differs_from_the_catalog_fails(monkeypatch):
    def described(args):
        out = fakes._ec2_instance_type(args)
        if args.get("instanceType") == "g6.xlarge":
            out["gpuses"] = [{**out["gpuses"][0], "count": 4}]
        return out

    monkeypatch.setitem(fakes.INVOKES, INSTANCE_TYPE, described)
    assert refused("aws").startswith(
        "aicp:gpuPools[1]: g6.xlarge (pool l4) carries 4 GPUs in us-west-2, the accelerator "
        "catalog says 1")


def test_a_lookup_that_is_not_allowed_is_a_warning_and_the_plan_goes_on(monkeypatch):
    def denied(args):
        raise Exception("operation error Service Quotas: GetServiceQuota, AccessDeniedException: "
                        "User is not authorized to perform: servicequotas:GetServiceQuota")

    monkeypatch.setitem(fakes.INVOKES, QUOTA, denied)
    p = plan("aws")
    warnings = p.outputs["preflight"]["warnings"]
    assert len(warnings) == 2 and all("lookup not allowed" in w for w in warnings)
    assert "aws:eks/cluster:Cluster" in created(p)


def test_aicp_plan_says_its_preflight_answers_are_canned():
    from typer.testing import CliRunner

    from aicp.cli.main import app

    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--output", "json"])
    assert result.exit_code == 0, result.output
    note = [line for line in result.stderr.splitlines() if line.startswith("note: preflight")]
    assert note and "answered from canned data (cli/fakes.py), not by the cloud" in note[0]
