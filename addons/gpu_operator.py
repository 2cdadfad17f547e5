"""NVIDIA GPU Operator: driver and container toolkit (where the host lacks them), GPU Feature
Discovery, DCGM exporter with its ServiceMonitor, and the device plugin for device-plugin pools.

One GPU advertiser per node: the operator's device plugin DaemonSet selects nodes labelled
``nvidia.com/gpu.deploy.device-plugin=true``. The operator adds that label to GPU nodes only
where it is missing and honours a value already set (gpu-operator v26.7.0
``controllers/state_manager.go`` ``addGPUStateLabels``), so DRA pools, which the target labels
``...device-plugin=false`` at node creation, never run it; the DRA driver advertises them.

Helm semantics matter here (``helm.v3.Release``): ``operator.upgradeCRD`` is a pre-upgrade hook
Job that re-applies the ClusterPolicy/NVIDIADriver CRDs, which Helm itself never upgrades from
``crds/``. This release also owns the ``resource.nvidia.com`` ComputeDomain CRDs that both this
chart and the DRA driver chart ship in ``crds/`` (Helm v3 creates ``crds/`` objects only when
absent and never upgrades them, helm.sh/docs/chart_best_practices/custom_resource_definitions):
``skip_crds`` would
drop ClusterPolicy with them, so the DRA driver release skips its copy instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ..components.contract import (
    LABEL_DRA_KUBELET_PLUGIN,
    VIRTUALIZATION,
    ClusterOutputs,
    gpu_node_tolerations,
)
from .base import Addon
from .catalog import CHARTS

# The Helm release name: the chart names its objects after it.
RELEASE = "gpu-operator"
TIME_SLICING_CONFIG = "time-slicing"
# The exporter's service account under ClusterPolicy (gpu-operator v26.7.0
# assets/state-dcgm-exporter/0100_service_account.yaml).
DCGM_EXPORTER_SERVICE_ACCOUNT = "nvidia-dcgm-exporter"
# DRA pod attribution: the kubelet reports DRA devices as (pool, device), which the exporter
# resolves through a ResourceSlice informer only with this set. ClusterPolicy's DaemonSet
# sets neither it nor the RBAC ("TODO: Add resourceSlices permissions",
# assets/state-dcgm-exporter/0210_clusterrole.yaml); the GPUCluster manifests do both
# (manifests/state-dcgm-exporter/0700_daemonset.yaml, 0210_clusterrole.yaml), at v26.7.0.
DCGM_DRA_ENV = {"name": "KUBERNETES_ENABLE_DRA", "value": "true"}
# The driver manager evicts the DRA kubelet plugin before a driver reload by flipping this
# node label (NVIDIA/k8s-driver-manager cmd/driver-manager/main.go, NODE_LABEL_FOR_GPU_POD_
# EVICTION; GPU Operator "DRA Driver for NVIDIA GPUs" known issue: pass the DRA nodes'
# label in driver.manager.env).
DRIVER_MANAGER_DRA_ENV = {"name": "NODE_LABEL_FOR_GPU_POD_EVICTION",
                          "value": LABEL_DRA_KUBELET_PLUGIN}
# Unprivileged containers must not pick GPUs by setting NVIDIA_VISIBLE_DEVICES themselves
# (nvidia-container-toolkit v1.20.0 cmd/nvidia-ctk-installer/toolkit/toolkit.go, env
# ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED; NVIDIA's hardening of AKS). The
# device plugin hands devices over by CDI annotations (cdi.enabled, the v26.7.0 default;
# controllers/object_controls.go transformDevicePluginCtrForCDI), so nothing else needs it.
TOOLKIT_HARDENING_ENV = {"name": "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
                         "value": "false"}
# EFA nodes: the device plugin's MOFED mode hands every GPU container all of the node's
# /dev/infiniband/uverbs<N>, EFA's included, beside what the EFA device plugin allocated
# ("this conflicts with other device plugins and DRA driver (DRANET)", NVIDIA/k8s-device-
# plugin#1692). It was on by default in v0.19.0 (#1550) and is off again from v0.19.3
# (#1837; the operator's v0.20.0 leaves it off), but the GPU Operator switches it on with
# GDS (v26.7.0 controllers/object_controls.go TransformDevicePlugin: MOFED_ENABLED "true"
# when gds.enabled) and applies devicePlugin.env after that: stated off, it stays off.
DEVICE_PLUGIN_NO_MOFED_ENV = {"name": "MOFED_ENABLED", "value": "false"}
RDMA_FABRICS = ("infiniband", "rdma")  # fabric kinds the Network Operator serves


@dataclass(frozen=True)
class GpuOperatorArgs:
    namespace: str = "gpu-operator"
    # Value of the `release` label kube-prometheus-stack's default ServiceMonitor selector wants.
    prometheus_release: str | None = "kube-prometheus-stack"
    # NFD labels NVIDIA PCI devices; without them the operator resets nvidia.com/gpu.present to
    # "false" and deploys no operand. Turn off only where the cluster already runs NFD.
    deploy_nfd: bool = True
    # gpu_sharing: advertise each device-plugin GPU this many times (time-slicing); None = off.
    time_slicing_replicas: int | None = None
    # Resources to wait for, e.g. the prometheus-operator CRDs: the operator skips the DCGM
    # ServiceMonitor for good if its CRD is missing when it reconciles (NVIDIA/gpu-operator
    # v26.7.0 controllers/object_controls.go, the ServiceMonitor step logs and returns Ready).
    depends_on: Sequence[pulumi.Resource] = ()


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base``; maps merge key by key, anything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_env(values: dict[str, Any], path: Sequence[str], *env: Mapping[str, str]
             ) -> None:
    """Add ``env`` entries to the list at ``path`` (``toolkit.env``), replacing same names."""
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    names = {e["name"] for e in env}
    kept = [e for e in node.get(path[-1]) or [] if e.get("name") not in names]
    node[path[-1]] = [*kept, *(dict(e) for e in env)]


def time_slicing_config(replicas: int) -> str:
    """The device plugin's config file sharing every ``nvidia.com/gpu`` ``replicas`` ways."""
    return yaml.safe_dump({
        "version": "v1",
        "sharing": {"timeSlicing": {"resources": [
            {"name": "nvidia.com/gpu", "replicas": replicas}]}},
    }, sort_keys=False)


