"""Azure: AKS through ``components/azure.py``. What the stack knows about Azure, in one
place."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ...components.azure import (
    EXPANDERS,
    INFINIBAND_FEATURE,
    AksCluster,
    AksClusterArgs,
    check_region,
    infiniband_pools,
    validate,
)
from ...components.contract import ClusterOutputs
from ..errors import ConfigError
from ..preflight import Report
from . import rules
from .base import POOL_KEYS, STORAGE_KEYS, Secrets, pool_requests, refused, storage_args

if TYPE_CHECKING:
    from ..config import PlatformConfig

# Region codes (components/azure.py REGION) and zones "1" to "3" are the component's rules.
# 1,000 nodes per Virtual Machine Scale Sets node pool
# (https://learn.microsoft.com/azure/aks/quotas-skus-regions, "Maximum nodes per node pool";
# hashicorp/terraform-provider-azurerm#9198 raised its max_count to match).
MAX_NODES = 1000

# AksClusterArgs property → the config key (the args are built in ``args`` below). aicp
# leaves the overlay's pod and service ranges at the component's defaults: a clash there is
# one with the VNet range a person chose.
KEYS: Mapping[str, str] = {
    **POOL_KEYS,
    **STORAGE_KEYS,
    "location": "aicp:region",
    "zones[*]": "aicp:zones[{}]",
    "vnet_cidr": "aicp:network.vpcCidr",
    "pod_cidr": "aicp:network.vpcCidr",
    "service_cidr": "aicp:network.vpcCidr",
    "authorized_ip_ranges": "aicp:endpoint.publicAccessCidrs",
    "system_min_nodes": "aicp:systemPool.minNodes",
    "autoscaler_expander": "aicp:addons.autoscaler.expander",
    "tags[*]": "aicp:tags.{}",
    "resource_group": "aicp:azure.resourceGroup",
    "register_infiniband_feature": "aicp:azure.registerInfinibandFeature",
    "system_vm_size": "aicp:systemPool.instanceType",
}

# The stack's provider settings that decide where resources go → the aicp path saying the
# same (base.honour): pulumi-azure-native's ``location``
# (https://www.pulumi.com/registry/packages/azure-native/installation-configuration/).
PROVIDER_KEYS: Mapping[str, str] = {"azure-native:location": "region"}

# What Azure never reads (base.unread).
UNREAD: Mapping[str, str] = {
    "gcp": "the GCP settings are read on target gcp",
    "onprem": "the on-prem settings are read on target onprem",
}


def args(cfg: PlatformConfig) -> AksClusterArgs:
    public = cfg.endpoint.public_access
    return AksClusterArgs(
        cluster_name=cfg.cluster_name,
        kubernetes_version=cfg.kubernetes_version,
        location=cfg.region or "",
        resource_group=cfg.azure.resource_group if cfg.azure else None,
        zones=cfg.zones,
        vnet_cidr=cfg.network.vpc_cidr,
        subnet_id=cfg.network.subnet_ids[0] if cfg.network.subnet_ids else None,
        # AKS has one switch: the API server is private exactly when it is not public.
        private_cluster=not public,
        authorized_ip_ranges=cfg.endpoint.public_access_cidrs if public else (),
        system_vm_size=cfg.system_pool.instance_type,
        system_min_nodes=cfg.system_pool.min_nodes,
        system_max_nodes=cfg.system_pool.max_nodes,
        gpu_pools=pool_requests(cfg),
        # AKS's own driver install leaves the toolkit accepting NVIDIA_VISIBLE_DEVICES from
        # unprivileged pods; the operator's is hardened (components/azure.py GPU_DRIVERS).
        gpu_driver=cfg.addons.gpu_operator.driver or "operator",
        autoscaler_expander=cfg.addons.autoscaler.expander,
        tags=dict(cfg.tags),
        sandbox=cfg.addons.sandbox.enabled,
        storage=storage_args(cfg),
        register_infiniband_feature=bool(cfg.azure and cfg.azure.register_infiniband_feature),
    )


def check(cfg: PlatformConfig) -> None:
    with refused(KEYS):
        check_region(cfg.region or "")
    rules.zones(cfg, None, "")
    # Capacity reservation group ids are the component's rule (it reads their group).
    rules.max_nodes(cfg, "Azure", MAX_NODES, "per node pool")
    if len(cfg.network.subnet_ids) > 1:
        raise ConfigError("aicp:network.subnetIds: AKS takes one node subnet; list one id")
    if not cfg.network.subnet_ids:
        rules.cidr("aicp:network.vpcCidr", cfg.network.vpc_cidr, "10.0.0.0/16")
    rules.public_access_cidrs(cfg)
    # AKS's autoscaler profile offers no price expander (components/azure.py EXPANDERS).
    rules.expander(cfg, EXPANDERS, "is not offered by AKS")
    with refused(KEYS):
        validate(args(cfg))


def secrets(raw: Mapping[str, Any]) -> Collection[str]:
    return ()  # Azure reads every key it needs from the config model


def check_secrets(cfg: PlatformConfig, secrets: Secrets) -> None:
    """None to check: ``secrets`` holds no key of Azure's."""


def load_balancers(cfg: PlatformConfig) -> bool:
    return True  # the cloud's load balancer controller runs with the cluster


def cluster(cfg: PlatformConfig) -> ClusterOutputs:
    with refused(KEYS):
        return AksCluster(cfg.cluster_name, args(cfg)).outputs


def preflight(cfg: PlatformConfig, report: Report) -> None:
    """VM sizes and quota cannot be asked: pulumi-azure-native 3.29 has no read-only lookup
    of resource SKUs or compute usage. InfiniBand pools: the subscription's
    AKSInfinibandSupport feature (``infiniband_feature``)."""
    report.warn("GPU VM sizes and quota are not checked on azure (pulumi-azure-native has "
                "no read-only SKU or usage lookup); see the quota note in the example")
    infiniband_feature(cfg, report)


def infiniband_feature(cfg: PlatformConfig, report: Report) -> None:
    """Whether the subscription has AKSInfinibandSupport for the InfiniBand pools
    (components/azure.py INFINIBAND_FEATURE): asked, not registered, unless the stack opted
    in to registering it; one line where it is not Registered or cannot be asked."""
    pools = infiniband_pools(pool_requests(cfg))
    if not pools:
        return
    namespace, feature = INFINIBAND_FEATURE
    if cfg.azure and cfg.azure.register_infiniband_feature:
        report.checked.append(f"{namespace}/{feature}: registered by this stack")
        return
    from pulumi_azure_native import features
    try:
        state = features.get_subscription_feature_registration(
            provider_namespace=namespace, feature_name=feature).properties.state
    except Exception as exc:  # a denied or missing lookup: the cloud still decides
        state = f"not known ({str(exc).splitlines()[0][:240]})"
    if state == "Registered":
        report.checked.append(f"{namespace}/{feature}: Registered")
        return
    report.warn(f"GPU pools {', '.join(pools)}: {namespace}/{feature} is {state} on this "
                "subscription, so AKS may place their VMs on separate InfiniBand networks; aicp "
                "does not register subscription-wide features unless asked: run `az feature "
                f"register --namespace {namespace} --name {feature}` or set "
                "aicp:azure.registerInfinibandFeature: true")
