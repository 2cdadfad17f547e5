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
chart and the DRA driver chart ship in ``crds/`` (ADDONS.md pitfall 11): ``skip_crds`` would
drop ClusterPolicy with them, so the DRA driver release skips its copy instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

# The Helm release name: the chart names its objects after it.
RELEASE = "gpu-operator"
TIME_SLICING_CONFIG = "time-slicing"


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
    # ServiceMonitor for good if its CRD is missing when it reconciles (pitfall 4).
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
    if driver.owner == "operator":
        # The DRA driver's nvidiaDriverRoot is the contract's root: keep both equal (pitfall 9).
        values["hostPaths"] = {"driverInstallDir": driver.root}
    values = deep_merge(values, driver.operator_values)
    # The standalone DRA driver serves DRA pools; the operator's experimental GPUCluster
    # (bundled DRA driver) would be a second advertiser and excludes ClusterPolicy.
    values["gpuCluster"] = {"deployCR": False}
    return values


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
        # Driver, toolkit and device plugin pods mount host paths and run privileged.
        namespace = self.create_namespace(f"{name}-namespace", args.namespace, "privileged")
        self.release = self.helm_release(
            f"{name}-release", CHARTS["gpu-operator"], name=RELEASE, namespace=args.namespace,
            values=operator_values(cluster, args),
            skip_crds=False,  # owns ClusterPolicy and the ComputeDomain CRDs (see module doc)
            depends_on=[namespace, *args.depends_on])
        self.finish(namespace=args.namespace, release=self.release.name)
