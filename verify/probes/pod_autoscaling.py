"""pod_autoscaling: an HPA scales GPU pods up on a metric a real GPU load drives, and back down.

The WG test's shape (kubernetes-sigs/ai-conformance KAR-0057 "Test Plan", HEAD af907ca):
pods that each hold an accelerator, an HPA on a custom metric, load drives the metric
above the target (scale-up), the load is removed (scale-down after the stabilization
window). Here, the cases in order:

1. a metrics API serves metrics: the custom metrics API (``custom.metrics.k8s.io``, per pod)
   or the external metrics API (``external.metrics.k8s.io``, per namespace);
2. a GPU can be requested: a node's GPU resource, else a DRA DeviceClass;
3. an idle GPU Deployment runs: one replica that holds a GPU and runs nothing on it;
4. the idle pod's metrics are read: the baseline.
5. a metric rises under a CUDA load: the Deployment switches to the CUDA samples' n-body in
   benchmark mode. NVML utilisation is the share of time a kernel ran, so an idle GPU reads
   0 (NVML API reference, ``nvmlUtilization_t.gpu``: "Percent of time over the past sample
   period during which one or more kernels was executing on the GPU",
   https://docs.nvidia.com/deploy/nvml-api/structnvmlUtilization__t.html); a loop of
   ``nvidia-smi`` runs no kernel and never moves it. A load the kubelet cannot pull or start
   (ImagePullBackOff, CrashLoopBackOff, StartError, ...) is ERROR at once in the kubelet's
   words: no metric could follow a load that never ran, so it is no verdict on the metrics
   pipeline. The metric that rose above its baseline under the load is the one to scale on,
   whatever its name (GPU utilisation preferred, then any GPU metric, then any other, e.g.
   a serving queue length).
6. the HPA scales up on that metric: it targets half the loaded value and must ask for a
   second replica.
7. the HPA scales back down without the load: with the HPA's scale-down stabilization window
   set to 0 the Deployment must come back to one replica once the load is switched off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from ..kube import GPU_RESOURCES
from ..probe import Context, Fail, Probe, ProbeError, Settings
from . import _gpus, _pods

CUSTOM = "custom.metrics.k8s.io"
CUSTOM_VERSIONS = ("v1beta2", "v1beta1")
EXTERNAL = "external.metrics.k8s.io"
EXTERNAL_VERSION = "v1beta1"
# Ranking only, never a filter: a metric of any name may be the one that follows the load.
GPU_METRIC = re.compile(r"gpu|dcgm", re.I)
PREFERRED = re.compile(r"util", re.I)
# prometheus-adapter's default rules serve every container_* series as a pod metric (dozens);
# each poll reads at most this many per API, GPU-named ones first.
MAX_METRICS = 20
APP_LABEL = "aicp.dev/verify-app"
LOAD_LABEL = "aicp.dev/verify-load"
# n-body in benchmark mode runs ``-i`` iterations back to back with no idle gap
# (NVIDIA/cuda-samples@2e41896 Samples/5_Domain_Specific/nbody/nbody.cpp: ``-benchmark``,
# ``-i=<iterations>``, default 10; default body count fills every SM). 2,000,000
# iterations outlast any run; the Deployment restarts it should it end.
LOAD = {"command": ["nbody"], "args": ["-benchmark", "-i=2000000"]}
IDLE = {"command": ["sleep", "infinity"], "args": []}


class PodAutoscaling(Probe):
    id = "pod_autoscaling"
    category = "schedulingOrchestration"
    needs = ("api:autoscaling/v2",)
    mutating = True
    title = "HorizontalPodAutoscaler scales GPU pods up and down on a metric a GPU load drives"
    timeouts = {
        # A GPU pod Running: image pull (the n-body image is ~300 MB; kOps waits 600 s for its
        # multi-GB vLLM image: kubernetes/kops@268927e tests/e2e/scenarios/ai-conformance/
        # validators/scheduling-orchestration/podautoscaling/podautoscaling_test.go).
        "pod_timeout": 300.0,
        # a sample after a change: DCGM scrape 30 s + adapter relist 60 s
        "metric_timeout": 180.0,
        # aicr: HPAScaleTimeout 3 min (NVIDIA/aicr@bc05c6b pkg/defaults/timeouts.go), counted,
        # as here, once the metric is served; kOps allows 30 x 30 s from the load's start
        # (same file), its metrics pipeline included. The HPA's sync period is 15 s
        # (kube-controller-manager --horizontal-pod-autoscaler-sync-period).
        "scale_timeout": 180.0,
        # metrics lag plus the rollout back to idle; window set to 0
        "scale_down_timeout": 300.0,
        "poll": 5.0,
        "margin": 60.0,  # requests and cleanup between the waits
    }

    @classmethod
    def budget(cls, settings: Settings) -> float:
        """Every wait in turn: two pod starts, two metric waits, scale-up and scale-down."""
        def wait(name: str) -> float:
            return cls.timeout(settings, name)
        return (2 * wait("pod_timeout") + 2 * wait("metric_timeout") + wait("scale_timeout")
                + wait("scale_down_timeout") + wait("margin"))

    def cases(self, ctx: Context) -> str:
        load = _Load(_a_metrics_api_serves_metrics(ctx))
        _a_gpu_can_be_requested(ctx, load)
        _an_idle_gpu_deployment_runs(ctx, load)
        _the_idle_pods_metrics_are_read(ctx, load)
        _a_metric_rises_under_a_cuda_load(ctx, load)
        _the_hpa_scales_up_on_that_metric(ctx, load)
        _the_hpa_scales_back_down_without_the_load(ctx, load)
        return (f"the HPA scaled the GPU Deployment 1 -> {load.replicas} -> 1 on "
                f"{load.api_name} metric {load.metric} (idle {load.idle_value:g}, n-body load "
                f"{load.value:g}, target {load.target})")


@dataclass
class _Load:
    """What the cases share: the metrics APIs, the GPU Deployment and what was read."""

    apis: list[_Api]
    resource: str | None = None       # the GPU extended resource, or None: a DRA claim
    device_class: str | None = None
    ns: str = ""
    baseline: dict[tuple[str, str], float] = field(default_factory=dict)  # idle samples
    loaded: dict[tuple[str, str], float] = field(default_factory=dict)    # under n-body
    api_name: str = ""                # "custom" or "external": the metric scaled on
    metric: str = ""
    value: float = 0.0                # its loaded value
    target: str = ""                  # the HPA's averageValue, half of it
    replicas: int = 0                 # after the scale-up

    @property
    def idle_value(self) -> float:
        return self.baseline.get((self.api_name, self.metric), 0.0)


def _a_metrics_api_serves_metrics(ctx: Context) -> list[_Api]:
    with ctx.step("find the metrics APIs"):
        found = _metric_apis(ctx)
        if isinstance(found, str):
            raise ProbeError(found)
        ctx.observe("metricsApis", {a.group + "/" + a.version: a.names for a in found})
        if not any(a.names for a in found):
            raise ProbeError(f"{', '.join(a.group + '/' + a.version for a in found)} serve no "
                             "metric (no pods/* custom metric, no external metric): configure "
                             "the adapter to expose DCGM metrics")
    return found


def _a_gpu_can_be_requested(ctx: Context, load: _Load) -> None:
    with ctx.step("find how to request a GPU"):
        load.resource = _gpu_resource(ctx)
        load.device_class = None if load.resource else _pods.device_class(ctx)
        if not load.resource and not load.device_class:
            raise ProbeError("no node advertises a GPU and no DeviceClass exists")


def _an_idle_gpu_deployment_runs(ctx: Context, load: _Load) -> None:
    timeout = ctx.timeout("pod_timeout")
    with ctx.step("start a one-replica GPU Deployment, idle"):
        load.ns = ns = ctx.namespace()
        if load.device_class:
            _pods.claim_template(ctx, ns, "one-gpu", load.device_class)
        _deployment(ctx, ns, load.resource)
        if not ctx.wait_for("the idle GPU pod Running",
                            lambda: _running(_load_pods(ctx, ns, "off")),
                            timeout=timeout, interval=ctx.timeout("poll")):
            raise ProbeError(f"the GPU Deployment's pod was not Running within {timeout:g}s "
                             "(no schedulable GPU node, or the image cannot be pulled)")


def _the_idle_pods_metrics_are_read(ctx: Context, load: _Load) -> None:
    with ctx.step("read the metrics of the idle GPU pod"):
        def sampled() -> bool:
            load.baseline.update(_sample(ctx, load.apis, load.ns, "off"))
            return bool(load.baseline)
        ctx.wait_for("a first sample of the idle pod", sampled,
                     timeout=ctx.timeout("metric_timeout"), interval=ctx.timeout("poll"))
        ctx.observe("idle", _shown(load.baseline))


def _a_metric_rises_under_a_cuda_load(ctx: Context, load: _Load) -> None:
    """Some metric rises above its idle value while n-body runs; a load that cannot run is
    ERROR in the kubelet's words (no metric could follow it)."""
    ns, baseline, loaded = load.ns, load.baseline, load.loaded
    pod_timeout, metric_timeout = ctx.timeout("pod_timeout"), ctx.timeout("metric_timeout")
    with ctx.step("run a CUDA compute load (n-body) and wait for a metric to rise"):
        _switch(ctx, ns, "on")
        broken = ""  # what the kubelet says is wrong with the load, once it says so

        def started() -> bool:
            nonlocal broken
            pods = _load_pods(ctx, ns, "on")
            broken = _load_failure(ctx, pods) or ""
            return bool(broken) or _running(pods)
        # A pull that fails leaves the pod Pending: say so now, in the kubelet's words.
        if not ctx.wait_for("the loaded GPU pod Running", started,
                            timeout=pod_timeout, interval=ctx.timeout("poll")):
            raise ProbeError(f"the n-body GPU pod was not Running within {pod_timeout:g}s "
                             f"(image {ctx.image('cuda-nbody')} not pulled, or no GPU free)")

        def rose() -> bool:
            nonlocal broken
            broken = _load_failure(ctx, _load_pods(ctx, ns, "on")) or ""
            if broken:
                return True
            loaded.update(_sample(ctx, load.apis, ns, "on"))
            return bool(_risen(baseline, loaded))
        if not broken:
            ctx.wait_for("a metric above its idle value", rose, timeout=metric_timeout,
                         interval=ctx.timeout("poll"))
        if broken:
            # Not the metrics pipeline's fault: the load never ran, so nothing could rise.
            raise ProbeError(f"the n-body load did not run ({broken}): "
                             f"{ctx.image('cuda-nbody')} could not run a CUDA load there, "
                             "so no metric could follow it")
        ctx.observe("loaded", _shown(loaded))
        risen = _risen(baseline, loaded)
        if not ctx.check("a metric rises under the GPU load", bool(risen),
                         _compare(baseline, loaded)):
            raise ProbeError(f"no metric the metrics APIs serve for the GPU pod rose under "
                             f"an n-body compute load within {metric_timeout:g}s "
                             f"({_compare(baseline, loaded) or 'no samples'}): the "
                             "metrics pipeline does not follow GPU load")
        (load.api_name, load.metric), load.value = risen[0], loaded[risen[0]]
        load.target = _half(load.value)


