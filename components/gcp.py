"""The GCP target: a regional GKE Standard cluster with a system node pool and one node pool
per GPU pool.

What it builds (raw ``pulumi_gcp`` classes, so every child is visible to ``aicp plan``):

- a ``gcp.Provider`` for the project and region, so the component carries both;
- a custom-mode VPC with one subnetwork (secondary ranges for pods and services, Private
  Google Access on) and a Cloud Router + Cloud NAT for the private nodes' egress, unless an
  existing subnetwork is given;
- a node service account with only the roles nodes need (logging, monitoring, Artifact
  Registry pulls) instead of the Compute Engine default account (Editor);
- the cluster: release channel with the requested minor as floor, VPC-native, Dataplane V2,
  private nodes, shielded nodes, Workload Identity, Gateway API (standard channel), the
  requested control-plane access, optional Cloud KMS encryption of Secrets;
- a system node pool and one GPU node pool per request: machine type and accelerator from
  the catalog, tainted and labelled, GKE node-pool autoscaling ``min..max`` (0 allowed),
  Spot or a specific reservation where asked; each GPU pool is a ``GkeGpuPool`` component;
- Google's NVIDIA driver installer DaemonSet for COS (see "GPU driver" below);
- a kubeconfig that authenticates with ``gke-gcloud-auth-plugin``, kept secret, and a
  Kubernetes provider on it.

Upstream followed: GKE docs (private clusters, VPC-native clusters, Dataplane V2, Workload
Identity Federation for GKE, hardening: least-privilege node service account, shielded
nodes; GPUs: manual driver installation on COS, GPU node taints; set-up-dra), the NVIDIA GPU
Operator GKE guide and AICR ``values-gke-cos.yaml`` / ``docs/integrator/gke-gpu-setup.md``
("bundle-installer" mode), GoogleCloudPlatform/container-engine-accelerators
``nvidia-driver-installer/cos/daemonset-preloaded.yaml``, pulumi-gcp 10.2 ``container``,
``compute``.

Decisions, each with its reason:

- **GPU driver: one policy for every GPU pool, whatever its allocator.** GKE cannot install
  the driver on DRA pools (set-up-dra: "automatic GPU driver installation isn't supported
  with DRA"), and GKE's own device plugin would be a second
  ``nvidia.com/gpu`` advertiser next to the DRA driver. So every GPU pool is created with
  ``gpu_driver_version=INSTALLATION_DISABLED`` and the node label
  ``gke-no-default-nvidia-gpu-device-plugin=true`` (GKE's device plugin off), and this
  component runs Google's COS driver installer (image preloaded on COS nodes, driver
  version chosen by GKE for the node's COS release) on exactly those nodes. The driver
  lands on the host under ``/home/kubernetes/bin/nvidia``: ``GpuDriver(owner="host")``.
  The GPU Operator then runs with ``driver.enabled=false`` and installs the container
  toolkit into the same directory (AICR's GKE COS values), its device plugin serves the
  device-plugin pools and the DRA driver (``nvidiaDriverRoot`` = that directory) the DRA
  pools, one advertiser per node as on every other target. Mixing per pool is not
  possible safely: GKE-managed installs are finalised by the same GKE DaemonSet the
  device-plugin opt-out label removes (AICR gke-gpu-setup: a labelled pool with a managed
  install comes up without a driver), and the operator cannot install drivers on COS.
  The installer's MIG ``partition-gpus`` init container is left out: MIG is not offered
  by this platform and GKE does not support it with DRA.
- **DRA pools carry ``cloud.google.com/gke-nvidia-gpu-dra-driver=true``**: GKE's
  autoscaler then models the ResourceSlices a new node would publish, so a DRA pool can
  scale up from zero (GKE set-up-dra "node pool" section, as cited by modelplane#332).
- **The GPU taint is declared** (``nvidia.com/gpu=present:NoSchedule``) although GKE adds
  the same one to GPU pools of clusters with non-GPU pools: declaring it makes the
  contract's taint true whatever the pool order, and the key, value and effect are GKE's
  own, so the node carries it once (GKE merging the identical taint is expected, not yet
  seen on a live cluster).
- **Autoscaling bounds are pool totals** (``total_min_node_count``/``total_max_node_count``),
  matching ``minNodes``/``maxNodes`` on the other targets; the per-zone fields would
  multiply them by the number of zones. GPU pools use ``location_policy=ANY`` (take GPUs in
  whichever zone has them), the system pool ``BALANCED``.
- **GKE's autoscaler scales the pools** (``autoscaler="gke"``): the addon layer installs no
  cluster-autoscaler, and this component serves the ``cluster_autoscaling`` requirement.
  Node auto-provisioning stays off (DRA does not work with it).
- **Dynamic Workload Scheduler** (GKE "About GPU obtainability with flex-start",
  https://cloud.google.com/kubernetes-engine/docs/concepts/dws): ``capacity_type=
  "flex-start"`` sets the node pool's ``flex_start`` (flex-start VMs: GKE obtains the GPUs
  when they are available, for at most seven days); ``"queued-provisioning"`` sets
  ``flex_start`` and ``queued_provisioning.enabled``, as ``gcloud container node-pools
  create --flex-start --enable-queued-provisioning --enable-autoscaling --num-nodes=0
  --location-policy=ANY --reservation-affinity=none --no-enable-autorepair`` does (GKE
  "Run a large-scale workload with flex-start with queued provisioning",
  https://cloud.google.com/kubernetes-engine/docs/how-to/provisioningrequest): such a pool
  gets nodes only through a ProvisioningRequest, which Kueue's ProvisioningRequest
  admission check creates (``addons/kueue.py``); it starts at 0 nodes, takes no
  reservation, and has no auto-repair.
- **Every node pool runs COS** (``COS_CONTAINERD``): the driver installer above is COS's.
- **Secure Boot on every pool**: COS's NVIDIA drivers are signed by Google.
- **GPU pools upgrade with ``max_surge=0, max_unavailable=1``**: a surge node is a GPU VM of
  quota that is rarely there.
- **``initial_node_count`` is ignored after creation**: changing it would replace the
  node pool; GKE's autoscaler owns the node count.
- **The cluster's ``node_config`` is ignored after creation**: it only shapes the default
  pool, which is removed, and a change there would replace the cluster.
- **Deletion protection is on by default**: a change that forces replacement (network,
  master CIDR) must not silently delete a cluster with workloads; set
  ``deletion_protection=False`` and ``pulumi up`` before ``pulumi destroy``.
- **The channel moves the minor.** ``min_master_version`` is a floor: the release channel
  upgrades the control plane and the pools past it when the channel's default moves on.
  ``kubernetes_version`` in the contract is the floor the platform was planned for.
- **Existing subnetworks are used as they are**: they need secondary ranges named
  ``pods_range_name``/``services_range_name`` and their own Cloud NAT for image pulls.
- **GPU pools are placed in ``zones``** (all the cluster's zones when none are given): list
  zones that offer the GPU machine types, and for a reservation the reservation's zone.
- **Private endpoint when public access is off**: ``pulumi up`` must then run from inside
  the VPC (or through a bastion) to reach the API server.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pulumi.errors import InputPropertyError

from .accelerators import offering
from .contract import (
    CONFORMANCE_OUTPUT,
    CRITICAL_PODS_NEED_QUOTA,
    SANDBOX,
    SYSTEM_MIN_NODES,
    ClusterOutputs,
    GpuDriver,
    GpuPool,
    GpuPoolRequest,
    PropertyError,
    SandboxRuntime,
    capacity_types,
    ipv4_network,
    node_range,
    of_form,
    region_code,
    resolve_pool,
    validate_pools,
)
from .fabric import Fabric, fabric, gke_network_names
from .storage import StorageArgs, StorageOutputs, bucket_name, team_subjects

SYSTEM_POOL_LABEL = "aicp.dev/pool"
# What GKE sells a GPU pool: on-demand, Spot VMs (node_config.spot), DWS flex-start and
# flex-start with queued provisioning (see the module docstring).
CAPACITY_TYPES = ("on-demand", "spot", "flex-start", "queued-provisioning")
DWS = ("flex-start", "queued-provisioning")
SYSTEM_MACHINE_TYPE = "e2-standard-8"
IMAGE_TYPE = "COS_CONTAINERD"
# Where COS GPU drivers live on the host (GKE's and Google's installer alike).
DRIVER_ROOT = "/home/kubernetes/bin/nvidia"
# GKE node labels: switch GKE's device plugin off; let GKE's autoscaler model DRA slices.
NO_GKE_DEVICE_PLUGIN = "gke-no-default-nvidia-gpu-device-plugin"
GKE_DRA_LABEL = "cloud.google.com/gke-nvidia-gpu-dra-driver"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
# GKE sets it on nodes whose driver GKE installs; the installer must stay off those.
GKE_DRIVER_VERSION_LABEL = "cloud.google.com/gke-gpu-driver-version"
# ClusterOutputs.features key read by aicp.addons.gateway_api (GKE installs the CRDs).
GATEWAY_CRDS_MANAGED = "gatewayApiCrdsManaged"
# --- workload_sandboxing and virtualized_accelerator (issue #25) -------------------------
SANDBOX_MACHINE_TYPE = "e2-standard-4"
SANDBOX_MAX_NODES = 3
# What GKE creates once a pool has GKE Sandbox: RuntimeClass "gvisor" (handler "gvisor"),
# and on the pool's nodes the label and NoSchedule taint sandbox.gke.io/runtime=gvisor
# (https://cloud.google.com/kubernetes-engine/docs/how-to/sandbox-pods, "Working with GKE
# Sandbox"; GKE's v1.37 AI-conformance submission cites the same pages,
# cncf/k8s-ai-conformance v1.37/gke/PRODUCT.yaml workload_sandboxing).
GKE_SANDBOX = SandboxRuntime(
    runtime="gvisor", runtime_class="gvisor", handler="gvisor", created_by="cloud",
    node_selector={"sandbox.gke.io/runtime": "gvisor"},
    tolerations=({"key": "sandbox.gke.io/runtime", "operator": "Equal", "value": "gvisor",
                  "effect": "NoSchedule"},),
    pool="sandbox",
    # "GPU workloads are available in Preview in GKE Sandbox on version
    # 1.29.2-gke.11080000 and later" (same page, its GPU model support list); aicp's
    # sandbox pool is CPU only.
    note="CPU pool; GKE documents GPUs inside GKE Sandbox in Preview (1.29.2-gke.1108000 "
         "and later, the GPU models its sandbox-pods page lists)")
# GPUs on Compute Engine VMs are passed through whole: "Compute Engine attaches GPUs to
# your instances in passthrough mode" (https://cloud.google.com/compute/docs/gpus); NVIDIA
# vGPU needs its manager in the hypervisor, which no GKE node runs.
NOT_APPLICABLE = {
    "virtualized_accelerator": (
        "GKE's GPU VMs get whole GPUs in passthrough mode; vGPU needs a vGPU manager in the "
        "hypervisor, which Compute Engine does not offer (fractional GPUs are served by "
        "gpu_sharing instead)"),
}

NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Project APIs the stack calls: GKE, Compute Engine (VPC, NAT, firewall, VMs), IAM (the node
# service account). A project that lacks one fails `pulumi up` minutes in with a 403
# "... API has not been used in project"; enabling them is idempotent.
PROJECT_APIS = ("container.googleapis.com", "compute.googleapis.com", "iam.googleapis.com")
# A private cluster's control plane reaches nodes on 443 and 10250 only (GKE docs, private
# clusters, "Adding firewall rules for specific use cases"). Admission webhooks and aggregated
# APIs the addon layer installs listen elsewhere: Kueue, JobSet and KubeRay webhooks 9443
# (kueue v0.19.2 chart values webhook port; aicp.addons.kuberay WEBHOOK_PORT), Kueue's
# visibility API 8082 (kueue charts/kueue/templates/visibility/service.yaml targetPort),
# prometheus-adapter 6443 (its chart's listenPort), Istio's sidecar injector/validation
# 15017 (Istio docs, platform setup for GKE private clusters).
WEBHOOK_PORTS = ("6443", "8082", "9443", "15017")
# A3 Ultra VMs boot only from Hyperdisk (Compute Engine docs, GPU machine types, "A3 Ultra":
# supported disk types are Hyperdisk Balanced/Extreme/ML/Throughput); pd-* is rejected.
HYPERDISK_ONLY = ("a3-ultragpu-",)
# Preloaded by GKE on COS GPU nodes, matching the node's COS release (pulled with Never).
COS_INSTALLER_IMAGE = "cos-nvidia-installer:fixed"
_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE",
            "NoExecute": "NO_EXECUTE"}
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def gke_cos_operator_values() -> dict[str, Any]:
    """GPU Operator values for a host driver on GKE COS (AICR ``values-gke-cos.yaml``)."""
    return {
        "driver": {"enabled": False},
        "hostPaths": {"driverInstallDir": DRIVER_ROOT},
        # COS's root filesystem is read-only: the toolkit goes next to the driver, and
        # containerd's config is read from the file GKE writes, not from its CLI.
        "toolkit": {"installDir": DRIVER_ROOT,
                    "env": [{"name": "RUNTIME_CONFIG_SOURCE", "value": "file"}]},
        "cdi": {"enabled": True},
        "gdrcopy": {"enabled": False},  # needs an operator-built driver
    }


@dataclass(frozen=True)
class GkeClusterArgs:
    """Inputs of :class:`GkeCluster`."""

    cluster_name: str
    kubernetes_version: str
    project: str
    region: str
    gpu_pools: tuple[GpuPoolRequest, ...]
    # Node locations of every pool; empty: GKE's default zones of the region.
    zones: tuple[str, ...] = ()
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    master_ipv4_cidr_block: str = "172.16.0.0/28"
    # Existing subnetwork (self-link or name); when given no network is created.
    subnetwork: str | None = None
    pods_range_name: str = "pods"
    services_range_name: str = "services"
    # Split into nodes (first /20 of a /16), services (next /20) and pods (second half).
    vpc_cidr: str = "10.0.0.0/16"
    endpoint_public_access: bool = True
    public_access_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    system_machine_type: str | None = SYSTEM_MACHINE_TYPE
    system_min_nodes: int = 2
    system_max_nodes: int = 4
    system_disk_gib: int = 100
    # GPU images (CUDA, PyTorch, vLLM) are 10-20 GB each, and several are cached per node.
    gpu_disk_gib: int = 500
    # Cloud KMS key (projects/.../cryptoKeys/...) for Secrets; the GKE service agent needs
    # roles/cloudkms.cryptoKeyEncrypterDecrypter on it.
    database_encryption_key: str | None = None
    deletion_protection: bool = True
    # The installer's main container only keeps the pod running after the init container.
    driver_installer_pause_image: str = "registry.k8s.io/pause:3.10"
    labels: Mapping[str, str] = field(default_factory=dict)
    # A GKE Sandbox (gVisor) node pool beside the system pool (workload_sandboxing).
    sandbox: bool = True
    storage: StorageArgs = StorageArgs()  # block, bucket, parallel FS, local SSD (#20)

    def __post_init__(self) -> None:
        validate(self)


# Region codes like us-central1 (https://cloud.google.com/compute/docs/regions-zones).
REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")


def check_region(region: str) -> None:
    """The region is given, as its code; ``InputPropertyError`` at ``region``."""
    region_code("region", region, REGION, "us-central1", "a GCP", "gcp")


# A project id is 6 to 30 lowercase letters, digits or hyphens, starts with a letter and
# does not end with a hyphen
# (https://cloud.google.com/resource-manager/docs/creating-managing-projects); older
# domain-scoped ids carry their domain and a colon first (example.com:my-project).
PROJECT_ID = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# A machine type is series-family-size (e2-standard-4, a3-highgpu-8g, n2-custom-8-16384)
# (https://cloud.google.com/compute/docs/machine-resource).
MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")


def validate_extras(args: GkeClusterArgs) -> None:
    """The forms GCP gives project ids and machine types."""
    of_form("project", args.project, PROJECT_ID, "a GCP project id (6 to 30 lowercase "
            "letters, digits or '-', starting with a letter, like my-ml-project)")
    of_form("system_machine_type", args.system_machine_type or None, MACHINE_TYPE,
            "a GCE machine type (like e2-standard-4)")


def validate(args: GkeClusterArgs) -> None:
    """Raise ``InputPropertyError`` for the first argument GKE would refuse; declares
    nothing."""
    if not args.project:
        raise InputPropertyError("project", "a GCP project id is required")
    validate_extras(args)
    check_region(args.region)
    check_gke_storage(args)
    node_range("system_min_nodes", args.system_min_nodes, args.system_max_nodes,
               "system_max_nodes", SYSTEM_MIN_NODES)
    if not args.subnetwork:
        net = ipv4_network("vpc_cidr", args.vpc_cidr, "10.0.0.0/16")
        # split_cidr carves the node, service and pod ranges from it.
        if net.prefixlen > 20:
            raise InputPropertyError(
                "vpc_cidr", f"{args.vpc_cidr!r} is too small on gcp: give /20 or larger "
                "(nodes, services and pods are carved from it)")
    # Label keys and values: lowercase letters, digits, '_' and '-', at most 63 characters,
    # keys start with a letter (https://cloud.google.com/compute/docs/labeling-resources).
    for key, value in args.labels.items():
        if not _LABEL.match(key) or not _LABEL_VALUE.match(value):
            raise InputPropertyError(
                f"labels[{json.dumps(key)}]", "GCP labels are lowercase letters, digits, '-' "
                "and '_' (keys start with a letter, at most 63 characters)")
    validate_pools("gcp", args.gpu_pools)
    capacity_types("gcp", args.gpu_pools, CAPACITY_TYPES)
    for i, p in enumerate(args.gpu_pools):
        if p.capacity_type in DWS and p.capacity_reservation_id:
            raise PropertyError(
                f"gpu_pools[{i}].capacity_reservation_id",
                "flex-start pools take no reservation (--reservation-affinity=none); drop it "
                "or set {0}: on-demand", (f"gpu_pools[{i}].capacity_type",))
        if p.capacity_type == "queued-provisioning" and p.min_nodes:
            raise InputPropertyError(
                f"gpu_pools[{i}].min_nodes",
                f"{p.min_nodes}: a queued-provisioning pool starts at 0 nodes (--num-nodes=0) "
                "and gets nodes only through a ProvisioningRequest; set it to 0")
    validate_fabric_zones(args)


class GkeCluster(pulumi.ComponentResource):
    """A GKE cluster ready for the aicp addons; ``outputs`` is the contract."""

    outputs: ClusterOutputs

    def __init__(self, name: str, args: GkeClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicp:gcp:Cluster", name, None, opts)
        self._name = name
        self._args = args
        # An explicit provider reads none of the stack's gcp:* settings: the ones that choose
        # the identity are passed through, or resources are made as the caller.
        stack = pulumi.Config("gcp")
        self.impersonate = stack.get("impersonateServiceAccount")
        self.provider_gcp = gcp.Provider(
            f"{name}-gcp", project=args.project, region=args.region,
            default_labels={**args.labels, "aicp-cluster": args.cluster_name},
            impersonate_service_account=self.impersonate,
            credentials=stack.get_secret("credentials"),
            access_token=stack.get_secret("accessToken"),
            opts=pulumi.ResourceOptions(parent=self))

        self.project_apis = [gcp.projects.Service(
            f"{name}-api-{api.split('.')[0]}", project=args.project, service=api,
            # Other workloads in the project may use the API: never switch it off.
            disable_on_destroy=False, disable_dependent_services=False,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider_gcp))
            for api in PROJECT_APIS]

        self.network: gcp.compute.Network | None = None
        self.subnetwork = self._network_and_nat() if not args.subnetwork else None
        self.node_service_account = self._node_service_account()
        self.cluster = self._cluster()
        self.webhook_firewall = self._webhook_firewall()

        self.pools: tuple[GpuPool, ...] = tuple(resolve_pool("gcp", p) for p in args.gpu_pools)
        self.pools = tuple(with_gke_networks(args.cluster_name, p, args.zones)
                           for p in self.pools)
        self.system_pool = self._system_pool()
        self.gpu_node_pools: dict[str, GkeGpuPool] = {
            pool.name: self._gpu_pool(pool, request)
            for pool, request in zip(self.pools, args.gpu_pools, strict=True)}

        self.sandbox_pool = self._sandbox_pool() if args.sandbox else None
        self.kubeconfig = self._kubeconfig()
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_pool]))
        self.driver_installer = self._driver_installer() if self.pools else None
        self.storage = gcp_storage(self, args.storage)

        self.outputs = ClusterOutputs(
            target="gcp", name=self.cluster.name, kubernetes_version=args.kubernetes_version,
            kubeconfig=self.kubeconfig, provider=self.provider, gpu_pools=self.pools,
            gpu_driver=GpuDriver(owner="host", root=DRIVER_ROOT, toolkit_on_host=False,
                                 operator_values=gke_cos_operator_values()),
            autoscaler="gke", autoscaler_values={},
            # Webhooks must be reachable before an addon creates what they admit.
            ready=[self.system_pool, self.webhook_firewall],
            features={GATEWAY_CRDS_MANAGED: True, CRITICAL_PODS_NEED_QUOTA: True,
                      "notApplicable": dict(NOT_APPLICABLE),
                      **({SANDBOX: GKE_SANDBOX.export()} if args.sandbox else {})},
            storage=self.storage,
        )
        self.register_outputs({
            "clusterName": self.cluster.name,
            "endpoint": self.cluster.endpoint,
            "nodeServiceAccount": self.node_service_account.email,
            "workloadPool": f"{args.project}.svc.id.goog",
            "kubeconfig": self.kubeconfig,
            CONFORMANCE_OUTPUT: ["cluster_autoscaling"],
        })

    # --- helpers -----------------------------------------------------------------------

    def _opts(self, parent: pulumi.Resource | None = None, **kwargs: Any
              ) -> pulumi.ResourceOptions:
        # Every project resource waits for the project's APIs (see PROJECT_APIS).
        depends_on = [*self.project_apis, *(kwargs.pop("depends_on", None) or [])]
        return pulumi.ResourceOptions(parent=parent or self, provider=self.provider_gcp,
                                      depends_on=depends_on, **kwargs)

    def _webhook_firewall(self) -> gcp.compute.Firewall:
        """Control plane → nodes on the addon layer's webhook and aggregated-API ports."""
        a = self._args
        if self.network is not None:
            network: pulumi.Input[str] = self.network.self_link
        else:
            network = gcp.compute.get_subnetwork_output(
                self_link=a.subnetwork, opts=pulumi.InvokeOutputOptions(
                    parent=self, provider=self.provider_gcp)).network
        return gcp.compute.Firewall(
            f"{self._name}-master-webhooks", name=f"{a.cluster_name}-master-webhooks",
            network=network, direction="INGRESS", priority=1000,
            source_ranges=[a.master_ipv4_cidr_block],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=list(WEBHOOK_PORTS))],
            # Exactly this cluster's nodes: they all run as the node service account.
            target_service_accounts=[self.node_service_account.email],
            opts=self._opts())

    # --- network, identity, cluster ----------------------------------------------------

    def _network_and_nat(self) -> gcp.compute.Subnetwork:
        a, n = self._args, self._name
        nodes, services, pods = split_cidr(a.vpc_cidr)
        self.network = gcp.compute.Network(
            f"{n}-vpc", name=a.cluster_name, auto_create_subnetworks=False,
            routing_mode="REGIONAL", opts=self._opts())
        subnet = gcp.compute.Subnetwork(
            f"{n}-nodes", name=f"{a.cluster_name}-nodes", network=self.network.id,
            region=a.region, ip_cidr_range=nodes, private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=a.pods_range_name, ip_cidr_range=pods),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=a.services_range_name, ip_cidr_range=services)],
            opts=self._opts())
        router = gcp.compute.Router(
            f"{n}-router", name=f"{a.cluster_name}-router", network=self.network.id,
            region=a.region, opts=self._opts())
        # Private nodes have no external IPs: image pulls from nvcr.io, ghcr.io and
        # registry.k8s.io go through Cloud NAT.
        gcp.compute.RouterNat(
            f"{n}-nat", name=f"{a.cluster_name}-nat", router=router.name, region=a.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=self._opts(parent=router))
        return subnet

    def _node_service_account(self) -> gcp.serviceaccount.Account:
        a, n = self._args, self._name
        account = gcp.serviceaccount.Account(
            f"{n}-nodes", account_id=f"{a.cluster_name[:24]}-nodes",
            display_name=f"GKE {a.cluster_name} nodes", opts=self._opts())
        member = pulumi.Output.concat("serviceAccount:", account.email)
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                f"{n}-nodes-{_slug(role.split('/')[1])}", project=a.project, role=role,
                member=member, opts=self._opts(parent=account))
        return account

    def _node_config_common(self) -> dict[str, Any]:
        return {
            "image_type": IMAGE_TYPE,
            "service_account": self.node_service_account.email,
            "oauth_scopes": [CLOUD_PLATFORM_SCOPE],  # access is governed by the roles above
            "shielded_instance_config": gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_integrity_monitoring=True),
            # Pods see the GKE metadata server: Workload Identity, no node credentials.
            "workload_metadata_config": gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                mode="GKE_METADATA"),
            "resource_labels": dict(self._args.labels) or None,
        }

    def _cluster(self) -> gcp.container.Cluster:
        a, n = self._args, self._name
        if a.subnetwork:
            network, subnetwork = None, a.subnetwork
        else:
            assert self.network is not None and self.subnetwork is not None
            network, subnetwork = self.network.self_link, self.subnetwork.self_link
        authorized = gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
            cidr_blocks=[gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=f"aicp-{i}")
                for i, cidr in enumerate(a.public_access_cidrs)],
        ) if a.endpoint_public_access else gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
            # A private endpoint still needs authorized networks: the whole VPC we built
            # (bastions, CI runners); on an existing subnetwork only its node range.
            cidr_blocks=[] if a.subnetwork else [
                gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                    cidr_block=a.vpc_cidr, display_name="aicp-vpc")])
        encryption = gcp.container.ClusterDatabaseEncryptionArgs(
            state="ENCRYPTED", key_name=a.database_encryption_key,
        ) if a.database_encryption_key else None
        return gcp.container.Cluster(
            f"{n}-gke", name=a.cluster_name, location=a.region,
            node_locations=list(a.zones) or None,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=a.release_channel),
            min_master_version=a.kubernetes_version,
            remove_default_node_pool=True, initial_node_count=1,
            # The default pool lives minutes; it still must not run as the default account.
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=self.node_service_account.email,
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
                workload_metadata_config=gcp.container
                .ClusterNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA")),
            deletion_protection=a.deletion_protection,
            network=network, subnetwork=subnetwork, networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=a.pods_range_name,
                services_secondary_range_name=a.services_range_name),
            datapath_provider="ADVANCED_DATAPATH",
            enable_multi_networking=multi_networking(a) or None,
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=not a.endpoint_public_access,
                master_ipv4_cidr_block=a.master_ipv4_cidr_block),
            master_authorized_networks_config=authorized,
            enable_shielded_nodes=True,
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{a.project}.svc.id.goog"),
            # GKE installs and upgrades the Gateway API and Inference Extension CRDs itself
            # from 1.34.0-gke.1626000 (llm-d docs, "Install Gateway API and Inference
            # Extension CRDs", https://llm-d.ai/docs/dev/resources/gateway/install-crds).
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(
                channel="CHANNEL_STANDARD"),
            database_encryption=encryption,
            addons_config=gke_storage_addons(a.storage),
            resource_labels=dict(a.labels) or None,
            opts=self._opts(ignore_changes=["nodeConfig", "initialNodeCount"]))

    # --- node pools --------------------------------------------------------------------

    def _initial_per_zone(self, total_min: int, *, at_least_one: bool = False) -> int:
        # initial_node_count is per zone (pulumi-gcp 10.2 container.NodePool: "the number of
        # nodes per zone"); a regional cluster defaults to three zones. Rounded down, so a
        # GPU pool never starts above its minimum (min 1 over two zones would start two GPU
        # VMs of quota); GKE's autoscaler adds GPU nodes when claims or pods wait. The
        # system pool needs a node per zone at once: the addons wait for it.
        zones = len(self._args.zones) or 3
        return max(1, -(-total_min // zones)) if at_least_one else total_min // zones

    def _system_pool(self) -> gcp.container.NodePool:
        a = self._args
        return gcp.container.NodePool(
            f"{self._name}-system", name="system", cluster=self.cluster.name,
            location=a.region, node_locations=list(a.zones) or None,
            initial_node_count=self._initial_per_zone(a.system_min_nodes, at_least_one=True),
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=a.system_min_nodes,
                total_max_node_count=a.system_max_nodes, location_policy="BALANCED"),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                max_surge=1, max_unavailable=0),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=a.system_machine_type or SYSTEM_MACHINE_TYPE,
                disk_size_gb=a.system_disk_gib, disk_type="pd-balanced",
                labels={SYSTEM_POOL_LABEL: "system"},
                **self._node_config_common()),
            opts=self._opts(ignore_changes=["initialNodeCount"]))

    def _sandbox_pool(self) -> gcp.container.NodePool:
        """A GKE Sandbox node pool: gVisor on COS, for untrusted (agent) code.

        GKE keeps system workloads off it, which is why a cluster needs a second pool
        beside it ("The default node pool ... can't use GKE Sandbox if it's the only node
        pool in the cluster", https://cloud.google.com/kubernetes-engine/docs/how-to/
        sandbox-pods); here the system pool is that pool. It scales from zero: GKE's
        autoscaler adds a node when a pod of RuntimeClass ``gvisor`` waits (the
        RuntimeClass carries the pool's nodeSelector and toleration, GKE_SANDBOX).
        """
        a = self._args
        pool = gcp.container.NodePool(
            f"{self._name}-sandbox", name=GKE_SANDBOX.pool, cluster=self.cluster.name,
            location=a.region, node_locations=list(a.zones) or None, initial_node_count=0,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=0, total_max_node_count=SANDBOX_MAX_NODES,
                location_policy="ANY"),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=SANDBOX_MACHINE_TYPE, disk_size_gb=100, disk_type="pd-balanced",
                # type "gvisor" (pulumi-gcp 10.2 container.NodePool node_config
                # sandbox_config; gcloud --sandbox type=gvisor); COS_CONTAINERD is required.
                sandbox_config=gcp.container.NodePoolNodeConfigSandboxConfigArgs(
                    type="gvisor"),
                labels={SYSTEM_POOL_LABEL: GKE_SANDBOX.pool},
                **self._node_config_common()),
            opts=self._opts(ignore_changes=["initialNodeCount"]))
        return pool

    def _gpu_pool(self, pool: GpuPool, request: GpuPoolRequest) -> GkeGpuPool:
        a = self._args
        accel = offering("gcp", request.accelerator, request.instance_type)
        if not accel.gke_accelerator:  # the catalog's GKE offerings all name one
            raise ValueError(f"{request.accelerator} on {request.instance_type}: the catalog "
                             "names no GKE accelerator type")
        reservation = gcp.container.NodePoolNodeConfigReservationAffinityArgs(
            consume_reservation_type="SPECIFIC_RESERVATION",
            key="compute.googleapis.com/reservation-name",
            values=[request.capacity_reservation_id],
        ) if request.capacity_reservation_id else None
        return GkeGpuPool(f"{self._name}-gpu-{pool.name}", GkeGpuPoolArgs(
            pool=pool, cluster_name=self.cluster.name, location=a.region,
            node_locations=tuple(a.zones), initial_node_count=self._initial_per_zone(
                pool.min_nodes), accelerator_type=accel.gke_accelerator, disk_gib=a.gpu_disk_gib,
            node_config={**self._node_config_common(), **gke_local_ssd(
                pool.machine_type, pool.gpus_per_node, a.storage)}, reservation=reservation,
            provider=self.provider_gcp, depends_on=tuple(self.project_apis),
            project=a.project),
            opts=pulumi.ResourceOptions(parent=self))

    # --- driver, kubeconfig ------------------------------------------------------------

    def _driver_installer(self) -> k8s.apps.v1.DaemonSet:
        return k8s.apps.v1.DaemonSet(
            f"{self._name}-nvidia-driver-installer",
            metadata={"name": "nvidia-driver-installer", "namespace": "kube-system",
                      "labels": {"k8s-app": "nvidia-driver-installer"}},
            spec=driver_installer_spec(self._args.driver_installer_pause_image),
            # Rollout waits for the driver build on GPU nodes already up: minutes each.
            opts=pulumi.ResourceOptions(
                parent=self, provider=self.provider,
                custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")))

    def _kubeconfig(self) -> pulumi.Output[str]:
        a = self._args
        config = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate,
            self.cluster.name,
        ).apply(lambda v: kubeconfig(v[0], v[1], v[2], a.project, a.region,
                                     impersonate=self.impersonate))
        return pulumi.Output.secret(config)


# --- GPU node pools -----------------------------------------------------------------------

@dataclass(frozen=True)
class GkeGpuPoolArgs:
    """Inputs of :class:`GkeGpuPool`."""

    pool: GpuPool
    cluster_name: pulumi.Input[str]  # the container.Cluster's name output
    location: str  # the cluster's region
    node_locations: tuple[str, ...]  # () for the region's default zones
    initial_node_count: int  # per zone
    accelerator_type: str  # GKE's name for the pool's GPU (nvidia-h100-80gb, ...)
    disk_gib: int
    # What every node pool of the cluster shares: image, service account, shielded VM,
    # GKE metadata server, resource labels.
    node_config: Mapping[str, Any]
    provider: gcp.Provider
    reservation: gcp.container.NodePoolNodeConfigReservationAffinityArgs | None = None
    # What every project resource waits for: the project's APIs.
    depends_on: tuple[pulumi.Resource, ...] = ()
    project: str = ""  # where a fabric pool's extra VPCs are made


class GkeGpuPool(pulumi.ComponentResource):
    """One GPU pool of a GKE cluster: its autoscaled node pool with the pool's accelerators,
    taint and labels, GKE's driver install and device plugin off (one component per pool,
    as pulumi/pulumi-eks ``ManagedNodeGroup`` wraps its node group).

    Until this component existed the node pool was a child of the cluster component that is
    its parent: it carries ``Alias(parent=<that parent>)``, so a stack created then keeps
    it (update in place, no replacement; pulumi/pulumi ``pkg/resource/deploy/
    step_generator.go``, ``generateAliases``).
    """

    node_pool: gcp.container.NodePool

    def __init__(self, name: str, args: GkeGpuPoolArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicp:gcp:GpuPool", name, None, opts)
        pool = args.pool
        parent = opts.parent if opts is not None else None
        moved = [pulumi.Alias(parent=parent)] if parent is not None else None
        self.fabric = gke_fabric(name, pool, args, self)
        self.node_pool = gcp.container.NodePool(
            name, name=f"gpu-{pool.name}", cluster=args.cluster_name,
            location=args.location, node_locations=(
                self.fabric.zones if self.fabric and self.fabric.zones
                else list(args.node_locations) or None),
            network_config=self.fabric.network_config if self.fabric else None,
            placement_policy=self.fabric.placement if self.fabric else None,
            initial_node_count=args.initial_node_count,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes, total_max_node_count=pool.max_nodes,
                location_policy="ANY"),
            management=gcp.container.NodePoolManagementArgs(
                auto_repair=pool.capacity_type != "queued-provisioning", auto_upgrade=True),
            queued_provisioning=gcp.container.NodePoolQueuedProvisioningArgs(enabled=True)
            if pool.capacity_type == "queued-provisioning" else None,
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                max_surge=0, max_unavailable=1),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=pool.machine_type,
                disk_size_gb=args.disk_gib, disk_type=gpu_boot_disk_type(pool.machine_type),
                guest_accelerators=[gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=args.accelerator_type, count=pool.gpus_per_node,
                    gpu_driver_installation_config=gcp.container
                    .NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                        gpu_driver_version="INSTALLATION_DISABLED"))],
                labels=gpu_node_labels(pool),
                taints=[gcp.container.NodePoolNodeConfigTaintArgs(
                    key=t.key, value=t.value, effect=_EFFECTS[t.effect]) for t in pool.taints],
                spot=pool.capacity_type == "spot",
                flex_start=True if pool.capacity_type in DWS else None,
                reservation_affinity=gcp.container.NodePoolNodeConfigReservationAffinityArgs(
                    consume_reservation_type="NO_RESERVATION")
                if pool.capacity_type in DWS else args.reservation,
                gvnic=gcp.container.NodePoolNodeConfigGvnicArgs(enabled=True),
                **args.node_config),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(args.depends_on),
                ignore_changes=["initialNodeCount"], aliases=moved))
        self.register_outputs({"pool": pool.name, "nodePool": self.node_pool.name,
                               **(self.fabric.outputs() if self.fabric else {})})


