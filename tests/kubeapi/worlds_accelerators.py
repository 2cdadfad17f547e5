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
from .controllers.kubelet import GpuRuntime, allocated_gpus, gpu_uuid
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
    vendor: str = "nvidia"         # "amd": ROCm device plugin labels, AMD's exporter
    unschedulable: bool = False    # cordoned (kubectl cordon)
    ready: bool = True             # False: the node lifecycle's Ready=Unknown


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
    present = {"nvidia.com/gpu.present": "true"} if spec.vendor == "nvidia" else {}
    labels = {**present, **spec.labels}
    # Each platform's accelerator taint (the GPU Operator's/aicp's, AMD's and GKE's
    # google.com/tpu=present:NoSchedule, EKS's aws.amazon.com/neuron for Neuron pools).
    # Gaudi pools get none: no Gaudi install documents a default taint; nor does the DRA
    # example driver's kind cluster.
    taint = dict(o.GPU_TAINT) if spec.vendor == "nvidia" else {
        "key": {"amd": "amd.com/gpu", "google": "google.com/tpu"}.get(
            spec.vendor, "aws.amazon.com/neuron"), "value": "present", "effect": "NoSchedule"}
    node = o.node(spec.name, cpu="96", memory="1024Gi", labels=labels, minor=minor,
                  extended=extended or None,
                  taints=[] if spec.vendor in ("gaudi", "example") else [taint],
                  ip=f"10.0.2.{index + 10}")
    if spec.unschedulable:
        # kubectl cordon sets spec.unschedulable; the node controller adds the taint
        # node.kubernetes.io/unschedulable:NoSchedule (kubernetes pkg/controller/
        # nodelifecycle, TaintNodesByCondition).
        node["spec"]["unschedulable"] = True
        node["spec"]["taints"].append({"key": "node.kubernetes.io/unschedulable",
                                       "effect": "NoSchedule"})
    if not spec.ready:
        # A node whose kubelet stopped posting status: Ready=Unknown, reason
        # NodeStatusUnknown, and the not-ready taint (nodelifecycle controller).
        for c in node["status"]["conditions"]:
            if c["type"] == "Ready":
                c.update(status="Unknown", reason="NodeStatusUnknown",
                         message="Kubelet stopped posting node status.")
        node["spec"]["taints"].append({"key": "node.kubernetes.io/unreachable",
                                       "effect": "NoSchedule"})
    return node


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
    amd = [s for s in nodes if s.vendor == "amd" and s.exporter]
    if amd:
        world += [o.namespace(AMD_NAMESPACE), o.ready_daemonset(
            "amd-gpu-metrics-exporter", AMD_NAMESPACE, AMD_IMAGE, len(amd),
            labels=dict(AMD_SELECTOR))]
    if any(x.get("metadata", {}).get("namespace") == "inference" for x in extra or []):
        world.append(o.namespace("inference"))
    world.append(o.node("system-0", minor=minor, ip="10.0.0.10"))
    for i, spec in enumerate(nodes):
        world.append(_node(spec, minor, i))
        if spec.dra and spec.vendor == "google":
            world.append(tpu_slice(spec.name, spec.gpus))
        elif spec.dra and spec.vendor == "amd":
            world.append(amd_dra_slice(spec.name, spec.gpus))
        elif spec.dra and spec.vendor == "example":
            world.append(example_slice(spec.name, spec.gpus))
        elif spec.dra:
            world.append(upstream.gpu_slice(spec.name, spec.gpus, migs_per_gpu=spec.migs_per_gpu,
                                            attributes=spec.dra_attributes))
        if spec.dra and spec.exporter == "dra":
            world.append(_admin_claim(spec.name, world[-1]))
    if classes:
        world += upstream.device_classes()
    kube.seed(world + list(extra or []))
    standard_controllers(kube, logs=runtime or GpuRuntime(), dra=True, kueue=False)
    exporters = [s for s in nodes if s.exporter and s.vendor in ("nvidia", "amd")]
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
            if spec.vendor == "amd":
                amd_exporter(kube, spec)
                continue
            if kube.find("pods", dcgm.pod_name(spec.name), dcgm.NAMESPACE) is not None:
                continue
            text: Callable[[str], str] = (
                (lambda n, g=spec.gpus: mig_series(n, g)) if spec.series == "mig"
                else (lambda n, g=spec.gpus: full_series(n, g)))
            dcgm.exporter(kube, spec.name, text,
                          labels=dict(labels[spec.exporter or "device-plugin"]))


