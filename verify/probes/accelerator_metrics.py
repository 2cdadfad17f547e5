"""accelerator_metrics: every GPU node runs a metrics exporter serving per-device
utilisation and memory in Prometheus format.

Read-only. Finds the DCGM exporter pods (label ``app=nvidia-dcgm-exporter``, as the GPU
Operator labels them, or the pods of a DaemonSet running an image named
``dcgm-exporter``), reads each GPU
node's exporter through the API server's pod proxy (``pods/<pod>:9400/proxy/metrics``)
and parses the exposition: ``DCGM_FI_DEV_GPU_UTIL`` and ``DCGM_FI_DEV_FB_USED`` /
``DCGM_FI_DEV_FB_FREE`` must be there for every GPU of the node, labelled per device
(``gpu``/``UUID``). Temperature and power are recorded when present, not required.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Probe, one_line
from ..result import Result
from . import _prom

EXPORTER_PORT = 9400
EXPORTER_LABELS = {"app": "nvidia-dcgm-exporter",
                   "app.kubernetes.io/name": "dcgm-exporter"}
EXPORTER_IMAGE = "dcgm-exporter"
GPU_RESOURCE = "nvidia.com/gpu"
UTILISATION = "DCGM_FI_DEV_GPU_UTIL"
MEMORY = ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE")
OPTIONAL = {"temperature": "DCGM_FI_DEV_GPU_TEMP", "power": "DCGM_FI_DEV_POWER_USAGE"}


class AcceleratorMetrics(Probe):
    id = "accelerator_metrics"
    category = "observability"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    # GPU nodes are found here, not with the "gpu_nodes" need: DRA pools advertise no
    # nvidia.com/gpu extended resource, only the node label.
    needs = ()
    mutating = False
    title = "Per-accelerator utilisation and memory metrics on every GPU node"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find GPU nodes"):
            gpus = gpu_nodes(ctx.kube.items("/api/v1/nodes"))
            ctx.observe("gpuNodes", gpus)
            if not gpus:
                return ctx.skip("not applicable: no GPU node (no nvidia.com/gpu allocatable, "
                                "no nvidia.com/gpu.present=true label)")
        with ctx.step("find DCGM exporter pods"):
            pods = exporter_pods(ctx)
            ctx.observe("exporterPods", [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                         f" on {p['spec'].get('nodeName')}" for p in pods])
            if not pods:
                return ctx.error(
                    "no DCGM exporter pod found (label app=nvidia-dcgm-exporter, or a DaemonSet "
                    "running a dcgm-exporter image): install the GPU Operator's DCGM "
                    "exporter, or the platform uses a different accelerator metrics exporter "
                    "that this probe does not know: verify it by hand")
        unreachable: list[str] = []
        for node, expected in sorted(gpus.items()):
            with ctx.step(f"read the exporter on {node}"):
                pod = next((p for p in pods if p["spec"].get("nodeName") == node and _ready(p)),
                           None)
                if not ctx.check(f"{node} runs a Ready DCGM exporter pod", pod is not None,
                                 "none" if pod is None else pod["metadata"]["name"]) or pod is None:
                    continue
                ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
                port = _metrics_port(pod)
                path = f"/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/metrics"
                try:
                    text = ctx.kube.request("GET", path, text=True)
                except ApiException as exc:
                    unreachable.append(f"{node} ({ns}/{name}: {one_line(exc)})")
                    ctx.log(f"cannot read {path}: {one_line(exc)}")
                    continue
                ctx.artifact(f"metrics-{node}.txt", text)
                _judge_node(ctx, node, expected, _prom.parse(text))
        failed = [c for c in ctx.evidence.checks if not c.passed]
        if failed:
            return ctx.failed("accelerator metrics missing: " + "; ".join(
                f"{c.name} (observed: {c.observed})" for c in failed[:3]))
        if unreachable:
            return ctx.error("could not read the DCGM exporter through the API server's pod "
                             "proxy on " + "; ".join(unreachable) + ": the control plane may "
                             f"not reach pod port {EXPORTER_PORT} (firewall); verify by hand")
        return ctx.passed(f"the DCGM exporter on each of {len(gpus)} GPU node(s) serves "
                          "per-device utilisation and framebuffer memory metrics")


def _judge_node(ctx: Context, node: str, expected: int | None, exposition: _prom.Exposition,
                ) -> None:
    devices = {metric: _devices(exposition.series(metric)) for metric in (UTILISATION, *MEMORY)}
    for key, metric in OPTIONAL.items():
        ctx.observe(f"{node}.{key}", sorted(_devices(exposition.series(metric))))
    ctx.observe(f"{node}.models", sorted({s.labels.get("modelName", "") for s in
                                          exposition.series(UTILISATION)} - {""}))
    if exposition.errors:
        ctx.observe(f"{node}.parseErrors", exposition.errors[:5])
    want = f" for all {expected} GPUs" if expected else ""
    for label, metrics in (("utilisation", (UTILISATION,)), ("memory", MEMORY)):
        for metric in metrics:
            seen = devices[metric]
            ok = bool(seen) and (not expected or len(seen) >= expected)
            ctx.check(f"{node} exports {label} {metric} per device{want}", ok,
                      f"{len(seen)} device(s)" + (f": {', '.join(sorted(seen)[:8])}"
                                                  if seen else " (metric absent)"))


def _devices(samples: list[_prom.Sample]) -> set[str]:
    """Distinct devices among samples labelled per device (UUID, else gpu index)."""
    return {s.labels.get("UUID") or f"gpu {s.labels['gpu']}" for s in samples
            if s.labels.get("UUID") or s.labels.get("gpu")}


def gpu_nodes(nodes: Iterable[dict]) -> dict[str, int | None]:
    """GPU node name → expected GPU count (None when only a label says it has GPUs).

    The physical count comes first: GPU Feature Discovery's ``nvidia.com/gpu.count``. With
    time-slicing or MPS, allocatable ``nvidia.com/gpu`` is that count times
    ``nvidia.com/gpu.replicas``, and DCGM still reports one series per physical GPU.
    """
    out: dict[str, int | None] = {}
    for node in nodes:
        labels = node["metadata"].get("labels") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        replicas = max(1, _int(labels.get("nvidia.com/gpu.replicas")) or 1)
        count = _int(labels.get("nvidia.com/gpu.count")) or \
            (_int(allocatable.get(GPU_RESOURCE)) // replicas)
        if count or labels.get("nvidia.com/gpu.present") == "true":
            out[node["metadata"]["name"]] = count or None
    return out


def exporter_pods(ctx: Context) -> list[dict]:
    """The DCGM exporter pods: those labelled as the GPU Operator and dcgm-exporter's chart
    label them; failing that, the pods of DaemonSets running a dcgm-exporter image.

    Selectors, never a scan of every pod: 100,000 pods would cost 200 pages.
    """
    found: dict[str, dict] = {}
    for key, value in EXPORTER_LABELS.items():
        for pod in ctx.kube.items("/api/v1/pods", query={"labelSelector": f"{key}={value}"}):
            found[pod["metadata"]["uid"]] = pod
    if not found:
        for ds in ctx.kube.items("/apis/apps/v1/daemonsets"):
            template = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
            if not any(EXPORTER_IMAGE in c.get("image", "")
                       for c in template.get("containers") or []):
                continue
            selector = _selector((ds.get("spec") or {}).get("selector") or {})
            if not selector:
                continue
            path = f"/api/v1/namespaces/{ds['metadata']['namespace']}/pods"
            for pod in ctx.kube.items(path, query={"labelSelector": selector}):
                found[pod["metadata"]["uid"]] = pod
    return [p for p in found.values() if is_exporter(p)]


def _selector(selector: dict) -> str:
    """A LabelSelector object as the ``labelSelector`` query string."""
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        terms.append({"In": f"{key} in ({','.join(values)})",
                      "NotIn": f"{key} notin ({','.join(values)})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, ""))
    return ",".join(t for t in terms if t)


def is_exporter(pod: dict) -> bool:
    labels = pod["metadata"].get("labels") or {}
    if any(labels.get(k) == v for k, v in EXPORTER_LABELS.items()):
        return True
    return any(EXPORTER_IMAGE in c.get("image", "") for c in pod["spec"].get("containers") or [])


def _metrics_port(pod: dict) -> int:
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") in ("metrics", "gpu-metrics"):
                return port["containerPort"]
    return EXPORTER_PORT


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _int(value) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0
