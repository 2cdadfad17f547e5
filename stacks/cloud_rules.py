"""What each cloud refuses at create time, checked before anything is planned.

A stack the cloud would reject must not plan cleanly: each rule below is the cloud's own,
with its source next to it, and breaks with one line naming the key.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import PlatformConfig

# Region codes, never display names ("US West (Oregon)" is us-west-2):
# AWS: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
#   (codes like us-west-2, eu-central-1, us-gov-west-1); an Availability Zone is the
#   region code followed by a letter, e.g. us-east-1a
#   (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html).
# GCP: https://cloud.google.com/compute/docs/regions-zones (regions like us-central1,
#   zones are <region>-<letter>, e.g. us-central1-a).
# Azure: the location names `az account list-locations --query [].name` prints
#   (https://learn.microsoft.com/cli/azure/account#az-account-list-locations): eastus2,
#   westeurope; lowercase, no spaces.
REGION = {
    "aws": (re.compile(r"^[a-z]{2,4}(-[a-z]+)?-[a-z]+-\d+$"), "us-west-2"),
    "gcp": (re.compile(r"^[a-z]+-[a-z]+\d+$"), "us-central1"),
    "azure": (re.compile(r"^[a-z][a-z0-9]*$"), "eastus2"),
}
ZONE_SUFFIX = {"aws": re.compile(r"^[a-z]$"), "gcp": re.compile(r"^-[a-z]$")}

# Most nodes one GPU pool may ask for:
# AWS: "Nodes per managed node group", default 450
#   (https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html).
# GCP: "Nodes per node pool zone", 1,000 (https://cloud.google.com/kubernetes-engine/quotas);
#   aicp sets total_max_node_count, so the bound is 1,000 per zone of the pool.
# Azure: 1,000 nodes per Virtual Machine Scale Sets node pool
#   (https://learn.microsoft.com/azure/aks/quotas-skus-regions, "Maximum nodes per node pool";
#   hashicorp/terraform-provider-azurerm#9198 raised its max_count to match).
MAX_NODES = {"aws": 450, "gcp": 1000, "azure": 1000}
# A GCP region has at most four zones (https://cloud.google.com/compute/docs/regions-zones):
# a regional pool without aicp:zones spreads over those.
GCP_MAX_ZONES = 4
# "Public endpoint access CIDR ranges per cluster": 40, not adjustable
# (https://docs.aws.amazon.com/eks/latest/userguide/service-quotas.html).
EKS_MAX_PUBLIC_CIDRS = 40

# A Kubernetes Duration is Go's time.ParseDuration format (k8s.io/apimachinery
# pkg/apis/meta/v1/duration.go); Kueue's waitForPodsReady.timeout is a *metav1.Duration
# (kubernetes-sigs/kueue apis/config/v1beta1/configuration_types.go, WaitForPodsReady).
_GO_DURATION = re.compile(r"^(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
                          r"((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))*$")

# Capacity reservation ids:
# AWS: cr- and hex digits, e.g. cr-1234567890abcdef0 (EC2 API CapacityReservation,
#   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CapacityReservation.html).
# GCP: a reservation name (RFC 1035 label) or projects/<project>/reservations/<name> for a
#   shared one (https://cloud.google.com/compute/docs/instances/reservations-consume).
# Azure: the ARM id of a capacity reservation group (case-insensitive, as ARM ids are;
#   https://learn.microsoft.com/azure/aks/use-capacity-reservation-groups).
_RESERVATION = {
    "aws": (re.compile(r"^cr-[0-9a-f]{8}([0-9a-f]{9})?$"), "cr-0123456789abcdef0"),
    "gcp": (re.compile(r"^(projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/reservations/)?"
                       r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"), "my-reservation"),
    "azure": (re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                         r"Microsoft\.Compute/capacityReservationGroups/[^/]+$", re.IGNORECASE),
              "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/"
              "capacityReservationGroups/<name>"),
}

# AKS Linux node pool names: lowercase letters and digits, 1-12 characters, a letter first
# (https://learn.microsoft.com/azure/aks/create-node-pools#limitations); aicp derives them
# from the pool name (components/azure.py agent_pool_name) and names the system pool
# "system" (components/azure.py SYSTEM_POOL_NAME).
_AKS_POOL = re.compile(r"^[a-z][a-z0-9]{0,11}$")
AKS_SYSTEM_POOL = "system"
# The pod and service ranges aicp gives AKS (components/azure.py AksClusterArgs pod_cidr,
# service_cidr); the VNet must not overlap them (Azure CNI overlay,
# https://learn.microsoft.com/azure/aks/azure-cni-overlay#ip-address-planning).
AKS_POD_CIDR = "10.244.0.0/16"
AKS_SERVICE_CIDR = "10.96.0.0/16"


CLOUD = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}
AN_CLOUD = {"aws": "an AWS", "gcp": "a GCP", "azure": "an Azure"}


def _cidr(key: str, value: str, example: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value)
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an IPv4 CIDR block (like {example})") \
            from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ConfigError(f"{key}: {value!r} is IPv6; give an IPv4 CIDR block (like {example})")
    return net


def duration(key: str, value: str) -> None:
    if not _GO_DURATION.match(value):
        raise ConfigError(f"{key}: {value!r} is not a duration; write it like 10m, 90s or 1h30m")


def check(cfg: PlatformConfig) -> None:
    """The first rule of ``cfg.target``'s cloud that ``cfg`` breaks, as a ConfigError."""
    target = cfg.target
    duration("aicp:addons.kueue.waitForPodsReadyTimeout",
             cfg.addons.kueue.wait_for_pods_ready_timeout)
    _zones(cfg)
    for i, pool in enumerate(cfg.gpu_pools):
        key = f"aicp:gpuPools[{i}]"
        if pool.capacity_reservation_id is not None:
            if target not in _RESERVATION:
                raise ConfigError(
                    f"{key}.capacityReservationId: {target} has no capacity reservations "
                    "(its nodes are your own machines); drop the key")
            pattern, example = _RESERVATION[target]
            if not pattern.match(pool.capacity_reservation_id):
                raise ConfigError(
                    f"{key}.capacityReservationId: {pool.capacity_reservation_id!r} is not "
                    f"{AN_CLOUD[target]} capacity reservation id (like {example})")
    if target == "onprem":
        return
    _nodes(cfg)
    if not cfg.network.subnet_ids:
        net = _cidr("aicp:network.vpcCidr", cfg.network.vpc_cidr, "10.0.0.0/16")
        # AWS VPCs are /16 to /28 (https://docs.aws.amazon.com/vpc/latest/userguide/
        # vpc-cidr-blocks.html); aicp's public subnets are 1/64 of the VPC
        # (components/aws.py split_cidr) and subnets are at least /28, so /22 is the least.
        if target == "aws" and not 16 <= net.prefixlen <= 22:
            raise ConfigError(
                f"aicp:network.vpcCidr: {cfg.network.vpc_cidr!r} must be /16 to /22 on aws "
                "(VPCs are at most /16; aicp's smallest subnet, 1/64 of it, at least /28)")
        # aicp carves GKE's node, service and pod ranges from it (components/gcp.py).
        if target == "gcp" and net.prefixlen > 20:
            raise ConfigError(
                f"aicp:network.vpcCidr: {cfg.network.vpc_cidr!r} is too small on gcp: give /20 "
                "or larger (nodes, services and pods are carved from it)")
        if target == "azure":
            for name, other in (("pod", AKS_POD_CIDR), ("service", AKS_SERVICE_CIDR)):
                if net.overlaps(ipaddress.ip_network(other)):
                    raise ConfigError(
                        f"aicp:network.vpcCidr: {cfg.network.vpc_cidr!r} overlaps the AKS "
                        f"{name} range {other}; pick a range outside {AKS_POD_CIDR} and "
                        f"{AKS_SERVICE_CIDR}")
    for i, cidr in enumerate(cfg.endpoint.public_access_cidrs):
        _cidr(f"aicp:endpoint.publicAccessCidrs[{i}]", cidr, "203.0.113.0/24")
    if target == "aws":
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
    if target == "gcp" and cfg.gcp is not None:
        # The control plane range of a private cluster (gcloud --master-ipv4-cidr) is a /28:
        # "Creating a private cluster", its rules around IP address ranges
        # (https://cloud.google.com/kubernetes-engine/docs/how-to/legacy/network-isolation).
        block = cfg.gcp.master_ipv4_cidr_block
        net = _cidr("aicp:gcp.masterIpv4CidrBlock", block, "172.16.0.0/28")
        if net.prefixlen != 28:
            raise ConfigError(
                f"aicp:gcp.masterIpv4CidrBlock: {block!r} is a /{net.prefixlen}; GKE's control "
                "plane range must be a /28 (like 172.16.0.0/28)")
    if target == "azure":
        _aks_pool_names(cfg)


