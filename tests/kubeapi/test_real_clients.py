"""What a client other than ours needs: kubectl, and the requests kubectl makes.

Expected values come from upstream, not from the emulator: short names and categories from a
real kube-apiserver's discovery (kubernetes/kubernetes api/discovery/*.json), Table columns
from pkg/printers/internalversion/printers.go, printer columns from the pinned CRDs in
../shared/crds, media-type answers from k8s.io/apiserver's negotiation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, dynamic

from . import objects as o

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
# What kubectl get sends (k8s.io/kubectl pkg/cmd/get/get.go, transformRequests).
KUBECTL_GET_ACCEPT = (f"{TABLE},application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                      "application/json")
PROTOBUF = "application/vnd.kubernetes.protobuf"


def _request(kube, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(kube.url + path, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _table(kube, path: str) -> dict:
    code, headers, body = _request(kube, "GET", path, headers={"Accept": KUBECTL_GET_ACCEPT})
    assert code == 200, body
    assert headers["Content-Type"] == TABLE
    return json.loads(body)


# Discovery -------------------------------------------------------------------------------------
@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, cpu_nodes=1, controllers=False)
def test_dynamic_client_resolves_the_short_names_and_categories_kubectl_uses(kube_client):
    dc = dynamic.DynamicClient(kube_client)
    assert dc.resources.get(short_names=["ns"]).kind == "Namespace"
    assert dc.resources.get(short_names=["po"]).kind == "Pod"
    assert dc.resources.get(short_names=["deploy"]).group == "apps"
    crd = dc.resources.get(short_names=["crd", "crds"])  # the Python client matches the list
    assert (crd.kind, crd.group) == ("CustomResourceDefinition", "apiextensions.k8s.io")
    # `kubectl get all`: the "all" category, as api/discovery/api__v1.json and apps/v1 give it.
    everything = {(r.group, r.kind) for r in dc.resources.search(categories=["all"])}
    assert {("", "Pod"), ("", "Service"), ("apps", "Deployment"), ("apps", "StatefulSet"),
            ("batch", "Job"), ("batch", "CronJob")} <= everything
    assert ("", "ConfigMap") not in everything
    webhooks = dc.resources.get(api_version="admissionregistration.k8s.io/v1",
                                kind="ValidatingWebhookConfiguration")
    assert webhooks.categories == ["api-extensions"]


def test_custom_resources_carry_their_crd_names_into_discovery(kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, cpu_nodes=1, controllers=False)
    crds = "customresourcedefinitions.apiextensions.k8s.io"  # upstream CRDs (../shared/crds)
    queues = kube.get(crds, "clusterqueues.kueue.x-k8s.io")["spec"]["names"]
    rays = kube.get(crds, "rayclusters.ray.io")["spec"]["names"]
    with kube.client() as api:
        dc = dynamic.DynamicClient(api)
        found = dc.resources.get(api_version="kueue.x-k8s.io/v1beta2",
                                 short_names=queues["shortNames"])
        in_all = {r.kind for r in dc.resources.search(categories=["all"])}
    assert found.kind == "ClusterQueue" and queues["shortNames"] == ["cq"]
    assert rays["categories"] == ["all"] and "RayCluster" in in_all
    assert "ClusterQueue" not in in_all


# OpenAPI -------------------------------------------------------------------------------------
def test_openapi_v3_index_and_documents_let_kubectl_leave_validation_to_the_server(
        kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, cpu_nodes=1, controllers=False)
    code, _, body = _request(kube, "GET", "/openapi/v3")
    paths = json.loads(body)["paths"]
    assert code == 200 and {"api/v1", "apis/apps/v1", "apis/kueue.x-k8s.io/v1beta2"} <= set(
        paths)
    code, _, body = _request(kube, "GET", paths["api/v1"]["serverRelativeURL"])
    doc = json.loads(body)
    assert code == 200 and doc["openapi"].startswith("3.")
    pod = doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"]["$ref"] == "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    # kubectl's supportsQueryParamV3: a PATCH for the GVK that takes fieldValidation.
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Pod"
    assert any(p["name"] == "fieldValidation" and p["in"] == "query"
               for p in patch["parameters"])
    refs = json.dumps(doc).split('"$ref": "#/components/schemas/')[1:]
    assert all(r.split('"')[0] in doc["components"]["schemas"] for r in refs)
    code, _, body = _request(kube, "GET", paths["apis/kueue.x-k8s.io/v1beta2"][
        "serverRelativeURL"])
    schemas = json.loads(body)["components"]["schemas"]
    assert "cohortName" in schemas["io.x-k8s.kueue.v1beta2.ClusterQueue"]["properties"]["spec"][
        "properties"]


def test_openapi_v2_is_json_and_a_protobuf_only_client_gets_406(kubeapi):
    code, headers, body = _request(kubeapi, "GET", "/openapi/v2",
                                   headers={"Accept": "application/json"})
    doc = json.loads(body)
    assert code == 200 and doc["swagger"] == "2.0"
    assert doc["definitions"]["io.k8s.api.core.v1.Node"]["properties"]["spec"]["$ref"] == \
        "#/definitions/io.k8s.api.core.v1.NodeSpec"
    code, _, _ = _request(kubeapi, "GET", "/openapi/v2", headers={
        "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert code == 406


# Writes as kubectl sends them ------------------------------------------------------------------
def test_apply_with_server_side_validation_creates_and_refuses_unknown_fields(kubeapi):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo"},
          "data": {"a": "1"}}
    q = "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
    code, _, _ = _request(kubeapi, "POST", "/api/v1/namespaces/default/configmaps" + q,
                          json.dumps(cm).encode(), {"Content-Type": "application/json"})
    assert code == 201
    bad = {**cm, "metadata": {"name": "bad"}, "datta": {}}
    code, _, body = _request(kubeapi, "POST", "/api/v1/namespaces/default/configmaps" + q,
                             json.dumps(bad).encode(), {"Content-Type": "application/json"})
    assert code == 422 and 'unknown field "datta"' in json.loads(body)["message"]


def test_a_protobuf_body_is_415_and_the_same_review_in_json_is_answered(kubeapi):
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    # k8s.io/apimachinery runtime/serializer/protobuf: the "k8s\0" envelope kubectl sends.
    code, _, body = _request(kubeapi, "POST", path, b"k8s\x00\n\x1f\n\x1cauthorization",
                             {"Content-Type": PROTOBUF, "Accept": f"{PROTOBUF}, */*"})
    status = json.loads(body)
    assert code == 415 and status["reason"] == "UnsupportedMediaType"
    assert status["message"].startswith("the body of the request was in an unknown format - "
                                        "accepted media types include: application/json")
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "create", "resource": "pods",
                                              "namespace": "default"}}}
    code, _, body = _request(kubeapi, "POST", path, json.dumps(review).encode(),
                             {"Content-Type": "application/json"})
    assert code == 201 and json.loads(body)["status"]["allowed"] is True


# Server-side Tables ----------------------------------------------------------------------------
NODE_COLUMNS = ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP",
                "OS-Image", "Kernel-Version", "Container-Runtime"]
POD_COLUMNS = ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
               "Readiness Gates"]


def test_nodes_as_a_table_have_printers_go_columns_and_cells(kubeapi):
    kubeapi.seed([o.node("cp-0", labels={"node-role.kubernetes.io/control-plane": ""},
                         ip="10.0.0.5"),
                  o.node("worker-0", ip="10.0.0.6")])
    kubeapi.mutate("nodes", "worker-0", lambda n: n["spec"].update(unschedulable=True))
    table = _table(kubeapi, "/api/v1/nodes")
    assert [c["name"] for c in table["columnDefinitions"]] == NODE_COLUMNS
    assert [c["priority"] for c in table["columnDefinitions"]] == [0] * 5 + [1] * 5
    rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
    assert rows["cp-0"][1:3] == ["Ready", "control-plane"]
    assert rows["worker-0"][1:3] == ["Ready,SchedulingDisabled", "<none>"]
    assert rows["worker-0"][4:8] == ["v1.35.0", "10.0.0.6", "<none>", "Ubuntu 24.04 LTS"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_pods_as_a_table_show_readiness_status_and_node(kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, cpu_nodes=1)
    kube.create(o.pod("waits", "default", command=["sh", "-c", "sleep 3600"]))
    kube.settle()
    table = _table(kube, "/api/v1/namespaces/default/pods?limit=500")
    assert [c["name"] for c in table["columnDefinitions"]] == POD_COLUMNS
    cells = table["rows"][0]["cells"]
    pod = kube.get("pods", "waits", "default")
    assert cells[:4] == ["waits", "1/1", "Running", "0"]
    assert cells[5:7] == [pod["status"]["podIP"], pod["spec"]["nodeName"]]


def test_namespaces_and_crds_as_tables(kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, cpu_nodes=1, controllers=False)
    namespaces = _table(kube, "/api/v1/namespaces")
    assert [c["name"] for c in namespaces["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert ["default", "Active"] == namespaces["rows"][0]["cells"][:2] or any(
        r["cells"][:2] == ["default", "Active"] for r in namespaces["rows"])
    crds = _table(kube, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    # rest.NewDefaultTableConvertor: Name, Created At (RFC 3339).
    assert [(c["name"], c["type"]) for c in crds["columnDefinitions"]] == [
        ("Name", "string"), ("Created At", "date")]
    crd = kube.get("customresourcedefinitions.apiextensions.k8s.io",
                   "clusterqueues.kueue.x-k8s.io")
    row = next(r for r in crds["rows"] if r["cells"][0] == "clusterqueues.kueue.x-k8s.io")
    assert row["cells"][1] == crd["metadata"]["creationTimestamp"]


def test_custom_resources_print_their_crds_additional_printer_columns(kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, cpu_nodes=1, controllers=False)
    crd = kube.get("customresourcedefinitions.apiextensions.k8s.io",
                   "clusterqueues.kueue.x-k8s.io")
    served = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta2")
    declared = [c["name"] for c in served["additionalPrinterColumns"]]
    table = _table(kube, "/apis/kueue.x-k8s.io/v1beta2/clusterqueues")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name"] + declared
    queue = kube.get("clusterqueues.kueue.x-k8s.io", "aicp")
    cohort = declared.index("Cohort") + 1 if "Cohort" in declared else None
    row = table["rows"][0]["cells"]
    assert row[0] == "aicp"
    if cohort is not None:
        assert row[cohort] == (queue["spec"].get("cohortName") or queue["spec"].get("cohort"))
    # A CRD without printer columns: Name and Age (serveDefaultColumnsIfEmpty).
    kube.create(o.crd("example.com", "v1", "Widget", "widgets"))
    kube.create({"apiVersion": "example.com/v1", "kind": "Widget",
                 "metadata": {"name": "w", "namespace": "default"}})
    widgets = _table(kube, "/apis/example.com/v1/namespaces/default/widgets/w")
    assert [(c["name"], c["type"]) for c in widgets["columnDefinitions"]] == [
        ("Name", "string"), ("Age", "date")]
    assert widgets["rows"][0]["cells"][0] == "w" and widgets["rows"][0]["cells"][1].endswith("s")


def test_the_python_client_still_gets_plain_json(kube_client):
    nodes = client.CoreV1Api(kube_client).list_node()
    assert nodes.kind == "NodeList"


# APIService availability -----------------------------------------------------------------------
def _apiservice(group: str, version: str, available: bool) -> dict:
    """As metrics-server's manifest registers it (kubernetes-sigs/metrics-server
    manifests/base/apiservice.yaml), with the condition kube-aggregator's availability
    controller writes when the backend is down (reason FailedDiscoveryCheck)."""
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": f"{version}.{group}"},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": 100,
                     "versionPriority": 100, "insecureSkipTLSVerify": True,
                     "service": {"name": "metrics-server", "namespace": "kube-system"}},
            "status": {"conditions": [{
                "type": "Available", "status": "True" if available else "False",
                "reason": "Passed" if available else "FailedDiscoveryCheck",
                "message": "all checks passed" if available else
                "failing or missing response from https://10.96.0.20:443/apis/metrics.k8s.io/"
                "v1beta1: bad status from https://10.96.0.20:443/apis/metrics.k8s.io/v1beta1:"
                " 503", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def test_an_unavailable_apiservice_answers_503_for_its_group_version(kubeapi):
    kubeapi.seed([_apiservice("metrics.k8s.io", "v1beta1", available=False)])
    code, headers, body = _request(kubeapi, "GET", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert (code, body) == (503, b"service unavailable\n")
    assert headers["Content-Type"].startswith("text/plain")
    code, _, _ = _request(kubeapi, "GET", "/apis/metrics.k8s.io/v1beta1")
    assert code == 503
    # kube-aggregator still lists the group (handler_apis.go), so discovery sees it and skips
    # the version that fails, as client-go and the Python DynamicClient do.
    groups = json.loads(_request(kubeapi, "GET", "/apis")[2])["groups"]
    assert "metrics.k8s.io" in [g["name"] for g in groups]
    with kubeapi.client() as api:
        with pytest.raises(client.ApiException) as err:
            client.CustomObjectsApi(api).list_cluster_custom_object(
                "metrics.k8s.io", "v1beta1", "nodes")
        assert err.value.status == 503
        dc = dynamic.DynamicClient(api)
        assert dc.resources.get(short_names=["po"]).kind == "Pod"


def test_an_apiservice_served_here_is_never_503(kubeapi):
    local = _apiservice("apps", "v1", available=False)
    del local["spec"]["service"]  # a local APIService: kube-apiserver serves it itself
    kubeapi.seed([local])
    code, _, _ = _request(kubeapi, "GET", "/apis/apps/v1/deployments")
    assert code == 200


def test_an_available_apiservice_reaches_its_backend(kubeapi):
    kubeapi.seed([_apiservice("metrics.k8s.io", "v1beta1", available=True)])
    kubeapi.aggregate("metrics.k8s.io", lambda m, p, q, b: (
        200, {"Content-Type": "application/json"}, json.dumps({"kind": "NodeMetricsList",
                                                               "items": []})))
    code, _, body = _request(kubeapi, "GET", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert code == 200 and json.loads(body)["kind"] == "NodeMetricsList"


# kubectl itself --------------------------------------------------------------------------------
KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl on PATH (the tests never download "
                                            "one); the raw requests above stand in for it")
def test_kubectl_gets_applies_and_is_told_415_for_protobuf(kubeapi_factory, tmp_path: Path):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, cpu_nodes=1)
    config = kube.write_kubeconfig(tmp_path / "kubeconfig")

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(KUBECTL), "--kubeconfig", str(config), "--cache-dir",
                               str(tmp_path / "cache"), *args], capture_output=True,
                              text=True, timeout=60, check=False)
    ns = kubectl("get", "ns")
    assert ns.returncode == 0, ns.stderr
    assert ns.stdout.split("\n")[0].split() == ["NAME", "STATUS", "AGE"]
    nodes = kubectl("get", "nodes", "-o", "wide")
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.split("\n")[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION",
                                                   "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                                                   "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    crd = kubectl("get", "crd")
    assert crd.returncode == 0 and "clusterqueues.kueue.x-k8s.io" in crd.stdout, crd.stderr
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo, namespace: "
                        "default}\ndata: {a: '1'}\n")
    applied = kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0 and "configmap/demo created" in applied.stdout, \
        applied.stderr
    manifest.write_text(manifest.read_text().replace("'1'", "'2'"))
    applied = kubectl("apply", "-f", str(manifest))
    assert "configmap/demo configured" in applied.stdout, applied.stderr
    assert kube.get("configmaps", "demo", "default")["data"] == {"a": "2"}
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: "
                        "default}\ndatta: {a: '1'}\n")
    refused = kubectl("apply", "-f", str(manifest))
    assert refused.returncode == 1 and 'unknown field "datta"' in refused.stderr
    can_i = kubectl("auth", "can-i", "create", "pods")
    assert "UnsupportedMediaType" in can_i.stderr
