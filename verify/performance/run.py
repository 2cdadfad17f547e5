"""The performance run on a cluster: pods per node and per pool, their output, the verdicts.

Steps, each bounded (``TIMEOUTS``, replaced by tests through ``Settings.timing`` under the
id ``performance``), every object labelled with the run id and deleted at the end as the
probes' are (``verify.probe.CleanupStack``: reverse order, namespaces waited for):

1. Pools: the stack's ``gpuPools`` (labels, machine type, allocator, and what a pool exports
   about its fabric when the stack has it: ``fabric.resources``, the extended resources a
   pod asks for to get the NICs, and ``fabric.podAnnotations`` for GKE's multi-network
   NICs), else GPU nodes grouped by ``aicp.dev/gpu-pool`` or their instance type.
2. Diagnostics, one pod per node holding all its GPUs (DCGM image): ``dcgmi diag -r N -j``
   and ``nvidia-smi -q -d PERFORMANCE``.
3. Bench, one pod per node holding all its GPUs (PyTorch image, which ships nccl-tests'
   ``all_reduce_perf_mpi`` as NVIDIA/aicr's GKE runtime uses it): dense bf16 (fp16 before
   Ampere) and fp8 (compute capability 8.9+) matmuls and a device-to-device copy per GPU,
   the clock event reasons sampled during that load, then NCCL all-reduce over the node's
   GPUs with ``NCCL_DEBUG=INFO``.
4. Fabric, per pool of two or more nodes: a launcher pod makes an SSH key and prints its
   public half; the run puts it in a ConfigMap; one worker per node (all its GPUs and the
   pool's fabric resources, ``sshd``) mounts it; the launcher runs ``mpirun`` over SSH
   across the workers (as aicr's and the MPI Operator's launchers do) and prints
   nccl-tests' table and NCCL's transport lines. Workers of a GKE GPUDirect pool also get
   what upstream's workload manifests give a pod (``gpudirect``: the TCPX/TCPXO RxDM
   sidecar, the plugin's mounts and NCCL environment); without the pool's NIC networks
   (the stack's ``fabric.podAnnotations``) the step is ERROR, not a sockets verdict.
5. Verdicts (``judge``) and stragglers against each pool's median.

GPUs are requested through the node's allocator: ``nvidia.com/gpu`` limits on device-plugin
nodes, a ResourceClaimTemplate for all the node's GPUs on DRA nodes (the DeviceClass found as
the probes find it, ``probes._pods.device_class``).
"""

from __future__ import annotations

import json
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..kube import Kube
from ..probe import Cancelled, CleanupStack, Context, ProbeError, Settings, one_line
from ..probes import _gpus, _pods
from ..result import Verdict
from . import catalog, gpudirect, judge, parse
from .judge import Finding

PROBE_ID = "performance"
ROLE = "aicp.dev/performance-role"
POOL_LABEL = "aicp.dev/gpu-pool"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU = "nvidia.com/gpu"
# aicp's fabric pools carry their fabric kind (components/fabric.py LABEL_FABRIC): how the run
# knows a pool's GPUDirect kind without the stack's gpuPools.
FABRIC_LABEL = "aicp.dev/fabric"

# Seconds each step may take (the dcgmi diag step's come from catalog.DIAG_SECONDS).
TIMEOUTS = {
    "start_timeout": 900.0,  # a cold node pulls a 10-20 GB PyTorch image first
    "bench_timeout": 900.0,
    "key_timeout": 300.0,
    "fabric_timeout": 1800.0,
    "cleanup_timeout": 300.0,
    "poll": 5.0,
}


class UsageError(ValueError):
    """A bad ``--performance-*`` option or thresholds file: one line, exit 2."""


@dataclass(frozen=True)
class Plan:
    """What ``--performance`` asked for, checked before anything runs."""

    diag_level: int = 1
    pools: tuple[str, ...] = ()
    defaults: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    thresholds_file: str = ""


def prepare(diag_level: int, pools: list[str] | None, thresholds_file: Path | None,
            images: dict[str, str]) -> Plan:
    """Check the options and the thresholds file (``{defaults: {key: fraction}, pools:
    {name: {key: fraction}}}``); raises ``UsageError`` naming the key and the fix."""
    if diag_level not in catalog.DIAG_SECONDS:
        raise UsageError(f"--performance-diag {diag_level}: use a dcgmi diag level, "
                         f"{', '.join(map(str, catalog.DIAG_SECONDS))}")
    defaults: dict[str, float] = {}
    overrides: dict[str, dict[str, float]] = {}
    if thresholds_file:
        name = str(thresholds_file)
        try:
            doc = yaml.safe_load(Path(thresholds_file).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise UsageError(f"--performance-thresholds {name}: cannot read it "
                             f"({exc.strerror or exc}): give a readable YAML file") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"--performance-thresholds {name}: not YAML ({one_line(exc)})"
                             ) from None
        if not isinstance(doc, dict):
            raise UsageError(f"--performance-thresholds {name}: expected a mapping with "
                             "'defaults' and/or 'pools'")
        for key in doc:
            if key not in ("defaults", "pools"):
                raise UsageError(f"{name}: {key}: unknown key; use 'defaults' or 'pools'")
        try:
            defaults = judge.check_fractions(f"{name}: defaults", doc.get("defaults") or {})
            pools_doc = doc.get("pools") or {}
            if not isinstance(pools_doc, dict):
                raise UsageError(f"{name}: pools: expected pool name -> thresholds")
            overrides = {str(p): judge.check_fractions(f"{name}: pools.{p}", v or {})
                         for p, v in pools_doc.items()}
        except judge.ThresholdError as exc:
            raise UsageError(str(exc)) from None
    return Plan(diag_level, tuple(pools or ()), defaults, overrides, images,
                str(thresholds_file or ""))


