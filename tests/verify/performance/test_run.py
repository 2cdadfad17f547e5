"""The performance run on the emulated cluster: three p4d.24xlarge A100 nodes in one pool.

The kubelet plays the tools back (tests/kubeapi/controllers/tools.py): DCGM's, nvidia-smi's
and nccl-tests' real captures, and the world's stated hardware for aicp's own bench. Each
test says what it changes in that world: a straggler, a fabric fallen back to sockets, a
failed diagnostic, a throttled GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aicp.verify.kube import connect
from aicp.verify.performance import catalog
from aicp.verify.performance.run import Plan, execute
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.result import Verdict
from tests.kubeapi import objects as o
from tests.kubeapi.controllers import tools
from tests.kubeapi.scenarios import standard_controllers
from tests.shared import require_shared

NODES = ("a100-0", "a100-1", "a100-2")
EFA = "vpc.amazonaws.com/efa"
FAST = Timing(timeout=20.0, poll=0.05)


def world(kubeapi_factory, hw: tools.Hardware | None = None, efa: int = 0,
          extended: dict[str, str] | None = None):
    """Three p4d.24xlarge nodes (8 A100-SXM4-40GB each; ``efa`` EFA devices advertised as
    the EFA device plugin does, ``vpc.amazonaws.com/efa``; ``extended`` other fabric
    resources) and a CPU node."""
    kube = kubeapi_factory("empty")
    standard_controllers(kube, dra=False, kueue=False)
    nodes = [o.gpu_node(n, product="NVIDIA-A100-SXM4-40GB", instance_type="p4d.24xlarge",
                        accelerator="a100", pool="a100", ip=f"10.0.1.{i + 10}")
             for i, n in enumerate(NODES)]
    for node in nodes if efa else ():
        for key in ("allocatable", "capacity"):
            node["status"][key][EFA] = str(efa)
    for node in nodes:
        for key in ("allocatable", "capacity"):
            node["status"][key].update(extended or {})
    kube.seed(nodes + [o.node("system-0", labels={})])
    tools.install(kube, hw)
    return kube


def measure(kube, tmp_path, plan: Plan | None = None, expectations: dict | None = None):
    client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"), None)
    settings = Settings("perf", "", {"dcgm": "dcgm:test", "pytorch": "pytorch:test",
                                     "nccl-efa": "nccl-efa:test"},
                        expectations=expectations or {}, timing=FAST)
    lines: list[str] = []
    outcome = execute(client, settings, plan or Plan(images=settings.images), log=lines.append)
    return outcome


def by(outcome, metric: str, **where) -> list:
    return [f for f in outcome.findings if f.metric == metric
            and all(getattr(f, k) == v for k, v in where.items())]


def test_a_healthy_pool_passes_per_gpu_per_node_and_per_pool_against_published_figures(
        kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory)
    outcome = measure(kube, tmp_path)
    assert outcome.verdict is Verdict.PASS, outcome.reason
    a100 = catalog.GPUS["a100-sxm-40gb"]
    bf16 = by(outcome, "bf16_tflops", node="a100-1", gpu="7")[0]
    assert (bf16.measured, bf16.expected, bf16.fraction, bf16.threshold) == (
        280.0, 312.0, 0.897, 0.6)
    assert bf16.source == a100.sources["bf16_tflops"]
    assert len(by(outcome, "bf16_tflops")) == 24 and len(by(outcome, "memory_gbps")) == 24
    node = by(outcome, "node_busbw", node="a100-0")[0]
    assert (node.scope, node.measured, node.expected) == ("node", 230.0, a100.link_gbps)
    diag = by(outcome, "dcgm diag -r 1", node="a100-2", gpu="3")[0]
    assert diag.verdict is Verdict.PASS and "DCGM 3.1.0" in diag.reason
    fabric = by(outcome, "fabric_busbw")[0]
    p4d = catalog.FABRICS["p4d.24xlarge"]
    assert (fabric.scope, fabric.pool, fabric.measured, fabric.expected, fabric.fraction) == (
        "pool", "a100", 43.81, p4d.gbps, 0.876)
    assert fabric.source == f"{p4d.interfaces}: {p4d.source}"
    (transport,) = by(outcome, "fabric transport")
    assert (transport.verdict, transport.measured) == (Verdict.PASS, "AWS Libfabric")
    assert outcome.pools[0]["nodes"] == list(NODES)
    assert outcome.cleanup == {"leftovers": [], "errors": []}
    assert kube.list("namespaces", labels=RUN_LABEL) == []


def test_a_slow_node_is_named_as_a_straggler_with_its_numbers(kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory, tools.Hardware(slow={"a100-2": 0.8}))
    outcome = measure(kube, tmp_path)
    assert outcome.verdict is Verdict.FAIL
    slow = [f for f in outcome.findings if f.metric.startswith("straggler:")
            and f.verdict is Verdict.FAIL]
    assert {f.node for f in slow} == {"a100-2"}
    (bf16,) = [f for f in slow if f.metric == "straggler:bf16_tflops"]
    assert bf16.reason == ("straggler: 224.0 TFLOP/s is 20% below the pool median "
                           "280.0 TFLOP/s (allowed 10%)")
    # 224 TFLOP/s is still 72% of the datasheet: only the pool comparison finds it
    assert all(f.verdict is Verdict.PASS for f in by(outcome, "bf16_tflops", node="a100-2"))
    assert "a100-2" in outcome.reason


def test_a_fabric_fallen_back_to_sockets_fails_the_pool(kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory, tools.Hardware(socket=True))
    outcome = measure(kube, tmp_path)
    assert outcome.verdict is Verdict.FAIL
    (transport,) = by(outcome, "fabric transport")
    assert transport.verdict is Verdict.FAIL and transport.measured == "Socket"
    assert transport.reason.startswith(
        "NCCL fell back to sockets (NET/Socket) on p4d.24xlarge, whose fabric is 4 EFA "
        "interfaces, 400 Gbps: expected AWS Libfabric or OFI")


def test_a_failed_diagnostic_names_the_node_the_gpu_and_dcgms_reason(kubeapi_factory,
                                                                      tmp_path):
    kube = world(kubeapi_factory, tools.Hardware(failed_diag={"a100-1"}))
    outcome = measure(kube, tmp_path)
    assert outcome.verdict is Verdict.FAIL
    failed = [f for f in outcome.findings if f.verdict is Verdict.FAIL]
    assert [(f.node, f.gpu, f.reason) for f in failed] == [(
        "a100-1", "3",
        "Custom/software: FAIL (Detected 2 volatile double-bit ECC error(s) in GPU 3.)")]


def test_a_gpu_held_by_a_power_brake_fails_its_clock_check(kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory, tools.Hardware(throttled={"a100-0"}))
    outcome = measure(kube, tmp_path)
    braked = [f for f in by(outcome, "clock events during load") if f.verdict is Verdict.FAIL]
    assert {f.node for f in braked} == {"a100-0"}
    assert braked[0].reason == "slowed down: HW Slowdown, HW Power Brake Slowdown"


def test_pool_thresholds_override_the_defaults(kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory)
    plan = Plan(overrides={"a100": {"fabricBusBw": 0.95}},
                images={"dcgm": "d", "pytorch": "p", "nccl-efa": "e"})
    outcome = measure(kube, tmp_path, plan)
    fabric = by(outcome, "fabric_busbw")[0]
    assert (fabric.verdict, fabric.threshold) == (Verdict.FAIL, 0.95)


def test_pods_ask_for_gpus_and_the_pools_fabric_through_the_allocator(kubeapi_factory,
                                                                     tmp_path):
    """The stack's gpuPools output names the pool's fabric resources: the fabric's workers
    ask for them beside all the node's GPUs; single-node pods only for the GPUs."""
    kube = world(kubeapi_factory, efa=4)
    created: dict[str, dict] = {}
    kube.on("pods", lambda event: created.setdefault(event.obj["metadata"]["name"],
                                                     event.obj))
    pool = {"name": "a100", "labels": {"aicp.dev/gpu-pool": "a100"}, "allocator":
            "device-plugin", "machineType": "p4d.24xlarge",
            "fabric": {"kind": "efa", "resources": {EFA: 4},
                       "podAnnotations": {"example.org/nics": "4"}}}
    outcome = measure(kube, tmp_path, expectations={"gpuPools": [pool]})
    assert outcome.verdict is Verdict.PASS, outcome.reason
    resources = {n: p["spec"]["containers"][0].get("resources") for n, p in created.items()}
    assert resources["bench-n0"] == {"limits": {"nvidia.com/gpu": "8"}}
    assert resources["fabric-a100-n2"] == {"limits": {"nvidia.com/gpu": "8", EFA: "4"}}
    assert created["fabric-a100-n2"]["metadata"]["annotations"] == {"example.org/nics": "4"}
    assert "annotations" not in created["bench-n2"]["metadata"]
    assert not resources["fabric-a100-launcher"]  # mpirun only: no GPU
    images = {n: p["spec"]["containers"][0]["image"] for n, p in created.items()}
    assert (images["diag-n0"], images["bench-n0"], images["fabric-a100-n0"]) == (
        "dcgm:test", "pytorch:test", "nccl-efa:test")  # EFA pools run the EFA image
    assert outcome.pools[0]["fabricResources"] == {EFA: "4"}