# AMD's Device Metrics Exporter as the AMD GPU Operator runs it: a DaemonSet of
# docker.io/rocm/device-metrics-exporter serving :5000/metrics (ROCm/device-metrics-exporter
# docs/index.md "Metrics endpoint: http://localhost:5000/metrics"; the operator's default
# namespace kube-amd-gpu: ROCm/gpu-operator docs "Installation"). Series names are the
# metric ids of docs/configuration/metricslist.md in lower case (GPU_GFX_ACTIVITY ->
# gpu_gfx_activity); the always-set labels are docs/configuration/configmap.md's (GPU_ID,
# SERIAL_NUMBER, CARD_MODEL, HOSTNAME, GPU_PARTITION_ID, ...), lower case.
AMD_NAMESPACE = "kube-amd-gpu"
AMD_IMAGE = "docker.io/rocm/device-metrics-exporter:v1.4.0"
AMD_SELECTOR = {"app": "amd-gpu-metrics-exporter"}  # the world's own selector label
AMD_METRICS = (("gpu_gfx_activity", "0"), ("gpu_umc_activity", "0"),
               ("gpu_used_vram", "285"), ("gpu_free_vram", "196307"),
               ("gpu_total_vram", "196592"), ("gpu_junction_temperature", "41"),
               ("gpu_package_power", "142"))


def amd_series(node: str, gpus: int) -> str:
    lines = []
    for metric, value in AMD_METRICS:
        for i in range(gpus):
            labels = {"gpu_id": str(i), "serial_number": f"{node}-sn{i:02d}",
                      "card_model": "AMD_Instinct_MI300X_OAM", "hostname": node,
                      "gpu_partition_id": "0", "gpu_compute_partition_type": "spx",
                      "gpu_memory_partition_type": "nps1"}
            lines.append(_line(metric, labels, value))
    return "\n".join(lines) + "\n"


def amd_exporter(kube, spec: GpuNode) -> None:
    name = f"amd-gpu-metrics-exporter-{spec.name}"
    if kube.find("pods", name, AMD_NAMESPACE) is not None:
        return
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": AMD_NAMESPACE, "labels": dict(AMD_SELECTOR)},
        "spec": {"nodeName": spec.name, "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "metrics-exporter", "image": AMD_IMAGE,
                                 "ports": [{"name": "exporter-port",
                                            "containerPort": 5000}]}]}})
    kube.proxy("pod", name, lambda *_: (200, {"Content-Type": "text/plain"},
                                        amd_series(spec.name, spec.gpus)),
               namespace=AMD_NAMESPACE, port=5000)


def start_exporters(kube: KubeAPI) -> None:
    """Waits until a started world's exporters run (``WorldExporters`` starts them)."""
    kube.settle()


# Worlds whose GPUs come only through the device plugin have no DRA driver, so none of
# its DeviceClasses.
NO_DRA_DRIVER = {"device-plugin-only", "mig-single", "mig-mixed", "time-slicing",
                 "time-slicing-renamed", "eks-efa", "amd-beside-nvidia", "tpu-and-neuron"}


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


# AMD node labeller labels for an MI300X (ROCm/k8s-device-plugin docs "Example labels for
# an AMD MI300X GPU") and the AMD GPU Operator's NFD label.
AMD_LABELS = {"feature.node.kubernetes.io/amd-gpu": "true", "amd.com/gpu.cu-count": "304",
              "amd.com/gpu.device-id": "74a1", "amd.com/gpu.family": "AI",
              "amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM",
              "amd.com/gpu.simd-count": "1216", "amd.com/gpu.vram": "192G"}


def amd_beside_nvidia() -> list[GpuNode]:
    """Issue #22's first example: an AMD MI300X pool (ROCm device plugin amd.com/gpu, the
    AMD GPU Operator's Device Metrics Exporter) beside an NVIDIA device-plugin pool."""
    return [GpuNode("gpu-dp-0", plugin={"nvidia.com/gpu": 4}, labels=_plugin_labels(4)),
            GpuNode("gpu-amd-0", gpus=8, vendor="amd", plugin={"amd.com/gpu": 8},
                    labels=dict(AMD_LABELS))]