@dataclass
class Pool:
    name: str
    nodes: dict[str, dict]
    machine: str = ""
    product: str = ""
    allocator: str = "device-plugin"
    fabric_resources: dict[str, str] = field(default_factory=dict)
    fabric_annotations: dict[str, str] = field(default_factory=dict)
    fabric_kind: str = ""  # gpuPools[].fabric.kind or the aicp.dev/fabric node label
    # What else a pod needs to use the fabric (components/fabric.py pool_fabric): a DRA
    # claim on the fabric's DeviceClass (EFA through its DRA driver), huge pages (EFA) and
    # capabilities (RDMA's IPC_LOCK).
    fabric_claims: dict[str, Any] = field(default_factory=dict)
    fabric_hugepages: dict[str, str] = field(default_factory=dict)
    fabric_capabilities: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What one performance run found."""

    verdict: Verdict
    reason: str
    findings: list[Finding]
    pools: list[dict]
    artifacts: dict[str, str]
    settings: dict[str, str]
    cleanup: dict[str, list[str]]
    image_ids: dict[str, str] = field(default_factory=dict)


def timeout(settings: Settings, name: str, declared: float | None = None) -> float:
    return settings.timing.resolve(PROBE_ID, name, TIMEOUTS[name] if declared is None
                                   else declared)


# Pools ----------------------------------------------------------------------------------
def discover(ctx: Context, wanted: tuple[str, ...]) -> list[Pool]:
    """GPU pools and their nodes (module doc, step 1)."""
    slices = _gpus.resource_slices(ctx)
    nodes, _ = _gpus.gpu_nodes(ctx, slices)
    nodes = {n: node for n, node in nodes.items() if not _gpus.vm_workload(node)}
    stack_pools = [p for p in ctx.settings.expectations.get("gpuPools") or []
                   if isinstance(p, dict)]
    pools: dict[str, Pool] = {}
    for name, node in sorted(nodes.items()):
        spec = next((p for p in stack_pools if _gpus.pool_matches(p, node)), None)
        labels = _gpus.labels(node)
        pool_name = (spec or {}).get("name") or labels.get(POOL_LABEL) \
            or labels.get(INSTANCE_TYPE) or "gpu"
        pool = pools.setdefault(str(pool_name), Pool(str(pool_name), {}))
        pool.nodes[name] = node
        pool.machine = pool.machine or str((spec or {}).get("machineType") or "") \
            or labels.get(INSTANCE_TYPE, "")
        pool.product = pool.product or labels.get(PRODUCT_LABEL, "") \
            or str((spec or {}).get("product") or "")
        allocator = (spec or {}).get("allocator") or labels.get(_gpus.ALLOCATOR_LABEL)
        if not allocator:
            allocator = "device-plugin" if _gpus.allocatable(node).get(GPU, 0) > 0 else "dra"
        pool.allocator = str(allocator)
        fabric = (spec or {}).get("fabric") or {}
        resources = fabric.get("resources") if isinstance(fabric, dict) else None
        if isinstance(resources, dict):
            pool.fabric_resources = {str(k): str(v) for k, v in resources.items()}
        # GKE multi-network pools attach their GPU NICs by pod annotation instead
        # (``networking.gke.io/interfaces``), exported beside the resources.
        annotations = fabric.get("podAnnotations") if isinstance(fabric, dict) else None
        if isinstance(annotations, dict):
            pool.fabric_annotations = {str(k): str(v) for k, v in annotations.items()}
        if isinstance(fabric, dict):
            read_fabric_needs(pool, fabric)
        kind = fabric.get("kind") if isinstance(fabric, dict) else None
        pool.fabric_kind = pool.fabric_kind or str(kind or labels.get(FABRIC_LABEL) or "")
    chosen = [p for name, p in sorted(pools.items()) if not wanted or name in wanted]
    missing = [w for w in wanted if w not in pools]
    if missing:
        raise ProbeError(f"--performance-pool {', '.join(missing)}: no such GPU pool; the "
                         f"cluster has {', '.join(sorted(pools)) or 'none'}")
    return chosen


def read_fabric_needs(pool: Pool, fabric: dict) -> None:
    """The fabric's claim, huge pages and capabilities as the stack exports them."""
    claims = fabric.get("claims")
    if isinstance(claims, dict) and claims.get("deviceClassName"):
        pool.fabric_claims = {"deviceClassName": str(claims["deviceClassName"]),
                              "count": int(claims.get("count") or 1)}
    hugepages = fabric.get("hugePages")
    if isinstance(hugepages, dict):
        pool.fabric_hugepages = {str(k): str(v) for k, v in hugepages.items()}
    caps = fabric.get("capabilities")
    if isinstance(caps, list):
        pool.fabric_capabilities = [str(c) for c in caps]


