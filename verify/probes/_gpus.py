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

GPU resource names (``is_gpu_resource``): the vendors' whole-GPU resources, the NVIDIA
device plugin's MIG mixed-strategy resources ``nvidia.com/mig-<profile>`` (allocatable
``nvidia.com/gpu`` is 0 there) and its renamed sharing resource ``nvidia.com/gpu.shared``
(k8s-device-plugin ``renameByDefault``; GFD keys its labels by the resource name, so
``nvidia.com/gpu.shared.*``: NVIDIA/k8s-device-plugin v0.20 internal/lm/resource.go).
Every probe asking "does this node offer GPUs" asks here.

Container-GPU nodes: the GPU Operator labels VM hosts ``nvidia.com/gpu.present=true`` too,
with ``nvidia.com/gpu.workload.config`` ``vm-passthrough`` or ``vm-vgpu``, and deploys no
device plugin, GFD, DCGM exporter or container driver there (NVIDIA/gpu-operator
controllers/state_manager.go gpuStateLabels: operands go only to nodes whose
``nvidia.com/gpu.workload.config`` is ``container``). ``survey`` leaves them out of the
container-GPU probes and says so.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..kube import GPU_RESOURCES, quantity
from ..probe import Context, ProbeError, Skip
from . import _vendors

DRA = "resource.k8s.io/v1"
GPU_PRESENT = "nvidia.com/gpu.present"
ALLOCATOR_LABEL = "aicp.dev/gpu-allocator"
NVIDIA_DRIVER = "gpu.nvidia.com"
WORKLOAD_CONFIG = "nvidia.com/gpu.workload.config"
VM_WORKLOADS = ("vm-passthrough", "vm-vgpu")
MIG_PREFIX = "nvidia.com/mig-"
SHARED_GPU = "nvidia.com/gpu.shared"
NO_GPU_TO_EXERCISE = "no GPU node to exercise: scale a pool up (or run with --long)"


def is_gpu_resource(resource: str) -> bool:
    """Whole GPUs, MIG mixed-strategy instances and renamed shared GPUs (module doc), and
    every accelerator resource of the vendor table (``_vendors``)."""
    return (resource in GPU_RESOURCES or resource == SHARED_GPU
            or resource.startswith(MIG_PREFIX) or _vendors.is_accelerator_resource(resource))


def gpu_resources(node: dict) -> dict[str, float]:
    """The node's allocatable GPU resources above zero, by name."""
    return {r: q for r, q in allocatable(node).items() if q > 0 and is_gpu_resource(r)}


def vm_workload(node: dict) -> str | None:
    """``vm-passthrough``/``vm-vgpu`` when the GPU Operator runs this node's GPUs for VMs."""
    value = labels(node).get(WORKLOAD_CONFIG)
    return value if value in VM_WORKLOADS else None


