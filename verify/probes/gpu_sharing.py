"""gpu_sharing: at least one GPU sharing strategy gives more schedulable units than GPUs.

Read-only. Its cases, in order:

1. ``_gpus.gpu_nodes_to_exercise``: the container-GPU nodes (SKIP, "not applicable", when
   the cluster has none);
2. ``_sharing_on_each_gpu_node``: the mechanisms and schedulable units per node, and its
   physical GPUs (below);
3. ``_a_gpu_node_offers_more_units_than_gpus``: the verdict (below).

Per GPU node it looks for:

* software sharing through the device plugin (time-slicing or MPS): GPU Feature
  Discovery's ``<resource>.sharing-strategy`` (``time-slicing``/``mps``) with
  ``<resource>.replicas`` > 1, or allocatable ``<resource>`` above the physical count in
  ``<resource>.count``, for ``nvidia.com/gpu`` and the renamed ``nvidia.com/gpu.shared``
  (GFD keys its labels by the resource name, ``<resource>.<suffix>``:
  NVIDIA/k8s-device-plugin v0.20 internal/lm/resource.go; a renamed
  ``nvidia.com/gpu.shared`` gets ``nvidia.com/gpu.shared.replicas``...);
* MIG through the device plugin: ``nvidia.com/mig-<profile>`` resources in allocatable
  (mixed strategy, ``nvidia.com/gpu`` 0), or ``nvidia.com/mig.strategy=single`` with a
  ``-MIG-`` product label, where ``nvidia.com/gpu`` and ``nvidia.com/gpu.count`` count MIG
  devices, not GPUs (the MIG labeler is merged last and overrides them:
  NVIDIA/k8s-device-plugin v0.20 internal/lm/mig-strategy_test.go, "single mig-enabled
  device returns mig labels");
* MIG through DRA: ResourceSlice devices with attribute ``type: mig`` (the NVIDIA DRA
  driver's MIG devices, claimed with DeviceClass ``mig.nvidia.com``);
* GKE's own sharing (GKE runs no GPU Feature Discovery): the node labels
  ``cloud.google.com/gke-gpu-sharing-strategy`` (``time-sharing``/``mps``) and
  ``cloud.google.com/gke-max-shared-clients-per-gpu``; GKE exposes that many
  ``nvidia.com/gpu`` per physical GPU (GKE API ``AcceleratorConfig.gpuSharingConfig``,
  ``maxSharedClientsPerGpu``: "the max number of containers that can share a physical
  GPU"; cloud.google.com/kubernetes-engine/docs/how-to/timesharing-gpus).

Cluster-wide, a configured DRA sharing strategy counts (issue #25 item 3): a DeviceClass or
ResourceClaimTemplate whose opaque config for a GPU driver sets ``sharing.strategy``
``TimeSlicing`` or ``MPS`` (the NVIDIA DRA driver's ``GpuConfig``,
``resource.nvidia.com/v1beta1``: kubernetes-sigs/dra-driver-nvidia-gpu
api/nvidia.com/resource/v1beta1/sharing.go; demo/specs/quickstart gpu-test3/gpu-test-mps).
A claim that several containers or pods share is not a configured strategy: every DRA
cluster can do that.

Physical GPUs come from a source that stays physical: DRA devices (whole GPUs and MIG
parents' UUIDs), GFD's count label on a node without MIG, and on a MIG node without DRA
the distinct GPU UUIDs its DCGM exporter reports (MIG series carry the parent GPU's
``UUID`` beside ``GPU_I_ID``: NVIDIA/dcgm-exporter@d5e5f510
internal/pkg/rendermetrics/render_metrics.go). A node whose
physical count no source gives is named; if only such nodes share, the verdict is ERROR,
not a guess.

PASS names the mechanism and "N schedulable units on M physical GPUs". A SHOULD the
platform simply lacks is FAIL with the reason (the checklist reports FAIL as "Not
Implemented"; a SHOULD never fails the run): SKIP is kept for "not applicable", i.e. no
GPU node at all.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe, ProbeError, one_line
from . import _gpus, _prom, accelerator_metrics

SHARING = "nvidia.com/gpu.sharing-strategy"
REPLICAS = "nvidia.com/gpu.replicas"
COUNT = "nvidia.com/gpu.count"
SHARED_RESOURCES = ("nvidia.com/gpu", _gpus.SHARED_GPU)
# GKE's sharing labels (module doc).
GKE_STRATEGY = "cloud.google.com/gke-gpu-sharing-strategy"
GKE_CLIENTS = "cloud.google.com/gke-max-shared-clients-per-gpu"
# The NVIDIA DRA driver's sharing strategies in GpuConfig (module doc).
DRA_STRATEGIES = ("TimeSlicing", "MPS")


def _int(value) -> int:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def sharing(node: dict, devices: list[tuple[str, dict]]) -> tuple[list[str], int, int | None]:
    """(mechanisms found, schedulable units, physical GPUs or None when unknown)."""
    labels, alloc = _gpus.labels(node), _gpus.allocatable(node)
    mechanisms: list[str] = []
    units = 0
    dra_gpus = [d for _, d in devices if _gpus.attribute(d, "type") == "gpu"]
    dra_migs = [d for _, d in devices if _gpus.attribute(d, "type") == "mig"]
    mig_resources = {k: int(v) for k, v in alloc.items() if k.startswith(_gpus.MIG_PREFIX) and v}
    mig_single = (labels.get("nvidia.com/mig.strategy") == "single"
                  and "-MIG-" in labels.get("nvidia.com/gpu.product", ""))
    uuids = ({_gpus.attribute(d, "uuid") for d in dra_gpus}
             | {_gpus.attribute(d, "parentUUID") for d in dra_migs}) - {None}
    physical: int | None = len(uuids) or None
    gke_strategy, clients = labels.get(GKE_STRATEGY, ""), _int(labels.get(GKE_CLIENTS))
    if gke_strategy and clients > 1 and int(alloc.get("nvidia.com/gpu", 0)):
        have = int(alloc["nvidia.com/gpu"])
        physical = physical or have // clients
        mechanisms.append(f"GKE {gke_strategy} ({GKE_CLIENTS}={clients}: {have} "
                          f"nvidia.com/gpu on {have // clients} GPUs)")
        units += have
        return mechanisms, units, physical
    for resource in SHARED_RESOURCES:
        have = int(alloc.get(resource, 0))
        count = _int(labels.get(f"{resource}.count"))
        strategy = labels.get(f"{resource}.sharing-strategy", "")
        replicas = _int(labels.get(f"{resource}.replicas"))
        if resource == "nvidia.com/gpu" and mig_single:
            continue  # these are MIG devices, counted below
        if physical is None and count:
            physical = count
        elif physical is None and have and replicas > 1:
            physical = have // replicas
        if have and ((strategy in ("time-slicing", "mps") and replicas > 1)
                     or (count and have > count)):
            mechanisms.append(f"{strategy or 'time-slicing'} (replicas "
                              f"{replicas or have // max(1, count)}: {have} {resource} on "
                              f"{count or physical} GPUs)")
            units += have
    if mig_resources:
        mechanisms.append("MIG mixed strategy ("
                          + ", ".join(f"{k}={v}" for k, v in sorted(mig_resources.items())) + ")")
        units += sum(mig_resources.values())
    if mig_single:
        gpus = int(alloc.get("nvidia.com/gpu", 0))
        mechanisms.append(f"MIG single strategy ({gpus} nvidia.com/gpu are "
                          f"{labels.get('nvidia.com/gpu.product')} instances)")
        units += gpus
    if dra_migs:
        profiles = sorted({str(_gpus.attribute(d, "profile") or d.get("name")) for d in dra_migs})
        mechanisms.append(f"DRA MIG devices ({len(dra_migs)}: {', '.join(profiles[:4])}"
                          + (", ..." if len(profiles) > 4 else "") + ")")
        units += len(dra_migs)
    if (mig_single or mig_resources) and not uuids:
        physical = None  # GFD's counts describe MIG devices here
    return mechanisms, units, physical


def exporter_gpus(ctx: Context, node: str) -> int | None:
    """Distinct GPU UUIDs the node's DCGM exporter reports (None when it cannot be read)."""
    pods = [p for p in accelerator_metrics.exporter_pods(ctx, {node})
            if p["spec"].get("nodeName") == node]
    for pod in pods:
        meta = pod["metadata"]
        path = (f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:"
                f"{accelerator_metrics.EXPORTER_PORT}/proxy/metrics")
        try:
            text = ctx.kube.request("GET", path, text=True)
        except ApiException as exc:
            ctx.log(f"cannot read {path}: {one_line(exc)}")
            continue
        found = {s.labels.get("UUID") or s.labels.get("uuid") for s in _prom.parse(text).samples}
        found -= {None, ""}
        if found:
            return len(found)
    return None