def _amd_pod_wide(kube, pod: dict, container: str) -> list[dict]:
    node = pod["spec"].get("nodeName", "")
    return allocated_gpus(kube, pod, None if node.startswith("gpu-amd-") else container)


# The negative of amd-beside-nvidia: on the AMD nodes a runtime hands a pod's GPUs (their
# /dev/dri/renderD* and /dev/kfd) to every container of the pod, e.g. a privileged sidecar
# or a runtime honouring a pod-wide visible-devices setting: the leak the WG suite's
# MultiContainerIsolationTest exists for (kubernetes-sigs/ai-conformance
# test/ai_conformance_test.go ``TestSecureAcceleratorAccess``). The NVIDIA node is sound.
AMD_POD_WIDE = GpuRuntime(devices=_amd_pod_wide)


GKE_DRA_POOL = {"cloud.google.com/gke-nodepool": "h100-dra",
                "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
                # DRA pools carry these (GKE "Prepare your GKE infrastructure for DRA
                # workloads": --node-labels=gke-no-default-nvidia-gpu-device-plugin=true,
                # nvidia.com/gpu.present=true).
                "gke-no-default-nvidia-gpu-device-plugin": "true"}


def gke_time_sharing() -> list[GpuNode]:
    """Issue #22's third example: a GKE cluster with a DRA pool and a GPU time-sharing pool
    (gcloud --accelerator=...,gpu-sharing-strategy=time-sharing,max-shared-clients-per-gpu=2:
    GKE labels the node and exposes 2 nvidia.com/gpu per physical GPU; GKE runs no GPU
    Feature Discovery), which GKE does not allow on DRA."""
    real = upstream.real_gpu_attributes()
    attrs = {k: real[k] for k in ("driverVersion", "cudaDriverVersion")}
    return [GpuNode("gke-h100-dra-0", dra=True, dra_attributes=attrs, labels=dict(GKE_DRA_POOL)),
            GpuNode("gke-l4-ts-0", gpus=2, plugin={"nvidia.com/gpu": 4}, labels={
                "cloud.google.com/gke-nodepool": "l4-time-sharing",
                "cloud.google.com/gke-accelerator": "nvidia-l4",
                "cloud.google.com/gke-gpu-sharing-strategy": "time-sharing",
                "cloud.google.com/gke-max-shared-clients-per-gpu": "2"})]


def two_driver_pools() -> list[GpuNode]:
    """Two DRA pools on two driver branches, as the GPU Operator's NVIDIADriver resource
    runs them (one NVIDIADriver per nodeSelector: NVIDIA/gpu-operator
    api/nvidia/v1alpha1/nvidiadriver_types.go); each node's DRA devices report its own."""
    real = upstream.real_gpu_attributes()
    new = {k: real[k] for k in ("driverVersion", "cudaDriverVersion")}
    return [GpuNode("gpu-a-0", dra=True, dra_attributes=new,
                    labels={"aicp.dev/gpu-pool": "h100-new"}),
            GpuNode("gpu-b-0", dra=True, labels={"aicp.dev/gpu-pool": "h100-lts"})]


def cordoned_and_not_ready() -> list[GpuNode]:
    """stock-dra with a cordoned GPU node (no DRA plugin running there any more, no
    exporter) and a NotReady one: every-node checks judge the one that takes work."""
    return [GpuNode("gpu-dra-0", dra=True),
            GpuNode("gpu-dra-1", dra=False, exporter=None, unschedulable=True),
            GpuNode("gpu-dra-2", dra=False, exporter=None, ready=False)]


def dra_mps() -> list[GpuNode]:
    """stock-dra plus a ResourceClaimTemplate configuring MPS (``extra_objects``)."""
    return stock_dra()


def dra_shared_claim_only() -> list[GpuNode]:
    """stock-dra plus one ResourceClaim two pods share, no sharing config: not a strategy."""
    return stock_dra()


