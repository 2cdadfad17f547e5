"""A probe reads as its named cases and stops one way, by raising; its waits come from
settings (``Timing``), never from module globals a test patches."""

from __future__ import annotations

import pytest

from aicp.verify.probe import Context, Fail, Probe, ProbeError, Settings, Skip, Timing
from aicp.verify.result import Verdict
from tests.verify.conftest import FakeCluster


class _Waits(Probe):
    id = "waits"
    category = "test"
    timeouts = {"pod_timeout": 300.0, "poll": 2.0, "over_quota_wait": 20.0,
                "grace": 10.0}

    def __init__(self, stop: Exception | None = None):
        self.stop = stop

    def cases(self, ctx: Context) -> str:
        ctx.check("the first case held", True)
        if self.stop is not None:
            raise self.stop
        return f"every case held within {ctx.timeout('pod_timeout'):g}s"


def _run(probe: Probe, timing: Timing = Timing()):
    settings = Settings("t1", "1.35", timing=timing)
    ctx = Context(probe.id, settings, FakeCluster(), deadline=float("inf"))
    return probe.run(ctx)


def test_cases_that_all_hold_pass_with_the_reason_they_return():
    result = _run(_Waits())
    assert (result.verdict, result.reason) == (Verdict.PASS, "every case held within 300s")
    assert [c.name for c in result.evidence.checks] == ["the first case held"]


@pytest.mark.parametrize("stop, verdict, partial", [
    (Fail("a pod saw /dev/nvidia0"), Verdict.FAIL, False),
    (Fail("scaled up, never down", partial=True), Verdict.FAIL, True),
    (Skip("no GPU sharing configured"), Verdict.SKIP, False),
])
def test_a_case_stops_the_probe_by_raising_and_keeps_the_evidence(stop, verdict, partial):
    result = _run(_Waits(stop))
    assert (result.verdict, result.reason, result.partial) == (verdict, str(stop), partial)
    assert [c.name for c in result.evidence.checks] == ["the first case held"]


def test_an_environment_problem_is_left_to_the_runner_as_probe_error():
    with pytest.raises(ProbeError, match="no GPU node"):
        _run(_Waits(ProbeError("no GPU node is schedulable")))


def test_waits_are_as_declared_unless_the_settings_replace_them():
    probe = _Waits()
    declared = Settings("t1", "1.35")
    assert [_Waits.timeout(declared, n) for n in ("pod_timeout", "poll", "grace")] == [
        300.0, 2.0, 10.0]
    fast = Settings("t1", "1.35", timing=Timing(
        timeout=5.0, poll=0.05, overrides={"over_quota_wait": 1.0, "waits.grace": 0.5,
                                           "other_probe.grace": 99.0}))
    assert [probe.timeout(fast, n) for n in ("pod_timeout", "poll", "over_quota_wait",
                                             "grace")] == [5.0, 0.05, 1.0, 0.5]


def test_a_log_line_after_a_step_does_not_carry_the_ended_steps_name():
    # Lines written between steps once carried the last step's name (#27, "Also").
    ctx = Context("p", Settings("t1", "1.35"), FakeCluster(), deadline=float("inf"))
    with ctx.step("create pod"):
        ctx.log("creating")
        with ctx.step("wait"):
            ctx.log("waiting")
        ctx.log("created")
    ctx.log("checking")
    tags = [line.split("] ")[0].split(" [")[1] for line in ctx.evidence.log]
    assert tags == ["create pod", "wait", "create pod", "after create pod"]
