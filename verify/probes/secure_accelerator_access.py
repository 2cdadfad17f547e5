"""secure_accelerator_access: only a container that was given an accelerator can reach one.

First the GPU nodes (``_gpus.gpu_nodes_to_exercise``) and how each hands out GPUs (DRA
devices, else a device-plugin resource), the pods mounting GPU devices from the host
(``_pods_mounting_host_gpu_devices``, below) and a DeviceClass (``_a_gpu_can_be_given``).
Then, per mechanism (``_only_containers_given_a_claim_reach_a_gpu``,
``_only_containers_given_a_request_reach_a_gpu``), the WG suite's cases
(kubernetes-sigs/ai-conformance test/util_test.go; EKS's submission for 1.34 runs the same
two tests), each judged on both the ``/dev/nvidia[0-9]*`` device nodes the container can
open and ``nvidia-smi -L`` (see ``_pods``):

1. ``_a_container_given_a_gpu_sees_exactly_one``: a container holding one GPU (DRA claim,
   or ``limits`` of the node's device-plugin resource) sees exactly one;
2. ``_its_second_container_sees_no_gpu``: a second container of that pod, without the GPU,
   sees none;
3. ``_a_pod_without_a_gpu_on_that_node_sees_none``: a pod without any GPU, pinned to the
   node the first pod ran on, sees none (unpinned it could land on a CPU node and "see
   nothing" trivially);
4. ``_a_second_gpu_pod_sees_a_different_gpu``: a second one-GPU pod on that node, running
   while the first holds its GPU, sees exactly one, a different device (UUID) than the
   first.

The GPU pods hold their GPU after their checks until the probe has seen both holding in one
pod list (or the second stays Unschedulable beside the first for ``unschedulable_grace``:
then the first is deleted and the second runs alone), so the overlap is observed, not hoped
for from a fixed sleep that a slow image pull outlasts. Case 4 is judged only when both pods
held their GPU at the same time: a GPU handed on after the first pod ended is no leak. DRA
GPUs and device-plugin-only nodes (GPU resources in allocatable, no DRA devices) each get all
four cases; a cluster with both gets both. Pods that mount ``/dev/nvidia*`` from the host
(``hostPath``) on GPU nodes are reported: such a pod reaches every GPU of its node whatever
it requested.

No GPU node: ERROR (a MUST that could not be exercised is not "not applicable").

Each node is judged by its vendor's row of the vendor table (``_vendors.Isolation``): the
containers' script counts and names the row's device nodes (NVIDIA ``/dev/nvidia[0-9]*``,
AMD and Intel ``/dev/dri/renderD*``, Gaudi ``/dev/accel/accel[0-9]*``, Neuron
``/dev/neuron[0-9]*``), counts its shared access nodes (AMD ``/dev/kfd``:
none without a GPU) and runs the row's tool (``nvidia-smi -L``, ``amd-smi list``). The
tool's listing is judged only where the runtime injects the tool with the device (NVIDIA);
elsewhere the device nodes are the judgement, as in the WG suite (``ls <DevicePath>``), and
the device paths tell two GPUs apart; a row's partial resources (a NeuronCore) are not
asked for different devices. Where the DRA driver prepares only whole nodes (Google's TPU
driver: ``Isolation.whole_node``) the holder claims every device of its node
(``allocationMode: All``) and must see them; no second holder fits beside it, so the
different-device case is not judged there. A row whose facts cover its DRA driver only
(``Isolation.device_plugin`` false: GKE's TPU device plugin is unpublished) leaves its
device-plugin nodes out, named. Device-plugin nodes are exercised per vendor. Nodes
of a type whose row has no isolation facts, or of no row, are left out of the verdict and
named with the reason (``acceleratorsLeftOut``), never judged by another vendor's devices;
with none left the MUST is an ERROR.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..probe import Context, Fail, Probe, ProbeError
from . import _gpus, _pods, _vendors

HOLDING = "RESULT: HOLDING"  # a GPU pod has printed what it saw and now holds its GPU
# At most this long, should the probe die before deleting it. ``sh`` as PID 1 ignores TERM
# unless it traps it (the kernel sends PID 1 only signals it handles), hence the trap: a
# deleted pod ends at once instead of after its grace period.
HOLD_LIMIT = 600


def hold_script(script: str) -> str:
    return (f"trap 'exit 0' TERM; {script}; echo \"{HOLDING}\"; "
            f"sleep {HOLD_LIMIT} & wait $!")


HOLD_SCRIPT = hold_script(_pods.PROBE_SCRIPT)


def probe_script(iso: _vendors.Isolation) -> str:
    """NVIDIA keeps ``_pods.PROBE_SCRIPT`` (what every GPU probe runs); others their row's."""
    return _pods.script_for(iso)


