"""The on-prem target: a cluster you already run, or k3s bootstrapped over SSH on your hosts.

Two modes (``aicp:onprem.mode``):

- ``existing`` — a conformant cluster reached through a kubeconfig (a file, or the secret
  config key ``aicp:kubeconfig``) and an optional context. Nothing is discovered at plan
  time; the nodes named per pool in ``aicp:onprem.gpuNodes`` get the pool's labels and the
  GPU taint through server-side-apply patches (``NodePatch``).
- ``k3s`` — servers and agents listed in ``aicp:onprem.k3s`` are installed over SSH
  (``pulumi_command.remote.Command``, see :mod:`aicp.components.onprem_k3s` for why k3s
  and how re-runs stay idempotent); GPU hosts register with their pool's labels and taint.

Both hand the addon layer the same contract as the clouds, with ``autoscaler="none"``:
on-prem nodes are machines in a rack, so no cluster autoscaler runs and the stack reports
``cluster_autoscaling`` as not applicable, with the reason.

Decisions, each with its reason:

- **The GPU Operator installs the driver by default** (``gpu_driver="operator"``, driver
  root ``/run/nvidia/driver``): bare-metal hosts rarely share one driver version, and the
  operator keeps driver, toolkit and DCGM matched. ``gpu_driver="host"`` is for hosts
  that already carry the driver and the NVIDIA container toolkit (driver root ``/``).
- **The node patches own ``spec.taints``** on the named GPU nodes. Taints are an atomic
  list in the Node schema, so server-side apply cannot merge one entry: the patch is
  forced (``pulumi.com/patchForce``) and the list becomes exactly the GPU taint. The node
  lifecycle controller adds its own (not-ready, unreachable) taints back when it needs
  them; other taints you set by hand on those nodes are replaced — move them to config
  first. Labels are merged key by key, nothing else on the node is touched.
- **Pools are their nodes**: a pool's node count must lie within ``minNodes..maxNodes``,
  and a node belongs to one pool.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
from pulumi.errors import InputPropertyError

from . import gvisor
from .contract import (
    CONFORMANCE_OUTPUT,
    SANDBOX,
    VIRTUALIZATION,
    ClusterOutputs,
    GpuDriver,
    GpuPool,
    GpuPoolRequest,
    PropertyError,
    SandboxRuntime,
    resolve_pool,
    validate_pools,
)
from .fabric import onprem_rdma_fabric
from .onprem_k3s import (
    KUBECONFIG_FILE,
    NODE_TOKEN_FILE,
    K3sHost,
    K3sRelease,
    agent_flags,
    install_script,
    pool_of,
    public_kubeconfig,
    read_script,
    server_flags,
    uninstall_script,
    valid_host,
    valid_user,
)
from .storage import StorageArgs, StorageOutputs, unbound_teams

FIELD_MANAGER = "aicp-onprem"
KUBECONFIG_SECRET_KEY = "aicp:kubeconfig"
DEFAULT_SSH_KEY_KEY = "aicp:sshPrivateKey"
# What `aicp verify` prints for the cluster_autoscaling requirement on this target.
# k3s servers with gVisor (OnPremCluster._k3s_sandbox); aicp.addons.sandbox makes the
# RuntimeClass. k3s labels every server node-role.kubernetes.io/control-plane=true
# (https://docs.k3s.io/installation/registration: node roles; k3s pkg/nodeconfig).
K3S_SANDBOX = SandboxRuntime(
    runtime="gvisor", runtime_class=gvisor.RUNTIME_CLASS, handler=gvisor.HANDLER,
    created_by="aicp", node_selector={"node-role.kubernetes.io/control-plane": "true"},
    pool="k3s servers", note="gVisor systrap on the k3s servers (no KVM needed)")
# Existing clusters: gVisor on the nodes you name in aicp:onprem.sandbox.nodes. aicp labels
# them; aicp.addons.sandbox runs the installer DaemonSet there (components/gvisor.py
# existing_script) and makes the RuntimeClass, whose scheduling selects the same label.
EXISTING_SANDBOX = SandboxRuntime(
    runtime="gvisor", runtime_class=gvisor.RUNTIME_CLASS, handler=gvisor.HANDLER,
    created_by="aicp", node_selector={gvisor.EXISTING_LABEL: gvisor.RUNTIME_CLASS},
    pool="aicp:onprem.sandbox.nodes",
    note="gVisor systrap on the nodes you named (no KVM needed), installed by a DaemonSet")
# Kata instead, where the named nodes have KVM: aicp.addons.sandbox installs kata-deploy's
# chart there with only its QEMU shim; the chart makes RuntimeClass kata-qemu (handler
# kata-qemu), whose scheduling selects katacontainers.io/kata-runtime=true, the label
# kata-deploy sets on each node once Kata is installed (kata-containers 4.1.0 kata-deploy
# helm-chart templates/runtimeclasses.yaml: name and handler kata-<shim>, that nodeSelector).
EXISTING_KATA = SandboxRuntime(
    runtime="kata", runtime_class="kata-qemu", handler="kata-qemu", created_by="kata-deploy",
    node_selector={"katacontainers.io/kata-runtime": "true"},
    pool="aicp:onprem.sandbox.nodes",
    note="Kata Containers (QEMU VMs) on the nodes you named, which need KVM; "
         "installed by kata-deploy")
# What aicp.addons.sandbox reads to run each installer, and the label value per runtime.
EXISTING_INSTALLER = {"gvisor": "gvisor-daemonset", "kata": "kata-deploy"}
EXISTING_RUNTIMES = {"gvisor": EXISTING_SANDBOX, "kata": EXISTING_KATA}
NOT_APPLICABLE = {
    "cluster_autoscaling": "on-prem nodes are fixed machines: no cluster autoscaler can add "
                           "or remove them, so node autoscaling is not applicable",
    # vGPU or VFIO passthrough needs a hypervisor layer on the hosts (NVIDIA vGPU manager,
    # or KubeVirt with the GPU Operator's sandbox workloads: gpu-operator v26.7.0
    # sandboxWorkloads.enabled); aicp configures none, its GPU nodes run containers on bare
    # metal (issue #25).
    "virtualized_accelerator": "no virtualization layer is configured: the GPU nodes run "
                               "containers on bare metal, with whole GPUs (fractional GPUs "
                               "are served by gpu_sharing instead; where KubeVirt serves "
                               "GPUs to VMs, set aicp:onprem.virtualization)",
}

# --- virtualized_accelerator on-prem (issue #25) -----------------------------------------
# A virtualization layer you run (KubeVirt) serves GPUs to VMs on the nodes of the pools you
# name; the GPU Operator deploys its sandbox operands there. NVIDIA GPU Operator docs "GPU
# Operator with KubeVirt": install with ``sandboxWorkloads.enabled=true``; a node runs
# containers, VMs with passthrough GPUs or VMs with vGPUs, never a mix, chosen by its label
# ``nvidia.com/gpu.workload.config`` = ``container`` | ``vm-passthrough`` | ``vm-vgpu``
# (``sandboxWorkloads.defaultWorkload`` for unlabelled nodes: ``container``, gpu-operator
# v26.7.0 values.yaml); vm-passthrough nodes get the VFIO manager and the KubeVirt GPU device
# plugin (``vfioManager``, ``sandboxDevicePlugin``, on by default there); vm-vgpu nodes need
# the NVIDIA vGPU Manager, an image you build from NVIDIA's licensed vGPU software and push
# to your registry (``vgpuManager.repository``/``image``/``version``, no public image). KubeVirt
# itself must permit the GPU resources (its CR ``permittedHostDevices`` with
# ``externalResourceProvider: true``): that is the layer's own configuration, not aicp's.
WORKLOAD_LABEL = "nvidia.com/gpu.workload.config"
_IMAGE_REF = re.compile(r"^(?P<repository>[a-z0-9.:-]+(?:/[a-z0-9._-]+)*)/"
                        r"(?P<image>[a-z0-9._-]+):(?P<version>[A-Za-z0-9._-]+)$")


@dataclass(frozen=True)
class VirtualizationLayer:
    """``aicp:onprem.virtualization``: the layer and the GPU pools whose nodes serve VMs."""

    layer: Literal["kubevirt"]
    pools: tuple[str, ...]
    workload: Literal["vm-passthrough", "vm-vgpu"] = "vm-passthrough"
    # vm-vgpu: your vGPU Manager image, <registry>/<path>/<image>:<version>.
    vgpu_manager_image: str | None = None

    def export(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "workload": self.workload,
                               "pools": list(self.pools), "label": WORKLOAD_LABEL}
        match = _IMAGE_REF.match(self.vgpu_manager_image or "")
        if match:
            out["vgpuManager"] = match.groupdict()
        return out


def check_virtualization(v: VirtualizationLayer, pools: Mapping[str, GpuPoolRequest]) -> None:
    """What the layer cannot be: refused before anything is declared."""
    if not v.pools:
        raise InputPropertyError("virtualization.pools", "name the GPU pools whose nodes "
                                 "serve VMs")
    for i, name in enumerate(v.pools):
        if name not in pools:
            raise InputPropertyError(f"virtualization.pools[{i}]", f"{name!r} is not a GPU "
                                     f"pool; pools: {', '.join(pools) or '(none)'}")
        if pools[name].allocator == "dra":
            # A VM node's GPUs are bound to vfio-pci (or the vGPU manager) and handed out by
            # the KubeVirt device plugin; the DRA driver would find no GPU to publish.
            raise InputPropertyError(
                f"virtualization.pools[{i}]", f"pool {name!r} uses allocator dra; a pool "
                "whose nodes serve VMs uses allocator: device-plugin (the GPU Operator's "
                "KubeVirt device plugin hands its GPUs to VMs)")
    if v.workload == "vm-vgpu" and not _IMAGE_REF.match(v.vgpu_manager_image or ""):
        raise InputPropertyError(
            "virtualization.vgpu_manager_image", f"{v.vgpu_manager_image!r}: vm-vgpu needs "
            "the NVIDIA vGPU Manager image you built and pushed, as "
            "<registry>/<path>/<image>:<version> (NVIDIA publishes none)")
    if v.workload == "vm-passthrough" and v.vgpu_manager_image is not None:
        raise InputPropertyError("virtualization.vgpu_manager_image", "only read with "
                                 "workload vm-vgpu; drop it for vm-passthrough")


def virtualized_pool(pool: GpuPool, v: VirtualizationLayer | None) -> GpuPool:
    """The pool with the GPU Operator's workload label when its nodes serve VMs."""
    if v is None or pool.name not in v.pools:
        return pool
    from dataclasses import replace
    return replace(pool, labels={**pool.labels, WORKLOAD_LABEL: v.workload})