def operator_values(cluster: ClusterOutputs, args: GpuOperatorArgs) -> dict[str, Any]:
    """Chart values for this cluster's driver ownership and GPU pools."""
    driver = cluster.gpu_driver
    device_plugin_pools = [p for p in cluster.gpu_pools if p.allocator == "device-plugin"]
    device_plugin: dict[str, Any] = {"enabled": bool(device_plugin_pools)}
    if args.time_slicing_replicas and device_plugin_pools:
        device_plugin["config"] = {
            "create": True, "name": TIME_SLICING_CONFIG, "default": "any",
            "data": {"any": time_slicing_config(args.time_slicing_replicas)}}
    service_monitor: dict[str, Any] = {"enabled": True}
    if args.prometheus_release:
        service_monitor["additionalLabels"] = {"release": args.prometheus_release}
    values: dict[str, Any] = {
        "nfd": {"enabled": args.deploy_nfd},
        "driver": {"enabled": driver.owner == "operator"},
        "toolkit": {"enabled": not driver.toolkit_on_host},
        "devicePlugin": device_plugin,
        "gfd": {"enabled": True},
        "dcgmExporter": {"enabled": True, "serviceMonitor": service_monitor},
        "operator": {"upgradeCRD": True},
        "clusterPolicy": {"deployCR": True},
    }
    # Every operand (driver, toolkit, device plugin, DCGM exporter, GFD, validator) runs on
    # every GPU node, Spot ones included: the chart's default tolerates only nvidia.com/gpu
    # (v26.7.0 values.yaml daemonsets.tolerations), and a Helm list value replaces the
    # default, so the contract's list restates it.
    tolerations = gpu_node_tolerations(cluster.gpu_pools)
    values["daemonsets"] = {"tolerations": tolerations}
    if args.deploy_nfd:
        # NFD's worker labels GPU nodes for the operator; the chart's default tolerations
        # (v26.7.0 values.yaml node-feature-discovery.worker.tolerations) plus the pools'.
        values["node-feature-discovery"] = {"worker": {"tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "",
             "effect": "NoSchedule"}, *tolerations]}}
    if driver.owner == "operator":
        # The DRA driver's nvidiaDriverRoot is the contract's root: keep both equal (the DRA
        # kubelet plugin mounts the driver from nvidiaDriverRoot, which must be where the
        # operator installs it: gpu-operator v26.7.0 values.yaml hostPaths.driverInstallDir).
        values["hostPaths"] = {"driverInstallDir": driver.root}
    values = deep_merge(values, driver.operator_values)
    dra = any(p.allocator == "dra" for p in cluster.gpu_pools)
    if dra:
        with_env(values, ("dcgmExporter", "env"), DCGM_DRA_ENV)
        # The ResourceSlice informer needs the service account token, which ClusterPolicy
        # mounts only when pod metadata is on (v26.7.0 controllers/object_controls.go:
        # "Override the base asset's automountServiceAccountToken=false when the
        # configuration reads from the Kubernetes API"); the pod UID is the smallest of it.
        values["dcgmExporter"]["enablePodUID"] = True
        if driver.owner == "operator":
            with_env(values, ("driver", "manager", "env"), DRIVER_MANAGER_DRA_ENV)
    if values["toolkit"].get("enabled"):
        with_env(values, ("toolkit", "env"), TOOLKIT_HARDENING_ENV)
    fabric_values(values, cluster)
    # The standalone DRA driver serves DRA pools; the operator's experimental GPUCluster
    # (bundled DRA driver) would be a second advertiser and excludes ClusterPolicy.
    values["gpuCluster"] = {"deployCR": False}
    return deep_merge(values, sandbox_workload_values(cluster))