class GpuSharing(Probe):
    id = "gpu_sharing"
    category = "accelerators"
    mutating = False
    title = "GPUs can be shared (time-slicing, MPS or MIG)"

    def cases(self, ctx: Context) -> str:
        slices, gpu_nodes = _gpus.gpu_nodes_to_exercise(ctx, must=False)
        found = _sharing_on_each_gpu_node(ctx, slices, gpu_nodes)
        configured = _a_dra_sharing_strategy_is_configured(ctx, slices)
        return _a_gpu_node_offers_more_units_than_gpus(ctx, found, gpu_nodes, configured)


def dra_sharing(obj: dict, spec: dict) -> list[str]:
    """``kind/name: strategy`` for each opaque GPU-driver config of ``spec`` (a DeviceClass
    spec, or a claim spec) that sets a sharing strategy."""
    configs = spec.get("config") or ((spec.get("devices") or {}).get("config")) or []
    found = []
    for config in configs:
        opaque = config.get("opaque") or {}
        params = opaque.get("parameters") or {}
        strategy = (params.get("sharing") or {}).get("strategy")
        if _gpus.is_gpu_driver(opaque.get("driver", "")) and strategy in DRA_STRATEGIES:
            meta = obj.get("metadata") or {}
            where = "/".join(x for x in (meta.get("namespace"), meta.get("name")) if x)
            found.append(f"{obj.get('kind', '')} {where}: {opaque['driver']} {strategy}")
    return found


