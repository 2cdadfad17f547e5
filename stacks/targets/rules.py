"""Rule shapes the cloud targets share; each target passes its own cloud's facts (the zone
suffix, the node limit, the reservation id form...), with their sources, from its module.
No cloud fact lives here: a rule that holds for one target only is that target's.

A stack the cloud would reject must not plan cleanly: each rule breaks with one line naming
the config key.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from pulumi.errors import InputPropertyError

from ...components.contract import ipv4_network
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import PlatformConfig


def cidr(key: str, value: str, example: str) -> ipaddress.IPv4Network:
    """``value`` of config key ``key`` as an IPv4 network (the components' own rule)."""
    try:
        return ipv4_network(key, value, example)
    except InputPropertyError as exc:
        raise ConfigError(f"{key}: {exc.reason}") from None


def zones(cfg: PlatformConfig, suffix: re.Pattern[str] | None, like: str) -> None:
    """Each zone once; with ``suffix``, each the region code followed by it."""
    first: dict[str, int] = {}
    for i, zone in enumerate(cfg.zones):
        if zone in first:
            raise ConfigError(
                f"aicp:zones[{i}]: {zone!r} is listed twice (also aicp:zones[{first[zone]}])")
        first[zone] = i
        if suffix is not None and cfg.region and not (
                zone.startswith(cfg.region) and suffix.match(zone[len(cfg.region):])):
            raise ConfigError(
                f"aicp:zones[{i}]: {zone!r} is not a zone of region {cfg.region} (like {like})")


def max_nodes(cfg: PlatformConfig, cloud: str, limit: int, where: str) -> None:
    """No pool, the system pool included, asks for more nodes than the cloud allows."""
    pools = [("aicp:systemPool", cfg.system_pool.max_nodes)] + [
        (f"aicp:gpuPools[{i}]", p.max_nodes) for i, p in enumerate(cfg.gpu_pools)]
    for key, n in pools:
        if n > limit:
            raise ConfigError(
                f"{key}.maxNodes: {n} is more than {cloud} allows: {limit} nodes {where}")


def reservations(cfg: PlatformConfig, pattern: re.Pattern[str], example: str,
                 a_cloud: str) -> None:
    """Capacity reservation ids in the cloud's form."""
    for i, pool in enumerate(cfg.gpu_pools):
        reservation = pool.capacity_reservation_id
        if reservation is None:
            continue
        key = f"aicp:gpuPools[{i}].capacityReservationId"
        if not pattern.match(reservation):
            raise ConfigError(f"{key}: {reservation!r} is not {a_cloud} capacity reservation "
                              f"id (like {example})")


def public_access_cidrs(cfg: PlatformConfig) -> None:
    for i, block in enumerate(cfg.endpoint.public_access_cidrs):
        cidr(f"aicp:endpoint.publicAccessCidrs[{i}]", block, "203.0.113.0/24")


def minor_offered(cfg: PlatformConfig, not_offered: dict[str, str]) -> None:
    """The Kubernetes minor asked for is one the target's cloud offers; ``not_offered`` is
    that cloud's minor → why not (``addons/catalog.py`` NOT_OFFERED, with its source)."""
    why = not_offered.get(cfg.kubernetes_version)
    if why:
        raise ConfigError(f"aicp:kubernetesVersion: {cfg.kubernetes_version!r} on "
                          f"{cfg.target}: {why}")


def expander(cfg: PlatformConfig, offered: tuple[str, ...], where: str) -> None:
    """The autoscaler's expander is one the target's autoscaler runs, and one aicp can set up.

    ``priority`` reads its priorities from the ConfigMap ``cluster-autoscaler-priority-
    expander`` that must exist before the autoscaler starts (kubernetes/autoscaler
    cluster-autoscaler/expander/priority/readme.md); aicp has no key for that list, so the
    expander would find none.
    """
    chosen = cfg.addons.autoscaler.expander
    key = "aicp:addons.autoscaler.expander"
    if chosen == "priority":
        raise ConfigError(
            f"{key}: 'priority' needs a priority list (the ConfigMap "
            "cluster-autoscaler-priority-expander) that aicp does not write; use one of "
            f"{', '.join(e for e in offered if e != 'priority')}")
    if chosen not in offered:
        raise ConfigError(f"{key}: {chosen!r} {where}; use one of "
                          f"{', '.join(e for e in offered if e != 'priority')}")
