"""The Azure target: an AKS cluster with a system pool and one user agent pool per GPU pool.

What it builds (raw ``pulumi_azure_native`` classes, so every child is visible to
``aicp plan``):

- a resource group ``<cluster>-rg``, unless an existing one is named;
- a virtual network with one node subnet (the first half of the address space), unless an
  existing subnet id is given;
- a user-assigned control-plane identity, granted Network Contributor on the node subnet
  and Contributor on the resource groups of the capacity reservation groups pools use;
- the AKS cluster: that identity, OIDC issuer and Microsoft Entra Workload ID,
  Azure CNI Overlay with the Cilium dataplane, a System-mode pool that autoscales, the
  cluster autoscaler profile, patch + node-image auto-upgrade, the requested API server
  access (public with authorized IP ranges, or private);
- one User-mode agent pool per GPU pool: VM size from the accelerator catalog, autoscaling
  ``min..max`` (0 allowed), Ubuntu, tainted and labelled from the catalog, Spot or a
  capacity reservation group where asked; each in its own ``AksGpuPool`` component;
- the kubeconfig of the cluster's user credentials, kept secret, and a Kubernetes provider
  on it.

Upstream followed: AKS docs (Azure CNI Overlay, Cilium dataplane, workload identity, GPU
node pools and ``gpuProfile.driver``, NVIDIA GPU Operator on AKS, Spot node pools,
capacity reservation groups, auto-upgrade channels), pulumi-azure-native 3.29
``containerservice`` (REST API 2025-09-01), AICR ``values-aks.yaml`` for the GPU Operator
values.

Decisions, each with its reason:

- **User-assigned control-plane identity**, not system-assigned: AKS associates
  capacity reservation groups only through a user-assigned identity with Contributor on
  the group's resource group ("system-assigned managed identities don't work with this
  feature", AKS docs, capacity reservation groups), and a custom subnet's Network
  Contributor grant must exist before the cluster is created. Switching the identity
  type later would restart the control plane, so every cluster gets one from the start.
- **Default provider, explicit ``location`` on every resource.** An explicit
  ``azure_native.Provider`` would stop reading the stack's ``azure-native:*`` config
  (subscription, tenant, auth), which users of the Azure provider expect to work.
- **Local accounts on, no Entra ID integration by default.** The user credentials of a
  cluster without Entra ID are a client-certificate kubeconfig, usable by the Pulumi
  Kubernetes provider in CI with nothing installed. With Entra ID the kubeconfig needs
  ``kubelogin`` and an Azure login on the machine running ``pulumi up``; give
  ``entra_admin_group_ids`` to choose that: local accounts off, Azure RBAC on, the members
  of those groups cluster admins, kubeconfig in ``exec`` format (kubelogin on the PATH).
- **GPU driver: the GPU Operator installs it by default** (``gpu_driver="operator"``):
  every GPU pool gets ``gpuProfile.driver=None`` and the operator installs driver and
  toolkit under ``/run/nvidia/driver`` with runtime class ``nvidia``, its toolkit set to
  refuse ``NVIDIA_VISIBLE_DEVICES`` from unprivileged containers
  (``accept-nvidia-visible-devices-envvar-when-unprivileged = false``; see
  ``aicp.addons.gpu_operator`` TOOLKIT_HARDENING_ENV). AKS's own install
  (``gpu_driver="host"``) leaves its toolkit at the upstream default, which accepts that
  variable, so any CUDA image that tolerates the GPU taint sees every GPU of the node and
  ``secure_accelerator_access`` fails; it remains for clusters that accept this (faster
  scale-from-zero: no driver build), with ``driver.enabled=false``,
  ``toolkit.enabled=false`` and ``operator.runtimeClass=nvidia-container-runtime`` (the
  containerd handler AKS's driver setup registers). One policy for all pools: the
  operator's values are cluster-wide.
- **Ubuntu on every pool.** The GPU Operator does not support Azure Linux OS Guard or
  Flatcar, and mixed node OS versions break it.
- **No ``CriticalAddonsOnly`` taint on the system pool.** The platform's controllers
  (GPU Operator, Kueue, Istio, Prometheus) run there, as on the other targets.
- **GPU pools are regional** (no zones): GPU capacity is scarce per zone, and an
  InfiniBand pool must stay in one placement group. ``zones`` apply to the system pool.
- **Spot pools carry AKS's own taint** ``kubernetes.azure.com/scalesetpriority=spot:
  NoSchedule`` in ``node_taints`` (AKS adds it anyway; declaring it avoids a diff on every
  update) and it is listed in the pool's taints so addons can tolerate it.
- **GPU pools upgrade with ``max_surge=0, max_unavailable=1``**: a surge node is one more
  GPU VM of quota that is rarely there. Spot pools take no upgrade settings (AKS rejects
  surge on Spot).
- **A capacity reservation group** is associated through ``capacity_reservation_group_id``
  (the pool request's ``capacity_reservation_id`` is the group's ARM id). Role
  assignments can take minutes to propagate; a first ``pulumi up`` may need a retry.
- **DRA pools keep at least one node.** Upstream cluster-autoscaler's Azure provider builds
  a node template from the VM size (CPU, memory, ``nvidia.com/gpu``) but no DRA
  ResourceSlices, so a ResourceClaim cannot wake a pool at zero; device-plugin pools can
  scale from zero. (Same limit as on AWS; AKS's managed autoscaler is assumed to match
  upstream here, not verified.)
- **Node counts belong to the autoscaler** once a pool exists: ``count`` is ignored on
  update.
- **The system pool is updated as its own AgentPool** (pulumi-azure-native#2719). AKS needs
  one pool inline at creation, but any later ManagedCluster update sends
  ``agentPoolProfiles`` in the same PUT, and AKS refuses pool changes there ("Adding agent
  pools to an existing cluster is not allowed through managed cluster operations. For
  agent pool specific change, please use per agent pool operations"). So the cluster
  ignores ``agentPoolProfiles`` after creation, and an ``AgentPool`` named ``system``
  (the inline pool's name, so it adopts it) carries every system-pool setting through the
  per-pool API; it is retained on delete (AKS refuses to delete the last System pool; the
  cluster's deletion removes it).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pulumi
import pulumi_azure_native as azure_native
import pulumi_kubernetes as k8s
from pulumi.errors import InputPropertyError

from .contract import (
    CONFORMANCE_OUTPUT,
    SANDBOX,
    SYSTEM_MIN_NODES,
    ClusterOutputs,
    GpuDriver,
    GpuPool,
    GpuPoolRequest,
    PropertyError,
    SandboxRuntime,
    Taint,
    capacity_types,
    ipv4_network,
    node_range,
    of_form,
    region_code,
    resolve_pool,
    validate_pools,
)
from .fabric import fabric
from .storage import StorageArgs, StorageOutputs, team_subjects

cs = azure_native.containerservice

# --- workload_sandboxing and virtualized_accelerator (issue #25) -------------------------
# Dsv5: Generation 2 with nested virtualization, the family AKS's Pod Sandboxing page uses
# (https://learn.microsoft.com/azure/aks/use-pod-sandboxing).
SANDBOX_VM_SIZE = "Standard_D4s_v5"
SANDBOX_MAX_NODES = 3
AKS_WORKLOAD_RUNTIME = "KataVmIsolation"  # GA; the preview's was KataMshvVmIsolation
# What AKS creates for a KataVmIsolation pool: RuntimeClass "kata-vm-isolation", handler
# "kata", whose scheduling.nodeSelector is the label AKS puts on the pool's nodes,
# kubernetes.azure.com/kata-vm-isolation=true (learn.microsoft.com/azure/aks/
# use-pod-sandboxing; the preview's class was "kata-mshv-vm-isolation", handler "kata",
# as `kubectl get runtimeclasses` shows on such a cluster). No taint: other pods may share
# the pool.
AKS_SANDBOX = SandboxRuntime(
    runtime="kata", runtime_class="kata-vm-isolation", handler="kata", created_by="cloud",
    node_selector={"kubernetes.azure.com/kata-vm-isolation": "true"}, pool="sandbox",
    note="CPU pool: aicp puts no GPU inside the Kata VM")
# The NC-series sizes in aicp's accelerator catalog pass whole GPUs to the VM (Discrete
# Device Assignment); fractional vGPU sizes (NVadsA10 v5) are not in it
# (https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nc-family).
NOT_APPLICABLE = {
    "virtualized_accelerator": (
        "AKS GPU pools use NC-series VMs, which get whole GPUs passed through; vGPU needs the "
        "hypervisor's vGPU manager, which only Azure's fractional NVadsA10 v5 sizes use, and "
        "those are not in aicp's accelerator catalog (fractional GPUs are served by "
        "gpu_sharing instead)"),
}

SYSTEM_POOL_LABEL = "aicp.dev/pool"
SYSTEM_POOL_NAME = "system"
# 8 vCPU / 32 GiB with a local disk (ephemeral OS disk): room for the platform's controllers.
DEFAULT_SYSTEM_VM_SIZE = "Standard_D8ds_v5"
# Azure tag names cannot contain '/', so the cluster tag is not the Kubernetes-style label.
CLUSTER_TAG = "aicp-cluster"
# What AKS sells a GPU pool: regular or Spot scale sets (agent pool scaleSetPriority).
CAPACITY_TYPES = ("on-demand", "spot")
SPOT_TAINT = Taint("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")
# Built-in role definition ids (same in every subscription).
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
# AKS's cluster autoscaler expanders (no "price" on AKS).
EXPANDERS = ("least-waste", "most-pods", "priority", "random")
_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")  # AKS Linux agent pool names
_BAD_TAG = re.compile(r"[<>%&\\?/]")
_CRG_ID = re.compile(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+)/providers/"
                     r"Microsoft\.Compute/capacityReservationGroups/[^/]+$", re.IGNORECASE)

GPU_DRIVERS: dict[str, GpuDriver] = {
    # AKS installs driver + toolkit on GPU pools (gpuProfile.driver Install, the default).
    "host": GpuDriver(
        owner="host", root="/", toolkit_on_host=True,
        operator_values={
            "driver": {"enabled": False}, "toolkit": {"enabled": False},
            "operator": {"runtimeClass": "nvidia-container-runtime"}}),
    # gpuProfile.driver None: the GPU Operator installs driver + toolkit.
    "operator": GpuDriver(
        owner="operator", root="/run/nvidia/driver", toolkit_on_host=False,
        operator_values={
            "driver": {"enabled": True},
            # Ubuntu 24.04 nodes (AKS default from 1.35) run containerd 2.x: the toolkit
            # must read the runtime config from the file, not from the containerd CLI.
            "toolkit": {"enabled": True,
                        "env": [{"name": "RUNTIME_CONFIG_SOURCE", "value": "file"}]},
            "operator": {"runtimeClass": "nvidia"}}),
}


@dataclass(frozen=True)
class AksClusterArgs:
    """Inputs of :class:`AksCluster`."""

    cluster_name: str
    kubernetes_version: str  # a minor ("1.35"): AKS picks its newest GA patch
    location: str
    gpu_pools: tuple[GpuPoolRequest, ...]
    # Existing resource group; created as <cluster_name>-rg when not given.
    resource_group: str | None = None
    zones: tuple[str, ...] = ()  # "1", "2", "3"
    vnet_cidr: str = "10.0.0.0/16"
    # Existing node subnet (full ARM id); when given no virtual network is created.
    subnet_id: str | None = None
    # Overlay pod and service ranges: never routed in the VNet, but must not overlap it.
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    private_cluster: bool = False
    # Public API server: who may reach it. Empty (or 0.0.0.0/0) means everyone.
    authorized_ip_ranges: tuple[str, ...] = ()
    system_vm_size: str | None = None  # DEFAULT_SYSTEM_VM_SIZE
    system_min_nodes: int = 2
    system_max_nodes: int = 4
    # GPU images (CUDA, PyTorch, vLLM) are 10-20 GB each, and several are cached per node.
    gpu_os_disk_gib: int = 256
    gpu_driver: Literal["host", "operator"] = "operator"
    autoscaler_expander: str = "least-waste"
    sku_tier: Literal["Free", "Standard", "Premium"] = "Standard"
    # Entra ID groups whose members are cluster admins; turns local accounts off.
    entra_admin_group_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    # An AKS Pod Sandboxing (Kata) pool beside the system pool (workload_sandboxing).
    sandbox: bool = True
    storage: StorageArgs = StorageArgs()  # block and the model container (#20)
    # Register the subscription's AKSInfinibandSupport feature from this stack
    # (INFINIBAND_FEATURE); off by default, opt-in where the stack may.
    register_infiniband_feature: bool = False

    def __post_init__(self) -> None:
        validate(self)


# The location names `az account list-locations --query [].name` prints
# (https://learn.microsoft.com/cli/azure/account#az-account-list-locations): eastus2,
# westeurope; lowercase, no spaces.
REGION = re.compile(r"^[a-z][a-z0-9]*$")


def check_region(region: str) -> None:
    """The region is given, as its code; ``InputPropertyError`` at ``location``."""
    region_code("location", region, REGION, "eastus2", "an Azure", "azure")


# Resource group names: 1 to 90 letters (Unicode), digits, '_', '(', ')', '-' and '.', not
# ending in '.' (https://learn.microsoft.com/azure/azure-resource-manager/management/
# resource-name-rules#microsoftresources).
RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
# VM sizes are Standard_ and the size's name: Standard_D4s_v5, Standard_ND96isr_H100_v5
# (https://learn.microsoft.com/azure/virtual-machines/vm-naming-conventions).
VM_SIZE = re.compile(r"^(Standard|Basic)_[A-Za-z0-9_-]+$", re.IGNORECASE)


def validate_extras(args: AksClusterArgs) -> None:
    """The forms Azure gives resource group names and VM sizes."""
    of_form("resource_group", args.resource_group, RESOURCE_GROUP, "a resource group name "
            "(1 to 90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.')")
    of_form("system_vm_size", args.system_vm_size or None, VM_SIZE,
            "an Azure VM size (like Standard_D4s_v5)")


def validate(args: AksClusterArgs) -> None:
    """Raise ``InputPropertyError`` for the first argument AKS would refuse; declares
    nothing."""
    check_region(args.location)
    validate_extras(args)
    check_azure_storage(args.storage, args.subnet_id, args.vnet_cidr)
    for i, zone in enumerate(args.zones):
        if zone not in ("1", "2", "3"):
            raise InputPropertyError(f"zones[{i}]", f"{zone!r} is not an Azure zone; use "
                                     "\"1\", \"2\" or \"3\"")
    node_range("system_min_nodes", args.system_min_nodes, args.system_max_nodes,
               "system_max_nodes", SYSTEM_MIN_NODES)
    if args.autoscaler_expander not in EXPANDERS:
        raise InputPropertyError(
            "autoscaler_expander", f"{args.autoscaler_expander!r} is not offered by AKS; use "
            f"{', '.join(EXPANDERS[:-1])} or {EXPANDERS[-1]}")
    if args.private_cluster and args.authorized_ip_ranges \
            and not _everyone(args.authorized_ip_ranges):
        raise InputPropertyError("authorized_ip_ranges", "a private cluster has no public "
                                 "endpoint to restrict")
    for key in args.tags:
        if _BAD_TAG.search(key):
            raise InputPropertyError(f"tags[{json.dumps(key)}]",
                                     "Azure tag names cannot contain < > % & \\ ? /")
    # The overlay's pod and service ranges are never routed in the VNet, but must not overlap
    # it (https://learn.microsoft.com/azure/aks/azure-cni-overlay#ip-address-planning).
    pods = ipv4_network("pod_cidr", args.pod_cidr, "10.244.0.0/16")
    services = ipv4_network("service_cidr", args.service_cidr, "10.96.0.0/16")
    if args.subnet_id is None:
        vnet = ipv4_network("vnet_cidr", args.vnet_cidr, "10.0.0.0/16")
        for name, other in (("pod", pods), ("service", services)):
            if vnet.overlaps(other):
                raise InputPropertyError(
                    "vnet_cidr", f"{args.vnet_cidr!r} overlaps the AKS {name} range {other}; "
                    f"pick a range outside {pods} and {services}")
    if pods.overlaps(services):
        raise InputPropertyError("service_cidr", f"{args.service_cidr!r} overlaps the pod "
                                 f"range {args.pod_cidr}")
    validate_pools("azure", args.gpu_pools)
    capacity_types("azure", args.gpu_pools, CAPACITY_TYPES)
    _validate_pool_names(args.gpu_pools)
    validate_infiniband_feature(args)
    for i, p in enumerate(args.gpu_pools):
        if p.allocator == "dra" and p.min_nodes < 1:
            raise PropertyError(
                f"gpu_pools[{i}].min_nodes",
                # kubernetes/autoscaler#7799: no DRA template for a node not yet there.
                "0 cannot scale up for DRA claims on azure (its cluster autoscaler has no DRA "
                "node template for a pool with no nodes); set it to 1 or {0}: device-plugin",
                (f"gpu_pools[{i}].allocator",))
        if p.capacity_reservation_id and not _CRG_ID.match(p.capacity_reservation_id):
            raise InputPropertyError(
                f"gpu_pools[{i}].capacity_reservation_id",
                f"{p.capacity_reservation_id!r} is not an Azure capacity reservation id (like "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/"
                "capacityReservationGroups/<name>)")


def _validate_pool_names(pools: tuple[GpuPoolRequest, ...]) -> None:
    # AKS Linux node pool names: lowercase letters and digits, 1-12 characters, a letter
    # first (https://learn.microsoft.com/azure/aks/create-node-pools#limitations).
    taken: dict[str, int] = {}
    for i, p in enumerate(pools):
        aks = _derived_pool_name(p.name)
        if not _POOL_NAME.match(aks):
            raise InputPropertyError(
                f"gpu_pools[{i}].name", f"{p.name!r} gives no AKS pool name (lowercase "
                "letters and digits, a letter first, at most 12)")
        if aks == SYSTEM_POOL_NAME:
            raise InputPropertyError(
                f"gpu_pools[{i}].name",
                f"{p.name!r} is the name of the AKS system pool; pick another name")
        if aks in taken:
            j = taken[aks]
            raise PropertyError(
                f"gpu_pools[{i}].name", "{name!r} and {0} {other!r} both become AKS pool name "
                "{aks!r} (letters and digits, at most 12); rename one",
                (f"gpu_pools[{j}].name",), name=p.name, other=pools[j].name, aks=aks)
        taken[aks] = i


class AksCluster(pulumi.ComponentResource):
    """An AKS cluster ready for the aicp addons; ``outputs`` is the contract."""

    outputs: ClusterOutputs

    def __init__(self, name: str, args: AksClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicp:azure:Cluster", name, None, opts)
        self._name = name
        self._args = args
        self._subscription = azure_native.authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)).subscription_id

        if args.resource_group:
            self.resource_group_name: pulumi.Input[str] = args.resource_group
        else:
            group = azure_native.resources.ResourceGroup(
                f"{name}-rg", resource_group_name=f"{args.cluster_name}-rg",
                location=args.location, tags=self._tags(), opts=self._opts())
            self.resource_group_name = group.name
        self.subnet_id: pulumi.Input[str] = args.subnet_id or self._network()

        self.identity = azure_native.managedidentity.UserAssignedIdentity(
            f"{name}-identity", resource_group_name=self.resource_group_name,
            resource_name_=f"{args.cluster_name}-control-plane", location=args.location,
            tags=self._tags(), opts=self._opts())
        self.principal_id = self.identity.principal_id
        self.grants = self._grants()
        self.cluster = self._cluster()
        self.system_pool = self._system_pool()

        self.gpu_driver = GPU_DRIVERS[args.gpu_driver]
        self.infiniband_feature = infiniband_feature(self, args)
        self.pools: tuple[GpuPool, ...] = tuple(
            _with_spot_taint(resolve_pool("azure", p)) for p in args.gpu_pools)
        self.agent_pools: dict[str, AksGpuPool] = {
            pool.name: self._gpu_pool(pool, request)
            for pool, request in zip(self.pools, args.gpu_pools, strict=True)}

        self.sandbox_pool = self._sandbox_pool() if args.sandbox else None
        self.kubeconfig = self._kubeconfig()
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]))
        self.storage = azure_storage(self, args.storage)

        self.outputs = ClusterOutputs(
            target="azure", name=self.cluster.name, kubernetes_version=args.kubernetes_version,
            kubeconfig=self.kubeconfig, provider=self.provider, gpu_pools=self.pools,
            gpu_driver=self.gpu_driver,
            # AKS runs the cluster autoscaler itself (enable_auto_scaling on each pool).
            autoscaler="aks", autoscaler_values={},
            # The system pool is part of the cluster resource.
            ready=[self.cluster, self.system_pool],
            features={"notApplicable": dict(NOT_APPLICABLE),
                      **({SANDBOX: AKS_SANDBOX.export()} if args.sandbox else {})},
            storage=self.storage,
        )
        self.register_outputs({
            "clusterName": self.cluster.name,
            "resourceGroup": self.resource_group_name,
            "fqdn": self.cluster.fqdn,
            "oidcIssuerUrl": self.cluster.oidc_issuer_profile.apply(
                lambda p: p.issuer_url if p else None),
            "principalId": self.principal_id,
            "kubeconfig": self.kubeconfig,
            CONFORMANCE_OUTPUT: ["cluster_autoscaling"],
        })

    # --- helpers -----------------------------------------------------------------------

    def _opts(self, parent: pulumi.Resource | None = None, **kwargs: Any
              ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent or self, **kwargs)

    def _tags(self) -> dict[str, str]:
        return {**self._args.tags, CLUSTER_TAG: self._args.cluster_name}

    def _grants(self) -> list[azure_native.authorization.RoleAssignment]:
        """What the control-plane identity may do, granted before the cluster exists."""
        grants = [self._role_assignment(
            f"{self._name}-subnet-network", NETWORK_CONTRIBUTOR, self.subnet_id)]
        groups = dict.fromkeys(reservation_resource_group(p.capacity_reservation_id)
                               for p in self._args.gpu_pools if p.capacity_reservation_id)
        for i, group in enumerate(groups):
            grants.append(self._role_assignment(
                f"{self._name}-reservations-{i}", CONTRIBUTOR, group))
        return grants

    def _role_assignment(self, name: str, role: str, scope: pulumi.Input[str]
                         ) -> azure_native.authorization.RoleAssignment:
        return azure_native.authorization.RoleAssignment(
            name, principal_id=self.principal_id, principal_type="ServicePrincipal",
            role_definition_id=pulumi.Output.concat(
                "/subscriptions/", self._subscription,
                "/providers/Microsoft.Authorization/roleDefinitions/", role),
            scope=scope, opts=self._opts(parent=self.identity))

    # --- network -----------------------------------------------------------------------

    def _network(self) -> pulumi.Output[str]:
        a, n = self._args, self._name
        vnet = azure_native.network.VirtualNetwork(
            f"{n}-vnet", resource_group_name=self.resource_group_name,
            virtual_network_name=f"{a.cluster_name}-vnet", location=a.location,
            address_space=azure_native.network.AddressSpaceArgs(address_prefixes=[a.vnet_cidr]),
            tags=self._tags(),
            # Subnets are their own resources; the VNet must not manage them inline.
            opts=self._opts(ignore_changes=["subnets"]))
        subnet = azure_native.network.Subnet(
            f"{n}-nodes", resource_group_name=self.resource_group_name,
            virtual_network_name=vnet.name, subnet_name="nodes",
            address_prefix=node_subnet_cidr(a.vnet_cidr), opts=self._opts(parent=vnet))
        self.vnet = vnet
        return subnet.id

    # --- cluster -----------------------------------------------------------------------

    def _system_pool_settings(self) -> dict[str, Any]:
        """The system pool, as both the inline profile and the AgentPool take it."""
        a = self._args
        return dict(
            mode="System", vm_size=a.system_vm_size or DEFAULT_SYSTEM_VM_SIZE,
            os_type="Linux", os_sku="Ubuntu", type="VirtualMachineScaleSets",
            enable_auto_scaling=True, min_count=a.system_min_nodes,
            max_count=a.system_max_nodes, count=a.system_min_nodes,
            availability_zones=list(a.zones) or None, vnet_subnet_id=self.subnet_id,
            orchestrator_version=a.kubernetes_version,
            node_labels={SYSTEM_POOL_LABEL: SYSTEM_POOL_NAME},
            upgrade_settings=cs.AgentPoolUpgradeSettingsArgs(max_surge="33%"))

    def _system_pool(self) -> cs.AgentPool:
        """Later system-pool changes go through the per-pool API (see module doc)."""
        return cs.AgentPool(
            f"{self._name}-system", resource_group_name=self.resource_group_name,
            resource_name_=self.cluster.name, agent_pool_name=SYSTEM_POOL_NAME,
            **self._system_pool_settings(),
            opts=self._opts(depends_on=[self.cluster], retain_on_delete=True,
                            ignore_changes=["count"]))

    def _sandbox_pool(self) -> cs.AgentPool:
        """An AKS Pod Sandboxing pool: Kata VMs on Azure Linux, for untrusted code.

        "Pod Sandboxing ... supports Azure Linux" and needs "a Generation 2 VM size that
        supports nested virtualization" (https://learn.microsoft.com/azure/aks/
        use-pod-sandboxing); ``workloadRuntime: KataVmIsolation`` on the pool
        (azure-native containerservice AgentPool ``workload_runtime``). A User pool can
        scale to zero: the autoscaler adds a node when a kata-vm-isolation pod waits.
        """
        a = self._args
        return cs.AgentPool(
            f"{self._name}-sandbox", resource_group_name=self.resource_group_name,
            resource_name_=self.cluster.name, agent_pool_name=AKS_SANDBOX.pool,
            mode="User", vm_size=SANDBOX_VM_SIZE, os_type="Linux", os_sku="AzureLinux",
            workload_runtime=AKS_WORKLOAD_RUNTIME, type="VirtualMachineScaleSets",
            vnet_subnet_id=self.subnet_id, orchestrator_version=a.kubernetes_version,
            enable_auto_scaling=True, min_count=0, max_count=SANDBOX_MAX_NODES, count=0,
            node_labels={SYSTEM_POOL_LABEL: AKS_SANDBOX.pool}, tags=self._tags(),
            opts=self._opts(depends_on=[self.cluster], ignore_changes=["count"]))

    def _cluster(self) -> cs.ManagedCluster:
        a, n = self._args, self._name
        system = cs.ManagedClusterAgentPoolProfileArgs(
            name=SYSTEM_POOL_NAME, **self._system_pool_settings())
        entra = bool(a.entra_admin_group_ids)
        return cs.ManagedCluster(
            f"{n}-aks", resource_group_name=self.resource_group_name,
            resource_name_=a.cluster_name, location=a.location, dns_prefix=a.cluster_name,
            kubernetes_version=a.kubernetes_version,
            sku=cs.ManagedClusterSKUArgs(name="Base", tier=a.sku_tier),
            identity=cs.ManagedClusterIdentityArgs(
                type=cs.ResourceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[self.identity.id]),
            enable_rbac=True,
            disable_local_accounts=entra,
            aad_profile=cs.ManagedClusterAADProfileArgs(
                managed=True, enable_azure_rbac=True,
                admin_group_object_ids=list(a.entra_admin_group_ids)) if entra else None,
            oidc_issuer_profile=cs.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=cs.ManagedClusterSecurityProfileArgs(
                workload_identity=cs.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True)),
            network_profile=cs.ContainerServiceNetworkProfileArgs(
                network_plugin="azure", network_plugin_mode="overlay",
                network_dataplane="cilium", network_policy="cilium",
                pod_cidr=a.pod_cidr, service_cidr=a.service_cidr,
                dns_service_ip=dns_service_ip(a.service_cidr),
                load_balancer_sku="standard", outbound_type="loadBalancer"),
            api_server_access_profile=self._api_server_access(),
            storage_profile=aks_storage_profile(a.storage),
            agent_pool_profiles=[system],
            auto_scaler_profile=cs.ManagedClusterPropertiesAutoScalerProfileArgs(
                expander=a.autoscaler_expander),
            # Patch upgrades within the pinned minor; node images carry the matching
            # kernel and (host driver policy) the matching NVIDIA driver.
            auto_upgrade_profile=cs.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel="patch", node_os_upgrade_channel="NodeImage"),
            tags=self._tags(),
            # Pools change through AgentPool resources only (pulumi-azure-native#2719).
            opts=self._opts(depends_on=self.grants, ignore_changes=["agentPoolProfiles"]))

    def _api_server_access(self) -> cs.ManagedClusterAPIServerAccessProfileArgs | None:
        a = self._args
        if a.private_cluster:
            return cs.ManagedClusterAPIServerAccessProfileArgs(enable_private_cluster=True)
        if a.authorized_ip_ranges and not _everyone(a.authorized_ip_ranges):
            return cs.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=list(a.authorized_ip_ranges))
        return None

    # --- GPU pools ---------------------------------------------------------------------

    def _gpu_pool(self, pool: GpuPool, request: GpuPoolRequest) -> AksGpuPool:
        a = self._args
        return AksGpuPool(f"{self._name}-gpu-{pool.name}", AksGpuPoolArgs(
            pool=pool, agent_pool_name=agent_pool_name(pool.name),
            resource_group_name=self.resource_group_name, cluster_name=self.cluster.name,
            subnet_id=self.subnet_id, kubernetes_version=a.kubernetes_version,
            os_disk_gib=a.gpu_os_disk_gib, gpu_driver=a.gpu_driver, tags=self._tags(),
            capacity_reservation_group_id=request.capacity_reservation_id,
            kubelet_disk_type=aks_kubelet_disk(pool.machine_type, a.storage),
            # One pool operation at a time on a new cluster: after the system pool's.
            depends_on=(*self.grants, self.system_pool, *self.infiniband_feature)),
            opts=pulumi.ResourceOptions(parent=self))

    # --- kubeconfig --------------------------------------------------------------------

    def _kubeconfig(self) -> pulumi.Output[str]:
        creds = cs.list_managed_cluster_user_credentials_output(
            resource_group_name=self.resource_group_name, resource_name=self.cluster.name,
            # Entra ID clusters: exec format, i.e. kubelogin (non-interactive with env
            # credentials after `kubelogin convert-kubeconfig -l azurecli` or similar).
            format="exec" if self._args.entra_admin_group_ids else None,
            opts=pulumi.InvokeOutputOptions(parent=self))
        return pulumi.Output.secret(creds.kubeconfigs.apply(
            lambda k: base64.b64decode(k[0].value).decode()))


# --- GPU pools ----------------------------------------------------------------------------

@dataclass(frozen=True)
class AksGpuPoolArgs:
    """Inputs of :class:`AksGpuPool`."""

    pool: GpuPool
    agent_pool_name: str  # AKS's name for it (see agent_pool_name)
    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]  # the ManagedCluster's name output
    subnet_id: pulumi.Input[str]
    kubernetes_version: str
    os_disk_gib: int
    gpu_driver: Literal["host", "operator"]  # who installs the driver (AksClusterArgs)
    tags: Mapping[str, str]
    capacity_reservation_group_id: str | None = None
    depends_on: tuple[pulumi.Resource, ...] = ()
    kubelet_disk_type: str | None = None  # "Temporary": local NVMe (aks_kubelet_disk)


class AksGpuPool(pulumi.ComponentResource):
    """One GPU pool of an AKS cluster: its autoscaled User-mode agent pool with the pool's
    VM size, taint and labels, Spot or a capacity reservation group where asked (one
    component per pool, as pulumi/pulumi-eks ``ManagedNodeGroup`` wraps its node group).

    Until this component existed the agent pool was a child of the cluster component that
    is its parent: it carries ``Alias(parent=<that parent>)``, so a stack created then
    keeps it (update in place, no replacement; pulumi/pulumi ``pkg/resource/deploy/
    step_generator.go``, ``generateAliases``).
    """

    agent_pool: cs.AgentPool

    def __init__(self, name: str, args: AksGpuPoolArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicp:azure:GpuPool", name, None, opts)
        pool = args.pool
        parent = opts.parent if opts is not None else None
        moved = [pulumi.Alias(parent=parent)] if parent is not None else None
        spot = pool.capacity_type == "spot"
        self.agent_pool = cs.AgentPool(
            name, resource_group_name=args.resource_group_name,
            resource_name_=args.cluster_name, agent_pool_name=args.agent_pool_name,
            mode="User", vm_size=pool.machine_type, os_type="Linux", os_sku="Ubuntu",
            type="VirtualMachineScaleSets", vnet_subnet_id=args.subnet_id,
            orchestrator_version=args.kubernetes_version, os_disk_size_gb=args.os_disk_gib,
            kubelet_disk_type=args.kubelet_disk_type,
            enable_auto_scaling=True, min_count=pool.min_nodes, max_count=pool.max_nodes,
            count=pool.min_nodes,
            node_labels=dict(pool.labels),
            node_taints=[f"{t.key}={t.value}:{t.effect}" for t in pool.taints],
            gpu_profile=cs.GPUProfileArgs(driver="None") if args.gpu_driver == "operator"
            else cs.GPUProfileArgs(driver="Install"),
            scale_set_priority="Spot" if spot else "Regular",
            scale_set_eviction_policy="Delete" if spot else None,
            spot_max_price=-1 if spot else None,  # pay up to the on-demand price
            capacity_reservation_group_id=args.capacity_reservation_group_id,
            upgrade_settings=None if spot else cs.AgentPoolUpgradeSettingsArgs(
                max_surge="0", max_unavailable="1"),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                        ignore_changes=["count"], aliases=moved))
        self.register_outputs({"pool": pool.name, "agentPool": self.agent_pool.name,
                               **infiniband_outputs(pool)})


# --- pure helpers (tested through the component) ----------------------------------------

def _derived_pool_name(pool: str) -> str:
    return re.sub(r"[^a-z0-9]", "", pool.lower())[:12]


def agent_pool_name(pool: str) -> str:
    """AKS Linux pool names: lowercase letters and digits, at most 12, a letter first."""
    name = _derived_pool_name(pool)
    if not _POOL_NAME.match(name):
        raise ValueError(f"gpu pool {pool!r}: no valid AKS pool name can be made of it")
    return name


def node_subnet_cidr(vnet_cidr: str) -> str:
    """The first half of the VNet: nodes only, since overlay pods take no VNet addresses;
    the other half stays free for private endpoints and load balancer subnets."""
    return str(next(ipaddress.ip_network(vnet_cidr).subnets(prefixlen_diff=1)))


def dns_service_ip(service_cidr: str) -> str:
    """The conventional ``.10`` of the service range (kube-dns)."""
    return str(ipaddress.ip_network(service_cidr).network_address + 10)


def reservation_resource_group(capacity_reservation_group_id: str) -> str:
    """The resource group (ARM id) holding a capacity reservation group."""
    match = _CRG_ID.match(capacity_reservation_group_id)
    if not match:
        raise ValueError(f"{capacity_reservation_group_id!r} is not the ARM id of a capacity "
                         "reservation group (/subscriptions/.../resourceGroups/.../providers/"
                         "Microsoft.Compute/capacityReservationGroups/...)")
    return match.group(1)


def _everyone(ranges: tuple[str, ...]) -> bool:
    return any(ipaddress.ip_network(r).prefixlen == 0 for r in ranges)


def _with_spot_taint(pool: GpuPool) -> GpuPool:
    if pool.capacity_type != "spot":
        return pool
    return replace(pool, taints=(*pool.taints, SPOT_TAINT))


# --- storage (issue #20) --------------------------------------------------------------------
# Block: AKS's Azure Disk CSI driver, kept on (storage_profile.disk_csi_driver), and the
# default class AKS installs with it, "default" (managed-csi: StandardSSD_LRS,
# WaitForFirstConsumer; learn.microsoft.com/azure/aks/azure-disk-csi, "Dynamically create
# Azure Disks PVs": the default storage class); managed disks are encrypted at rest with
# platform-managed keys (learn.microsoft.com/azure/virtual-machines/disk-encryption): aicp
# adds no second default.
AKS_DEFAULT_CLASS = "default"
# Object: the Blob CSI driver (storage_profile.blob_csi_driver, off by default on AKS,
# learn.microsoft.com/azure/aks/azure-blob-csi) mounting a container of a storage account
# that allows no public blob access and no shared keys, HTTPS and TLS 1.2 only, encrypted
# at rest (learn.microsoft.com/azure/storage/common/storage-service-encryption). The mount
# uses the pod's workload identity token alone (kubernetes-sigs/blob-csi-driver
# docs/workload-identity-static-pv-mount.md: mountWithWorkloadIdentityToken "true" with
# Storage Blob Data Contributor instead of Storage Account Contributor; "Pod does not use
# this service account has no permission to mount the volume"; tokens last 24 hours, so a
# long-running pod remounts), through a user-assigned identity federated with exactly the
# workload ServiceAccount (learn.microsoft.com/azure/aks/workload-identity-deploy-cluster:
# audience api://AzureADTokenExchange, subject system:serviceaccount:NS:SA) and granted
# Storage Blob Data Contributor on the container only.
BLOB_DRIVER = "blob.csi.azure.com"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"


# Parallel FS: Azure Managed Lustre (Microsoft.StorageCache/amlFilesystems, azure-native
# storagecache.AmlFilesystem) in a subnet of its own in the cluster's VNet: "Azure Managed
# Lustre file systems exist in a virtual network subnet" and AKS nodes must not share it
# (learn.microsoft.com/azure/azure-managed-lustre/amlfs-prerequisites, "Network
# prerequisites"; learn.microsoft.com/azure/aks/azure-managed-lustre-install: "Use separate
# subnets for AKS and Lustre"). Subnet size by capacity, same page: 4-16 TiB /27, 20-40 /26,
# 44-92 /25, 96-196 /24, 200-400 /23; the API asks for "at least a /24" (azure-native
# AmlFilesystemArgs.filesystem_subnet), so /24 is the smallest aicp carves. SKU
# AMLFS-Durable-Premium-500 sells the smallest file system, 4 TiB in 4 TiB steps
# (learn.microsoft.com/azure/azure-managed-lustre/create-file-system-portal#throughput-
# configurations: Premium-500, 4 TiB minimum, 4 TiB increment); the requested GiB are
# rounded up to that step and the size really bought is exported. Encrypted at rest with
# Microsoft-managed keys unless a key is given (same page, "Encryption"). A weekly 30-minute
# maintenance window is required.
AMLFS_SKU = "AMLFS-Durable-Premium-500"
AMLFS_STEP_TIB = 4
AMLFS_MAX_TIB = 400  # the largest row of the subnet-size table above
AMLFS_MAINTENANCE = (azure_native.storagecache.MaintenanceDayOfWeekType.SATURDAY, "22:00")
# The CSI driver (kubernetes-sigs/azurelustre-csi-driver, installed by
# aicp.addons.azurelustre_csi) mounts an existing AMLFS through a StorageClass naming its MGS
# address and file system name, "lustrefs" for AMLFS (docs/examples/
# storageclass_existing_lustre.yaml: provisioner azurelustre.csi.azure.com, parameters
# fs-name and mgs-ip-address, reclaimPolicy Retain, volumeBindingMode Immediate).
AZURE_LUSTRE_DRIVER = "azurelustre.csi.azure.com"
AMLFS_FS_NAME = "lustrefs"
AMLFS_CLASS = "azurelustre-rwx"
# Local NVMe: AKS's agent-pool property kubeletDiskType "Temporary" puts "emptyDir volumes,
# container runtime data root, and Kubelet ephemeral storage" on the VM's temporary disk
# instead of the OS disk (AKS API ManagedClusterAgentPoolProfileProperties.kubeletDiskType;
# azure-native containerservice AgentPool kubelet_disk_type); AKS's guidance for the local
# NVMe of GPU/storage sizes is learn.microsoft.com/azure/aks/best-practices-storage-nvme. The
# GPU sizes in aicp's catalog whose temporary storage is local NVMe (learn.microsoft.com/
# azure/virtual-machines/sizes/gpu-accelerated: nd-h100-v5-series and nd-h200-v5-series
# 8 NVMe disks, nc-h100-v5-series, nc-a100-v4-series and nd-a100-v4-series NVMe temp
# storage). Other sizes (NCasT4_v3: a small SCSI temp disk) keep the OS disk, unchanged.
# Not verified here: kubeletDiskType Temporary was refused as a preview feature in 2022
# (Azure/AKS#930; XenitAB/terraform-modules#561) and is set without one since (sassoftware/
# viya4-iac-azure#385); and whether AKS formats the raw NVMe temp disks of v5 ND sizes
# (learn.microsoft.com/azure/virtual-machines/enable-nvme-temp-faqs) for it. A subscription
# that refuses it: set aicp:storage.localNvme false.
LOCAL_NVME_SIZES = ("Standard_ND96isr_H100_v5", "Standard_ND96isr_H200_v5",
                    "Standard_NC40ads_H100_v5", "Standard_NC24ads_A100_v4",
                    "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
                    "Standard_ND96asr_v4")


def check_azure_storage(storage: StorageArgs, subnet_id: str | None = None,
                        vnet_cidr: str = "10.0.0.0/16") -> None:
    """What aicp's AKS storage cannot do: refused before anything is declared."""
    check_federated_credentials(storage)
    if not storage.parallel_fs:
        return
    try:
        ipaddress.ip_network(vnet_cidr)
    except ValueError:
        return  # validate() names vnet_cidr itself
    if subnet_id is not None:
        raise InputPropertyError("storage.parallel_fs", "Azure Managed Lustre on an existing "
                                 "subnet is not set up by aicp (it needs a subnet of its own "
                                 "in the VNet): set it to false, or let aicp create the VNet")
    if amlfs_tib(storage.parallel_fs_capacity_gib) > AMLFS_MAX_TIB:
        raise InputPropertyError("storage.parallel_fs_capacity_gib",
                                 f"{storage.parallel_fs_capacity_gib} GiB is above "
                                 f"{AMLFS_MAX_TIB} TiB, the largest Azure Managed Lustre aicp "
                                 "sizes a subnet for; ask for less")
    try:
        lustre_subnet_cidr(vnet_cidr, amlfs_tib(storage.parallel_fs_capacity_gib))
    except ValueError:
        raise InputPropertyError("vnet_cidr", f"{vnet_cidr!r} leaves no room for the Azure "
                                 "Managed Lustre subnet beside the nodes; use a /22 or larger "
                                 "VNet") from None