def gpu_count(node: dict, slices: dict[str, list]) -> int:
    count = int(_gpus.allocatable(node).get(GPU, 0))
    if count:
        return count
    return sum(1 for _, d in slices.get(_gpus.name(node), [])
               if _gpus.attribute(d, "type") in (None, "gpu"))


# Pods -------------------------------------------------------------------------------------
def gpu_pod(ctx: Context, ns: str, name: str, node: str, gpus: int, pool: Pool, image: str,
            script: str, role: str, device_class: str | None, *, fabric: bool = False,
            extra: dict | None = None, env: dict[str, str] | None = None,
            parts: gpudirect.WorkerParts | None = None) -> dict:
    """A pod on ``node`` holding ``gpus`` GPUs through the pool's allocator (and, with
    ``fabric``, the pool's fabric resources; with ``parts``, a GPUDirect pool's sidecar,
    volumes, mounts, environment and device annotations)."""
    container: dict[str, Any] = {"name": "main", "image": ctx.image(image),
                                 "command": ["sh", "-c", script],
                                 "env": [{"name": "GPUS", "value": str(gpus)}] + [
                                     {"name": k, "value": v} for k, v in (env or {}).items()]}
    limits: dict[str, str] = dict(pool.fabric_resources) if fabric else {}
    spec: dict[str, Any] = {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                            "affinity": _pods.node_affinity([node]),
                            "containers": [container]}
    if pool.allocator == "dra":
        if not device_class:
            raise ProbeError(f"pool {pool.name} uses DRA but no DeviceClass selects its GPUs")
        template = f"{name}-gpus"
        _pods.create(ctx, f"/apis/{_pods.DRA}/namespaces/{ns}/resourceclaimtemplates", {
            "apiVersion": _pods.DRA, "kind": "ResourceClaimTemplate",
            "metadata": {"name": template},
            "spec": {"spec": {"devices": {"requests": [{"name": "gpus", "exactly": {
                "deviceClassName": device_class, "allocationMode": "ExactCount",
                "count": gpus}}]}}}}, ns)
        spec["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": template}]
        resources: dict[str, Any] = {"claims": [{"name": "gpus"}]}
        if limits:
            resources["limits"] = limits
        container["resources"] = resources
    else:
        container["resources"] = {"limits": {GPU: str(gpus), **limits}}
    if fabric:
        fabric_needs(ctx, ns, name, pool, spec, container)
    if extra:
        for key, value in extra.items():
            (container if key in ("volumeMounts",) else spec)[key] = value
    metadata: dict[str, Any] = {"name": name, "labels": {ROLE: role}}
    if fabric and pool.fabric_annotations:
        metadata["annotations"] = dict(pool.fabric_annotations)
    if parts:
        metadata["annotations"] = {**metadata.get("annotations", {}), **parts.annotations}
        container["env"] += [{"name": k, "value": v} for k, v in parts.env.items()]
        container["volumeMounts"] = [*container.get("volumeMounts", []), *parts.mounts]
        spec["volumes"] = [*spec.get("volumes", []), *parts.volumes]
        spec["containers"] += parts.sidecars
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    return _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", body, ns)


def fabric_needs(ctx: Context, ns: str, name: str, pool: Pool, spec: dict,
                 container: dict) -> None:
    """Give a fabric worker what its fabric needs beside the device resources (already in
    its limits): the fabric's DRA claim, for every device the node has of it (EFA through
    the EFA DRA driver: EKS user guide device-management-efa.adoc); huge pages, with the
    cpu request the API server demands beside them (kubernetes pkg/apis/core/validation
    ValidateResourceRequirements: "HugePages require cpu or memory"; a cpu request rather
    than a memory limit, which NCCL's buffers could outgrow); and capabilities (IPC_LOCK for
    RDMA: Azure/aks-rdma-infiniband's test pods add it to pin memory for the HCA)."""
    resources = container.setdefault("resources", {})
    if pool.fabric_claims:
        template = f"{name}-fabric"
        _pods.create(ctx, f"/apis/{_pods.DRA}/namespaces/{ns}/resourceclaimtemplates", {
            "apiVersion": _pods.DRA, "kind": "ResourceClaimTemplate",
            "metadata": {"name": template},
            "spec": {"spec": {"devices": {"requests": [{"name": "fabric", "exactly": {
                "deviceClassName": pool.fabric_claims["deviceClassName"],
                "allocationMode": "ExactCount",
                "count": pool.fabric_claims["count"]}}]}}}}, ns)
        spec["resourceClaims"] = [*spec.get("resourceClaims", []),
                                  {"name": "fabric", "resourceClaimTemplateName": template}]
        resources["claims"] = [*resources.get("claims", []), {"name": "fabric"}]
    if pool.fabric_hugepages:
        resources["limits"] = {**resources.get("limits", {}), **pool.fabric_hugepages}
        resources["requests"] = {"cpu": "1", **resources.get("requests", {})}
    if pool.fabric_capabilities:
        container["securityContext"] = {"capabilities": {"add": list(
            pool.fabric_capabilities)}}