def tpu_and_neuron() -> list[GpuNode]:
    """An NVIDIA pool beside a GKE TPU node (google.com/tpu; GKE "TPUs in GKE" node labels)
    and an EKS Inferentia node (aws.amazon.com/neuron; the Neuron device plugin): types the
    vendor table has no exporter or isolation facts for are left out, not failed."""
    return [GpuNode("gpu-dp-0", plugin={"nvidia.com/gpu": 4}, labels=_plugin_labels(4)),
            GpuNode("tpu-v5e-0", vendor="google", exporter=None, plugin={"google.com/tpu": 4},
                    labels={"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                            "cloud.google.com/gke-tpu-topology": "2x2"}),
            GpuNode("inf2-0", vendor="aws", exporter=None,
                    plugin={"aws.amazon.com/neuron": 1, "aws.amazon.com/neuroncore": 2})]


# Issue #22: the non-GPU accelerators' pools the isolation check judges by their rows.
# Gaudi: an HLS-Gaudi2 server's 8 Gaudis through the Habana device plugin (habana.ai/gaudi;
# HabanaAI/habanalabs-k8s-device-plugin v1.16.0 server.go ``Allocate``: /dev/accel/accel<N>
# and accel_controlD<N> per allocated Gaudi, at their host paths).
def gaudi_pool() -> list[GpuNode]:
    return [GpuNode("gaudi-0", gpus=8, vendor="gaudi", exporter=None,
                    plugin={"habana.ai/gaudi": 8})]


def neuron_pool() -> list[GpuNode]:
    """A trn1.32xlarge through the Neuron device plugin: 16 devices of 2 NeuronCores, both
    resources advertised (aws-neuron-sdk deploy/includes/k8s-neuron-device-plugin.rst: the
    plugin registers aws.amazon.com/neuron and aws.amazon.com/neuroncore; trn1.32xlarge's
    16 devices /dev/neuron0..15: deploy/tutorials/oci-hook.rst)."""
    return [GpuNode("trn1-0", gpus=16, vendor="aws", exporter=None,
                    plugin={"aws.amazon.com/neuron": 16, "aws.amazon.com/neuroncore": 32})]


def tpu_pool() -> list[GpuNode]:
    """A GKE TPU v5e pool alone (ct5lp-hightpu-4t: google.com/tpu 4, GKE "TPUs in GKE"
    node labels): the table has no isolation facts for it (its row says why)."""
    return [GpuNode("tpu-v5e-0", vendor="google", exporter=None, plugin={"google.com/tpu": 4},
                    labels={"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                            "cloud.google.com/gke-tpu-topology": "2x2"})]


def tpu_pool_dra() -> list[GpuNode]:
    """A TPU v6e node (ct6e-standard-4t: 4 chips, topology 2x2) whose chips the TPU DRA
    driver publishes (kubernetes-sigs/dra-driver-google-tpu v0.2.0; the node pool label
    cloud.google.com/gke-tpu-dra-driver=true of its demo/clusters/gke/
    create-tpu-cluster-for-dra.sh), no google.com/tpu device plugin resource."""
    return [GpuNode("tpu-v6e-0", gpus=4, vendor="google", dra=True, exporter=None,
                    labels={"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                            "cloud.google.com/gke-tpu-topology": "2x2",
                            "cloud.google.com/gke-tpu-dra-driver": "true"})]


def tpu_slice(node: str, chips: int) -> dict:
    """The TPU DRA driver's ResourceSlice for a single-host v6e node: one device per chip,
    named by its index, with the attributes its README's ``kubectl get resourceslice``
    shows (accelerator, brand, chipCount, index, topology, tpuGen, uuid)."""
    topology = {1: "1x1", 4: "2x2", 8: "2x4"}.get(chips, f"1x{chips}")
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-tpu.google.com"},
            "spec": {"driver": "tpu.google.com", "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": str(i), "attributes": {
                         "accelerator": {"string": "tpu-v6e-slice"},
                         "brand": {"string": "Google"}, "chipCount": {"int": chips},
                         "index": {"int": i}, "topology": {"string": topology},
                         "tpuGen": {"string": "v6e"},
                         "uuid": {"string": "tpu-" + gpu_uuid(node, i)[4:]}}}
                         for i in range(chips)]}}


# The TPU DRA chart's class (dra-driver-google-tpu v0.2.0 deployments/helm/
# dra-driver-google-tpu/templates/deviceclass.yaml).
TPU_DEVICE_CLASS = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                    "metadata": {"name": "tpu.google.com"},
                    "spec": {"selectors": [{"cel": {
                        "expression": 'device.driver == "tpu.google.com"'}}]}}


def _node_devices(kube, pod: dict, container: str) -> list[dict]:
    """Every device of the container's node: its DRA devices, else those of each
    accelerator resource it advertises (index 0 upward, as the device plugin names them)."""
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {}
    published = [{**d, "driver": s["spec"]["driver"]}
                 for s in kube.list("resourceslices.resource.k8s.io", fields=(
                     f"spec.nodeName={(node.get('metadata') or {}).get('name', '')}"))
                 for d in s["spec"].get("devices") or []]
    if published:
        return published
    alloc = (node.get("status") or {}).get("allocatable") or {}
    count, resource = max((int(str(alloc.get(r, 0))), r) for r in ("habana.ai/gaudi",
                                                                   "aws.amazon.com/neuron"))
    return [{"name": f"dev-{i}", "resource": resource, "attributes": {"index": {"int": i}}}
            for i in range(count)]


def _visible_all(kube, pod: dict, container: str) -> list[dict]:
    """What a container whose environment asks the vendor's runtime hook for every device
    sees: its own devices when it was given some, else all of its node's."""
    return allocated_gpus(kube, pod, container) or _node_devices(kube, pod, container)


# The negatives: a runtime hook that honours a "all devices" variable in a container that
# requested none, so it opens devices it was not allocated (the leak the WG suite's
# isolation tests exist for: kubernetes-sigs/ai-conformance test/ai_conformance_test.go
# ``TestSecureAcceleratorAccess``). Gaudi: habana-container-runtime configures device
# access for any container with HABANA_VISIBLE_DEVICES set (HabanaAI/habana-container-
# runtime README), e.g. =all baked into an image; Neuron: the OCI hook exposes every device
# for AWS_NEURON_VISIBLE_DEVICES=ALL (aws-neuron-sdk deploy/tutorials/oci-hook.rst). For
# TPUs no such variable is published: the same leak is modelled as a runtime that exposes
# every chip node of the node to a container that claimed none.
VISIBLE_ALL = GpuRuntime(devices=_visible_all)


# Issue #22: dra_support's worlds of other vendors' DRA drivers (``DRA_WORLDS`` below).
def amd_dra_slice(node: str, gpus: int) -> dict:
    """The AMD GPU DRA driver's ResourceSlice for an MI300X node, shaped as the capture in
    ROCm/k8s-gpu-dra-driver docs/demo.md ("Verify driver installation": devices
    ``gpu-<card>-<render>`` such as gpu-0-128 and gpu-48-176, so 8 apart on an 8-GPU node;
    attributes type amdgpu, cardIndex, renderIndex, productName AMD_Instinct_MI300X_OAM,
    family AI, partitionProfile spx_nps1, driverVersion 6.12.12; capacity computeUnits 304,
    memory 196592Mi, simdUnits 1216; pool named after the node)."""
    devices = []
    for i in range(gpus):
        card, render = 8 * i, 128 + 8 * i
        devices.append({"name": f"gpu-{card}-{render}", "attributes": {
            "type": {"string": "amdgpu"}, "cardIndex": {"int": card},
            "renderIndex": {"int": render}, "pciAddr": {"string": f"0003:{i:02x}:02.0"},
            "deviceID": {"string": str(994913940318892495 + i)},
            "family": {"string": "AI"}, "productName": {"string": "AMD_Instinct_MI300X_OAM"},
            "partitionProfile": {"string": "spx_nps1"},
            "driverVersion": {"version": "6.12.12"},
            "driverSrcVersion": {"string": "7AA72EC2C8F513519BE86FD"},
            "resource.kubernetes.io/pcieRoot": {"string": f"pci0003:{i:02x}"}},
            "capacity": {"computeUnits": {"value": "304"}, "memory": {"value": "196592Mi"},
                         "simdUnits": {"value": "1216"}}})
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-gpu.amd.com"},
            "spec": {"driver": "gpu.amd.com", "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}}


# The AMD DRA chart's class (ROCm/k8s-gpu-dra-driver helm-charts-k8s/templates/
# deviceclass.yaml, written there as resource.k8s.io/v1beta1; the same object in v1).
AMD_DEVICE_CLASS = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                    "metadata": {"name": "gpu.amd.com"},
                    "spec": {"selectors": [{"cel": {
                        "expression": "device.driver == 'gpu.amd.com'"}}]}}


def example_slice(node: str, gpus: int) -> dict:
    """kubernetes-sigs/dra-example-driver's ResourceSlice (its README's ``kubectl get
    resourceslice -o yaml``; cmd/dra-example-kubeletplugin discovery.go): gpu-<i> with
    index, uuid, model LATEST-GPU-MODEL, driverVersion 1.0.0, memory 80Gi."""
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-gpu.example.com"},
            "spec": {"driver": "gpu.example.com", "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": f"gpu-{i}", "attributes": {
                         "index": {"int": i}, "model": {"string": "LATEST-GPU-MODEL"},
                         "driverVersion": {"version": "1.0.0"},
                         "uuid": {"string": "gpu-" + gpu_uuid(node, i)[4:]}},
                         "capacity": {"memory": {"value": "80Gi"}}} for i in range(gpus)]}}


