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
against.

On clusters with TCPX or TCPXO pools it also runs upstream's NRI device injector
(``nri_device_injector/nri-device-injector.yaml``), which hands unprivileged workload
containers the GPU and dmabuf devices their ``devices.gke.io/container.<name>`` annotation
lists: how the ``tcpx-daemon`` / ``tcpxo-daemon`` sidecar of a GPUDirect pod gets them without
``privileged`` (GKE docs gpu-bandwidth-gpudirect-tcpx; cluster-toolkit
modules/compute/gke-node-pool/gpu_direct.tf installs it with the installers of both kinds).
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


# A3 Ultra's gIB installer first stops the kernel logging the RDMA NICs' packets as martians
# (GoogleCloudPlatform/cluster-toolkit@1047080 examples/gke-a3-ultragpu/
# nccl-installer.yaml.tftpl, init container ``disable-log-martian``: ``sysctl -w
# net.ipv4.conf.gpu${i}rdma0.log_martians=0`` for each of the machine's ``accelerator_count``
# NICs, 8 in the blueprint). The pod runs on the host's network, so the sysctl is the host's.
def log_martians_script(nics: int) -> str:
    return "".join(f"sysctl -w net.ipv4.conf.gpu{i}rdma0.log_martians=0\n" for i in range(nics))


# Pools whose GPUDirect sidecar gets its devices from the NRI device injector: upstream's
# DaemonSet selects the A3 High and A3 Mega accelerators (nvidia-h100-80gb,
# nvidia-h100-mega-80gb) and its nccl-test manifests of both kinds annotate the daemon
# container (GoogleCloudPlatform/container-engine-accelerators@992db81
# nri_device_injector/nri-device-injector.yaml, gpudirect-tcpx/nccl-test-latest.yaml,
# gpudirect-tcpxo/nccl-test-latest.yaml). A3 Ultra's RDMA needs no sidecar.
NRI_KINDS = ("gpudirect-tcpx", "gpudirect-tcpxo")
NRI_INJECTOR = "device-injector"


def nri_injector_spec(kinds: Sequence[str]) -> Any:  # a manifest dict: any Input accepts one
    """Upstream's device-injector DaemonSet (same file as NRI_KINDS), on the fabric pools of
    ``kinds`` (by ``aicp.dev/fabric``, as the installers) and through every taint, as
    upstream's ``operator: Exists`` toleration. Upstream also declares a hostPath volume of
    ``/`` that no container mounts; it is left out."""
    return {
        "selector": {"matchLabels": {"k8s-app": NRI_INJECTOR}},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": {"name": NRI_INJECTOR, "k8s-app": NRI_INJECTOR}},
            "spec": {
                "priorityClassName": "system-node-critical",
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": LABEL_FABRIC, "operator": "In", "values": list(kinds)}]}]}}},
                "tolerations": [{"operator": "Exists"}],
                "hostNetwork": True, "hostPID": True,
                "containers": [{
                    "name": NRI_INJECTOR, "image": IMAGES["nri-device-injector"],
                    "resources": {"requests": {"cpu": "150m"}},
                    "securityContext": {"privileged": True},
                    "volumeMounts": [{"name": "dev", "mountPath": "/dev"},
                                     {"name": "nri", "mountPath": "/var/run/nri"}]}],
                "volumes": [{"name": "nri", "hostPath": {"path": "/var/run/nri"}},
                            {"name": "dev", "hostPath": {"path": "/dev"}}],
            },
        },
    }


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


def installer_spec(kind: str, nics: int = 0) -> Any:  # a manifest dict: any Input accepts one
    """The installer DaemonSet of a kind; ``nics``: the RDMA NICs per node (gIB only)."""
    name, image, host_dir, script = INSTALLERS[kind]
    init: list[dict[str, Any]] = []
    if kind == "gpudirect-rdma":
        init.append({"name": "disable-log-martian", "image": IMAGES["nccl-rdma-sysctl"],
                     "securityContext": {"privileged": True},
                     "command": ["/bin/sh"], "args": ["-c", log_martians_script(nics)]})
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
        nics = {k: max(int((p.fabric or {}).get("interfaces") or 0) for p in pools
                       if (p.fabric or {})["kind"] == k) for k in kinds}
        self.installers = [k8s.apps.v1.DaemonSet(
            f"{name}-{INSTALLERS[kind][0]}",
            metadata={"name": INSTALLERS[kind][0], "namespace": NAMESPACE,
                      "labels": {"k8s-app": INSTALLERS[kind][0]}},
            spec=installer_spec(kind, nics[kind]), opts=self.child_opts()) for kind in kinds]
        injected = [k for k in kinds if k in NRI_KINDS]
        self.device_injector = k8s.apps.v1.DaemonSet(
            f"{name}-{NRI_INJECTOR}",
            metadata={"name": NRI_INJECTOR, "namespace": NAMESPACE,
                      "labels": {"k8s-app": NRI_INJECTOR}},
            spec=nri_injector_spec(injected), opts=self.child_opts()) if injected else None
        self.finish(networks=[o["metadata"]["name"] for p in pools
                              for o in network_objects(p) if o["kind"] == "Network"],
                    installers=[INSTALLERS[k][0] for k in kinds],
                    deviceInjector=NRI_INJECTOR if injected else None)