def _the_hpa_scales_up_on_that_metric(ctx: Context, load: _Load) -> None:
    """An HPA targeting half the loaded value asks for a second replica."""
    ns, metric, target = load.ns, load.metric, load.target
    timeout = ctx.timeout("scale_timeout")
    with ctx.step("create the HPA and wait for a scale-up"):
        _pods.create(ctx, f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
                     _hpa(load.api_name, metric, target), ns)
        ctx.observe("hpaMetric", {"api": load.api_name, "name": metric,
                                  "idle": str(load.idle_value), "loaded": str(load.value),
                                  "target": target})
        scaled = ctx.wait_for("the Deployment scaled above 1 replica",
                              lambda: _replicas(ctx, ns) > 1, timeout=timeout,
                              interval=ctx.timeout("poll"))
        hpa = _read_hpa(ctx, ns)
        load.replicas = _replicas(ctx, ns)
        if not ctx.check(f"the HPA scales the GPU Deployment up on {metric}", bool(scaled),
                         f"{metric}={load.value:g} vs target {target}; replicas "
                         f"{load.replicas}; {_conditions(hpa)}"):
            now = _sample(ctx, load.apis, ns, "on").get((load.api_name, metric), 0.0)
            if now <= float(parse_quantity(target)):
                raise ProbeError(f"{metric} fell to {now:g}, not above the target {target}, "
                                 "before the HPA acted: cannot decide")
            raise Fail(f"the HPA did not scale the GPU Deployment within {timeout:g}s while "
                       f"{metric} was {now:g} against a target of {target} "
                       f"({_conditions(hpa)})")


