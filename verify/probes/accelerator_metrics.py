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

Every vendor is judged by its own row of the vendor table (``_vendors``): a node offering
AMD GPUs is read through AMD's Device Metrics Exporter for ``gpu_gfx_activity`` and
``gpu_*_vram`` per ``gpu_id``; a row whose exporter names no exact metrics is matched by
the WG test's name patterns and device labels. Nodes of a type the table has no exporter
facts for (or no row at all) are left out of the verdict, named with the reason
(``acceleratorsLeftOut``); with none left to judge the MUST is an ERROR.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe, ProbeError, one_line
from . import _gpus, _prom, _vendors

_NVIDIA_ROW = next(v for v in _vendors.VENDORS if v.name == "NVIDIA")
assert _NVIDIA_ROW.exporter is not None
_NVIDIA: _vendors.Exporter = _NVIDIA_ROW.exporter
EXPORTER_PORT = _NVIDIA.port
EXPORTER_LABELS = _NVIDIA.pod_labels
GPU_RESOURCE = "nvidia.com/gpu"
UTILISATION = _NVIDIA.utilisation[0]
MIG_UTILISATION = _NVIDIA.instance_utilisation[0]
MEMORY = _NVIDIA.memory


class AcceleratorMetrics(Probe):
    id = "accelerator_metrics"
    category = "observability"
    # GPU nodes are found here, not with the "gpu_nodes" need: DRA pools advertise no
    # nvidia.com/gpu extended resource, only the node label.
    needs = ()
    mutating = False
    title = "Per-accelerator utilisation and memory metrics on every GPU node"

    def cases(self, ctx: Context) -> str:
        gpus, vendors = _gpu_nodes_and_their_physical_gpus(ctx)
        pods = _dcgm_exporter_pods_run(ctx, gpus, vendors)
        return _each_gpu_node_exports_utilisation_and_memory(ctx, gpus, pods, vendors)


Vendors = dict[str, _vendors.Vendor]  # node name → its vendor's row


def _gpu_nodes_and_their_physical_gpus(ctx: Context) -> tuple[dict[str, int | None], Vendors]:
    """Node name → its physical GPUs (None: only the exporter can tell; module doc), and
    each judged node's vendor; nodes of a type without exporter facts are left out."""
    slices, nodes = _gpus.gpu_nodes_to_exercise(ctx, must=True)
    published = _gpus.devices_by_node(slices)
    vendors = _gpus.judged_vendors(
        ctx, nodes, published, "exporter",
        "knows no per-device metrics exporter for it", "its metrics")
    gpus = {n: (physical_gpus(nodes[n], published.get(n, [])) if v.name == "NVIDIA"
                else _vendor_devices(nodes[n], v)) for n, v in vendors.items()}
    ctx.observe("physicalGpus", gpus)
    return gpus, vendors


def _dcgm_exporter_pods_run(ctx: Context, gpus: dict[str, int | None],
                            vendors: dict[str, _vendors.Vendor]) -> list[dict]:
    with ctx.step("find DCGM exporter pods"):
        pods = []
        for vendor in {v.name: v for v in vendors.values()}.values():
            pods += exporter_pods(ctx, {n for n, v in vendors.items() if v is vendor},
                                  vendor.exporter)
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
                                                  pods: list[dict],
                                                  vendors: dict[str, _vendors.Vendor]) -> str:
    unreachable: list[str] = []
    for node, expected in sorted(gpus.items()):
        exp = vendors[node].exporter
        assert exp is not None  # nodes without one were left out
        with ctx.step(f"read the exporter on {node}"):
            pod = next((p for p in pods if p["spec"].get("nodeName") == node and _ready(p)
                        and is_exporter(p, exp)), None)
            label = "DCGM exporter" if exp.name == "DCGM exporter" else exp.name
            if not ctx.check(f"{node} runs a Ready {label} pod", pod is not None,
                             "none" if pod is None else pod["metadata"]["name"]) or pod is None:
                continue
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            port = _metrics_port(pod, exp)
            path = f"/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/metrics"
            try:
                text = ctx.kube.request("GET", path, text=True)
            except ApiException as exc:
                unreachable.append(f"{node} ({ns}/{name}: {one_line(exc)})")
                ctx.log(f"cannot read {path}: {one_line(exc)}")
                continue
            ctx.artifact(f"metrics-{node}.txt", text)
            _judge_node(ctx, node, expected, _prom.parse(text), exp)
    failed = [c for c in ctx.evidence.checks if not c.passed]
    if failed:
        raise Fail("accelerator metrics missing: " + "; ".join(
            f"{c.name} (observed: {c.observed})" for c in failed[:3]))
    if unreachable:
        raise ProbeError("could not read the DCGM exporter through the API server's pod "
                         "proxy on " + "; ".join(unreachable) + ": the control plane may "
                         f"not reach pod port {EXPORTER_PORT} (firewall); verify by hand")
    names = sorted({(v.exporter.name if v.exporter else "") for v in vendors.values()})
    return ((f"the DCGM exporter on each of {len(gpus)} GPU node(s) serves "
             "per-device utilisation and framebuffer memory metrics"
             if names == ["DCGM exporter"] else
             f"the vendors' exporters ({', '.join(names)}) on each of {len(gpus)} "
             "accelerator node(s) serve per-device utilisation and memory metrics")
            + _gpus.left_out(ctx))


