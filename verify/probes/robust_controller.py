"""robust_controller: an AI operator with CRDs runs, validates and reconciles its objects.

Operators are found by what they are, not by one install method's label: the CRD served
and Established, and the Deployment running the operator found by its wiring, as the
workload behind the admission webhook covering the CRD's API group (``verify.discover``:
webhook configuration → Service → EndpointSlice → Pods → owning Deployment); its image or
the labels its installs set are only hints, used where no webhook leads to it (KubeRay's
Helm chart ships no webhook). The evidence (``operatorFoundBy``) says which. Supported:
KubeRay (``ray.io/v1`` rayclusters, the one aicp installs) and Kubeflow Trainer
(``trainer.kubeflow.org/v1alpha1`` trainjobs, the WG suite's choice:
kubernetes-sigs/ai-conformance@3d8edfa test/crd_controller_test.go), the first served one
is exercised. The cases, in order, after the WG test (OperatorPodsRunning, CRDRegistered,
WebhookOperational, WebhookRejectsInvalidCR, ControllerReconcilesCR):

1. a supported operator is installed: its API is served and a Deployment runs it (else
   ERROR: there is nothing to judge);
2. the operator Deployment is available and its pods are Ready;
3. its CRD is Established;
4. its admission webhook refuses an invalid object. With a webhook covering the CRD: it
   has a caBundle (a Service webhook), its Service has ready endpoints, and a server-side dry-run
   (``dryRun=All``) create of an object only the webhook can reject is denied *by the
   webhook* (the message starts ``admission webhook "<name>" denied the request``; a 422
   without it came from schema validation, so ERROR). KubeRay's object has two faults
   ``validateRayCluster`` reports and the v1 CRD schema cannot
   (ray-operator/pkg/webhooks/v1/raycluster_webhook.go: a 54-character name,
   ``MaxRayClusterNameLength`` is 53, and duplicate worker group names); Trainer's names a
   runtime that does not exist (the WG test's ``buildInvalidTrainJob``).
   Without one (KubeRay's webhooks exist only in the kustomize overlay
   ray-operator/config/default-with-webhooks; the Helm chart has no webhook template,
   ray-project/kuberay v1.7.0 helm-chart/kuberay-operator/templates) the operator is judged
   on the rest, the reason says so, and an object the CRD schema forbids must be refused
   by the API server;
5. a valid object reconciles (RayCluster ``status.state == "ready"`` or ``HeadPodReady``;
   TrainJob ``Complete=True``, ``Failed=True`` is terminal) and is deleted again.

A failed check of 2-5 does not stop the others: the probe FAILs after the last case with
every failed check, partially when some held. An error after a check already failed (the
webhook answered 500, then the valid object never reconciled) is FAIL with both facts
(``_pods.failed_checks_win``).

The probe judges the operator, not the Ray runtime, so the RayCluster's head runs the
catalog's multi-arch busybox (any node architecture, a small pull): its annotation
``ray.io/overwrite-container-cmd: "true"`` (utils/constant.go) stops KubeRay replacing the
command with ``ulimit ...; ray start --head`` (common/pod.go ``BuildPod``), and its own
readiness/liveness probes stop the injected Ray health checks (``initLivenessAndReadinessProbe``;
ray-project/kuberay v1.7.0). Without workers, no ``wait-gcs-ready`` init container is added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from .. import discover
from ..probe import Context, Fail, Probe, ProbeError, one_line
from . import _pods

RAY = "ray.io/v1"
TRAINER = "trainer.kubeflow.org/v1alpha1"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
# A name one longer than KubeRay's MaxRayClusterNameLength (53); valid for the API server.
INVALID_NAME = "aicp-invalid-" + "x" * 41
# The WG test's default ClusterTrainingRuntime and its invalid reference.
TRAINER_RUNTIME = "torch-distributed"
MISSING_RUNTIME = "does-not-exist-runtime"


@dataclass(frozen=True)
class Operator:
    """What identifies one supported operator and how to exercise it."""

    name: str
    group_version: str
    plural: str
    kind: str
    images: tuple[str, ...]            # operator image repositories
    labels: tuple[dict[str, str], ...]  # label sets its installs put on the Deployment
    invalid: Callable[[Context, str], dict]         # only the webhook refuses it
    schema_invalid: Callable[[Context, str], dict]  # the CRD schema refuses it
    valid: Callable[[Context, str], dict]
    ready: Callable[[dict], bool | str]  # True, False, or why it failed for good
    fault: str                           # what is wrong with ``invalid``, for people

    @property
    def group(self) -> str:
        return self.group_version.split("/")[0]

    @property
    def crd(self) -> str:
        return f"{self.plural}.{self.group}"

    def path(self, ns: str) -> str:
        return f"/apis/{self.group_version}/namespaces/{ns}/{self.plural}"


# KubeRay v1.7.0 ray-operator/controllers/ray/utils/constant.go
# ``RayOverwriteContainerCmdAnnotationKey``: keep the container's own command.
OVERWRITE_CMD = "ray.io/overwrite-container-cmd"


def _ray_cluster(ctx: Context, name: str, workers: Sequence[str] = ()) -> dict:
    """A head-only RayCluster (plus ``workers`` groups of zero replicas) whose head runs
    busybox (module doc), Pod Security "restricted"-compatible, small resources."""
    container = {
        # sh as PID 1 ignores TERM unless it traps it: a deleted head ends at once.
        "name": "ray-head", "image": ctx.image("busybox"),
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait $!"],
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 2},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                      "limits": {"cpu": "100m", "memory": "32Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "runAsUser": 1000, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}}}
    spec: dict = {"headGroupSpec": {"rayStartParams": {}, "template": {
        "metadata": {"labels": dict(ctx.labels)}, "spec": {"containers": [container]}}}}
    if workers:
        spec["workerGroupSpecs"] = [{
            "groupName": g, "replicas": 0, "minReplicas": 0, "maxReplicas": 1,
            "rayStartParams": {}, "template": {"spec": {"containers": [
                {**container, "name": "ray-worker"}]}}} for g in workers]
    return {"apiVersion": RAY, "kind": "RayCluster",
            "metadata": {"name": name, "labels": dict(ctx.labels),
                         "annotations": {OVERWRITE_CMD: "true"}}, "spec": spec}


def _ray_schema_invalid(ctx: Context, name: str) -> dict:
    # spec.headGroupSpec is required by the v1 CRD schema (ray.io_rayclusters.yaml, v1.7.0).
    return {"apiVersion": RAY, "kind": "RayCluster",
            "metadata": {"name": name, "labels": dict(ctx.labels)}, "spec": {}}


def _train_job(ctx: Context, name: str, runtime: str = TRAINER_RUNTIME) -> dict:
    return {"apiVersion": TRAINER, "kind": "TrainJob",
            "metadata": {"name": name, "labels": dict(ctx.labels)},
            "spec": {"runtimeRef": {"name": runtime, "apiGroup": "trainer.kubeflow.org",
                                    "kind": "ClusterTrainingRuntime"}}}


def _train_schema_invalid(ctx: Context, name: str) -> dict:
    # spec.runtimeRef is required (kubeflow/trainer trainer.kubeflow.org_trainjobs.yaml).
    return {"apiVersion": TRAINER, "kind": "TrainJob",
            "metadata": {"name": name, "labels": dict(ctx.labels)}, "spec": {}}


def _cluster_ready(rc: dict) -> bool | str:
    status = rc.get("status") or {}
    if status.get("state") == "ready":
        return True
    return any(c.get("type") == "HeadPodReady" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _job_complete(job: dict) -> bool | str:
    conds = (job.get("status") or {}).get("conditions") or []
    failed = [c for c in conds if c.get("type") == "Failed" and c.get("status") == "True"]
    if failed:
        return f"Failed: {failed[0].get('reason', '')} {failed[0].get('message', '')}".strip()
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conds)


OPERATORS = (
    # Image: kuberay-operator chart values image.repository (v1.7.0). Labels, ray-project/
    # kuberay v1.7.0: Helm (helm-chart/kuberay-operator/templates/_helpers.tpl, the chart
    # name) and kustomize (ray-operator/config/manager/manager.yaml).
    Operator("KubeRay", RAY, "rayclusters", "RayCluster", ("quay.io/kuberay/operator",),
             ({"app.kubernetes.io/name": "kuberay-operator"},
              {"app.kubernetes.io/name": "kuberay",
               "app.kubernetes.io/component": "kuberay-operator"}),
             lambda ctx, name: _ray_cluster(ctx, name, workers=["workers", "workers"]),
             _ray_schema_invalid, lambda ctx, name: _ray_cluster(ctx, name), _cluster_ready,
             "a 54-character name and duplicate worker group names"),
    # Label and namespace kubeflow-system: the WG test's operatorDef for kubeflow-trainer.
    Operator("Kubeflow Trainer", TRAINER, "trainjobs", "TrainJob", (),
             ({"app.kubernetes.io/name": "kubeflow-trainer"},),
             lambda ctx, name: _train_job(ctx, name, MISSING_RUNTIME), _train_schema_invalid,
             lambda ctx, name: _train_job(ctx, name), _job_complete,
             f"a runtimeRef to ClusterTrainingRuntime {MISSING_RUNTIME}"),
)


class RobustController(Probe):
    id = "robust_controller"
    category = "operator"
    mutating = True
    title = "An AI operator with CRDs runs, validates and reconciles"
    timeouts = {
        # The WG test allows 3 min; a Trainer runtime image pull may take more.
        "reconcile_timeout": 300.0,
        "delete_timeout": 60.0,
        "poll": 2.0,
    }

    def cases(self, ctx: Context) -> str:
        op, deployments = _a_supported_operator_is_installed(ctx)
        with _pods.failed_checks_win(ctx):
            _the_operator_pods_are_ready(ctx, op, deployments)
            _its_crd_is_established(ctx, op)
            ns = ctx.namespace()
            _its_webhook_refuses_an_invalid_object(ctx, op, ns)
            _a_valid_object_reconciles_and_is_deleted(ctx, op, ns)
        return _every_check_held(ctx, op)


# 1 ------------------------------------------------------------------------------------
def _a_supported_operator_is_installed(ctx: Context) -> tuple[Operator, list[dict]]:
    """The first served operator and the Deployments running it."""
    with ctx.step("find an AI operator"):
        op = next((o for o in OPERATORS
                   if o.plural in {r["name"] for r in ctx.kube.resources(o.group_version)}),
                  None)
        if op is None:
            raise ProbeError("no supported AI operator found: neither "
                             + " nor ".join(f"{o.group_version} {o.plural} ({o.name})"
                                            for o in OPERATORS)
                             + " is served; install KubeRay or Kubeflow Trainer")
        ctx.observe("operator", op.name)
        deployments = _operator_deployments(ctx, op)
        if not deployments:
            raise ProbeError(f"{op.group_version} {op.plural} is served but no Deployment "
                             f"runs the {op.name} operator (none behind an admission webhook "
                             f"covering {op.group}, none with image "
                             f"{', '.join(op.images) or 'n/a'} or labels "
                             f"{' / '.join(_selector(x) for x in op.labels)}) in any "
                             "namespace")
        return op, deployments


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _operator_deployments(ctx: Context, op: Operator) -> list[dict]:
    """The operator's Deployments: behind its webhooks (module doc), else by hints."""
    wired = [f for f in discover.operator_behind_webhooks(ctx, op.group, op.plural)
             if f.kind == "Deployment"]
    if wired:
        ctx.observe("operatorFoundBy", [f.evidence for f in wired])
        return [f.obj for f in wired]
    found = _hinted_deployments(ctx, op)
    if found:
        ctx.observe("operatorFoundBy", [
            f"hint: Deployment {d['metadata']['namespace']}/{d['metadata']['name']} by its "
            "image or install labels (no admission webhook leads to it)" for d in found])
    return found


