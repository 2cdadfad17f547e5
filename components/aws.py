"""The AWS target: an EKS cluster with a system node group and one node group per GPU pool.

What it builds (raw ``pulumi_aws`` classes, so every child is visible to ``aicp plan``):

- an ``aws.Provider`` for the region, so the component carries its own region and tags;
- a VPC across the given zones: private subnets for nodes, public subnets for load
  balancers and one NAT gateway (or nothing, when existing private subnet ids are given);
- a KMS key (rotation on) that envelope-encrypts Kubernetes Secrets;
- the EKS cluster: access entries only (``authentication_mode=API``), all control-plane
  log types, the requested endpoint access;
- the cluster's IAM OIDC provider, for IAM roles for service accounts (IRSA);
- the VPC CNI as a managed add-on whose ``aws-node`` service account has its own IRSA role,
  so the node role carries no network permissions;
- a managed system node group (AL2023 standard AMI, on-demand);
- one managed node group per GPU pool on the AL2023 NVIDIA AMI (driver and container
  toolkit on the host), tainted and labelled from the accelerator catalog; each pool is a
  ``GpuNodeGroup`` component holding its launch template, node group and ASG tags;
- launch templates: IMDSv2 only with hop limit 1, encrypted gp3 root volumes, capacity
  reservation targeting;
- cluster-autoscaler node-template tags on every node group's Auto Scaling group, and an
  IRSA role for the cluster-autoscaler service account;
- a kubeconfig (``aws eks get-token``), kept secret, and a Kubernetes provider on it.

Credentials: an explicit provider reads none of the stack's ``aws:*`` settings, so the
ones that choose an identity (``aws:profile``, ``aws:assumeRoles``/``aws:assumeRole``,
``aws:sharedCredentialsFiles``, ``aws:sharedConfigFiles``) are passed through to it, and the
kubeconfig's ``aws eks get-token`` runs as the same identity: ``AWS_PROFILE`` in its
environment and ``--role-arn`` of the last role assumed, as pulumi-eks's
``providerCredentialOpts`` (``profileName``, ``roleArn``) writes it
(pulumi/pulumi-eks ``nodejs/eks/cluster.ts`` generateKubeconfig). Without it the cluster is
created by the assumed role and every Kubernetes call is made as the caller: Unauthorized.

Upstream followed: EKS user guide (access entries, secrets encryption, IRSA, VPC CNI with
IRSA, AL2023 accelerated AMIs, launch templates for managed node groups), EKS best
practices guide (security: IMDS), kubernetes/autoscaler cluster-autoscaler 1.35
``cloudprovider/aws/README.md`` (auto-discovery tags, node templates, IAM policy),
pulumi-aws 7.51 (``eks``, ``ec2``, ``iam``, ``autoscaling``).

Decisions, each with its reason:

- **IMDS hop limit 1.** Managed node groups default to 2 so that pods can reach the
  instance metadata service; with 1 only host-network pods (aws-node, kube-proxy, the Pod
  Identity agent) can, and no workload pod can pick up the node role's credentials.
  Everything this platform runs that calls AWS uses IRSA (cluster-autoscaler, VPC CNI) and
  gets its region from its values (the chart passes ``awsRegion`` as ``AWS_REGION``).
  Raise ``imds_hop_limit`` to 2 if you add a controller that still reads IMDS.
- **CNI policy via IRSA**, not on the node role (EKS user guide, "Configure the Amazon
  VPC CNI plugin to use IRSA"): the add-on exists before any node joins.
- **OIDC thumbprint omitted.** IAM validates the EKS issuer against its own trusted root
  CAs and ignores configured thumbprints (pulumi-aws 7.51 ``OpenIdConnectProvider``).
- **DRA pools need ``min_nodes >= 1``.** cluster-autoscaler's AWS provider has no DRA node
  template (autoscaler#7799), so it cannot scale a DRA pool from zero; device-plugin pools
  can scale from zero through the ``node-template/resources/nvidia.com/gpu`` tag.
- **``k8s.amazonaws.com/accelerator`` only on device-plugin pools.** cluster-autoscaler
  takes a node carrying that label but no ``nvidia.com/gpu`` allocatable as not ready yet
  (avoids double scale-up); DRA nodes never advertise ``nvidia.com/gpu``.
- **Existing subnets are used as they are**: tag them yourself (``kubernetes.io/role/
  internal-elb=1``) if load balancers should find them.
- **Capacity reservations** are targeted through the launch template (On-Demand Capacity
  Reservations). A reservation lives in one zone: give the pool subnets in that zone.
- **Capacity Blocks for ML** (``capacity_type="capacity-block"``, the block's ``cr-`` id in
  ``capacity_reservation_id``): the launch template sets ``InstanceMarketOptions.MarketType:
  capacity-block`` and targets the block's reservation, and the managed node group is
  created with ``capacityType: CAPACITY_BLOCK`` on that custom launch template (EKS user
  guide, "Create a managed node group with Capacity Blocks for ML",
  https://docs.aws.amazon.com/eks/latest/userguide/capacity-blocks-mng.html; market types
  ``spot``, ``capacity-block``: EC2 API ``LaunchTemplateInstanceMarketOptionsRequest``). A
  block is paid up front for its whole term, used or not, and its nodes are ended when it
  expires: the price catalog marks it variable (components/prices.py).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi.errors import InputPropertyError

from . import gvisor
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
    node_range,
    of_form,
    region_code,
    resolve_pool,
    validate_pools,
)
from .fabric import EFA_HUGEPAGES_NODE, EFA_RESOURCE, Fabric, fabric
from .storage import StorageArgs, StorageOutputs, check_storage, team_subjects

SYSTEM_POOL_LABEL = "aicp.dev/pool"
SYSTEM_INSTANCE_TYPE = "m7i.xlarge"
# What EKS sells a GPU pool: a managed node group's capacityType is ON_DEMAND, SPOT or
# CAPACITY_BLOCK (EKS API CreateNodegroup ``capacityType``; capacity-blocks-mng above).
CAPACITY_TYPES = ("on-demand", "spot", "capacity-block")
NODE_GROUP_CAPACITY = {"on-demand": "ON_DEMAND", "spot": "SPOT",
                       "capacity-block": "CAPACITY_BLOCK"}
# Launch template market type: only a Capacity Block sets one. Managed node groups refuse a
# launch template requesting Spot; SPOT is the node group's capacityType (EKS user guide,
# "Customize managed nodes with launch templates", InstanceMarketOptions not allowed).
MARKET_TYPES = {"capacity-block": "capacity-block"}
# Label cluster-autoscaler's AWS provider treats as "this node has a GPU" (GPULabel).
AWS_ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
CA_NAMESPACE = "kube-system"
CA_SERVICE_ACCOUNT = "cluster-autoscaler"
CA_TAG = "k8s.io/cluster-autoscaler"
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# --- workload_sandboxing and virtualized_accelerator (issue #25) -------------------------
SANDBOX_INSTANCE_TYPE = "m7i.large"  # 2 vCPU / 8 GiB: room for a few agent sandboxes
SANDBOX_MAX_NODES = 3
EKS_SANDBOX_TAINT = "sandbox.aicp.dev/runtime"
# AWS documents no sandbox runtime for EKS nodes: aicp installs gVisor (components/gvisor.py)
# and creates the RuntimeClass (aicp.addons.sandbox) whose scheduling matches the group.
EKS_SANDBOX = SandboxRuntime(
    runtime="gvisor", runtime_class=gvisor.RUNTIME_CLASS, handler=gvisor.HANDLER,
    created_by="aicp", node_selector={EKS_SANDBOX_TAINT: "gvisor"},
    tolerations=({"key": EKS_SANDBOX_TAINT, "operator": "Equal", "value": "gvisor",
                  "effect": "NoSchedule"},),
    pool="sandbox", note="CPU node group (m7i.large, scales from zero), gVisor systrap")
# EC2 GPU instances (P5, G6...) get whole GPUs passed through by the Nitro hypervisor
# (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html); NVIDIA vGPU needs the
# vGPU manager in the hypervisor (https://docs.nvidia.com/vgpu/), which EC2 does not offer.
NOT_APPLICABLE = {
    "virtualized_accelerator": (
        "EKS GPU nodes are EC2 instances with whole GPUs passed through; vGPU needs a vGPU "
        "manager in the hypervisor, which EC2 does not offer (fractional GPUs are served by "
        "gpu_sharing instead)"),
}

_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE",
            "NoExecute": "NO_EXECUTE"}
_ROOT_DEVICE = "/dev/xvda"  # AL2023 EKS AMIs


@dataclass(frozen=True)
class AwsClusterArgs:
    """Inputs of :class:`AwsCluster`."""

    cluster_name: str
    kubernetes_version: str
    region: str
    gpu_pools: tuple[GpuPoolRequest, ...]
    zones: tuple[str, ...] = ()
    # Existing private subnets (at least two zones); when given no VPC is created.
    subnet_ids: tuple[str, ...] = ()
    vpc_cidr: str = "10.0.0.0/16"
    endpoint_private_access: bool = True
    endpoint_public_access: bool = True
    public_access_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    system_instance_type: str | None = SYSTEM_INSTANCE_TYPE
    system_min_nodes: int = 2
    system_max_nodes: int = 4
    system_root_volume_gib: int = 100
    # GPU images (CUDA, PyTorch, vLLM) are 10-20 GB each, and several are cached per node.
    gpu_root_volume_gib: int = 500
    imds_hop_limit: int = 1
    # IAM principals given cluster-admin through an access entry (besides the creator).
    admin_principal_arns: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    # The gVisor release of a small tainted sandbox node group (workload_sandboxing);
    # None: no sandbox group.
    sandbox_gvisor_release: str | None = None
    storage: StorageArgs = StorageArgs()  # block, bucket, parallel FS, local NVMe (#20)

    def __post_init__(self) -> None:
        validate(self)


# Region codes, never display names ("US West (Oregon)" is us-west-2): codes like us-west-2,
# eu-central-1, us-gov-west-1
# (https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html).
REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)?-[a-z]+-\d+$")


def check_region(region: str) -> None:
    """The region is given, as its code; ``InputPropertyError`` at ``region``."""
    region_code("region", region, REGION, "us-west-2", "an AWS", "aws")


# "Managed node groups per cluster": 30
# (https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html); aicp makes the
# system node group and one per GPU pool.
MAX_NODE_GROUPS = 30
# Tag keys up to 128 characters, values up to 256, and the aws: prefix is AWS's own
# (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html, "Tag naming limits
# and requirements").
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
# An instance type is family, generation and options, a dot, and the size: m7i.2xlarge,
# g6e.xlarge, p5en.48xlarge, u-6tb1.metal
# (https://docs.aws.amazon.com/ec2/latest/instancetypes/instance-type-names.html).
INSTANCE_TYPE = re.compile(r"^(?:[a-z]+\d+[a-z0-9-]*|u-\d+tb\d+)\.[a-z0-9]+$")


def validate_extras(args: AwsClusterArgs) -> None:
    """The limits EKS, EC2 and tagging put on the cluster's other arguments."""
    of_form("system_instance_type", args.system_instance_type or None, INSTANCE_TYPE,
            "an EC2 instance type (like m7i.xlarge)")
    groups = len(args.gpu_pools) + 1
    if groups > MAX_NODE_GROUPS:
        raise InputPropertyError(
            "gpu_pools", f"{len(args.gpu_pools)} GPU pools and the system node group are "
            f"{groups} managed node groups; EKS allows {MAX_NODE_GROUPS} per cluster")
    for key, value in args.tags.items():
        where = f"tags[{json.dumps(key)}]"
        if key.lower().startswith("aws:"):
            raise InputPropertyError(where, "the aws: prefix is reserved for AWS's own tags")
        if len(key) > TAG_KEY_MAX:
            raise InputPropertyError(where, f"a tag key is at most {TAG_KEY_MAX} characters "
                                     f"on AWS (this one has {len(key)})")
        if len(value) > TAG_VALUE_MAX:
            raise InputPropertyError(where, f"a tag value is at most {TAG_VALUE_MAX} "
                                     f"characters on AWS (this one has {len(value)})")