def test_without_the_flag_nothing_of_the_performance_run_is_imported():
    code = ("import sys, aicp.verify.cli, aicp.verify.session; "
            "print([m for m in sys.modules if m.startswith('aicp.verify.performance')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def invoke(args: list[str]):
    from typer.testing import CliRunner

    from aicp.cli.main import app

    return CliRunner().invoke(app, args)


def test_the_command_runs_the_probes_then_the_performance_run_and_keeps_their_exit_code(
        kubeapi_factory, tmp_path):
    """``aicp verify --performance``: the CNCF run as always (here one read-only probe, which
    finds no DCGM exporter in this world: ERROR, exit 1), then the performance run with its
    own verdict, report and JSON; the exit code stays the CNCF run's."""
    kube = world(kubeapi_factory, tools.Hardware(socket=True))
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    template = require_shared("conformance", "AIConformance-1.35.yaml")
    out = tmp_path / "out"
    result = invoke(["verify", "--kubeconfig", str(kubeconfig), "--checklist-template",
                     str(template), "--only", "accelerator_metrics", "--read-only",
                     "--output", "json", "--output-dir", str(out), "--run-id", "perfcli",
                     "--performance"])
    cncf = json.loads((out / "results" / "aicp-results.json").read_text())
    assert [(r["id"], r["verdict"]) for r in cncf["requirements"] if r["verdict"] != "NOT_RUN"
            ] == [("accelerator_metrics", "ERROR")]
    assert result.exit_code == cncf["exitCode"] == 1, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("performance: FAIL: ") and "fell back to sockets" in lines[-1]
    assert any(line.startswith("  FAIL  pool a100 fabric transport:") for line in lines)
    doc = json.loads((out / "performance" / "performance.json").read_text())
    assert doc["verdict"] == "FAIL" and doc["pools"][0]["machineType"] == "p4d.24xlarge"
    assert {f["scope"] for f in doc["findings"]} == {"gpu", "node", "pool"}
    page = (out / "performance" / "README.md").read_text()
    assert "| FAIL | a100 |  |  | fabric transport | Socket |" in page
    assert (out / "performance" / "fabric-a100-launcher-main.log").is_file()
    assert doc["imageIDs"]["bench-n0"].endswith("@sha256:" + "0" * 64)  # what the kubelet ran
    assert "## Images the kubelets ran (by digest)" in page
    assert kube.list("namespaces", labels=RUN_LABEL) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--performance-diag", "5"], "error: --performance-diag 5: use a dcgmi diag level, "
                                  "1, 2, 3, 4"),
    (["--performance-thresholds", "floors.yaml"],
     "error: floors.yaml: pools.a100.bf17: unknown threshold; use one of bf16"),
    (["--registry-mirror", "not a host"], "error: --registry-mirror 'not a host' is not"),
])
def test_a_bad_performance_option_is_one_line_and_exit_2_before_any_probe(
        tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "floors.yaml").write_text("pools:\n  a100:\n    bf17: 0.5\n")
    # No cluster at this address: the options are refused before anything connects.
    result = invoke(["verify", "--kubeconfig", "missing.yaml", "--performance", *args])
    assert result.exit_code == 2
    assert result.output.startswith(message) and result.output.count("\n") == 1


