"""Finding components by what they do and how they are wired, not by a label or a name.

Labels and names differ between the installs of one component (a Helm chart, kustomize
manifests, an operator, a cloud's managed add-on), so probes follow the API relationships
the component itself depends on, and use labels only as hints once those fail. Every
finding carries its evidence: the chain of objects it was found through.

* An operator is the workload behind the admission webhook that covers its CRD's API
  group: webhook configuration → ``clientConfig.service`` → Service → its EndpointSlices
  (label ``kubernetes.io/service-name``) → each endpoint's ``targetRef`` Pod (or, without
  one, the Service's selector) → the Pod's controller ``ownerReferences`` → ReplicaSet →
  Deployment (kubernetes.io/docs "Dynamic Admission Control", "EndpointSlices",
  "Owners and Dependents"; the EndpointSlice controller sets ``targetRef`` to the Pod:
  kubernetes pkg/controller/endpointslice/utils.go ``podToEndpoint``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kubernetes.client.exceptions import ApiException

from .probe import Context

WEBHOOK_CONFIGS = (
    ("ValidatingWebhookConfiguration",
     "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"),
    ("MutatingWebhookConfiguration",
     "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"),
)


@dataclass
class Found:
    """A workload found by wiring, and how."""

    kind: str
    namespace: str
    name: str
    obj: dict
    how: list[str] = field(default_factory=list)  # the chain, first link first

    @property
    def evidence(self) -> str:
        return " -> ".join(self.how)


def covers(webhook: dict, group: str, plural: str, operation: str = "CREATE") -> bool:
    """Whether a webhook's rules cover ``operation`` on ``group``'s ``plural``."""
    for rule in webhook.get("rules") or []:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        ops = rule.get("operations") or []
        if (set(groups) & {group, "*"} and set(resources) & {plural, "*", "*/*"}
                and set(ops) & {operation, "*"}):
            return True
    return False


def webhooks_covering(ctx: Context, group: str, plural: str) -> list[tuple[str, dict, dict]]:
    """(configuration kind, configuration, webhook) for every webhook covering the CRD."""
    found = []
    for kind, path in WEBHOOK_CONFIGS:
        try:
            configs = ctx.kube.request("GET", path).get("items", [])
        except ApiException as exc:
            if exc.status in (403, 404):
                continue
            raise
        for config in configs:
            for webhook in config.get("webhooks") or []:
                if covers(webhook, group, plural):
                    found.append((kind, config, webhook))
    return found


def _get(ctx: Context, path: str, query: dict | None = None) -> dict | None:
    try:
        return ctx.kube.request("GET", path, query=query)
    except ApiException as exc:
        if exc.status in (403, 404):
            return None
        raise


def _controller(obj: dict) -> dict | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def owning_workload(ctx: Context, pod: dict) -> Found | None:
    """The Deployment (or StatefulSet/DaemonSet) that owns a Pod, through its ReplicaSet."""
    ns = pod["metadata"]["namespace"]
    how = [f"Pod {ns}/{pod['metadata']['name']}"]
    ref = _controller(pod)
    if ref and ref.get("kind") == "ReplicaSet":
        rs = _get(ctx, f"/apis/apps/v1/namespaces/{ns}/replicasets/{ref['name']}")
        if rs is None:
            return None
        how.append(f"ReplicaSet {ref['name']}")
        ref = _controller(rs)
    if not ref or ref.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
        return None
    plural = ref["kind"].lower() + "s"
    obj = _get(ctx, f"/apis/apps/v1/namespaces/{ns}/{plural}/{ref['name']}")
    if obj is None:
        return None
    return Found(ref["kind"], ns, ref["name"], obj, how + [f"{ref['kind']} {ns}/{ref['name']}"])


def _service_pods(ctx: Context, ns: str, name: str) -> tuple[list[dict], list[str]]:
    """The Service's pods: its EndpointSlices' target Pods, else its selector's pods."""
    slices = _get(ctx, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                  {"labelSelector": f"kubernetes.io/service-name={name}"}) or {}
    pods, how, seen = [], [], set()
    for s in slices.get("items") or []:
        for endpoint in s.get("endpoints") or []:
            ref = endpoint.get("targetRef") or {}
            if ref.get("kind") != "Pod" or ref.get("name") in seen:
                continue
            seen.add(ref["name"])
            pod = _get(ctx, f"/api/v1/namespaces/{ref.get('namespace') or ns}/pods/"
                       f"{ref['name']}")
            if pod is not None:
                pods.append(pod)
                how = [f"EndpointSlice {ns}/{s['metadata']['name']}"]
    if pods:
        return pods, how
    service = _get(ctx, f"/api/v1/namespaces/{ns}/services/{name}")
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    if not selector:
        return [], []
    query = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    listed = _get(ctx, f"/api/v1/namespaces/{ns}/pods", {"labelSelector": query}) or {}
    return list(listed.get("items") or []), [f"selector {query}"]


