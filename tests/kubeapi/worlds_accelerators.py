"""GPU clusters shaped like real ones, composed from ../shared/fixtures (``upstream``).

Each world is a named layout (``WORLDS``) of GPU nodes built from upstream data: the NVIDIA
DRA chart's DeviceClasses and the kubelet plugin's ResourceSlice devices, GPU Feature
Discovery's labels, the DCGM exporter's series and pod labels. The emulator adds only what
a cluster needs to run the probes' pods (a CPU node, the scheduler, kubelet, DRA allocator).
tests/verify/test_accelerator_worlds.py states the verdict every accelerator probe owes
each world; a new real-world layout is a new entry here and a row there.

A node spec (``GpuNode``) says how its GPUs are offered: ``dra`` (ResourceSlice devices),
``plugin`` (device-plugin allocatable: resource name → count), GFD ``labels``, its
exporter (``exporter``: ``"device-plugin"``/``"dra"`` label mode, None for none) and the
DCGM series it serves (``series``: ``"full"`` or ``"mig"``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from . import objects as o
from . import upstream
from .controllers import dcgm
from .controllers.base import Controller
from .controllers.kubelet import GpuRuntime, gpu_uuid
from .emulator import KubeAPI
from .scenarios import standard_controllers


@dataclass
class GpuNode:
    name: str
    gpus: int = 4
    dra: bool = False
    migs_per_gpu: int = 0          # DRA MIG devices per GPU (dra=True)
    dra_attributes: dict | None = None
    plugin: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    exporter: str | None = "device-plugin"
    series: str = "full"
    extra: dict[str, str] = field(default_factory=dict)  # other allocatable resources


def _versions() -> dict[str, str]:
    """GFD's version labels (fixture doc 2d), the keys GFD sets on every container node."""
    labels = upstream.gfd_labels("versions")
    return {k: v for k, v in labels.items() if k.startswith("nvidia.com/cuda.")}


def full_series(node: str, gpus: int) -> str:
    """Part 1 of the DCGM fixture (an idle GPU: utilisation 0), one copy per GPU, the
    device labels made this node's."""
    lines = []
    for metric, labels, value in upstream.dcgm_series(1):
        for i in range(gpus):
            ls = {**labels, "gpu": str(i), "UUID": gpu_uuid(node, i), "device": f"nvidia{i}",
                  "Hostname": node, "pci_bus_id": f"00000000:{i + 7:02X}:00.0"}
            lines.append(_line(metric, ls, value))
    return "\n".join(lines) + "\n"


def mig_series(node: str, gpus: int) -> str:
    """Part 2 of the DCGM fixture (two MIG instances of one GPU: parent UUID, GPU_I_ID, no
    GPU_UTIL) per GPU, with ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` at 0 for each instance, the
    utilisation DCGM does report for MIG (NVIDIA/dcgm-exporter#216, #430)."""
    lines = []
    for i in range(gpus):
        for metric, labels, value in upstream.dcgm_series(2):
            ls = {**labels, "gpu": str(i), "UUID": gpu_uuid(node, i), "device": f"nvidia{i}",
                  "Hostname": node}
            lines.append(_line(metric, ls, value))
            lines.append(_line("DCGM_FI_PROF_GR_ENGINE_ACTIVE", ls, "0"))
    return "\n".join(lines) + "\n"


def _line(metric: str, labels: dict[str, str], value: str) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "} " + value


def _node(spec: GpuNode, minor: str, index: int) -> dict:
    extended = {k: str(v) for k, v in {**spec.plugin, **spec.extra}.items()}
    labels = {"nvidia.com/gpu.present": "true", **spec.labels}
    return o.node(spec.name, cpu="96", memory="1024Gi", labels=labels, minor=minor,
                  extended=extended or None, taints=[dict(o.GPU_TAINT)],
                  ip=f"10.0.2.{index + 10}")