def test_a_dra_pool_gets_all_its_gpus_through_a_resource_claim(kubeapi_factory, tmp_path):
    """Nodes whose GPUs only the NVIDIA DRA driver publishes (device plugin off): every
    pod asks for the node's eight devices with a ResourceClaimTemplate of the DeviceClass
    that selects them, and the tools see eight GPUs."""
    kube = kubeapi_factory("empty")
    standard_controllers(kube, dra=True, kueue=False)
    nodes = [o.gpu_node(n, product="NVIDIA-A100-SXM4-40GB", instance_type="p4d.24xlarge",
                        accelerator="a100", pool="a100", device_plugin=False,
                        ip=f"10.0.1.{i + 10}") for i, n in enumerate(NODES)]
    kube.seed(nodes + [o.resource_slice(n, product="NVIDIA A100-SXM4-40GB") for n in NODES]
              + [o.device_class()])
    tools.install(kube)
    templates: list[dict] = []
    kube.on("resourceclaimtemplates.resource.k8s.io",
            lambda event: templates.append(event.obj) if event.type == "ADDED" else None)
    outcome = measure(kube, tmp_path)
    assert outcome.verdict is Verdict.PASS, outcome.reason
    assert outcome.pools[0]["allocator"] == "dra"
    requests = {t["metadata"]["name"]: t["spec"]["spec"]["devices"]["requests"]
                for t in templates}
    assert requests["bench-n1-gpus"] == [{"name": "gpus", "exactly": {
        "deviceClassName": "gpu.nvidia.com", "allocationMode": "ExactCount", "count": 8}}]
    assert len(by(outcome, "bf16_tflops", node="a100-1")) == 8


