"""The suite's flags, each derived from the stack's outputs or the cluster, with its source.

The flag names and meanings are the suite's (kubernetes-sigs/ai-conformance at the pinned
commit): ``test/util_test.go`` (``-kubeconfig``, ``-accelerator-type``, ``-allocation-mode``,
``-gang-scheduler-namespace``, ``-gang-job-labels``), the autoscaling test's
``-autoscaler-node-pool-label`` ("key=value ... The test is skipped when unset") and
``test/workload_sandboxing_test.go`` (``-sandbox-runtime-class``). A flag aicp cannot derive
is left unset, and the evidence says why: the suite then detects, or skips with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..images import mirrored

# The suite's NVIDIA accelerator config (test/util_test.go ``acceleratorConfigs["nvidia"]``):
# DeviceClass and DRA driver ``gpu.nvidia.com``, extended resource ``nvidia.com/gpu``.
DEVICE_CLASS = DRA_DRIVER = "gpu.nvidia.com"
EXTENDED_RESOURCE = "nvidia.com/gpu"
# Kueue admits a Job that carries this label into the named LocalQueue (kueue.sigs.k8s.io,
# "Run a Kubernetes Job"; the GKE v1.37 submission passes -gang-job-labels the same way).
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_VERSIONS = ("kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1")
# The suite's own RuntimeClass detection keywords (workload_sandboxing_test.go
# ``isKnownSandboxedRuntime``): aicp names the class it finds, so the run does not depend
# on the suite's auto-detection picking the same one.
SANDBOX_KEYWORDS = ("gvisor", "runsc", "kata", "sandboxed", "quark", "krun")
POOL_LABEL = "aicp.dev/gpu-pool"
SANDBOX_IMAGE = "docker.io/library/busybox"


@dataclass(frozen=True)
class Flag:
    """One suite flag: ``value`` None means left unset; ``source`` says where it came from
    (or why it is unset); a ``local`` value (a path on this machine) is never published."""

    name: str
    value: str | None
    source: str
    local: bool = False

    @property
    def arg(self) -> str:
        return f"-{self.name}={self.value}"

    @property
    def shown(self) -> str:
        if self.value is None:
            return "(unset)"
        return "(a path on the machine that ran it)" if self.local else self.value


@dataclass
class Facts:
    """What the cluster shows that the flags depend on (read once, before the suite runs)."""

    device_classes: list[str] = field(default_factory=list)
    slice_drivers: list[str] = field(default_factory=list)  # drivers of slices with devices
    plugin_gpu_nodes: list[str] = field(default_factory=list)  # allocatable nvidia.com/gpu
    local_queues: list[tuple[str, str, str]] = field(default_factory=list)  # ns, name, api
    runtime_classes: list[tuple[str, str]] = field(default_factory=list)  # name, handler


def discover(kube: Any) -> Facts:
    """Read the facts from the cluster through aicp's client (``verify.kube.Kube``)."""
    facts = Facts()
    if kube.resources("resource.k8s.io/v1"):
        facts.device_classes = sorted(d["metadata"]["name"] for d in
                                      kube.items("/apis/resource.k8s.io/v1/deviceclasses"))
        facts.slice_drivers = sorted({(s.get("spec") or {}).get("driver", "") for s in
                                      kube.items("/apis/resource.k8s.io/v1/resourceslices")
                                      if (s.get("spec") or {}).get("devices")})
    for node in kube.items("/api/v1/nodes"):
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        if str(allocatable.get(EXTENDED_RESOURCE, "0")) not in ("0", ""):
            facts.plugin_gpu_nodes.append(node["metadata"]["name"])
    for api in KUEUE_VERSIONS:
        if any(r.get("name") == "localqueues" for r in kube.resources(api)):
            facts.local_queues = sorted((q["metadata"].get("namespace", ""),
                                         q["metadata"]["name"], api)
                                        for q in kube.items(f"/apis/{api}/localqueues"))
            break
    if kube.resources("node.k8s.io/v1"):
        facts.runtime_classes = sorted((r["metadata"]["name"], str(r.get("handler", "")))
                                       for r in kube.items("/apis/node.k8s.io/v1/runtimeclasses"))
    return facts


def derive(facts: Facts, expectations: dict[str, Any] | None = None,
           stack_name: str | None = None, mirror: str | None = None) -> list[Flag]:
    """Every flag aicp sets or leaves unset, in the suite's flag order, with its source."""
    pools = [p for p in (expectations or {}).get("gpuPools") or [] if isinstance(p, dict)]
    stack = f"stack {stack_name} output" if stack_name else "stack output"
    found = [_accelerator(facts, pools, stack), _allocation(facts, pools, stack),
             *_gang(facts), _autoscaler(pools, (expectations or {}).get("autoscaler"), stack),
             _sandbox(facts)]
    if mirror:
        # The suite's sandbox probe image defaults to "busybox" (Docker Hub's library
        # image; workload_sandboxing_test.go -sandbox-image at the pinned commit): pulled
        # from the mirror like aicp's own images. Its other test images have no flag here.
        found.append(Flag("sandbox-image", mirrored(SANDBOX_IMAGE, mirror),
                          f"--registry-mirror {mirror}: the suite's default {SANDBOX_IMAGE}"))
    return found