def amlfs_tib(capacity_gib: int) -> int:
    """The AMLFS size bought for a request: GiB rounded up to the SKU's 4 TiB step."""
    return max(1, math.ceil(capacity_gib / (1024 * AMLFS_STEP_TIB))) * AMLFS_STEP_TIB


def lustre_subnet_cidr(vnet_cidr: str, tib: int) -> str:
    """The first /24 (/23 above 196 TiB) of the VNet's second half, which the node subnet
    leaves free (node_subnet_cidr); ``ValueError`` where the VNet is too small."""
    prefix = 24 if tib <= 196 else 23
    free = list(ipaddress.ip_network(vnet_cidr).subnets(prefixlen_diff=1))[1]
    if free.prefixlen > prefix:
        raise ValueError(f"{vnet_cidr} has no /{prefix} beside the node subnet")
    return str(next(free.subnets(new_prefix=prefix)))


def aks_local_nvme_note(pools: tuple[GpuPool, ...], storage: StorageArgs) -> str:
    """The ``localNvme`` output: which GPU pools keep kubelet and images on local NVMe."""
    on = [p.name for p in pools if aks_kubelet_disk(p.machine_type, storage)]
    if not storage.local_nvme or not on:
        return ""
    return (f"kubelet and container data on the local NVMe temp disk (kubeletDiskType "
            f"Temporary) of GPU pools {', '.join(on)}")