def test_a_run_that_may_not_create_pods_is_error_naming_the_permission_and_cleans_up(
        kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory)
    kube.faults.forbid({"create"}, "pods", namespace="aicp-verify-perf-performance")
    outcome = measure(kube, tmp_path)
    assert outcome.verdict is Verdict.ERROR
    assert "create pods" in outcome.reason and "aicp-verify-perf-performance" in outcome.reason
    assert outcome.cleanup == {"leftovers": [], "errors": []}
    assert kube.list("namespaces", labels=RUN_LABEL) == []


def test_efa_workers_claim_the_fabric_and_its_huge_pages_as_the_stack_exports_them(
        kubeapi_factory, tmp_path):
    """An EKS DRA pool on EFA (components/fabric.py pool_fabric with allocator dra): each
    fabric worker claims every EFA device of its node through the EFA DRA driver's
    DeviceClass, beside its GPU claim, and asks for the huge pages EFA needs with the cpu
    request the API server demands beside them; an InfiniBand pool's workers add IPC_LOCK.
    Before, the run read only ``fabric.resources``, so EFA-through-DRA workers got no EFA."""
    from aicp.components.fabric import pool_fabric
    from tests.kubeapi.worlds_fabric import eks_efa_dra
    kube = kubeapi_factory("empty")
    standard_controllers(kube, dra=True, kueue=False)
    nodes = [o.gpu_node(n, product="NVIDIA-A100-SXM4-40GB", instance_type="p4d.24xlarge",
                        accelerator="a100", pool="a100", device_plugin=False,
                        ip=f"10.0.1.{i + 10}") for i, n in enumerate(NODES[:2])]
    fabric = pool_fabric("aws", "p4d.24xlarge", "a100", allocator="dra")
    assert fabric is not None and fabric["claims"]["count"] == 4
    # The EFA DRA driver's slices and DeviceClass on these two nodes, as the fabric world
    # publishes them (tests/kubeapi/worlds_fabric.py, from the EKS user guide).
    efa = [obj for obj in eks_efa_dra({
        "name": "a100", "labels": {"aicp.dev/gpu-allocator": "dra"}, "taints": [],
        "machineType": "p4d.24xlarge", "fabric": {"interfaces": 4}}).objects
        if obj.get("kind") in ("ResourceSlice", "DeviceClass")]
    kube.seed(nodes + [o.resource_slice(n, product="NVIDIA A100-SXM4-40GB")
                       for n in NODES[:2]] + [o.device_class()] + efa)
    tools.install(kube)
    created = {}
    kube.on("pods", lambda event: created.setdefault(event.obj["metadata"]["name"], event.obj))
    templates: dict[str, dict] = {}
    kube.on("resourceclaimtemplates.resource.k8s.io",
            lambda event: templates.setdefault(event.obj["metadata"]["name"], event.obj))
    pool = {"name": "a100", "labels": {"aicp.dev/gpu-pool": "a100"}, "allocator": "dra",
            "machineType": "p4d.24xlarge", "fabric": fabric}
    outcome = measure(kube, tmp_path, expectations={"gpuPools": [pool]})
    worker = created["fabric-a100-n1"]
    assert [c["name"] for c in worker["spec"]["resourceClaims"]] == ["gpus", "fabric"]
    main = worker["spec"]["containers"][0]
    assert main["resources"]["claims"] == [{"name": "gpus"}, {"name": "fabric"}]
    assert main["resources"]["limits"] == {"hugepages-2Mi": "5120Mi"}
    assert main["resources"]["requests"] == {"cpu": "1"}
    assert templates["fabric-a100-n1-fabric"]["spec"]["spec"]["devices"]["requests"] == [
        {"name": "fabric", "exactly": {"deviceClassName": "efa.networking.k8s.aws",
                                       "allocationMode": "ExactCount", "count": 4}}]
    assert "resourceClaims" not in created["bench-n1"]["spec"] or [
        c["name"] for c in created["bench-n1"]["spec"]["resourceClaims"]] == ["gpus"]
    assert outcome.pools[0]["fabricClaims"] == {"deviceClassName": "efa.networking.k8s.aws",
                                                "count": 4}
    assert by(outcome, "fabric_busbw"), outcome.reason