def not_applicable(v: VirtualizationLayer | None) -> dict[str, str]:
    """NOT_APPLICABLE, less virtualized_accelerator where a layer serves it."""
    return {k: why for k, why in NOT_APPLICABLE.items()
            if v is None or k != "virtualized_accelerator"}


GPU_DRIVERS: dict[str, GpuDriver] = {
    # The GPU Operator builds and loads the driver and installs the container toolkit.
    "operator": GpuDriver(
        owner="operator", root="/run/nvidia/driver", toolkit_on_host=False,
        operator_values={"driver": {"enabled": True}, "toolkit": {"enabled": True}}),
    # Driver and NVIDIA container toolkit are already on the hosts.
    "host": GpuDriver(
        owner="host", root="/", toolkit_on_host=True,
        operator_values={"driver": {"enabled": False}, "toolkit": {"enabled": False}}),
}


# k3s runs its own containerd: config rendered from a template under its data dir, socket
# under /run/k3s. Without these the operator's toolkit edits /etc/containerd/config.toml
# and talks to /run/containerd/containerd.sock, and the nvidia runtime never registers
# (NVIDIA GPU Operator "Getting Started", RKE2/k3s: toolkit.env CONTAINERD_CONFIG,
# CONTAINERD_SOCKET, CONTAINERD_RUNTIME_CLASS, CONTAINERD_SET_AS_DEFAULT). The template is
# config-v3.toml.tmpl: the pinned k3s releases (1.34-1.36) run containerd 2 and read that
# file first, config.toml.tmpl only as the version-2 fallback (k3s-io/k3s
# pkg/agent/containerd/config.go templateGenerations, commit 06ea261).
K3S_TOOLKIT_ENV = (
    {"name": "CONTAINERD_CONFIG",
     "value": "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl"},
    {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"},
    {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"},
    {"name": "CONTAINERD_SET_AS_DEFAULT", "value": "true"},
)


def gpu_driver(mode: str, owner: str) -> GpuDriver:
    """The driver policy, with k3s's containerd paths when the operator installs the toolkit."""
    driver = GPU_DRIVERS[owner]
    if mode != "k3s" or driver.toolkit_on_host:
        return driver
    values = {**driver.operator_values,
              "toolkit": {**driver.operator_values.get("toolkit", {}),
                          "env": [dict(e) for e in K3S_TOOLKIT_ENV]},
              "operator": {"runtimeClass": "nvidia"}}
    return GpuDriver(owner=driver.owner, root=driver.root,
                     toolkit_on_host=driver.toolkit_on_host, operator_values=values)


@dataclass(frozen=True)
class OnPremClusterArgs:
    """Inputs of :class:`OnPremCluster`."""

    cluster_name: str
    kubernetes_version: str
    gpu_pools: tuple[GpuPoolRequest, ...]
    mode: Literal["existing", "k3s"]
    # existing: a kubeconfig file (``~`` expanded); None reads the secret aicp:kubeconfig.
    kubeconfig_path: str | None = None
    context: str | None = None
    # existing: pool name → node names.
    gpu_nodes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # k3s: the first server initialises etcd; agents join it.
    servers: tuple[K3sHost, ...] = ()
    agents: tuple[K3sHost, ...] = ()
    ssh_private_key_key: str = DEFAULT_SSH_KEY_KEY
    # k3s: the gVisor release installed on the servers for workload_sandboxing (None: no
    # sandbox). Only where no server is in a GPU pool (K3S_SANDBOX).
    sandbox_gvisor_release: str | None = None
    # k3s: the release for kubernetes_version, from the version catalog.
    k3s: K3sRelease | None = None
    gpu_driver: Literal["host", "operator"] = "operator"
    storage: StorageArgs = StorageArgs()  # default class, the user's S3 endpoint (#20)
    # A racked RDMA fabric's link type on every GPU node, or None (components/fabric.py).
    rdma: Literal["infiniband", "ethernet"] | None = None
    # A virtualization layer serving GPUs to VMs on some pools (virtualized_accelerator).
    virtualization: VirtualizationLayer | None = None
    # existing: nodes (not GPU nodes) that get the sandbox runtime (gVisor, or Kata where
    # they have KVM) for workload_sandboxing; only with sandbox_gvisor_release (sandbox on).
    sandbox_nodes: tuple[str, ...] = ()
    sandbox_runtime: Literal["gvisor", "kata"] = "gvisor"


def validate(args: OnPremClusterArgs) -> None:
    """Raise ``InputPropertyError`` for the first problem with ``args``; declares nothing."""
    validate_pools("onprem", args.gpu_pools)
    check_onprem_storage(args.storage)
    pools = {p.name: i for i, p in enumerate(args.gpu_pools)}
    if args.virtualization is not None:
        check_virtualization(args.virtualization, {p.name: p for p in args.gpu_pools})
    if args.gpu_driver not in GPU_DRIVERS:
        raise InputPropertyError("gpu_driver", f"{args.gpu_driver!r} is not one of "
                                 f"{', '.join(GPU_DRIVERS)}")
    check_sandbox_nodes(args)
    if args.mode == "existing":
        members = {name: tuple(args.gpu_nodes.get(name, ())) for name in pools}
        for name in args.gpu_nodes:
            if name not in pools:
                raise InputPropertyError(
                    f"gpu_nodes[{json.dumps(name)}]",
                    f"no GPU pool is named {name!r}; pools: {', '.join(pools)}")
        owner: dict[str, str] = {}
        for name, nodes in members.items():
            at = f"gpu_nodes[{json.dumps(name)}]"
            if not nodes:
                raise PropertyError(
                    at, "list at least one node for GPU pool {name!r} ({0})",
                    (f"gpu_pools[{pools[name]}]",), name=name)
            for node in nodes:
                if not _dns_subdomain(node):
                    raise InputPropertyError(at, f"{node!r} is not a Kubernetes node name")
                if node in owner:
                    where = "twice in this pool" if owner[node] == name \
                        else f"also in pool {owner[node]!r}"
                    raise InputPropertyError(
                        at, f"node {node!r} is listed {where}; a node belongs to one GPU pool")
                owner[node] = name
        counts = {name: len(nodes) for name, nodes in members.items()}
    else:
        if args.k3s is None:
            raise InputPropertyError(
                "kubernetes_version", f"{args.kubernetes_version!r} has no pinned k3s release "
                "in the version catalog")
        if args.k3s.minor != args.kubernetes_version:
            raise InputPropertyError(
                "kubernetes_version", f"{args.kubernetes_version!r}, but k3s "
                f"{args.k3s.version} carries Kubernetes {args.k3s.minor}")
        if not args.servers:
            raise InputPropertyError("servers", "list at least one server")
        seen: set[str] = set()
        counts = dict.fromkeys(pools, 0)
        for kind, hosts in (("servers", args.servers), ("agents", args.agents)):
            for i, h in enumerate(hosts):
                if not valid_host(h.host):
                    raise InputPropertyError(f"{kind}[{i}].host",
                                             f"{h.host!r} is not a host name or IP address")
                if not valid_user(h.user):
                    raise InputPropertyError(f"{kind}[{i}].user",
                                             f"{h.user!r} is not a Unix user name")
                if h.host in seen:
                    raise InputPropertyError(f"{kind}[{i}].host", f"{h.host!r} is listed twice")
                seen.add(h.host)
                if h.pool is not None:
                    if h.pool not in pools:
                        raise InputPropertyError(
                            f"{kind}[{i}].pool", f"{h.pool!r} is not a GPU pool; pools: "
                            f"{', '.join(pools) or '(none)'}")
                    counts[h.pool] += 1
        for name, n in counts.items():
            if n == 0:
                raise PropertyError(
                    f"gpu_pools[{pools[name]}]", "GPU pool {name!r} has no host; set pool: "
                    "{name} on a host in {0} (or {1})", ("agents", "servers"), name=name)
    for p in args.gpu_pools:
        n = counts[p.name]
        at = f"gpu_nodes[{json.dumps(p.name)}]" if args.mode == "existing" \
            else f"gpu_pools[{pools[p.name]}]"
        if not p.min_nodes <= n <= p.max_nodes:
            raise InputPropertyError(
                at, f"{n} node(s) in GPU pool {p.name!r}, outside minNodes..maxNodes "
                f"({p.min_nodes}..{p.max_nodes}); on-prem a pool is exactly its nodes")


def check_sandbox_nodes(args: OnPremClusterArgs) -> None:
    """Where gVisor may go on an existing cluster: named CPU nodes, with the sandbox on."""
    if not args.sandbox_nodes:
        return
    if args.mode != "existing":
        raise InputPropertyError("sandbox_nodes", "only read on an existing cluster; k3s "
                                 "gets gVisor on its servers by itself")
    if args.sandbox_gvisor_release is None:
        raise InputPropertyError("sandbox_nodes", "the sandbox is off "
                                 "(aicp:addons.sandbox.enabled: false); drop one of the two")
    gpu = {n: pool for pool, nodes in args.gpu_nodes.items() for n in nodes}
    for i, node in enumerate(args.sandbox_nodes):
        at = f"sandbox_nodes[{i}]"
        if not _dns_subdomain(node):
            raise InputPropertyError(at, f"{node!r} is not a Kubernetes node name")
        if node in args.sandbox_nodes[:i]:
            raise InputPropertyError(at, f"node {node!r} is listed twice")
        if node in gpu:
            # The GPU Operator's toolkit rewrites containerd's config on GPU nodes.
            raise InputPropertyError(at, f"node {node!r} is in GPU pool {gpu[node]!r}; "
                                     "name CPU nodes for the sandbox")


_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_NODE_NAME.match(name))


def _config_secret(full_key: str) -> pulumi.Output[str]:
    namespace, key = full_key.split(":", 1) if ":" in full_key else ("aicp", full_key)
    return pulumi.Config(namespace).require_secret(key)


class OnPremCluster(pulumi.ComponentResource):
    """An on-prem cluster ready for the aicp addons; ``outputs`` is the contract."""

    outputs: ClusterOutputs

    def __init__(self, name: str, args: OnPremClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        validate(args)
        super().__init__("aicp:onprem:Cluster", name, None, opts)
        self._name = name
        self._args = args
        self.pools: tuple[GpuPool, ...] = tuple(
            resolve_pool("onprem", p) for p in args.gpu_pools)
        self.pools = tuple(onprem_rdma_fabric(p, args.rdma) for p in self.pools)
        self.pools = tuple(virtualized_pool(p, args.virtualization) for p in self.pools)
        self.node_patches: list[k8s.core.v1.NodePatch] = []
        self.commands: dict[str, Any] = {}

        if args.mode == "existing":
            self.kubeconfig = self._existing_kubeconfig()
            ready_on: list[pulumi.Resource] = []
        else:
            self.kubeconfig, ready_on = self._k3s()
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig,
            context=args.context if args.mode == "existing" else None,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready_on or None))
        if args.mode == "existing":
            self.node_patches = self._label_gpu_nodes()
        # Addons wait for the GPU labels: the DRA kubelet plugin and the operator's
        # per-node device-plugin switch select on them.
        ready: list[pulumi.Resource] = [*ready_on, *self.node_patches]
        ready += self._k3s_sandbox()
        ready += self._existing_sandbox()

        self.outputs = ClusterOutputs(
            target="onprem", name=args.cluster_name,
            kubernetes_version=args.kubernetes_version, kubeconfig=self.kubeconfig,
            provider=self.provider, gpu_pools=self.pools,
            gpu_driver=gpu_driver(args.mode, args.gpu_driver), autoscaler="none",
            ready=ready,
            features={"mode": args.mode, "notApplicable": not_applicable(args.virtualization),
                      **({SANDBOX: K3S_SANDBOX.export()} if self.sandbox_commands else {}),
                      **({SANDBOX: {**EXISTING_RUNTIMES[args.sandbox_runtime].export(),
                                    "installer": EXISTING_INSTALLER[args.sandbox_runtime],
                                    "nodeLabel": {gvisor.EXISTING_LABEL: args.sandbox_runtime},
                                    "nodes": list(args.sandbox_nodes)}}
                         if self.sandbox_labels else {}),
                      **({VIRTUALIZATION: args.virtualization.export()}
                         if args.virtualization else {})},
            storage=onprem_storage(args, args.storage))
        self.register_outputs({
            "mode": args.mode,
            "kubeconfig": self.kubeconfig,
            "gpuNodes": {p: list(n) for p, n in args.gpu_nodes.items()}
            if args.mode == "existing" else {},
            "notApplicable": not_applicable(args.virtualization),
            CONFORMANCE_OUTPUT: [],
        })

    def _k3s_sandbox(self) -> list[pulumi.Resource]:
        """gVisor on every k3s server, after its k3s install (workload_sandboxing).

        The servers carry k3s's ``node-role.kubernetes.io/control-plane=true`` label, which
        the RuntimeClass selects (K3S_SANDBOX). A server in a GPU pool would match that
        selector while the GPU Operator's toolkit owns its containerd template, so then no
        sandbox is built and ``aicp plan`` lists workload_sandboxing as not served.
        """
        a = self._args
        self.sandbox_commands: list[pulumi.Resource] = []
        release = a.sandbox_gvisor_release
        if a.mode != "k3s" or not release or any(h.pool for h in a.servers):
            return []
        # Loaded (and its CopyFile deprecation warning silenced) by _k3s already.
        from pulumi_command.remote import Command, ConnectionArgs
        key = _config_secret(a.ssh_private_key_key)
        servers = self.commands.get("servers", [])
        for i, (h, install) in enumerate(zip(a.servers, servers, strict=True)):
            self.sandbox_commands.append(Command(
                f"{self._name}-gvisor-{i}",
                connection=ConnectionArgs(host=h.host, user=h.user, private_key=key),
                create=gvisor.k3s_script("" if h.user == "root" else "sudo -n ", release),
                triggers=[h.host],
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[install],
                    ignore_changes=["connection.user", "connection.privateKey"])))
        return self.sandbox_commands

    def _existing_sandbox(self) -> list[pulumi.Resource]:
        """The label that brings the gVisor installer and sandboxed pods to each node named
        in ``sandbox_nodes`` (existing clusters; merged key by key, nothing else touched)."""
        a = self._args
        self.sandbox_labels: list[pulumi.Resource] = [
            k8s.core.v1.NodePatch(
                f"{self._name}-sandbox-node-{node}",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                    name=node, labels={gvisor.EXISTING_LABEL: a.sandbox_runtime},
                    annotations={"pulumi.com/patchFieldManager": f"{FIELD_MANAGER}-sandbox"}),
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider))
            for node in (a.sandbox_nodes if a.mode == "existing" else ())]
        return self.sandbox_labels

    # --- existing ------------------------------------------------------------------------

    def _existing_kubeconfig(self) -> pulumi.Output[str]:
        a = self._args
        if a.kubeconfig_path is None:
            text = _config_secret(KUBECONFIG_SECRET_KEY)
        else:
            path = Path(os.path.expanduser(a.kubeconfig_path))
            if not path.is_file():
                raise InputPropertyError(
                    "kubeconfig_path", f"no file at {path}; give the path of a "
                    f"kubeconfig, or leave it out and set the secret {KUBECONFIG_SECRET_KEY}")
            text = pulumi.Output.secret(path.read_text())
        if a.context is None:
            return pulumi.Output.secret(text)
        # The exported kubeconfig must open the same context the provider uses.
        return pulumi.Output.secret(text.apply(lambda t: _with_context(t, a.context or "")))

    def _label_gpu_nodes(self) -> list[k8s.core.v1.NodePatch]:
        patches = []
        for pool in self.pools:
            for node in self._args.gpu_nodes[pool.name]:
                patches.append(k8s.core.v1.NodePatch(
                    f"{self._name}-node-{node}",
                    metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                        name=node,
                        labels=dict(pool.labels),
                        annotations={
                            "pulumi.com/patchForce": "true",
                            "pulumi.com/patchFieldManager": FIELD_MANAGER,
                        }),
                    spec=k8s.core.v1.NodeSpecPatchArgs(taints=[
                        k8s.core.v1.TaintPatchArgs(key=t.key, value=t.value, effect=t.effect)
                        for t in pool.taints]),
                    opts=pulumi.ResourceOptions(parent=self, provider=self.provider)))
        return patches

    # --- k3s -----------------------------------------------------------------------------

    def _k3s(self) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        import warnings

        with warnings.catch_warnings():
            # Only Command is used here, but loading pulumi_command.remote warns that
            # CopyFile is deprecated (pulumi-command 1.2.1: remote/__init__.py imports
            # copy_file.py, which calls warnings.warn at module level and in its class
            # body). The package loads it lazily, on the first name taken from it: here.
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    module=r"pulumi_command\.remote\.copy_file")
            from pulumi_command.remote import Command, ConnectionArgs

        a, n = self._args, self._name
        release = a.k3s
        assert release is not None  # validate() refused k3s mode without a release
        pools = {p.name: p for p in self.pools}
        key = _config_secret(a.ssh_private_key_key)

        def connection(h: K3sHost) -> ConnectionArgs:
            return ConnectionArgs(host=h.host, user=h.user, private_key=key)

        def command(res: str, h: K3sHost, create: str, delete: str | None = None,
                    stdin: pulumi.Input[str] | None = None,
                    after: list[pulumi.Resource] | None = None,
                    secret_stdout: bool = False) -> Command:
            return Command(
                res, connection=connection(h), create=create, delete=delete, stdin=stdin,
                triggers=[h.host],
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=after or None,
                    additional_secret_outputs=["stdout"] if secret_stdout else None,
                    # Same-host replacement would run the uninstall after the reinstall.
                    ignore_changes=["connection.user", "connection.privateKey"]))

        first, *others = a.servers
        init = command(
            f"{n}-server-0", first,
            install_script(first, release, server_flags(first, pool_of(first, pools), None),
                           token_on_stdin=False),
            uninstall_script(first, agent=False))
        token_reader = command(f"{n}-token", first, read_script(first, NODE_TOKEN_FILE),
                               after=[init], secret_stdout=True)
        token = pulumi.Output.secret(token_reader.stdout.apply(lambda s: s.strip()))
        servers = [init]
        for i, h in enumerate(others, start=1):
            servers.append(command(
                f"{n}-server-{i}", h,
                install_script(h, release, server_flags(h, pool_of(h, pools), first),
                               token_on_stdin=True),
                uninstall_script(h, agent=False), stdin=token,
                after=[servers[-1], token_reader]))
        agents = [command(
            f"{n}-agent-{i}", h,
            install_script(h, release, agent_flags(first, pool_of(h, pools)),
                           token_on_stdin=True),
            uninstall_script(h, agent=True), stdin=token, after=[*servers, token_reader])
            for i, h in enumerate(a.agents)]
        reader = command(f"{n}-kubeconfig", first, read_script(first, KUBECONFIG_FILE),
                         after=[init], secret_stdout=True)
        kubeconfig = pulumi.Output.secret(
            reader.stdout.apply(lambda text: public_kubeconfig(text, first)))
        self.commands = {"servers": servers, "agents": agents, "token": token_reader,
                         "kubeconfig": reader}
        return kubeconfig, [*servers, *agents]