def _judge_node(ctx: Context, node: str, expected: int | None, exposition: _prom.Exposition,
                exp: _vendors.Exporter | None = None) -> None:
    exp = exp or _NVIDIA
    util_names = exp.utilisation or _matching(exposition, _vendors.WG_UTILISATION_PATTERNS, exp)
    memory_names = exp.memory or _matching(exposition, _vendors.WG_MEMORY_PATTERNS, exp)
    util = set().union(*(_devices(exposition.series(m), exp) for m in util_names))
    mig_util = set().union(*(_devices(exposition.series(m), exp)
                             for m in exp.instance_utilisation))
    memory = set().union(*(_devices(exposition.series(m), exp) for m in memory_names))
    for key, metric in exp.optional:
        ctx.observe(f"{node}.{key}", sorted(u for u, _ in _devices(exposition.series(metric),
                                                                   exp)))
    ctx.observe(f"{node}.models", sorted({s.labels.get("modelName", "") for m in
                                          (*util_names, *exp.instance_utilisation)
                                          for s in exposition.series(m)} - {""}))
    if exposition.errors:
        ctx.observe(f"{node}.parseErrors", exposition.errors[:5])
    migs = {d for d in util | mig_util | memory if d[1]}
    if migs:
        ctx.observe(f"{node}.migInstances",
                    sorted(f"{u} {exp.instance_label}={i}" for u, i in migs))
    # A MIG instance's utilisation is the profiling metric; a whole GPU's either.
    covered = {d for d in util if not d[1]} | mig_util
    devices = covered | memory
    physical = {u for u, _ in devices}
    want = f" for all {expected} GPUs" if expected else ""
    ok = bool(devices) and (not expected or len(physical) >= expected)
    util_shown = "/".join(util_names) or "matching " + "/".join(_vendors.WG_UTILISATION_PATTERNS)
    memory_shown = "/".join(memory_names) or "matching " + "/".join(_vendors.WG_MEMORY_PATTERNS)
    ctx.check(f"{node} exports utilisation {util_shown} per device{want}"
              + (f" ({'/'.join(exp.instance_utilisation)} for MIG instances)" if migs else ""),
              ok and bool(covered) and devices <= covered,
              _describe(covered, devices - covered, "utilisation", len(physical)))
    ctx.check(f"{node} exports memory {memory_shown} per device{want}",
              ok and bool(memory) and devices <= memory,
              _describe(memory, devices - memory, "memory", len(physical)))


def _matching(exposition: _prom.Exposition, patterns: tuple[str, ...],
              exp: _vendors.Exporter) -> tuple[str, ...]:
    """Metric names matching the WG test's patterns on a sample with a device label."""
    keys = exp.device_labels + _vendors.WG_DEVICE_LABELS
    return tuple(sorted({s.name for s in exposition.samples
                         if any(p in s.name.lower() for p in patterns)
                         and any(s.labels.get(k) for k in keys)}))


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