def validate(args: AwsClusterArgs) -> None:
    """Raise ``InputPropertyError`` for the first argument EKS or its autoscaler would refuse;
    declares nothing."""
    check_region(args.region)
    validate_extras(args)
    check_trust_length(args.region, team_subjects(args.storage))
    # EKS: "subnets in at least two different Availability Zones"
    # (https://docs.aws.amazon.com/eks/latest/userguide/network-reqs.html).
    if not args.subnet_ids and len(args.zones) < 2:
        raise PropertyError(
            "zones", "list at least two availability zones (EKS needs subnets in two), "
            "or give {0}", ("subnet_ids",))
    if args.subnet_ids and len(args.subnet_ids) < 2:
        raise InputPropertyError("subnet_ids", "give subnets in at least two zones")
    if len(args.zones) > 6 and not args.subnet_ids:
        raise InputPropertyError("zones", "at most six zones")
    node_range("system_min_nodes", args.system_min_nodes, args.system_max_nodes,
               "system_max_nodes", SYSTEM_MIN_NODES)
    validate_pools("aws", args.gpu_pools)
    capacity_types("aws", args.gpu_pools, CAPACITY_TYPES)
    for i, p in enumerate(args.gpu_pools):
        if p.capacity_type == "capacity-block" and not p.capacity_reservation_id:
            raise PropertyError(
                f"gpu_pools[{i}].capacity_reservation_id",
                "required for {0}: capacity-block (the Capacity Block's reservation id, "
                "cr-...; EKS capacity-blocks-mng)", (f"gpu_pools[{i}].capacity_type",))
        if p.allocator == "dra" and p.min_nodes < 1:
            raise PropertyError(
                f"gpu_pools[{i}].min_nodes",
                "0 cannot scale up for DRA claims on aws (cluster-autoscaler cannot scale a "
                "DRA pool up from zero: it has no DRA node template); set it to 1 or {0}: "
                "device-plugin", (f"gpu_pools[{i}].allocator",))


