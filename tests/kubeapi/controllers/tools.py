"""The GPU tools ``aicp verify --performance`` runs, played back by the emulated kubelet.

What each pod's command prints comes from real captures (``tests/verify/performance/
fixtures``, sources in its README) wherever one exists:

- ``dcgmi diag -r N -j``: DCGM's own capture of a passing 8-GPU run; a node named in
  ``Hardware.failed_diag`` prints the capture with GPU 3's test failed.
- ``nvidia-smi -q -d PERFORMANCE``: an H100 node's capture (idle, no slowdown); a node in
  ``Hardware.throttled`` prints the capture of a GPU held by a hardware power brake.
- the fabric launcher: the log of a two-node p4d.24xlarge ``all_reduce_perf`` over EFA
  (aws-ofi-nccl's "Using network AWS Libfabric" lines and the table); with
  ``Hardware.socket`` NCCL's "Using network Socket" lines of a run without a fabric plugin
  and a RoCE run's table instead.

aicp's bench prints its own ``AICP-BENCH`` lines (no upstream tool prints them), and a
node's all-reduce table is nccl-tests' layout (the captures' columns) filled with
``Hardware``'s figures: those numbers are the world's, stated in ``Hardware``, never read
from the code under test. ``Hardware.slow`` scales one node's figures (a straggler).

``install(kube, hardware)`` sets the world's hardware, keeps the launcher and its SSH
workers running (a real launcher runs until ``mpirun`` ends, a worker's ``sshd`` until it
is deleted), and adds ``FabricRuns``: once every worker a launcher waits for is Running,
the launcher prints the fabric output and ends. Without ``install``, the kubelet still
plays the single-node tools back with the default ``Hardware`` (``COMMAND_LOGS``, hooked
by one import in ``kubelet.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .base import Controller
from .kubelet import COMMAND_LOGS, allocated_gpus, argv, kubelet

FIXTURES = Path(__file__).resolve().parents[2] / "verify" / "performance" / "fixtures"
ROLE = "aicp.dev/performance-role"
# A public key's shape (``ssh-keygen -t ed25519`` prints ``ssh-ed25519 <base64> <comment>``);
# the emulated sshd never checks it.
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatedLauncherKeyForAicpPerfRun root@launcher"


@dataclass
class Hardware:
    """What the emulated nodes deliver (per GPU, and one node's all-reduce), and faults.

    The defaults are a healthy p4d.24xlarge A100-SXM4-40GB node as the world states it.
    """

    bf16_tflops: float = 280.0
    memory_gbps: float = 1400.0
    node_busbw: float = 230.0
    slow: dict[str, float] = field(default_factory=dict)  # node -> factor
    failed_diag: set[str] = field(default_factory=set)
    throttled: set[str] = field(default_factory=set)
    socket: bool = False


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def hardware(kube) -> Hardware:
    return kube.__dict__.get("performance_hardware") or Hardware()


def _script(words: list[str]) -> str:
    return " ".join(words)


def _node(pod: dict) -> str:
    return pod["spec"].get("nodeName") or ""


def diag_output(pod: dict, container: str, kube) -> str:
    hw, node = hardware(kube), _node(pod)
    diag = fixture("dcgmi-diag-r1-8gpu-gpu3-fail.json" if node in hw.failed_diag
                   else "dcgmi-diag-r1-8gpu-pass.txt")
    return "=== AICP dcgmi ===\n" + diag + "=== AICP clocks ===\n" + _clocks(hw, node)


def _clocks(hw: Hardware, node: str) -> str:
    return fixture("nvidia-smi-q-clocks-throttle-v100-power-brake.txt" if node in hw.throttled
                   else "nvidia-smi-q-performance-h100.txt")


def _table(busbw: float) -> str:
    """nccl-tests' table (the captures' 12-column layout) peaking at ``busbw``."""
    lines = ["#                                                     out-of-place"
             "                       in-place",
             "#       size         count    type   redop     time   algbw   busbw  error"
             "     time   algbw   busbw  error"]
    for size, share in ((1 << 30, 0.93), (1 << 31, 0.98), (1 << 32, 1.0)):
        bw = busbw * share
        lines.append(f"{size:>12}  {size // 4:>12}   float     sum   {1000:>6}  "
                     f"{bw / 1.75:6.2f}  {bw:6.2f}  5e-07   {1000:>6}  {bw / 1.75:6.2f}  "
                     f"{bw * 0.99:6.2f}  5e-07")
    lines.append(f"# Avg bus bandwidth    : {busbw * 0.97:.4f}")
    return "\n".join(lines) + "\n"


def bench_output(pod: dict, container: str, kube) -> str:
    hw, node = hardware(kube), _node(pod)
    factor = hw.slow.get(node, 1.0)
    gpus = allocated_gpus(kube, pod, container)
    out = ["=== AICP bench ==="]
    for i, _ in enumerate(gpus):
        out.append(f"AICP-BENCH gpu={i} bf16_tflops={hw.bf16_tflops * factor:.1f}")
        out.append(f"AICP-BENCH gpu={i} memory_gbps={hw.memory_gbps * factor:.1f}")
    text = "\n".join(out) + "\n=== AICP clocks ===\n" + _clocks(hw, node)
    if len(gpus) > 1:
        text += "=== AICP nccl ===\n" + _table(hw.node_busbw * factor)
    return text


def launcher_output(pod: dict, container: str, kube) -> str:
    return f"AICP-PUBKEY {PUBKEY}\n"


def fabric_output(kube) -> str:
    if hardware(kube).socket:
        return ("=== AICP nccl ===\n" + fixture("nccl-socket-fallback-info.txt")
                + fixture("nccl-tests-allreduce-h100-2node-rows.txt"))
    return "=== AICP nccl ===\n" + fixture("nccl-tests-allreduce-p4d-2node-efa.txt")


def _is(kind: str):
    return lambda words: kind in _script(words)


COMMAND_LOGS.extend([
    (_is("dcgmi diag"), diag_output),
    (_is("BENCH_PY"), bench_output),
    (_is("AICP-PUBKEY"), launcher_output),
    (_is("sshd -De"), lambda pod, container, kube: ""),
])


def _held(pod: dict) -> bool:
    """A launcher waiting for its workers, or a worker's sshd: neither ends by itself."""
    words = _script(argv(pod, pod["spec"]["containers"][0]["name"]))
    return "AICP-PUBKEY" in words or "sshd -De" in words


