"""The accelerator vendors, one row each (helpers, not a probe).

Every accelerator probe asks this table what a vendor's accelerator looks like in a
cluster: the extended resources its device plugin advertises, the DRA driver names its
ResourceSlices carry, the node labels its discovery puts on nodes, the device nodes and
tools a container given one gets, and the metrics exporter that serves per-device
utilisation and memory (its image, pod labels, port, metric names and the label that
names the device). Each row cites the upstream it was read from. A probe judges each
accelerator type by its own row; where a row lacks the facts a probe needs (an exporter
for ``accelerator_metrics``, the device nodes (``Isolation``) the isolation check reads
for ``secure_accelerator_access``) that type is left out of the verdict with the reason in the
evidence, never failed. A new accelerator is a new row: nothing else changes
(tests/verify/test_vendor_table.py proves it).

The per-device label keys and the name patterns are the working group's vendor-neutral
metrics test's (kubernetes-sigs/ai-conformance test/accelerator_metrics_test.go
``deviceLabelKeys``, ``utilizationNamePatterns``, ``memoryNamePatterns``): an exporter of
a row without exact metric names is judged by those patterns, as the WG test judges any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# kubernetes-sigs/ai-conformance test/accelerator_metrics_test.go
WG_DEVICE_LABELS = ("gpu", "UUID", "uuid", "device_id", "dev_id", "card_id", "GPU_I_ID",
                    "minor_number", "pci_bus_id")
WG_UTILISATION_PATTERNS = ("util", "utilization")
WG_MEMORY_PATTERNS = ("mem", "memory", "fb", "vram", "hbm")


@dataclass(frozen=True)
class Exporter:
    """A per-device metrics exporter as its installs deploy it."""

    name: str
    images: tuple[str, ...]                 # image repository suffixes
    pod_labels: tuple[tuple[str, str], ...]  # labels its installs put on the pods
    port: int                               # its default metrics port
    utilisation: tuple[str, ...]            # exact metric names, any one suffices
    memory: tuple[str, ...]
    device_labels: tuple[str, ...]          # the label(s) naming a device, in preference
    instance_label: str = ""                # a partition of a device (MIG: GPU_I_ID)
    instance_utilisation: tuple[str, ...] = ()  # utilisation reported for partitions
    port_names: tuple[str, ...] = ("metrics",)
    optional: tuple[tuple[str, str], ...] = ()  # (what, metric) recorded when present
    source: str = ""


@dataclass(frozen=True)
class Isolation:
    """What secure_accelerator_access reads in a container: ``devices`` a glob matching one
    device node per accelerator, mounted at its host path (so the path names the device);
    ``access`` nodes any container given one gets and one without must not see; ``command``
    lists the devices, its device lines starting with ``prefix``. ``tool_judged``: the
    runtime puts the tool only into containers given a device (NVIDIA's toolkit), so its
    listing is judged too; elsewhere the tool comes with the image and is only recorded.
    The WG suite judges device paths alone (kubernetes-sigs/ai-conformance
    test/util_test.go ``acceleratorProbingContainer``: ``ls <DevicePath>``)."""

    devices: str
    command: str = ""
    prefix: str = ""
    access: tuple[str, ...] = ()
    tool_judged: bool = False
    # The DRA driver prepares only a claim for every device of a node (Google's TPU
    # driver): the holder claims them all (allocationMode All) and must see them, no
    # second holder can run beside it, so "a different device" is never judged.
    whole_node: bool = False
    # False where these facts were published for the DRA driver only: the vendor's
    # device-plugin nodes are left out of the check with the reason.
    device_plugin: bool = True


@dataclass(frozen=True)
class Vendor:
    """One accelerator vendor's facts (module doc)."""

    name: str
    kind: str                                 # "GPU", "TPU", "Gaudi", "Neuron", ...
    resources: tuple[str, ...] = ()           # device-plugin extended resources
    resource_prefixes: tuple[str, ...] = ()   # families (NVIDIA MIG nvidia.com/mig-<p>)
    dra_drivers: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()  # (key, value; "" for any value)
    device_paths: tuple[str, ...] = ()        # shell globs of the device nodes
    tools: tuple[str, ...] = ()               # utilities the runtime gives a container
    exporter: Exporter | None = None
    # What the isolation check reads (``Isolation``); None: the type is left out of it.
    isolation: Isolation | None = None
    # Node labels that carry the driver version (driver_runtime_management's source).
    driver_version_labels: tuple[str, ...] = ()
    # Device-plugin resources whose unit is part of one device (a NeuronCore of a Neuron
    # device): two pods holding one each may share a device node, so the isolation check
    # does not ask them to see different devices, as for time-sliced GPU replicas.
    partial_resources: tuple[str, ...] = ()
    # Values of its DRA driver's ``type`` device attribute that name a whole device (the
    # others are partitions: NVIDIA's mig, AMD's amdgpu-partition); a driver publishing no
    # ``type`` publishes whole devices only.
    dra_whole_types: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())

    def offers(self, resource: str) -> bool:
        return resource in self.resources or any(resource.startswith(p)
                                                 for p in self.resource_prefixes)