def _hinted_deployments(ctx: Context, op: Operator) -> list[dict]:
    found = []
    for d in ctx.kube.items("/apis/apps/v1/deployments"):
        labels = d["metadata"].get("labels") or {}
        images = [c.get("image", "") for c in ((d.get("spec") or {}).get("template") or {})
                  .get("spec", {}).get("containers") or []]
        if (any(i.split("@")[0].rsplit(":", 1)[0].endswith(repo)
                for i in images for repo in op.images)
                or any(all(labels.get(k) == v for k, v in sel.items()) for sel in op.labels)):
            found.append(d)
    return found


# 2 ------------------------------------------------------------------------------------
def _the_operator_pods_are_ready(ctx: Context, op: Operator, deployments: list[dict]) -> None:
    with ctx.step("the operator's pods are Ready"):
        _operator_ready(ctx, op, deployments)


def _operator_ready(ctx: Context, op: Operator, deployments: list[dict]) -> bool:
    described, ready_pods, all_pods = [], 0, 0
    available = False
    for d in deployments:
        meta, spec, status = d["metadata"], d.get("spec") or {}, d.get("status") or {}
        want, ready = spec.get("replicas", 1), status.get("readyReplicas", 0) or 0
        described.append(f"{meta['namespace']}/{meta['name']} {ready}/{want} ready")
        available = available or (want >= 1 and ready >= want)
        selector = _selector((spec.get("selector") or {}).get("matchLabels") or {})
        pods = ctx.kube.request("GET", f"/api/v1/namespaces/{meta['namespace']}/pods",
                                query={"labelSelector": selector} if selector else None
                                ).get("items", [])
        all_pods += len(pods)
        ready_pods += sum(_pod_ready(p) for p in pods)
    ctx.observe("operator deployments", described)
    name = "kuberay-operator" if op.group_version == RAY else "kubeflow-trainer"
    return ctx.check(f"the {name} Deployment is available with Ready pods",
                     available and ready_pods > 0,
                     f"{'; '.join(described)}; {ready_pods}/{all_pods} pods Ready")