def aks_kubelet_disk(vm_size: str, storage: StorageArgs) -> str | None:
    """``Temporary`` for a GPU size whose temp disk is local NVMe, else None (the OS disk)."""
    return "Temporary" if storage.local_nvme and vm_size in LOCAL_NVME_SIZES else None


def aks_storage_profile(storage: StorageArgs) -> cs.ManagedClusterStorageProfileArgs:
    return cs.ManagedClusterStorageProfileArgs(
        disk_csi_driver=cs.ManagedClusterStorageProfileDiskCSIDriverArgs(enabled=True),
        blob_csi_driver=cs.ManagedClusterStorageProfileBlobCSIDriverArgs(
            enabled=storage.bucket))


def storage_account_name(cluster_name: str, scope: str) -> str:
    """3-24 lowercase letters and digits, unique across Azure (learn.microsoft.com/azure/
    storage/common/storage-account-overview#storage-account-name): the cluster's letters
    and a hash of where it lives."""
    import hashlib

    letters = re.sub(r"[^a-z0-9]", "", cluster_name.lower())[:14] or "aicp"
    return letters + hashlib.sha256(scope.encode()).hexdigest()[:10]


def blob_recipe(account: str, container: str, client_id: str, group: str) -> dict[str, Any]:
    """The static PV the Blob CSI driver mounts with the pod's identity (docs above)."""
    return {"persistentVolume": {
        "capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
        "storageClassName": "", "persistentVolumeReclaimPolicy": "Retain",
        "mountOptions": ["-o allow_other", "--file-cache-timeout-in-seconds=120"],
        "csi": {"driver": BLOB_DRIVER, "volumeHandle": f"{account}_{container}",
                "volumeAttributes": {"storageaccount": account, "containerName": container,
                                     "clientID": client_id, "resourcegroup": group,
                                     "mountWithWorkloadIdentityToken": "true"}}},
        "podLabels": {"azure.workload.identity/use": "true"}}


