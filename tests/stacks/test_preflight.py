"""Preflight's shared machinery (stacks/preflight.py): a lookup the caller may not make is a
warning, and ``aicp plan`` says its answers are canned. Each target's own lookups are
tested beside it (tests/stacks/targets/test_<target>.py).
"""

from __future__ import annotations

from aicp.cli import fakes
from tests.stacks.targets.cases import created, planned

QUOTA = "aws:servicequotas/getServiceQuota:getServiceQuota"


def test_a_lookup_that_is_not_allowed_is_a_warning_and_the_plan_goes_on(monkeypatch):
    def denied(args):
        raise Exception("operation error Service Quotas: GetServiceQuota, AccessDeniedException: "
                        "User is not authorized to perform: servicequotas:GetServiceQuota")

    monkeypatch.setitem(fakes.INVOKES, QUOTA, denied)
    p = planned("aws")
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
