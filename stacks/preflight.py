"""Preflight: what the clouds can tell before the first resource, asked through the
providers' read-only lookups (invokes).

A GPU pool that cannot come up fails ``pulumi up`` 10-20 minutes in, after the cluster is
built; the same facts are a lookup away at the start. Checked per GPU pool:

- the machine type is offered in every configured zone (EC2 instance-type offerings per
  availability zone; GCE machine types per zone);
- the machine carries the accelerator count the catalog says (EC2 instance type ``gpus``;
  GCE machine type ``accelerators``);
- where the API exposes it, the GPU quota covers the pools' ``minNodes`` (an error) and
  their ``maxNodes`` (a warning): EC2 Service Quotas, in vCPUs per instance family.

A problem is one line naming the pool, the zone or region and what is offered. A lookup the
caller may not make (permissions) is a warning, never a failure: the check is a courtesy,
the cloud still decides. Azure is not checked: pulumi-azure-native 3.29 has no read-only
lookup of resource SKUs or compute usage. Under ``aicp plan`` the lookups are answered from
canned data (``aicp.cli.fakes``), and the plan says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi

from ..components.accelerators import offering
from .config import ConfigError, PlatformConfig

T = TypeVar("T")

# EC2 Service Quotas for On-Demand and Spot instances, counted in vCPUs per family group
# (AWS docs, "Amazon EC2 service quotas": Running On-Demand P instances L-417A185B, G and VT
# L-DB2E81BA; All P Spot Instance Requests L-7212CCBC, All G and VT L-3819A6DF).
EC2_QUOTAS = {
    ("p", "on-demand"): ("L-417A185B", "Running On-Demand P instances"),
    ("g", "on-demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("p", "spot"): ("L-7212CCBC", "All P Spot Instance Requests"),
    ("g", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
}
# Error text of a lookup the caller is not allowed to make, per cloud API.
_DENIED = ("AccessDenied", "UnauthorizedOperation", "not authorized", "403", "PERMISSION_DENIED",
           "Forbidden")


@dataclass
class Report:
    """What preflight found: the checks it made and the warnings it gave."""

    checked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        pulumi.log.warn(f"preflight: {message}")

    def export(self) -> dict[str, Any]:
        return {"checked": list(self.checked), "warnings": list(self.warnings)}


class PreflightError(ConfigError):
    """A GPU pool the cloud says cannot come up, as one line."""


def run(cfg: PlatformConfig) -> Report:
    """Check every GPU pool of ``cfg`` through read-only lookups; raise PreflightError."""
    report = Report()
    if cfg.target == "aws":
        _aws(cfg, report)
    elif cfg.target == "gcp":
        _gcp(cfg, report)
    elif cfg.target == "azure":
        report.warn("GPU VM sizes and quota are not checked on azure (pulumi-azure-native has "
                    "no read-only SKU or usage lookup); see the quota note in the example")
    return report


def _lookup(report: Report, what: str, call: Callable[[], T]) -> T | None:
    """``call()``, or None with a warning when the caller may not make that lookup."""
    try:
        return call()
    except Exception as exc:  # the SDKs raise plain Exceptions with the API's text
        text = str(exc)
        if any(marker in text for marker in _DENIED):
            report.warn(f"{what}: lookup not allowed ({text.splitlines()[0][:160]}); skipped")
            return None
        raise


# --- AWS ----------------------------------------------------------------------------------

def _aws(cfg: PlatformConfig, report: Report) -> None:
    import pulumi_aws as aws

    region = cfg.region or ""
    needed: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for i, pool in enumerate(cfg.gpu_pools):
        key = f"aicp:gpuPools[{i}]"
        o = offering("aws", pool.accelerator, pool.instance_type)
        machine = o.machine_type
        if cfg.zones:
            offers = _lookup(report, f"{key} ({pool.name}) {machine} offerings",
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
        described = _lookup(report, f"{key} ({pool.name}) {machine} description",
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
        quota = _lookup(report, f"EC2 quota {name}",
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


# --- GCP ----------------------------------------------------------------------------------

def _gcp(cfg: PlatformConfig, report: Report) -> None:
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
            found = _lookup(report, f"{key} ({pool.name}) {o.machine_type} in {zone}",
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