# GPU nodes whose pods are read for hostPath mounts (one list call each, by field
# selector, never every pod of the cluster); how many more were not read is recorded.
MOUNT_SCAN_NODES = 32
# Preference when a node offers several device-plugin GPU resources: whole GPUs first.
_RESOURCE_ORDER = ("nvidia.com/gpu", _gpus.SHARED_GPU)


def _resource(node: dict) -> str | None:
    offered = _gpus.gpu_resources(node)
    return next((r for r in (*_RESOURCE_ORDER, *sorted(offered)) if r in offered), None)


def _int(value) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _overlap(a: dict, b: dict) -> bool | None:
    """Whether the first containers of two finished pods ran at the same time."""
    def span(pod: dict) -> tuple[str, str] | None:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            t = (cs.get("state") or {}).get("terminated") or {}
            if t.get("startedAt") and t.get("finishedAt"):
                return str(t["startedAt"]), str(t["finishedAt"])
        return None
    sa, sb = span(a), span(b)
    if sa is None or sb is None:
        return None
    return sa[0] < sb[1] and sb[0] < sa[1]  # strictly: a GPU handed on is no overlap


class SecureAcceleratorAccess(Probe):
    id = "secure_accelerator_access"
    category = "security"
    mutating = True
    title = "Accelerator access is isolated by DRA claims or device-plugin requests"

    timeouts = {
        "pod_timeout": 300.0,  # a GPU pod scheduled; every pod's script run
        "poll": 1.0,
        # The second GPU pod must stay Unschedulable this long before the first is released
        # for it. The scheduler retries a pod on cluster events, so a pod can be reported
        # Unschedulable and bound moments later (its claim allocated after the first
        # attempt, a GPU freed by a pod that is ending); releasing the first at the first
        # sight of it left case 4 unjudged on nodes with a GPU to spare.
        "unschedulable_grace": 10.0,
    }

    def cases(self, ctx: Context) -> str:
        slices, gpu_nodes = _gpus.gpu_nodes_to_exercise(ctx, must=True)
        dra_nodes, plugin, vendors = _how_each_gpu_node_hands_out_gpus(ctx, slices,
                                                                       gpu_nodes)
        mounts = _pods_mounting_host_gpu_devices(ctx, gpu_nodes, vendors)
        # Without the slices of nodes left out: a class of a type the table has no
        # isolation facts for (a TPU) is never the one claimed.
        away = set(gpu_nodes) - set(vendors)
        dc = _a_gpu_can_be_given(ctx, None if slices is None else [
            s for s in slices if (s.get("spec") or {}).get("nodeName") not in away],
            dra_nodes, plugin)
        with ctx.step("create namespace"):
            ns = ctx.namespace()
        summary = []
        with _pods.failed_checks_win(ctx):
            if dc is not None:
                # The class's vendor: the one whose DRA driver it is named after (the
                # drivers' charts name their GPU class so), else the first DRA node's.
                vendor = _vendors.by_driver(dc) or vendors[dra_nodes[0]]
                summary.append(_only_containers_given_a_claim_reach_a_gpu(
                    ctx, ns, dc, [n for n in dra_nodes if vendors[n] is vendor] or dra_nodes,
                    vendor))
            # One run per vendor of the device-plugin nodes, NVIDIA's first (kind "dp").
            for vendor in sorted({vendors[n] for n in plugin}, key=lambda v: (
                    v.name != "NVIDIA", v.name)):
                summary.append(_only_containers_given_a_request_reach_a_gpu(
                    ctx, ns, gpu_nodes, {n: r for n, r in plugin.items()
                                         if vendors[n] is vendor}, vendor))
        what = ("/dev/nvidia*" if all(": /dev/nvidia" in m or m.endswith(": /dev")
                                      for m in mounts) else "accelerator device nodes")
        note = (f"; {len(mounts)} pod(s) mount {what} from the host and reach every GPU "
                f"of their node: {', '.join(mounts[:5])}") if mounts else ""
        if all(c.passed for c in ctx.evidence.checks):
            return ("only containers given a GPU reach one: " + "; ".join(summary) + note
                    + _gpus.left_out(ctx))
        failed = next(c for c in ctx.evidence.checks if not c.passed)
        raise Fail(f"accelerator access is not isolated: expected that {failed.name}, "
                   f"observed {failed.observed}{note}")