# 3 ------------------------------------------------------------------------------------
def _its_crd_is_established(ctx: Context, op: Operator) -> None:
    with ctx.step("its CRD is Established"):
        _crd_established(ctx, op)


def _crd_established(ctx: Context, op: Operator) -> bool:
    try:
        crd = ctx.kube.request("GET", f"{CRDS}/{op.crd}")
    except ApiException as exc:
        return ctx.check(f"CRD {op.crd} is Established", False, f"HTTP {exc.status}")
    conds = (crd.get("status") or {}).get("conditions") or []
    established = any(c.get("type") == "Established" and c.get("status") == "True"
                      for c in conds)
    return ctx.check(f"CRD {op.crd} is Established", established,
                     ", ".join(f"{c.get('type')}={c.get('status')}" for c in conds) or
                     "no conditions")


# 4 ------------------------------------------------------------------------------------
def _its_webhook_refuses_an_invalid_object(ctx: Context, op: Operator, ns: str) -> None:
    with ctx.step("the admission webhook refuses an invalid object (dry run)"):
        _webhook(ctx, op, ns)


def _webhook(ctx: Context, op: Operator, ns: str) -> bool:
    configs = ctx.kube.request("GET", WEBHOOKS).get("items", [])
    covering = [(c, w) for c in configs for w in c.get("webhooks") or []
                if _covers(w, op.group, op.plural)]
    ctx.observe(f"webhooks covering {op.plural}",
                [f"{c['metadata']['name']}/{w['name']}" for c, w in covering])
    if not covering:
        ctx.log(f"no ValidatingWebhookConfiguration covers {op.group} {op.plural}: the "
                "operator ships no admission webhook, judged on the rest")
        return _schema_refuses(ctx, op, ns)
    for _, w in covering:
        service = (w.get("clientConfig") or {}).get("service")
        # The WG test's check, for a Service webhook: the API server trusts its serving
        # certificate only through caBundle. A URL webhook without one is verified against
        # the API server's system trust roots (admissionregistration.k8s.io/v1
        # WebhookClientConfig.caBundle: "If unspecified, system trust roots on the
        # apiserver are used"), so nothing is missing there.
        if service:
            ctx.check(f"webhook {w['name']} has a caBundle",
                      bool((w.get("clientConfig") or {}).get("caBundle")),
                      "set" if (w.get("clientConfig") or {}).get("caBundle") else "empty")
        if service:
            ready = _ready_endpoints(ctx, service.get("namespace", ""), service.get("name", ""))
            ctx.check(f"webhook {w['name']}'s Service {service.get('namespace')}/"
                      f"{service.get('name')} has ready endpoints", ready > 0,
                      f"{ready} ready endpoints")
    try:
        created = ctx.kube.request("POST", op.path(ns), query={"dryRun": "All"},
                                   body=op.invalid(ctx, INVALID_NAME))
    except ApiException as exc:
        message = _message(exc)
        ctx.observe("dry-run answer", f"HTTP {exc.status}: {message}")
        check = f"the webhook denies an invalid {op.kind} (dry run)"
        if "admission webhook" in message and "denied the request" in message:
            ctx.observe("denied by", message.split('"')[1] if '"' in message else "")
            return ctx.check(check, True, f"HTTP {exc.status}: {message}")
        if "failed calling webhook" in message or (exc.status or 0) >= 500:
            return ctx.check(check, False,
                             f"the webhook did not answer: HTTP {exc.status}: {message}")
        if exc.status == 422:
            raise ProbeError(f"the invalid {op.kind} was rejected by the API server's schema "
                             f"validation before any webhook was asked (HTTP 422: {message}); "
                             "cannot tell whether the webhook works") from None
        raise ProbeError(f"dry-run create of a {op.kind}: {one_line(exc)}") from None
    ctx.artifact(f"admitted-invalid-{op.kind.lower()}.json", json.dumps(created, indent=2))
    return ctx.check(f"the webhook denies an invalid {op.kind} (dry run)", False,
                     f"admitted: {op.fault}")