def wait_all(ctx: Context, ns: str, names: list[str], wait: float,
             done: Callable[[dict], bool] | None = None) -> dict[str, dict]:
    """Each pod once finished (or ``done``), or as last seen when ``wait`` ran out."""
    done = done or (lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
    seen: dict[str, dict] = {}

    def all_done() -> bool:
        for name in names:
            if name in seen and done(seen[name]):
                continue
            seen[name] = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return all(done(seen[n]) for n in names)

    ctx.wait_for(f"{len(names)} pod(s) in {ns}", all_done, timeout=wait,
                 interval=timeout(ctx.settings, "poll"), first=0.05)
    # The image each kubelet ran, by digest: the catalog pins tags (verify/images.py).
    ran = ctx.evidence.observations.setdefault("imageIDs", {})
    for name, pod in seen.items():
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("imageID"):
                ran[name] = cs["imageID"]
    return seen


def pod_log(ctx: Context, ns: str, pod: dict) -> str:
    name = pod["metadata"]["name"]
    try:
        return _pods.logs(ctx, ns, name, "main")
    except Exception as exc:  # noqa: BLE001 - a pod that never started has no log
        return f"(no log: {one_line(exc)})"


def not_finished(pod: dict) -> str:
    status = pod.get("status") or {}
    waiting = [((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
               for cs in status.get("containerStatuses") or []]
    return (f"pod {pod['metadata']['name']} did not finish in time (phase "
            f"{status.get('phase', 'Pending')}" + (f", {', '.join(w for w in waiting if w)}"
                                                    if any(waiting) else "") + ")")


# Scripts ----------------------------------------------------------------------------------
def diag_script(level: int) -> str:
    # nv-hostengine daemonizes by default; dcgmi talks to it on localhost (DCGM User Guide,
    # "Starting the host engine").
    return ("echo '=== AICP dcgmi ==='; nv-hostengine >/dev/null 2>&1 || true; "
            f"dcgmi diag -r {level} -j; "
            "echo '=== AICP clocks ==='; nvidia-smi -q -d PERFORMANCE")


BENCH_PY = r"""
import time, torch
def timed(fn, n):
    fn(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / n
for i in range(torch.cuda.device_count()):
    torch.cuda.set_device(i); cap = torch.cuda.get_device_capability(i); n = 8192
    dt, name = (torch.bfloat16, "bf16") if cap >= (8, 0) else (torch.float16, "fp16")
    a = torch.randn(n, n, device="cuda", dtype=dt); b = torch.randn(n, n, device="cuda", dtype=dt)
    s = timed(lambda: a @ b, 50)
    print(f"AICP-BENCH gpu={i} {name}_tflops={2 * n ** 3 / s / 1e12:.1f}", flush=True)
    if cap >= (8, 9) and hasattr(torch, "_scaled_mm"):
        one = torch.tensor(1.0, device="cuda")
        a8 = a.to(torch.float8_e4m3fn); b8 = b.to(torch.float8_e4m3fn).t().contiguous().t()
        s = timed(lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one,
                                           out_dtype=torch.bfloat16), 50)
        print(f"AICP-BENCH gpu={i} fp8_tflops={2 * n ** 3 / s / 1e12:.1f}", flush=True)
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
    s = timed(lambda: y.copy_(x), 20)
    print(f"AICP-BENCH gpu={i} memory_gbps={2 * x.numel() / s / 1e9:.1f}", flush=True)
"""

BENCH_SCRIPT = (
    "(sleep 10; nvidia-smi -q -d PERFORMANCE > /tmp/clocks.txt) & "
    "echo '=== AICP bench ==='; python3 -c \"$BENCH_PY\"; wait; "
    "echo '=== AICP clocks ==='; cat /tmp/clocks.txt; "
    "echo '=== AICP nccl ==='; "
    "mpirun --allow-run-as-root -np \"$GPUS\" -x NCCL_DEBUG=INFO -x NCCL_DEBUG_SUBSYS=INIT,NET "
    "all_reduce_perf_mpi -b 1G -e 4G -f 2 -g 1")


# Where each image keeps mpirun and all_reduce_perf, and what else its fabric needs: the
# EFA image's paths and libfabric settings are NVIDIA/aicr's EKS runtime's
# (validators/performance/testdata/h100/eks/runtime.yaml); GKE's TCPXO pools additionally
# need the host's NCCL plugin profile (aicr sources /usr/local/nvidia/lib64/
# nccl-env-profile.sh, installed by GKE's nccl-tcpxo-installer DaemonSet) when present.
TOOLBOX = {
    "pytorch": ("mpirun", "all_reduce_perf_mpi",
                "[ -f /usr/local/nvidia/lib64/nccl-env-profile.sh ] && "
                ". /usr/local/nvidia/lib64/nccl-env-profile.sh; ", ""),
    "nccl-efa": ("/opt/amazon/openmpi/bin/mpirun", "/opt/nccl-tests/build/all_reduce_perf", "",
                 "-x FI_PROVIDER=efa -x FI_EFA_USE_DEVICE_RDMA=1 -x FI_EFA_FORK_SAFE=1 "),
}


def launcher_script(hosts: list[str], gpus: int, image: str = "pytorch",
                    parts: gpudirect.WorkerParts | None = None) -> str:
    """Key, then wait (bounded) for every worker's sshd, then mpirun across them (with a
    GPUDirect pool's mpirun options and library path, ``parts``)."""
    mpirun, binary, profile, env = TOOLBOX[image]
    ld_path = "-x LD_LIBRARY_PATH"
    if parts:
        env += parts.mpirun
        ld_path += f"={parts.ld_library_path}" if parts.ld_library_path else ""
    hostlist = ",".join(f"{h}:{gpus}" for h in hosts)
    return (
        "mkdir -p /root/.ssh && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 && "
        "echo \"AICP-PUBKEY $(cat /root/.ssh/id_ed25519.pub)\"; "
        f"for h in {' '.join(hosts)}; do n=0; until ssh -o StrictHostKeyChecking=no "
        "-o ConnectTimeout=2 \"$h\" true 2>/dev/null; do n=$((n+1)); "
        "[ $n -ge 300 ] && echo \"AICP-ERROR worker $h unreachable\" && exit 3; sleep 2; "
        f"done; done; {profile}echo '=== AICP nccl ==='; "
        f"{mpirun} --allow-run-as-root -np {len(hosts) * gpus} -H {hostlist} "
        f"--mca plm_rsh_args '-o StrictHostKeyChecking=no' -x PATH {ld_path} "
        f"{env}-x NCCL_DEBUG=INFO "
        f"-x NCCL_DEBUG_SUBSYS=INIT,NET {binary} -b 1G -e 8G -f 2 -g 1")


WORKER_SCRIPT = ("mkdir -p /run/sshd /root/.ssh && (ssh-keygen -A >/dev/null 2>&1 || true) && "
                 "cp /etc/aicp-ssh/authorized_keys "
                 "/root/.ssh/ && chmod 600 /root/.ssh/authorized_keys && "
                 "exec /usr/sbin/sshd -De")


def worker_script(parts: gpudirect.WorkerParts | None) -> str:
    """The worker's script; a GPUDirect pool's prelude (its NCCL environment into the SSH
    sessions mpirun opens) runs just before sshd."""
    if not parts or not parts.prelude:
        return WORKER_SCRIPT
    return WORKER_SCRIPT.replace("exec /usr/sbin/sshd", parts.prelude + "exec /usr/sbin/sshd")


# The run ----------------------------------------------------------------------------------
def execute(kube: Kube, settings: Settings, plan: Plan,
            log: Callable[[str], None] = print) -> Outcome:
    """Run every step (module doc) and always clean up; returns the outcome."""
    budget = (timeout(settings, "start_timeout") * 3 + timeout(
        settings, "diag_timeout", catalog.DIAG_SECONDS[plan.diag_level])
        + timeout(settings, "bench_timeout") + timeout(settings, "key_timeout")
        + timeout(settings, "fabric_timeout"))
    cleanup = CleanupStack(kube)
    ctx = Context(PROBE_ID, settings, kube, deadline=time.monotonic() + budget,
                  cleanup=cleanup)
    findings: list[Finding] = []
    pools: list[Pool] = []
    try:
        pools = discover(ctx, plan.pools)
        # Each pool of two or more nodes runs its fabric step in turn.
        fabrics = sum(1 for p in pools if len(p.nodes) > 1)
        ctx.deadline += max(0, fabrics - 1) * (timeout(settings, "fabric_timeout")
                                               + timeout(settings, "start_timeout"))
        if pools:
            measure(ctx, plan, pools, findings, log)
        else:
            findings.append(Finding("pool", "", "", "", "gpu nodes", Verdict.ERROR,
                                    "no GPU node to measure: scale a GPU pool up"))
    except (ProbeError, Cancelled) as exc:
        findings.append(Finding("pool", "", "", "", "run", Verdict.ERROR, str(exc)))
    except Exception as exc:  # noqa: BLE001 - an unforeseen failure is ERROR, never a verdict
        findings.append(Finding("pool", "", "", "", "run", Verdict.ERROR,
                                f"the run stopped at step {ctx.current_step}: {one_line(exc)}"))
    finally:
        left, errors = finish(ctx, cleanup)
    verdict, reason = judge.overall(findings)
    return Outcome(verdict, reason, findings,
                   [{"name": p.name, "nodes": sorted(p.nodes), "machineType": p.machine,
                     "product": p.product, "allocator": p.allocator,
                     "fabricResources": p.fabric_resources,
                     **({"fabricClaims": p.fabric_claims} if p.fabric_claims else {}),
                     **({"fabricKind": p.fabric_kind} if p.fabric_kind else {})}
                    for p in pools],
                   dict(ctx.evidence.artifacts), {}, {"leftovers": left, "errors": errors},
                   dict(ctx.evidence.observations.get("imageIDs") or {}))


def finish(ctx: Context, cleanup: CleanupStack) -> tuple[list[str], list[str]]:
    """Delete what the run created (reverse order), then its namespaces, and wait."""
    left = cleanup.finish(timeout(ctx.settings, "cleanup_timeout"))
    return left, list(cleanup.errors)


def measure(ctx: Context, plan: Plan, pools: list[Pool], findings: list[Finding],
            log: Callable[[str], None]) -> None:
    ns = ctx.namespace()
    slices = _gpus.devices_by_node(_gpus.resource_slices(ctx))
    device_class = (_pods.device_class(ctx) if any(p.allocator == "dra" for p in pools)
                    else None)
    counts = {n: gpu_count(node, slices) for p in pools for n, node in p.nodes.items()}
    names = {n: f"n{i}" for i, n in enumerate(sorted(counts))}
    per_node: dict[str, dict[str, float]] = {}
    for step, image, script, wait in (
            ("diag", "dcgm", diag_script(plan.diag_level),
             timeout(ctx.settings, "diag_timeout", catalog.DIAG_SECONDS[plan.diag_level])),
            ("bench", "pytorch", BENCH_SCRIPT, timeout(ctx.settings, "bench_timeout"))):
        with ctx.step(f"{step} on {len(counts)} node(s)"):
            log(f"performance: {step} on {len(counts)} GPU node(s)")
            before = {id(obj) for obj in ctx.cleanup.pending()}
            created = []
            for pool in pools:
                for node in sorted(pool.nodes):
                    if not counts[node]:
                        continue
                    pod = f"{step}-{names[node]}"
                    gpu_pod(ctx, ns, pod, node, counts[node], pool, image, script, step,
                            device_class,
                            env={"BENCH_PY": BENCH_PY} if step == "bench" else None)
                    created.append(pod)
            seen = wait_all(ctx, ns, created, timeout(ctx.settings, "start_timeout") + wait)
            for pool in pools:
                for node in sorted(pool.nodes):
                    if not counts[node]:
                        if step == "diag":
                            findings.append(Finding(
                                "node", pool.name, node, "", "gpus", Verdict.ERROR,
                                "the node advertises no allocatable GPU (device plugin or "
                                "DRA ResourceSlice): nothing to measure"))
                        continue
                    pod = seen[f"{step}-{names[node]}"]
                    judge_node(ctx, step, pool, node, pod, pod_log(ctx, ns, pod), plan,
                               findings, per_node.setdefault(node, {}))
            release(ctx, ns, [o for o in ctx.cleanup.pending() if id(o) not in before],
                    created)
    for pool in pools:
        with ctx.step(f"fabric of pool {pool.name}"):
            fabric(ctx, ns, pool, plan, counts, names, device_class, findings, per_node, log)
        limits = judge.thresholds(plan.defaults, plan.overrides, pool.name)
        for metric, unit in (("bf16_tflops", "TFLOP/s"), ("fp8_tflops", "TFLOP/s"),
                             ("fp16_tflops", "TFLOP/s"), ("memory_gbps", "GB/s"),
                             ("node_busbw", "GB/s")):
            values = {n: per_node[n][metric] for n in sorted(pool.nodes)
                      if metric in per_node.get(n, {})}
            if values:
                findings.extend(judge.stragglers(pool.name, metric, values,
                                                 limits["stragglerShare"], unit))


def judge_node(ctx: Context, step: str, pool: Pool, node: str, pod: dict, text: str,
               plan: Plan, findings: list[Finding], values: dict[str, float]) -> None:
    limits = judge.thresholds(plan.defaults, plan.overrides, pool.name)
    key = catalog.product_key(pool.product) or ""
    spec = catalog.GPUS.get(key)
    unpublished = catalog.UNPUBLISHED.get(key, f"GPU product {pool.product or '(unknown)'} "
                                               "is not in the datasheet catalog")
    phase = (pod.get("status") or {}).get("phase")
    if phase not in ("Succeeded", "Failed"):
        findings.append(Finding("node", pool.name, node, "", step, Verdict.ERROR,
                                not_finished(pod)))
        return
    clocks = parse.section(text, "clocks")
    if step == "diag":
        try:
            diag = parse.dcgm_diag(parse.section(text, "dcgmi"))
        except parse.ParseError as exc:
            findings.append(Finding("node", pool.name, node, "", "dcgm diag", Verdict.ERROR,
                                    f"{exc} (pod {phase})"))
        else:
            for gpu in sorted(diag.per_gpu):
                failed = diag.failures(gpu)
                tests = len(diag.per_gpu[gpu])
                findings.append(Finding(
                    "gpu", pool.name, node, str(gpu), f"dcgm diag -r {plan.diag_level}",
                    Verdict.FAIL if failed else Verdict.PASS,
                    ("; ".join(failed)) if failed else
                    f"{tests} test results passed (DCGM {diag.version})",
                    measured=f"{tests - len(failed)}/{tests} passed",
                    source="dcgmi diag -j"))
        return
    judge_clocks(pool, node, clocks, findings)
    bench = parse.bench(parse.section(text, "bench"))
    if not bench:
        findings.append(Finding("node", pool.name, node, "", "bench", Verdict.ERROR,
                                f"the bench printed no measurement (pod {phase})"))
    for gpu, fields in sorted(bench.items()):
        for metric, unit, figure, threshold_key in _gpu_metrics(spec, fields):
            value = _float(fields.get(metric))
            source = spec.sources.get(metric, "") if spec else ""
            findings.append(judge.against(
                "gpu", pool.name, node, str(gpu), metric, value, figure,
                limits[threshold_key], unit, source,
                "" if spec else unpublished))
    for metric in ("bf16_tflops", "fp8_tflops", "fp16_tflops", "memory_gbps"):
        got = [v for f in bench.values() if (v := _float(f.get(metric))) is not None]
        if got:
            values[metric] = statistics.median(got)
    nccl = parse.section(text, "nccl")
    gpus = len(bench) or None
    if gpus == 1:
        findings.append(Finding("node", pool.name, node, "", "node_busbw", Verdict.SKIP,
                                "one GPU: nothing to all-reduce within the node"))
        return
    try:
        result = parse.nccl_table(nccl)
    except parse.ParseError as exc:
        findings.append(Finding("node", pool.name, node, "", "node_busbw", Verdict.ERROR,
                                str(exc)))
        return
    values["node_busbw"] = result.busbw
    findings.append(judge.against(
        "node", pool.name, node, "", "node_busbw", result.busbw,
        spec.link_gbps if spec else None, limits["nodeBusBw"], "GB/s",
        f"{spec.link}: {spec.sources['link_gbps']}" if spec else "",
        "" if spec else unpublished))


def release(ctx: Context, ns: str, objects: list, pods: list[str]) -> None:
    """Delete one step's pods and claim templates and wait (bounded) until the pods are
    gone, so the next step's pods find every GPU free: a pod's generated ResourceClaim goes
    with it (owned by the pod), and the device plugin's GPUs return once it ends."""
    ctx.cleanup.unwind(only=objects)

    def gone() -> bool:
        return all(ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                                    query={"fieldSelector": f"metadata.name={name}"}
                                    ).get("items") == [] for name in pods)

    ctx.wait_for("the step's pods to be deleted", gone,
                 timeout=timeout(ctx.settings, "cleanup_timeout"),
                 interval=timeout(ctx.settings, "poll"), first=0.05)


def _gpu_metrics(spec: catalog.Gpu | None, fields: dict[str, str]):
    """(metric, unit, published figure, threshold key): every data type the datasheet has
    (one the bench did not print is an ERROR, not a pass), and any other it printed."""
    dtypes = list(spec.tflops) if spec else []
    dtypes += [d for d in ("bf16", "fp8", "fp16") if f"{d}_tflops" in fields and d not in dtypes]
    for dtype in dtypes:
        yield (f"{dtype}_tflops", "TFLOP/s", spec.tflops.get(dtype) if spec else None, dtype)
    yield "memory_gbps", "GB/s", spec.memory_gbps if spec else None, "memoryBandwidth"


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def judge_clocks(pool: Pool, node: str, text: str, findings: list[Finding]) -> None:
    try:
        events = parse.clock_events(text)
    except parse.ParseError as exc:
        findings.append(Finding("node", pool.name, node, "", "clock events", Verdict.ERROR,
                                str(exc)))
        return
    for bus_id, reasons in sorted(events.items()):
        active = [r for r, on in reasons.items() if on]
        bad = [r for r in active if r in parse.SLOWDOWNS]
        findings.append(Finding(
            "gpu", pool.name, node, bus_id, "clock events during load",
            Verdict.FAIL if bad else Verdict.PASS,
            f"slowed down: {', '.join(bad)}" if bad else
            ("no slowdown" + (f" (active: {', '.join(active)})" if active else "")),
            measured=", ".join(active) or "none", source="nvidia-smi -q -d PERFORMANCE"))


def fabric(ctx: Context, ns: str, pool: Pool, plan: Plan, counts: dict[str, int],
           names: dict[str, str], device_class: str | None, findings: list[Finding],
           per_node: dict, log: Callable[[str], None]) -> None:
    figure = catalog.FABRICS.get(pool.machine)
    base: dict[str, Any] = dict(scope="pool", pool=pool.name, node="", gpu="",
                                metric="fabric_busbw")
    if len(pool.nodes) < 2:
        findings.append(Finding(**base, verdict=Verdict.SKIP,
                                reason=f"{len(pool.nodes)} node(s): the fabric needs two or "
                                       "more nodes of the pool"))
        return
    log(f"performance: NCCL across the {len(pool.nodes)} nodes of pool {pool.name}")
    image = "nccl-efa" if figure and "OFI" in figure.transports else "pytorch"
    svc = f"fabric-{pool.name}"[:50].rstrip("-").lower()
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
        "spec": {"clusterIP": "None", "selector": {ROLE: svc}}}, ns)
    workers = {node: f"{svc}-{names[node]}" for node in sorted(pool.nodes)}
    hosts = [f"{w}.{svc}" for w in workers.values()]
    gpus = min(counts[n] for n in pool.nodes)
    if not gpus:
        findings.append(Finding(**base, verdict=Verdict.ERROR,
                                reason="a node of the pool advertises no GPU: no fabric run"))
        return
    kind = gpudirect.kind_of(pool.fabric_kind, pool.machine)
    if kind and not pool.fabric_annotations:
        findings.append(Finding(**base, verdict=Verdict.ERROR, reason=(
            f"pool {pool.name} is {kind}: its workers must attach the pool's GPU NIC "
            "networks (networking.gke.io/interfaces), which the stack exports as "
            "gpuPools[].fabric.podAnnotations; run with --stack, or NCCL would fall back "
            "to sockets for want of the NICs")))
        return
    images = dict(ctx.settings.images)
    if kind in gpudirect.INSTALLERS:
        plugin = _plugin(ctx, kind)
        rxdm = gpudirect.rxdm_image(kind, ctx.image(gpudirect.DAEMONS[kind]), plugin)
        if rxdm is None:
            findings.append(Finding(**base, verdict=Verdict.ERROR, reason=(
                f"kube-system/{gpudirect.INSTALLERS[kind]} installs NCCL plugin {plugin}, "
                "whose RxDM (tcpgpudmarxd) release the run does not know; upstream couples "
                "the two, so a sidecar of another release would fail NCCL over to sockets "
                f"(known plugin releases: {', '.join(gpudirect.RXDM_FOR_PLUGIN[kind])})")))
            return
        images[gpudirect.DAEMONS[kind]] = rxdm
    parts = gpudirect.worker_parts(kind, gpus, images)
    launcher = f"{svc}-launcher"
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": launcher, "labels": {ROLE: "launcher"}},
        "spec": {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "main", "image": ctx.image(image),
                                 "command": ["sh", "-c", launcher_script(hosts, gpus, image,
                                                                         parts)]}]}},
        ns)
    key = ctx.wait_for("the launcher's public key", lambda: _pubkey(ctx, ns, launcher),
                       timeout=timeout(ctx.settings, "start_timeout")
                       + timeout(ctx.settings, "key_timeout"),
                       interval=timeout(ctx.settings, "poll"), first=0.05)
    if not key:
        findings.append(Finding(**base, verdict=Verdict.ERROR,
                                reason="the launcher printed no SSH key in time"))
        return
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{svc}-ssh"},
        "data": {"authorized_keys": key + "\n"}}, ns)
    for node, worker in workers.items():
        gpu_pod(ctx, ns, worker, node, gpus, pool, image, worker_script(parts), svc,
                device_class, fabric=True, parts=parts, extra={
                    "hostname": worker, "subdomain": svc,
                    "volumes": [{"name": "ssh", "configMap": {"name": f"{svc}-ssh"}}],
                    "volumeMounts": [{"name": "ssh", "mountPath": "/etc/aicp-ssh"}]})
    seen = wait_all(ctx, ns, [launcher], timeout(ctx.settings, "start_timeout")
                    + timeout(ctx.settings, "fabric_timeout"))
    pod = seen[launcher]
    if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        findings.append(Finding(**base, verdict=Verdict.ERROR, reason=not_finished(pod)))
        return
    text = pod_log(ctx, ns, pod)
    judge_fabric(pool, figure, text, judge.thresholds(plan.defaults, plan.overrides,
                                                      pool.name), findings)