def _zones(cfg: PlatformConfig) -> None:
    target = cfg.target
    if target in REGION and cfg.region:
        pattern, example = REGION[target]
        if not pattern.match(cfg.region):
            raise ConfigError(
                f"aicp:region: {cfg.region!r} is not {AN_CLOUD[target]} region code "
                f"(like {example})")
    first: dict[str, int] = {}
    for i, zone in enumerate(cfg.zones):
        if zone in first:
            raise ConfigError(
                f"aicp:zones[{i}]: {zone!r} is listed twice (also aicp:zones[{first[zone]}])")
        first[zone] = i
        suffix = ZONE_SUFFIX.get(target)
        if suffix is not None and cfg.region and not (
                zone.startswith(cfg.region) and suffix.match(zone[len(cfg.region):])):
            like = f"{cfg.region}a" if target == "aws" else f"{cfg.region}-a"
            raise ConfigError(
                f"aicp:zones[{i}]: {zone!r} is not a zone of region {cfg.region} (like {like})")


def _nodes(cfg: PlatformConfig) -> None:
    limit = MAX_NODES[cfg.target]
    where = "per managed node group (EKS quota)" if cfg.target == "aws" else "per node pool"
    if cfg.target == "gcp":
        zones = len(cfg.zones) or GCP_MAX_ZONES
        limit *= zones
        where = f"per node pool in {zones} zone(s) (1000 per zone)"
    pools = [("aicp:systemPool", cfg.system_pool.max_nodes)] + [
        (f"aicp:gpuPools[{i}]", p.max_nodes) for i, p in enumerate(cfg.gpu_pools)]
    for key, n in pools:
        if n > limit:
            raise ConfigError(
                f"{key}.maxNodes: {n} is more than {CLOUD[cfg.target]} allows: {limit} nodes "
                f"{where}")


def _aks_pool_names(cfg: PlatformConfig) -> None:
    taken: dict[str, int] = {}
    for i, pool in enumerate(cfg.gpu_pools):
        key = f"aicp:gpuPools[{i}].name"
        aks = re.sub(r"[^a-z0-9]", "", pool.name.lower())[:12]
        if not _AKS_POOL.match(aks):
            raise ConfigError(
                f"{key}: {pool.name!r} gives no AKS pool name (lowercase letters and digits, "
                "a letter first, at most 12)")
        if aks == AKS_SYSTEM_POOL:
            raise ConfigError(
                f"{key}: {pool.name!r} is the name of the AKS system pool; pick another name")
        if aks in taken:
            j = taken[aks]
            raise ConfigError(
                f"{key}: {pool.name!r} and aicp:gpuPools[{j}].name "
                f"{cfg.gpu_pools[j].name!r} both become AKS pool name {aks!r} (letters and "
                "digits, at most 12); rename one")
        taken[aks] = i
