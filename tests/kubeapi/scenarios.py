"""Named worlds: data plus small builders, easy to vary per test.

``empty``: a bare cluster (default, kube-system, kube-public, kube-node-lease; no nodes).
``reference-platform``: H100 nodes, CPU system nodes, the addons' CRDs, DRA, Kueue,
addon workloads in Ready state, and the controllers that make pods run.
``conformant-platform``: the reference platform plus what every probe of ``aicp verify``
needs to PASS on it (see ``conformant_platform``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from tests.schemas import load_crd_files
from tests.shared import CRDS

from . import objects as o
from .controllers.autoscaler import NodeGroupAutoscaler, status_configmap
from .controllers.dcgm import DcgmExporters
from .controllers.dra import DraAllocator
from .controllers.gateway import Gateways, curl_logs
from .controllers.hpa import HorizontalPodAutoscalers, MetricFn
from .controllers.kubelet import Kubelet, LogFn, nvidia_smi_logs, sandbox_kernel, sleeps_forever
from .controllers.kuberay import KubeRay
from .controllers.kueue import KueueAdmitter
from .controllers.prometheus import monitoring
from .controllers.sandbox import probe_logs, runs_probe
from .controllers.scheduler import Scheduler
from .controllers.storage import aws_storage
from .controllers.workloads import Deployments, Jobs, ReplicaSets
from .custom_metrics import CustomMetrics, gpu_util
from .emulator import KubeAPI
from .inference import inference_platform, server

# The addons' pinned CRDs; ComputeDomain comes from the DRA driver, not the GPU operator.
ADDON_CRDS = ("kueue-v0.19.2/*.yaml", "gateway-api-v1.6.1/*.yaml", "gaie-v1.6.0/*.yaml",
              "kuberay-v1.7.0/*.yaml", "gpu-operator-v26.7.0/nvidia.com_*.yaml",
              "dra-driver-nvidia-gpu-0.4.1/*.yaml")


@functools.cache
def addon_crds() -> tuple[dict, ...]:
    """Parsed once per process (libyaml: ~2 s for all of them)."""
    if not CRDS.is_dir():
        raise FileNotFoundError(f"{CRDS} is absent: the reference-platform scenario needs "
                                "../shared/crds (or AICP_SHARED)")
    return tuple(load_crd_files(p for pattern in ADDON_CRDS for p in CRDS.glob(pattern)))


def empty(minor: str = "1.35", **options) -> KubeAPI:
    return KubeAPI(minor, **options)


def standard_controllers(kube: KubeAPI, *, logs: LogFn = nvidia_smi_logs,
                         metric: MetricFn | None = None, dra: bool = True,
                         kueue: bool = True) -> KubeAPI:
    """Scheduler, kubelet, workloads, and optionally DRA, Kueue and HPA controllers."""
    kube.add(Scheduler(), Kubelet(logs=logs), ReplicaSets(), Deployments(), Jobs())
    if dra:
        kube.add(DraAllocator())
    if kueue:
        KueueAdmitter().install(kube)
    if metric is not None:
        kube.add(HorizontalPodAutoscalers(metric))
    return kube


def gpu_node_objects(index: int, *, gpus: int = 8, minor: str = "1.35",
                     prefix: str = "gpu-h100", dra: bool = True) -> list[dict]:
    name = f"{prefix}-{index}"
    out = [o.gpu_node(name, gpus=gpus, minor=minor, ip=f"10.0.1.{index + 10}")]
    if dra:
        out.append(o.resource_slice(name, gpus=gpus))
    return out


def addon_workloads(gpu_nodes: int) -> list[dict]:
    gpu_sel = {"nvidia.com/gpu.present": "true"}
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return [
        o.ready_deployment("gpu-operator", "gpu-operator", "nvcr.io/nvidia/gpu-operator:v26.7.0"),
        o.ready_daemonset("nvidia-dra-driver-gpu-kubelet-plugin", "nvidia-dra-driver-gpu",
                          "nvcr.io/nvidia/k8s-dra-driver-gpu:v0.4.1", gpu_nodes, gpu_sel, tol),
        o.ready_daemonset("nvidia-dcgm-exporter", "gpu-operator",
                          "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3", gpu_nodes, gpu_sel, tol),
        o.service("nvidia-dcgm-exporter", "gpu-operator", 9400),
        o.ready_deployment("kueue-controller-manager", "kueue-system",
                           "registry.k8s.io/kueue/kueue:v0.19.2"),
        o.ready_deployment("kuberay-operator", "ray-system", "quay.io/kuberay/operator:v1.7.0"),
        o.ready_deployment("istiod", "istio-system", "docker.io/istio/pilot:1.28.0"),
        o.ready_deployment("prometheus-server", "monitoring", "quay.io/prometheus/prometheus:v3.5"),
        o.service("prometheus-server", "monitoring", 9090),
        o.ready_deployment("prometheus-adapter", "monitoring",
                           "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0"),
    ]


def kueue_objects(gpu_quota: int, namespace: str = "ai-workloads") -> list[dict]:
    return [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
         "metadata": {"name": "h100"},
         "spec": {"nodeLabels": {"aicp.dev/gpu-pool": "h100"}, "tolerations": [
             {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
         "metadata": {"name": "aicp"},
         "spec": {"namespaceSelector": {}, "resourceGroups": [{
             "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
             "flavors": [{"name": "h100", "resources": [
                 {"name": "cpu", "nominalQuota": 1000}, {"name": "memory",
                                                         "nominalQuota": "8Ti"},
                 {"name": "nvidia.com/gpu", "nominalQuota": gpu_quota}]}]}]},
         "status": {"conditions": [{"type": "Active", "status": "True", "reason": "Ready",
                                    "message": "Can admit new workloads",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": "aicp", "namespace": namespace},
         "spec": {"clusterQueue": "aicp"}},
    ]


def reference_platform(minor: str = "1.35", *, gpu_nodes: int = 2, cpu_nodes: int = 2,
                       gpus_per_node: int = 8, with_kueue: bool = True, with_dra: bool = True,
                       with_addons: bool = True, controllers: bool = True,
                       logs: LogFn = nvidia_smi_logs, metric: MetricFn | None = None,
                       autoscale_gpu_nodes: int = 0, kuberay: KubeRay | bool = True,
                       gateways: Gateways | bool = True,
                       scale_down_unneeded: float = NodeGroupAutoscaler.UNNEEDED,
                       **options) -> KubeAPI:
    kube = KubeAPI(minor, **options)
    kube.seed(addon_crds())
    namespaces = ["gpu-operator", "nvidia-dra-driver-gpu", "kueue-system", "ray-system",
                  "istio-system", "monitoring", "ai-workloads"]
    world: list[dict] = [o.namespace(n) for n in namespaces]
    world += [o.node(f"system-{i}", labels={"node.kubernetes.io/instance-type": "m7i.2xlarge",
                                            "aicp.dev/pool": "system"}, minor=minor,
                     ip=f"10.0.0.{i + 10}") for i in range(cpu_nodes)]
    for i in range(gpu_nodes):
        world += gpu_node_objects(i, gpus=gpus_per_node, minor=minor, dra=with_dra)
    if with_dra:
        world.append(o.device_class())
    if with_addons:
        world += addon_workloads(gpu_nodes)
        world.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                      "metadata": {"name": "istio", "generation": 1},
                      "spec": {"controllerName": "istio.io/gateway-controller"},
                      "status": {"conditions": [{
                          "type": "Accepted", "status": "True", "reason": "Accepted",
                          "message": "Handled by Istio controller", "observedGeneration": 1,
                          "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    if with_kueue:
        world += kueue_objects(16)
    kube.seed(world)
    if controllers:
        standard_controllers(kube, logs=logs, metric=metric, dra=with_dra, kueue=with_kueue)
        aws_storage(kube)  # gp3 default class, the model bucket with workload identity
        if with_addons and kuberay:
            (kuberay if isinstance(kuberay, KubeRay) else KubeRay()).install(kube)
        if with_addons and gateways:  # Istio for the seeded GatewayClass
            kube.add(gateways if isinstance(gateways, Gateways) else Gateways())
    if autoscale_gpu_nodes:
        kube.add(NodeGroupAutoscaler(
            lambda i: gpu_node_objects(gpu_nodes + i, gpus=gpus_per_node, minor=minor,
                                       dra=with_dra), max_nodes=autoscale_gpu_nodes,
            unneeded=scale_down_unneeded))
    return kube


def platform_logs(pod: dict, container: str, kube) -> str:
    """``curl`` prints what the gateway answered, ``uname -r`` the (sandbox's) kernel,
    ``nvidia-smi -L`` the container's GPUs."""
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    if runs_probe(pod, container):  # workload_sandboxing's isolation script
        return probe_logs(pod, container, kube)
    if (spec.get("command") or [""])[0] == "uname":
        return sandbox_kernel(pod, container, kube)
    return curl_logs(pod, container, kube)


def conformant_platform(minor: str = "1.35", *, gpu_nodes: int = 2, cpu_nodes: int = 2,
                        gpus_per_node: int = 8, **options) -> KubeAPI:
    """The reference platform plus what the probes look for: cluster-autoscaler (able to
    add one node to the H100 pool), a DCGM exporter on every GPU node, kube-prometheus-stack,
    a custom metrics adapter serving DCGM utilisation, an InferencePool behind the Istio
    gateway, llm-d prefill/decode servers, DRANET NICs, a gVisor RuntimeClass, and a kubelet
    that keeps ``sleep`` running and answers ``curl``, ``uname -r`` and ``nvidia-smi -L``.

    No GPU sharing and no virtualized GPUs: the H100 pool is whole bare-metal GPUs.
    ``options`` go to ``reference_platform``.
    """
    options.setdefault("logs", platform_logs)
    options.setdefault("autoscale_gpu_nodes", 1)
    # Its cluster-autoscaler runs with --scale-down-unneeded-time=2s (the flag, default
    # 10m: kubernetes/autoscaler FAQ.md), so a run's scale-down check ends in seconds.
    options.setdefault("scale_down_unneeded", 2.0)
    kube = reference_platform(minor, gpu_nodes=gpu_nodes, cpu_nodes=cpu_nodes,
                              gpus_per_node=gpus_per_node, with_kueue=False, **options)
    # Kueue gets half the pool's GPUs, the rest is for GPU pods outside its queues (the
    # probes' own): an admitted job never waits for the autoscaler to add a node.
    kube.seed(kueue_objects(gpu_nodes * gpus_per_node // 2))
    KueueAdmitter().install(kube)
    sleeps_forever(kube)
    kube.add(DcgmExporters())
    status_configmap(kube)
    monitoring(kube)
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": gpu_util}).install(kube)
    inference_platform(kube)
    for role in ("prefill", "decode"):
        kube.create(server(f"llama-{role}", "llm-d.ai/role", role))
    kube.seed([o.dranet_slice(f"gpu-h100-{i}") for i in range(gpu_nodes)])
    kube.create(o.runtime_class("gvisor", "runsc"))
    return kube


SCENARIOS: dict[str, Callable[..., KubeAPI]] = {
    "empty": empty, "reference-platform": reference_platform,
    "conformant-platform": conformant_platform}


def _accelerator_world(name: str) -> Callable[..., KubeAPI]:
    def build_world(minor: str = "1.35", **options) -> KubeAPI:
        from . import worlds_accelerators  # it builds on standard_controllers above
        return worlds_accelerators.world(name, minor=minor, **options)
    return build_world


# GPU clusters composed from ../shared/fixtures (tests/kubeapi/worlds_accelerators.py):
# "gpu-stock-dra", "gpu-mig-single", ... one per layout of worlds_accelerators.WORLDS.
SCENARIOS.update({f"gpu-{name}": _accelerator_world(name) for name in (
    "stock-dra", "device-plugin-only", "mixed", "mig-single", "mig-mixed", "time-slicing",
    "time-slicing-renamed", "eks-efa", "vm-hosts", "exporters-both-modes",
    "amd-beside-nvidia", "gke-time-sharing", "two-driver-pools", "cordoned-and-not-ready",
    "dra-mps", "dra-shared-claim-only", "tpu-and-neuron")})


def build(name: str, **options) -> KubeAPI:
    """The named scenario's emulator, not yet started."""
    try:
        builder = SCENARIOS[name.replace("_", "-")]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    return builder(**options)
