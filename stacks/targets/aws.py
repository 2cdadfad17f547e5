"""AWS: EKS through ``components/aws.py``. What the stack knows about AWS, in one place."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ...addons.catalog import GVISOR_RELEASE, NOT_OFFERED
from ...components.accelerators import offering
from ...components.aws import AwsCluster, AwsClusterArgs, check_region, validate
from ...components.contract import ClusterOutputs
from ..errors import ConfigError
from ..preflight import PreflightError, Report, lookup
from . import rules
from .base import POOL_KEYS, STORAGE_KEYS, Secrets, pool_requests, refused, storage_args

if TYPE_CHECKING:
    from ..config import PlatformConfig

# An Availability Zone is the region code (components/aws.py REGION) followed by a letter,
# e.g. us-east-1a
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html).
ZONE_SUFFIX = re.compile(r"^[a-z]$")
# "Nodes per managed node group", default 450
# (https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html).
MAX_NODES = 450
# "Public endpoint access CIDR ranges per cluster": 40, not adjustable
# (https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html).
EKS_MAX_PUBLIC_CIDRS = 40
# cr- and hex digits, e.g. cr-1234567890abcdef0 (EC2 API CapacityReservation,
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CapacityReservation.html).
RESERVATION = re.compile(r"^cr-[0-9a-f]{8}([0-9a-f]{9})?$")

# EC2 Service Quotas for On-Demand and Spot instances, counted in vCPUs per family group
# (AWS docs, "Amazon EC2 service quotas": Running On-Demand P instances L-417A185B, G and VT
# L-DB2E81BA; All P Spot Instance Requests L-7212CCBC, All G and VT L-3819A6DF).
EC2_QUOTAS = {
    ("p", "on-demand"): ("L-417A185B", "Running On-Demand P instances"),
    ("g", "on-demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("p", "spot"): ("L-7212CCBC", "All P Spot Instance Requests"),
    ("g", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
}

# AwsClusterArgs property → the config key (the args are built in ``args`` below).
KEYS: Mapping[str, str] = {
    **POOL_KEYS,
    **STORAGE_KEYS,
    "region": "aicp:region",
    "zones": "aicp:zones",
    "subnet_ids": "aicp:network.subnetIds",
    "system_min_nodes": "aicp:systemPool.minNodes",
    "system_instance_type": "aicp:systemPool.instanceType",
    "gpu_pools": "aicp:gpuPools",
    "tags[*]": "aicp:tags.{}",
}

# The stack's provider settings that decide where resources go → the aicp path saying the
# same (base.honour): pulumi-aws's ``region``
# (https://www.pulumi.com/registry/packages/aws/installation-configuration/).
PROVIDER_KEYS: Mapping[str, str] = {"aws:region": "region"}

# What AWS never reads (base.unread).
UNREAD: Mapping[str, str] = {
    "gcp": "the GCP settings are read on target gcp",
    "azure": "the Azure settings are read on target azure",
    "onprem": "the on-prem settings are read on target onprem",
}


def args(cfg: PlatformConfig) -> AwsClusterArgs:
    return AwsClusterArgs(
        cluster_name=cfg.cluster_name,
        kubernetes_version=cfg.kubernetes_version,
        region=cfg.region or "",
        zones=cfg.zones,
        subnet_ids=cfg.network.subnet_ids,
        vpc_cidr=cfg.network.vpc_cidr,
        endpoint_private_access=cfg.endpoint.private_access,
        endpoint_public_access=cfg.endpoint.public_access,
        public_access_cidrs=cfg.endpoint.public_access_cidrs,
        system_instance_type=cfg.system_pool.instance_type,
        system_min_nodes=cfg.system_pool.min_nodes,
        system_max_nodes=cfg.system_pool.max_nodes,
        gpu_pools=pool_requests(cfg),
        tags=dict(cfg.tags),
        sandbox_gvisor_release=GVISOR_RELEASE if cfg.addons.sandbox.enabled else None,
        storage=storage_args(cfg),
    )


def check(cfg: PlatformConfig) -> None:
    with refused(KEYS):
        check_region(cfg.region or "")
    rules.minor_offered(cfg, NOT_OFFERED.get("aws", {}))
    rules.zones(cfg, ZONE_SUFFIX, f"{cfg.region}a")
    rules.reservations(cfg, RESERVATION, "cr-0123456789abcdef0", "an AWS")
    rules.max_nodes(cfg, "AWS", MAX_NODES, "per managed node group (EKS quota)")
    if not cfg.network.subnet_ids:
        net = rules.cidr("aicp:network.vpcCidr", cfg.network.vpc_cidr, "10.0.0.0/16")
        # VPCs are /16 to /28 (https://docs.aws.amazon.com/vpc/latest/userguide/
        # vpc-cidr-blocks.html); aicp's public subnets are 1/64 of the VPC
        # (components/aws.py split_cidr) and subnets are at least /28, so /22 is the least.
        if not 16 <= net.prefixlen <= 22:
            raise ConfigError(
                f"aicp:network.vpcCidr: {cfg.network.vpc_cidr!r} must be /16 to /22 on aws "
                "(VPCs are at most /16; aicp's smallest subnet, 1/64 of it, at least /28)")
    rules.public_access_cidrs(cfg)
    # "price ... Currently it works only for GCE, GKE and Equinix Metal" (kubernetes/
    # autoscaler cluster-autoscaler/FAQ.md, "What are Expanders?").
    rules.expander(cfg, ("least-waste", "most-pods", "random", "priority"),
                   "does not work with cluster-autoscaler on AWS (price works only on GCE, "
                   "GKE and Equinix Metal)")
    # "EKS doesn't allow clusters without either private or public access enabled"
    # (https://docs.aws.amazon.com/eks/latest/eksctl/vpc-cluster-access.html).
    if not cfg.endpoint.private_access and not cfg.endpoint.public_access:
        raise ConfigError(
            "aicp:endpoint: privateAccess and publicAccess are both false; EKS needs at "
            "least one of them on")
    if len(cfg.endpoint.public_access_cidrs) > EKS_MAX_PUBLIC_CIDRS:
        raise ConfigError(
            f"aicp:endpoint.publicAccessCidrs: {len(cfg.endpoint.public_access_cidrs)} "
            f"ranges; EKS takes at most {EKS_MAX_PUBLIC_CIDRS} per cluster")
    with refused(KEYS):
        validate(args(cfg))


def secrets(raw: Mapping[str, Any]) -> Collection[str]:
    return ()  # AWS reads every key it needs from the config model


def check_secrets(cfg: PlatformConfig, secrets: Secrets) -> None:
    """None to check: ``secrets`` holds no key of AWS's."""