def _admin_claim(node: str, slice_: dict) -> dict:
    """The DRA-mode exporter's claim as the scheduler allocated it: adminAccess on every
    gpu.nvidia.com device of its node (fixture gpu-operator-dcgm-exporter-pods.yaml, its
    ResourceClaimTemplate nvidia-dcgm-exporter-admin)."""
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": f"nvidia-dcgm-exporter-dra-{node}-admin-gpus",
                         "namespace": "gpu-operator"},
            "spec": {"devices": {"requests": [{"name": "admin-gpus", "exactly": {
                "deviceClassName": "gpu.nvidia.com", "allocationMode": "All",
                "adminAccess": True}}]}},
            "status": {"allocation": {"devices": {"results": [
                {"request": "admin-gpus", "driver": slice_["spec"]["driver"], "pool": node,
                 "device": d["name"], "adminAccess": True}
                for d in slice_["spec"]["devices"]]}}}}


def build(nodes: list[GpuNode], *, minor: str = "1.35", classes: bool = True,
          runtime: GpuRuntime | None = None, extra: list[dict] | None = None) -> KubeAPI:
    """A cluster of one CPU node and ``nodes``; ``classes``: the DRA chart's DeviceClasses
    (fixture) are installed."""
    kube = KubeAPI(minor)
    world = [o.namespace(n) for n in ("gpu-operator", "nvidia-dra-driver-gpu")]
    world.append(o.node("system-0", minor=minor, ip="10.0.0.10"))
    for i, spec in enumerate(nodes):
        world.append(_node(spec, minor, i))
        if spec.dra:
            world.append(upstream.gpu_slice(spec.name, spec.gpus, migs_per_gpu=spec.migs_per_gpu,
                                            attributes=spec.dra_attributes))
        if spec.dra and spec.exporter == "dra":
            world.append(_admin_claim(spec.name, world[-1]))
    if classes:
        world += upstream.device_classes()
    kube.seed(world + list(extra or []))
    standard_controllers(kube, logs=runtime or GpuRuntime(), dra=True, kueue=False)
    exporters = [s for s in nodes if s.exporter]
    if exporters:
        kube.add(WorldExporters(exporters))
    return kube


class WorldExporters(Controller):
    """The world's DCGM exporter pods, labelled as the GPU Operator labels them in each
    mode (fixture gpu-operator-dcgm-exporter-pods.yaml), serving the node's series."""

    name = "world-dcgm-exporters"
    watches = ("nodes",)
    resync = None

    def __init__(self, specs: list[GpuNode]):
        self.specs = specs

    def sync(self, kube) -> None:
        labels = upstream.exporter_pod_labels()
        for spec in self.specs:
            if kube.find("pods", dcgm.pod_name(spec.name), dcgm.NAMESPACE) is not None:
                continue
            text: Callable[[str], str] = (
                (lambda n, g=spec.gpus: mig_series(n, g)) if spec.series == "mig"
                else (lambda n, g=spec.gpus: full_series(n, g)))
            dcgm.exporter(kube, spec.name, text,
                          labels=dict(labels[spec.exporter or "device-plugin"]))


def start_exporters(kube: KubeAPI) -> None:
    """Waits until a started world's exporters run (``WorldExporters`` starts them)."""
    kube.settle()


# Worlds whose GPUs come only through the device plugin have no DRA driver, so none of
# its DeviceClasses.
NO_DRA_DRIVER = {"device-plugin-only", "mig-single", "mig-mixed", "time-slicing",
                 "time-slicing-renamed", "eks-efa"}


def _plugin_labels(gpus: int) -> dict[str, str]:
    return {"nvidia.com/gpu.count": str(gpus), "nvidia.com/gpu.product": o.H100, **_versions()}


def stock_dra() -> list[GpuNode]:
    """The NVIDIA DRA chart with default values on two DRA-only GPU nodes."""
    return [GpuNode(f"gpu-dra-{i}", dra=True) for i in range(2)]


def device_plugin_only() -> list[GpuNode]:
    return [GpuNode(f"gpu-dp-{i}", plugin={"nvidia.com/gpu": 4}, labels=_plugin_labels(4))
            for i in range(2)]


def mixed() -> list[GpuNode]:
    """A DRA pool and a device-plugin pool (what aicp builds), one driver: DRA publishes
    the real capture's semver versions (``cudaDriverVersion`` 12.8.0, driver 570.124.6), GFD
    labels the same driver as 570.124.06 / CUDA 12.8."""
    real = upstream.real_gpu_attributes()
    attrs = {k: real[k] for k in ("driverVersion", "cudaDriverVersion")}
    labels = {**_versions(), "nvidia.com/cuda.driver-version.full": "570.124.06",
              "nvidia.com/cuda.runtime-version.full": "12.8"}
    return [GpuNode("gpu-dra-0", dra=True, dra_attributes=attrs, labels={}),
            GpuNode("gpu-dp-0", plugin={"nvidia.com/gpu": 4},
                    labels={**labels, "nvidia.com/gpu.count": "4",
                            "nvidia.com/gpu.product": o.H100,
                            "aicp.dev/gpu-allocator": "device-plugin"})]