def azure_storage(c: AksCluster, args: StorageArgs) -> StorageOutputs:
    """Block and object storage of an AKS cluster (the rules above)."""
    n, a = c._name, c._args
    out = StorageOutputs(namespace=args.workload_namespace,
                         service_account=args.service_account,
                         default_class=AKS_DEFAULT_CLASS if args.block else None,
                         local_nvme=aks_local_nvme_note(c.pools, args))
    if args.parallel_fs:
        out.parallel_fs = _managed_lustre(c, args)
    if not args.bucket:
        return out
    group = pulumi.Output.from_input(c.resource_group_name)
    account = azure_native.storage.StorageAccount(
        f"{n}-models", resource_group_name=c.resource_group_name,
        account_name=group.apply(lambda g: storage_account_name(
            a.cluster_name, f"{g}/{a.location}")),
        location=a.location, kind="StorageV2",
        sku=azure_native.storage.SkuArgs(name="Standard_LRS"),
        allow_blob_public_access=False, allow_shared_key_access=False,
        enable_https_traffic_only=True, minimum_tls_version="TLS1_2",
        encryption=azure_native.storage.EncryptionArgs(
            key_source="Microsoft.Storage", services=azure_native.storage.EncryptionServicesArgs(
                blob=azure_native.storage.EncryptionServiceArgs(enabled=True, key_type="Account"))),
        tags=c._tags(), opts=c._opts())
    container = azure_native.storage.BlobContainer(
        f"{n}-models-container", resource_group_name=c.resource_group_name,
        account_name=account.name,
        container_name=args.bucket_name or "models",
        public_access=azure_native.storage.PublicAccess.NONE,
        opts=c._opts(parent=account))
    identity = azure_native.managedidentity.UserAssignedIdentity(
        f"{n}-models", resource_group_name=c.resource_group_name,
        resource_name_=f"{a.cluster_name}-models", location=a.location, tags=c._tags(),
        opts=c._opts())
    issuer = c.cluster.oidc_issuer_profile.apply(lambda p: (p.issuer_url if p else "") or "")
    credential = azure_native.managedidentity.FederatedIdentityCredential(
        f"{n}-models", resource_group_name=c.resource_group_name, resource_name_=identity.name,
        federated_identity_credential_resource_name=f"{args.workload_namespace}-"
                                                    f"{args.service_account}",
        issuer=issuer, audiences=[TOKEN_AUDIENCE],
        subject=f"system:serviceaccount:{args.workload_namespace}:{args.service_account}",
        opts=c._opts(parent=identity))
    azure_native.authorization.RoleAssignment(
        f"{n}-models-blob-data", principal_id=identity.principal_id,
        principal_type="ServicePrincipal", role_definition_id=pulumi.Output.concat(
            "/subscriptions/", c._subscription,
            "/providers/Microsoft.Authorization/roleDefinitions/", BLOB_DATA_CONTRIBUTOR),
        scope=container.id, opts=c._opts(parent=identity))
    out.bucket, out.bucket_driver, out.identity = container.name, BLOB_DRIVER, identity.client_id
    out.team_namespaces = aks_team_credentials(c, args, identity, issuer, credential)
    out.service_account_annotations = {"azure.workload.identity/client-id": identity.client_id}
    out.recipe = pulumi.Output.all(account.name, container.name, identity.client_id,
                                   group).apply(lambda v: blob_recipe(*v))
    out.resources += [account, container, identity]
    return out