class AwsCluster(pulumi.ComponentResource):
    """An EKS cluster ready for the aicp addons; ``outputs`` is the contract."""

    outputs: ClusterOutputs

    def __init__(self, name: str, args: AwsClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicp:aws:Cluster", name, None, opts)
        self._name = name
        self._args = args
        self.attachments: dict[str, list[aws.iam.RolePolicyAttachment]] = {}
        self.credentials = stack_credentials()
        self.provider_aws = aws.Provider(
            f"{name}-aws", region=args.region,
            default_tags=aws.ProviderDefaultTagsArgs(tags=self._tags()),
            profile=self.credentials.profile,
            assume_roles=[aws.ProviderAssumeRoleArgs(
                role_arn=r.get("roleArn"), session_name=r.get("sessionName"),
                external_id=r.get("externalId"), duration=r.get("duration"))
                for r in self.credentials.assume_roles] or None,
            shared_credentials_files=list(self.credentials.shared_credentials_files) or None,
            shared_config_files=list(self.credentials.shared_config_files) or None,
            opts=pulumi.ResourceOptions(parent=self))
        # aws, aws-cn or aws-us-gov: AWS-managed policy ARNs differ per partition.
        self._partition = aws.get_partition_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self.provider_aws)).partition

        self.network_resources: list[pulumi.Resource] = []
        self.private_subnet_ids = (
            list(args.subnet_ids) if args.subnet_ids else self._network())
        self.kms_key = self._kms_key()
        self.cluster = self._cluster()
        self.oidc_provider = self._oidc_provider()
        self.cni_addon = self._vpc_cni()
        self.node_role = self._node_role()

        self.pools: tuple[GpuPool, ...] = tuple(resolve_pool("aws", p) for p in args.gpu_pools)
        self.system_node_group = self._system_node_group()
        self.gpu_node_groups: dict[str, GpuNodeGroup] = {
            pool.name: self._gpu_node_group(pool, request)
            for pool, request in zip(self.pools, args.gpu_pools, strict=True)}
        self.sandbox_node_group = (self._sandbox_node_group(args.sandbox_gvisor_release)
                                   if args.sandbox_gvisor_release else None)
        self.autoscaler_role = self._autoscaler_role()

        self.kubeconfig = self._kubeconfig()
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_node_group]))
        self.storage = aws_storage(self, args.storage)

        self.outputs = ClusterOutputs(
            target="aws", name=self.cluster.name, kubernetes_version=args.kubernetes_version,
            kubeconfig=self.kubeconfig, provider=self.provider, gpu_pools=self.pools,
            gpu_driver=GpuDriver(
                owner="host", root="/", toolkit_on_host=True,
                # The AL2023 NVIDIA AMI ships the driver and the container toolkit (CDI on).
                operator_values={"driver": {"enabled": False}, "toolkit": {"enabled": False}}),
            autoscaler="cluster-autoscaler",
            autoscaler_values={
                "cloudProvider": "aws",
                "awsRegion": args.region,
                "autoDiscovery": {"clusterName": args.cluster_name},
                "rbac": {"serviceAccount": {
                    "create": True, "name": CA_SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": self.autoscaler_role.arn}}},
            },
            ready=[self.system_node_group, *self.network_resources],
            features={"notApplicable": dict(NOT_APPLICABLE),
                      **({SANDBOX: EKS_SANDBOX.export()}
                         if args.sandbox_gvisor_release else {})},
            storage=self.storage,
        )
        self.register_outputs({
            "clusterName": self.cluster.name,
            "endpoint": self.cluster.endpoint,
            "oidcProviderArn": self.oidc_provider.arn,
            "autoscalerRoleArn": self.autoscaler_role.arn,
            "kubeconfig": self.kubeconfig,
            CONFORMANCE_OUTPUT: [],
        })

    # --- helpers -----------------------------------------------------------------------

    def _opts(self, parent: pulumi.Resource | None = None, **kwargs: Any
              ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent or self, provider=self.provider_aws, **kwargs)

    def _policy(self, name: str) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", self._partition, ":iam::aws:policy/", name)

    def _tags(self) -> dict[str, str]:
        return {**self._args.tags, "aicp.dev/cluster": self._args.cluster_name}

    # --- network -----------------------------------------------------------------------

    def _network(self) -> list[pulumi.Output[str]]:
        """VPC, private subnets for nodes, public subnets + one NAT gateway for egress."""
        a, n = self._args, self._name
        cluster_tag = {f"kubernetes.io/cluster/{a.cluster_name}": "shared"}
        private_cidrs, public_cidrs = split_cidr(a.vpc_cidr, len(a.zones))
        vpc = aws.ec2.Vpc(f"{n}-vpc", cidr_block=a.vpc_cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags={"Name": f"{a.cluster_name}"},
                          opts=self._opts())
        igw = aws.ec2.InternetGateway(f"{n}-igw", vpc_id=vpc.id, opts=self._opts())
        public_rt = aws.ec2.RouteTable(
            f"{n}-public", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            opts=self._opts())
        public, private = [], []
        public_associations: list[pulumi.Resource] = []
        for zone, pub, priv in zip(a.zones, public_cidrs, private_cidrs, strict=True):
            subnet = aws.ec2.Subnet(
                f"{n}-public-{zone}", vpc_id=vpc.id, availability_zone=zone, cidr_block=pub,
                tags={**cluster_tag, "kubernetes.io/role/elb": "1",
                      "Name": f"{a.cluster_name}-public-{zone}"},
                opts=self._opts())
            public_associations.append(aws.ec2.RouteTableAssociation(
                f"{n}-public-{zone}", subnet_id=subnet.id, route_table_id=public_rt.id,
                opts=self._opts()))
            public.append(subnet)
            private.append(aws.ec2.Subnet(
                f"{n}-private-{zone}", vpc_id=vpc.id, availability_zone=zone, cidr_block=priv,
                tags={**cluster_tag, "kubernetes.io/role/internal-elb": "1",
                      "Name": f"{a.cluster_name}-private-{zone}"},
                opts=self._opts()))
        # One NAT gateway keeps cost down; a zone outage cuts egress for the other zones.
        eip = aws.ec2.Eip(f"{n}-nat", domain="vpc", opts=self._opts())
        nat = aws.ec2.NatGateway(f"{n}-nat", allocation_id=eip.id, subnet_id=public[0].id,
                                 opts=self._opts(depends_on=[igw]))
        private_rt = aws.ec2.RouteTable(
            f"{n}-private", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            opts=self._opts())
        associations = [
            aws.ec2.RouteTableAssociation(f"{n}-private-{zone}", subnet_id=subnet.id,
                                          route_table_id=private_rt.id, opts=self._opts())
            for zone, subnet in zip(a.zones, private, strict=True)]
        self.vpc = vpc
        # What a LoadBalancer Service's ELB sits in and routes through (public subnets,
        # internet gateway, NAT): addons wait for all of it, so `pulumi destroy` deletes
        # their load balancers before any of it (else: DependencyViolation on the VPC).
        self.network_resources = [
            vpc, igw, public_rt, *public, *public_associations, *private, eip, nat,
            private_rt, *associations]
        return [s.id for s in private]

    # --- encryption, IAM, cluster ------------------------------------------------------

    def _kms_key(self) -> aws.kms.Key:
        return aws.kms.Key(
            f"{self._name}-secrets",
            description=f"EKS {self._args.cluster_name}: envelope encryption of Secrets",
            enable_key_rotation=True, deletion_window_in_days=30, opts=self._opts())

    def _role(self, name: str, trust: pulumi.Input[str], policies: Sequence[str]
              ) -> aws.iam.Role:
        role = aws.iam.Role(name, assume_role_policy=trust, opts=self._opts())
        # Whatever runs as the role waits for these (and is destroyed before them): EKS
        # deletes the security groups and ENIs of a cluster or node group with the role's
        # permissions, and leaks them when the attachment is gone first (pulumi-aws / the
        # Terraform AWS provider aws_eks_cluster and aws_eks_node_group docs: "Ensure that
        # IAM Role permissions are created before and deleted after").
        self.attachments[name] = [aws.iam.RolePolicyAttachment(
            f"{name}-{policy}", role=role.name, policy_arn=self._policy(policy),
            opts=self._opts(parent=role)) for policy in policies]
        return role

    def _cluster(self) -> aws.eks.Cluster:
        a, n = self._args, self._name
        role = self._role(f"{n}-cluster", _service_trust("eks.amazonaws.com", tag_session=True),
                          ["AmazonEKSClusterPolicy"])
        # The cluster role needs to use the key; the key policy delegates to IAM.
        key_use = aws.iam.RolePolicy(
            f"{n}-cluster-kms", role=role.id,
            policy=self.kms_key.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Resource": arn, "Action": [
                    "kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]}]})),
            opts=self._opts(parent=role))
        vpc = aws.eks.ClusterVpcConfigArgs(
            subnet_ids=self.private_subnet_ids,
            endpoint_private_access=a.endpoint_private_access,
            endpoint_public_access=a.endpoint_public_access,
            public_access_cidrs=list(a.public_access_cidrs) if a.endpoint_public_access
            else None)
        cluster = aws.eks.Cluster(
            f"{n}-eks", name=a.cluster_name, version=a.kubernetes_version, role_arn=role.arn,
            vpc_config=vpc,
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.kms_key.arn)),
            enabled_cluster_log_types=list(LOG_TYPES),
            opts=self._opts(depends_on=[key_use, *self.attachments[f"{n}-cluster"]]))
        for i, principal in enumerate(a.admin_principal_arns):
            entry = aws.eks.AccessEntry(
                f"{n}-admin-{i}", cluster_name=cluster.name, principal_arn=principal,
                type="STANDARD", opts=self._opts(parent=cluster))
            aws.eks.AccessPolicyAssociation(
                f"{n}-admin-{i}", cluster_name=cluster.name, principal_arn=principal,
                policy_arn=pulumi.Output.concat(
                    "arn:", self._partition,
                    ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=self._opts(parent=cluster, depends_on=[entry]))
        return cluster

    def _oidc_provider(self) -> aws.iam.OpenIdConnectProvider:
        self.oidc_issuer = self.cluster.identities.apply(lambda ids: (ids[0].oidcs or [])[0].issuer)
        return aws.iam.OpenIdConnectProvider(
            f"{self._name}-oidc", url=self.oidc_issuer, client_id_lists=["sts.amazonaws.com"],
            opts=self._opts())

    def _irsa_role(self, name: str, namespace: str, service_account: str,
                   policies: Sequence[str] = ()) -> aws.iam.Role:
        trust = pulumi.Output.all(self.oidc_provider.arn, self.oidc_issuer).apply(
            lambda a: irsa_trust(a[0], a[1], namespace, service_account))
        return self._role(name, trust, policies)

    def _vpc_cni(self) -> aws.eks.Addon:
        role = self._irsa_role(f"{self._name}-vpc-cni", "kube-system", "aws-node",
                               ["AmazonEKS_CNI_Policy"])
        return aws.eks.Addon(
            f"{self._name}-vpc-cni", cluster_name=self.cluster.name, addon_name="vpc-cni",
            service_account_role_arn=role.arn, resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            # aws-node frees pod ENIs with this role's policy on destroy, too.
            opts=self._opts(depends_on=self.attachments[f"{self._name}-vpc-cni"]))

    def _node_role(self) -> aws.iam.Role:
        # No AmazonEKS_CNI_Policy: aws-node has its own IRSA role (see _vpc_cni).
        return self._role(f"{self._name}-node", _service_trust("ec2.amazonaws.com"),
                          ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"])

    # --- node groups -------------------------------------------------------------------

    def _node_group_cluster(self) -> NodeGroupCluster:
        return NodeGroupCluster(
            cluster_name=self._args.cluster_name, eks_cluster_name=self.cluster.name,
            node_role_arn=self.node_role.arn, subnet_ids=tuple(self.private_subnet_ids),
            imds_hop_limit=self._args.imds_hop_limit, tags=self._tags(),
            provider=self.provider_aws,
            depends_on=(self.cni_addon, *self.attachments[f"{self._name}-node"]),
            vpc_id=self.cluster.vpc_config.vpc_id,
            cluster_security_group_id=self.cluster.vpc_config.cluster_security_group_id)

    def _system_node_group(self) -> aws.eks.NodeGroup:
        a, n = self._args, f"{self._name}-system"
        on = self._node_group_cluster()
        labels = {SYSTEM_POOL_LABEL: "system"}
        group = node_group(
            n, on, ami_type="AL2023_x86_64_STANDARD",
            instance_type=a.system_instance_type or SYSTEM_INSTANCE_TYPE, capacity_type="ON_DEMAND",
            min_size=a.system_min_nodes, max_size=a.system_max_nodes, labels=labels, taints=(),
            template=launch_template(n, on, a.system_root_volume_gib, throughput=125,
                                     parent=self),
            parent=self)
        tag_auto_scaling_group(n, group, autoscaler_tags(a.cluster_name, labels, (), {}), on)
        return group

    def _gpu_node_group(self, pool: GpuPool, request: GpuPoolRequest) -> GpuNodeGroup:
        n = f"{self._name}-gpu-{pool.name}"
        return GpuNodeGroup(n, GpuNodeGroupArgs(
            pool=pool, cluster=self._node_group_cluster(),
            root_volume_gib=self._args.gpu_root_volume_gib,
            capacity_reservation_id=request.capacity_reservation_id,
            local_nvme=self._args.storage.local_nvme),
            opts=pulumi.ResourceOptions(parent=self))

    def _sandbox_node_group(self, release: str) -> aws.eks.NodeGroup:
        """A small CPU node group whose containerd runs gVisor (EKS documents no sandbox).

        Tainted, so only pods of RuntimeClass ``gvisor`` (which carries the toleration and
        the nodeSelector, EKS_SANDBOX) land there; scales from zero: cluster-autoscaler
        reads the label and taint from the Auto Scaling group's node-template tags.
        """
        a, n = self._args, f"{self._name}-sandbox"
        on = self._node_group_cluster()
        labels = {SYSTEM_POOL_LABEL: EKS_SANDBOX.pool, **EKS_SANDBOX.node_selector}
        taint = Taint(EKS_SANDBOX_TAINT, "gvisor", "NoSchedule")
        template = sandbox_launch_template(n, on, gvisor.eks_user_data(release), parent=self)
        group = node_group(
            n, on, ami_type="AL2023_x86_64_STANDARD", instance_type=SANDBOX_INSTANCE_TYPE,
            capacity_type="ON_DEMAND", min_size=0, max_size=SANDBOX_MAX_NODES, labels=labels,
            taints=[aws.eks.NodeGroupTaintArgs(key=taint.key, value=taint.value,
                                               effect=_EFFECTS[taint.effect])],
            template=template, parent=self)
        tag_auto_scaling_group(n, group, autoscaler_tags(
            a.cluster_name, labels, [taint], {"ephemeral-storage": "45Gi"}), on)
        return group

    # --- cluster-autoscaler ------------------------------------------------------------

    def _autoscaler_role(self) -> aws.iam.Role:
        role = self._irsa_role(f"{self._name}-cluster-autoscaler", CA_NAMESPACE,
                               CA_SERVICE_ACCOUNT)
        aws.iam.RolePolicy(
            f"{self._name}-cluster-autoscaler", role=role.id,
            policy=json.dumps(autoscaler_policy(self._args.cluster_name)),
            opts=self._opts(parent=role))
        return role

    def _kubeconfig(self) -> pulumi.Output[str]:
        a, creds = self._args, self.credentials
        role = creds.assume_roles[-1].get("roleArn") if creds.assume_roles else None
        config = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.certificate_authority.data, self.cluster.name,
        ).apply(lambda v: kubeconfig(v[0], v[1], v[2], a.region, profile=creds.profile,
                                     role_arn=role))
        return pulumi.Output.secret(config)


# --- node groups --------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeGroupCluster:
    """What every managed node group takes from its EKS cluster."""

    cluster_name: str  # as in AwsClusterArgs: owns the cluster-autoscaler tags
    eks_cluster_name: pulumi.Input[str]  # the aws.eks.Cluster's name output
    node_role_arn: pulumi.Input[str]
    subnet_ids: tuple[pulumi.Input[str], ...]
    imds_hop_limit: int
    tags: Mapping[str, str]  # on instances and volumes (the launch template's)
    provider: aws.Provider
    # What nodes need before they join: the VPC CNI add-on and the node role's policies.
    depends_on: tuple[pulumi.Resource, ...] = ()
    # The cluster's VPC and security group: an EFA pool's security group lives in that VPC,
    # and its launch template's interfaces must name the cluster's group too.
    vpc_id: pulumi.Input[str] | None = None
    cluster_security_group_id: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class GpuNodeGroupArgs:
    """Inputs of :class:`GpuNodeGroup`."""

    pool: GpuPool
    cluster: NodeGroupCluster
    # GPU images (CUDA, PyTorch, vLLM) are 10-20 GB each, and several are cached per node.
    root_volume_gib: int = 500
    capacity_reservation_id: str | None = None
    local_nvme: bool = False  # nodeadm RAID0 of the instance-store NVMe (aws_storage notes)


class GpuNodeGroup(pulumi.ComponentResource):
    """One GPU pool of an EKS cluster: its launch template, its managed node group on the
    AL2023 NVIDIA AMI, and the cluster-autoscaler tags of the group's Auto Scaling group
    (one component per group, as pulumi/pulumi-eks ``ManagedNodeGroup`` wraps its
    ``aws.eks.NodeGroup``).

    Until this component existed its children were children of the cluster component that
    is its parent: each carries ``Alias(parent=<that parent>)`` (the SDK sends it as the
    old parent's URN, pulumi 3.272 ``pulumi/runtime/resource.py`` ``create_alias_spec``), so
    a stack created then keeps them (update in place, no replacement). The engine derives
    the autoscaler tags' old URNs from the node group's alias (pulumi/pulumi
    ``pkg/resource/deploy/step_generator.go``, ``generateAliases``: "multiply out any
    aliases our parent had").
    """

    node_group: aws.eks.NodeGroup
    launch_template: aws.ec2.LaunchTemplate

    def __init__(self, name: str, args: GpuNodeGroupArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicp:aws:GpuNodeGroup", name, None, opts)
        pool, on = args.pool, args.cluster
        moved = _moved_from(opts)
        labels = dict(pool.labels)
        # What the kubelet leaves of the root volume under its default nodefs.available<10%
        # eviction threshold; without it the template has none and pods asking for
        # ephemeral storage never wake the pool.
        resources = {"ephemeral-storage": f"{args.root_volume_gib * 9 // 10}Gi"}
        if pool.allocator == "device-plugin":
            labels[AWS_ACCELERATOR_LABEL] = pool.accelerator
            resources["nvidia.com/gpu"] = str(pool.gpus_per_node)
        taints = [aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=_EFFECTS[t.effect])
                  for t in pool.taints]
        self.fabric = efa_fabric(name, pool, on, self)
        if self.fabric is not None:
            on = self.fabric.cluster
            resources.update(self.fabric.resources)
        # Image pulls of 10-20 GB images are bound by volume throughput.
        self.launch_template = launch_template(
            name, on, args.root_volume_gib, throughput=500,
            reservation=args.capacity_reservation_id, parent=self, aliases=moved,
            user_data=nodeadm_user_data() if args.local_nvme else None,
            market=MARKET_TYPES.get(pool.capacity_type),
            fabric=self.fabric)
        self.node_group = node_group(
            name, on, ami_type="AL2023_x86_64_NVIDIA", instance_type=pool.machine_type,
            capacity_type=NODE_GROUP_CAPACITY[pool.capacity_type],
            min_size=pool.min_nodes, max_size=pool.max_nodes, labels=labels, taints=taints,
            template=self.launch_template, parent=self, aliases=moved)
        tag_auto_scaling_group(
            name, self.node_group,
            autoscaler_tags(on.cluster_name, labels, pool.taints, resources), on)
        self.register_outputs({
            "pool": pool.name,
            "nodeGroupArn": self.node_group.arn,
            "launchTemplateId": self.launch_template.id,
            **(self.fabric.outputs() if self.fabric is not None else {}),
        })


@dataclass(frozen=True)
class EfaFabric:
    """What an EFA pool's node group is built with (``efa_fabric``)."""

    fabric: Fabric
    cluster: NodeGroupCluster  # the pool's view of the cluster: one zone's subnet
    interfaces: list[aws.ec2.LaunchTemplateNetworkInterfaceArgs]
    placement: aws.ec2.LaunchTemplatePlacementArgs
    placement_group: aws.ec2.PlacementGroup
    security_group: aws.ec2.SecurityGroup
    # cluster-autoscaler node template: a node from zero has the EFA devices too.
    resources: Mapping[str, str]

    def outputs(self) -> dict[str, Any]:
        return {"fabric": self.fabric.bandwidth_class,
                "placementGroup": self.placement_group.name,
                "efaSecurityGroupId": self.security_group.id,
                CONFORMANCE_OUTPUT: ["high_performance_networking"]}


def efa_interfaces(f: Fabric, groups: Sequence[pulumi.Input[str]]
                   ) -> list[aws.ec2.LaunchTemplateNetworkInterfaceArgs]:
    """One interface per network card, as the EKS user guide lays them out for managed node
    groups (awsdocs/amazon-eks-user-guide latest/ug/ml/device-management-efa.adoc, "EKS
    managed node groups and self-managed nodes"): the primary (card 0, device 0) an
    ``interface`` for IP traffic, an ``efa-only`` at card 0 device 1, and an ``efa-only`` at
    device 0 of every other card. EFA-only interfaces take no IP address, so a p5's 32 cards
    do not drain the subnet ("Conserving IP address allocation"). No ``SubnetId``: EKS
    rejects launch templates that name one; every interface carries the groups, since a
    template with interfaces takes no ``SecurityGroupIds``.
    """
    def nic(card: int, device: int, kind: str) -> aws.ec2.LaunchTemplateNetworkInterfaceArgs:
        return aws.ec2.LaunchTemplateNetworkInterfaceArgs(
            network_card_index=card, device_index=device, interface_type=kind,
            security_groups=list(groups), delete_on_termination="true")

    return [nic(0, 0, "interface"), nic(0, 1, "efa-only"),
            *(nic(card, 0, "efa-only") for card in range(1, f.interfaces))]


def efa_fabric(name: str, pool: GpuPool, on: NodeGroupCluster, parent: pulumi.Resource
               ) -> EfaFabric | None:
    """An EFA pool's placement group, security group and interfaces; None for other types.

    As pulumi/pulumi-eks ``enableEfaSupport`` (docs/efa.md: "All EFA interfaces supported by
    the instance will be exposed on the launch template", "A clustered placement group will
    be created", the node group kept in one availability zone) and the EC2 user guide
    (efa-start.html "Prepare an EFA-enabled security group": all traffic in and out to and
    from the group itself; placement-groups.html: a cluster placement group lives in one
    zone). The first private subnet's zone hosts the pool; a capacity reservation for it
    must be in that zone.
    """
    f = fabric("aws", pool.machine_type)
    if f is None or f.kind != "efa":
        return None
    opts = pulumi.ResourceOptions(parent=parent, provider=on.provider)
    # Placement group names are unique per account and region.
    group = aws.ec2.PlacementGroup(f"{name}-efa", name=f"{on.cluster_name}-{pool.name}-efa",
                                   strategy="cluster", opts=opts)
    security = aws.ec2.SecurityGroup(
        f"{name}-efa", vpc_id=on.vpc_id,
        description=f"EFA OS-bypass traffic between the nodes of GPU pool {pool.name}",
        ingress=[aws.ec2.SecurityGroupIngressArgs(
            protocol="-1", from_port=0, to_port=0, self=True)],
        egress=[aws.ec2.SecurityGroupEgressArgs(
            protocol="-1", from_port=0, to_port=0, self=True),
            # Nodes still reach the API server, registries and AWS APIs.
            aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"])],
        opts=opts)
    groups = [g for g in (on.cluster_security_group_id, security.id) if g is not None]
    return EfaFabric(
        fabric=f, cluster=replace(on, subnet_ids=on.subnet_ids[:1]),
        interfaces=efa_interfaces(f, groups),
        placement=aws.ec2.LaunchTemplatePlacementArgs(group_name=group.name),
        placement_group=group, security_group=security,
        # DRA pools get their EFA devices as ResourceSlices, not an extended resource. Every
        # EFA node has the EFA installer's huge pages (fabric.EFA_HUGEPAGES_NODE): without
        # them in the template a pod asking for huge pages never wakes a pool at zero
        # (cluster-autoscaler cloudprovider/aws/aws_manager.go
        # extractAllocatableResourcesFromAsg parses any node-template/resources/<name>).
        resources={**({EFA_RESOURCE: str(f.interfaces)} if pool.allocator == "device-plugin"
                      else {}), "hugepages-2Mi": EFA_HUGEPAGES_NODE})


def _moved_from(opts: pulumi.ResourceOptions | None) -> list[pulumi.Alias]:
    """The alias of a child that used to be a child of this component's parent."""
    parent = opts.parent if opts is not None else None
    return [pulumi.Alias(parent=parent)] if parent is not None else []


def launch_template(name: str, on: NodeGroupCluster, volume_gib: int, throughput: int | None, *,
                    parent: pulumi.Resource, reservation: str | None = None,
                    aliases: Sequence[pulumi.Alias] = (),
                    user_data: str | None = None,
                    market: str | None = None,
                    fabric: EfaFabric | None = None) -> aws.ec2.LaunchTemplate:
    """IMDSv2 only, an encrypted gp3 root volume, the capacity reservation to target, and
    for a Capacity Block its market type."""
    market_options = aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type=market) \
        if market else None
    reservation_spec = aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
        capacity_reservation_target=aws.ec2
        .LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
            capacity_reservation_id=reservation)) if reservation else None
    # Managed node groups do not copy their tags to instances and volumes.
    tag_specs = [aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=t, tags=dict(on.tags))
                 for t in ("instance", "volume")]
    return aws.ec2.LaunchTemplate(
        name, update_default_version=True,
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled", http_tokens="required",
            http_put_response_hop_limit=on.imds_hop_limit),
        block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=_ROOT_DEVICE,
            ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                volume_size=volume_gib, volume_type="gp3", encrypted="true",
                throughput=throughput, delete_on_termination="true"))],
        capacity_reservation_specification=reservation_spec,
        instance_market_options=market_options,
        tag_specifications=tag_specs, user_data=user_data,
        network_interfaces=fabric.interfaces if fabric else None,
        placement=fabric.placement if fabric else None,
        opts=pulumi.ResourceOptions(parent=parent, provider=on.provider,
                                    aliases=list(aliases) or None))