def _a_dra_sharing_strategy_is_configured(ctx: Context, slices: list[dict] | None
                                          ) -> list[str]:
    """DeviceClasses and ResourceClaimTemplates configuring a DRA sharing strategy (module
    doc); none where no node publishes DRA devices."""
    if not _gpus.devices_by_node(slices):
        return []
    with ctx.step("look for a configured DRA sharing strategy"):
        found = []
        for dc in _gpus.device_classes(ctx):
            found += dra_sharing({**dc, "kind": "DeviceClass"}, dc.get("spec") or {})
        for t in _gpus.list_or_none(ctx, f"/apis/{_gpus.DRA}/resourceclaimtemplates") or []:
            found += dra_sharing({**t, "kind": "ResourceClaimTemplate"},
                                 (t.get("spec") or {}).get("spec") or {})
        ctx.observe("draSharing", found)
    return found


# Node name → (mechanisms, schedulable units, physical GPUs or None when unknown).
Found = dict[str, tuple[list[str], int, int | None]]


def _sharing_on_each_gpu_node(ctx: Context, slices: list[dict] | None,
                              gpu_nodes: dict[str, dict]) -> Found:
    with ctx.step("look for sharing on each GPU node"):
        published = _gpus.devices_by_node(slices)
        found: Found = {}
        for node_name, node in sorted(gpu_nodes.items()):
            mechanisms, units, physical = sharing(node, published.get(node_name, []))
            if mechanisms and physical is None:
                physical = exporter_gpus(ctx, node_name)
            if mechanisms:
                found[node_name] = (mechanisms, units, physical)
        ctx.observe("sharing", {n: {"mechanisms": m, "units": u, "physicalGpus": p}
                                for n, (m, u, p) in found.items()})
        classes = [_gpus.name(c) for c in _gpus.device_classes(ctx)]
        ctx.observe("deviceClasses", classes)
    return found


def _a_gpu_node_offers_more_units_than_gpus(ctx: Context, found: Found,
                                            gpu_nodes: dict[str, dict],
                                            configured: list[str] | None = None) -> str:
    known = {n: (m, u, p) for n, (m, u, p) in found.items() if p is not None}
    unknown = sorted(set(found) - set(known))
    units = sum(u for _, u, _ in known.values())
    physical = sum(p or 0 for _, _, p in known.values())
    detail = "; ".join(f"{n}: {', '.join(m)}" for n, (m, _, _) in found.items())
    shared = bool(known) and units > physical
    if not shared and configured:
        ctx.check("a DRA sharing strategy is configured for the GPUs", True,
                  "; ".join(configured[:5]))
        return (f"a DRA GPU sharing strategy is configured: {'; '.join(configured[:5])}"
                + (f"; {detail}" if detail else "") + _gpus.left_out(ctx))
    if not shared and unknown:
        raise ProbeError(
            f"GPU sharing is configured ({detail}) but the physical GPU count of "
            f"{', '.join(unknown)} is unknown (MIG without DRA devices, and no readable "
            "DCGM exporter): compare by hand")
    if not ctx.check("a GPU node offers more schedulable GPU units than physical GPUs",
                     shared, detail or f"no sharing on {len(gpu_nodes)} GPU nodes"):
        if found:
            raise Fail(f"sharing is configured ({detail}) but offers {units} "
                       f"schedulable units for {physical} physical GPUs")
        raise Fail(
            f"no GPU sharing strategy is configured on the {len(gpu_nodes)} GPU nodes: no "
            f"time-slicing/MPS ({SHARING}, {REPLICAS}, nvidia.com/gpu above {COUNT}, or "
            f"the renamed {_gpus.SHARED_GPU}, GKE's {GKE_STRATEGY}), no MIG resources "
            "nvidia.com/mig-*, no DRA MIG devices, no DRA TimeSlicing/MPS config in a "
            "DeviceClass or ResourceClaimTemplate (configure the device plugin's sharing "
            "config or a MIG profile to implement it)")
    return (f"more schedulable units ({units}) than physical GPUs ({physical}) "
            f"on {len(known)} of {len(gpu_nodes)} GPU nodes: {detail}" + _gpus.left_out(ctx))
