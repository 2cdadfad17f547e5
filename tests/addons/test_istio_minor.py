"""Istio per Kubernetes minor (issue #25): 1.30 on 1.34-1.36, 1.31 on 1.37.

Istio 1.30 is supported on Kubernetes 1.32-1.36 and 1.31 on 1.32-1.37 (istio.io
data/compatibility/supportStatus.yml; sources in aicp.addons.catalog ISTIO_FOR_MINOR), and
1.31's charts are published only to oci://ghcr.io/istio/release/charts. ``../shared`` holds
no Istio chart data at either version, so the values keys are not checked against a chart
here (see tests/addons/test_istio.py).
"""

from __future__ import annotations

import pytest

from aicp.addons.catalog import CHARTS
from aicp.cli import offline
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import RELEASE, release_of, unpinned_releases


def _plan(minor: str) -> offline.Plan:
    def program() -> None:
        from aicp.addons.gateway_api import GatewayApi
        from aicp.addons.istio import Istio, IstioArgs

        cluster = make_cluster(minor=minor)
        api = GatewayApi("gateway-api", cluster)
        Istio("istio", cluster, IstioArgs(gateway_api=(api,)))

    return offline.run(program, {})


def test_a_1_37_cluster_gets_istio_1_31_from_its_oci_registry():
    plan = _plan("1.37")
    assert unpinned_releases(plan) == []
    base, istiod = release_of(plan, CHARTS["istio-base-1.31"]), \
        release_of(plan, CHARTS["istiod-1.31"])
    for release in (base, istiod):
        assert release.inputs["version"] == "1.31.1"
        assert release.inputs["chart"].startswith("oci://ghcr.io/istio/release/charts/")
        assert "repositoryOpts" not in release.inputs or \
            not (release.inputs["repositoryOpts"] or {}).get("repo")
    # The same values as on 1.30: keys that exist in the 1.31 charts.
    assert base.inputs["values"] == {"defaultRevision": "default"}
    assert istiod.inputs["values"]["pilot"]["env"][
        "ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] == "true"
    versions = {r.inputs["version"] for r in plan.of_type(RELEASE)}
    assert versions == {"1.31.1"}


@pytest.mark.parametrize("minor", ["1.34", "1.35", "1.36"])
def test_older_minors_keep_istio_1_30(minor):
    plan = _plan(minor)
    assert release_of(plan, CHARTS["istiod"]).inputs["version"] == "1.30.1"
    assert {r.inputs["version"] for r in plan.of_type(RELEASE)} == {"1.30.1"}


def test_the_stack_reports_the_istio_it_installs():
    from tests.stacks.test_k137 import plan

    run, doc = plan("gcp")
    assert doc["checklistVersion"] == "1.37"
    istio = [r for r in run.resources if r.type == RELEASE
             and r.inputs["chart"].endswith("/istiod")]
    assert [r.inputs["version"] for r in istio] == ["1.31.1"]
    assert run.outputs["addons"]["istio"] == "1.31.1"


@pytest.mark.parametrize("minor", ["1.35", "1.37"])
def test_istio_comes_from_where_it_stays_after_the_gcp_retirement(minor):
    """Istio removes its charts from istio-release.storage.googleapis.com and its images
    from gcr.io/istio-release and registry.istio.io/release in December 2026
    (istio/istio#61467): charts come from blob.istio.io or ghcr.io, and istiod's and the
    proxies' images from Docker Hub, through the chart's ``global.hub``."""
    plan = _plan(minor)
    for release in plan.of_type(RELEASE):
        where = (release.inputs.get("repositoryOpts") or {}).get("repo") \
            or release.inputs["chart"]
        assert "googleapis.com" not in where and "gcr.io" not in where, where
        assert where.startswith(("https://blob.istio.io/istio-release/charts",
                                 "oci://ghcr.io/istio/release/charts/")), where
    istiod = [r for r in plan.of_type(RELEASE) if r.inputs["chart"].endswith("istiod")]
    assert istiod[0].inputs["values"]["global"] == {"hub": "docker.io/istio"}


def test_the_hub_istiod_is_given_is_a_value_its_chart_reads():
    """``global.hub`` is read by the pinned istiod chart's deployment template (istio/istio
    1.30.1 manifests/charts/istio-control/istio-discovery templates/deployment.yaml)."""
    import json

    from tests.shared import require_shared
    reads = json.loads((require_shared("chartdata/istiod-1.30.1") / "template-reads.json")
                       .read_text())["reads"]
    assert any(r["path"] == ["global", "hub"] for r in reads)
