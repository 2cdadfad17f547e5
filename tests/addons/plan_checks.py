"""What addon tests check on every plan: releases against the catalog, and every declared
Kubernetes object as the API server would see it (strict schemas, pinned CRDs)."""

from __future__ import annotations

import functools
from typing import Any

from aicp.addons.catalog import CHARTS, Chart
from aicp.cli.offline import REDACTED, Plan, Resource
from tests.schemas import Validator, shared_crds
from tests.shared import CRDS, require_shared

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"


def release_of(plan: Plan, chart: Chart) -> Resource:
    """The one release of a catalog chart in the plan."""
    found = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart.ref]
    assert len(found) == 1, f"expected one release of {chart.ref}, found {len(found)}"
    return found[0]


def unpinned_releases(plan: Plan) -> list[str]:
    """Releases whose chart, version or repository differ from the catalog's."""
    by_ref = {c.ref: c for c in CHARTS.values()}
    problems = []
    for r in plan.of_type(RELEASE):
        chart = by_ref.get(r.inputs.get("chart"))
        repo = (r.inputs.get("repositoryOpts") or {}).get("repo")
        if chart is None:
            problems.append(f"{r.name}: chart {r.inputs.get('chart')!r} is not in the catalog")
        elif r.inputs.get("version") != chart.version:
            problems.append(f"{r.name}: version {r.inputs.get('version')} != {chart.version}")
        elif repo != (None if chart.oci else chart.repo):
            problems.append(f"{r.name}: repository {repo!r} != {chart.repo!r}")
    return problems


def invalid_objects(plan: Plan) -> dict[str, list[str]]:
    """Declared objects a 1.35 cluster with the pinned CRDs would reject, with why.

    ``yaml.v2`` manifests are remote components whose inputs are a URL, not an object.
    """
    problems = {}
    for r in kubernetes_objects(plan):
        if r.type.startswith("kubernetes:yaml/"):
            continue
        errors = schema_errors(r)
        if errors:
            problems[f"{r.type} {r.name}"] = errors
    return problems


def declared_objects(plan: Plan) -> list[Resource]:
    return [r for r in kubernetes_objects(plan) if not r.type.startswith("kubernetes:yaml/")]

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