def _managed_lustre(c: AksCluster, args: StorageArgs) -> dict[str, Any]:
    """An AMLFS in its own subnet of the cluster's VNet and the StorageClass that mounts it
    (the rules above); the CSI driver itself is aicp.addons.azurelustre_csi."""
    n, a = c._name, c._args
    tib = amlfs_tib(args.parallel_fs_capacity_gib)
    subnet = azure_native.network.Subnet(
        f"{n}-lustre", resource_group_name=c.resource_group_name,
        virtual_network_name=c.vnet.name, subnet_name="lustre",
        address_prefix=lustre_subnet_cidr(a.vnet_cidr, tib), opts=c._opts(parent=c.vnet))
    fs = azure_native.storagecache.AmlFilesystem(
        f"{n}-lustre", resource_group_name=c.resource_group_name,
        aml_filesystem_name=f"{a.cluster_name}-lustre", location=a.location,
        sku=azure_native.storagecache.SkuNameArgs(name=AMLFS_SKU),
        storage_capacity_ti_b=tib, filesystem_subnet=subnet.id,
        # One zone ("This field should only contain a single element"): the cluster's first.
        zones=list(a.zones[:1]) or None,
        maintenance_window=azure_native.storagecache.AmlFilesystemMaintenanceWindowArgs(
            day_of_week=AMLFS_MAINTENANCE[0], time_of_day_utc=AMLFS_MAINTENANCE[1]),
        tags=c._tags(), opts=c._opts())
    mgs = fs.client_info.apply(lambda i: (i.mgs_address if i else "") or "")
    klass = k8s.storage.v1.StorageClass(
        f"{n}-lustre", metadata={"name": AMLFS_CLASS}, provisioner=AZURE_LUSTRE_DRIVER,
        parameters={"fs-name": AMLFS_FS_NAME, "mgs-ip-address": mgs},
        reclaim_policy="Retain", volume_binding_mode="Immediate",
        mount_options=["noatime", "flock"],
        opts=pulumi.ResourceOptions(parent=c, provider=c.provider))
    return {"driver": AZURE_LUSTRE_DRIVER, "fileSystem": fs.name,
            "storageClass": klass.metadata.name, "sku": AMLFS_SKU,
            "capacityGib": args.parallel_fs_capacity_gib, "capacityTib": tib,
            "subnet": subnet.address_prefix, "mgsAddress": mgs}