def _plugin(ctx: Context, kind: str) -> str | None:
    """The plugin release the pool's installer DaemonSet installs (None: not found or not
    readable)."""
    try:
        return gpudirect.installed_plugin(ctx.kube.request(
            "GET", f"/apis/apps/v1/namespaces/kube-system/daemonsets/"
                   f"{gpudirect.INSTALLERS[kind]}"))
    except Exception:  # noqa: BLE001 - absent or forbidden: the pinned sidecar is used
        return None


def _pubkey(ctx: Context, ns: str, pod: str) -> str | None:
    try:
        text = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log",
                                query={"container": "main"}, text=True)
    except Exception:  # noqa: BLE001 - not started yet
        return None
    for line in str(text).splitlines():
        if line.startswith("AICP-PUBKEY "):
            return line.removeprefix("AICP-PUBKEY ").strip()
    return None


def judge_fabric(pool: Pool, figure: catalog.Fabric | None, text: str,
                 limits: dict[str, float], findings: list[Finding]) -> None:
    """The transport NCCL chose, then the bus bandwidth against the fabric's figure."""
    base: dict[str, Any] = dict(scope="pool", pool=pool.name, node="", gpu="")
    transport = parse.nccl_transport(text)
    if transport is None:
        findings.append(Finding(**base, metric="fabric transport", verdict=Verdict.ERROR,
                                reason="NCCL printed no 'Using network' or NET/ line "
                                       "(NCCL_DEBUG=INFO)"))
    elif transport == catalog.SOCKET and figure:
        findings.append(Finding(
            **base, metric="fabric transport", verdict=Verdict.FAIL, measured=transport,
            reason=(f"NCCL fell back to sockets (NET/Socket) on {pool.machine}, whose "
                    f"fabric is {figure.interfaces}: expected {' or '.join(figure.transports)}"
                    "; check the pool's fabric devices and NCCL plugin"),
            source=figure.source))
    elif figure and transport not in figure.transports:
        findings.append(Finding(
            **base, metric="fabric transport", verdict=Verdict.FAIL, measured=transport,
            reason=f"NCCL chose {transport}; {pool.machine}'s fabric is "
                   f"{' or '.join(figure.transports)}", source=figure.source))
    else:
        findings.append(Finding(
            **base, metric="fabric transport", verdict=Verdict.PASS, measured=transport,
            reason=f"NCCL chose {transport}" + ("" if figure else
                                                 f" ({pool.machine or 'this machine type'} "
                                                 "has no fabric in the catalog)"),
            source=figure.source if figure else ""))
    try:
        result = parse.nccl_table(parse.section(text, "nccl") or text)
    except parse.ParseError as exc:
        findings.append(Finding(**base, metric="fabric_busbw", verdict=Verdict.ERROR,
                                reason=str(exc)))
        return
    findings.append(judge.against(
        "pool", pool.name, "", "", "fabric_busbw", result.busbw,
        figure.gbps if figure else None, limits["fabricBusBw"], "GB/s",
        f"{figure.interfaces}: {figure.source}" if figure else "",
        "" if figure else f"no published fabric figure for {pool.machine or 'this pool'}"))


def new_run_id() -> str:
    return secrets.token_hex(3)


def to_json(outcome: Outcome) -> str:
    return json.dumps({
        "verdict": outcome.verdict.value, "reason": outcome.reason,
        "settings": outcome.settings, "pools": outcome.pools,
        "findings": [f.to_dict() for f in outcome.findings],
        "imageIDs": outcome.image_ids, "cleanup": outcome.cleanup}, indent=2) + "\n"