def sandbox_workload_values(cluster: ClusterOutputs) -> dict[str, Any]:
    """GPUs for VMs where the target declares a virtualization layer (virtualized_accelerator).

    NVIDIA GPU Operator docs "GPU Operator with KubeVirt": ``sandboxWorkloads.enabled``
    deploys the VFIO manager and KubeVirt GPU device plugin (vm-passthrough) or the vGPU
    manager and vGPU device manager (vm-vgpu) on nodes labelled
    ``nvidia.com/gpu.workload.config``; unlabelled nodes keep ``defaultWorkload: container``
    (gpu-operator v26.7.0 values.yaml ``sandboxWorkloads``: enabled, defaultWorkload, mode
    ``kubevirt``; ``vgpuManager``: enabled, repository, image, version).
    """
    layer = cluster.features.get(VIRTUALIZATION)
    if not layer:
        return {}
    values: dict[str, Any] = {"sandboxWorkloads": {
        "enabled": True, "defaultWorkload": "container", "mode": layer["layer"]}}
    if layer.get("vgpuManager"):
        values["vgpuManager"] = {"enabled": True, **layer["vgpuManager"]}
    return values


def fabric_values(values: dict[str, Any], cluster: ClusterOutputs) -> None:
    """What the pools' fabrics (components/fabric.py) ask of the operator.

    - EFA device-plugin pools: the device plugin's MOFED mode off (DEVICE_PLUGIN_NO_MOFED_ENV).
    - InfiniBand/RDMA pools, driver installed by the operator: GPUDirect RDMA through
      ``nvidia-peermem`` (``driver.rdma.enabled``), built against the MOFED the Network
      Operator's DOCA driver container loads (``useHostMofed: false``), as Azure's AKS
      reference sets it (Azure/aks-rdma-infiniband configs/values/gpu-operator/values.yaml,
      "Enables RDMA for GPUDirect support") and NVIDIA documents it (NVIDIA/cloud-native-docs
      gpu-operator/gpu-operator-rdma.rst: "add --set driver.rdma.enabled=true"; the driver
      pods then wait for the network drivers). That page recommends DMA-BUF over the legacy
      module: it needs the open kernel module, which the pinned driver (595.91.07) gets by
      the chart's ``driver.kernelModuleType: auto`` (R570 and later), and no value of ours.
      A host-installed driver (AKS ``gpu_driver="host"``) is not the operator's to change:
      Azure's guide loads ``nvidia-peermem`` there with a DaemonSet of its own
      (configs/nvidia-peermem-reloader), which aicp does not run.
    """
    kinds = {(str((p.fabric or {}).get("kind")), p.allocator) for p in cluster.gpu_pools}
    if ("efa", "device-plugin") in kinds:
        with_env(values, ("devicePlugin", "env"), DEVICE_PLUGIN_NO_MOFED_ENV)
    if cluster.gpu_driver.owner == "operator" and any(k in RDMA_FABRICS for k, _ in kinds):
        values["driver"]["rdma"] = {"enabled": True, "useHostMofed": False}