def labels(node: dict) -> dict[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def name(obj: dict) -> str:
    return obj["metadata"]["name"]


def allocatable(node: dict) -> dict[str, float]:
    return {k: quantity(v)
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
    return (driver.split(".", 1)[0] == "gpu" or driver == NVIDIA_DRIVER
            or _vendors.is_accelerator_driver(driver))


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
                or any(q > 0 and is_gpu_resource(r) for r, q in alloc.items())
                or any(pool_matches(p, node) for p in pools)
                or name(node) in published):
            found[name(node)] = node
    ctx.observe("gpuNodes", sorted(found))
    return found, count


def no_gpu_nodes(count: int) -> str:
    return (f"no GPU node among {count} nodes (none labelled {GPU_PRESENT}=true, advertising "
            f"{', '.join(GPU_RESOURCES)}, {SHARED_GPU} or {MIG_PREFIX}*, matching a GPU pool "
            "of the stack or publishing DRA GPU devices)")


def list_or_none(ctx: Context, path: str) -> list[dict] | None:
    """The items at ``path``; None when the resource is not served (404)."""
    try:
        return list(ctx.kube.items(path))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def survey(ctx: Context, *, containers_only: bool = True
           ) -> tuple[list[dict] | None, dict[str, dict], str | None]:
    """ResourceSlices, GPU nodes by name, and why the requirement cannot be judged (None
    when it can): no GPU node at all, or (``containers_only``) only VM GPU hosts.

    With ``containers_only`` the VM hosts are left out and recorded (``vmGpuNodesLeftOut``),
    since no container workload gets their GPUs (module doc).
    """
    slices = resource_slices(ctx)
    found, count = gpu_nodes(ctx, slices)
    if not found:
        return slices, found, no_gpu_nodes(count)
    away = {n: why for n, node in found.items() if (why := unavailable(node))}
    if away:
        # "Every node must" holds for the nodes that take work: a cordoned or NotReady
        # node runs no new pod (kubectl cordon; the node lifecycle controller's
        # node.kubernetes.io/not-ready taint), so it is named, not judged.
        ctx.observe("unavailableNodesLeftOut", dict(sorted(away.items())))
        found = {n: node for n, node in found.items() if n not in away}
        if not found:
            return slices, found, ("every GPU node is cordoned or NotReady ("
                                   + "; ".join(f"{n}: {w}" for n, w in sorted(away.items()))
                                   + ")")
    if containers_only:
        vms = {n: w for n, node in found.items() if (w := vm_workload(node))}
        if vms:
            ctx.observe("vmGpuNodesLeftOut", {
                n: f"{WORKLOAD_CONFIG}={w}: GPUs are passed to VMs, no container gets them"
                for n, w in sorted(vms.items())})
            found = {n: node for n, node in found.items() if n not in vms}
            if not found:
                return slices, found, (f"every GPU node ({', '.join(sorted(vms))}) hosts VM "
                                       f"GPUs ({WORKLOAD_CONFIG}); none runs container GPUs")
    return slices, found, None


def gpu_nodes_to_exercise(ctx: Context, *, must: bool, containers_only: bool = True
                          ) -> tuple[list[dict] | None, dict[str, dict]]:
    """The first case of every accelerator probe: ``survey`` finds GPU nodes to judge
    (ResourceSlices and GPU nodes by name), or stops the probe: ERROR for a MUST
    (``must_error``), SKIP ("not applicable") for a SHOULD."""
    with ctx.step("find GPU nodes"):
        slices, found, why = survey(ctx, containers_only=containers_only)
        if why and must:
            raise ProbeError(must_error(why))
        if why:
            raise Skip(f"not applicable: {why}")
    return slices, found


# Node pool labels, one per platform: aicp's, GKE's, AKS's, EKS managed node groups',
# Karpenter's (each platform's documented well-known label).
POOL_LABELS = ("aicp.dev/gpu-pool", "cloud.google.com/gke-nodepool",
               "kubernetes.azure.com/agentpool", "eks.amazonaws.com/nodegroup",
               "karpenter.sh/nodepool")


def pool_of(node: dict) -> str:
    """``label=value`` of the node's pool, "" when no pool label is set."""
    labels_ = labels(node)
    return next((f"{k}={labels_[k]}" for k in POOL_LABELS if labels_.get(k)), "")


def unavailable(node: dict) -> str | None:
    """Why a node takes no new pods: cordoned (``spec.unschedulable``) or not Ready."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned (spec.unschedulable)"
    ready = next((c for c in (node.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") != "True":
        return f"NotReady ({ready.get('reason') or ready.get('status')})"
    return None


def judged_vendors(ctx: Context, nodes: dict[str, dict],
                   published: dict[str, list], needs: str, lacking: str,
                   by_hand: str) -> dict[str, _vendors.Vendor]:
    """Node name → its vendor row, for the nodes whose row carries the fact a probe needs
    (``needs``: the row's field, ``exporter`` or ``isolation``). The others are observed as
    ``acceleratorsLeftOut`` with why (``lacking``: what the row lacks), never judged; when
    every node was left out the probe cannot decide (ProbeError naming each; ``by_hand``:
    what to verify)."""
    vendors: dict[str, _vendors.Vendor] = {}
    left: dict[str, str] = {}
    for n, node in sorted(nodes.items()):
        vendor = _vendors.of_node(node, {d for d, _ in published.get(n, [])})
        if vendor is None:
            left[n] = "no row of the vendor table matches its resources, DRA drivers or labels"
        elif getattr(vendor, needs) is None:
            left[n] = f"{vendor.name} {vendor.kind}: the vendor table {lacking}"
        else:
            vendors[n] = vendor
    if left:
        ctx.observe("acceleratorsLeftOut", left)
    if left and not vendors:
        raise ProbeError("no accelerator node can be judged: " + "; ".join(
            f"{n}: {why}" for n, why in left.items()) + f": verify {by_hand} by hand")
    return vendors


def left_out(ctx: Context) -> str:
    """"; left out: ..." naming the VM GPU hosts and the cordoned or NotReady nodes a
    survey skipped, for a verdict's reason."""
    vms = ctx.evidence.observations.get("vmGpuNodesLeftOut") or {}
    away = ctx.evidence.observations.get("unavailableNodesLeftOut") or {}
    text = (f"; left out {len(vms)} VM GPU host(s) ({', '.join(vms)}: {WORKLOAD_CONFIG} "
            "vm-passthrough/vm-vgpu)") if vms else ""
    if away:
        text += (f"; left out {len(away)} cordoned or NotReady node(s) ("
                 + "; ".join(f"{n}: {w}" for n, w in away.items()) + ")")
    vendors = ctx.evidence.observations.get("acceleratorsLeftOut") or {}
    if vendors:
        text += (f"; left out {len(vendors)} node(s) the vendor table has no facts for here ("
                 + "; ".join(f"{n}: {w}" for n, w in vendors.items()) + ")")
    return text


def must_error(why: str) -> str:
    """An accelerator MUST's ERROR reason when ``survey`` found nothing to exercise: a
    requirement that could not be exercised is not "not applicable" (the checklist's
    ``N/A`` needs a justification that the requirement does not apply, and a submission
    passes only with every MUST ``Implemented``: cncf/k8s-ai-conformance
    docs/AIConformance-1.35.yaml ``status``/``notes``, scripts/validate.go)."""
    if why.startswith("no GPU node"):
        return f"{NO_GPU_TO_EXERCISE} ({why})"
    return f"{why}: the requirement cannot be exercised on container GPUs"


# DeviceClass selectors are CEL. The probe evaluates the conjunctions of equality tests
# that vendors' classes use (the NVIDIA chart's, kubernetes-sigs/dra-driver-nvidia-gpu v0.4.1
# deployments/helm/dra-driver-nvidia-gpu/templates/deviceclass-*.yaml:
# ``device.driver == 'gpu.nvidia.com' &&
# device.attributes['gpu.nvidia.com'].type == 'gpu'``); anything else is "cannot tell".
_CEL_DRIVER = re.compile(r"""^device\.driver\s*==\s*(['"])([^'"]*)\1$""")
_CEL_ATTR = re.compile(r"""^device\.attributes\[(['"])([^'"]+)\1\]\.(\w+)\s*==\s*(.+)$""")


def _cel_literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def cel_selects(expression: str, driver: str, device: dict) -> bool | None:
    """Whether ``expression`` selects ``device`` of ``driver``; None when it uses more CEL
    than equality tests joined by ``&&``."""
    for clause in (c.strip() for c in expression.split("&&")):
        if m := _CEL_DRIVER.match(clause):
            if driver != m.group(2):
                return False
            continue
        m = _CEL_ATTR.match(clause)
        if not m:
            return None
        domain, key, want = m.group(2), m.group(3), _cel_literal(m.group(4))
        attrs = device.get("attributes") or {}
        value = attrs.get(key) if domain == driver else attrs.get(f"{domain}/{key}")
        if not isinstance(value, dict) or next(iter(value.values()), None) != want:
            return False
    return True


def class_selects(device_class: dict, driver: str, device: dict) -> bool | None:
    """Whether every CEL selector of the class selects the device (None: cannot tell)."""
    verdicts = [cel_selects(s["cel"]["expression"], driver, device)
                for s in (device_class.get("spec") or {}).get("selectors") or [] if "cel" in s]
    if any(v is False for v in verdicts):
        return False
    return None if any(v is None for v in verdicts) else True
