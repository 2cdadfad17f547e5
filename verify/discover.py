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
