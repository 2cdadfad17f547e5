"""A KubeRay-like operator: the RayCluster validating webhook and a head-only reconciler.

The webhook mirrors KubeRay's ``RayClusterWebhook.validateRayCluster``
(ray-operator/pkg/webhooks/v1/raycluster_webhook.go): the name must be a DNS-1035 label of
at most 53 characters (``utils.MaxRayClusterNameLength``) and worker group names must be
unique. A denial reads as kube-apiserver words a webhook's answer: HTTP 422, message
``admission webhook "vraycluster.kb.io" denied the request: RayCluster.ray.io "<name>" is
invalid: [...]``. The ``ValidatingWebhookConfiguration`` is upstream's
``config/webhook/manifests.yaml`` entry.

The reconciler builds the head pod as KubeRay v1.7.0 does (ray-operator/controllers/ray/
common/pod.go): from ``headGroupSpec.template``, owned by the RayCluster so deletion
removes it; unless the RayCluster (``initTemplateAnnotations``) or the template carries
``ray.io/overwrite-container-cmd: "true"`` (any case) or the container's command and args
already say ``ray start``, ``BuildPod`` replaces the command with ``/bin/bash -c --`` and
the args with ``ulimit -n ...; ray start --head ...``; ``initLivenessAndReadinessProbe``
gives the container a ``bash -c "wget ... | grep success"`` readiness and liveness probe
where it has none (an HTTP GET on the dashboard agent from ``rayVersion`` 2.53.0). A head
that needs Ray that way (it runs ``ray start`` or ``bash``, or probes the Ray agent) runs
only in a Ray image: ``rayproject/ray`` or ``rayproject/ray-ml`` under any registry,
mirror or tag, the emulator's stand-in for "the image has bash and Ray". In any other image
the pod stays not Ready: ``CrashLoopBackOff`` when the command cannot start, Running but
unready when only a probe fails. ``status.state: ready`` and the ``HeadPodReady``/
``RayClusterProvisioned`` conditions follow ``calculateStatus`` (raycluster_controller.go):
once the Ray pods number the desired workers plus the head and all are Running and Ready
(``utils.CheckAllPodsRunning``). No workers, services, autoscaler or suspend.
"""

from __future__ import annotations

import re

from .. import errors
from ..store import now
from .base import Controller
from .workloads import owner_ref, pod_from_template

WEBHOOK = "vraycluster.kb.io"
MAX_NAME = 53
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def invalid_fields(obj: dict) -> list[str]:
    """KubeRay's reasons to deny a RayCluster, as ``field: Invalid value: ...`` strings."""
    name = obj["metadata"].get("name", "")
    out = []
    if len(name) > MAX_NAME:
        out.append(f'metadata.name: Invalid value: "{name}": RayCluster name should be no '
                   f"more than {MAX_NAME} characters")
    elif not _DNS1035.match(name):
        out.append(f'metadata.name: Invalid value: "{name}": RayCluster name should be a '
                   "valid DNS1035 label")
    seen: set[str] = set()
    for i, group in enumerate((obj.get("spec") or {}).get("workerGroupSpecs") or []):
        if group.get("groupName") in seen:
            out.append(f"spec.workerGroupSpecs[{i}]: Invalid value: \"{group['groupName']}\": "
                       "worker group names must be unique")
            break
        seen.add(group.get("groupName"))
    return out


# A PEM bundle as cert-manager's CA injector writes it (base64 of "-----BEGIN CERTIFICATE").
CA_BUNDLE = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="


def webhook_configuration(namespace: str = "ray-system",
                          name: str = "kuberay-validating-webhook-configuration",
                          service: str = "kuberay-webhook-service",
                          ca_bundle: str = CA_BUNDLE) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": WEBHOOK, "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": service,
                                             "namespace": namespace,
                                             "path": "/validate-ray-io-v1-raycluster",
                                             "port": 443},
                                 **({"caBundle": ca_bundle} if ca_bundle else {})},
                "failurePolicy": "Fail", "sideEffects": "None", "timeoutSeconds": 10,
                "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
                "rules": [{"apiGroups": ["ray.io"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["rayclusters"],
                           "scope": "*"}]}]}


def webhook_service(namespace: str, name: str, endpoints: int = 1) -> list[dict] | dict:
    """The webhook's Service and the EndpointSlice naming its ready operator pods."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 9443, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.244.9.{i + 10}"], "conditions": {"ready": True}}
                          for i in range(endpoints)]}


# KubeRay v1.7.0 ray-operator/controllers/ray/utils/constant.go and common/pod.go.
OVERWRITE_CMD = "ray.io/overwrite-container-cmd"  # RayOverwriteContainerCmdAnnotationKey
AGENT_PORT, DASHBOARD_PORT, METRICS_PORT = 52365, 8265, 8080
WGET = "wget --tries 1 -T {} -q -O- http://localhost:{}/{} | grep success"  # BaseWgetHealthCommand
RAY_IMAGES = ("rayproject/ray", "rayproject/ray-ml")
_CMD_LOST = "CrashLoopBackOff"


def _overwrites_cmd(rc: dict, template: dict) -> bool:
    """``initTemplateAnnotations`` copies the RayCluster's annotation onto the template;
    ``BuildPod`` reads the template's (``strings.ToLower(v) == "true"``)."""
    values = [((rc["metadata"].get("annotations") or {}).get(OVERWRITE_CMD)),
              (((template.get("metadata") or {}).get("annotations") or {}).get(OVERWRITE_CMD))]
    return any(str(v).lower() == "true" for v in values if v is not None)