def sandbox_launch_template(name: str, on: NodeGroupCluster, user_data: str, *,
                            parent: pulumi.Resource) -> aws.ec2.LaunchTemplate:
    """``launch_template`` with a 50 GiB root volume at gp3's baseline throughput and the
    gVisor user data."""
    return launch_template(name, on, 50, None, parent=parent,
                           user_data=base64.b64encode(user_data.encode()).decode())

def node_group(name: str, on: NodeGroupCluster, *, ami_type: str, instance_type: str,
               capacity_type: str, min_size: int, max_size: int,
               labels: Mapping[str, str], taints: Sequence[Any],
               template: aws.ec2.LaunchTemplate, parent: pulumi.Resource,
               aliases: Sequence[pulumi.Alias] = ()) -> aws.eks.NodeGroup:
    """A managed node group on ``template``, whose size cluster-autoscaler owns."""
    return aws.eks.NodeGroup(
        name, cluster_name=on.eks_cluster_name, node_role_arn=on.node_role_arn,
        subnet_ids=list(on.subnet_ids), ami_type=ami_type,
        instance_types=[instance_type], capacity_type=capacity_type,
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=min_size, max_size=max_size, desired_size=min_size),
        labels=dict(labels), taints=list(taints) or None,
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
            id=template.id, version=template.latest_version.apply(str)),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
        # cluster-autoscaler owns the desired size once the group exists.
        opts=pulumi.ResourceOptions(parent=parent, provider=on.provider,
                                    depends_on=list(on.depends_on),
                                    ignore_changes=["scalingConfig.desiredSize"],
                                    aliases=list(aliases) or None))