def _the_hpa_scales_back_down_without_the_load(ctx: Context, load: _Load) -> None:
    """With the load switched off and no stabilization window, one replica again."""
    ns = load.ns
    timeout = ctx.timeout("scale_down_timeout")
    with ctx.step("remove the load and wait for a scale-down"):
        _switch(ctx, ns, "off")
        down = ctx.wait_for("the Deployment back to 1 replica",
                            lambda: _replicas(ctx, ns) == 1, timeout=timeout,
                            interval=ctx.timeout("poll"))
        hpa = _read_hpa(ctx, ns)
        ctx.artifact("hpa.json", json.dumps(hpa, indent=2))
        after = _replicas(ctx, ns)
        if not ctx.check(f"the HPA scales the GPU Deployment back down on {load.metric}",
                         bool(down), f"replicas {after}; {_conditions(hpa)}"):
            raise Fail(f"the HPA scaled the GPU Deployment up to {load.replicas} on "
                       f"{load.metric} but not back to 1 within {timeout:g}s of the load's "
                       f"end (replicas {after}; {_conditions(hpa)})", partial=True)


class _Api:
    """A served metrics API version and the metric names it lists."""

    def __init__(self, group: str, version: str, names: list[str]):
        self.group, self.version, self.names = group, version, names

    @property
    def kind(self) -> str:
        return "custom" if self.group == CUSTOM else "external"