def _ray_start(params: dict) -> str:
    """``generateRayStartCommand`` for the head: its defaults (``--block``, the dashboard
    host and agent port, the metrics port) plus ``rayStartParams``, flags sorted
    (``convertParamMap``); num-cpus/memory from resources left out."""
    merged = {"block": "true", "dashboard-agent-listen-port": str(AGENT_PORT),
              "dashboard-host": "0.0.0.0", "metrics-export-port": str(METRICS_PORT),
              **{k: str(v) for k, v in params.items()}}
    flags = "".join(f" --{k} " if v.lower() == "true" else f" --{k}={v} "
                    for k, v in sorted(merged.items()) if v.lower() != "false")
    return f"ray start --head {flags}"


def _injected_probe(rc: dict, readiness: bool) -> dict:
    """``initLivenessAndReadinessProbe``'s head probe: HTTP GET /api/healthz on the agent
    from Ray 2.53.0 (``supportsUnifiedHealthCheck``), else bash + wget on raylet and GCS."""
    version = str((rc.get("spec") or {}).get("rayVersion") or "")
    parts = [int(x) for x in re.findall(r"\d+", version)[:3]]
    timing = ({"initialDelaySeconds": 10, "timeoutSeconds": 5, "periodSeconds": 5,
               "successThreshold": 1, "failureThreshold": 10} if readiness else
              {"initialDelaySeconds": 30, "timeoutSeconds": 5, "periodSeconds": 5,
               "successThreshold": 1, "failureThreshold": 120})
    if len(parts) == 3 and parts >= [2, 53, 0]:
        return {**timing, "httpGet": {"path": "/api/healthz", "port": AGENT_PORT}}
    checks = [WGET.format(2, AGENT_PORT, "api/local_raylet_healthz"),
              WGET.format(10, DASHBOARD_PORT, "api/gcs_healthz")]
    return {**timing, "exec": {"command": ["bash", "-c", " && ".join(checks)]}}


def build_head_pod(rc: dict, name: str) -> dict:
    """The head pod ``BuildPod`` makes of ``headGroupSpec.template`` (module doc)."""
    spec = rc["spec"]["headGroupSpec"]
    template = spec["template"]
    pod = pod_from_template(rc, name, template)
    if _overwrites_cmd(rc, template):
        pod["metadata"]["annotations"] = {**(pod["metadata"].get("annotations") or {}),
                                          OVERWRITE_CMD: "true"}
    ray = pod["spec"]["containers"][0]  # utils.RayContainerIndex
    cmd = "".join(f" {w} " for w in [*(ray.get("command") or []), *(ray.get("args") or [])])
    if not _overwrites_cmd(rc, template) and "ray start" not in cmd:
        generated = (f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; "
                     f"{_ray_start(spec.get('rayStartParams') or {})}")
        ray["command"] = ["/bin/bash", "-c", "--"]  # utils.GetContainerCommand
        ray["args"] = [f"{cmd} && {generated}" if cmd else generated]
    for key, readiness in (("livenessProbe", False), ("readinessProbe", True)):
        if ray.get(key) is None:
            ray[key] = _injected_probe(rc, readiness)
    return pod


def _ray_image(image: str) -> bool:
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    repo = repo[:len(repo) - len(last)] + last.split(":", 1)[0]
    return any(repo == r or repo.endswith("/" + r) for r in RAY_IMAGES)