def _how_each_gpu_node_hands_out_gpus(ctx: Context, slices: list[dict] | None,
                                      gpu_nodes: dict[str, dict]
                                      ) -> tuple[list[str], dict[str, str],
                                                 dict[str, _vendors.Vendor]]:
    """The nodes publishing DRA devices, the others' device-plugin GPU resource, and each
    judged node's vendor."""
    published = _gpus.devices_by_node(slices)
    vendors = _gpus.judged_vendors(
        ctx, gpu_nodes, published, "isolation",
        "gives no device listing the isolation check can read for it", "isolation")
    gpu_nodes = {n: node for n, node in gpu_nodes.items() if n in vendors}
    published = {n: d for n, d in published.items() if n in gpu_nodes}
    dra_nodes = sorted(n for n in gpu_nodes if published.get(n))
    plugin = {n: r for n, node in gpu_nodes.items()
              if n not in published and (r := _resource(node))}
    unpublished = {n: f"{vendors[n].name} {vendors[n].kind}: the vendor table has isolation "
                      "facts for its DRA driver only (its device plugin's container device "
                      "paths are not published)"
                   for n in sorted(plugin) if not _isolation(vendors[n]).device_plugin}
    if unpublished:
        plugin = {n: r for n, r in plugin.items() if n not in unpublished}
        left = {**(ctx.evidence.observations.get("acceleratorsLeftOut") or {}), **unpublished}
        ctx.observe("acceleratorsLeftOut", dict(sorted(left.items())))
        if not dra_nodes and not plugin:
            raise ProbeError("no accelerator node can be judged: " + "; ".join(
                f"{n}: {why}" for n, why in left.items()) + ": verify isolation by hand")
    ctx.observe("draGpuNodes", dra_nodes)
    ctx.observe("devicePluginNodes", dict(sorted(plugin.items())))
    return dra_nodes, plugin, vendors


def _isolation(vendor: _vendors.Vendor) -> _vendors.Isolation:
    assert vendor.isolation is not None  # judged_vendors keeps only rows with one
    return vendor.isolation


def _pods_mounting_host_gpu_devices(ctx: Context, gpu_nodes: dict[str, dict],
                                    vendors: dict[str, _vendors.Vendor]) -> list[str]:
    """Recorded, never judged: such a pod reaches every GPU of its node (module doc)."""
    with ctx.step("look for pods mounting /dev/nvidia* from the host"):
        scanned = sorted(gpu_nodes)[:MOUNT_SCAN_NODES]
        if len(gpu_nodes) > len(scanned):
            ctx.observe("hostPathNotRead", f"{len(gpu_nodes) - len(scanned)} GPU nodes "
                                           f"beyond the first {MOUNT_SCAN_NODES}")
        mounts = _host_device_mounts(ctx, scanned, vendors)
        ctx.observe("hostPathGpuDevices", mounts)
    return mounts


def _a_gpu_can_be_given(ctx: Context, slices: list[dict] | None, dra_nodes: list[str],
                        plugin: dict[str, str]) -> str | None:
    """The DeviceClass that selects the published GPUs (None: device plugin only)."""
    with ctx.step("find a DeviceClass"):
        dc = _pods.device_class(ctx, slices) if dra_nodes else None
        if dc is None and not plugin:
            raise ProbeError(
                "no DeviceClass selects the published GPU devices and no node advertises "
                "a device-plugin GPU resource: install the accelerator's DRA driver or "
                "device plugin")
    return dc