# --- pure helpers (tested through the component) ----------------------------------------

def gpu_boot_disk_type(machine_type: str) -> str:
    """Hyperdisk where the machine family boots only from it, else pd-balanced."""
    if machine_type.startswith(HYPERDISK_ONLY):
        return "hyperdisk-balanced"
    return "pd-balanced"


def gpu_node_labels(pool: GpuPool) -> dict[str, str]:
    """The catalog's labels, GKE's device plugin off, DRA pools marked for GKE's autoscaler."""
    labels = {**pool.labels, NO_GKE_DEVICE_PLUGIN: "true"}
    if pool.allocator == "dra":
        labels[GKE_DRA_LABEL] = "true"
    return labels


def split_cidr(vpc_cidr: str) -> tuple[str, str, str]:
    """Nodes: first sixteenth; services: second sixteenth; pods: second half."""
    net = ipaddress.ip_network(vpc_cidr)
    sixteenths = list(net.subnets(prefixlen_diff=4))
    halves = list(net.subnets(prefixlen_diff=1))
    return str(sixteenths[0]), str(sixteenths[1]), str(halves[1])


def driver_installer_spec(pause_image: str) -> Any:  # a manifest dict: any Input accepts one
    """Google's COS driver installer (``daemonset-preloaded.yaml``), on our GPU pools only."""
    host = {"dev": "/dev", "vulkan-icd-mount": f"{DRIVER_ROOT}/vulkan/icd.d",
            "nvidia-install-dir-host": DRIVER_ROOT, "root-mount": "/",
            "cos-tools": "/var/lib/cos-tools"}
    env = {"NVIDIA_INSTALL_DIR_HOST": DRIVER_ROOT,
           "NVIDIA_INSTALL_DIR_CONTAINER": "/usr/local/nvidia",
           "VULKAN_ICD_DIR_HOST": f"{DRIVER_ROOT}/vulkan/icd.d",
           "VULKAN_ICD_DIR_CONTAINER": "/etc/vulkan/icd.d",
           "ROOT_MOUNT_DIR": "/root",
           "COS_TOOLS_DIR_HOST": "/var/lib/cos-tools",
           "COS_TOOLS_DIR_CONTAINER": "/build/cos-tools"}
    mounts = {"nvidia-install-dir-host": "/usr/local/nvidia",
              "vulkan-icd-mount": "/etc/vulkan/icd.d", "dev": "/dev",
              "root-mount": "/root", "cos-tools": "/build/cos-tools"}
    labels = {"k8s-app": "nvidia-driver-installer"}
    return {
        "selector": {"matchLabels": labels},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "priorityClassName": "system-node-critical",
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": GKE_ACCELERATOR_LABEL, "operator": "Exists"},
                        {"key": NO_GKE_DEVICE_PLUGIN, "operator": "In", "values": ["true"]},
                        {"key": GKE_DRIVER_VERSION_LABEL, "operator": "DoesNotExist"},
                    ]}]}}},
                "tolerations": [{"operator": "Exists"}],
                "hostNetwork": True,
                "hostPID": True,
                "volumes": [{"name": k, "hostPath": {"path": v}} for k, v in host.items()],
                "initContainers": [{
                    "name": "nvidia-driver-installer",
                    "image": COS_INSTALLER_IMAGE,
                    "imagePullPolicy": "Never",
                    "resources": {"requests": {"cpu": "150m"}},
                    "securityContext": {"privileged": True},
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "volumeMounts": [{"name": k, "mountPath": v} for k, v in mounts.items()],
                }],
                "containers": [{"name": "pause", "image": pause_image,
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
            },
        },
    }