def _metric_apis(ctx: Context) -> list[_Api] | str:
    """The served metrics APIs with their metric names (ranked), or why none can be used."""
    apis: list[_Api] = []
    for group, versions, prefix in ((CUSTOM, CUSTOM_VERSIONS, "pods/"),
                                    (EXTERNAL, (EXTERNAL_VERSION,), "")):
        for version in versions:
            try:
                doc = ctx.kube.request("GET", f"/apis/{group}/{version}")
            except ApiException as exc:
                if exc.status == 404:
                    continue
                return (f"{group}/{version} is registered but not answering (HTTP "
                        f"{exc.status}): check the APIService and the metrics adapter")
            names = [r["name"].removeprefix(prefix) for r in doc.get("resources") or []
                     if r.get("name", "").startswith(prefix) and "/" not in
                     r["name"].removeprefix(prefix)]
            apis.append(_Api(group, version, sorted(names, key=_rank)[:MAX_METRICS]))
            break
    if not apis:
        return (f"neither the custom metrics API ({CUSTOM}) nor the external metrics API "
                f"({EXTERNAL}) is served: install a metrics adapter (e.g. prometheus-adapter) "
                "exposing GPU metrics")
    return apis


def _rank(name: str) -> tuple[bool, bool, str]:
    return (not GPU_METRIC.search(name), not PREFERRED.search(name), name)


def _gpu_resource(ctx: Context) -> str | None:
    """A GPU extended resource some node offers: whole GPUs first, then MIG instances or
    renamed shared GPUs (``_gpus.is_gpu_resource``)."""
    for node in ctx.kube.items("/api/v1/nodes"):
        found = _gpus.gpu_resources(node)
        if found:
            return min(found, key=lambda r: (r not in GPU_RESOURCES, r))
    return None