# The teams' namespaces (#24): one federated identity credential per team namespace on the
# same identity, each with exactly that namespace's subject (the rule above). Entra ID allows
# "a maximum of 20 federated identity credentials" per user-assigned managed identity, and
# creating several under one identity concurrently fails with 409 Conflict: "creates federated
# identity credentials under the same parent identity sequentially" (learn.microsoft.com/
# entra/workload-id/workload-identity-federation-considerations). So at most 19 teams beside
# the workload namespace, each credential waiting for the one before.
FEDERATED_CREDENTIALS_MAX = 20


def check_federated_credentials(storage: StorageArgs) -> None:
    """``InputPropertyError`` when the teams need more credentials than one identity holds."""
    subjects = team_subjects(storage)
    if storage.bucket and len(subjects) > FEDERATED_CREDENTIALS_MAX:
        raise InputPropertyError(
            "storage.team_namespaces", f"{len(storage.team_namespaces)} teams need "
            f"{len(subjects)} federated identity credentials on the model bucket's identity; "
            f"Entra ID allows {FEDERATED_CREDENTIALS_MAX} per identity: declare at most "
            f"{FEDERATED_CREDENTIALS_MAX - 1} teams")


def aks_team_credentials(c: AksCluster, args: StorageArgs,
                         identity: azure_native.managedidentity.UserAssignedIdentity,
                         issuer: pulumi.Input[str], after: pulumi.Resource) -> tuple[str, ...]:
    """One credential per team namespace on the bucket's identity, one after another."""
    for ns, sa in team_subjects(args)[1:]:
        after = azure_native.managedidentity.FederatedIdentityCredential(
            f"{c._name}-models-team-{ns}", resource_group_name=c.resource_group_name,
            resource_name_=identity.name,
            federated_identity_credential_resource_name=f"{ns}-{sa}",
            issuer=issuer, audiences=[TOKEN_AUDIENCE],
            subject=f"system:serviceaccount:{ns}:{sa}",
            opts=c._opts(parent=identity, depends_on=[after]))
    return args.team_namespaces