# The example driver's chart's class (dra-example-driver deployments/helm/
# dra-example-driver/templates/deviceclass.yaml).
EXAMPLE_DEVICE_CLASS = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                        "metadata": {"name": "gpu.example.com"},
                        "spec": {"selectors": [{"cel": {
                            "expression": "device.driver == 'gpu.example.com'"}}]}}


def amd_dra_pool() -> list[GpuNode]:
    """An MI300X node whose 8 GPUs the AMD GPU DRA driver publishes (no amd.com/gpu device
    plugin; AMD's node labeller labels as AMD_LABELS)."""
    return [GpuNode("gpu-amd-dra-0", gpus=8, vendor="amd", dra=True, exporter=None,
                    labels=dict(AMD_LABELS))]


def nvidia_and_tpu_dra() -> list[GpuNode]:
    """A GKE cluster with an NVIDIA DRA pool (GKE_DRA_POOL labels) and a TPU v6e pool on the
    TPU DRA driver (tpu_pool_dra)."""
    return [GpuNode("gke-h100-dra-0", dra=True, exporter=None, labels=dict(GKE_DRA_POOL)),
            *tpu_pool_dra()]


def example_driver_pool() -> list[GpuNode]:
    """A kind node running only kubernetes-sigs/dra-example-driver (8 emulated GPUs)."""
    return [GpuNode("example-0", gpus=8, vendor="example", dra=True, exporter=None)]