def _only_containers_given_a_claim_reach_a_gpu(ctx: Context, ns: str, device_class: str,
                                               nodes: list[str], vendor: _vendors.Vendor
                                               ) -> str:
    """The four cases with a DRA claim on ``device_class``; the evidence for the reason."""
    _pods.claim_template(ctx, ns, "one-gpu", device_class,
                         all_devices=_isolation(vendor).whole_node)
    seen = _only_containers_given_a_gpu_reach_one(
        ctx, ns, "dra", nodes, {"resources": {"claims": [{"name": "gpu"}]}},
        [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}], exclusive=True,
        vendor=vendor)
    return f"DRA (DeviceClass {device_class}): {seen}"


def _only_containers_given_a_request_reach_a_gpu(ctx: Context, ns: str,
                                                 gpu_nodes: dict[str, dict],
                                                 plugin: dict[str, str],
                                                 vendor: _vendors.Vendor) -> str:
    """The four cases with a request for the device-plugin resource most of ``vendor``'s
    nodes offer."""
    resource = sorted(set(plugin.values()), key=list(plugin.values()).count)[-1]
    nodes = sorted(n for n, r in plugin.items() if r == resource)
    # Time-sliced/MPS replicas share a GPU by design (GFD <resource>.replicas > 1, or the
    # renamed nvidia.com/gpu.shared): two pods seeing one UUID is the sharing.
    shared = resource == _gpus.SHARED_GPU or resource in vendor.partial_resources or any(
        _int(_gpus.labels(gpu_nodes[n]).get(f"{resource}.replicas")) > 1 for n in nodes)
    kind = "dp" if vendor.name == "NVIDIA" else "dp-" + "-".join(vendor.name.lower().split())
    seen = _only_containers_given_a_gpu_reach_one(
        ctx, ns, kind, nodes, {"resources": {"limits": {resource: 1}}}, None,
        exclusive=not shared, vendor=vendor)
    return f"device plugin ({resource}): {seen}"


def _only_containers_given_a_gpu_reach_one(ctx: Context, ns: str, kind: str, nodes: list[str],
                                           holder: dict, claims: list[dict] | None, *,
                                           exclusive: bool, vendor: _vendors.Vendor) -> str:
    """The four cases for one mechanism; ``holder`` is what a GPU container adds; the
    different-GPU case only where a unit is a whole device (``exclusive``). Returns the
    GPU the holder saw."""
    label = "a claim" if kind == "dra" else "a request"
    if vendor.name != "NVIDIA":  # NVIDIA's names stay as they were; others name the type
        label += f" ({vendor.name} {vendor.kind})"
    assert vendor.isolation is not None  # nodes without are left out first
    seen = _run_the_pods(ctx, ns, kind, nodes, holder, claims, vendor.isolation)
    _a_container_given_a_gpu_sees_exactly_one(ctx, label, seen)
    _its_second_container_sees_no_gpu(ctx, label, seen)
    _a_pod_without_a_gpu_on_that_node_sees_none(ctx, label, seen)
    _a_second_gpu_pod_sees_a_different_gpu(ctx, label, seen, kind, exclusive=exclusive)
    ctx.observe(f"{kind}Gpu", "; ".join(seen.gpus("holder") if seen.iso.tool_judged
                                        else seen.ids("holder")))
    return ctx.evidence.observations[f"{kind}Gpu"]