def load_balancers(cfg: PlatformConfig) -> bool:
    return True  # the cloud's load balancer controller runs with the cluster


def cluster(cfg: PlatformConfig) -> ClusterOutputs:
    with refused(KEYS):
        return AwsCluster(cfg.cluster_name, args(cfg)).outputs


def preflight(cfg: PlatformConfig, report: Report) -> None:
    """Per pool: the instance type offered in every zone, its GPU count, then the EC2 GPU
    quota of each family against the pools' minNodes (an error) and maxNodes (a warning)."""
    import pulumi_aws as aws

    region = cfg.region or ""
    needed: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for i, pool in enumerate(cfg.gpu_pools):
        key = f"aicp:gpuPools[{i}]"
        o = offering("aws", pool.accelerator, pool.instance_type)
        machine = o.machine_type
        if cfg.zones:
            offers = lookup(report, f"{key} ({pool.name}) {machine} offerings",
                            lambda m=machine: aws.ec2.get_instance_type_offerings(
                                filters=[{"name": "instance-type", "values": [m]},
                                         {"name": "location", "values": list(cfg.zones)}],
                                location_type="availability-zone", region=region))
            if offers is not None:
                offered = sorted(set(offers.locations or []))
                for zone in cfg.zones:
                    if zone not in offered:
                        raise PreflightError(
                            f"{key}: {machine} (pool {pool.name}) is not offered in {zone} "
                            f"({region}); of the configured zones it is offered in "
                            f"{', '.join(offered) or 'none'}")
                report.checked.append(f"{pool.name}: {machine} offered in "
                                      f"{', '.join(cfg.zones)}")
        described = lookup(report, f"{key} ({pool.name}) {machine} description",
                           lambda m=machine: aws.ec2.get_instance_type(instance_type=m,
                                                                      region=region))
        if described is None:
            continue
        gpus = sum(g.count for g in (described.gpuses or []))
        if gpus != o.gpus:
            raise PreflightError(
                f"{key}: {machine} (pool {pool.name}) carries {gpus} GPUs in {region}, the "
                f"accelerator catalog says {o.gpus}; pick another instanceType")
        report.checked.append(f"{pool.name}: {machine} carries {gpus} GPUs")
        family = machine[0]
        if (family, pool.capacity_type) in EC2_QUOTAS:
            needed.setdefault((family, pool.capacity_type), []).append(
                (pool.min_nodes * described.default_vcpus,
                 pool.max_nodes * described.default_vcpus, pool.name))
    for (family, capacity), pools in needed.items():
        code, name = EC2_QUOTAS[(family, capacity)]
        quota = lookup(report, f"EC2 quota {name}",
                       lambda c=code: aws.servicequotas.get_service_quota(
                           service_code="ec2", quota_code=c, region=region))
        if quota is None:
            continue
        low = sum(p[0] for p in pools)
        high = sum(p[1] for p in pools)
        names = ", ".join(p[2] for p in pools)
        if quota.value < low:
            raise PreflightError(
                f"aicp:gpuPools: {names} need {low} vCPUs of EC2 quota '{name}' ({code}) at "
                f"minNodes in {region}, the account has {quota.value:g}; request more in "
                "Service Quotas or lower minNodes")
        if quota.value < high:
            report.warn(f"{names} at maxNodes need {high} vCPUs of EC2 quota '{name}' ({code}) "
                        f"in {region}, the account has {quota.value:g}: scale-up will stop "
                        "short")
        report.checked.append(f"quota {name}: {quota.value:g} vCPUs for {low}..{high}")
