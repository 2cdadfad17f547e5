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
the cloud still decides. Azure VM sizes and quota are not checked: pulumi-azure-native 3.29
has no read-only lookup of resource SKUs or compute usage (an InfiniBand pool's
AKSInfinibandSupport feature is: stacks/targets/azure.py). Under ``aicp plan`` the lookups
are answered from canned data (``aicp.cli.fakes``), and the plan says so.

Each target's lookups are its module's ``preflight`` (``stacks/targets/<target>.py``); this
module holds what they share: the report, the error, and a lookup that may be denied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi

from .errors import ConfigError

T = TypeVar("T")

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


def lookup(report: Report, what: str, call: Callable[[], T]) -> T | None:
    """``call()``, or None with a warning when the caller may not make that lookup."""
    try:
        return call()
    except Exception as exc:  # the SDKs raise plain Exceptions with the API's text
        text = str(exc)
        if any(marker in text for marker in _DENIED):
            report.warn(f"{what}: lookup not allowed ({text.splitlines()[0][:160]}); skipped")
            return None
        raise