def _devices(samples: list[_prom.Sample], exp: _vendors.Exporter | None = None
             ) -> set[tuple[str, str]]:
    """Distinct (device, partition) among samples labelled per device: the device by the
    first of the exporter's device labels present (DCGM: ``UUID``, ``uuid`` with
    ``--use-old-namespace``, else the index ``gpu``), else by the WG test's device labels;
    the partition by the instance label (``GPU_I_ID``; "" for a whole device)."""
    exp = exp or _NVIDIA
    out = set()
    for s in samples:
        key = next((k for k in exp.device_labels + _vendors.WG_DEVICE_LABELS
                    if s.labels.get(k) and k != exp.instance_label), None)
        if key:
            value = s.labels[key]
            out.add((value if key in ("UUID", "uuid", "gpu_uuid") else f"{key} {value}",
                     s.labels.get(exp.instance_label, "") if exp.instance_label else ""))
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
    # GKE time-sharing/MPS: max-shared-clients-per-gpu nvidia.com/gpu per physical GPU
    # (gpu_sharing's module doc, GKE AcceleratorConfig.gpuSharingConfig).
    clients = _int(labels.get("cloud.google.com/gke-max-shared-clients-per-gpu"))
    if clients > 1 and alloc.get(GPU_RESOURCE):
        return int(alloc[GPU_RESOURCE]) // clients or None
    for resource in (GPU_RESOURCE, _gpus.SHARED_GPU):
        count = _int(labels.get(f"{resource}.count"))
        if count:
            return count
        replicas = max(1, _int(labels.get(f"{resource}.replicas")) or 1)
        if alloc.get(resource):
            return int(alloc[resource]) // replicas or None
    return None


def _vendor_devices(node: dict, vendor: _vendors.Vendor) -> int | None:
    """Another vendor's devices: its first resource's allocatable (None when it has none:
    only the exporter can tell, e.g. DRA)."""
    alloc = _gpus.allocatable(node)
    return next((int(alloc[r]) for r in vendor.resources if alloc.get(r)), None)


def exporter_pods(ctx: Context, nodes: set[str] | None = None,
                  exp: _vendors.Exporter | None = None) -> list[dict]:
    """The DCGM exporter pods: those labelled as the GPU Operator (both modes) and
    dcgm-exporter's chart label them; for ``nodes`` none of those cover, also the pods of
    DaemonSets running a dcgm-exporter image (a cluster may run both kinds).

    Selectors, never a scan of every pod: 100,000 pods would cost 200 pages.
    """
    exp = exp or _NVIDIA
    found: dict[str, dict] = {}
    for key, value in exp.pod_labels:
        for pod in ctx.kube.items("/api/v1/pods", query={"labelSelector": f"{key}={value}"}):
            found[pod["metadata"]["uid"]] = pod
    covered = {p["spec"].get("nodeName") for p in found.values()}
    if not found or (nodes is not None and nodes - covered):
        for ds in ctx.kube.items("/apis/apps/v1/daemonsets"):
            template = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
            if not any(_runs_image(c, exp) for c in template.get("containers") or []):
                continue
            selector = _selector((ds.get("spec") or {}).get("selector") or {})
            if not selector:
                continue
            path = f"/api/v1/namespaces/{ds['metadata']['namespace']}/pods"
            for pod in ctx.kube.items(path, query={"labelSelector": selector}):
                found[pod["metadata"]["uid"]] = pod
    return [p for p in found.values() if is_exporter(p, exp)]


def _selector(selector: dict) -> str:
    """A LabelSelector object as the ``labelSelector`` query string."""
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        terms.append({"In": f"{key} in ({','.join(values)})",
                      "NotIn": f"{key} notin ({','.join(values)})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, ""))
    return ",".join(t for t in terms if t)


def _runs_image(container: dict, exp: _vendors.Exporter) -> bool:
    return any(image in container.get("image", "") for image in exp.images)


def is_exporter(pod: dict, exp: _vendors.Exporter | None = None) -> bool:
    exp = exp or _NVIDIA
    labels = pod["metadata"].get("labels") or {}
    if any(labels.get(k) == v for k, v in exp.pod_labels):
        return True
    return any(_runs_image(c, exp) for c in pod["spec"].get("containers") or [])


def _metrics_port(pod: dict, exp: _vendors.Exporter | None = None) -> int:
    exp = exp or _NVIDIA
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") in exp.port_names:
                return port["containerPort"]
    return exp.port


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _int(value) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0