def _deployment(ctx: Context, ns: str, resource: str | None) -> dict:
    container: dict = {"name": "load", "image": ctx.image("cuda-nbody"), **IDLE}
    spec: dict = {"terminationGracePeriodSeconds": 0, "tolerations": [{"operator": "Exists"}],
                  "containers": [container],
                  # amd64 first where there is a choice: see ARM64_NOTE.
                  "affinity": {"nodeAffinity": {
                      "preferredDuringSchedulingIgnoredDuringExecution": [{
                          "weight": 100, "preference": {"matchExpressions": [{
                              "key": "kubernetes.io/arch", "operator": "In",
                              "values": ["amd64"]}]}}]}}}
    if resource:
        container["resources"] = {"limits": {resource: "1"}}
    else:
        container["resources"] = {"claims": [{"name": "gpu"}]}
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    return _pods.create(ctx, f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gpu-load"},
        # Recreate, not RollingUpdate: a surge pod would wait for a GPU the old pod holds
        # (one-GPU clusters), leaving the load running and the metric high.
        "spec": {"replicas": 1, "selector": {"matchLabels": {APP_LABEL: "gpu-load"}},
                 "strategy": {"type": "Recreate"},
                 "template": {"metadata": {"labels": {**ctx.labels, APP_LABEL: "gpu-load",
                                                      LOAD_LABEL: "off"}},
                              "spec": spec}}}, ns)


def _switch(ctx: Context, ns: str, load: str) -> None:
    """Roll the Deployment's pods to the load (``on``) or to idle (``off``); a PUT of what
    was read, so a concurrent HPA write of ``replicas`` is a 409 retried, never lost."""
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-load"
    for _ in range(5):
        dep = ctx.kube.request("GET", path)
        template = dep["spec"]["template"]
        template["metadata"]["labels"][LOAD_LABEL] = load
        template["spec"]["containers"][0].update(LOAD if load == "on" else IDLE)
        try:
            ctx.kube.request("PUT", path, body=dep)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise ProbeError(f"could not switch the GPU Deployment's load {load}: five conflicting "
                     "writes in a row")


def _selector(load: str) -> str:
    return f"{APP_LABEL}=gpu-load,{LOAD_LABEL}={load}"


# Why a container is not running its command, as the kubelet words it in
# containerStatuses[].state.waiting.reason (kubernetes pkg/kubelet/container/sync_result.go:
# CrashLoopBackOff, RunContainerError; pkg/kubelet/images/types.go: ErrImagePull,
# ImagePullBackOff, InvalidImageName; kuberuntime: CreateContainerError,
# CreateContainerConfigError) or containerd's terminated reason StartError (CRI
# ``errorStartReason``, exit code 128).
BROKEN = ("CrashLoopBackOff", "StartError", "RunContainerError", "CreateContainerError",
          "CreateContainerConfigError", "ErrImagePull", "ImagePullBackOff", "InvalidImageName")
# n-body's arm64 manifest entry is reported to carry an x86-64 binary (images.py).
ARM64_NOTE = ("; the node is arm64, where the n-body tag's arm64 entry is reported to hold an "
              "x86-64 binary (see verify/images.py): an amd64 GPU node is preferred when the "
              "cluster has one")


def _load_failure(ctx: Context, pods: list[dict]) -> str | None:
    """What the kubelet says is wrong with a loaded pod's container, when it crashed, could
    not start or could not be pulled; a clean exit (n-body finished) is no failure."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            ended = ((cs.get("state") or {}).get("terminated")
                     or (cs.get("lastState") or {}).get("terminated") or {})
            if waiting.get("reason") not in BROKEN and ended.get("exitCode") in (0, None):
                continue
            words = [waiting.get("reason"),
                     f"exit code {ended['exitCode']}" if ended.get("exitCode") else None,
                     ended.get("reason"), ended.get("message") or waiting.get("message")]
            node = (pod.get("spec") or {}).get("nodeName") or "no node"
            arch = _arch(ctx, node)
            return (f"pod {pod['metadata']['name']} on {node}: "
                    + ", ".join(w for w in words if w) + (ARM64_NOTE if arch == "arm64" else ""))
    return None


def _arch(ctx: Context, node: str) -> str:
    try:
        found = ctx.kube.request("GET", f"/api/v1/nodes/{node}")
    except ApiException:
        return ""
    return _gpus.labels(found).get("kubernetes.io/arch", "")


def _load_pods(ctx: Context, ns: str, load: str) -> list[dict]:
    """The Deployment's pods in state ``load`` (one list call)."""
    return ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                            query={"labelSelector": _selector(load)}).get("items", [])