def _schema_refuses(ctx: Context, op: Operator, ns: str) -> bool:
    check = f"the API server refuses an invalid {op.kind} (schema validation, dry run)"
    try:
        created = ctx.kube.request("POST", op.path(ns), query={"dryRun": "All"},
                                   body=op.schema_invalid(ctx, "aicp-schema-invalid"))
    except ApiException as exc:
        message = _message(exc)
        ctx.observe("dry-run answer", f"HTTP {exc.status}: {message}")
        if exc.status == 422:
            return ctx.check(check, True, f"HTTP 422: {message}")
        raise ProbeError(f"dry-run create of a {op.kind}: {one_line(exc)}") from None
    ctx.artifact(f"admitted-invalid-{op.kind.lower()}.json", json.dumps(created, indent=2))
    return ctx.check(check, False, "admitted an object its CRD schema forbids")


def _ready_endpoints(ctx: Context, ns: str, service: str) -> int:
    try:
        slices = ctx.kube.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/"
                                  "endpointslices",
                                  query={"labelSelector": f"kubernetes.io/service-name={service}"})
    except ApiException:
        return 0
    return sum(1 for s in slices.get("items") or [] for e in s.get("endpoints") or []
               if (e.get("conditions") or {}).get("ready", True))


# 5 ------------------------------------------------------------------------------------
def _a_valid_object_reconciles_and_is_deleted(ctx: Context, op: Operator, ns: str) -> None:
    with ctx.step(f"a {op.kind} reconciles"):
        _reconcile(ctx, op, ns)