def test_infiniband_workers_get_ipc_lock_beside_the_hca(kubeapi_factory, tmp_path):
    """An AKS InfiniBand pool (components/fabric.py pool_fabric): the fabric workers ask for
    the RDMA shared device plugin's resource and add IPC_LOCK, as the stack exports."""
    from aicp.components.fabric import IB_RESOURCE, pool_fabric
    kube = world(kubeapi_factory, extended={IB_RESOURCE: "1"})
    created = {}
    kube.on("pods", lambda event: created.setdefault(event.obj["metadata"]["name"], event.obj))
    fabric = pool_fabric("azure", "Standard_ND96isr_H100_v5", "a100")
    assert fabric is not None and fabric["capabilities"] == ["IPC_LOCK"]
    pool = {"name": "a100", "labels": {"aicp.dev/gpu-pool": "a100"},
            "allocator": "device-plugin", "machineType": "p4d.24xlarge", "fabric": fabric}
    measure(kube, tmp_path, expectations={"gpuPools": [pool]})
    main = created["fabric-a100-n0"]["spec"]["containers"][0]
    assert main["resources"]["limits"] == {"nvidia.com/gpu": "8", IB_RESOURCE: "1"}
    assert main["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}
    assert "securityContext" not in created["bench-n0"]["spec"]["containers"][0]
