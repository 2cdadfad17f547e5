"""The parsers on what the upstream tools really print (fixtures/README.md names each source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicp.verify.performance import parse

FIXTURES = Path(__file__).parent / "fixtures"


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_a_two_node_efa_run_reads_its_largest_size_bus_bandwidth_through_mpiruns_tags():
    result = parse.nccl_table(text("nccl-tests-allreduce-p4d-2node-efa.txt"))
    assert len(result.rows) == 30  # 8 B to 4 GiB, doubling
    assert result.busbw == 43.81  # 4 GiB, out-of-place (in-place 43.72)
    assert result.avg_busbw == 11.2432


def test_the_newer_table_with_root_and_wrong_columns_reads_too():
    result = parse.nccl_table(text("nccl-tests-allreduce-h100-2node-rows.txt"))
    assert [r.size for r in result.rows][-1] == 33554432
    assert result.busbw == 41.52  # the in-place column is the better one there
    assert result.avg_busbw is None


def test_an_output_without_a_table_is_a_parse_error_not_zero_bandwidth():
    with pytest.raises(parse.ParseError, match="no nccl-tests result row"):
        parse.nccl_table(text("nccl-socket-fallback-info.txt"))


def test_the_transport_is_what_nccl_says_it_uses():
    assert parse.nccl_transport(text("nccl-tests-allreduce-p4d-2node-efa.txt")) == \
        "AWS Libfabric"
    assert parse.nccl_transport(text("nccl-socket-fallback-info.txt")) == "Socket"
    assert parse.nccl_transport(text("nccl-tests-allreduce-h100-2node-rows.txt")) is None


def test_a_net_prefix_alone_still_names_the_transport():
    line = "node:1:1 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/RoCE ; OOB eth0:10.0.0.1<0>"
    assert parse.nccl_transport(line) == "IB"


def test_a_passing_diagnostic_lists_every_gpu_and_no_failure():
    diag = parse.dcgm_diag(text("dcgmi-diag-r1-8gpu-pass.txt"))
    assert diag.version == "3.1.0"
    assert sorted(diag.per_gpu) == list(range(8))
    # nine deployment tests for every GPU, and the per-GPU software result
    assert len(diag.per_gpu[5]) == 10
    assert all(not diag.failures(g) for g in range(8))


def test_a_failed_diagnostic_names_the_gpu_the_test_and_dcgms_warning():
    diag = parse.dcgm_diag(text("dcgmi-diag-r1-8gpu-gpu3-fail.json"))
    assert diag.failures(3) == [
        "Custom/software: FAIL (Detected 2 volatile double-bit ECC error(s) in GPU 3.)"]
    assert diag.failures(2) == []


def test_a_diagnostic_that_printed_no_json_is_a_parse_error():
    with pytest.raises(parse.ParseError, match="no JSON"):
        parse.dcgm_diag("Error: unable to establish a connection to the host engine\n")


def test_clock_event_reasons_per_gpu_and_the_older_throttle_wording():
    idle = parse.clock_events(text("nvidia-smi-q-performance-h100.txt"))
    assert idle["00000000:18:00.0"]["Idle"] is True
    assert not any(idle["00000000:18:00.0"][r] for r in parse.SLOWDOWNS)
    braked = parse.clock_events(text("nvidia-smi-q-clocks-throttle-v100-power-brake.txt"))
    reasons = braked[parse.UNNAMED]
    assert [r for r in parse.SLOWDOWNS if reasons.get(r)] == [
        "HW Slowdown", "HW Power Brake Slowdown"]
    assert "Graphics" not in reasons  # the Clocks block after it is not a reason


def test_bench_lines_and_sections():
    log = ("=== AICP bench ===\nAICP-BENCH gpu=0 bf16_tflops=700.5\n"
           "AICP-BENCH gpu=0 fp8_tflops=1300.0\nAICP-BENCH gpu=1 memory_gbps=2900\n"
           "=== AICP nccl ===\nrest\n")
    assert parse.bench(parse.section(log, "bench")) == {
        0: {"bf16_tflops": "700.5", "fp8_tflops": "1300.0"}, 1: {"memory_gbps": "2900"}}
    assert parse.section(log, "nccl").strip() == "rest"
    assert parse.section(log, "clocks") == ""