def tag_auto_scaling_group(name: str, group: aws.eks.NodeGroup, tags: Mapping[str, str],
                           on: NodeGroupCluster) -> None:
    """Tag the node group's Auto Scaling group: managed node group tags stop at EKS."""
    asg = group.resources.apply(lambda r: (r[0].autoscaling_groups or [])[0].name)
    owned = f"{CA_TAG}/{on.cluster_name}"
    for key, value in tags.items():
        suffix = "owned" if key == owned else _slug(key.removeprefix(CA_TAG + "/"))
        aws.autoscaling.Tag(
            f"{name}-{suffix}", autoscaling_group_name=asg,
            tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
            opts=pulumi.ResourceOptions(parent=group, provider=on.provider))


# --- pure helpers (tested through the component) ----------------------------------------

def split_cidr(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Private subnets of 1/8 of the VPC each (pod IPs come from them with the VPC CNI);
    public subnets carved from the last eighth, 1/64 of the VPC each."""
    net = ipaddress.ip_network(vpc_cidr)
    eighths = list(net.subnets(prefixlen_diff=3))
    public = list(eighths[-1].subnets(prefixlen_diff=3))
    return [str(s) for s in eighths[:zones]], [str(s) for s in public[:zones]]


def autoscaler_tags(cluster_name: str, labels: Mapping[str, str], taints: Sequence[Any],
                    resources: Mapping[str, str]) -> dict[str, str]:
    """ASG tags for auto-discovery and for the node template of a group with no nodes."""
    tags = {f"{CA_TAG}/enabled": "true", f"{CA_TAG}/{cluster_name}": "owned"}
    tags.update({f"{CA_TAG}/node-template/label/{k}": v for k, v in labels.items()})
    tags.update({f"{CA_TAG}/node-template/taint/{t.key}": f"{t.value}:{t.effect}"
                 for t in taints})
    tags.update({f"{CA_TAG}/node-template/resources/{k}": v for k, v in resources.items()})
    return tags


def autoscaler_policy(cluster_name: str) -> dict[str, Any]:
    """cluster-autoscaler's AWS README policy: read everything, scale only owned groups."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
            "eks:DescribeNodegroup"]},
        {"Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/{CA_TAG}/{cluster_name}": "owned"}}},
    ]}


