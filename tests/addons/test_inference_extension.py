"""Gateway API Inference Extension: InferencePool CRDs, then the endpoint picker's release.

``../shared`` has no copy of the ``llm-d-router-gateway`` chart. The value keys we set are
checked against the tree read upstream at llm-d/llm-d-router (``config/charts/routerlib/
values.yaml``, ``config/charts/llm-d-router-gateway/values.yaml``, ``config/charts/
README.md``), written out below as ``UPSTREAM_KEYS``: a guard against typos and against
the legacy GAIE keys the chart refuses, not a substitute for the chart's values.yaml.
"""

from __future__ import annotations

import pytest

from aicp.addons.catalog import CHARTS, IMAGES, MANIFESTS
from aicp.cli import offline
from aicp.components.contract import CONFORMANCE_OUTPUT
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import (
    CONFIG_FILE,
    NAMESPACE,
    invalid_objects,
    release_of,
    unpinned_releases,
)
from tests.charts import unknown_value_paths

TOKEN = "aicp:addons:InferenceExtension"
EPP = CHARTS["endpoint-picker"]

# Keys of llm-d-router-gateway v0.10.0's values read upstream; {} marks a user-keyed map.
UPSTREAM_KEYS = {
    "router": {
        "epp": {
            "replicas": 1,
            "image": {"registry": "", "repository": "", "tag": "", "pullPolicy": ""},
            "resources": {"requests": {"cpu": "", "memory": ""}, "limits": {"memory": ""}},
            "flags": {}, "env": [], "affinity": {}, "tolerations": [],
        },
        "modelServers": {"type": "", "protocol": "", "targetPorts": [], "matchLabels": {}},
        "monitoring": {"interval": "", "provider": {"name": ""},
                       "prometheus": {"enabled": False, "auth": {"enabled": True},
                                      "extraLabels": {}}},
        "inferencePool": {"create": True, "failureMode": ""},
    },
    "provider": {"name": "", "istio": {"destinationRule": {"host": ""}}},
    "httpRoute": {"create": False, "inferenceGatewayName": "", "inferenceGatewayNamespace": "",
                  "requestTimeout": ""},
}
# Top-level keys of the GAIE charts; llm-d-router's charts fail the install on them.
LEGACY_KEYS = {"inferenceExtension", "inferencePool", "inferenceObjectives",
               "experimentalHttpRoute"}


def _plan(*, features=None, **gaie_args) -> offline.Plan:
    def program() -> None:
        from aicp.addons.gateway_api import GatewayApi
        from aicp.addons.inference_extension import InferenceExtension, InferenceExtensionArgs
        from aicp.addons.istio import Istio, IstioArgs
        from aicp.addons.monitoring import Monitoring

        cluster = make_cluster(features=features)
        api = GatewayApi("gateway-api", cluster)
        istio = Istio("istio", cluster, IstioArgs(gateway_api=(api,)))
        monitoring = Monitoring("monitoring", cluster)
        args = {"gateway_name": istio.gateway_name,
                "gateway_namespace": istio.gateway_namespace,
                "after": (istio, monitoring.crds), **gaie_args}
        InferenceExtension("gaie", cluster, InferenceExtensionArgs(**args))

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def epp_values(plan: offline.Plan) -> dict:
    return release_of(plan, EPP).inputs["values"]


def test_inference_pool_crds_come_from_the_pinned_v1_manifest(plan):
    manifest = MANIFESTS["inference-extension"]
    files = [r.inputs["file"] for r in plan.of_type(CONFIG_FILE)]
    assert manifest.url in files
    assert manifest.url.endswith(f"/{manifest.version}/v1-manifests.yaml")


def test_endpoint_picker_chart_is_pinned_to_the_catalog(plan):
    assert unpinned_releases(plan) == []
    release = release_of(plan, EPP)
    assert release.inputs["chart"].startswith("oci://")
    assert "repositoryOpts" not in release.inputs


