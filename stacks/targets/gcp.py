"""GCP: GKE through ``components/gcp.py``. What the stack knows about GCP, in one place."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ...addons.catalog import GKE_CHANNELS, IMAGES
from ...components.accelerators import offering
from ...components.contract import ClusterOutputs
from ...components.gcp import GkeCluster, GkeClusterArgs, check_region, validate
from ..errors import ConfigError
from ..preflight import PreflightError, Report, lookup
from . import rules
from .base import POOL_KEYS, STORAGE_KEYS, Secrets, pool_requests, refused, storage_args

if TYPE_CHECKING:
    from ..config import Gcp, PlatformConfig

# Zones are <region>-<letter> (components/gcp.py REGION), e.g. us-central1-a
# (https://cloud.google.com/compute/docs/regions-zones).
ZONE_SUFFIX = re.compile(r"^-[a-z]$")
# "Nodes per node pool zone", 1,000 (https://cloud.google.com/kubernetes-engine/quotas);
# aicp sets total_max_node_count, so the bound is 1,000 per zone of the pool.
MAX_NODES_PER_ZONE = 1000
# A GCP region has at most four zones (https://cloud.google.com/compute/docs/regions-zones):
# a regional pool without aicp:zones spreads over those.
MAX_ZONES = 4
# A reservation name (RFC 1035 label) or projects/<project>/reservations/<name> for a shared
# one (https://cloud.google.com/compute/docs/instances/reservations-consume).
RESERVATION = re.compile(r"^(projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/reservations/)?"
                         r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")

# GkeClusterArgs property → the config key (the args are built in ``args`` below).
KEYS: Mapping[str, str] = {
    **POOL_KEYS,
    **STORAGE_KEYS,
    "project": "aicp:gcp.project",
    "region": "aicp:region",
    "vpc_cidr": "aicp:network.vpcCidr",
    "labels[*]": "aicp:tags.{}",
    "system_min_nodes": "aicp:systemPool.minNodes",
    "system_machine_type": "aicp:systemPool.instanceType",
    "zones": "aicp:zones",
}

# The stack's provider settings that decide where resources go → the aicp path saying the
# same (base.honour): pulumi-gcp's ``project`` and ``region``
# (https://www.pulumi.com/registry/packages/gcp/installation-configuration/).
PROVIDER_KEYS: Mapping[str, str] = {"gcp:project": "gcp.project", "gcp:region": "region"}

# What GCP never reads (base.unread).
UNREAD: Mapping[str, str] = {
    "azure": "the Azure settings are read on target azure",
    "onprem": "the on-prem settings are read on target onprem",
    # GKE's own autoscaler scales the pools (components/gcp.py); its profile is GKE's.
    "addons.autoscaler": "GKE's own cluster autoscaler scales the node pools; aicp installs "
                         "no cluster-autoscaler there",
}


def section(cfg: PlatformConfig) -> Gcp:
    if cfg.gcp is None:
        raise ConfigError("aicp:gcp.project: required for target gcp (the GCP project id)")
    return cfg.gcp


def args(cfg: PlatformConfig) -> GkeClusterArgs:
    gke = section(cfg)
    return GkeClusterArgs(
        cluster_name=cfg.cluster_name,
        kubernetes_version=cfg.kubernetes_version,
        project=gke.project,
        region=cfg.region or "",
        zones=cfg.zones,
        release_channel=gke.release_channel,
        master_ipv4_cidr_block=gke.master_ipv4_cidr_block,
        subnetwork=cfg.network.subnet_ids[0] if cfg.network.subnet_ids else None,
        vpc_cidr=cfg.network.vpc_cidr,
        endpoint_public_access=cfg.endpoint.public_access,
        public_access_cidrs=cfg.endpoint.public_access_cidrs,
        system_machine_type=cfg.system_pool.instance_type,
        system_min_nodes=cfg.system_pool.min_nodes,
        system_max_nodes=cfg.system_pool.max_nodes,
        gpu_pools=pool_requests(cfg),
        labels=dict(cfg.tags),
        storage=storage_args(cfg),
        driver_installer_pause_image=IMAGES["pause"],
        sandbox=cfg.addons.sandbox.enabled,
    )


def check(cfg: PlatformConfig) -> None:
    with refused(KEYS):
        check_region(cfg.region or "")
    gke = section(cfg)
    channel_offers(cfg, gke)
    rules.zones(cfg, ZONE_SUFFIX, f"{cfg.region}-a")
    rules.reservations(cfg, RESERVATION, "my-reservation", "a GCP")
    zones = len(cfg.zones) or MAX_ZONES
    rules.max_nodes(cfg, "GCP", MAX_NODES_PER_ZONE * zones,
                    f"per node pool in {zones} zone(s) (1000 per zone)")
    if not cfg.network.subnet_ids:
        rules.cidr("aicp:network.vpcCidr", cfg.network.vpc_cidr, "10.0.0.0/16")
    rules.public_access_cidrs(cfg)
    # The control plane range of a private cluster (gcloud --master-ipv4-cidr) is a /28:
    # "Creating a private cluster", its rules around IP address ranges
    # (https://cloud.google.com/kubernetes-engine/docs/how-to/legacy/network-isolation).
    block = gke.master_ipv4_cidr_block
    net = rules.cidr("aicp:gcp.masterIpv4CidrBlock", block, "172.16.0.0/28")
    if net.prefixlen != 28:
        raise ConfigError(
            f"aicp:gcp.masterIpv4CidrBlock: {block!r} is a /{net.prefixlen}; GKE's control "
            "plane range must be a /28 (like 172.16.0.0/28)")
    with refused(KEYS):
        validate(args(cfg))


def channel_offers(cfg: PlatformConfig, gke: Gcp) -> None:
    """The release channel offers the minor asked for (catalog GKE_CHANNELS, with its
    source): ``min_master_version`` on a channel without that minor is refused by GKE."""
    channels = GKE_CHANNELS.get(cfg.kubernetes_version)
    if channels and gke.release_channel not in channels:
        raise ConfigError(
            f"aicp:gcp.releaseChannel: {gke.release_channel} does not offer Kubernetes "
            f"{cfg.kubernetes_version} yet; set it to {' or '.join(channels)} (or use an "
            "older aicp:kubernetesVersion)")


def secrets(raw: Mapping[str, Any]) -> Collection[str]:
    return ()  # GCP reads every key it needs from the config model


def check_secrets(cfg: PlatformConfig, secrets: Secrets) -> None:
    """None to check: ``secrets`` holds no key of GCP's."""