VENDORS: tuple[Vendor, ...] = (
    Vendor(
        "NVIDIA", "GPU",
        # The device plugin's resource, its renamed sharing resource and MIG mixed-strategy
        # resources: NVIDIA/k8s-device-plugin v0.20 (README "Shared Access to GPUs",
        # renameByDefault; internal/rm MIG strategies).
        resources=("nvidia.com/gpu", "nvidia.com/gpu.shared"),
        resource_prefixes=("nvidia.com/mig-",),
        # kubernetes-sigs/dra-driver-nvidia-gpu v0.4.1 deployments/helm templates; its
        # device types gpu, mig, vfio (cmd/gpu-kubelet-plugin/deviceinfo.go).
        dra_drivers=("gpu.nvidia.com",), dra_whole_types=("gpu",),
        # GPU Feature Discovery / GPU Operator: NVIDIA/k8s-device-plugin internal/lm;
        # GKE's node label: cloud.google.com/gke-accelerator (GKE "About GPUs").
        node_labels=(("nvidia.com/gpu.present", "true"),
                     ("cloud.google.com/gke-accelerator", "nvidia-")),
        device_paths=("/dev/nvidia[0-9]*",),
        tools=("nvidia-smi",),
        isolation=Isolation("/dev/nvidia[0-9]*", "nvidia-smi -L", "GPU ", tool_judged=True),
        # GFD: NVIDIA/k8s-device-plugin v0.20 internal/lm/nvml.go newVersionLabeler.
        driver_version_labels=("nvidia.com/cuda.driver-version.full",
                               "nvidia.com/cuda.driver.major"),
        exporter=Exporter(
            "DCGM exporter", images=("dcgm-exporter",),
            # NVIDIA/gpu-operator assets/state-dcgm-exporter/0800_daemonset.yaml (and its
            # DRA mode), NVIDIA/dcgm-exporter deployment/templates/_helpers.tpl.
            pod_labels=(("app", "nvidia-dcgm-exporter"), ("app", "nvidia-dcgm-exporter-dra"),
                        ("app.kubernetes.io/name", "dcgm-exporter")),
            port=9400, port_names=("metrics", "gpu-metrics"),
            utilisation=("DCGM_FI_DEV_GPU_UTIL",),
            memory=("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"),
            device_labels=("UUID", "uuid", "gpu"),
            # MIG: no GPU_UTIL; DCGM_FI_PROF_GR_ENGINE_ACTIVE per GPU_I_ID
            # (NVIDIA/dcgm-exporter#216, #430; internal/pkg/rendermetrics).
            instance_label="GPU_I_ID", instance_utilisation=("DCGM_FI_PROF_GR_ENGINE_ACTIVE",),
            optional=(("temperature", "DCGM_FI_DEV_GPU_TEMP"),
                      ("power", "DCGM_FI_DEV_POWER_USAGE")),
            source="NVIDIA/dcgm-exporter etc/default-counters.csv"),
        sources=("NVIDIA/k8s-device-plugin v0.20", "kubernetes-sigs/dra-driver-nvidia-gpu v0.4.1",
                 "NVIDIA/gpu-operator", "NVIDIA/dcgm-exporter")),
    Vendor(
        "AMD", "GPU",
        # ROCm/k8s-device-plugin README (resource amd.com/gpu; node labeller amd.com/gpu.*).
        resources=("amd.com/gpu",),
        # ROCm/k8s-gpu-dra-driver (driver gpu.amd.com: pkg/consts/consts.go; DeviceClass
        # gpu.amd.com selecting ``device.driver == 'gpu.amd.com'``: helm-charts-k8s/
        # templates/deviceclass.yaml). Its devices ``gpu-<card>-<render>`` are typed
        # ``amdgpu`` (whole GPU) or ``amdgpu-partition`` (docs/driver-attributes.md), and a
        # claimed container gets /dev/kfd and each device's /dev/dri/card<N> and
        # renderD<N> at their host paths (cmd/gpu-kubeletplugin/state.go ``applyConfig``),
        # as from the device plugin: the isolation facts below hold for both.
        dra_drivers=("gpu.amd.com",), dra_whole_types=("amdgpu",),
        # The AMD GPU Operator's NFD rule: feature.node.kubernetes.io/amd-gpu=true
        # (ROCm/gpu-operator docs "Installation", node labelling).
        node_labels=(("feature.node.kubernetes.io/amd-gpu", "true"),
                     ("amd.com/gpu.family", "")),
        # ROCm/device-metrics-exporter docs/index.md: the exporter needs /dev/dri and /dev/kfd.
        device_paths=("/dev/kfd", "/dev/dri/renderD*"),
        tools=("amd-smi", "rocm-smi"),
        # The ROCm device plugin's Allocate gives a container /dev/kfd (shared by all GPUs)
        # and each allocated GPU's /dev/dri/card<N> and /dev/dri/renderD<N>, each at its host
        # path (ROCm/k8s-device-plugin internal/pkg/plugin/plugin.go ``Allocate``; ROCm docs
        # "Running ROCm Docker containers": --device=/dev/kfd --device=/dev/dri/renderD<N>).
        # It injects no tool: amd-smi (ROCm >= 6.0, replacing rocm-smi: ROCm/amdsmi docs
        # "AMD SMI CLI tool usage") comes with a ROCm image, so ``amd-smi list`` ("GPU: N"
        # blocks) is recorded, not judged.
        isolation=Isolation("/dev/dri/renderD*", "amd-smi list", "GPU: ",
                            access=("/dev/kfd",)),
        exporter=Exporter(
            # Found by its image (rocm/device-metrics-exporter) through its DaemonSet: the
            # pod labels differ between the operator and the chart.
            "AMD Device Metrics Exporter", images=("device-metrics-exporter",),
            pod_labels=(),
            # docs/index.md: "Metrics endpoint: http://localhost:5000/metrics".
            port=5000,
            # docs/configuration/metricslist.md (GPU_GFX_ACTIVITY, GPU_USED_VRAM,
            # GPU_FREE_VRAM, exported in lower case); labels: docs/configuration/
            # configmap.md (GPU_ID, SERIAL_NUMBER, ... always set; GPU_UUID optional).
            utilisation=("gpu_gfx_activity",),
            memory=("gpu_used_vram", "gpu_free_vram", "gpu_total_vram"),
            device_labels=("gpu_uuid", "serial_number", "gpu_id", "card_id"),
            optional=(("temperature", "gpu_junction_temperature"),
                      ("power", "gpu_package_power")),
            source="ROCm/device-metrics-exporter docs/configuration/metricslist.md"),
        sources=("ROCm/k8s-device-plugin", "ROCm/k8s-gpu-dra-driver", "ROCm/gpu-operator",
                 "ROCm/device-metrics-exporter")),
    Vendor(
        "Intel", "GPU",
        # intel/intel-device-plugins-for-kubernetes cmd/gpu_plugin (i915 and xe drivers).
        resources=("gpu.intel.com/i915", "gpu.intel.com/xe"),
        # intel/intel-resource-drivers-for-kubernetes (GPU DRA driver gpu.intel.com).
        dra_drivers=("gpu.intel.com",),
        # intel-device-plugins-for-kubernetes deployments/nfd: intel.feature.node...gpu.
        node_labels=(("intel.feature.node.kubernetes.io/gpu", "true"),),
        device_paths=("/dev/dri/renderD*", "/dev/dri/card*"),
        tools=("xpu-smi",),
        # The GPU plugin mounts each allocated GPU's /dev/dri/card<N> and renderD<N> at their
        # host paths and injects no tool (intel/intel-device-plugins-for-kubernetes
        # cmd/gpu_plugin/gpu_plugin.go ``Allocate`` / README "Modes and Configuration").
        isolation=Isolation("/dev/dri/renderD*"),
        # Intel XPU Manager's DaemonSet (intel/xpumanager deployment/kubernetes/daemonset/
        # base/daemonset-intel-xpum.yaml: app=intel-xpumanager, image intel/xpumanager, the
        # exporter on 29999 "metrics"); it labels devices dev_id (the WG test's comment), its
        # metric names are matched by the WG patterns.
        exporter=Exporter("Intel XPU Manager", images=("intel/xpumanager",),
                          pod_labels=(("app", "intel-xpumanager"),), port=29999,
                          utilisation=(), memory=(), device_labels=("dev_id",),
                          source="intel/xpumanager deployment/kubernetes/daemonset"),
        sources=("intel/intel-device-plugins-for-kubernetes",
                 "intel/intel-resource-drivers-for-kubernetes")),
    Vendor(
        "Intel Gaudi", "Gaudi",
        # HabanaAI/habanalabs-k8s-device-plugin (habana.ai/gaudi);
        # intel/intel-resource-drivers-for-kubernetes (Gaudi DRA driver gaudi.intel.com).
        resources=("habana.ai/gaudi",),
        dra_drivers=("gaudi.intel.com",),
        # The device plugin's Allocate gives a container, per allocated Gaudi, its
        # /dev/accel/accel<minor> and /dev/accel/accel_controlD<minor>, each at its host
        # path, and HABANA_VISIBLE_DEVICES (HabanaAI/habanalabs-k8s-device-plugin v1.16.0
        # server.go ``Allocate``); the Gaudi DRA driver's CDI spec injects the same two nodes
        # per device (intel/intel-resource-drivers-for-kubernetes pkg/gaudi/cdihelpers).
        device_paths=("/dev/accel/accel*",),
        # hl-smi comes with the Gaudi images, not from the plugin (the plugin's own
        # examples/hl-smi-test.yml runs it from vault.habana.ai/gaudi-docker/.../
        # pytorch-installer), so it is no evidence of isolation and is not run.
        tools=("hl-smi",),
        # accel[0-9]* names one node per Gaudi (accel_controlD<N> is the same device's
        # control node and does not match); the device paths tell two Gaudis apart.
        isolation=Isolation("/dev/accel/accel[0-9]*"),
        sources=("HabanaAI/habanalabs-k8s-device-plugin v1.16.0",
                 "intel/intel-resource-drivers-for-kubernetes")),
    Vendor(
        "Google", "TPU",
        # GKE "TPUs in GKE": resource google.com/tpu, node labels
        # cloud.google.com/gke-tpu-accelerator and gke-tpu-topology.
        resources=("google.com/tpu",),
        # kubernetes-sigs/dra-driver-google-tpu v0.2.0 (DriverName tpu.google.com,
        # cmd/tpu-dra-kubeletplugin/main.go; its chart's DeviceClass tpu.google.com).
        dra_drivers=("tpu.google.com",),
        node_labels=(("cloud.google.com/gke-tpu-accelerator", ""),),
        # One node per chip: /dev/accel<n> up to v4, /dev/vfio/<iommu group> (plus the
        # VFIO container node /dev/vfio/vfio) from v5 on (dra-driver-google-tpu v0.2.0
        # README "TPU discovery" and its claimed pod's ``ls -l /dev/vfio/``).
        device_paths=("/dev/accel[0-9]*", "/dev/vfio/[0-9]*"),
        # Isolation through the DRA driver: a claim's container gets its chips' nodes and
        # /dev/vfio/vfio (README, ``ls -l /dev/vfio/`` in the claimed pod). The driver
        # prepares only claims for every chip of the node ("only requests for all tpu
        # devices ... on the node are supported", cmd/tpu-dra-kubeletplugin/state.go; its
        # demo claims use allocationMode All), hence ``whole_node``. GKE's TPU device plugin
        # (google.com/tpu) is not published: which device nodes a container given k of a
        # node's chips gets is documented nowhere, so device-plugin TPU nodes are left out.
        isolation=Isolation("/dev/vfio/[0-9]* /dev/accel[0-9]*", access=("/dev/vfio/vfio",),
                            whole_node=True, device_plugin=False),
        sources=("cloud.google.com/kubernetes-engine/docs/concepts/tpus",
                 "kubernetes-sigs/dra-driver-google-tpu v0.2.0")),
    Vendor(
        "AWS", "Neuron",
        # aws-neuron/aws-neuron-sdk containers/kubernetes (Neuron device plugin:
        # aws.amazon.com/neuron, neuroncore, neurondevice).
        resources=("aws.amazon.com/neuron", "aws.amazon.com/neuroncore",
                   "aws.amazon.com/neurondevice"),
        # The device plugin hands a container each allocated device as --device=/dev/neuron<N>
        # (aws-neuron-sdk deploy/infrastructure/scheduler-flow.rst, step 11), at its host
        # path as Docker's and ECS's --device do (deploy/environments/docker-setup.rst,
        # deploy/tutorials/oci-hook.rst: containerPath = hostPath = /dev/neuron<N>), and
        # "ensures exclusive access to the assigned devices" (deploy/includes/
        # k8s-neuron-device-plugin.rst).
        device_paths=("/dev/neuron*",),
        # neuron-ls (aws-neuronx-tools) comes with the image; inside a container it lists
        # only the exposed devices (docker-setup.rst), so it is evidence only where the image
        # has it: not run, the device nodes are the judgement.
        tools=("neuron-ls",),
        isolation=Isolation("/dev/neuron[0-9]*"),
        # aws.amazon.com/neuroncore allocates single cores; two cores of one device are two
        # containers on one /dev/neuron<N> (scheduler-flow.rst: --device=/dev/neuron1 with
        # NEURON_RT_VISIBLE_CORES=2,3).
        partial_resources=("aws.amazon.com/neuroncore",),
        sources=("aws-neuron/aws-neuron-sdk",)),
)