class GpuOperator(Addon):
    """The GPU Operator release in its own privileged namespace."""

    token = "aicp:addons:GpuOperator"
    serves = ("driver_runtime_management", "accelerator_metrics")

    def __init__(self, name: str, cluster: ClusterOutputs, args: GpuOperatorArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or GpuOperatorArgs()
        if any(p.allocator == "device-plugin" for p in cluster.gpu_pools):
            # The device plugin hands a container only the GPUs it was allocated.
            self.serves = (*type(self).serves, "secure_accelerator_access")
        if sandbox_workload_values(cluster):
            self.serves = (*self.serves, "virtualized_accelerator")
        # Driver, toolkit and device plugin pods mount host paths and run privileged; the
        # operator and its operands run at system-node-critical (chart values.yaml).
        namespace = self.create_namespace(f"{name}-namespace", args.namespace, "privileged",
                                          critical_pods=True)
        if any(p.allocator == "dra" for p in cluster.gpu_pools):
            self._dcgm_exporter_reads_resource_slices(name, namespace, args.namespace)
        self.release = self.helm_release(
            f"{name}-release", CHARTS["gpu-operator"], name=RELEASE, namespace=args.namespace,
            values=operator_values(cluster, args),
            skip_crds=False,  # owns ClusterPolicy and the ComputeDomain CRDs (see module doc)
            depends_on=[*self.namespace_ready(namespace), *args.depends_on])
        self.finish(namespace=args.namespace, release=self.release.name)

    def _dcgm_exporter_reads_resource_slices(self, name: str, namespace: pulumi.Resource,
                                             ns: str) -> None:
        """The rule ClusterPolicy leaves out (see DCGM_DRA_ENV), bound to the exporter."""
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-dcgm-exporter-dra",
            metadata={"name": "aicp-dcgm-exporter-dra"},
            rules=[k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["resource.k8s.io"], resources=["resourceslices"],
                verbs=["get", "list", "watch"])],
            opts=self.child_opts())
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-dcgm-exporter-dra",
            metadata={"name": "aicp-dcgm-exporter-dra"},
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                name="aicp-dcgm-exporter-dra"),
            subjects=[k8s.rbac.v1.SubjectArgs(
                kind="ServiceAccount", name=DCGM_EXPORTER_SERVICE_ACCOUNT, namespace=ns)],
            opts=self.child_opts(depends_on=[role, namespace]))