def _with_context(text: str, context: str) -> str:
    import yaml

    doc = yaml.safe_load(text) or {}
    names = [c.get("name") for c in doc.get("contexts") or []]
    if context not in names:
        raise ValueError(f"aicp:onprem.context: {context!r} is not a context of the "
                         f"kubeconfig; it has {', '.join(map(str, names)) or 'none'}")
    doc["current-context"] = context
    return yaml.safe_dump(doc, sort_keys=False)


# --- storage (issue #20) --------------------------------------------------------------------
# k3s bundles Rancher's local-path-provisioner and marks its class "local-path" default
# (docs.k3s.io/storage, "Setting up the Local Storage Provider"): node-local volumes, no
# second default from aicp. On an existing cluster the class is the cluster's own: the one
# the config names (aicp verify --stack checks it exists and is the default), else whatever
# the cluster marks default. Object storage on-prem is the user's S3-compatible endpoint
# with its keys in a Secret the user creates in the workload namespace (no cloud identity
# to bind workloads to), passed through as outputs; aicp creates no bucket there.
K3S_DEFAULT_CLASS = "local-path"


def check_onprem_storage(storage: StorageArgs) -> None:
    """What on-prem storage cannot be: refused before anything is declared."""
    if storage.parallel_fs:
        raise InputPropertyError("storage.parallel_fs", "aicp sets up no parallel file system "
                                 "on-prem: set it to false and mount yours with its CSI driver")
    if storage.bucket and storage.s3_endpoint and not storage.bucket_name:
        raise InputPropertyError("storage.bucket_name", "name the bucket on your S3 endpoint "
                                 "(aicp creates none on-prem)")


def onprem_storage(args: OnPremClusterArgs, storage: StorageArgs) -> StorageOutputs:
    """The on-prem cluster's storage as outputs: nothing is declared for it."""
    default = storage.default_class or (K3S_DEFAULT_CLASS if args.mode == "k3s" else None)
    return StorageOutputs(
        default_class=default if storage.block else None, namespace=storage.workload_namespace,
        service_account=storage.service_account,
        s3_endpoint=storage.s3_endpoint, s3_secret=storage.s3_secret,
        s3_bucket=storage.bucket_name if storage.bucket and storage.s3_endpoint else None,
        unbound_teams=unbound_teams(storage))  # #24: teams get no identity on-prem
