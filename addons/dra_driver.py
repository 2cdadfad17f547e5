"""NVIDIA DRA driver for GPUs: advertises the GPUs of DRA pools as ResourceSlices.

Its kubelet plugin runs only on nodes labelled ``aicp.dev/gpu-allocator=dra``; those nodes
carry ``nvidia.com/gpu.deploy.device-plugin=false`` so the GPU Operator's device plugin stays
off them: one advertiser per node, since the chart refuses ``resources.gpus.enabled`` beside the
operator's device plugin unless ``gpuResourcesEnabledOverride`` acknowledges exactly that
(kubernetes-sigs/dra-driver-nvidia-gpu chart 0.4.1 ``templates/validation.yaml``).

With no DRA pool and no ComputeDomains the component installs nothing and serves nothing: a
driver without a node to run on would only add a controller and DeviceClasses no claim can
use. When the GPU Operator is installed alongside, its release owns the ``resource.nvidia.com``
CRDs (see ``aicp.addons.gpu_operator``), so this release skips its ``crds/``; it waits for the
operator only where the operator installs the driver and toolkit this plugin loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import (
    LABEL_ALLOCATOR,
    LABEL_DRA_KUBELET_PLUGIN,
    ClusterOutputs,
    gpu_node_tolerations,
)
from .base import Addon
from .catalog import CHARTS
from .gpu_operator import GpuOperator

RELEASE = "dra-driver-nvidia-gpu"
# DeviceClass the chart creates for whole GPUs; Kueue maps it to a quota resource.
GPU_DEVICE_CLASS = "gpu.nvidia.com"


@dataclass(frozen=True)
class DraDriverArgs:
    namespace: str = "dra-driver-nvidia-gpu"
    # Multi-node NVLink ComputeDomains (GB200/GB300 racks); runs on DRA pools only.
    compute_domains: bool = False
    # The GPU Operator of this cluster, if any: owner of the CRDs and the driver.
    gpu_operator: GpuOperator | None = None
    # gpu_sharing: the driver's time-slicing (feature gate on, TIME_SLICED_CLASS declared).
    time_slicing: bool = True


def driver_values(cluster: ClusterOutputs, args: DraDriverArgs) -> dict[str, Any]:
    """Chart values: GPUs on DRA pools, the contract's driver root, the GA resource API."""
    return {
        "nvidiaDriverRoot": cluster.gpu_driver.root,
        "gpuResourcesEnabledOverride": True,
        "resources": {"gpus": {"enabled": True},
                      "computeDomains": {"enabled": args.compute_domains}},
        # Offline renders and some API servers report the wrong resource.k8s.io versions
        # (the chart picks the DeviceClass apiVersion from .Capabilities unless resourceApiVersion
        # is set: dra-driver-nvidia-gpu 0.4.1 templates/_helpers.tpl L188-189); the platform's
        # minors (>= 1.34) all serve v1.
        "resourceApiVersion": "resource.k8s.io/v1",
        # The chart default already tolerates nvidia.com/gpu:NoSchedule (0.4.1). The second
        # label is the one the GPU Operator's driver manager flips to evict the plugin
        # before a driver reload (see aicp.addons.gpu_operator DRIVER_MANAGER_DRA_ENV).
        "kubeletPlugin": {"nodeSelector": {LABEL_ALLOCATOR: "dra",
                                           LABEL_DRA_KUBELET_PLUGIN: "true"},
                          # The chart's default (nvidia.com/gpu only, 0.4.1 values.yaml
                          # kubeletPlugin.tolerations) plus each pool taint, AKS Spot's too.
                          "tolerations": gpu_node_tolerations(cluster.gpu_pools)},
        **({"featureGates": dict(SHARING_FEATURE_GATES)} if args.time_slicing else {}),
    }


# --- gpu_sharing (issue #25) --------------------------------------------------------------
# Time-slicing through DRA is the driver's opaque GpuConfig ``sharing`` on a claim; the
# kubelet plugin applies it only with feature gate TimeSlicingSettings, alpha and off by
# default at 0.4.1 (kubernetes-sigs/dra-driver-nvidia-gpu v0.4.1 pkg/featuregates/
# featuregates.go: ``TimeSlicingSettings: {Default: false, PreRelease: Alpha}``); the chart
# passes ``featureGates`` to every component (0.4.1 values.yaml "featureGates: {}").
# MPS (gate MPSSupport) needs an MPS control daemon per claim; MIG needs MIG-capable GPUs
# set up: time-slicing works on every GPU the pools carry.
SHARING_FEATURE_GATES = {"TimeSlicingSettings": True}
TIME_SLICED_CLASS = "gpu-time-sliced.aicp.dev"
# GpuConfig as the driver's demos write it (v0.4.1 demo/specs/quickstart/gpu-test3.yaml:
# one claim shared by two pods, ``sharing: {strategy: TimeSlicing, timeSlicingConfig:
# {interval: Long}}``; api/nvidia.com/resource/v1beta1 sharing.go: intervals Default,
# Short, Medium, Long).
TIME_SLICING_CONFIG = {
    "apiVersion": "resource.nvidia.com/v1beta1", "kind": "GpuConfig",
    "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Default"}}}


