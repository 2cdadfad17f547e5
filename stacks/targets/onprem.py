"""On-prem: an existing cluster or k3s over SSH, through ``components/onprem.py``. What the
stack knows about on-prem, in one place."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ...addons.catalog import (
    GVISOR_RELEASE,
    K3S_INSTALLER_SHA256,
    K3S_INSTALLER_URL,
    K3S_VERSIONS,
)
from ...components.contract import ClusterOutputs
from ...components.onprem import (
    DEFAULT_SSH_KEY_KEY,
    KUBECONFIG_SECRET_KEY,
    OnPremCluster,
    OnPremClusterArgs,
    VirtualizationLayer,
    validate,
)
from ...components.onprem_k3s import K3sHost, K3sRelease
from ..errors import ConfigError
from ..kubeconfig import check_kubeconfig, read_kubeconfig
from ..preflight import Report
from .base import POOL_KEYS, STORAGE_KEYS, Secrets, pool_requests, refused, storage_args

if TYPE_CHECKING:
    from ..config import OnPrem, PlatformConfig

# OnPremClusterArgs property → the config key (the args are built in ``args`` below).
KEYS: Mapping[str, str] = {
    **POOL_KEYS,
    **STORAGE_KEYS,
    "kubernetes_version": "aicp:kubernetesVersion",
    "gpu_driver": "aicp:addons.gpuOperator.driver",
    "kubeconfig_path": "aicp:onprem.kubeconfig",
    "gpu_nodes[*]": "aicp:onprem.gpuNodes.{}",
    "servers": "aicp:onprem.k3s.servers",
    "agents": "aicp:onprem.k3s.agents",
    **{f"{kind}[*].{field}": f"aicp:onprem.k3s.{kind}[{{}}].{field}"
       for kind in ("servers", "agents") for field in ("host", "user", "pool")},
    "sandbox_nodes": "aicp:onprem.sandbox.nodes",
    "sandbox_nodes[*]": "aicp:onprem.sandbox.nodes[{}]",
    "virtualization.pools": "aicp:onprem.virtualization.pools",
    "virtualization.pools[*]": "aicp:onprem.virtualization.pools[{}]",
    "virtualization.vgpu_manager_image": "aicp:onprem.virtualization.vgpuManagerImage",
}

# On-prem decides no place through a provider: its nodes are the user's machines.
PROVIDER_KEYS: Mapping[str, str] = {}

# What on-prem never reads (base.unread): the cloud keys, as its nodes are machines you
# racked (components/onprem.py) and no node autoscaler runs (``autoscaler="none"``).
_MACHINES = "on-prem nodes are the machines you racked"
UNREAD: Mapping[str, str] = {
    "region": _MACHINES,
    "zones": _MACHINES,
    "network": "aicp creates no network on-prem",
    "endpoint": "the API server is the cluster's own",
    "systemPool": _MACHINES,
    "tags": "on-prem has no cloud resources to tag",
    "gpuPools[*].capacityType": "spot and on-demand are cloud capacity; " + _MACHINES,
    "addons.autoscaler": "no node autoscaler runs on-prem",
    "gcp": "the GCP settings are read on target gcp",
    "azure": "the Azure settings are read on target azure",
}


# The secrets the component reads (``pulumi config set --secret``), by name without the
# namespace: the kubeconfig of an existing cluster, and the SSH key k3s hosts are reached
# with unless ``aicp:onprem.k3s.sshPrivateKeyKey`` names another key.
KUBECONFIG_SECRET = KUBECONFIG_SECRET_KEY.split(":", 1)[1]
SSH_KEY_SECRET = DEFAULT_SSH_KEY_KEY.split(":", 1)[1]
# A Pulumi config key is namespace:name
# (https://www.pulumi.com/docs/iac/concepts/config/#configuration-keys).
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")


def _ssh_key_key(raw: Mapping[str, Any]) -> str:
    """The full config key that holds the SSH key, as the stack names it (or the default)."""
    onprem = raw.get("onprem")
    k3s = onprem.get("k3s") if isinstance(onprem, Mapping) else None
    name = k3s.get("sshPrivateKeyKey") if isinstance(k3s, Mapping) else None
    return name if isinstance(name, str) else DEFAULT_SSH_KEY_KEY


def secrets(raw: Mapping[str, Any]) -> Collection[str]:
    names = {KUBECONFIG_SECRET, SSH_KEY_SECRET}
    ssh = _ssh_key_key(raw)
    if ssh.startswith("aicp:"):
        names.add(ssh.split(":", 1)[1])
    return names


def check_secrets(cfg: PlatformConfig, secrets: Secrets) -> None:
    on = section(cfg)
    if on.mode == "existing":
        if on.kubeconfig is not None and KUBECONFIG_SECRET in secrets.values:
            raise ConfigError(
                "aicp:onprem.kubeconfig: give a kubeconfig file or the secret "
                f"{KUBECONFIG_SECRET_KEY}, not both")
        if on.kubeconfig is None:
            if KUBECONFIG_SECRET not in secrets.values:
                raise ConfigError(
                    f"{KUBECONFIG_SECRET_KEY}: required when aicp:onprem.kubeconfig is not "
                    f"given; set it with: pulumi config set --secret {KUBECONFIG_SECRET_KEY} "
                    "\"$(cat kubeconfig)\", or give aicp:onprem.kubeconfig: <path>")
            check_kubeconfig(secrets.values[KUBECONFIG_SECRET], on.context,
                             KUBECONFIG_SECRET_KEY)
        return
    assert on.k3s is not None  # section() holds it
    ssh = on.k3s.ssh_private_key_key
    if not _CONFIG_KEY.match(ssh):
        raise ConfigError(f"aicp:onprem.k3s.sshPrivateKeyKey: {ssh!r} is not a config key "
                          "(namespace:name, like aicp:sshPrivateKey)")
    present = ssh.split(":", 1)[1] in secrets.values if ssh.startswith("aicp:") \
        else ssh in secrets.other_keys
    if not present:
        raise ConfigError(
            f"{ssh}: required for aicp:onprem.mode k3s (the SSH private key of the hosts); "
            f"set it with: pulumi config set --secret {ssh} < ~/.ssh/id_ed25519")


def section(cfg: PlatformConfig) -> OnPrem:
    on = cfg.onprem
    if on is None:
        raise ConfigError("aicp:onprem: required for target onprem (mode: existing or k3s)")
    if on.mode == "k3s" and on.k3s is None:
        raise ConfigError("aicp:onprem.k3s: required when aicp:onprem.mode is k3s")
    return on


def args(cfg: PlatformConfig) -> OnPremClusterArgs:
    on = section(cfg)
    k3s = on.k3s
    version = K3S_VERSIONS.get(cfg.kubernetes_version)
    return OnPremClusterArgs(
        cluster_name=cfg.cluster_name,
        kubernetes_version=cfg.kubernetes_version,
        gpu_pools=pool_requests(cfg),
        mode=on.mode,
        kubeconfig_path=on.kubeconfig,
        context=on.context,
        gpu_nodes=dict(on.gpu_nodes),
        servers=tuple(K3sHost(h.host, h.user, h.pool) for h in k3s.servers) if k3s else (),
        agents=tuple(K3sHost(h.host, h.user, h.pool) for h in k3s.agents) if k3s else (),
        ssh_private_key_key=k3s.ssh_private_key_key if k3s else DEFAULT_SSH_KEY_KEY,
        k3s=K3sRelease(version, K3S_INSTALLER_URL, K3S_INSTALLER_SHA256) if version else None,
        gpu_driver=cfg.addons.gpu_operator.driver or "operator",
        sandbox_gvisor_release=GVISOR_RELEASE if cfg.addons.sandbox.enabled else None,
        storage=storage_args(cfg),
        rdma=on.rdma,
        virtualization=VirtualizationLayer(
            on.virtualization.layer, tuple(on.virtualization.pools),
            on.virtualization.workload, on.virtualization.vgpu_manager_image)
        if on.virtualization else None,
        sandbox_nodes=tuple(on.sandbox.nodes) if on.sandbox else (),
        sandbox_runtime=on.sandbox.runtime if on.sandbox else "gvisor",
    )


def check(cfg: PlatformConfig) -> None:
    on = section(cfg)
    for i, pool in enumerate(cfg.gpu_pools):
        if pool.capacity_reservation_id is not None:
            raise ConfigError(
                f"aicp:gpuPools[{i}].capacityReservationId: onprem has no capacity "
                "reservations (its nodes are your own machines); drop the key")
    if on.mode == "existing" and on.kubeconfig is not None:
        # A file that is there must be a kubeconfig; one that is not is the component's to
        # report (``aicp plan`` stands one in first).
        read_kubeconfig(on.kubeconfig, on.context)
    with refused(KEYS):
        validate(args(cfg))


def load_balancers(cfg: PlatformConfig) -> bool:
    """k3s brings ServiceLB (klipper-lb, https://docs.k3s.io/networking/networking-services);
    an existing cluster often has no load balancer controller at all."""
    return section(cfg).mode == "k3s"


def cluster(cfg: PlatformConfig) -> ClusterOutputs:
    with refused(KEYS):
        return OnPremCluster(cfg.cluster_name, args(cfg)).outputs


def preflight(cfg: PlatformConfig, report: Report) -> None:
    """Nothing to ask: the nodes are machines in a rack, checked as the cluster is built."""