def operator_behind_webhooks(ctx: Context, group: str, plural: str) -> list[Found]:
    """The workloads serving the admission webhooks that cover ``group``'s ``plural``
    (module doc), each with the chain it was found through."""
    found: dict[tuple[str, str, str], Found] = {}
    for kind, config, webhook in webhooks_covering(ctx, group, plural):
        service = (webhook.get("clientConfig") or {}).get("service") or {}
        ns, name = service.get("namespace", ""), service.get("name", "")
        if not ns or not name:
            continue  # a URL webhook: nothing in the cluster to follow
        pods, via = _service_pods(ctx, ns, name)
        for pod in pods:
            owner = owning_workload(ctx, pod)
            if owner is None:
                continue
            key = (owner.kind, owner.namespace, owner.name)
            if key not in found:
                owner.how = [f"{kind} {config['metadata']['name']} webhook {webhook['name']}",
                             f"Service {ns}/{name}", *via, *owner.how]
                found[key] = owner
    return list(found.values())


# --- Prometheus: whatever answers the query API ------------------------------------------

# prometheus-operator labels every Prometheus pod with its name (pkg/prometheus/
# statefulset.go, makeStatefulSetSpec: "app.kubernetes.io/name": "prometheus",
# "app.kubernetes.io/instance": <name>, "operator.prometheus.io/name": <name>, and the
# legacy "prometheus": <name>); its governing Service prometheus-operated selects them and
# names the web port "web" (9090 by default: CommonPrometheusFields ``portName``).
PROMETHEUS_PORT = 9090
WEB_PORT_NAMES = ("web", "http-web", "http")


@dataclass
class QueryApi:
    """A Prometheus query API reachable through the API server's service proxy."""

    namespace: str
    name: str          # the Prometheus object
    service: str
    port: str          # the Service port, by number or name
    prefix: str        # spec.routePrefix ("" for "/")
    how: str

    @property
    def base(self) -> str:
        return (f"/api/v1/namespaces/{self.namespace}/services/{self.service}:{self.port}"
                f"/proxy{self.prefix}")


def _pod_labels(prom: dict) -> dict[str, str]:
    name = prom["metadata"]["name"]
    return {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": name,
            "operator.prometheus.io/name": name, "prometheus": name}


def _web_port(service: dict) -> str | None:
    ports = (service.get("spec") or {}).get("ports") or []
    for p in ports:
        if p.get("name") in WEB_PORT_NAMES or p.get("targetPort") in WEB_PORT_NAMES:
            return str(p.get("port"))
    for p in ports:
        if p.get("port") == PROMETHEUS_PORT or p.get("targetPort") == PROMETHEUS_PORT:
            return str(p["port"])
    return None


def prometheus_query_apis(ctx: Context, prom: dict) -> list[QueryApi]:
    """Candidate query APIs of one Prometheus object, best first: Services in its namespace
    whose selector picks its pods (the operator's labels above), then Services with a web
    port (a hint), each with the object's ``routePrefix`` (prometheus-operator
    CommonPrometheusFields.routePrefix, default "/")."""
    ns, name = prom["metadata"]["namespace"], prom["metadata"]["name"]
    prefix = "/" + str((prom.get("spec") or {}).get("routePrefix") or "").strip("/")
    prefix = "" if prefix == "/" else prefix
    pod = _pod_labels(prom)
    try:
        services = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/services").get("items", [])
    except ApiException as exc:
        if exc.status in (403, 404):
            return []
        raise
    wired, hinted = [], []
    for s in services:
        port = _web_port(s)
        if port is None:
            continue
        selector = (s.get("spec") or {}).get("selector") or {}
        sname = s["metadata"]["name"]
        if selector and all(pod.get(k) == v for k, v in selector.items()):
            wired.append(QueryApi(ns, name, sname, port, prefix,
                                  f"Prometheus {ns}/{name} -> Service {ns}/{sname} (selects "
                                  f"its pods) port {port}{' route ' + prefix if prefix else ''}"))
        else:
            hinted.append(QueryApi(ns, name, sname, port, prefix,
                                   f"Prometheus {ns}/{name} -> Service {ns}/{sname} (hint: "
                                   f"a web port {port} in its namespace)"
                                   f"{' route ' + prefix if prefix else ''}"))
    def rank(q: QueryApi) -> tuple:
        return (not q.service.endswith("-prometheus"), q.service != "prometheus-operated",
                q.service)
    return sorted(wired, key=rank) + sorted(hinted, key=rank)


