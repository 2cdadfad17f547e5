"""Verdicts from measurements: fractions of published figures, stragglers, the run's verdict."""

from __future__ import annotations

import pytest

from aicp.verify.performance import judge
from aicp.verify.result import Verdict


def test_a_measurement_is_judged_as_a_fraction_of_its_published_figure():
    ok = judge.against("gpu", "p", "n1", "0", "bf16_tflops", 700.0, 989.5, 0.6, "TFLOP/s",
                       "src")
    assert (ok.verdict, ok.fraction, ok.expected, ok.source) == (Verdict.PASS, 0.707, 989.5,
                                                                 "src")
    low = judge.against("gpu", "p", "n1", "0", "bf16_tflops", 500.0, 989.5, 0.6, "TFLOP/s",
                        "src")
    assert low.verdict is Verdict.FAIL
    assert "51% of the published 989.5 TFLOP/s, below the 60% floor" in low.reason


def test_no_published_figure_is_skip_and_no_measurement_is_error():
    assert judge.against("gpu", "p", "n", "0", "bf16_tflops", 70.0, None, 0.6, "TFLOP/s",
                         "").verdict is Verdict.SKIP
    assert judge.against("gpu", "p", "n", "0", "fp8_tflops", None, 1979.0, 0.5, "TFLOP/s",
                         "").verdict is Verdict.ERROR


def test_a_node_below_the_pool_median_by_more_than_the_share_is_named_with_numbers():
    found = judge.stragglers("h100", "bf16_tflops",
                             {"a": 700.0, "b": 705.0, "c": 690.0, "d": 500.0}, 0.1, "TFLOP/s")
    slow = [f for f in found if f.verdict is Verdict.FAIL]
    assert [f.node for f in slow] == ["d"]
    assert slow[0].reason == ("straggler: 500.0 TFLOP/s is 28% below the pool median "
                              "695.0 TFLOP/s (allowed 10%)")


def test_one_node_has_no_median():
    (only,) = judge.stragglers("p", "bf16_tflops", {"a": 1.0}, 0.1, "TFLOP/s")
    assert only.verdict is Verdict.SKIP


def test_the_run_fails_on_any_failure_and_never_passes_on_nothing():
    passed = judge.Finding("gpu", "p", "n", "0", "m", Verdict.PASS, "ok")
    err = judge.Finding("node", "p", "n", "", "m", Verdict.ERROR, "no output")
    fail = judge.Finding("pool", "p", "", "", "fabric transport", Verdict.FAIL, "sockets")
    assert judge.overall([passed, err, fail])[0] is Verdict.FAIL
    assert judge.overall([passed, err])[0] is Verdict.ERROR
    assert judge.overall([passed])[0] is Verdict.PASS
    assert judge.overall([])[0] is Verdict.SKIP


def test_pool_overrides_win_over_file_defaults_and_catalog_defaults():
    limits = judge.thresholds({"bf16": 0.5}, {"h100": {"bf16": 0.7}}, "h100")
    assert limits["bf16"] == 0.7 and limits["fp8"] == 0.5
    assert judge.thresholds({"bf16": 0.5}, {"h100": {"bf16": 0.7}}, "l4")["bf16"] == 0.5


@pytest.mark.parametrize(("values", "message"), [
    ({"bf17": 0.5}, "x.bf17: unknown threshold; use one of bf16"),
    ({"bf16": 60}, "x.bf16: 60 is not a fraction"),
    ({"bf16": "high"}, "x.bf16: 'high' is not a fraction"),
])
def test_bad_overrides_name_the_key_and_the_fix(values, message):
    with pytest.raises(judge.ThresholdError, match="^" + message.replace(".", r"\.")):
        judge.check_fractions("x", values)


def test_the_performance_images_follow_the_registry_mirror():
    from aicp.verify.performance import session

    plan = session.check(1, None, None, "mirror.local:5000/hub")
    assert plan.images["pytorch"] == (  # the digest kept: the mirror serves the same bytes
        "mirror.local:5000/hub/nvidia/pytorch:25.06-py3"
        "@sha256:025d9b102b5436d4af8af58f12c6a46b7e5d16f19543b1d2cc4446bf2650b4f1")
    assert plan.images["dcgm"].startswith("mirror.local:5000/hub/nvidia/cloud-native/dcgm:")
    assert set(plan.images) == {"dcgm", "pytorch", "nccl-efa", "tcpxo-daemon", "tcpx-daemon"}
    assert plan.images["tcpxo-daemon"] == (
        "mirror.local:5000/hub/gce-ai-infra/gpudirect-tcpxo/tcpgpudmarxd-dev:v1.0.21")