def _reconcile(ctx: Context, op: Operator, ns: str) -> bool:
    path = op.path(ns)
    created = ctx.kube.request("POST", path, body=op.valid(ctx, "probe"))
    ctx.track(created, namespace=ns, api_version=op.group_version)
    last: dict = {}
    started = time.monotonic()
    word = "ready" if op.group_version == RAY else "Complete"

    def ready():
        last["obj"] = ctx.kube.request("GET", f"{path}/probe")
        return op.ready(last["obj"])

    timeout = ctx.timeout("reconcile_timeout")
    done = ctx.wait_for(f"{op.kind} probe to be {word}", ready, timeout=timeout,
                        interval=ctx.timeout("poll"))
    obj = last.get("obj") or created
    ctx.artifact(f"{op.kind.lower()}.json", json.dumps(obj, indent=2))
    status = obj.get("status") or {}
    if isinstance(done, str):
        return ctx.check(f"a {op.kind} reconciles to {word}", False, done)
    if not done:
        if op.group_version == RAY:
            pods = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                                    query={"labelSelector": "ray.io/cluster=probe"}
                                    ).get("items", [])
            if pods:
                ctx.artifact("head-pod.json", json.dumps(pods[0], indent=2))
                raise ProbeError(f"the operator created head pod "
                                 f"{pods[0]['metadata']['name']} but it was not Ready within "
                                 f"{timeout:g}s ({_pod_state(pods[0])}): check node capacity "
                                 f"and that {ctx.image('busybox')} can be pulled")
        return ctx.check(f"a {op.kind} reconciles to {word}", False,
                         f"status {json.dumps(status) or '{}'} after {timeout:g}s: "
                         "the operator did not reconcile it")
    ctx.observe("ready after s", round(time.monotonic() - started, 1))
    ok = ctx.check(f"a {op.kind} reconciles to {word}", True,
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

    delete_timeout = ctx.timeout("delete_timeout")
    deleted = ctx.wait_for(f"{op.kind} probe to be deleted", gone, timeout=delete_timeout,
                           interval=ctx.timeout("poll"))
    return ctx.check(f"the {op.kind} is deleted (finalizers processed)", bool(deleted),
                     "gone" if deleted else f"still present after {delete_timeout:g}s") and ok


# The verdict ----------------------------------------------------------------------------
def _every_check_held(ctx: Context, op: Operator) -> str:
    """The PASS reason; else FAIL with every failed check, partial when some held."""
    checks = ctx.evidence.checks
    failed = [c for c in checks if not c.passed]
    if failed:
        raise Fail("; ".join(f"{c.name}: observed {c.observed}" for c in failed),
                   partial=len(failed) < len(checks))
    seen = ctx.evidence.observations
    hook = (f"webhook {seen.get('denied by')} denied an invalid {op.kind}"
            if seen.get("denied by") else
            f"it ships no admission webhook for {op.plural}, judged without one "
            f"(the API server's schema refused an invalid {op.kind})")
    return (f"{op.name} operator Ready, CRD {op.crd} Established; {hook}; a "
            f"{op.kind} reconciled in {seen.get('ready after s')}s and was deleted")


def _covers(webhook: dict, group: str, plural: str) -> bool:
    return discover.covers(webhook, group, plural)


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