def irsa_trust(oidc_arn: str, issuer: str, namespace: str, service_account: str) -> str:
    """Trust policy letting exactly one Kubernetes service account assume the role."""
    host = issuer.removeprefix("https://")
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": oidc_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{host}:aud": "sts.amazonaws.com"}}}]})


@dataclass(frozen=True)
class StackCredentials:
    """The stack's ``aws:*`` settings that choose the identity resources are made as."""

    profile: str | None = None
    assume_roles: tuple[Mapping[str, Any], ...] = ()
    shared_credentials_files: tuple[str, ...] = ()
    shared_config_files: tuple[str, ...] = ()


def stack_credentials() -> StackCredentials:
    """Read them from the running stack's config (values arrive as text, lists as JSON)."""
    config = pulumi.Config("aws")

    def listed(key: str) -> list[Any]:
        value = config.get_object(key)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]

    # pulumi-aws 7: aws:assumeRoles (a list); aws:assumeRole, the single-object form.
    roles = listed("assumeRoles") or listed("assumeRole")
    return StackCredentials(
        profile=config.get("profile"),
        assume_roles=tuple(r for r in roles if isinstance(r, Mapping)),
        shared_credentials_files=tuple(str(f) for f in listed("sharedCredentialsFiles")),
        shared_config_files=tuple(str(f) for f in listed("sharedConfigFiles")))


def kubeconfig(endpoint: str, ca_data: str, cluster_name: str, region: str, *,
               profile: str | None = None, role_arn: str | None = None) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (AWS CLI v2), as the
    identity the stack's provider uses (``AWS_PROFILE``, ``--role-arn``)."""
    args = ["eks", "get-token", "--cluster-name", cluster_name, "--region", region,
            "--output", "json"]
    if role_arn:
        args += ["--role-arn", role_arn]
    exec_: dict[str, Any] = {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "aws", "args": args,
        "interactiveMode": "Never"}
    if profile:
        exec_["env"] = [{"name": "AWS_PROFILE", "value": profile}]
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster_name,
        "clusters": [{"name": cluster_name, "cluster": {
            "server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name,
                      "context": {"cluster": cluster_name, "user": cluster_name}}],
        "users": [{"name": cluster_name, "user": {"exec": exec_}}],
    }, indent=2)