def _accelerator(facts: Facts, pools: list[dict], stack: str) -> Flag:
    if DEVICE_CLASS in facts.device_classes:
        return Flag("accelerator-type", "nvidia", f"cluster: DeviceClass {DEVICE_CLASS}")
    if facts.plugin_gpu_nodes:
        return Flag("accelerator-type", "nvidia", f"cluster: node "
                    f"{facts.plugin_gpu_nodes[0]} advertises {EXTENDED_RESOURCE}")
    if pools:
        return Flag("accelerator-type", "nvidia", f"{stack} gpuPools[0].accelerator "
                    f"{pools[0].get('accelerator')} (aicp's pools are NVIDIA)")
    return Flag("accelerator-type", None, "unset: the cluster shows no NVIDIA accelerator "
                "(the suite's only accelerator type); the suite uses its default")


def _allocation(facts: Facts, pools: list[dict], stack: str) -> Flag:
    allocators = sorted({str(p.get("allocator")) for p in pools if p.get("allocator")})
    dra = DEVICE_CLASS in facts.device_classes and DRA_DRIVER in facts.slice_drivers
    if allocators == ["dra"] and dra:
        return Flag("allocation-mode", "dra", f"{stack} gpuPools[].allocator dra; cluster: "
                    f"DeviceClass {DEVICE_CLASS} and ResourceSlices of driver {DRA_DRIVER}")
    if allocators == ["device-plugin"] and facts.plugin_gpu_nodes:
        return Flag("allocation-mode", "device-plugin", f"{stack} gpuPools[].allocator "
                    f"device-plugin; cluster: nodes advertise {EXTENDED_RESOURCE}")
    if not allocators and dra:
        return Flag("allocation-mode", "dra", f"cluster: DeviceClass {DEVICE_CLASS} and "
                    f"ResourceSlices of driver {DRA_DRIVER}")
    if not allocators and facts.plugin_gpu_nodes:
        return Flag("allocation-mode", "device-plugin", f"cluster: nodes advertise "
                    f"{EXTENDED_RESOURCE} and no ResourceSlice of driver {DRA_DRIVER}")
    why = (f"the stack's pools use {', '.join(allocators)}" if len(allocators) > 1 else
           "the stack and the cluster disagree" if allocators else
           "the cluster shows neither DRA devices nor the device plugin")
    return Flag("allocation-mode", "auto", f"{why}: the suite detects (its 'auto')")


def _gang(facts: Facts) -> list[Flag]:
    if not facts.local_queues:
        why = ("unset: no Kueue LocalQueue in the cluster; the suite makes its own namespace "
               "and its gang Job carries no queue label")
        return [Flag("gang-scheduler-namespace", None, why), Flag("gang-job-labels", None, why)]
    namespace, name, api = facts.local_queues[0]
    where = f"cluster: LocalQueue {namespace}/{name} ({api})" + (
        f", the first of {len(facts.local_queues)}" if len(facts.local_queues) > 1 else "")
    return [Flag("gang-scheduler-namespace", namespace, where),
            Flag("gang-job-labels", f"{QUEUE_LABEL}={name}", where)]


def _autoscaler(pools: list[dict], autoscaler: Any, stack: str) -> Flag:
    # The suite needs an isolated pool with minimum N >= 1, maximum >= N+1 and "effective
    # capacity for exactly one requested accelerator per baseline node" (test/README.md,
    # "Cluster Autoscaling Test", at 6fef273b): a pool scaling from zero, or of 8-GPU
    # nodes, does not qualify.
    for i, pool in enumerate(pools):
        low, high = int(pool.get("minNodes") or 0), int(pool.get("maxNodes") or 0)
        if (autoscaler not in (None, "", "none") and 1 <= low < high
                and int(pool.get("gpusPerNode") or 0) == 1):
            labels = {str(k): str(v) for k, v in (pool.get("labels") or {}).items()}
            key = POOL_LABEL if POOL_LABEL in labels else next(iter(labels), None)
            if key:
                return Flag("autoscaler-node-pool-label", f"{key}={labels[key]}",
                            f"{stack} gpuPools[{i}] {pool.get('name')} (minNodes {low}, "
                            f"maxNodes {high}, autoscaler {autoscaler})")
    why = (f"autoscaler {autoscaler}: no pool autoscales" if pools and autoscaler in (
        None, "", "none") else "no stack GPU pool of one-GPU nodes has minNodes >= 1 and "
           "maxNodes above it" if pools else "no stack: aicp cannot tell which pool "
           "autoscales")
    return Flag("autoscaler-node-pool-label", None,
                f"unset: {why}; the suite skips its autoscaling test")


def _sandbox(facts: Facts) -> Flag:
    for name, handler in facts.runtime_classes:
        if any(k in name.lower() or k in handler.lower() for k in SANDBOX_KEYWORDS):
            return Flag("sandbox-runtime-class", name,
                        f"cluster: RuntimeClass {name} (handler {handler})")
    return Flag("sandbox-runtime-class", None, "unset: no sandboxed RuntimeClass in the "
                "cluster; the suite looks for one itself and skips if it finds none")
