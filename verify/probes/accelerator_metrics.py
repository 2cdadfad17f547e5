"""accelerator_metrics: every GPU node runs a metrics exporter serving per-device
utilisation and memory in Prometheus format.

Read-only. Its cases, in order:

1. ``_gpu_nodes_and_their_physical_gpus``: the container-GPU nodes and how many physical
   GPUs each has (below). No container-GPU node: ERROR (a MUST that could not be
   exercised is not "not applicable"); VM GPU hosts are left out (they run no exporter),
   named in the evidence.
2. ``_dcgm_exporter_pods_run``: the DCGM exporter pods, labelled ``app=nvidia-dcgm-exporter``,
   or ``app=nvidia-dcgm-exporter-dra`` in the GPU Operator's DRA mode
   (NVIDIA/gpu-operator@a22dbf67 assets/state-dcgm-exporter/0800_daemonset.yaml and
   internal/state/testdata/golden/gpucluster-dcgm-exporter-embedded.yaml), or
   ``app.kubernetes.io/name=dcgm-exporter`` by the standalone chart (NVIDIA/dcgm-exporter
   deployment/templates/_helpers.tpl); for GPU nodes none of those cover, the pods of a
   DaemonSet running an image named ``dcgm-exporter``. None: ERROR.
3. ``_each_gpu_node_exports_utilisation_and_memory``: each container-GPU node's exporter,
   read through the API server's pod proxy (``pods/<pod>:9400/proxy/metrics``), serves a
   utilisation and a memory series for every device (one memory metric suffices, as in
   the WG suite: kubernetes-sigs/ai-conformance test/accelerator_metrics_test.go),
   labelled per device (``UUID``/``gpu``, plus ``GPU_I_ID`` for a MIG instance), and the
   node's physical GPUs must all be there. An exporter the API server cannot reach:
   ERROR.

Utilisation is ``DCGM_FI_DEV_GPU_UTIL``, which DCGM does not report for MIG instances;
for them ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` is the metric (NVIDIA/dcgm-exporter#216 and
#430, maintainers' answers; MIG series carry the parent GPU's UUID and ``GPU_I_ID``:
NVIDIA/dcgm-exporter@d5e5f510 internal/pkg/rendermetrics/render_metrics.go). The physical
count comes from a source that stays physical: DRA devices (whole GPUs, MIG parents),
else GFD's ``nvidia.com/gpu.count`` (``nvidia.com/gpu.shared.count`` when renamed) unless
the node runs MIG, where GFD counts MIG devices under ``mig.strategy=single``
(NVIDIA/k8s-device-plugin v0.20 internal/lm/mig-strategy_test.go, "single mig-enabled
device returns mig labels"): there the UUIDs the exporter reports are counted and no
label is trusted. Temperature and power are recorded when present, not required.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe, ProbeError, one_line
from . import _gpus, _prom

EXPORTER_PORT = 9400
EXPORTER_LABELS = (("app", "nvidia-dcgm-exporter"), ("app", "nvidia-dcgm-exporter-dra"),
                   ("app.kubernetes.io/name", "dcgm-exporter"))
EXPORTER_IMAGE = "dcgm-exporter"
GPU_RESOURCE = "nvidia.com/gpu"
UTILISATION = "DCGM_FI_DEV_GPU_UTIL"
MIG_UTILISATION = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
MEMORY = ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE")
OPTIONAL = {"temperature": "DCGM_FI_DEV_GPU_TEMP", "power": "DCGM_FI_DEV_POWER_USAGE"}


class AcceleratorMetrics(Probe):
    id = "accelerator_metrics"
    category = "observability"
    # GPU nodes are found here, not with the "gpu_nodes" need: DRA pools advertise no
    # nvidia.com/gpu extended resource, only the node label.
    needs = ()
    mutating = False
    title = "Per-accelerator utilisation and memory metrics on every GPU node"

    def cases(self, ctx: Context) -> str:
        gpus = _gpu_nodes_and_their_physical_gpus(ctx)
        pods = _dcgm_exporter_pods_run(ctx, gpus)
        return _each_gpu_node_exports_utilisation_and_memory(ctx, gpus, pods)


def _gpu_nodes_and_their_physical_gpus(ctx: Context) -> dict[str, int | None]:
    """Node name → its physical GPUs (None: only the exporter can tell; module doc)."""
    slices, nodes = _gpus.gpu_nodes_to_exercise(ctx, must=True)
    published = _gpus.devices_by_node(slices)
    gpus = {n: physical_gpus(node, published.get(n, [])) for n, node in nodes.items()}
    ctx.observe("physicalGpus", gpus)
    return gpus


def _dcgm_exporter_pods_run(ctx: Context, gpus: dict[str, int | None]) -> list[dict]:
    with ctx.step("find DCGM exporter pods"):
        pods = exporter_pods(ctx, set(gpus))
        ctx.observe("exporterPods", [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                     f" on {p['spec'].get('nodeName')}" for p in pods])
        if not pods:
            raise ProbeError(
                "no DCGM exporter pod found (labels app=nvidia-dcgm-exporter, "
                "app=nvidia-dcgm-exporter-dra, app.kubernetes.io/name=dcgm-exporter, or "
                "a DaemonSet running a dcgm-exporter image): install the GPU Operator's "
                "DCGM exporter, or the platform uses a different accelerator metrics "
                "exporter that this probe does not know: verify it by hand")
    return pods


def _each_gpu_node_exports_utilisation_and_memory(ctx: Context, gpus: dict[str, int | None],
                                                  pods: list[dict]) -> str:
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
        raise Fail("accelerator metrics missing: " + "; ".join(
            f"{c.name} (observed: {c.observed})" for c in failed[:3]))
    if unreachable:
        raise ProbeError("could not read the DCGM exporter through the API server's pod "
                         "proxy on " + "; ".join(unreachable) + ": the control plane may "
                         f"not reach pod port {EXPORTER_PORT} (firewall); verify by hand")
    return (f"the DCGM exporter on each of {len(gpus)} GPU node(s) serves "
            "per-device utilisation and framebuffer memory metrics" + _gpus.left_out(ctx))


def _judge_node(ctx: Context, node: str, expected: int | None, exposition: _prom.Exposition,
                ) -> None:
    util = _devices(exposition.series(UTILISATION))
    mig_util = _devices(exposition.series(MIG_UTILISATION))
    memory = set().union(*(_devices(exposition.series(m)) for m in MEMORY))
    for key, metric in OPTIONAL.items():
        ctx.observe(f"{node}.{key}", sorted(u for u, _ in _devices(exposition.series(metric))))
    ctx.observe(f"{node}.models", sorted({s.labels.get("modelName", "") for s in
                                          exposition.series(UTILISATION)
                                          + exposition.series(MIG_UTILISATION)} - {""}))
    if exposition.errors:
        ctx.observe(f"{node}.parseErrors", exposition.errors[:5])
    migs = {d for d in util | mig_util | memory if d[1]}
    if migs:
        ctx.observe(f"{node}.migInstances", sorted(f"{u} GPU_I_ID={i}" for u, i in migs))
    # A MIG instance's utilisation is the profiling metric; a whole GPU's either.
    covered = {d for d in util if not d[1]} | mig_util
    devices = covered | memory
    physical = {u for u, _ in devices}
    want = f" for all {expected} GPUs" if expected else ""
    ok = bool(devices) and (not expected or len(physical) >= expected)
    ctx.check(f"{node} exports utilisation {UTILISATION} per device{want}"
              + (f" ({MIG_UTILISATION} for MIG instances)" if migs else ""),
              ok and bool(covered) and devices <= covered,
              _describe(covered, devices - covered, "utilisation", len(physical)))
    ctx.check(f"{node} exports memory {'/'.join(MEMORY)} per device{want}",
              ok and bool(memory) and devices <= memory,
              _describe(memory, devices - memory, "memory", len(physical)))


def _name(device: tuple[str, str]) -> str:
    return device[0] + (f" GPU_I_ID={device[1]}" if device[1] else "")


def _describe(seen: set, missing: set, what: str, physical: int) -> str:
    if not seen:
        return "0 device(s) (metric absent)"
    text = (f"{len(seen)} device(s) on {physical} GPU(s): "
            + ", ".join(sorted(map(_name, seen))[:8]))
    if missing:
        text += f"; no {what} for " + ", ".join(sorted(map(_name, missing))[:8])
    return text


def _devices(samples: list[_prom.Sample]) -> set[tuple[str, str]]:
    """Distinct (GPU, MIG instance) among samples labelled per device: the GPU by UUID
    (``uuid`` with ``--use-old-namespace``), else its index; the instance by ``GPU_I_ID``
    ("" for a whole GPU)."""
    out = set()
    for s in samples:
        gpu = s.labels.get("UUID") or s.labels.get("uuid") or (
            f"gpu {s.labels['gpu']}" if s.labels.get("gpu") else "")
        if gpu:
            out.add((gpu, s.labels.get("GPU_I_ID", "")))
    return out


def _is_mig(node: dict) -> bool:
    labels = _gpus.labels(node)
    return (labels.get("nvidia.com/mig.strategy") in ("single", "mixed")
            or any(r.startswith(_gpus.MIG_PREFIX) for r in _gpus.gpu_resources(node)))


def physical_gpus(node: dict, devices: list[tuple[str, dict]]) -> int | None:
    """The node's physical GPU count from a source that stays physical (module doc); None
    when only the exporter can tell (MIG without DRA devices, or only a label)."""
    dra = ({_gpus.attribute(d, "uuid") for _, d in devices
            if _gpus.attribute(d, "type") in (None, "gpu")}
           | {_gpus.attribute(d, "parentUUID") for _, d in devices
              if _gpus.attribute(d, "type") == "mig"}) - {None}
    if dra:
        return len(dra)
    if _is_mig(node):
        return None
    labels = _gpus.labels(node)
    alloc = _gpus.allocatable(node)
    for resource in (GPU_RESOURCE, _gpus.SHARED_GPU):
        count = _int(labels.get(f"{resource}.count"))
        if count:
            return count
        replicas = max(1, _int(labels.get(f"{resource}.replicas")) or 1)
        if alloc.get(resource):
            return int(alloc[resource]) // replicas or None
    return None


def exporter_pods(ctx: Context, nodes: set[str] | None = None) -> list[dict]:
    """The DCGM exporter pods: those labelled as the GPU Operator (both modes) and
    dcgm-exporter's chart label them; for ``nodes`` none of those cover, also the pods of
    DaemonSets running a dcgm-exporter image (a cluster may run both kinds).

    Selectors, never a scan of every pod: 100,000 pods would cost 200 pages.
    """
    found: dict[str, dict] = {}
    for key, value in EXPORTER_LABELS:
        for pod in ctx.kube.items("/api/v1/pods", query={"labelSelector": f"{key}={value}"}):
            found[pod["metadata"]["uid"]] = pod
    covered = {p["spec"].get("nodeName") for p in found.values()}
    if not found or (nodes is not None and nodes - covered):
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
    if any(labels.get(k) == v for k, v in EXPORTER_LABELS):
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