def answers(ctx: Context, api: QueryApi) -> bool:
    """Whether the query API answers an instant query (``vector(1)``)."""
    try:
        ctx.kube.request("GET", f"{api.base}/api/v1/query", query={"query": "vector(1)"})
        return True
    except ApiException:
        return False


# --- Gateway classes: by controller and purpose -------------------------------------------

# Classes whose controller serves traffic inside the mesh or between clusters, not ingress
# into the cluster: Istio's built-in classes (istio/istio pilot/pkg/config/kube/gateway
# builtinClasses; kubectl get gatewayclass on Istio 1.24+: istio-waypoint
# istio.io/mesh-controller, istio-east-west istio.io/eastwest-controller, istio-remote
# istio.io/unmanaged-gateway, whose Gateways istiod does not deploy).
NOT_INGRESS = {
    "istio.io/mesh-controller": "mesh-internal (Istio ambient waypoints)",
    "istio.io/eastwest-controller": "east-west between clusters (Istio multicluster)",
    "istio.io/unmanaged-gateway": "a remote gateway istiod does not deploy (istio-remote)",
}


def gateway_class_purpose(gateway_class: dict) -> str | None:
    """Why a GatewayClass is not for ingress (None: it may be)."""
    return NOT_INGRESS.get((gateway_class.get("spec") or {}).get("controllerName") or "")


# --- node autoscalers: by their command line -----------------------------------------------

# cluster-autoscaler is the binary ``cluster-autoscaler`` whatever the image is called
# (upstream registry.k8s.io/autoscaling/cluster-autoscaler, OpenShift's
# quay.io/openshift/origin-cluster-autoscaler, vendors' mirrors), and takes
# ``--cloud-provider`` with flags no other program has (kubernetes/autoscaler
# cluster-autoscaler/config/flags/flags.go). Any provider counts: aws, gce, azure,
# clusterapi, ... (cloudprovider/builder).
AUTOSCALER_BINARY = "cluster-autoscaler"
AUTOSCALER_FLAGS = ("nodes", "node-group-auto-discovery", "expander", "scale-down-enabled",
                    "status-config-map-name", "max-node-provision-time",
                    "balance-similar-node-groups", "max-bulk-soft-taint-count",
                    "record-duplicated-events", "scale-down-unneeded-time")


def flags(words: list[str]) -> dict[str, str]:
    """``--flag=value`` and ``--flag value`` words as a dict."""
    out = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            if not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
                value = words[i + 1]
            out[key] = value
    return out


def autoscaler_container(deployment: dict, image_hint: re.Pattern[str]
                         ) -> tuple[dict[str, str], str] | None:
    """The cluster-autoscaler flags of a Deployment's container, and how it was recognised:
    its binary or its flags (the command line), else ``image_hint`` (a compiled regex
    matching the upstream image name)."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in spec.get("containers") or []:
        words = [str(w) for w in list(c.get("command") or []) + list(c.get("args") or [])]
        found = flags(words)
        binary = any(w.rsplit("/", 1)[-1] == AUTOSCALER_BINARY for w in words[:1])
        if binary or ("cloud-provider" in found and any(f in found for f in AUTOSCALER_FLAGS)):
            provider = found.get("cloud-provider", "")
            return found, ("command line: " + (f"--cloud-provider={provider}" if provider
                                               else AUTOSCALER_BINARY))
        if image_hint.search(c.get("image", "").split("@")[0]):
            return found, f"hint: image {c.get('image')}"
    return None