@dataclass
class _Seen:
    """What each container of the four cases printed, and whether the two GPU pods held
    their GPUs at the same time."""

    node: str
    logs: dict[str, str]  # "holder", "second container", "second pod", "bare pod"
    together: bool | None
    iso: _vendors.Isolation = _vendors.Isolation(_pods.DEVICE_GLOB, "nvidia-smi -L", "GPU ",
                                                 tool_judged=True)

    def gpus(self, key: str) -> list[str]:
        """The tool's device lines (``nvidia-smi -L``'s "GPU N:", ``amd-smi list``'s
        "GPU: N")."""
        if self.iso.devices == _pods.DEVICE_GLOB:
            return _pods.gpus_seen(self.logs[key])
        return [line.strip() for line in self.logs[key].splitlines()
                if self.iso.prefix and line.startswith(self.iso.prefix)]

    def devices(self, key: str) -> int | None:
        return _pods.device_nodes(self.logs[key])

    def access(self, key: str) -> int:
        """Shared access nodes seen (0 where the row has none)."""
        return (_pods.access_nodes(self.logs[key]) or 0) if self.iso.access else 0

    def ids(self, key: str) -> list[str]:
        """What tells two devices apart: NVIDIA's UUIDs, else the device paths (mounted at
        their host paths by the device plugin)."""
        if self.iso.devices == _pods.DEVICE_GLOB:
            return _pods.device_uuids(self.logs[key])
        return _pods.device_paths(self.logs[key])

    def none(self, key: str) -> bool:
        return ((not self.iso.tool_judged or not self.gpus(key)) and self.devices(key) == 0
                and self.access(key) == 0)

    def one(self, key: str) -> bool:
        """Exactly one device; all its claim's (at least one) where the driver hands out
        whole nodes only (``Isolation.whole_node``)."""
        if self.iso.whole_node:
            return (self.devices(key) or 0) >= 1
        return ((not self.iso.tool_judged or len(self.gpus(key)) == 1)
                and self.devices(key) == 1)

    def observed(self, key: str) -> str:
        tool = self.iso.command.split()[0] if self.iso.command else ""
        access = (f", {self.access(key)} of {' '.join(self.iso.access)}"
                  if self.iso.access else "")
        listed = (f"; {tool}: " + ("; ".join(self.gpus(key)) or "no GPU")
                  + ("" if self.iso.tool_judged else " (recorded, not judged)")) if tool else ""
        return f"{self.devices(key)} {self.iso.devices} device node(s){access}{listed}"


def _run_the_pods(ctx: Context, ns: str, kind: str, nodes: list[str], holder: dict,
                  claims: list[dict] | None, iso: _vendors.Isolation) -> _Seen:
    """A GPU pod with a second container without, then on its node a second GPU pod and a
    pod without a GPU; each runs its script, the GPU pods holding their GPUs (``_Holders``)."""
    first, second, bare = f"{kind}-holding", f"{kind}-second", f"{kind}-without"
    timeout, poll = ctx.timeout("pod_timeout"), ctx.timeout("poll")
    with ctx.step(f"start a pod holding one GPU ({kind})"):
        _pods.gpu_pod(ctx, ns, first, [{"name": "with-gpu", **holder},
                                       {"name": "without-gpu"}],
                      claims=claims, nodes=nodes, script=hold_script(probe_script(iso)))
        pod = ctx.wait_for(f"pod {first} to be scheduled",
                           lambda: _scheduled(ctx, ns, first), timeout=timeout, interval=poll)
        if pod is None:
            raise ProbeError(f"pod {first} was not scheduled within {timeout:g}s on "
                             f"{', '.join(nodes)} (no free GPU there?)")
        node = pod["spec"]["nodeName"]
        ctx.observe(f"{kind}Node", node)
    with ctx.step(f"start a second GPU pod and a pod without a GPU on {node}"):
        _pods.gpu_pod(ctx, ns, second, [{"name": "with-gpu", **holder}],
                      claims=claims, nodes=[node], script=hold_script(probe_script(iso)))
        _pods.gpu_pod(ctx, ns, bare, [{"name": "main"}], nodes=[node],
                      script=probe_script(iso))
    with ctx.step("wait until every container has run its script"):
        watch = _Holders(ctx, ns, {first: ("with-gpu", "without-gpu"),
                                   second: ("with-gpu",), bare: ("main",)})
        if not ctx.wait_for("the GPU pods holding and the bare pod finished", watch.settled,
                            timeout=timeout, interval=poll):
            late = next(n for n in (first, second, bare)
                        if watch.state.get(n) not in _Holders.SETTLED)
            watch.release()
            raise ProbeError(f"pod {late} did not run its script within {timeout:g}s "
                             f"on node {node} ({watch.state.get(late, 'not found')}: image "
                             "pull or node problem)")
        watch.release()
    logs = {key: watch.logs[(pod_name, container)] for key, (pod_name, container) in {
        "holder": (first, "with-gpu"), "second container": (first, "without-gpu"),
        "second pod": (second, "with-gpu"), "bare pod": (bare, "main")}.items()}
    together = watch.together or _overlap(watch.pods.get(first) or {},
                                          watch.pods.get(second) or {})
    return _Seen(node, logs, together, iso)


