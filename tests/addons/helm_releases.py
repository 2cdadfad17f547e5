"""What addon plans send to Helm and to the API server: releases against the catalog, and
every declared object against the strict schemas and pinned CRDs."""

from __future__ import annotations

from aicp import offline
from aicp.addons.catalog import CHARTS, Chart
from tests.addons.kube_objects import kubernetes_objects, schema_errors

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"


def release_of(plan: offline.Plan, chart: Chart) -> offline.Resource:
    """The one release of a catalog chart in the plan."""
    found = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart.ref]
    assert len(found) == 1, f"expected one release of {chart.ref}, found {len(found)}"
    return found[0]


def unpinned_releases(plan: offline.Plan) -> list[str]:
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


def invalid_objects(plan: offline.Plan) -> dict[str, list[str]]:
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


def declared_objects(plan: offline.Plan) -> list[offline.Resource]:
    return [r for r in kubernetes_objects(plan) if not r.type.startswith("kubernetes:yaml/")]