class FabricRuns(Controller):
    """Ends a launcher once every worker its script names is Running, with the fabric log."""

    name = "performance-fabric"
    watches = ("pods",)

    def sync(self, kube) -> None:
        for pod in kube.view("pods"):
            status = pod.get("status") or {}
            if status.get("phase") != "Running" or "AICP-PUBKEY" not in _script(
                    argv(pod, pod["spec"]["containers"][0]["name"])):
                continue
            meta = pod["metadata"]
            script = _script(argv(pod, pod["spec"]["containers"][0]["name"]))
            m = re.search(r"for h in ([^;]+); do", script)
            hosts = m.group(1).split() if m else []
            running = {p["metadata"]["name"] for p in kube.view("pods", meta["namespace"])
                       if (p.get("status") or {}).get("phase") == "Running"}
            if hosts and all(h.split(".", 1)[0] in running for h in hosts):
                key = (meta["namespace"], meta["name"], "main")
                kube.logs[key] = kube.logs.get(key, "") + fabric_output(kube)
                kubelet(kube).finish(kube, meta["namespace"], meta["name"], 0)


def install(kube, hw: Hardware | None = None) -> FabricRuns:
    """The world's hardware, held launchers and workers, and the fabric runs (module doc)."""
    kube.__dict__["performance_hardware"] = hw or Hardware()
    let = kubelet(kube)
    ends = let.completes
    let.completes = lambda pod: not _held(pod) and ends(pod)
    runs = FabricRuns()
    kube.add(runs)
    return runs
