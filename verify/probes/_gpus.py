"""What the cluster says about its accelerators, read-only (helpers, not a probe).

A GPU node is one that any of these call a GPU node: the ``nvidia.com/gpu.present=true``
label (GPU Operator/NFD, and every aicp GPU pool), an accelerator extended resource in
allocatable (device plugin), the labels of a GPU pool of the stack's expectations, or a
``resource.k8s.io/v1`` ResourceSlice of a GPU driver naming the node (DRA). The runner's
``gpu_nodes`` need only knows the extended resource, so a DRA-only pool (device plugin
switched off by ``nvidia.com/gpu.deploy.device-plugin=false``) would look GPU-less to it.

Device attribute names are the NVIDIA DRA driver's (kubernetes-sigs/dra-driver-nvidia-gpu
0.4.x ``cmd/gpu-kubelet-plugin/deviceinfo.go``): ``type`` (``gpu``, ``mig``, ``vfio``),
``uuid``, ``productName``, ``driverVersion`` and ``cudaDriverVersion`` (versions).
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from ..kube import GPU_RESOURCES, _quantity
from ..probe import Context

DRA = "resource.k8s.io/v1"
GPU_PRESENT = "nvidia.com/gpu.present"
ALLOCATOR_LABEL = "aicp.dev/gpu-allocator"
NVIDIA_DRIVER = "gpu.nvidia.com"


def labels(node: dict) -> dict[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def name(obj: dict) -> str:
    return obj["metadata"]["name"]


def allocatable(node: dict) -> dict[str, float]:
    return {k: _quantity(v)
            for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}


def served(ctx: Context, group_version: str) -> bool:
    return bool(ctx.kube.resources(group_version))


def resource_slices(ctx: Context) -> list[dict] | None:
    """Every ResourceSlice, or None when ``resource.k8s.io/v1`` is not served."""
    if not served(ctx, DRA):
        return None
    return list(ctx.kube.items(f"/apis/{DRA}/resourceslices"))


def device_classes(ctx: Context) -> list[dict]:
    if not served(ctx, DRA):
        return []
    return list(ctx.kube.items(f"/apis/{DRA}/deviceclasses"))


def is_gpu_driver(driver: str) -> bool:
    """NVIDIA's ``gpu.nvidia.com``, AMD's ``gpu.amd.com``, Intel's ``gpu.intel.com``..."""
    return driver.split(".", 1)[0] == "gpu" or driver == NVIDIA_DRIVER


def devices_by_node(slices: list[dict] | None, *, gpu_only: bool = True
                    ) -> dict[str, list[tuple[str, dict]]]:
    """Node name → (driver, device) published for it (node-local slices only)."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for s in slices or []:
        spec = s.get("spec") or {}
        driver, node_name = spec.get("driver", ""), spec.get("nodeName")
        if not node_name or (gpu_only and not is_gpu_driver(driver)):
            continue
        found.setdefault(node_name, []).extend(
            (driver, d) for d in spec.get("devices") or [])
    return found


def attribute(device: dict, key: str) -> Any:
    """A device attribute's value, by bare name or qualified ``domain/name``."""
    attrs = device.get("attributes") or {}
    value = attrs.get(key)
    if value is None:
        value = next((v for k, v in attrs.items() if k.rsplit("/", 1)[-1] == key), None)
    if not isinstance(value, dict):
        return None
    return next((v for k in ("string", "version", "int", "bool") if (v := value.get(k))
                 is not None), None)


def pool_matches(pool: dict, node: dict) -> bool:
    want = pool.get("labels") or {}
    have = labels(node)
    return bool(want) and all(have.get(k) == v for k, v in want.items())


def gpu_nodes(ctx: Context, slices: list[dict] | None = None) -> tuple[dict[str, dict], int]:
    """Node name → node for every node something calls a GPU node (see module doc), and
    how many nodes the cluster has. Nodes are read a page at a time; only GPU nodes are
    kept, so a 5,000-node cluster with 16 GPU nodes holds 16 nodes in memory."""
    pools = [p for p in ctx.settings.expectations.get("gpuPools") or [] if isinstance(p, dict)]
    published = devices_by_node(slices)
    found, count = {}, 0
    for node in ctx.kube.items("/api/v1/nodes"):
        count += 1
        alloc = allocatable(node)
        if (labels(node).get(GPU_PRESENT) == "true"
                or any(alloc.get(r, 0) > 0 for r in GPU_RESOURCES)
                or any(pool_matches(p, node) for p in pools)
                or name(node) in published):
            found[name(node)] = node
    ctx.observe("gpuNodes", sorted(found))
    return found, count


def no_gpu_nodes(count: int) -> str:
    return (f"no GPU node among {count} nodes (none labelled {GPU_PRESENT}=true, advertising "
            f"{', '.join(GPU_RESOURCES)}, matching a GPU pool of the stack or publishing DRA "
            "GPU devices)")


def list_or_none(ctx: Context, path: str) -> list[dict] | None:
    """The items at ``path``; None when the resource is not served (404)."""
    try:
        return list(ctx.kube.items(path))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def survey(ctx: Context) -> tuple[list[dict] | None, dict[str, dict], str | None]:
    """ResourceSlices, GPU nodes by name, and why the requirement is not applicable when
    the cluster has no GPU node (None when it has)."""
    slices = resource_slices(ctx)
    found, count = gpu_nodes(ctx, slices)
    why = None if found else f"not applicable: {no_gpu_nodes(count)}"
    return slices, found, why
