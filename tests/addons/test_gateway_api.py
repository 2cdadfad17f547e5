"""Gateway API CRDs: the standard channel at the catalog's pin, once, and never on GKE.

The bundle is a release URL applied by ``yaml.v2.ConfigFile``, a remote component: under
mocks it is one opaque resource, so these tests check what it is asked to apply.
"""

from __future__ import annotations

import dataclasses

import pulumi
import pulumi_kubernetes as k8s

from aicp.addons.catalog import MANIFESTS
from aicp.cli import offline
from aicp.components.contract import CONFORMANCE_OUTPUT
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import CONFIG_FILE

TOKEN = "aicp:addons:GatewayApi"


def _plan(*, features=None, with_ready=False) -> offline.Plan:
    def program() -> None:
        from aicp.addons.gateway_api import GatewayApi

        cluster = make_cluster(features=features)
        if with_ready:
            system_pool = k8s.core.v1.ConfigMap("system-pool-stand-in")
            cluster = dataclasses.replace(cluster, ready=[system_pool])
        GatewayApi("gateway-api", cluster)

    return offline.run(program, {})


def test_crds_come_from_the_pinned_standard_channel_release():
    crds = _plan().one(CONFIG_FILE)
    manifest = MANIFESTS["gateway-api"]
    assert crds.inputs["file"] == manifest.url
    # Experimental CRDs over standard ones are rejected by v1.6's safe-upgrades policy.
    assert f"/download/{manifest.version}/standard-install.yaml" in crds.inputs["file"]


def test_crds_are_applied_on_the_cluster_provider():
    plan = _plan()
    crds = plan.one(CONFIG_FILE)
    assert crds.provider.startswith(plan.one("pulumi:providers:kubernetes").urn)
    assert crds.parent == plan.one(TOKEN).urn


def test_crds_wait_for_what_the_target_says_addons_need():
    plan = _plan(with_ready=True)
    assert plan.depends_on(plan.one(CONFIG_FILE),
                           plan.one("kubernetes:core/v1:ConfigMap", "system-pool-stand-in"))


def test_platform_managed_crds_are_left_to_the_platform():
    plan = _plan(features={"gatewayApiCrdsManaged": True})
    assert plan.of_type(CONFIG_FILE) == []
    assert plan.one(TOKEN).outputs["managedByPlatform"] is True


def test_the_crds_alone_serve_no_requirement():
    # The Gateway implementation (Istio) serves ai_inference, not the bare API.
    outputs = _plan().one(TOKEN).outputs
    assert outputs[CONFORMANCE_OUTPUT] == []
    assert outputs["version"] == MANIFESTS["gateway-api"].version


def test_istio_can_wait_for_the_crds_through_the_component():
    def program() -> None:
        from aicp.addons.gateway_api import GatewayApi

        api = GatewayApi("gateway-api", make_cluster())
        k8s.core.v1.ConfigMap("waits", opts=pulumi.ResourceOptions(depends_on=[api]))

    plan = offline.run(program, {})
    assert plan.depends_on(plan.one("kubernetes:core/v1:ConfigMap", "waits"),
                           plan.one(CONFIG_FILE))