def _service_trust(service: str, *, tag_session: bool = False) -> str:
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else "sts:AssumeRole"
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": actions}]})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- storage (issue #20) --------------------------------------------------------------------
# Block: the EBS CSI driver as an EKS add-on whose controller service account
# (kube-system/ebs-csi-controller-sa) has an IRSA role with the AWS-managed
# AmazonEBSCSIDriverPolicy (docs.aws.amazon.com/eks/latest/userguide/ebs-csi.html, "Create
# an IAM role": IRSA or EKS Pod Identity; the cluster already has its OIDC provider). Since
# Kubernetes 1.30 EKS marks no class default (docs.aws.amazon.com/eks/latest/userguide/
# kubernetes-versions-standard.html, 1.30: "the default annotation on the gp2 StorageClass
# has been removed"), so aicp adds one: gp3, encrypted (kubernetes-sigs/aws-ebs-csi-driver
# docs/parameters.md: type, encrypted), WaitForFirstConsumer so the volume is created in the
# zone of the node the pod lands on.
EBS_DRIVER, EBS_SERVICE_ACCOUNT = "ebs.csi.aws.com", "ebs-csi-controller-sa"
EBS_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
DEFAULT_CLASS = "gp3"
# Object: Mountpoint for Amazon S3 as an EKS add-on (aws-mountpoint-s3-csi-driver), static
# PVs only (awslabs/mountpoint-s3-csi-driver docs/CONFIGURATION.md). authenticationSource:
# pod makes the mount use the pod's own ServiceAccount and its IRSA role ("Pod-Level
# Credentials"), so only pods running as the workload ServiceAccount reach the bucket; the
# driver itself then needs no S3 permission. allow-delete lets workloads delete objects.
S3_DRIVER = "s3.csi.aws.com"
# Least privilege for Mountpoint (awslabs/mountpoint-s3 doc/CONFIGURATION.md, "IAM
# permissions"): list the bucket; read, write and delete its objects.
S3_BUCKET_ACTIONS = ("s3:ListBucket",)
S3_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                     "s3:DeleteObject")
# Parallel FS: FSx for Lustre PERSISTENT_2 (1,200 GiB steps, docs.aws.amazon.com/fsx/latest/
# LustreGuide/managing-storage-capacity.html) linked to the model bucket with a data
# repository association (LustreGuide/create-dra-linked-data-repo.html); Lustre clients
# reach it on TCP 988 and 1018-1023 (LustreGuide/limit-access-security-groups.html); the
# FSx CSI driver add-on authenticates through EKS Pod Identity (docs.aws.amazon.com/eks/
# latest/userguide/fsx-csi-create.html: "requires the EKS Pod Identity agent").
FSX_DRIVER = "fsx.csi.aws.com"
# Local NVMe: nodeadm's NodeConfig spec.instance.localStorage.strategy RAID0 stripes the
# instance-store NVMe disks (8 x 3.84 TB on p5) into one array holding containerd's and the
# kubelet's directories (awslabs/amazon-eks-ami nodeadm/api/v1alpha1/nodeconfig_types.go
# LocalStorageOptions; doc/usage/al2023.md), given as a MIME part of type
# application/node.eks.aws that EKS merges into the managed node group's user data
# (docs.aws.amazon.com/eks/latest/userguide/launch-templates.html, AL2023 user data).
NODEADM_RAID0 = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="AICP"

--AICP
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    localStorage:
      strategy: RAID0

--AICP--
"""


def nodeadm_user_data() -> str:
    """The GPU launch template's user data: base64 of ``NODEADM_RAID0``."""
    import base64

    return base64.b64encode(NODEADM_RAID0.encode()).decode()


