"""Config → one target component. Each target is imported only when chosen, so a plan for
AWS never loads the GCP or Azure SDKs."""

from __future__ import annotations

from aicp.components.contract import ClusterOutputs, GpuPoolRequest
from aicp.stacks.config import PlatformConfig


def pool_requests(cfg: PlatformConfig) -> tuple[GpuPoolRequest, ...]:
    return tuple(
        GpuPoolRequest(
            name=p.name, accelerator=p.accelerator, min_nodes=p.min_nodes,
            max_nodes=p.max_nodes, instance_type=p.instance_type,
            capacity_type=p.capacity_type, capacity_reservation_id=p.capacity_reservation_id,
            allocator=p.allocator, gpus_per_node=p.gpus_per_node)
        for p in cfg.gpu_pools)


def _aws(cfg: PlatformConfig) -> ClusterOutputs:
    from aicp.components.aws import AwsCluster, AwsClusterArgs

    args = AwsClusterArgs(
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
    )
    return AwsCluster(cfg.cluster_name, args).outputs


BUILDERS = {"aws": _aws}


def build_cluster(cfg: PlatformConfig) -> ClusterOutputs:
    try:
        builder = BUILDERS[cfg.target]
    except KeyError:
        from aicp.stacks.config import ConfigError

        raise ConfigError(
            f"aicp:target: {cfg.target!r} is not built yet; available: "
            f"{', '.join(BUILDERS)}") from None
    return builder(cfg)
