"""On-prem: an existing cluster or k3s over SSH, through ``components/onprem.py``. What the
stack knows about on-prem, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...addons.catalog import K3S_INSTALLER_SHA256, K3S_INSTALLER_URL, K3S_VERSIONS
from ...components.contract import ClusterOutputs
from ...components.onprem import DEFAULT_SSH_KEY_KEY, OnPremCluster, OnPremClusterArgs, validate
from ...components.onprem_k3s import K3sHost, K3sRelease
from ..errors import ConfigError
from ..kubeconfig import read_kubeconfig
from ..preflight import Report
from . import rules
from .base import POOL_KEYS, pool_requests, refused

if TYPE_CHECKING:
    from ..config import OnPrem, PlatformConfig

# OnPremClusterArgs property → the config key (the args are built in ``args`` below).
KEYS: Mapping[str, str] = {
    **POOL_KEYS,
    "kubernetes_version": "aicp:kubernetesVersion",
    "gpu_driver": "aicp:addons.gpuOperator.driver",
    "kubeconfig_path": "aicp:onprem.kubeconfig",
    "gpu_nodes[*]": "aicp:onprem.gpuNodes.{}",
    "servers": "aicp:onprem.k3s.servers",
    "agents": "aicp:onprem.k3s.agents",
    **{f"{kind}[*].{field}": f"aicp:onprem.k3s.{kind}[{{}}].{field}"
       for kind in ("servers", "agents") for field in ("host", "user", "pool")},
}


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
    )


def check(cfg: PlatformConfig) -> None:
    on = section(cfg)
    rules.reservations(cfg, None, "", "")
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