def load_balancers(cfg: PlatformConfig) -> bool:
    return True  # the cloud's load balancer controller runs with the cluster


def cluster(cfg: PlatformConfig) -> ClusterOutputs:
    with refused(KEYS):
        return GkeCluster(cfg.cluster_name, args(cfg)).outputs


def preflight(cfg: PlatformConfig, report: Report) -> None:
    """Per pool and zone: the machine type offered there, with the catalog's GPU count."""
    import pulumi_gcp as gcp

    project = cfg.gcp.project if cfg.gcp else None
    if not cfg.zones:
        report.warn("no aicp:zones given: GPU machine types are not checked per zone (GKE "
                    "picks the region's default zones)")
        return
    for i, pool in enumerate(cfg.gpu_pools):
        key = f"aicp:gpuPools[{i}]"
        o = offering("gcp", pool.accelerator, pool.instance_type)
        offered: list[str] = []
        unknown: list[str] = []
        for zone in cfg.zones:
            found = lookup(report, f"{key} ({pool.name}) {o.machine_type} in {zone}",
                           lambda z=zone, m=o.machine_type: gcp.compute.get_machine_types(
                               zone=z, project=project, filter=f"name = {m}"))
            if found is None:
                unknown.append(zone)
                continue
            types = [t for t in found.machine_types or [] if t.name == o.machine_type]
            if not types:
                continue
            offered.append(zone)
            gpus = sum(a.guest_accelerator_count for a in types[0].accelerators or [])
            if gpus != o.gpus:
                raise PreflightError(
                    f"{key}: {o.machine_type} (pool {pool.name}) carries {gpus} GPUs in "
                    f"{zone}, the accelerator catalog says {o.gpus}")
        missing = [z for z in cfg.zones if z not in offered and z not in unknown]
        if missing:
            raise PreflightError(
                f"{key}: {o.machine_type} (pool {pool.name}) is not offered in "
                f"{', '.join(missing)} ({cfg.region}); of the configured zones it is offered "
                f"in {', '.join(offered) or 'none'}")
        if offered:
            report.checked.append(f"{pool.name}: {o.machine_type} offered in "
                                  f"{', '.join(offered)}")
