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
    }


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
        self.finish(installed=True, namespace=args.namespace, release=self.release.name,
                    deviceClass=GPU_DEVICE_CLASS)
