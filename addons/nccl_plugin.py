"""GKE GPUDirect: the Network objects of each fabric pool's extra networks and the NCCL
plugin installer of its kind (TCPX on A3 High, TCPXO on A3 Mega, gIB/RDMA on A3 Ultra).

The Network + GKENetworkParamSet pairs are the ones GoogleCloudPlatform/cluster-toolkit's
gke-cluster module applies for a blueprint's additional networks (modules/scheduler/
gke-cluster main.tf ``apply_manifests_non_rdma_networks`` / ``apply_manifests_rdma_networks``:
``deviceMode`` NetDevice, or RDMA on the RDMA VPC; Network ``type: Device`` with
``parametersRef`` to the param set). Pods attach them by name with the
``networking.gke.io/interfaces`` annotation the pool exports (``gpuPools[].fabric``).

The installers are GoogleCloudPlatform/container-engine-accelerators'
``gpudirect-{tcpx,tcpxo,rdma}/nccl-*-installer.yaml`` DaemonSets (kube-system,
system-node-critical, host network and PID, the plugin copied under /home/kubernetes/bin),
with two changes: they select the fabric pools' nodes by ``aicp.dev/fabric`` instead of the
``cloud.google.com/gke-accelerator`` value (a3-highgpu-1g carries the same H100 accelerator
and no GPUDirect NICs), and the images are pinned in ``addons/catalog.py`` IMAGES.

The networking.gke.io objects are a ``yaml/v2`` ConfigGroup: GKE serves their CRDs on
multi-network clusters, and aicp's tests pin no copy of those CRDs to check the objects
against. What this does not install: TCPXO's NRI device injector for unprivileged workloads
(cluster-toolkit examples/gke-a3-megagpu/nri-device-injector.yaml); the NCCL proof runs its
pods as the upstream nccl-test manifests do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs, GpuPool
from ..components.fabric import LABEL_FABRIC
from .base import Addon
from .catalog import IMAGES

NAMESPACE = "kube-system"
GKE_NETWORKING = "networking.gke.io/v1"
PAUSE = "registry.k8s.io/pause:3.10"

# Kind → (installer name, image key, host path the plugin lands in, installer script).
INSTALLERS: dict[str, tuple[str, str, str, str]] = {
    "gpudirect-tcpx": (
        "nccl-tcpx-installer", "nccl-tcpx", "/home/kubernetes/bin",
        "set -ex\n/scripts/container_entry.sh install --install-nccl\n"
        "mkdir -p /usr/local/nvidia/lib64\ncp -r /var/lib/tcpx/lib64/. /usr/local/nvidia/lib64\n"),
    "gpudirect-tcpxo": (
        "nccl-tcpxo-installer", "nccl-tcpxo", "/home/kubernetes/bin",
        "set -ex\nchmod 755 /scripts/container_entry.sh\n"
        "/scripts/container_entry.sh install --install-nccl\n"
        "mkdir -p /usr/local/nvidia/lib64\ncp -r /var/lib/tcpxo/lib64/. /usr/local/nvidia/lib64\n"),
    "gpudirect-rdma": (
        "nccl-rdma-installer", "nccl-rdma", "/home/kubernetes/bin",
        "set -ex\n/scripts/container_entry.sh install --install-nccl\n"
        "mkdir -p /usr/local/nvidia/lib64 /usr/local/gib\n"
        "cp -r /var/lib/gib/lib64/. /usr/local/nvidia/lib64\n"
        "cp -r /var/lib/gib/. /usr/local/gib\n"),
}
# TCPXO's host preparation (nccl-tcpxo-installer.yaml "pre-installation"): accept the
# receive path's TCP traffic, load import-helper, expose the aperture devices (PCI 1ae0:0084).
TCPXO_PRE = (
    "/sbin/iptables -I INPUT -p tcp -m tcp -j ACCEPT && modprobe import-helper\n"
    "mkdir -p /dev/aperture_devices\n"
    "lspci -nn -D | grep '1ae0:0084' | while read -r line; do\n"
    "  BDF=$(echo \"$line\" | awk '{print $1}')\n"
    "  mkdir -p /dev/aperture_devices/$BDF\n"
    "  umount -R /dev/aperture_devices/$BDF || true\n"
    "  mount --bind \"$(readlink -f /sys/bus/pci/devices/$BDF)\" /dev/aperture_devices/$BDF\n"
    "done\n"
    "chmod -R a+r /dev/aperture_devices/ && chmod a+rw /dev/aperture_devices/*/resource* || true\n")


def gke_pools(pools: Sequence[GpuPool]) -> list[GpuPool]:
    return [p for p in pools if str((p.fabric or {}).get("kind", "")).startswith("gpudirect")]


def network_objects(pool: GpuPool) -> list[dict[str, Any]]:
    """A GKENetworkParamSet and a Network per extra network of the pool."""
    objs: list[dict[str, Any]] = []
    for net in (pool.fabric or {}).get("gkeNetworks") or []:
        objs.append({"apiVersion": GKE_NETWORKING, "kind": "GKENetworkParamSet",
                     "metadata": {"name": net["network"]},
                     "spec": {"vpc": net["vpc"], "vpcSubnet": net["subnet"],
                              "deviceMode": net["deviceMode"]}})
        objs.append({"apiVersion": GKE_NETWORKING, "kind": "Network",
                     "metadata": {"name": net["network"]},
                     "spec": {"type": "Device", "parametersRef": {
                         "group": "networking.gke.io", "kind": "GKENetworkParamSet",
                         "name": net["network"]}}})
    return objs


def installer_spec(kind: str) -> Any:  # a manifest dict: any Input accepts one
    name, image, host_dir, script = INSTALLERS[kind]
    init: list[dict[str, Any]] = []
    if kind == "gpudirect-tcpxo":
        init.append({"name": "pre-installation", "image": IMAGES["nccl-tcpxo-pre"],
                     "securityContext": {"privileged": True},
                     "command": ["nsenter", "-at", "1", "--", "bash", "-c", TCPXO_PRE]})
    init.append({"name": name, "image": IMAGES[image],
                 "resources": {"requests": {"cpu": "150m"}},
                 "securityContext": {"privileged": True},
                 "command": ["/bin/sh", "-c"], "args": [script],
                 # TCPX/TCPXO unpack under the host's /var/lib (upstream mounts it); the gIB
                 # installer keeps its files in the image.
                 "volumeMounts": [
                     *([] if kind == "gpudirect-rdma" else [
                         {"name": "var-lib", "mountPath": "/var/lib"}]),
                     {"name": "library-dir-host", "mountPath": "/usr/local"}]})
    return {
        "selector": {"matchLabels": {"k8s-app": name}},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": {"name": name, "k8s-app": name}},
            "spec": {
                "priorityClassName": "system-node-critical",
                "nodeSelector": {LABEL_FABRIC: kind},
                "tolerations": [{"operator": "Exists"}],
                "hostNetwork": True, "hostPID": True,
                "volumes": [{"name": "var-lib", "hostPath": {"path": "/var/lib"}},
                            {"name": "library-dir-host", "hostPath": {"path": host_dir}}],
                "initContainers": init,
                "containers": [{"name": "pause", "image": PAUSE}],
            },
        },
    }


class NcclPlugin(Addon):
    """Per GPUDirect kind in the cluster: its installer; per fabric pool: its networks."""

    token = "aicp:addons:NcclPlugin"
    serves = ("high_performance_networking",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        pools = gke_pools(cluster.gpu_pools)
        self.networks = k8s.yaml.v2.ConfigGroup(
            f"{name}-networks", objs=[o for p in pools for o in network_objects(p)],
            opts=self.child_opts())
        kinds = sorted({str((p.fabric or {})["kind"]) for p in pools})
        self.installers = [k8s.apps.v1.DaemonSet(
            f"{name}-{INSTALLERS[kind][0]}",
            metadata={"name": INSTALLERS[kind][0], "namespace": NAMESPACE,
                      "labels": {"k8s-app": INSTALLERS[kind][0]}},
            spec=installer_spec(kind), opts=self.child_opts()) for kind in kinds]
        self.finish(networks=[o["metadata"]["name"] for p in pools
                              for o in network_objects(p) if o["kind"] == "Network"],
                    installers=[INSTALLERS[k][0] for k in kinds])