def kubeconfig(endpoint: str, ca_data: str, cluster_name: str, project: str,
               region: str, *, impersonate: str | None = None) -> str:
    """A kubeconfig that authenticates with ``gke-gcloud-auth-plugin`` (gcloud component),
    impersonating the stack's service account where the provider does: gcloud reads every
    property from ``CLOUDSDK_<SECTION>_<PROPERTY>`` (``gcloud topic configurations``), here
    ``auth/impersonate_service_account``."""
    context = f"gke_{project}_{region}_{cluster_name}"
    env = [{"name": "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT", "value": impersonate}] \
        if impersonate else None
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {
            "server": f"https://{endpoint}", "certificate-authority-data": ca_data}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "users": [{"name": context, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": "Install gke-gcloud-auth-plugin: "
                           "gcloud components install gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
            "interactiveMode": "Never", **({"env": env} if env else {})}}}],
    }, indent=2)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- storage (issue #20) --------------------------------------------------------------------
# Block: GKE's Compute Engine Persistent Disk CSI driver, kept on explicitly
# (addons_config.gce_persistent_disk_csi_driver_config; on by default since 1.18,
# cloud.google.com/kubernetes-engine/docs/how-to/persistent-volumes/gce-pd-csi-driver), and
# the default class GKE installs with it, standard-rwo (pd-balanced, WaitForFirstConsumer;
# every disk encrypted at rest by Google, cloud.google.com/docs/security/encryption/default-
# encryption): aicp adds no second default. Machines that attach Hyperdisk only (A3 Ultra,
# HYPERDISK_ONLY) get a hyperdisk-balanced class beside it (cloud.google.com/kubernetes-engine/
# docs/how-to/persistent-volumes/hyperdisk: provisioner pd.csi.storage.gke.io, parameter
# type): GPU workloads there name it; the system pool's e2 machines cannot attach Hyperdisk,
# so it does not become the cluster default.
GKE_DEFAULT_CLASS, HYPERDISK_CLASS = "standard-rwo", "hyperdisk-balanced"
PD_DRIVER = "pd.csi.storage.gke.io"
# Object: Cloud Storage FUSE CSI driver (addons_config.gcs_fuse_csi_driver_config), an
# inline ephemeral volume with the pod annotation gke-gcsfuse/volumes: "true" that injects
# its sidecar; it authenticates as the pod's Kubernetes ServiceAccount through Workload
# Identity Federation, granted on the bucket alone with the principal identifier
# principal://iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/
# PROJECT.svc.id.goog/subject/ns/NS/sa/SA and roles/storage.objectUser (read, write, delete,
# list) (cloud.google.com/kubernetes-engine/docs/how-to/cloud-storage-fuse-csi-driver-setup,
# "Configure access to Cloud Storage buckets"). The bucket: uniform bucket-level access and
# public access prevention enforced (cloud.google.com/storage/docs/public-access-prevention),
# encrypted at rest by default (cloud.google.com/storage/docs/encryption/default-keys).
GCS_DRIVER = "gcsfuse.csi.storage.gke.io"
GCS_ROLE = "roles/storage.objectUser"
# Parallel FS: GKE Managed Lustre CSI driver (addons_config.lustre_csi_driver_config) with a
# StorageClass that provisions instances (cloud.google.com/kubernetes-engine/docs/how-to/
# persistent-volumes/managed-lustre-csi-driver-new-volume: provisioner
# lustre.csi.storage.gke.io, perUnitStorageThroughput, network); Managed Lustre needs the
# VPC's private services access (cloud.google.com/managed-lustre/docs/vpc).
LUSTRE_DRIVER = "lustre.csi.storage.gke.io"
# Local SSD as ephemeral storage (node_config.ephemeral_storage_local_ssd_config): on Gen3
# machines (A3) a count of 0 uses every local SSD the machine type comes with; older ones
# need the count, one 375 GB disk per GPU on A2 Ultra (GKE API EphemeralStorageLocalSsdConfig
# local_ssd_count; cloud.google.com/compute/docs/gpus#a2-ultra). Other GPU machines have
# none bundled: their root disk stays where images go.
LOCAL_SSD_GEN3 = ("a3-",)
LOCAL_SSD_PER_GPU = ("a2-ultragpu-",)


def check_gke_storage(args: GkeClusterArgs) -> None:
    """What aicp's GKE storage cannot do: refused before anything is declared."""
    if args.storage.parallel_fs and args.subnetwork:
        raise InputPropertyError("storage.parallel_fs", "GKE Managed Lustre on an existing "
                                 "subnetwork is not set up by aicp (its VPC needs private "
                                 "services access): set it to false, or let aicp create the "
                                 "VPC")


def gke_storage_addons(storage: StorageArgs) -> gcp.container.ClusterAddonsConfigArgs:
    """The cluster's storage add-ons: PD CSI kept on, GCS FUSE and Managed Lustre as asked."""
    return gcp.container.ClusterAddonsConfigArgs(
        gce_persistent_disk_csi_driver_config=gcp.container
        .ClusterAddonsConfigGcePersistentDiskCsiDriverConfigArgs(enabled=True),
        gcs_fuse_csi_driver_config=gcp.container.ClusterAddonsConfigGcsFuseCsiDriverConfigArgs(
            enabled=storage.bucket),
        lustre_csi_driver_config=gcp.container.ClusterAddonsConfigLustreCsiDriverConfigArgs(
            enabled=storage.parallel_fs) if storage.parallel_fs else None)


def gke_local_ssd(machine_type: str, gpus: int, storage: StorageArgs) -> dict[str, Any]:
    """The GPU pool's node_config entry backing ephemeral storage with local SSD, or none."""
    if not storage.local_nvme:
        return {}
    if machine_type.startswith(LOCAL_SSD_GEN3):
        count = 0
    elif machine_type.startswith(LOCAL_SSD_PER_GPU):
        count = gpus
    else:
        return {}
    return {"ephemeral_storage_local_ssd_config": gcp.container
            .NodePoolNodeConfigEphemeralStorageLocalSsdConfigArgs(local_ssd_count=count)}


def gcs_recipe(bucket: str) -> dict[str, Any]:
    """An inline Cloud Storage FUSE volume and the annotation that injects its sidecar."""
    return {"volume": {"csi": {"driver": GCS_DRIVER, "volumeAttributes": {
        "bucketName": bucket, "mountOptions": "implicit-dirs"}}},
        "podAnnotations": {"gke-gcsfuse/volumes": "true"}}


def gke_principal(number: str, project: str, namespace: str, service_account: str) -> str:
    return (f"principal://iam.googleapis.com/projects/{number}/locations/global/"
            f"workloadIdentityPools/{project}.svc.id.goog/subject/ns/{namespace}/sa/"
            f"{service_account}")


# The teams' namespaces (#24): one more IAM member on the bucket per team namespace, each the
# principal of exactly that namespace's ServiceAccount (the identifier above, ns/NS/sa/SA;
# cloud.google.com/kubernetes-engine/docs/concepts/workload-identity, its principal table,
# names one Kubernetes ServiceAccount, where principalSet .../namespace/NS would name them
# all). Granted on the bucket alone, as the workload namespace's is.
def gke_team_members(c: GkeCluster, args: StorageArgs, bucket: pulumi.Input[str],
                     number: pulumi.Output[str | None]) -> tuple[str, ...]:
    """One ``roles/storage.objectUser`` member on the bucket per team namespace."""
    for ns, sa in team_subjects(args)[1:]:
        member = number.apply(lambda num, ns=ns, sa=sa: gke_principal(
            num or "", c._args.project, ns, sa))
        gcp.storage.BucketIAMMember(f"{c._name}-models-team-{ns}", bucket=bucket,
                                    role=GCS_ROLE, member=member, opts=c._opts())
    return args.team_namespaces


def gcp_storage(c: GkeCluster, args: StorageArgs) -> StorageOutputs:
    """Block, object and parallel-file storage of a GKE cluster (the rules above)."""
    n, a = c._name, c._args
    out = StorageOutputs(namespace=args.workload_namespace,
                         service_account=args.service_account,
                         local_nvme="local SSD as ephemeral storage on A3/A2 Ultra GPU pools"
                         if args.local_nvme else "")
    k8s_opts = pulumi.ResourceOptions(parent=c, provider=c.provider)
    if args.block:
        out.default_class = GKE_DEFAULT_CLASS
        if any(p.machine_type.startswith(HYPERDISK_ONLY) for p in c.pools):
            klass = k8s.storage.v1.StorageClass(
                f"{n}-{HYPERDISK_CLASS}", metadata={"name": HYPERDISK_CLASS},
                provisioner=PD_DRIVER, parameters={"type": "hyperdisk-balanced"},
                volume_binding_mode="WaitForFirstConsumer", reclaim_policy="Delete",
                allow_volume_expansion=True, opts=k8s_opts)
            out.resources.append(klass)
    if args.bucket:
        out.bucket_driver = GCS_DRIVER
        if args.bucket_name:
            name: pulumi.Input[str] = args.bucket_name
        else:
            bucket = gcp.storage.Bucket(
                f"{n}-models", name=bucket_name(args, a.cluster_name, a.project),
                location=a.region.upper(), uniform_bucket_level_access=True,
                public_access_prevention="enforced", force_destroy=False,
                labels=dict(a.labels) or None, opts=c._opts())
            name = bucket.name
            out.resources.append(bucket)
        number = gcp.organizations.get_project_output(
            project_id=a.project, opts=pulumi.InvokeOutputOptions(
                parent=c, provider=c.provider_gcp)).number
        member = number.apply(lambda num: gke_principal(
            num or "", a.project, args.workload_namespace, args.service_account))
        gcp.storage.BucketIAMMember(f"{n}-models-workload", bucket=name, role=GCS_ROLE,
                                    member=member, opts=c._opts())
        out.bucket, out.identity = name, member
        out.team_namespaces = gke_team_members(c, args, name, number)
        out.recipe = pulumi.Output.from_input(name).apply(gcs_recipe)
    if args.parallel_fs:
        out.parallel_fs = _managed_lustre(c, args)
    return out


def _managed_lustre(c: GkeCluster, args: StorageArgs) -> dict[str, Any]:
    n, a = c._name, c._args
    assert c.network is not None  # check_gke_storage refused an existing subnetwork
    address = gcp.compute.GlobalAddress(
        f"{n}-lustre-psa", name=f"{a.cluster_name}-lustre-psa", purpose="VPC_PEERING",
        address_type="INTERNAL", prefix_length=20, network=c.network.id, opts=c._opts())
    gcp.servicenetworking.Connection(
        f"{n}-lustre-psa", network=c.network.id, service="servicenetworking.googleapis.com",
        reserved_peering_ranges=[address.name], opts=c._opts(parent=address))
    network = pulumi.Output.concat("projects/", a.project, "/global/networks/", a.cluster_name)
    klass = k8s.storage.v1.StorageClass(
        f"{n}-lustre", metadata={"name": "lustre-rwx"}, provisioner=LUSTRE_DRIVER,
        parameters={"perUnitStorageThroughput": "1000", "network": network},
        volume_binding_mode="WaitForFirstConsumer", reclaim_policy="Delete",
        opts=pulumi.ResourceOptions(parent=c, provider=c.provider))
    return {"driver": LUSTRE_DRIVER, "storageClass": klass.metadata.name,
            "capacityGib": args.parallel_fs_capacity_gib}


# --- GPU fabric: GPUDirect-TCPX / -TCPXO / RDMA ------------------------------------------

# The extra VPCs' subnets are carved from this range, one /20 per network, as
# GoogleCloudPlatform/cluster-toolkit examples/gke-a3-megagpu/gke-a3-megagpu.yaml does
# (gpunets: global_ip_address_range 192.169.0.0/16, subnetwork_cidr_suffix 20). Each VPC is
# its own routing domain, so pools may reuse the ranges.
FABRIC_RANGE = "192.168.0.0/16"


def fabric_of(machine_type: str) -> Fabric | None:
    f = fabric("gcp", machine_type)
    return f if f is not None and f.kind.startswith("gpudirect") else None


def multi_networking(args: GkeClusterArgs) -> bool:
    """GKE multi-networking, for a cluster with a GPUDirect pool: its node pools' additional
    networks need it, and it needs Dataplane V2, which every aicp cluster runs (GKE docs
    gpu-bandwidth-gpudirect-tcpx "Create the cluster": --enable-dataplane-v2
    --enable-multi-networking; cluster-toolkit modules/scheduler/gke-cluster main.tf
    enable_multi_networking, "multi networking needs enabled Dataplane v2")."""
    return any(fabric_of(offering("gcp", p.accelerator, p.instance_type).machine_type)
               for p in args.gpu_pools)


def validate_fabric_zones(args: GkeClusterArgs) -> None:
    """A GPUDirect-RDMA pool needs its zone named: the RDMA VPC takes the zone's RoCE network
    profile (GKE docs gpu-bandwidth-gpudirect-rdma). TCPX/TCPXO pools without a named zone
    stay regional, without compact placement (``gke_fabric``)."""
    for i, p in enumerate(args.gpu_pools):
        machine = offering("gcp", p.accelerator, p.instance_type).machine_type
        f = fabric_of(machine)
        if f is not None and f.kind == "gpudirect-rdma" and not args.zones:
            raise PropertyError(
                "zones", "list the zone for GPU pool {name} ({machine} gets GPUDirect-RDMA: its "
                "RDMA VPC uses the zone's RoCE network profile; the first zone is used); see "
                "{0}", (f"gpu_pools[{i}].accelerator",), name=repr(p.name), machine=machine)


def gke_networks(cluster: str, pool: str, f: Fabric) -> list[dict[str, str]]:
    """Each extra network of a pool: the Kubernetes Network name, its VPC, subnet, range and
    device mode. TCPX/TCPXO: one VPC and subnet per GPU NIC, NetDevice (cluster-toolkit
    gke-cluster main.tf apply_manifests_non_rdma_networks). RDMA: one gVNIC VPC (NetDevice)
    and one RDMA VPC with a subnet per NIC, ``deviceMode: RDMA`` (same file,
    apply_manifests_rdma_networks; GKE docs gpu-bandwidth-gpudirect-rdma)."""
    ranges = [str(n) for n in ipaddress.ip_network(FABRIC_RANGE).subnets(new_prefix=20)]
    names = gke_network_names(pool, f)
    out = []
    for i, network in enumerate(names):
        if f.kind == "gpudirect-rdma":
            vpc = f"{cluster}-{pool}-gvnic" if i == 0 else f"{cluster}-{pool}-rdma"
            subnet = f"{cluster}-{network}"
            mode = "NetDevice" if i == 0 else "RDMA"
        else:
            vpc = subnet = f"{cluster}-{network}"
            mode = "NetDevice"
        out.append({"network": network, "vpc": vpc, "subnet": subnet, "cidr": ranges[i],
                    "deviceMode": mode})
    return out


def with_gke_networks(cluster: str, pool: GpuPool, zones: tuple[str, ...]) -> GpuPool:
    """The pool with its extra networks in its fabric export (``gpuPools[].fabric``): what
    the Network objects and the NCCL proof's pods name; and where it is placed."""
    f = fabric_of(pool.machine_type)
    if f is None or pool.fabric is None:
        return pool
    placement = {} if zones else {"placement": REGIONAL_PLACEMENT}
    return replace(pool, fabric={**pool.fabric, **placement,
                                 "gkeNetworks": gke_networks(cluster, pool.name, f)})


REGIONAL_PLACEMENT = "regional, no compact placement (name aicp:zones to get it)"


@dataclass(frozen=True)
class GkeFabric:
    """What a GPUDirect pool's node pool is built with (``gke_fabric``)."""

    fabric: Fabric
    zones: list[str] | None
    network_config: gcp.container.NodePoolNetworkConfigArgs
    placement: gcp.container.NodePoolPlacementPolicyArgs | None
    networks: list[gcp.compute.Network]

    def outputs(self) -> dict[str, Any]:
        return {"fabric": self.fabric.bandwidth_class,
                "fabricNetworks": [n.name for n in self.networks],
                CONFORMANCE_OUTPUT: ["high_performance_networking"]}


def gke_fabric(name: str, pool: GpuPool, args: GkeGpuPoolArgs, parent: pulumi.Resource
               ) -> GkeFabric | None:
    """A GPUDirect pool's VPCs, subnets, firewall rules, additional node networks and compact
    placement; None for other machine types.

    As GoogleCloudPlatform/cluster-toolkit's gke-a3-megagpu / gke-a3-ultragpu blueprints
    (modules/network/multivpc: one VPC and subnet per GPU NIC at MTU 8244, a firewall rule
    letting the subnets' ranges reach each other; modules/compute/gke-node-pool:
    additional_node_network_configs per network, placement_policy COMPACT) and the GKE docs
    (gpu-bandwidth-gpudirect-tcpx, gpu-bandwidth-gpudirect-rdma: the RDMA VPC takes the zone's
    ``<zone>-vpc-roce`` network profile and MTU 8896).
    """
    f = fabric_of(pool.machine_type)
    if f is None:
        return None
    cluster = (pool.fabric or {}).get("gkeNetworks") or []
    # Compact placement keeps the pool in one zone: the first named (none named: regional,
    # without it; GKE docs, compact placement: a compact placement policy's nodes are in
    # one zone).
    zone = args.node_locations[0] if args.node_locations else None
    opts = pulumi.ResourceOptions(parent=parent, provider=args.provider,
                                  depends_on=list(args.depends_on))
    vpcs: dict[str, gcp.compute.Network] = {}
    configs = []
    for net in cluster:
        vpc = vpcs.get(net["vpc"])
        if vpc is None:
            rdma = net["deviceMode"] == "RDMA"
            vpc = vpcs[net["vpc"]] = gcp.compute.Network(
                f"{name}-{net['network']}", name=net["vpc"], project=args.project,
                auto_create_subnetworks=False, mtu=f.mtu,
                network_profile=(f"projects/{args.project}/global/networkProfiles/"
                                 f"{zone}-vpc-roce") if rdma else None,
                opts=opts)
        subnet = gcp.compute.Subnetwork(
            f"{name}-{net['network']}", name=net["subnet"], project=args.project,
            region=args.location, network=vpc.id, ip_cidr_range=net["cidr"],
            opts=pulumi.ResourceOptions(parent=vpc, provider=args.provider,
                                        depends_on=list(args.depends_on)))
        configs.append(gcp.container.NodePoolNetworkConfigAdditionalNodeNetworkConfigArgs(
            network=vpc.name, subnetwork=subnet.name))
    for key, vpc in vpcs.items():
        ranges = [n["cidr"] for n in cluster if n["vpc"] == key]
        # RDMA VPCs carry no IP traffic a firewall sees (RoCE bypasses it); the rule
        # still lets the NICs' own addresses reach each other as the blueprints do.
        gcp.compute.Firewall(
            f"{vpc._name}-internal", name=f"{key}-internal", project=args.project,
            network=vpc.self_link, direction="INGRESS", priority=1000,
            source_ranges=ranges,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp"),
                    gcp.compute.FirewallAllowArgs(protocol="udp"),
                    gcp.compute.FirewallAllowArgs(protocol="icmp")],
            opts=pulumi.ResourceOptions(parent=vpc, provider=args.provider,
                                        depends_on=list(args.depends_on)))
    return GkeFabric(
        fabric=f, zones=[zone] if zone else None,
        network_config=gcp.container.NodePoolNetworkConfigArgs(
            additional_node_network_configs=configs),
        placement=gcp.container.NodePoolPlacementPolicyArgs(type="COMPACT") if zone else None,
        networks=list(vpcs.values()))
