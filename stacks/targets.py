"""Config → one target component. Each target is imported only when chosen, so a plan for
AWS never loads the GCP or Azure SDKs."""

from __future__ import annotations

import re

from ..components.contract import ClusterOutputs, GpuPoolRequest
from .config import ConfigError, PlatformConfig
from .kubeconfig import read_kubeconfig


def pool_requests(cfg: PlatformConfig) -> tuple[GpuPoolRequest, ...]:
    return tuple(
        GpuPoolRequest(
            name=p.name, accelerator=p.accelerator, min_nodes=p.min_nodes,
            max_nodes=p.max_nodes, instance_type=p.instance_type,
            capacity_type=p.capacity_type, capacity_reservation_id=p.capacity_reservation_id,
            allocator=p.allocator, gpus_per_node=p.gpus_per_node)
        for p in cfg.gpu_pools)


def _aws(cfg: PlatformConfig) -> ClusterOutputs:
    from ..components.aws import AwsCluster, AwsClusterArgs

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


def _azure(cfg: PlatformConfig) -> ClusterOutputs:
    from ..components.azure import AksCluster, AksClusterArgs

    public = cfg.endpoint.public_access
    args = AksClusterArgs(
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
    )
    return AksCluster(cfg.cluster_name, args).outputs


def _onprem(cfg: PlatformConfig) -> ClusterOutputs:
    from ..addons.catalog import K3S_INSTALLER_SHA256, K3S_INSTALLER_URL, K3S_VERSIONS
    from ..components.onprem import OnPremCluster, OnPremClusterArgs, check
    from ..components.onprem_k3s import K3sHost, K3sRelease

    on = cfg.onprem
    if on is None:
        raise ConfigError("aicp:onprem: required for target onprem (mode: existing or k3s)")
    if on.mode == "k3s" and on.k3s is None:
        raise ConfigError("aicp:onprem.k3s: required when aicp:onprem.mode is k3s")
    if on.mode == "existing" and on.kubeconfig is not None:
        # A file that is there must be a kubeconfig; one that is not is the component's to
        # report (``aicp plan`` stands one in first).
        read_kubeconfig(on.kubeconfig, on.context)
    k3s = on.k3s
    version = K3S_VERSIONS.get(cfg.kubernetes_version)
    args = OnPremClusterArgs(
        cluster_name=cfg.cluster_name,
        kubernetes_version=cfg.kubernetes_version,
        gpu_pools=pool_requests(cfg),
        mode=on.mode,
        kubeconfig_path=on.kubeconfig,
        context=on.context,
        gpu_nodes=dict(on.gpu_nodes),
        servers=tuple(K3sHost(h.host, h.user, h.pool) for h in k3s.servers) if k3s else (),
        agents=tuple(K3sHost(h.host, h.user, h.pool) for h in k3s.agents) if k3s else (),
        ssh_private_key_key=k3s.ssh_private_key_key if k3s else "aicp:sshPrivateKey",
        k3s=K3sRelease(version, K3S_INSTALLER_URL, K3S_INSTALLER_SHA256) if version else None,
        gpu_driver=cfg.addons.gpu_operator.driver or "operator",
    )
    try:
        check(args)
        return OnPremCluster(cfg.cluster_name, args).outputs
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _gcp(cfg: PlatformConfig) -> ClusterOutputs:
    from ..addons.catalog import IMAGES
    from ..components.gcp import GkeCluster, GkeClusterArgs

    if cfg.gcp is None:
        raise ConfigError("aicp:gcp.project: required for target gcp")
    args = GkeClusterArgs(
        cluster_name=cfg.cluster_name,
        kubernetes_version=cfg.kubernetes_version,
        project=cfg.gcp.project,
        region=cfg.region or "",
        zones=cfg.zones,
        release_channel=cfg.gcp.release_channel,
        master_ipv4_cidr_block=cfg.gcp.master_ipv4_cidr_block,
        subnetwork=cfg.network.subnet_ids[0] if cfg.network.subnet_ids else None,
        vpc_cidr=cfg.network.vpc_cidr,
        endpoint_public_access=cfg.endpoint.public_access,
        public_access_cidrs=cfg.endpoint.public_access_cidrs,
        system_machine_type=cfg.system_pool.instance_type,
        system_min_nodes=cfg.system_pool.min_nodes,
        system_max_nodes=cfg.system_pool.max_nodes,
        gpu_pools=pool_requests(cfg),
        labels=dict(cfg.tags),
        driver_installer_pause_image=IMAGES["pause"],
    )
    return GkeCluster(cfg.cluster_name, args).outputs


BUILDERS = {"aws": _aws, "azure": _azure, "gcp": _gcp, "onprem": _onprem}


def build_cluster(cfg: PlatformConfig) -> ClusterOutputs:
    try:
        builder = BUILDERS[cfg.target]
    except KeyError:
        raise ConfigError(
            f"aicp:target: {cfg.target!r} is not built yet; available: "
            f"{', '.join(BUILDERS)}") from None
    try:
        return builder(cfg)
    except ValueError as exc:
        # The config checks catch what a user can get wrong; a target's own argument check
        # that still fires is reported the same way, as one line naming the config key.
        raise ConfigError(config_message(str(exc), cfg)) from None


# Component argument → the config key a person sets (stacks/targets.py builds the args).
ARG_KEYS = {
    "region": "aicp:region", "location": "aicp:region", "zones": "aicp:zones",
    "subnet_ids": "aicp:network.subnetIds", "subnet_id": "aicp:network.subnetIds",
    "subnetwork": "aicp:network.subnetIds", "vpc_cidr": "aicp:network.vpcCidr",
    "vnet_cidr": "aicp:network.vpcCidr", "pod_cidr": "aicp:network.vpcCidr",
    "service_cidr": "aicp:network.vpcCidr", "project": "aicp:gcp.project",
    "master_ipv4_cidr_block": "aicp:gcp.masterIpv4CidrBlock",
    "system_min_nodes": "aicp:systemPool.minNodes",
    "system_max_nodes": "aicp:systemPool.maxNodes", "gpu_pools": "aicp:gpuPools",
    "labels": "aicp:tags", "tags": "aicp:tags",
    "autoscaler_expander": "aicp:addons.autoscaler.expander",
    "authorized_ip_ranges": "aicp:endpoint.publicAccessCidrs",
    "public_access_cidrs": "aicp:endpoint.publicAccessCidrs",
    "min_nodes": "minNodes", "max_nodes": "maxNodes",
}
_ARG_ERROR = re.compile(r"^\w+Args\.(\w+): (.*)$", re.DOTALL)
_POOL_ERROR = re.compile(r"^gpu pool '?([^':]+)'?: (.*)$", re.DOTALL)
_SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")


def config_message(message: str, cfg: PlatformConfig) -> str:
    """A component's ValueError as one line that names config keys, never its classes."""
    def words(text: str) -> str:
        text = _SNAKE.sub(lambda m: ARG_KEYS.get(m.group(0), m.group(0)), text)
        return " ".join(text.split())

    if message.startswith("aicp:"):
        return words(message)
    match = _ARG_ERROR.match(message)
    if match:
        arg, body = match.groups()
        return f"{ARG_KEYS.get(arg, 'aicp')}: {words(body)}"
    match = _POOL_ERROR.match(message)
    if match:
        name, body = match.groups()
        index = next((i for i, p in enumerate(cfg.gpu_pools) if p.name == name), None)
        key = f"aicp:gpuPools[{index}]" if index is not None else "aicp:gpuPools"
        return f"{key}: {words(body)}"
    return f"aicp: {words(message)}"
