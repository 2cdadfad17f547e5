"""robust_controller: an AI operator with CRDs runs, its webhook answers, its CRs reconcile.

The operator exercised is KubeRay (``ray.io/v1``), the one aicp installs; Kubeflow Trainer
(``trainer.kubeflow.org``) is only detected and named in the reason when KubeRay is absent.
Three parts, each a check:

1. the ``kuberay-operator`` Deployment (label ``app.kubernetes.io/name=kuberay-operator``,
   any namespace) is available and its pods are Ready;
2. a ``ValidatingWebhookConfiguration`` covers ``ray.io`` rayclusters, and a server-side
   dry-run (``dryRun=All``) create of a RayCluster that only the webhook can reject is
   denied *by the webhook*: the API server's message starts ``admission webhook "<name>"
   denied the request``. The object has two faults KubeRay's ``validateRayCluster``
   reports and the v1 CRD schema cannot (ray-operator/pkg/webhooks/v1/raycluster_webhook.go;
   ``utils.ValidateRayClusterMetadata``): a 54-character name (``MaxRayClusterNameLength``
   is 53) and two worker groups with the same ``groupName`` (a plain array in the CRD, no
   list-map key). A 422 without "admission webhook" came from schema validation: the
   webhook was never asked, so that is ERROR, not PASS. No webhook at all is FAIL: the
   requirement asks for operational webhooks, and KubeRay ships them (``ENABLE_WEBHOOKS``);
3. a minimal head-only RayCluster reconciles to ``status.state == "ready"`` (or the
   ``HeadPodReady`` condition KubeRay 1.7 sets) and is deleted again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from kubernetes.client.exceptions import ApiException

from ..images import tag_version
from ..probe import Context, Probe, one_line
from ..result import Result

RAY = "ray.io/v1"
OPERATOR_LABEL = "app.kubernetes.io/name=kuberay-operator"
RECONCILE_TIMEOUT = 300.0
DELETE_TIMEOUT = 60.0
POLL = 2.0
# A name one longer than KubeRay's MaxRayClusterNameLength (53); valid for the API server.
INVALID_NAME = "aicp-invalid-" + "x" * 41


class RobustController(Probe):
    id = "robust_controller"
    category = "operator"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    mutating = True
    title = "An AI operator with CRDs runs, validates and reconciles"

    def run(self, ctx: Context) -> Result:
        kube = ctx.kube
        with ctx.step("find an AI operator"):
            served = {r["name"] for r in kube.resources(RAY)}
            ctx.observe("ray.io/v1 resources", sorted(served))
            if "rayclusters" not in served:
                others = [g for g in ("trainer.kubeflow.org/v1alpha1",)
                          if kube.resources(g)]
                extra = (f" ({', '.join(others)} is served, which this probe does not "
                         "exercise)") if others else ""
                return ctx.error(f"no KubeRay found: {RAY} rayclusters is not served{extra}; "
                                 "install the KubeRay operator")
            deployments = kube.request("GET", "/apis/apps/v1/deployments",
                                       query={"labelSelector": OPERATOR_LABEL}).get("items", [])
            if not deployments:
                return ctx.error(f"{RAY} is served but no Deployment labelled "
                                 f"{OPERATOR_LABEL} exists in any namespace")
        with ctx.step("operator pods are Ready"):
            self._operator_ready(ctx, deployments)
        with ctx.step("webhook denies an invalid RayCluster (dry run)"):
            ns = ctx.namespace()
            webhook = self._webhook(ctx, ns)
            if isinstance(webhook, Result):
                return webhook
        with ctx.step("a RayCluster reconciles to ready"):
            reconciled = self._reconcile(ctx, ns)
            if isinstance(reconciled, Result):
                return reconciled
        checks = ctx.evidence.checks
        failed = [c for c in checks if not c.passed]
        if not failed:
            seen = ctx.evidence.observations
            return ctx.passed(f"KubeRay operator Ready; webhook {seen.get('denied by')} denied "
                              "an invalid RayCluster; a RayCluster reconciled to ready in "
                              f"{seen.get('ready after s')}s and was deleted")
        return ctx.failed("; ".join(f"{c.name}: observed {c.observed}" for c in failed),
                          partial=len(failed) < len(checks))

    # 1 --------------------------------------------------------------------------------
    def _operator_ready(self, ctx: Context, deployments: list[dict]) -> bool:
        described, ready_pods, all_pods = [], 0, 0
        available = False
        for d in deployments:
            meta, spec, status = d["metadata"], d.get("spec") or {}, d.get("status") or {}
            want, ready = spec.get("replicas", 1), status.get("readyReplicas", 0) or 0
            described.append(f"{meta['namespace']}/{meta['name']} {ready}/{want} ready")
            available = available or (want >= 1 and ready >= want)
            selector = ",".join(f"{k}={v}" for k, v in
                                ((spec.get("selector") or {}).get("matchLabels") or {}).items())
            pods = ctx.kube.request("GET", f"/api/v1/namespaces/{meta['namespace']}/pods",
                                    query={"labelSelector": selector} if selector else None
                                    ).get("items", [])
            all_pods += len(pods)
            ready_pods += sum(_pod_ready(p) for p in pods)
        ctx.observe("operator deployments", described)
        return ctx.check("the kuberay-operator Deployment is available with Ready pods",
                         available and ready_pods > 0,
                         f"{'; '.join(described)}; {ready_pods}/{all_pods} pods Ready")

    # 2 --------------------------------------------------------------------------------
    def _webhook(self, ctx: Context, ns: str) -> bool | Result:
        configs = ctx.kube.request(
            "GET", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
        ).get("items", [])
        covering = [f"{c['metadata']['name']}/{w['name']}" for c in configs
                    for w in c.get("webhooks") or [] if _covers_rayclusters(w)]
        ctx.observe("webhooks covering rayclusters", covering)
        if not ctx.check("a ValidatingWebhookConfiguration covers ray.io rayclusters",
                         bool(covering), ", ".join(covering) or "none"):
            return False
        body = _ray_cluster(ctx, INVALID_NAME, workers=["workers", "workers"])
        try:
            created = ctx.kube.request("POST", f"/apis/{RAY}/namespaces/{ns}/rayclusters",
                                       query={"dryRun": "All"}, body=body)
        except ApiException as exc:
            message = _message(exc)
            ctx.observe("dry-run answer", f"HTTP {exc.status}: {message}")
            if "admission webhook" in message and "denied the request" in message:
                ctx.observe("denied by", message.split('"')[1] if '"' in message else "")
                return ctx.check("the webhook denies an invalid RayCluster (dry run)", True,
                                 f"HTTP {exc.status}: {message}")
            if "failed calling webhook" in message or (exc.status or 0) >= 500:
                return ctx.check("the webhook denies an invalid RayCluster (dry run)", False,
                                 f"the webhook did not answer: HTTP {exc.status}: {message}")
            if exc.status == 422:
                return ctx.error("the invalid RayCluster was rejected by the API server's "
                                 "schema validation before any webhook was asked "
                                 f"(HTTP 422: {message}); cannot tell whether the webhook "
                                 "works")
            return ctx.error(f"dry-run create of a RayCluster: {one_line(exc)}")
        ctx.artifact("admitted-invalid-raycluster.json", json.dumps(created, indent=2))
        return ctx.check("the webhook denies an invalid RayCluster (dry run)", False,
                         "admitted: a 54-character name and duplicate worker group names")

    # 3 --------------------------------------------------------------------------------
    def _reconcile(self, ctx: Context, ns: str) -> bool | Result:
        path = f"/apis/{RAY}/namespaces/{ns}/rayclusters"
        created = ctx.kube.request("POST", path, body=_ray_cluster(ctx, "probe"))
        ctx.track(created, namespace=ns, api_version=RAY)
        last: dict = {}
        started = time.monotonic()

        def ready():
            last["rc"] = ctx.kube.request("GET", f"{path}/probe")
            return _cluster_ready(last["rc"])

        done = ctx.wait_for("RayCluster probe to be ready", ready, timeout=RECONCILE_TIMEOUT,
                            interval=POLL)
        rc = last.get("rc") or created
        ctx.artifact("raycluster.json", json.dumps(rc, indent=2))
        status = rc.get("status") or {}
        if not done:
            pods = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                                    query={"labelSelector": "ray.io/cluster=probe"}
                                    ).get("items", [])
            if pods:
                ctx.artifact("head-pod.json", json.dumps(pods[0], indent=2))
                return ctx.error(f"the operator created head pod {pods[0]['metadata']['name']} "
                                 f"but it was not Ready within {RECONCILE_TIMEOUT:g}s "
                                 f"({_pod_state(pods[0])}): check node capacity and that "
                                 f"{ctx.image('ray')} can be pulled")
            return ctx.check("a RayCluster reconciles to ready", False,
                             f"no head pod and status {json.dumps(status) or '{}'} after "
                             f"{RECONCILE_TIMEOUT:g}s: the operator did not reconcile it")
        ctx.observe("ready after s", round(time.monotonic() - started, 1))
        ok = ctx.check("a RayCluster reconciles to ready", True,
                       f"state={status.get('state')}, conditions="
                       + ",".join(f"{c['type']}={c['status']}"
                                  for c in status.get("conditions") or []))
        ctx.kube.request("DELETE", f"{path}/probe", query={"propagationPolicy": "Background"})

        def gone():
            try:
                ctx.kube.request("GET", f"{path}/probe")
            except ApiException as exc:
                return exc.status == 404
            return False

        deleted = ctx.wait_for("RayCluster probe to be deleted", gone, timeout=DELETE_TIMEOUT,
                               interval=POLL)
        return ctx.check("the RayCluster is deleted (finalizers processed)", bool(deleted),
                         "gone" if deleted else f"still present after {DELETE_TIMEOUT:g}s") and ok


def _ray_cluster(ctx: Context, name: str, workers: Sequence[str] = ()) -> dict:
    """A head-only RayCluster (plus ``workers`` groups of zero replicas), Pod Security
    "restricted"-compatible, small resources."""
    container = {
        "name": "ray-head", "image": ctx.image("ray"),
        "resources": {"requests": {"cpu": "500m", "memory": "2Gi"},
                      "limits": {"cpu": "1", "memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "runAsUser": 1000, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}}}
    spec: dict = {"rayVersion": tag_version(ctx.image("ray")),
                  "headGroupSpec": {"rayStartParams": {}, "template": {
                      "metadata": {"labels": dict(ctx.labels)},
                      "spec": {"containers": [container]}}}}
    if workers:
        spec["workerGroupSpecs"] = [{
            "groupName": g, "replicas": 0, "minReplicas": 0, "maxReplicas": 1,
            "rayStartParams": {}, "template": {"spec": {"containers": [
                {**container, "name": "ray-worker"}]}}} for g in workers]
    return {"apiVersion": RAY, "kind": "RayCluster",
            "metadata": {"name": name, "labels": dict(ctx.labels)}, "spec": spec}


def _covers_rayclusters(webhook: dict) -> bool:
    for rule in webhook.get("rules") or []:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        ops = rule.get("operations") or []
        if (set(groups) & {"ray.io", "*"} and set(resources) & {"rayclusters", "*", "*/*"}
                and set(ops) & {"CREATE", "*"}):
            return True
    return False


def _cluster_ready(rc: dict) -> bool:
    status = rc.get("status") or {}
    if status.get("state") == "ready":
        return True
    return any(c.get("type") == "HeadPodReady" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _pod_state(pod: dict) -> str:
    status = pod.get("status") or {}
    waiting = [f"{cs['name']}: {cs['state']['waiting'].get('reason', 'waiting')}"
               for cs in status.get("containerStatuses") or []
               if (cs.get("state") or {}).get("waiting")]
    unscheduled = [c.get("message", "") for c in status.get("conditions") or []
                   if c.get("type") == "PodScheduled" and c.get("status") == "False"]
    return "; ".join([f"phase {status.get('phase', 'Pending')}", *waiting, *unscheduled])


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", "")) or str(exc.reason)
    except ValueError:
        return str(exc.body or exc.reason)