def _running(pods: list[dict]) -> bool:
    return any((p.get("status") or {}).get("phase") == "Running" for p in pods)


def _sample(ctx: Context, apis: list[_Api], ns: str, load: str
            ) -> dict[tuple[str, str], float]:
    """(api kind, metric) -> the value for the pods in state ``load`` (custom: their
    average) or for the namespace (external: the sum of its series, as the HPA's
    AverageValue target divides it by the replicas)."""
    out: dict[tuple[str, str], float] = {}
    for api in apis:
        for metric in api.names:
            if api.group == CUSTOM:
                path = f"/apis/{CUSTOM}/{api.version}/namespaces/{ns}/pods/*/{metric}"
                query = {"labelSelector": _selector(load)}
            else:
                path = f"/apis/{EXTERNAL}/{api.version}/namespaces/{ns}/{metric}"
                query = {}
            try:
                doc = ctx.kube.request("GET", path, query=query)
            except ApiException:
                continue
            values = [float(parse_quantity(i["value"])) for i in doc.get("items") or []]
            if values:
                out[(api.kind, metric)] = (sum(values) / len(values) if api.group == CUSTOM
                                           else sum(values))
    return out


def _risen(idle: dict[tuple[str, str], float], loaded: dict[tuple[str, str], float]
           ) -> list[tuple[str, str]]:
    """Metrics above their idle value (none read counts as 0), best ranked first."""
    up = [k for k, v in loaded.items() if v > 0 and v > idle.get(k, 0.0)]
    return sorted(up, key=lambda k: (k[0] != "custom", _rank(k[1])))


def _shown(values: dict[tuple[str, str], float]) -> dict[str, str]:
    return {f"{kind}/{metric}": f"{v:g}" for (kind, metric), v in sorted(values.items())}


def _compare(idle: dict[tuple[str, str], float], loaded: dict[tuple[str, str], float]) -> str:
    keys = sorted(set(idle) | set(loaded))
    return ", ".join(f"{m} {idle.get((k, m), 0.0):g} -> {loaded.get((k, m), 0.0):g}"
                     for k, m in keys)


def _hpa(kind: str, metric: str, target: str) -> dict:
    if kind == "custom":
        spec = {"type": "Pods", "pods": {"metric": {"name": metric}, "target": {
            "type": "AverageValue", "averageValue": target}}}
    else:
        spec = {"type": "External", "external": {"metric": {"name": metric}, "target": {
            "type": "AverageValue", "averageValue": target}}}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "gpu-load"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "gpu-load"},
                     "minReplicas": 1, "maxReplicas": 2, "metrics": [spec],
                     # The default scale-down stabilization window is 300 s (kubernetes
                     # pkg/controller/podautoscaler, --horizontal-pod-autoscaler-downscale-
                     # stabilization); 0 lets the probe see the scale-down at once.
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}


def _half(value: float) -> str:
    return f"{max(1, int(value * 500))}m"


def _replicas(ctx: Context, ns: str) -> int:
    dep = ctx.kube.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-load")
    return int((dep.get("spec") or {}).get("replicas") or 0)


def _read_hpa(ctx: Context, ns: str) -> dict:
    return ctx.kube.request(
        "GET", f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/gpu-load")


def _conditions(hpa: dict) -> str:
    conds = (hpa.get("status") or {}).get("conditions") or []
    return "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip()
                     for c in conds) or "no HPA conditions"
