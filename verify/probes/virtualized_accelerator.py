"""virtualized_accelerator: virtualized GPUs (vGPU, VM passthrough) are exposed and managed.

Read-only. Its cases, in order:

1. ``_gpus.gpu_nodes_to_exercise``: the GPU nodes, VM GPU hosts included (SKIP, "not
   applicable", when the cluster has none: see ``gpu_sharing`` for the same rule);
2. ``_a_gpu_node_exposes_virtualized_accelerators``: evidence looked for on GPU nodes:

   * ``nvidia.com/vgpu.present=true`` (GPU Feature Discovery on a node whose GPUs are
     NVIDIA vGPUs; ``nvidia.com/vgpu.host-driver-version`` recorded);
   * ``nvidia.com/gpu.workload.config`` = ``vm-vgpu`` or ``vm-passthrough`` (GPU Operator
     sandbox workloads: vGPU manager or VFIO manager on the node);
   * DRA: ResourceSlice devices with attribute ``type: vfio`` (the NVIDIA DRA driver's VFIO
     passthrough devices, DeviceClass ``vfio.gpu.nvidia.com``), or a DeviceClass whose
     name says vgpu/vfio together with such devices.

PASS with that evidence. Without any, FAIL with the reason (a SHOULD the platform lacks:
the checklist says "Not Implemented", the run's exit code is unaffected).
"""

from __future__ import annotations

from ..probe import Context, Fail, Probe
from . import _gpus

VGPU_PRESENT = "nvidia.com/vgpu.present"
WORKLOAD_CONFIG = _gpus.WORKLOAD_CONFIG


class VirtualizedAccelerator(Probe):
    id = "virtualized_accelerator"
    category = "accelerators"
    mutating = False
    title = "Virtualized accelerators (vGPU, passthrough) are exposed"

    def cases(self, ctx: Context) -> str:
        slices, gpu_nodes = _gpus.gpu_nodes_to_exercise(ctx, must=False,
                                                        containers_only=False)
        return _a_gpu_node_exposes_virtualized_accelerators(ctx, slices, gpu_nodes)


def _a_gpu_node_exposes_virtualized_accelerators(ctx: Context, slices: list[dict] | None,
                                                 gpu_nodes: dict[str, dict]) -> str:
    with ctx.step("look for vGPU and passthrough devices"):
        published = _gpus.devices_by_node(slices, gpu_only=False)
        classes = [_gpus.name(c) for c in _gpus.device_classes(ctx)]
        virtual_classes = [c for c in classes if "vgpu" in c or "vfio" in c]
        ctx.observe("deviceClasses", classes)
        found: dict[str, list[str]] = {}
        for node_name, node in sorted(gpu_nodes.items()):
            labels = _gpus.labels(node)
            evidence = []
            if labels.get(VGPU_PRESENT) == "true":
                host = labels.get("nvidia.com/vgpu.host-driver-version")
                evidence.append(f"{VGPU_PRESENT}=true"
                                + (f" (host driver {host})" if host else ""))
            if labels.get(WORKLOAD_CONFIG) in ("vm-vgpu", "vm-passthrough"):
                evidence.append(f"{WORKLOAD_CONFIG}={labels[WORKLOAD_CONFIG]}")
            vfio = [d for drv, d in published.get(node_name, [])
                    if _gpus.attribute(d, "type") in ("vfio", "vgpu")]
            if vfio:
                evidence.append(f"{len(vfio)} DRA {_gpus.attribute(vfio[0], 'type')} "
                                "devices" + (f" (DeviceClass {', '.join(virtual_classes)})"
                                             if virtual_classes else ""))
            if evidence:
                found[node_name] = evidence
        ctx.observe("virtualized", found)
    detail = "; ".join(f"{n}: {', '.join(e)}" for n, e in found.items())
    if ctx.check("a GPU node exposes virtualized accelerators", bool(found),
                 detail or f"none on {len(gpu_nodes)} GPU nodes"):
        return (f"virtualized accelerators on {len(found)} of {len(gpu_nodes)} "
                f"GPU nodes: {detail}")
    raise Fail(
        f"no virtualized accelerator is exposed on the {len(gpu_nodes)} GPU nodes: no "
        f"{VGPU_PRESENT}=true, no {WORKLOAD_CONFIG}=vm-vgpu/vm-passthrough, no DRA vfio "
        "devices" + (f" (DeviceClasses {', '.join(virtual_classes)} exist but publish no "
                     "device)" if virtual_classes else ""))