def _amd_claim_sees_node(kube, pod: dict, container: str) -> list[dict]:
    """A claimed container that gets every AMD GPU of its node, not only its claim's: the
    devices it was not allocated are the leak (its own device list, else nothing)."""
    given = allocated_gpus(kube, pod, container)
    return _node_devices(kube, pod, container) if given else []


# The negative: the claimed container opens every /dev/dri/renderD* of its node. No
# published AMD setting does this to a DRA-claimed container (the driver's CDI spec names
# the claim's devices only: ROCm/k8s-gpu-dra-driver state.go ``applyConfig``), so it is
# modelled as a runtime that hands the node's GPUs to any container given one, the leak a
# claim "for one device" must not have.
AMD_CLAIM_SEES_NODE = GpuRuntime(devices=_amd_claim_sees_node)


# Objects a world adds beside its nodes (namespaced things a platform team creates).
MPS_TEMPLATE = {
    # kubernetes-sigs/dra-driver-nvidia-gpu demo/specs/quickstart (gpu-test-mps): a claim
    # template whose GpuConfig (resource.nvidia.com/v1beta1) sets sharing.strategy MPS.
    "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
    "metadata": {"name": "mps-gpu", "namespace": "inference"},
    "spec": {"spec": {"devices": {
        "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}],
        "config": [{"requests": ["gpu"], "opaque": {"driver": "gpu.nvidia.com", "parameters": {
            "apiVersion": "resource.nvidia.com/v1beta1", "kind": "GpuConfig",
            "sharing": {"strategy": "MPS", "mpsConfig": {
                "defaultActiveThreadPercentage": 50,
                "defaultPinnedDeviceMemoryLimit": "10Gi"}}}}}]}}}}