def test_endpoint_picker_image_is_pinned_not_the_moving_main_tag(plan):
    image = epp_values(plan)["router"]["epp"]["image"]
    assert image["tag"] == IMAGES["endpoint-picker"] != "main"
    assert image.get("pullPolicy") != "Always"


def test_value_keys_exist_upstream_and_none_is_a_legacy_gaie_key(plan):
    values = epp_values(plan)
    assert unknown_value_paths(values, UPSTREAM_KEYS) == []
    assert not LEGACY_KEYS & set(values)


def test_pool_selects_vllm_servers_by_default():
    servers = epp_values(_plan())["router"]["modelServers"]
    assert servers["matchLabels"] == {"app": "vllm"}
    assert servers["targetPorts"] == [{"number": 8000}]


def test_pool_selects_the_model_servers_it_is_given():
    servers = epp_values(_plan(model_server_labels={"model": "llama"}, model_server_port=9000,
                               model_server_type="sglang"))["router"]["modelServers"]
    assert servers == {"matchLabels": {"model": "llama"}, "targetPorts": [{"number": 9000}],
                       "type": "sglang"}


def test_endpoint_picker_is_wired_for_istio_with_metrics(plan):
    values = epp_values(plan)
    assert values["provider"]["name"] == "istio"
    assert values["router"]["monitoring"]["prometheus"]["enabled"] is True


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_endpoint_picker_asks_for_less_than_upstreams_8_cpu_8gi_so_a_system_node_fits_it(plan):
    requests = epp_values(plan)["router"]["epp"]["resources"]["requests"]
    assert _quantity(requests["cpu"]) <= 2
    assert _quantity(requests["memory"]) <= 4 * 2**30


def test_http_route_attaches_the_pool_to_the_istio_gateway(plan):
    route = epp_values(plan)["httpRoute"]
    istio = plan.one("aicp:addons:Istio").outputs
    assert route["create"] is True
    assert (route["inferenceGatewayName"], route["inferenceGatewayNamespace"]) == (
        istio["gatewayName"], istio["gatewayNamespace"])


def test_model_server_namespace_may_attach_routes_to_the_gateway(plan):
    release = release_of(plan, EPP)
    [ns] = [n for n in plan.of_type(NAMESPACE)
            if n.inputs["metadata"]["name"] == release.inputs["namespace"]]
    labels = ns.inputs["metadata"]["labels"]
    for key, value in plan.one("aicp:addons:Istio").outputs["routeNamespaceLabel"].items():
        assert labels[key] == value
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert plan.depends_on(release, ns)


def test_endpoint_picker_waits_for_pool_crds_istio_and_the_servicemonitor_crd(plan):
    release = release_of(plan, EPP)
    gaie_crds = [r for r in plan.of_type(CONFIG_FILE)
                 if r.inputs["file"] == MANIFESTS["inference-extension"].url]
    assert plan.depends_on(release, gaie_crds[0])
    assert plan.depends_on(release, release_of(plan, CHARTS["istiod"]))
    assert plan.depends_on(release, release_of(plan, CHARTS["prometheus-operator-crds"]))


def test_pool_is_named_after_the_release_and_published(plan):
    release, outputs = release_of(plan, EPP), plan.one(TOKEN).outputs
    assert outputs["inferencePool"] == {
        "name": release.inputs["name"], "namespace": release.inputs["namespace"],
        "apiVersion": "inference.networking.k8s.io/v1"}


def test_platform_managed_crds_are_left_to_the_platform():
    plan = _plan(features={"gatewayApiCrdsManaged": True})
    assert plan.of_type(CONFIG_FILE) == []
    assert release_of(plan, EPP)


def test_every_declared_object_validates_against_kubernetes_1_35(plan):
    assert invalid_objects(plan) == {}


def test_inference_extension_serves_advanced_inference_ingress(plan):
    assert plan.one(TOKEN).outputs[CONFORMANCE_OUTPUT] == ["advanced_inference_ingress"]