def _needs_ray(container: dict) -> tuple[bool, bool]:
    """(its command needs bash or Ray, a probe does)."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    command = bool(words) and (words[0] in ("bash", "/bin/bash") or "ray start" in " ".join(words))
    probes = [container.get(k) or {} for k in ("readinessProbe", "livenessProbe")]
    probe = any(((p.get("exec") or {}).get("command") or [""])[0] in ("bash", "/bin/bash")
                or (p.get("httpGet") or {}).get("port") == AGENT_PORT for p in probes)
    return command, probe


def cannot_run(pod: dict) -> tuple[str, bool] | None:
    """(the Ray container, whether its command fails) when it needs Ray but its image is
    not a Ray image; None when it runs."""
    ray = pod["spec"]["containers"][0]
    command, probe = _needs_ray(ray)
    if (command or probe) and not _ray_image(ray.get("image", "")):
        return ray["name"], command
    return None


def _break(pod: dict, container: str, command: bool) -> None:
    """The kubelet's view of a container without bash or Ray: the command fails to start
    (``exec: "/bin/bash": ... no such file``, back-off) or the readiness probe fails."""
    status, stamp = pod["status"], now()
    for c in status.get("conditions") or []:
        if c["type"] in ("Ready", "ContainersReady") and c["status"] != "False":
            c.update(status="False", reason="ContainersNotReady", lastTransitionTime=stamp,
                     message=f"containers with unready status: [{container}]")
    for cs in status.get("containerStatuses") or []:
        if cs["name"] != container:
            continue
        cs["ready"] = False
        if command:
            cs.update(started=False, restartCount=max(cs.get("restartCount", 0), 1),
                      state={"waiting": {"reason": _CMD_LOST, "message":
                                         f"back-off 10s restarting failed container="
                                         f"{container} pod={pod['metadata']['name']}"}},
                      lastState={"terminated": {
                          "exitCode": 128, "reason": "StartError", "startedAt": None,
                          "finishedAt": stamp, "message": 'exec: "/bin/bash": stat /bin/bash: '
                          "no such file or directory"}})


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _ray_head(pod: dict) -> bool:
    """Ray head pods, from a set the store keeps (``KubeAPI.view``'s ``where``)."""
    return (pod["metadata"].get("labels") or {}).get("ray.io/node-type") == "head"


class KubeRay(Controller):
    """``KubeRay().install(kube)``; ``webhook=False`` leaves the webhook out entirely,
    ``admit_all=True`` registers it but admits everything (a broken webhook)."""

    name = "kuberay"
    watches = ("rayclusters.ray.io", "pods")

    def __init__(self, *, webhook: bool = True, admit_all: bool = False,
                 reconcile: bool = True, namespace: str = "ray-system",
                 configuration: dict | None = None, endpoints: int = 1):
        self.webhook, self.admit_all = webhook, admit_all
        self.reconcile, self.namespace = reconcile, namespace
        self.configuration = configuration or webhook_configuration(namespace)
        self.endpoints = endpoints

    def install(self, kube) -> KubeRay:
        if self.webhook:
            service = self.configuration["webhooks"][0]["clientConfig"]["service"]
            kube.seed([self.configuration,
                       webhook_service(service["namespace"], service["name"], self.endpoints)])
            kube.admit(self.admit)
        if self.reconcile:
            kube.add(self)
        return self

    def admit(self, res, obj: dict, old) -> None:
        if res.key != ("ray.io", "rayclusters") or self.admit_all:
            return
        causes = invalid_fields(obj)
        if causes:
            name = obj["metadata"].get("name", "")
            summary = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
            raise errors.ApiError(
                422, "Invalid", f'admission webhook "{WEBHOOK}" denied the request: '
                f'RayCluster.ray.io "{name}" is invalid: {summary}',
                {"name": name, "group": "ray.io", "kind": "RayCluster"})

    def sync(self, kube) -> None:
        pods = kube.list("pods", labels="ray.io/node-type=head", where=_ray_head)
        for rc in kube.list("rayclusters.ray.io"):
            meta = rc["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            ns, name = meta["namespace"], meta["name"]
            head = next((p for p in pods if p["metadata"]["namespace"] == ns
                         and (p["metadata"].get("labels") or {}).get("ray.io/cluster") == name),
                        None)
            if head is None:
                pod = build_head_pod(rc, f"{name}-head-{meta['uid'][:5]}")
                pod["metadata"]["labels"] = {**pod["metadata"]["labels"],
                                             "ray.io/cluster": name, "ray.io/node-type": "head",
                                             "ray.io/is-ray-node": "yes"}
                pod["metadata"]["ownerReferences"] = [owner_ref(rc)]
                kube.create(pod)
                continue
            broken = cannot_run(head)
            if broken is not None:  # before the ready check: the kubelet marked it Ready
                if (head.get("status") or {}).get("phase") == "Running" and _ready(head):
                    kube.mutate("pods", head["metadata"]["name"],
                                lambda p, b=broken: _break(p, *b), ns, status=True)
                continue
            workers = sum(int(g.get("replicas") or 0)
                          for g in rc["spec"].get("workerGroupSpecs") or [])
            ray_pods = [head]  # no workers are created (module doc)
            running = all((p.get("status") or {}).get("phase") == "Running" and _ready(p)
                          for p in ray_pods)
            status = rc.get("status") or {}
            if len(ray_pods) == workers + 1 and running and status.get("state") != "ready":
                stamp = now()
                conditions = [
                    {"type": "HeadPodReady", "status": "True", "reason": "HeadPodRunningAndReady",
                     "message": "", "lastTransitionTime": stamp},
                    {"type": "RayClusterProvisioned", "status": "True",
                     "reason": "AllPodRunningAndReadyFirstTime",
                     "message": "All Ray Pods are ready for the first time",
                     "lastTransitionTime": stamp}]

                def report(obj: dict, conditions=conditions, stamp=stamp, head=head) -> None:
                    obj["status"] = {"state": "ready", "conditions": conditions,
                                     "readyWorkerReplicas": 0, "availableWorkerReplicas": 0,
                                     "desiredWorkerReplicas": 0, "observedGeneration":
                                         obj["metadata"].get("generation", 1),
                                     "head": {"podName": head["metadata"]["name"],
                                              "podIP": head["status"].get("podIP", "")},
                                     "lastUpdateTime": stamp}
                kube.mutate("rayclusters.ray.io", name, report, ns, status=True)