SHARED_CLAIM = {
    # A ResourceClaim two pods reference (kubernetes.io/docs "Dynamic Resource Allocation":
    # a ResourceClaim referenced by several pods is shared), no config.
    "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
    "metadata": {"name": "shared-gpu", "namespace": "inference"},
    "spec": {"devices": {"requests": [{"name": "gpu",
                                       "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}}}
EXTRA: dict[str, list[dict]] = {"dra-mps": [MPS_TEMPLATE], "dra-shared-claim-only": [SHARED_CLAIM]}


WORLDS: dict[str, Callable[[], list[GpuNode]]] = {
    "stock-dra": stock_dra, "device-plugin-only": device_plugin_only, "mixed": mixed,
    "mig-single": mig_single, "mig-mixed": mig_mixed, "time-slicing": time_slicing,
    "time-slicing-renamed": time_slicing_renamed, "eks-efa": eks_efa, "vm-hosts": vm_hosts,
    "exporters-both-modes": exporters_both_modes,
    # Issue #22 (section 5): the vendors and platforms the probes once misjudged.
    "amd-beside-nvidia": amd_beside_nvidia, "gke-time-sharing": gke_time_sharing,
    "two-driver-pools": two_driver_pools, "cordoned-and-not-ready": cordoned_and_not_ready,
    "dra-mps": dra_mps, "dra-shared-claim-only": dra_shared_claim_only,
    "tpu-and-neuron": tpu_and_neuron}


# The isolation check's worlds of issue #22's non-GPU accelerators: name -> (nodes, the
# runtime their containers get: None for the vendor's own). Their verdicts are in
# tests/verify/test_accelerator_isolation_worlds.py.
ISOLATION_WORLDS: dict[str, tuple[Callable[[], list[GpuNode]], GpuRuntime | None]] = {
    "gaudi-pool": (gaudi_pool, None), "gaudi-visible-all": (gaudi_pool, VISIBLE_ALL),
    "neuron-pool": (neuron_pool, None), "neuron-visible-all": (neuron_pool, VISIBLE_ALL),
    "tpu-pool": (tpu_pool, None),
    "tpu-dra-pool": (tpu_pool_dra, None), "tpu-dra-visible-all": (tpu_pool_dra, VISIBLE_ALL),
    "gaudi-neuron-tpu": (lambda: [*gaudi_pool(), *neuron_pool(), *tpu_pool()], None)}


# dra_support's worlds of issue #22: name -> (nodes, the runtime their containers get: None
# for the vendors' own, the DRA drivers' DeviceClasses beside the NVIDIA chart's when
# ``nvidia`` is True). Verdicts: tests/verify/test_dra_worlds.py.
DRA_WORLDS: dict[str, tuple[Callable[[], list[GpuNode]], GpuRuntime | None, list[dict],
                            bool]] = {
    "tpu-dra-pool": (tpu_pool_dra, None, [TPU_DEVICE_CLASS], False),
    "amd-dra-pool": (amd_dra_pool, None, [AMD_DEVICE_CLASS], False),
    "amd-dra-claim-sees-node": (amd_dra_pool, AMD_CLAIM_SEES_NODE, [AMD_DEVICE_CLASS], False),
    "nvidia-and-tpu-dra": (nvidia_and_tpu_dra, None, [TPU_DEVICE_CLASS], True),
    "dra-example-driver": (example_driver_pool, None, [EXAMPLE_DEVICE_CLASS], False),
    "nvidia-and-example-driver": (lambda: [*stock_dra()[:1], *example_driver_pool()], None,
                                  [EXAMPLE_DEVICE_CLASS], True)}


def dra_world(name: str) -> KubeAPI:
    """A ``DRA_WORLDS`` world's emulator, not yet started."""
    make, runtime, classes, nvidia = DRA_WORLDS[name]
    return build(copy.deepcopy(make()), classes=nvidia, runtime=runtime,
                 extra=copy.deepcopy(classes))


def isolation_world(name: str) -> KubeAPI:
    """An ``ISOLATION_WORLDS`` world's emulator, not yet started: no NVIDIA DRA driver, the
    TPU DRA driver's DeviceClass where a TPU node publishes DRA devices."""
    make, runtime = ISOLATION_WORLDS[name]
    nodes = copy.deepcopy(make())
    tpu_dra = any(n.dra and n.vendor == "google" for n in nodes)
    return build(nodes, classes=False, runtime=runtime,
                 extra=[copy.deepcopy(TPU_DEVICE_CLASS)] if tpu_dra else None)


def world(name: str, *, minor: str = "1.35", runtime: GpuRuntime | None = None,
          **options) -> KubeAPI:
    """The named world's emulator, not yet started (``start_exporters`` once started)."""
    options.setdefault("classes", name not in NO_DRA_DRIVER)
    options.setdefault("extra", copy.deepcopy(EXTRA.get(name, [])))
    return build(copy.deepcopy(WORLDS[name]()), minor=minor, runtime=runtime, **options)
