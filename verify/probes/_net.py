"""Helpers for probes that run small web servers and call them (not a probe).

Web servers are busybox ``httpd`` serving files from a ConfigMap (a pinned image, no
build); callers are run-once ``curl`` pods whose logs are parsed.
"""

from __future__ import annotations

from ..probe import Context
from . import _pods

GW = "gateway.networking.k8s.io/v1"
# The Gateway API Inference Extension's InferencePool (its v1 API, GAIE v1.0 and later).
POOLS = "inference.networking.k8s.io/v1"
WEB_PORT = 8080
# Restricted Pod Security: our pods must run in any namespace policy.
SECURITY = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65534,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def condition(obj: dict | None, type_: str) -> dict | None:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or []
                 if c.get("type") == type_), None)


def is_true(obj: dict | None, type_: str) -> bool:
    return (condition(obj, type_) or {}).get("status") == "True"


def conditions_text(conditions: list[dict] | None) -> str:
    return ", ".join(f"{c.get('type')}={c.get('status')} ({c.get('reason')})"
                     for c in conditions or []) or "no conditions"


def web_server(ctx: Context, ns: str, name: str, files: dict[str, str], *,
               labels: dict[str, str] | None = None, ready_path: str = "/",
               service_port: int | None = 80, service_labels: dict[str, str] | None = None,
               executable: frozenset[str] = frozenset(), scratch: str | None = None) -> None:
    """ConfigMap ``files`` (path under /www -> text) served by ``httpd`` on :8080 from a
    Deployment (and a Service). Paths in ``executable`` get mode 0755 (busybox httpd runs
    ``/cgi-bin/*`` as CGI); ``scratch`` mounts a small emptyDir there, for state a CGI
    script keeps."""
    pod_labels = {"app": name, **(labels or {})}
    # ConfigMap keys cannot hold "/": each file gets a key and its path as an item.
    keys = {path: path.strip("/").replace("/", "-") for path in files}
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {keys[path]: text for path, text in files.items()}}, ns)
    www = {"name": name, "items": [
        {"key": keys[path], "path": path.strip("/"),
         **({"mode": 0o755} if path in executable else {})} for path in files]}
    volumes: list[dict] = [{"name": "www", "configMap": www}]
    container = {
        "name": "httpd", "image": ctx.image("busybox"),
        "command": ["httpd", "-f", "-p", str(WEB_PORT), "-h", "/www"],
        "ports": [{"name": "http", "containerPort": WEB_PORT}],
        "readinessProbe": {"httpGet": {"path": ready_path, "port": WEB_PORT},
                           "periodSeconds": 2},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                      "limits": {"memory": "32Mi"}},
        "securityContext": SECURITY,
        "volumeMounts": [{"name": "www", "mountPath": "/www", "readOnly": True}]}
    if scratch is not None:
        volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}})
        container["volumeMounts"].append({"name": "scratch", "mountPath": scratch})
    _pods.create(ctx, f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {**pod_labels, **ctx.labels}},
                              "spec": {"containers": [container], "volumes": volumes}}}}, ns)
    if service_port is not None:
        _pods.create(ctx, f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": dict(service_labels or {})},
            "spec": {"selector": {"app": name}, "ports": [
                {"name": "http", "port": service_port, "targetPort": WEB_PORT,
                 "protocol": "TCP"}]}}, ns)


def wait_available(ctx: Context, ns: str, name: str, timeout: float,
                   interval: float) -> dict | None:
    def ready():
        dep = ctx.kube.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
        return dep if (dep.get("status") or {}).get("availableReplicas", 0) >= 1 else None
    return ctx.wait_for(f"deployment {name} available", ready, timeout=timeout,
                        interval=interval)


def curl_pod(ctx: Context, ns: str, name: str, calls: dict[str, list[str]],
             warm_up: str | None = None) -> dict:
    """A run-once pod with one ``curl`` container per entry of ``calls`` (its arguments).

    ``warm_up``: a URL retried first (init container) until it answers, so a data plane
    still loading its configuration does not count as wrong answers.
    """
    def container(cname: str, args: list[str]) -> dict:
        return {"name": cname, "image": ctx.image("curl"), "command": ["curl", *args],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                              "limits": {"memory": "64Mi"}},
                "securityContext": {**SECURITY, "runAsUser": 100}}
    spec: dict = {"restartPolicy": "Never",
                  "containers": [container(c, args) for c, args in calls.items()]}
    if warm_up:
        spec["initContainers"] = [container("warm-up", [
            "-sS", "-o", "/dev/null", "--fail", "--retry", "30", "--retry-delay", "2",
            "--retry-all-errors", "--max-time", "5", warm_up])]
    return _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}, ns)


def wait_pod_finished(ctx: Context, ns: str, name: str, timeout: float,
                      interval: float) -> dict | None:
    def finished():
        pod = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return pod if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None
    return ctx.wait_for(f"pod {name} to finish", finished, timeout=timeout, interval=interval)


def answers(text: str) -> list[tuple[str, str]]:
    """(body, status) per request from curl output written with ``-w ' %{http_code}\\n'``."""
    out = []
    for line in text.splitlines():
        body, _, code = line.strip().rpartition(" ")
        if len(code) == 3 and code.isdigit():
            out.append((body.strip(), code))
    return out


def gateway_address(ctx: Context, gw: dict, port: int) -> str:
    """An in-cluster URL for a Gateway: its Service (found by the gateway-name label),
    else its first status address."""
    ns, name = gw["metadata"]["namespace"], gw["metadata"]["name"]
    services = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/services", query={
        "labelSelector": f"gateway.networking.k8s.io/gateway-name={name}"}).get("items", [])
    if services:
        svc = services[0]
        ports = [p["port"] for p in svc["spec"].get("ports") or []]
        use = port if port in ports or not ports else ports[0]
        return f"http://{svc['metadata']['name']}.{ns}.svc.cluster.local:{use}"
    addresses = (gw.get("status") or {}).get("addresses") or []
    if addresses:
        return f"http://{addresses[0]['value']}:{port}"
    return ""


# Gateway API Inference Extension routes (advanced_inference_ingress, disaggregated_inference)
def route_to(ctx: Context, ns: str, pool: str) -> dict | None:
    """The HTTPRoute in ``ns`` with InferencePool ``pool`` as a backendRef and a parent."""
    routes = ctx.kube.request("GET", f"/apis/{GW}/namespaces/{ns}/httproutes").get(
        "items", [])
    return next((r for r in routes for rule in r["spec"].get("rules") or []
                 for b in rule.get("backendRefs") or []
                 if b.get("kind") == "InferencePool" and b.get("name") == pool
                 and r["spec"].get("parentRefs")), None)


def path_prefix(route: dict, pool: str) -> str:
    """The path prefix under which ``route`` sends requests to InferencePool ``pool``."""
    for rule in route["spec"].get("rules") or []:
        if any(b.get("kind") == "InferencePool" and b.get("name") == pool
               for b in rule.get("backendRefs") or []):
            for match in rule.get("matches") or []:
                path = match.get("path") or {}
                if path.get("type", "PathPrefix") == "PathPrefix" and not match.get("headers"):
                    return path.get("value", "/")
    return "/"


def route_gateway(ctx: Context, route: dict, ns: str) -> tuple[dict, dict]:
    """The route's first parentRef and the Gateway it names (the route's namespace,
    ``ns``, unless the ref names another)."""
    ref = route["spec"]["parentRefs"][0]
    gw = ctx.kube.request("GET", f"/apis/{GW}/namespaces/{ref.get('namespace', ns)}/"
                                 f"gateways/{ref['name']}")
    return ref, gw
