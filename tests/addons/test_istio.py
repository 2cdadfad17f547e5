"""Istio as the inference Gateway: istiod with the inference extension, one HTTP Gateway.

``../shared`` has no copy of Istio's charts, so value keys are not checked against it here.
Read upstream (istio/istio ``manifests/charts``): ``pilot.env`` is istiod's map of
environment variables; ``defaultRevision`` is a base chart value; the base chart renders
only istio.io CRDs, and only with ``base.enableCRDTemplates``.
"""

from __future__ import annotations

import pytest

from aicp.addons.catalog import CHARTS, MANIFESTS
from aicp.cli import offline
from aicp.components.contract import CONFORMANCE_OUTPUT
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import (
    CONFIG_FILE,
    NAMESPACE,
    RELEASE,
    invalid_objects,
    release_of,
    unpinned_releases,
)

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
TOKEN = "aicp:addons:Istio"


def _plan(*, features=None, **istio_args) -> offline.Plan:
    def program() -> None:
        from aicp.addons.gateway_api import GatewayApi
        from aicp.addons.istio import Istio, IstioArgs

        cluster = make_cluster(features=features)
        api = GatewayApi("gateway-api", cluster)
        Istio("istio", cluster, IstioArgs(gateway_api=(api,), **istio_args))

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def gateway(plan: offline.Plan) -> offline.Resource:
    return plan.one(GATEWAY)


def test_istio_base_and_istiod_are_pinned_to_the_catalog(plan):
    assert unpinned_releases(plan) == []
    assert release_of(plan, CHARTS["istio-base"])
    assert release_of(plan, CHARTS["istiod"])


def test_istiod_honours_inference_pool_backend_refs(plan):
    env = release_of(plan, CHARTS["istiod"]).inputs["values"]["pilot"]["env"]
    # A string: container env values are strings, and the chart copies them verbatim.
    assert env["ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] == "true"


def test_istio_leaves_the_gateway_api_crds_to_their_one_owner(plan):
    for chart in ("istio-base", "istiod"):
        values = release_of(plan, CHARTS[chart]).inputs.get("values", {})
        assert values.get("base", {}).get("enableCRDTemplates") in (None, False)
    assert [r.inputs["file"] for r in plan.of_type(CONFIG_FILE)] == [MANIFESTS["gateway-api"].url]


def test_istiod_starts_after_its_base_chart_and_the_gateway_api_crds(plan):
    istiod = release_of(plan, CHARTS["istiod"])
    assert plan.depends_on(istiod, release_of(plan, CHARTS["istio-base"]))
    assert plan.depends_on(istiod, plan.one(CONFIG_FILE))


def test_gateway_waits_for_the_crds_and_for_istiod(plan):
    gw = gateway(plan)
    assert plan.depends_on(gw, plan.one(CONFIG_FILE))
    assert plan.depends_on(gw, release_of(plan, CHARTS["istiod"]))


def test_gateway_is_an_istio_http_listener_on_port_80(plan):
    spec = gateway(plan).inputs["spec"]
    assert spec["gatewayClassName"] == "istio"
    [listener] = spec["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTP", 80)


def test_only_namespaces_labelled_for_inference_may_attach_routes(plan):
    [listener] = gateway(plan).inputs["spec"]["listeners"]
    namespaces = listener["allowedRoutes"]["namespaces"]
    assert namespaces["from"] == "Selector"
    assert namespaces["selector"]["matchLabels"] == plan.one(TOKEN).outputs["routeNamespaceLabel"]


def test_gateway_lives_in_its_own_namespace_named_in_the_outputs(plan):
    gw, outputs = gateway(plan), plan.one(TOKEN).outputs
    assert gw.inputs["metadata"]["name"] == outputs["gatewayName"]
    assert gw.inputs["metadata"]["namespace"] == outputs["gatewayNamespace"]
    names = [r.inputs["metadata"]["name"] for r in plan.of_type(NAMESPACE)]
    assert outputs["gatewayNamespace"] in names


def test_namespaces_enforce_pod_security(plan):
    for ns in plan.of_type(NAMESPACE):
        labels = ns.inputs["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted"), ns.name


def test_releases_install_into_the_istio_namespace_once_it_exists(plan):
    ns = plan.one(NAMESPACE, "istio-ns")
    for release in plan.of_type(RELEASE):
        assert release.inputs["namespace"] == ns.inputs["metadata"]["name"]
        assert plan.depends_on(release, ns)


def test_clusters_without_load_balancers_get_a_cluster_ip_gateway():
    plan = _plan(service_type="ClusterIP")
    annotations = gateway(plan).inputs["metadata"]["annotations"]
    assert annotations == {"networking.istio.io/service-type": "ClusterIP"}
    assert "annotations" not in gateway(_plan()).inputs["metadata"]


def test_on_a_platform_with_its_own_gateway_api_crds_the_gateway_still_waits_for_istiod():
    plan = _plan(features={"gatewayApiCrdsManaged": True})
    assert plan.of_type(CONFIG_FILE) == []
    assert plan.depends_on(gateway(plan), release_of(plan, CHARTS["istiod"]))


def test_every_declared_object_validates_against_kubernetes_1_35_and_gateway_api_crds(plan):
    assert invalid_objects(plan) == {}


def test_istio_serves_ai_inference(plan):
    assert plan.one(TOKEN).outputs[CONFORMANCE_OUTPUT] == ["ai_inference"]


# --- the Gateway's load balancer is gone before the network under it -----------------------

SERVICE = "kubernetes:core/v1:Service"


def test_the_gateway_service_is_declared_under_the_name_istiod_gives_it(plan):
    # istio 1.30.3 gatewaycommon/gateway_utils.go GetDefaultName: "<gateway>-<class>".
    service = plan.one(SERVICE)
    assert service.inputs["metadata"]["name"] == "inference-gateway-istio"
    assert service.inputs["metadata"]["namespace"] == \
        gateway(plan).inputs["metadata"]["namespace"]
    assert invalid_objects(plan) == {}


def test_the_service_carries_exactly_what_istiod_applies(plan):
    # deploymentcontroller.go extractServicePorts and kube-gateway.yaml's selector: equal
    # values, so neither field manager's server-side apply conflicts with the other's.
    spec = plan.one(SERVICE).inputs["spec"]
    assert spec["selector"] == {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}
    assert spec["ports"] == [
        {"name": "status-port", "port": 15021, "appProtocol": "tcp"},
        {"name": "http", "port": 80, "appProtocol": "http"}]
    listener_ports = [li["port"] for li in gateway(plan).inputs["spec"]["listeners"]]
    assert [p["port"] for p in spec["ports"][1:]] == listener_ports
    assert spec["type"] == "LoadBalancer"


def test_service_creation_does_not_wait_for_pods_the_gateway_brings(plan):
    # Its pods exist only once the Gateway (which waits for it) is there; for a Service,
    # skipAwait leaves the delete wait in place (pulumi-kubernetes metadata/overrides.go).
    annotations = plan.one(SERVICE).inputs["metadata"]["annotations"]
    assert annotations == {"pulumi.com/skipAwait": "true"}


def test_destroy_deletes_the_gateway_before_its_service(plan):
    # Destroy runs in reverse dependency order: the Gateway (no blockOwnerDeletion on its
    # Service, kube-gateway.yaml) first, then the Service, which Pulumi waits out.
    assert plan.depends_on(gateway(plan), plan.one(SERVICE))


def test_service_type_follows_the_option_where_nothing_provisions_load_balancers():
    assert _plan(service_type="NodePort").one(SERVICE).inputs["spec"]["type"] == "NodePort"