def time_sliced_class_spec() -> dict[str, Any]:
    """The chart's whole-GPU selector (0.4.1 templates/deviceclass-gpu.yaml) with the
    time-slicing config every claim of the class gets (resource.k8s.io/v1 DeviceClassSpec
    ``config``: "Config defines configuration parameters that apply to each device that
    is claimed via this class")."""
    return {
        "selectors": [{"cel": {"expression": (
            f"device.driver == '{GPU_DEVICE_CLASS}' && "
            f"device.attributes['{GPU_DEVICE_CLASS}'].type == 'gpu'")}}],
        "config": [{"opaque": {"driver": GPU_DEVICE_CLASS,
                               "parameters": dict(TIME_SLICING_CONFIG)}}],
    }


def sharing_output() -> dict[str, Any]:
    """What the stack reports about the sharing strategy it configured."""
    return {"strategy": "TimeSlicing", "mechanism": "dra", "deviceClass": TIME_SLICED_CLASS,
            "featureGates": dict(SHARING_FEATURE_GATES)}


def wanted(cluster: ClusterOutputs, args: DraDriverArgs) -> bool:
    return args.compute_domains or any(p.allocator == "dra" for p in cluster.gpu_pools)


class DraDriver(Addon):
    """The DRA driver release in its own privileged namespace (kubelet plugin is privileged)."""

    token = "aicp:addons:DraDriver"
    serves = ("dra_support", "secure_accelerator_access")

    def __init__(self, name: str, cluster: ClusterOutputs, args: DraDriverArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or DraDriverArgs()
        self.release: k8s.helm.v3.Release | None = None
        if not wanted(cluster, args):
            self.serves = ()
            self.finish(installed=False)
            return
        operator = [args.gpu_operator.release] if args.gpu_operator else []
        # Wait for the operator only where it installs the driver this plugin loads. With a
        # host driver the two start together (one Helm wait fewer on the stand-up path);
        # the operator's release still brings the ComputeDomain CRDs, from its crds/, which
        # Helm applies before any template (helm v3.21.4 pkg/action/install.go).
        wait = operator if cluster.gpu_driver.owner == "operator" else []
        # The controller runs at system-cluster-critical, the kubelet plugins at
        # system-node-critical (chart 0.4.1 values.yaml).
        namespace = self.create_namespace(f"{name}-namespace", args.namespace, "privileged",
                                          critical_pods=True)
        self.release = self.helm_release(
            f"{name}-release", CHARTS["dra-driver"], name=RELEASE, namespace=args.namespace,
            values=driver_values(cluster, args), skip_crds=bool(operator),
            depends_on=[*self.namespace_ready(namespace), *wait])
        self.shared_device_class = self._time_sliced_class(name, args)
        if args.time_slicing:
            self.serves = (*self.serves, "gpu_sharing")
        self.finish(installed=True, namespace=args.namespace, release=self.release.name,
                    deviceClass=GPU_DEVICE_CLASS,
                    **({"sharing": sharing_output()} if args.time_slicing else {}))

    def _time_sliced_class(self, name: str, args: DraDriverArgs
                           ) -> k8s.apiextensions.CustomResource | None:
        """DeviceClass ``TIME_SLICED_CLASS``: whole GPUs whose claims carry the driver's
        time-slicing config, so the pods sharing one claim take turns on the GPU."""
        if not args.time_slicing or self.release is None:
            return None
        return k8s.apiextensions.CustomResource(
            f"{name}-time-sliced", api_version="resource.k8s.io/v1", kind="DeviceClass",
            metadata={"name": TIME_SLICED_CLASS,
                      "labels": {"app.kubernetes.io/managed-by": "aicp"}},
            spec=time_sliced_class_spec(),
            # The driver's CEL attributes and the config's kind are the release's.
            opts=self.child_opts(depends_on=[self.release]))