def _a_container_given_a_gpu_sees_exactly_one(ctx: Context, label: str, seen: _Seen) -> None:
    what = "its node's devices" if seen.iso.whole_node else "exactly one GPU"
    ctx.check(f"a container with {label} sees {what}", seen.one("holder"),
              seen.observed("holder"))


def _its_second_container_sees_no_gpu(ctx: Context, label: str, seen: _Seen) -> None:
    ctx.check(f"the holding pod's second container, without {label}, sees no GPU",
              seen.none("second container"), seen.observed("second container"))


def _a_pod_without_a_gpu_on_that_node_sees_none(ctx: Context, label: str, seen: _Seen
                                                ) -> None:
    ctx.check(f"a pod without {label} on the same node ({seen.node}) sees no GPU",
              seen.none("bare pod"), seen.observed("bare pod"))


def _a_second_gpu_pod_sees_a_different_gpu(ctx: Context, label: str, seen: _Seen, kind: str,
                                           *, exclusive: bool) -> None:
    """Different only where both held their GPU at once and a GPU is no shared replica: a
    GPU handed on after the first pod ended is no leak, two pods on one time-sliced GPU
    are the sharing."""
    what = "its node's devices" if seen.iso.whole_node else "exactly one GPU"
    ctx.check(f"a second pod with {label} sees {what}", seen.one("second pod"),
              seen.observed("second pod"))
    mine, theirs = seen.ids("holder"), seen.ids("second pod")
    ctx.observe(f"{kind}Uuids", {"first": mine, "second": theirs, "concurrent": seen.together})
    if seen.together and exclusive:
        vendor = label[label.index(" ("):] if " (" in label else ""  # " (AMD GPU)"
        ctx.check(f"two pods holding a GPU at the same time see different GPUs{vendor}",
                  bool(mine) and bool(theirs) and not set(mine) & set(theirs),
                  f"{', '.join(mine) or 'none'} vs {', '.join(theirs) or 'none'}")
    elif not exclusive:
        ctx.log("the resource is a shared GPU replica (time-slicing/MPS) or a part of one "
                "device (a NeuronCore): two pods on one device is the sharing, so the "
                "different-GPU case is not judged")
    else:
        ctx.log("the two GPU pods did not run at the same time: the same GPU handed on "
                "later is no leak, so the different-GPU case is not judged")


def _scheduled(ctx: Context, ns: str, name: str) -> dict | None:
    pod = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return pod if (pod.get("spec") or {}).get("nodeName") else None


def _device_stems(vendor: _vendors.Vendor | None) -> tuple[str, ...]:
    """Path prefixes of a vendor's device nodes (``/dev/nvidia``; AMD ``/dev/dri/renderD``,
    ``/dev/kfd``): NVIDIA's always, as before the table."""
    iso = vendor.isolation if vendor else None
    globs = (*iso.devices.split(), *iso.access) if iso else ()
    return ("/dev/nvidia", *(g.split("*", 1)[0].split("[", 1)[0] for g in globs))


def _host_device_mounts(ctx: Context, nodes: list[str],
                        vendors: dict[str, _vendors.Vendor] | None = None) -> list[str]:
    """``ns/pod: path`` for each pod on a GPU node mounting its vendor's device nodes, a
    folder holding them (``/dev/dri``) or all of ``/dev`` from the host. Pods are read per
    GPU node (a field selector), never all."""
    found = []
    for node in nodes:
        stems = _device_stems((vendors or {}).get(node))
        for pod in ctx.kube.items("/api/v1/pods",
                                  query={"fieldSelector": f"spec.nodeName={node}"}):
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                path = ((volume.get("hostPath") or {}).get("path") or "").rstrip("/")
                if path == "/dev" or any(path.startswith(s) or (
                        path and s.startswith(path + "/")) for s in stems):
                    meta = pod["metadata"]
                    found.append(f"{meta.get('namespace')}/{meta['name']}: {path}")
    return sorted(found)


