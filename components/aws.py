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
  Capacity Blocks for ML need ``capacity_type=CAPACITY_BLOCK`` and are not handled here.
"""

from __future__ import annotations

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

from .contract import (
    CONFORMANCE_OUTPUT,
    SYSTEM_MIN_NODES,
    ClusterOutputs,
    GpuDriver,
    GpuPool,
    GpuPoolRequest,
    PropertyError,
    node_range,
    region_code,
    resolve_pool,
    validate_pools,
)
from .fabric import EFA_RESOURCE, Fabric, fabric

SYSTEM_POOL_LABEL = "aicp.dev/pool"
SYSTEM_INSTANCE_TYPE = "m7i.xlarge"
# Label cluster-autoscaler's AWS provider treats as "this node has a GPU" (GPULabel).
AWS_ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
CA_NAMESPACE = "kube-system"
CA_SERVICE_ACCOUNT = "cluster-autoscaler"
CA_TAG = "k8s.io/cluster-autoscaler"
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
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

    def __post_init__(self) -> None:
        validate(self)


# Region codes, never display names ("US West (Oregon)" is us-west-2): codes like us-west-2,
# eu-central-1, us-gov-west-1
# (https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html).
REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)?-[a-z]+-\d+$")


def check_region(region: str) -> None:
    """The region is given, as its code; ``InputPropertyError`` at ``region``."""
    region_code("region", region, REGION, "us-west-2", "an AWS", "aws")


def validate(args: AwsClusterArgs) -> None:
    """Raise ``InputPropertyError`` for the first argument EKS or its autoscaler would refuse;
    declares nothing."""
    check_region(args.region)
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
    for i, p in enumerate(args.gpu_pools):
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
        self.autoscaler_role = self._autoscaler_role()

        self.kubeconfig = self._kubeconfig()
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_node_group]))

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
            capacity_reservation_id=request.capacity_reservation_id),
            opts=pulumi.ResourceOptions(parent=self))

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
            fabric=self.fabric)
        self.node_group = node_group(
            name, on, ami_type="AL2023_x86_64_NVIDIA", instance_type=pool.machine_type,
            capacity_type="SPOT" if pool.capacity_type == "spot" else "ON_DEMAND",
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
        # DRA pools get their EFA devices as ResourceSlices, not an extended resource.
        resources={EFA_RESOURCE: str(f.interfaces)} if pool.allocator == "device-plugin"
        else {})


def _moved_from(opts: pulumi.ResourceOptions | None) -> list[pulumi.Alias]:
    """The alias of a child that used to be a child of this component's parent."""
    parent = opts.parent if opts is not None else None
    return [pulumi.Alias(parent=parent)] if parent is not None else []


def launch_template(name: str, on: NodeGroupCluster, volume_gib: int, throughput: int, *,
                    parent: pulumi.Resource, reservation: str | None = None,
                    aliases: Sequence[pulumi.Alias] = (),
                    fabric: EfaFabric | None = None) -> aws.ec2.LaunchTemplate:
    """IMDSv2 only, an encrypted gp3 root volume, and the capacity reservation to target."""
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
        tag_specifications=tag_specs,
        network_interfaces=fabric.interfaces if fabric else None,
        placement=fabric.placement if fabric else None,
        opts=pulumi.ResourceOptions(parent=parent, provider=on.provider,
                                    aliases=list(aliases) or None))


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
