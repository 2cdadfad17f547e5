"""gpu_sharing: at least one GPU sharing strategy gives more schedulable units than GPUs.

Read-only. Per GPU node it looks for:

* software sharing through the device plugin (time-slicing or MPS): GPU Feature
  Discovery's ``nvidia.com/gpu.sharing-strategy`` (``time-slicing``/``mps``) with
  ``nvidia.com/gpu.replicas`` > 1, or allocatable ``nvidia.com/gpu`` above the physical
  count in ``nvidia.com/gpu.count`` (GFD, aicp pools);
* MIG through the device plugin: ``nvidia.com/mig-<profile>`` resources in allocatable
  (mixed strategy), or ``nvidia.com/mig.strategy=single`` with a ``-MIG-`` product label;
* MIG through DRA: ResourceSlice devices with attribute ``type: mig`` (the NVIDIA DRA
  driver's MIG devices, claimed with DeviceClass ``mig.nvidia.com``).

PASS names the mechanism and "N schedulable units on M physical GPUs". A SHOULD the
platform simply lacks is FAIL with the reason (the checklist reports FAIL as "Not
Implemented"; a SHOULD never fails the run): SKIP is kept for "not applicable", i.e. no
GPU node at all.
"""

from __future__ import annotations

from ..probe import Context, Probe
from ..result import Result
from . import _gpus

SHARING = "nvidia.com/gpu.sharing-strategy"
REPLICAS = "nvidia.com/gpu.replicas"
COUNT = "nvidia.com/gpu.count"


def _int(value) -> int:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def sharing(node: dict, devices: list[tuple[str, dict]]) -> tuple[list[str], int, int]:
    """(mechanisms found, schedulable units, physical GPUs) for one node."""
    labels, alloc = _gpus.labels(node), _gpus.allocatable(node)
    mechanisms: list[str] = []
    gpus = int(alloc.get("nvidia.com/gpu", 0))
    dra_gpus = [d for _, d in devices if _gpus.attribute(d, "type") == "gpu"]
    dra_migs = [d for _, d in devices if _gpus.attribute(d, "type") == "mig"]
    mig_resources = {k: int(v) for k, v in alloc.items() if k.startswith("nvidia.com/mig-") and v}
    mig_single = (labels.get("nvidia.com/mig.strategy") == "single"
                  and "-MIG-" in labels.get("nvidia.com/gpu.product", ""))
    uuids = ({_gpus.attribute(d, "uuid") for d in dra_gpus}
             | {_gpus.attribute(d, "parentUUID") for d in dra_migs}) - {None}
    physical = (len(uuids) or len(dra_gpus)
                or (0 if mig_single else _int(labels.get(COUNT))) or gpus)
    units = 0
    strategy, replicas = labels.get(SHARING, ""), _int(labels.get(REPLICAS))
    if (strategy in ("time-slicing", "mps") and replicas > 1) or (
            not mig_single and _int(labels.get(COUNT)) and gpus > _int(labels.get(COUNT))):
        mechanisms.append(f"{strategy or 'time-slicing'} (replicas "
                          f"{replicas or gpus // max(1, _int(labels.get(COUNT)))}: {gpus} "
                          f"nvidia.com/gpu on {_int(labels.get(COUNT)) or physical} GPUs)")
        units += gpus
    if mig_resources:
        mechanisms.append("MIG mixed strategy ("
                          + ", ".join(f"{k}={v}" for k, v in sorted(mig_resources.items())) + ")")
        units += sum(mig_resources.values())
    if mig_single:
        mechanisms.append(f"MIG single strategy ({gpus} nvidia.com/gpu are "
                          f"{labels.get('nvidia.com/gpu.product')} instances)")
        units += gpus
    if dra_migs:
        profiles = sorted({str(_gpus.attribute(d, "profile") or d.get("name")) for d in dra_migs})
        mechanisms.append(f"DRA MIG devices ({len(dra_migs)}: {', '.join(profiles[:4])}"
                          + (", ..." if len(profiles) > 4 else "") + ")")
        units += len(dra_migs)
    return mechanisms, units, physical


class GpuSharing(Probe):
    id = "gpu_sharing"
    category = "accelerators"
    levels = {"1.35": "SHOULD", "1.36": "SHOULD", "1.37": "SHOULD"}
    mutating = False
    title = "GPUs can be shared (time-slicing, MPS or MIG)"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find GPU nodes"):
            slices, gpu_nodes, not_applicable = _gpus.survey(ctx)
            if not_applicable:
                return ctx.skip(not_applicable)
        with ctx.step("look for sharing on each GPU node"):
            published = _gpus.devices_by_node(slices)
            found = {}
            for node_name, node in sorted(gpu_nodes.items()):
                mechanisms, units, physical = sharing(node, published.get(node_name, []))
                if mechanisms:
                    found[node_name] = (mechanisms, units, physical)
            ctx.observe("sharing", {n: {"mechanisms": m, "units": u, "physicalGpus": p}
                                    for n, (m, u, p) in found.items()})
            classes = [_gpus.name(c) for c in _gpus.device_classes(ctx)]
            ctx.observe("deviceClasses", classes)
        units = sum(u for _, u, _ in found.values())
        physical = sum(p for _, _, p in found.values())
        detail = "; ".join(f"{n}: {', '.join(m)}" for n, (m, _, _) in found.items())
        if not ctx.check("a GPU node offers more schedulable GPU units than physical GPUs",
                         bool(found) and units > physical,
                         detail or f"no sharing on {len(gpu_nodes)} GPU nodes"):
            if found:
                return ctx.failed(f"sharing is configured ({detail}) but offers {units} "
                                  f"schedulable units for {physical} physical GPUs")
            return ctx.failed(
                f"no GPU sharing strategy is configured on the {len(gpu_nodes)} GPU nodes: no "
                f"time-slicing/MPS ({SHARING}, {REPLICAS}, nvidia.com/gpu above {COUNT}), no "
                "MIG resources nvidia.com/mig-*, no DRA MIG devices (configure the device "
                "plugin's sharing config or a MIG profile to implement it)")
        return ctx.passed(f"more schedulable units ({units}) than physical GPUs ({physical}) "
                          f"on {len(found)} of {len(gpu_nodes)} GPU nodes: {detail}")