def infiniband_outputs(pool: GpuPool) -> dict[str, Any]:
    """An ND-series pool's fabric: InfiniBand between the VMs of its scale set.

    AKS places an agent pool in one Virtual Machine Scale Set, and the InfiniBand network of
    ND-series VMs connects the VMs of one scale set (Azure docs, "Enable InfiniBand":
    "InfiniBand ... between VMs in the same availability set or VM scale set"); the pool is
    regional (see "GPU pools are regional" above), so nothing more is placed here. The
    NVIDIA Network Operator (aicp.addons.network_operator) publishes the HCAs as
    ``rdma/shared_ib`` (Azure/aks-rdma-infiniband). Where the subscription offers it, the
    ``AKSInfinibandSupport`` feature makes AKS keep the pool on one physical IB network.
    """
    f = fabric("azure", pool.machine_type)
    if f is None:
        return {}
    return {"fabric": f.bandwidth_class, CONFORMANCE_OUTPUT: ["high_performance_networking"]}


# AKS InfiniBand: "To ensure that the machines in the nodepool land on the same physical
# Infiniband network, you need to register the AKS Infiniband Support feature"
# (Azure/aks-rdma-infiniband@700dabb website/docs/getting-started/02-prerequisites.md, `az
# feature register --name AKSInfinibandSupport --namespace Microsoft.ContainerService`; its
# tests/setup-infra/deploy-aks.sh waits for "Registered" before adding an ND pool). The
# registration belongs to the subscription, not the cluster: it changes every AKS cluster
# there, a preview feature may wait for approval, and deleting the registration unregisters
# it for all of them (Microsoft.Features subscriptionFeatureRegistrations, API 2021-07-01,
# which pulumi-azure-native 3.29 features.SubscriptionFeatureRegistration wraps). So aicp
# declares it only when the stack opts in (register_infiniband_feature), keeps it on
# `pulumi destroy`, and otherwise the stack's preflight says where it stands.
INFINIBAND_FEATURE = ("Microsoft.ContainerService", "AKSInfinibandSupport")


