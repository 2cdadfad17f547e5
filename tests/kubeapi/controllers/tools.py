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
- on a GKE GPUDirect world (``Hardware.gpudirect``, the nodes' fabric kind) NCCL loads the
  GPUDirect plugin only when every worker carries what upstream's workload manifests give a
  pod (``GPUDIRECT_NEEDS``); then the launcher prints that plugin's captured INFO lines
  (TCPX: a two-node A3 High run's "Using network GPUDirectTCPX_v7"; TCPXO: a two-node A3
  Mega run's "Using network FasTrak"; RDMA: Google's "Using network gIB") and a table at
  ``Hardware.fabric_busbw``; otherwise the sockets fallback, as NCCL does when its net
  plugin cannot start.

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
    gpudirect: str = ""  # the nodes' GKE GPUDirect kind, e.g. "gpudirect-tcpxo"
    # A GPUDirect world's two-node bus bandwidth: the 2 GB row of the TCPXO capture's table
    # (elideng-sg/hypercomputer-internode-deepdive assets/lab-22/tcpxo_allreduce_16gpu.txt).
    fabric_busbw: float = 317.84


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


def _hostpaths(pod: dict, container: dict) -> set[str]:
    paths = {v["name"]: v["hostPath"]["path"] for v in pod["spec"].get("volumes") or []
             if "hostPath" in v}
    return {paths[m["name"]] for m in container.get("volumeMounts") or []
            if m["name"] in paths}


def _container(pod: dict, name: str) -> dict:
    return next((c for c in pod["spec"]["containers"] if c["name"] == name), {})


def _tcpxo_missing(pod: dict, launcher: str) -> list[str]:
    """What a TCPXO worker lacks (container-engine-accelerators gpudirect-tcpxo/
    nccl-test-latest.yaml and README "NCCL configs"; aicr docs/integrator/
    gke-tcpxo-networking.md: RxDM reports 0 GPUs without /sys as /hostsysfs)."""
    notes = pod["metadata"].get("annotations") or {}
    daemon, main = _container(pod, "tcpxo-daemon"), _container(pod, "main")
    checks = {
        "the GPU NIC networks": "networking.gke.io/interfaces" in notes,
        "the tcpxo-daemon sidecar": "tcpgpudmarxd" in daemon.get("image", ""),
        "the sidecar's devices": "/dev/dmabuf_import_helper" in notes.get(
            "devices.gke.io/container.tcpxo-daemon", ""),
        "the sidecar's NET_ADMIN": "NET_ADMIN" in str(daemon.get("securityContext")),
        "the sidecar's host /sys": "/sys" in _hostpaths(pod, daemon),
        "the plugin's libraries": "/home/kubernetes/bin/nvidia" in _hostpaths(pod, main),
        "the aperture devices": "/dev/aperture_devices" in _hostpaths(pod, main),
        "the plugin's profile": "nccl-env-profile.sh" in _script(argv(pod, "main")),
        "the LLCM directory": "NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY" in launcher,
    }
    return [what for what, ok in checks.items() if not ok]


def _rdma_missing(pod: dict, launcher: str) -> list[str]:
    """What a gIB worker lacks (container-engine-accelerators gpudirect-rdma/nccl-test.yaml;
    Google's "Enable NCCL/gIB": set_nccl_env.sh sourced, /usr/local/gib/lib64 on the
    library path)."""
    notes = pod["metadata"].get("annotations") or {}
    main = _container(pod, "main")
    checks = {
        "the RDMA NIC networks": "networking.gke.io/interfaces" in notes,
        "the gIB plugin": "/home/kubernetes/bin/gib" in _hostpaths(pod, main),
        "the gIB environment": "set_nccl_env.sh" in _script(argv(pod, "main")),
        "the gIB library path": "/usr/local/gib/lib64" in launcher,
    }
    return [what for what, ok in checks.items() if not ok]


def _tcpx_missing(pod: dict, launcher: str) -> list[str]:
    """What a TCPX worker lacks (container-engine-accelerators gpudirect-tcpx/
    nccl-test-latest.yaml: the tcpx-daemon serves NCCL through the Unix sockets under the
    host's /run/tcpx, mounted in both containers; nccl-config.yaml run-nccl.sh: the plugin's
    NICs and control device passed by mpirun, no profile script)."""
    notes = pod["metadata"].get("annotations") or {}
    daemon, main = _container(pod, "tcpx-daemon"), _container(pod, "main")
    checks = {
        "the GPU NIC networks": "networking.gke.io/interfaces" in notes,
        "the tcpx-daemon sidecar": "tcpgpudmarxd" in daemon.get("image", ""),
        "the sidecar's devices": "/dev/nvidiactl" in notes.get(
            "devices.gke.io/container.tcpx-daemon", ""),
        "the sidecar's NET_ADMIN": "NET_ADMIN" in str(daemon.get("securityContext")),
        "the shared /run/tcpx": "/run/tcpx" in _hostpaths(pod, daemon) & _hostpaths(pod, main),
        "the plugin's libraries": any(p.startswith("/home/kubernetes/bin/nvidia")
                                      for p in _hostpaths(pod, main)),
        "the plugin's NICs": "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2,eth3,eth4" in launcher,
        "the control device": "NCCL_GPUDIRECTTCPX_CTRL_DEV=eth0" in launcher,
    }
    return [what for what, ok in checks.items() if not ok]


GPUDIRECT_NEEDS = {"gpudirect-tcpx": (_tcpx_missing, "nccl-tcpx-2node-info.txt"),
                   "gpudirect-tcpxo": (_tcpxo_missing, "nccl-tcpxo-fastrak-2node-info.txt"),
                   "gpudirect-rdma": (_rdma_missing, "nccl-gib-info.txt")}


def _socket_fallback() -> str:
    return ("=== AICP nccl ===\n" + fixture("nccl-socket-fallback-info.txt")
            + fixture("nccl-tests-allreduce-h100-2node-rows.txt"))


def fabric_output(kube, launcher: dict | None = None, workers: list[dict] = ()) -> str:
    hw = hardware(kube)
    if hw.socket:
        return _socket_fallback()
    if hw.gpudirect:
        missing, info = GPUDIRECT_NEEDS[hw.gpudirect]
        script = _script(argv(launcher, "main")) if launcher else ""
        if not workers or any(missing(w, script) for w in workers):
            return _socket_fallback()
        return "=== AICP nccl ===\n" + fixture(info) + _table(hw.fabric_busbw)
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
            running = {p["metadata"]["name"]: p for p in kube.view("pods", meta["namespace"])
                       if (p.get("status") or {}).get("phase") == "Running"}
            if hosts and all(h.split(".", 1)[0] in running for h in hosts):
                key = (meta["namespace"], meta["name"], "main")
                workers = [running[h.split(".", 1)[0]] for h in hosts]
                kube.logs[key] = kube.logs.get(key, "") + fabric_output(kube, pod, workers)
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