def mig_single() -> list[GpuNode]:
    """GFD's MIG single strategy (fixture docs 1 and 2a): nvidia.com/gpu and gpu.count
    count MIG devices (2 GPUs x 2 instances here), the exporter serves MIG series."""
    labels = {**upstream.gfd_labels("mig-single-real"), **_versions()}
    labels["nvidia.com/gpu.count"] = "4"  # doc 2a: the number of MIG devices
    return [GpuNode("gpu-mig-0", gpus=2, plugin={"nvidia.com/gpu": 4}, labels=labels,
                    series="mig")]


def mig_mixed() -> list[GpuNode]:
    """The mixed strategy: MIG instances as nvidia.com/mig-<profile>, nvidia.com/gpu 0."""
    profile = upstream.mig_device()["attributes"]["profile"]["string"]
    labels = {"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig.capable": "true",
              **_versions()}
    return [GpuNode("gpu-mig-0", gpus=2, plugin={f"nvidia.com/mig-{profile}": 4,
                                                 "nvidia.com/gpu": 0},
                    labels=labels, series="mig")]


def time_slicing() -> list[GpuNode]:
    """Fixture doc 2b: 8 GPUs, 4 replicas each, not renamed."""
    labels = {**upstream.gfd_labels("time-slicing"), **_versions()}
    return [GpuNode("gpu-ts-0", gpus=8, plugin={"nvidia.com/gpu": 32}, labels=labels)]


def time_slicing_renamed() -> list[GpuNode]:
    """Fixture doc 2c: renamed to nvidia.com/gpu.shared, labels keyed by it."""
    labels = {**upstream.gfd_labels("renamed"), **_versions()}
    return [GpuNode("gpu-ts-0", gpus=8, plugin={"nvidia.com/gpu.shared": 32}, labels=labels)]


def eks_efa() -> list[GpuNode]:
    """An EKS GPU node with the EFA device plugin's vpc.amazonaws.com/efa."""
    return [GpuNode("gpu-efa-0", plugin={"nvidia.com/gpu": 4}, labels=_plugin_labels(4),
                    extra={"vpc.amazonaws.com/efa": "4"})]


def vm_hosts() -> list[GpuNode]:
    """A DRA container node beside a VM-passthrough host: the operator labels the host
    gpu.present=true and runs no exporter, GFD or container driver there (fixture
    gpu-operator-dcgm-exporter-pods.yaml header)."""
    return [GpuNode("gpu-dra-0", dra=True),
            GpuNode("gpu-vm-0", exporter=None,
                    labels={"nvidia.com/gpu.workload.config": "vm-passthrough"})]


def exporters_both_modes() -> list[GpuNode]:
    """One node's exporter in GPU Operator DRA mode (app: nvidia-dcgm-exporter-dra, holding
    an adminAccess claim on all the node's GPUs), the other's in ClusterPolicy mode (app:
    nvidia-dcgm-exporter)."""
    return [GpuNode("gpu-dra-0", dra=True, exporter="dra"),
            GpuNode("gpu-dra-1", dra=True, exporter="device-plugin")]


WORLDS: dict[str, Callable[[], list[GpuNode]]] = {
    "stock-dra": stock_dra, "device-plugin-only": device_plugin_only, "mixed": mixed,
    "mig-single": mig_single, "mig-mixed": mig_mixed, "time-slicing": time_slicing,
    "time-slicing-renamed": time_slicing_renamed, "eks-efa": eks_efa, "vm-hosts": vm_hosts,
    "exporters-both-modes": exporters_both_modes}


def world(name: str, *, minor: str = "1.35", runtime: GpuRuntime | None = None,
          **options) -> KubeAPI:
    """The named world's emulator, not yet started (``start_exporters`` once started)."""
    options.setdefault("classes", name not in NO_DRA_DRIVER)
    return build(copy.deepcopy(WORLDS[name]()), minor=minor, runtime=runtime, **options)