def s3_workload_policy(bucket_arn: str) -> str:
    """The workload role's policy: exactly the model bucket and its objects."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ListTheModelBucket", "Effect": "Allow", "Action": list(S3_BUCKET_ACTIONS),
         "Resource": bucket_arn},
        {"Sid": "ObjectsOfTheModelBucket", "Effect": "Allow",
         "Action": list(S3_OBJECT_ACTIONS), "Resource": f"{bucket_arn}/*"}]})


def s3_recipe(bucket: str, region: str) -> dict[str, Any]:
    """The static PV Mountpoint mounts (its examples/kubernetes/static_provisioning)."""
    return {"persistentVolume": {
        "capacity": {"storage": "1200Gi"}, "accessModes": ["ReadWriteMany"],
        "storageClassName": "", "mountOptions": ["allow-delete", f"region {region}"],
        "csi": {"driver": S3_DRIVER, "volumeHandle": f"s3-{bucket}",
                "volumeAttributes": {"bucketName": bucket, "authenticationSource": "pod"}}}}


# The teams' namespaces (#24): one IRSA role whose trust lists the workload namespace's and
# every team namespace's ServiceAccount as the values of one ``:sub`` condition; a condition
# key with several values matches any of them (docs.aws.amazon.com/IAM/latest/UserGuide/
# reference_policies_condition-logic-multiple-context-keys-or-values.html), so each listed
# ServiceAccount, and no other, assumes the role that reaches the bucket. IAM caps a role's
# trust policy at 2,048 characters, white space not counted (docs.aws.amazon.com/IAM/latest/
# UserGuide/reference_iam-quotas.html, "Role trust policy length"; the limit aws/
# containers-roadmap#1408 names for IRSA): too many teams are refused before anything is
# declared, measured with the longest issuer EKS gives (oidc.eks.REGION.amazonaws.com/id/
# + 32 characters, docs.aws.amazon.com/eks/latest/userguide/enable-iam-roles-for-service-
# accounts.html) in the longest partition and a 12-digit account.
TRUST_POLICY_MAX = 2048


def irsa_trust_subjects(oidc_arn: str, issuer: str,
                        subjects: Sequence[tuple[str, str]]) -> str:
    """Trust policy letting exactly the ``(namespace, ServiceAccount)`` pairs assume the
    role (one pair: the same document as ``irsa_trust``)."""
    if len(subjects) == 1:
        return irsa_trust(oidc_arn, issuer, *subjects[0])
    host = issuer.removeprefix("https://")
    policy = json.loads(irsa_trust(oidc_arn, issuer, *subjects[0]))
    policy["Statement"][0]["Condition"]["StringEquals"][f"{host}:sub"] = [
        f"system:serviceaccount:{ns}:{sa}" for ns, sa in subjects]
    return json.dumps(policy)


def check_trust_length(region: str, subjects: Sequence[tuple[str, str]]) -> None:
    """``InputPropertyError`` when the workload role's trust would pass IAM's limit."""
    host = f"oidc.eks.{region}.amazonaws.com/id/{'X' * 32}"
    arn = f"arn:aws-us-gov:iam::{'0' * 12}:oidc-provider/{host}"
    size = len(json.dumps(json.loads(irsa_trust_subjects(arn, f"https://{host}", subjects)),
                          separators=(",", ":")))
    if size > TRUST_POLICY_MAX:
        raise InputPropertyError(
            "storage.team_namespaces", f"{len(subjects) - 1} teams make the model bucket "
            f"role's trust policy about {size} characters, more than the {TRUST_POLICY_MAX} "
            "IAM allows a role's trust policy: declare fewer teams or shorter team names")


def aws_workload_role(c: AwsCluster, args: StorageArgs) -> aws.iam.Role:
    """The IRSA role of the model bucket: the workload and every team ServiceAccount."""
    subjects = team_subjects(args)  # their length: check_trust_length, in validate
    trust = pulumi.Output.all(c.oidc_provider.arn, c.oidc_issuer).apply(
        lambda a: irsa_trust_subjects(a[0], a[1], subjects))
    return c._role(f"{c._name}-models", trust, ())


def aws_storage(c: AwsCluster, args: StorageArgs) -> StorageOutputs:
    """Block, object and parallel-file storage of an EKS cluster (the rules above)."""
    check_storage(args)
    n, a = c._name, c._args
    out = StorageOutputs(namespace=args.workload_namespace,
                         service_account=args.service_account,
                         local_nvme="instance-store NVMe striped RAID0 for containerd and the "
                                    "kubelet (nodeadm localStorage)" if args.local_nvme else "")
    k8s_opts = pulumi.ResourceOptions(parent=c, provider=c.provider)
    if args.block:
        role = c._irsa_role(f"{n}-ebs-csi", "kube-system", EBS_SERVICE_ACCOUNT)
        attached = aws.iam.RolePolicyAttachment(
            f"{n}-ebs-csi-AmazonEBSCSIDriverPolicy", role=role.name,
            policy_arn=c._policy(EBS_POLICY), opts=c._opts(parent=role))
        addon = aws.eks.Addon(
            f"{n}-ebs-csi", cluster_name=c.cluster.name, addon_name="aws-ebs-csi-driver",
            service_account_role_arn=role.arn, resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            # The controller deletes volumes with the role's permissions on destroy, too.
            opts=c._opts(depends_on=[attached, c.system_node_group]))
        klass = k8s.storage.v1.StorageClass(
            f"{n}-{DEFAULT_CLASS}", metadata={"name": DEFAULT_CLASS, "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner=EBS_DRIVER, parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer", reclaim_policy="Delete",
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                depends_on=[addon])))
        out.default_class = klass.metadata.name
        out.resources += [addon, klass]
    if args.bucket:
        out.bucket_driver = S3_DRIVER
        if args.bucket_name:  # the config names an existing bucket: scope to it, create none
            name: pulumi.Input[str] = args.bucket_name
            arn: pulumi.Input[str] = pulumi.Output.concat("arn:", c._partition, ":s3:::",
                                                          args.bucket_name)
        else:
            bucket = aws.s3.Bucket(f"{n}-models", bucket_prefix=f"{a.cluster_name}-models-"[:37],
                                   force_destroy=False, opts=c._opts())
            # Encrypted at rest with S3-managed keys, stated rather than left to the
            # account default (docs.aws.amazon.com/AmazonS3/latest/userguide/
            # default-bucket-encryption.html); never public: all four public-access blocks
            # and ACLs disabled (AmazonS3/latest/userguide/access-control-block-public-access
            # .html, about-object-ownership.html).
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{n}-models", bucket=bucket.id, rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3
                        .BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(  # noqa: E501
                            sse_algorithm="AES256"), bucket_key_enabled=True)],
                opts=c._opts(parent=bucket))
            aws.s3.BucketPublicAccessBlock(
                f"{n}-models", bucket=bucket.id, block_public_acls=True,
                block_public_policy=True, ignore_public_acls=True,
                restrict_public_buckets=True, opts=c._opts(parent=bucket))
            aws.s3.BucketOwnershipControls(
                f"{n}-models", bucket=bucket.id,
                rule=aws.s3.BucketOwnershipControlsRuleArgs(
                    object_ownership="BucketOwnerEnforced"), opts=c._opts(parent=bucket))
            name, arn = bucket.bucket, bucket.arn
            out.resources.append(bucket)
        workload = aws_workload_role(c, args)
        aws.iam.RolePolicy(f"{n}-models", role=workload.id,
                           policy=pulumi.Output.from_input(arn).apply(s3_workload_policy),
                           opts=c._opts(parent=workload))
        addon = aws.eks.Addon(
            f"{n}-mountpoint-s3", cluster_name=c.cluster.name,
            addon_name="aws-mountpoint-s3-csi-driver", resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=c._opts(depends_on=[c.system_node_group]))
        out.bucket, out.identity = name, workload.arn
        out.team_namespaces = args.team_namespaces
        out.service_account_annotations = {"eks.amazonaws.com/role-arn": workload.arn}
        out.recipe = pulumi.Output.from_input(name).apply(lambda b: s3_recipe(b, a.region))
        out.resources.append(addon)
    if args.parallel_fs:
        out.parallel_fs = _fsx(c, args, out)
    return out


def _fsx(c: AwsCluster, args: StorageArgs, out: StorageOutputs) -> dict[str, Any]:
    """FSx for Lustre beside the nodes, linked to the model bucket, and its CSI driver."""
    n = c._name
    vpc_id = c.cluster.vpc_config.apply(lambda v: v.vpc_id or "")
    nodes_sg = c.cluster.vpc_config.apply(lambda v: v.cluster_security_group_id or "")
    sg = aws.ec2.SecurityGroup(f"{n}-lustre", vpc_id=vpc_id,
                               description="Lustre clients (EKS nodes) to FSx for Lustre",
                               ingress=[aws.ec2.SecurityGroupIngressArgs(
                                   protocol="tcp", from_port=low, to_port=high,
                                   security_groups=[nodes_sg])
                                   for low, high in ((988, 988), (1018, 1023))],
                               opts=c._opts())
    fs = aws.fsx.LustreFileSystem(
        f"{n}-lustre", storage_capacity=args.parallel_fs_capacity_gib,
        subnet_ids=c.private_subnet_ids[0], security_group_ids=[sg.id],
        deployment_type="PERSISTENT_2", per_unit_storage_throughput=250,
        data_compression_type="LZ4", kms_key_id=c.kms_key.arn, opts=c._opts())
    if out.bucket is not None:
        aws.fsx.DataRepositoryAssociation(
            f"{n}-lustre-models", file_system_id=fs.id, file_system_path="/models",
            data_repository_path=pulumi.Output.concat("s3://", out.bucket),
            batch_import_meta_data_on_create=True,
            s3=aws.fsx.DataRepositoryAssociationS3Args(
                auto_import_policy=aws.fsx.DataRepositoryAssociationS3AutoImportPolicyArgs(
                    events=["NEW", "CHANGED", "DELETED"]),
                auto_export_policy=aws.fsx.DataRepositoryAssociationS3AutoExportPolicyArgs(
                    events=["NEW", "CHANGED", "DELETED"])),
            opts=c._opts(parent=fs))
    agent = aws.eks.Addon(f"{n}-pod-identity-agent", cluster_name=c.cluster.name,
                          addon_name="eks-pod-identity-agent",
                          opts=c._opts(depends_on=[c.system_node_group]))
    role = c._role(f"{n}-fsx-csi", _service_trust("pods.eks.amazonaws.com", tag_session=True),
                   ["AmazonFSxFullAccess"])
    aws.eks.Addon(f"{n}-fsx-csi", cluster_name=c.cluster.name, addon_name="aws-fsx-csi-driver",
                  pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                      role_arn=role.arn, service_account="fsx-csi-controller-sa")],
                  opts=c._opts(depends_on=[agent, *c.attachments[f"{n}-fsx-csi"]]))
    # A static PV of the file system (kubernetes-sigs/aws-fsx-csi-driver
    # examples/kubernetes/static_provisioning: volumeHandle = file system id, dnsname,
    # mountname).
    return {"driver": FSX_DRIVER, "fileSystemId": fs.id, "persistentVolume": pulumi.Output.all(
        fs.id, fs.dns_name, fs.mount_name).apply(lambda v: {
            "capacity": {"storage": f"{args.parallel_fs_capacity_gib}Gi"},
            "accessModes": ["ReadWriteMany"], "storageClassName": "",
            "mountOptions": ["flock"], "csi": {"driver": FSX_DRIVER, "volumeHandle": v[0],
                                               "volumeAttributes": {"dnsname": v[1],
                                                                    "mountname": v[2]}}})}
