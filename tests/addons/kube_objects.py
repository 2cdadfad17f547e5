"""What addon tests check on every plan: declared Kubernetes objects as the API server sees them."""

from __future__ import annotations

import functools
from typing import Any

from aicp.offline import REDACTED, Plan, Resource
from tests.schemas import Validator, shared_crds
from tests.shared import CRDS, require_shared

_NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:")


def kubernetes_objects(plan: Plan) -> list[Resource]:
    """Every Kubernetes object or custom resource the plan declares (not releases, not patches)."""
    return [r for r in plan.resources
            if r.type.startswith("kubernetes:") and not r.type.startswith(_NOT_OBJECTS)
            and not r.type.endswith("Patch")]


def as_object(resource: Resource) -> dict[str, Any]:
    """The object Pulumi would send (its recorded inputs, Pulumi-only keys left out).

    A Secret's ``data``/``stringData`` map holding a secret is redacted whole; it stands in as
    a one-entry map so the rest of the object can still be checked.
    """
    obj = {k: v for k, v in resource.inputs.items() if k not in ("compat",)}
    for key in ("data", "stringData"):
        if obj.get(key) == REDACTED:
            obj[key] = {"redacted": REDACTED}
    return obj


@functools.cache
def validator(minor: str = "1.35") -> Validator:
    require_shared("crds")
    return Validator(minor, shared_crds(CRDS))


def schema_errors(resource: Resource, minor: str = "1.35") -> list[str]:
    return validator(minor).errors(as_object(resource))


def patch_errors(resource: Resource, minor: str = "1.35") -> list[str]:
    """A server-side-apply patch checked against its kind's strict schema, minus "required".

    The API server validates the merge of the patch with the live object (the chart's), so
    fields the patch omits are not errors; unknown or mistyped fields are.
    """
    return [e for e in validator(minor).errors(as_object(resource))
            if "is a required property" not in e]