def infiniband_pools(pools: tuple[GpuPoolRequest, ...]) -> list[str]:
    """The pools of an InfiniBand (ND-series) size (components/fabric.py)."""
    return [p.name for p in pools
            if (f := fabric("azure", resolve_pool("azure", p).machine_type)) is not None
            and f.kind == "infiniband"]


def validate_infiniband_feature(args: AksClusterArgs) -> None:
    if args.register_infiniband_feature and not infiniband_pools(args.gpu_pools):
        raise InputPropertyError(
            "register_infiniband_feature", "no GPU pool is an InfiniBand (ND-series) size, so "
            "there is nothing to register AKSInfinibandSupport for; remove it")


def infiniband_feature(c: AksCluster, args: AksClusterArgs) -> list[pulumi.Resource]:
    """The subscription's AKSInfinibandSupport registration, where the stack opted in; the
    GPU pools wait for it."""
    if not args.register_infiniband_feature:
        return []
    namespace, feature = INFINIBAND_FEATURE
    return [azure_native.features.SubscriptionFeatureRegistration(
        f"{c._name}-infiniband-feature", provider_namespace=namespace, feature_name=feature,
        properties=azure_native.features.SubscriptionFeatureRegistrationPropertiesArgs(),
        opts=c._opts(retain_on_delete=True))]