class _Holders:
    """The probe's pods as one list of its namespace shows them, polled by ``settled``.

    A pod is ``holding`` once it runs and each container has printed ``HOLDING`` (its logs
    are read then, while it runs), ``done`` once it ended (logs read then), ``unschedulable``
    when the scheduler found no room for it, else ``pending``/``starting``. Two GPU pods seen
    holding in the same list held their GPUs at the same time (``together``). A second GPU
    pod that stays unschedulable for ``unschedulable_grace`` while the first holds (one GPU
    on the node) has the first released, so it runs after it.
    """

    SETTLED = ("holding", "done", "released")  # what each pod must be before the checks

    def __init__(self, ctx: Context, ns: str, containers: dict[str, tuple[str, ...]]):
        self.ctx, self.ns, self.containers = ctx, ns, containers
        self.first, self.second = list(containers)[:2]
        self.state: dict[str, str] = {}
        self.pods: dict[str, dict] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.together = False
        self.grace = ctx.timeout("unschedulable_grace")
        self._unschedulable_since: float | None = None

    def settled(self) -> bool:
        listed = {p["metadata"]["name"]: p for p in self.ctx.kube.request(
            "GET", f"/api/v1/namespaces/{self.ns}/pods").get("items", [])}
        for name in self.containers:
            if self.state.get(name) != "released" and name in listed:
                self.pods[name] = listed[name]
                self.state[name] = self._state(name, listed[name])
        if self.state.get(self.first) == self.state.get(self.second) == "holding":
            self.together = True
        if self.state.get(self.second) != "unschedulable":
            self._unschedulable_since = None
        elif self._unschedulable_since is None:
            self._unschedulable_since = time.monotonic()
        if (self._unschedulable_since is not None and self.state.get(self.first) == "holding"
                and time.monotonic() - self._unschedulable_since >= self.grace):
            self.ctx.log(f"pod {self.second} cannot be scheduled while {self.first} holds its "
                         f"GPU (Unschedulable for {self.grace:g}s): releasing "
                         f"{self.first}")
            self.release([self.first])
        return all(self.state.get(n) in self.SETTLED for n in self.containers)

    def _state(self, name: str, pod: dict) -> str:
        status = pod.get("status") or {}
        phase = status.get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            for container in self.containers[name]:
                if (name, container) not in self.logs:
                    self.logs[(name, container)] = _pods.logs(self.ctx, self.ns, name,
                                                              container)
            return "done"
        if phase == "Running" and all(
                "running" in (cs.get("state") or {})
                for cs in status.get("containerStatuses") or [{}]):
            if name not in (self.first, self.second):
                return "starting"  # the bare pod never holds: it is done when it ends
            for container in self.containers[name]:
                if HOLDING not in self.logs.get((name, container), ""):
                    self.logs[(name, container)] = _pods.logs(self.ctx, self.ns, name,
                                                              container)
            ready = all(HOLDING in self.logs[(name, c)] for c in self.containers[name])
            return "holding" if ready else "starting"
        if _pods.unschedulable(pod):
            return "unschedulable"
        return "pending"

    def release(self, names: list[str] | None = None) -> None:
        """Delete the holding GPU pods (all still holding when ``names`` is None)."""
        names = [n for n in (names or [self.first, self.second])
                 if self.state.get(n) not in ("done", "released")]
        for name in names:
            if name in self.pods:
                self.ctx.artifact(f"pod-{name}.json", json.dumps(self.pods[name], indent=2))
        self.state.update({n: "released" for n in names})
        self.ctx.cleanup.unwind(only=[o for o in self.ctx.cleanup.pending()
                                      if o.kind == "Pod" and o.name in names])