def by_resource(resource: str, vendors: tuple[Vendor, ...] | None = None) -> Vendor | None:
    return next((v for v in vendors or VENDORS if v.offers(resource)), None)


def by_driver(driver: str, vendors: tuple[Vendor, ...] | None = None) -> Vendor | None:
    return next((v for v in vendors or VENDORS if driver in v.dra_drivers), None)


def is_whole_device_type(value: str) -> bool:
    """A DRA ``type`` attribute value that names a whole device (``dra_whole_types``)."""
    return any(value in v.dra_whole_types for v in VENDORS)


def is_accelerator_resource(resource: str) -> bool:
    return by_resource(resource) is not None


def is_accelerator_driver(driver: str) -> bool:
    return by_driver(driver) is not None


def _labelled(v: Vendor, labels: dict[str, str]) -> bool:
    return any(k in labels and (not want or labels[k] == want or labels[k].startswith(want))
               for k, want in v.node_labels)


def of_node(node: dict, drivers: set[str] | None = None) -> Vendor | None:
    """The vendor whose accelerators a node offers: by its advertised resources, then the
    DRA drivers publishing devices for it, then its labels (hints last)."""
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    labels = meta.get("labels") or {}
    for resource, quantity in (status.get("allocatable") or {}).items():
        if str(quantity) not in ("0", "") and (v := by_resource(resource)):
            return v
    for driver in sorted(drivers or ()):
        if v := by_driver(driver):
            return v
    return next((v for v in VENDORS if _labelled(v, labels)), None)


def exporter_of(vendor: Vendor) -> Exporter | None:
    return vendor.exporter
