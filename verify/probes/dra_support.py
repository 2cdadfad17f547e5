"""dra_support: the platform's accelerators are requested through DRA, and it works.

Its cases, in order:

1. ``_gpu_nodes_are_offered_the_dra_api``: ``resource.k8s.io/v1`` is served on a cluster
   with GPU nodes (see ``_gpus``);
2. ``_every_dra_gpu_node_publishes_devices``: a DeviceClass exists, and every GPU node
   publishes a ResourceSlice with devices, except nodes of device-plugin pools (recorded,
   not required, as long as DRA works elsewhere): a node that advertises its accelerators
   as a device plugin's extended resources (the vendor table's ``resources``: found by what
   the node publishes, whatever installed it), aicp's
   ``aicp.dev/gpu-allocator=device-plugin``, and a GKE GPU node
   (``cloud.google.com/gke-accelerator``) without the opt-out label
   ``gke-no-default-nvidia-gpu-device-plugin=true``: GKE runs its own NVIDIA device plugin
   there, and DRA needs that label on the pool (GKE "Prepare your GKE infrastructure for
   DRA workloads", cloud.google.com/kubernetes-engine/docs/how-to/set-up-dra); GKE's GPU
   time-sharing pools (``cloud.google.com/gke-gpu-sharing-strategy``) are of that kind.
   Cordoned and NotReady nodes are left out and named (``_gpus.survey``);
3. ``_each_dra_node_is_judged_by_its_vendor``: each DRA node's vendor is its DRA driver's
   row of the vendor table (``_vendors``); a node whose driver has no row, or whose row has
   no device facts (``Isolation``), is left out of the verdict, named with the reason
   (``acceleratorsLeftOut``); with none left the MUST is an ERROR;
4. ``_a_device_class_selects_the_published_gpus`` (``_pods.device_class``): over the
   judged vendors' devices, NVIDIA's first (the only vendor of the WG suite's
   ``acceleratorConfigs`` and of NVIDIA/aicr), then by name; the class's vendor is the one
   exercised;
5. ``_a_claim_is_allocated_published_devices``: a pod with a ResourceClaimTemplate in the
   shape the vendor's driver prepares: one device, or every device of a node
   (``allocationMode: All``) where the driver prepares nothing less (``whole_node``:
   Google's TPU driver); its claim must be allocated
   (``status.allocation.devices.results`` naming driver/pool/device of a published device);
6. ``_the_pod_sees_exactly_its_allocated_devices``: the pod must run, and it must see
   exactly the allocated devices, read the vendor's way (``_pods.script_for``): NVIDIA as
   many ``/dev/nvidia[0-9]*`` device nodes and ``nvidia-smi -L`` GPUs (``_pods``); other
   vendors as many of the row's device nodes (AMD ``/dev/dri/renderD*``, TPU
   ``/dev/vfio/<n>``), the judgement the WG suite makes (``ls <DevicePath>``); their tools
   come with the image and are not run. Never another vendor's tools.

The requirement ("Support Dynamic Resource Allocation (DRA) APIs to enable more flexible
and fine-grained resource requests beyond simple counts", cncf/k8s-ai-conformance
docs/AIConformance-1.35.yaml; dropped from 1.36 on) is met by one accelerator type whose
claims work; the strictest peer, NVIDIA/aicr validators/conformance/dra_support_check.go,
claims one GPU of ``gpu.nvidia.com`` and asks the pod to succeed with ``ls /dev/nvidia*``.
So one vendor is exercised, the other DRA nodes' devices are counted, not claimed. The pod
must see exactly its claim's devices, not merely some: a claim for one device that reaches
all of its node's is no fine-grained request.

Verdicts: no GPU node → ERROR ("no GPU node to exercise": a MUST that could not be
exercised is not "not applicable"); VM GPU hosts are left out, named in the evidence.
An API that is not served, no DeviceClass, or GPU nodes
without slices → FAIL: serving the API while the GPUs are only device-plugin extended
resources does not implement DRA for the accelerators. A claim never allocated while
free devices are published → FAIL; every published device already allocated, or for a
whole-node claim no node with all its devices free → ERROR (busy cluster); a pod that
never finishes → ERROR (image pull, node trouble; the kubelet's
FailedPrepareDynamicResources message when the driver refused to prepare the claim); a pod
that sees more or fewer devices than its claim was allocated → FAIL. DRA nodes of a
driver the vendor table has no device facts for are left out, named; none left → ERROR.
"""

from __future__ import annotations

import json
from typing import NoReturn

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe, ProbeError
from . import _gpus, _pods, _vendors


class DraSupport(Probe):
    id = "dra_support"
    category = "accelerators"
    mutating = True
    title = "Accelerators are allocated through Dynamic Resource Allocation"

    timeouts = {
        "claim_timeout": 120.0,  # the scheduler allocates the claim as it places the pod
        "pod_timeout": 300.0,  # the pod runs once allocated (an image pull at most)
        "poll": 1.0,
    }

    def cases(self, ctx: Context) -> str:
        slices, gpu_nodes = _gpu_nodes_are_offered_the_dra_api(ctx)
        required, counts = _every_dra_gpu_node_publishes_devices(ctx, slices, gpu_nodes)
        vendors = _each_dra_node_is_judged_by_its_vendor(ctx, slices, required)
        device_class, vendor = _a_device_class_selects_the_published_gpus(ctx, slices,
                                                                          vendors)
        with _pods.failed_checks_win(ctx):
            ns, named = _a_claim_is_allocated_published_devices(ctx, slices, device_class,
                                                                vendor)
            seen = _the_pod_sees_exactly_its_allocated_devices(ctx, ns, len(named), vendor)
        if all(c.passed for c in ctx.evidence.checks):
            saw = seen[0] if _iso(vendor).tool_judged else ", ".join(seen)
            return (f"{len(required)} GPU nodes publish DRA devices "
                    f"({sum(counts[n] for n in required)} in all); a claim on "
                    f"DeviceClass {device_class} got {', '.join(named)} and the pod "
                    f"saw {saw} (class chosen: "
                    f"{ctx.evidence.observations['deviceClassWhy']})"
                    + _other_vendors(vendors, vendor) + _pools_left_out(ctx)
                    + _gpus.left_out(ctx))
        failed = next(c for c in ctx.evidence.checks if not c.passed)
        raise Fail(f"DRA allocation did not work end to end: expected that "
                   f"{failed.name}, observed {failed.observed}")


def _gpu_nodes_are_offered_the_dra_api(ctx: Context) -> tuple[list[dict] | None,
                                                              dict[str, dict]]:
    with ctx.step("find GPU nodes"):
        served = ctx.check(f"{_gpus.DRA} is served", _gpus.served(ctx, _gpus.DRA),
                           ", ".join(sorted(r["name"] for r in ctx.kube.resources(
                               _gpus.DRA))) or "not served")
        slices, gpu_nodes, why = _gpus.survey(ctx)
        if why:
            raise ProbeError(_gpus.must_error(why))
        if not served:
            raise Fail(f"{_gpus.DRA} is not served: the cluster has "
                       f"{len(gpu_nodes)} GPU nodes but no DRA API")
    return slices, gpu_nodes


def _every_dra_gpu_node_publishes_devices(ctx: Context, slices: list[dict] | None,
                                          gpu_nodes: dict[str, dict]
                                          ) -> tuple[list[str], dict[str, int]]:
    """The GPU nodes that must publish devices (all but device-plugin pools' nodes), and
    how many devices each GPU node publishes."""
    with ctx.step("read DeviceClasses and ResourceSlices"):
        classes = [_gpus.name(c) for c in _gpus.device_classes(ctx)]
        ctx.observe("deviceClasses", classes)
        published = _gpus.devices_by_node(slices)
        counts = {n: len(published.get(n, [])) for n in sorted(gpu_nodes)}
        ctx.observe("devicesPerNode", counts)
        why = {n: w for n, node in sorted(gpu_nodes.items())
               if (w := device_plugin_pool(node, counts[n]))}
        exempt = sorted(why)
        if exempt:
            ctx.observe("devicePluginPoolNodes", exempt)
            ctx.observe("devicePluginPoolWhy", why)
        required = [n for n in sorted(gpu_nodes) if n not in exempt]
        missing = [n for n in required if not counts[n]]
        ok = [ctx.check("a DeviceClass exists", bool(classes), ", ".join(classes) or "none"),
              ctx.check("every DRA GPU node publishes devices in a ResourceSlice",
                        bool(required) and not missing,
                        "; ".join(f"{n}: {counts[n]}" for n in required)
                        or f"every GPU node is in a device-plugin pool: {', '.join(exempt)}")]
        if not ok[0]:
            raise Fail(
                f"no DeviceClass exists although {_gpus.DRA} is served: the "
                f"{len(gpu_nodes)} GPU nodes are not exposed through DRA (device plugin "
                "only?); install the accelerator's DRA driver")
        if not required:
            raise Fail("every GPU node belongs to a device-plugin pool "
                       f"({', '.join(exempt)}): no accelerator is allocated through DRA")
        if missing:
            raise Fail(
                f"{len(missing)} of {len(required)} GPU nodes publish no DRA devices: "
                f"{', '.join(missing)} (no ResourceSlice with devices for the node; is "
                "the DRA driver's kubelet plugin running there?)",
                partial=len(missing) < len(required))
    return required, counts


def _other_vendors(vendors: dict[str, _vendors.Vendor], exercised: _vendors.Vendor) -> str:
    """"; ..." naming the DRA nodes of the vendors not exercised (counted, not claimed)."""
    others = {n: v for n, v in vendors.items() if v is not exercised}
    return ("; DRA nodes of other vendors publish devices, not claimed: " + ", ".join(
        f"{n} ({v.name} {v.kind})" for n, v in others.items())) if others else ""


def _pools_left_out(ctx: Context) -> str:
    exempt = ctx.evidence.observations.get("devicePluginPoolWhy") or {}
    return (f"; {len(exempt)} node(s) of device-plugin pools need no DRA devices ("
            + "; ".join(f"{n}: {w}" for n, w in exempt.items()) + ")") if exempt else ""


GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
GKE_NO_DEVICE_PLUGIN = "gke-no-default-nvidia-gpu-device-plugin"


def device_plugin_pool(node: dict, devices: int) -> str | None:
    """Why the platform hands this node's GPUs out through a device plugin by design
    (module doc, case 2), or None. ``devices``: how many DRA devices the node publishes."""
    labels = _gpus.labels(node)
    if labels.get(_gpus.ALLOCATOR_LABEL) == "device-plugin":
        return f"{_gpus.ALLOCATOR_LABEL}=device-plugin"
    if labels.get(GKE_ACCELERATOR) and labels.get(GKE_NO_DEVICE_PLUGIN) != "true":
        return f"GKE's device plugin ({GKE_ACCELERATOR} without {GKE_NO_DEVICE_PLUGIN}=true)"
    # By wiring, whatever installed it: the node advertises its accelerators as a device
    # plugin's extended resources (the vendor table's ``resources``). Such a pool is handed
    # out by count on purpose (a vendor or platform with no DRA driver for it, e.g. Neuron or
    # Gaudi beside NVIDIA DRA pools); a node with neither slices nor such resources is a DRA
    # node whose driver is not running, and still fails.
    # A node that publishes DRA devices is a DRA node, whatever else it advertises.
    advertised = sorted(r for r, q in _gpus.allocatable(node).items()
                        if q > 0 and _vendors.is_accelerator_resource(r))
    if advertised and not devices:
        return f"its accelerators are a device plugin's resources ({', '.join(advertised)})"
    return None


def _iso(vendor: _vendors.Vendor) -> _vendors.Isolation:
    assert vendor.isolation is not None  # judged_vendors keeps only rows with one
    return vendor.isolation


def _each_dra_node_is_judged_by_its_vendor(ctx: Context, slices: list[dict] | None,
                                           required: list[str]
                                           ) -> dict[str, _vendors.Vendor]:
    """Node name -> the vendor row of the DRA driver publishing its devices, for the nodes
    whose row says what a claimed container sees (module doc, case 3)."""
    with ctx.step("judge each DRA node by its vendor"):
        published = _gpus.devices_by_node(slices)
        # By the drivers alone: a DRA node's devices are its DRA driver's, whatever other
        # labels or device-plugin resources the node carries.
        bare = {n: {"metadata": {"name": n}} for n in required}
        vendors = _gpus.judged_vendors(
            ctx, bare, published, "isolation",
            "says nothing of the device nodes its DRA driver gives a container",
            "DRA allocation of these accelerators")
        ctx.observe("draVendors", {n: f"{v.name} {v.kind}" for n, v in vendors.items()})
    return vendors


def _a_device_class_selects_the_published_gpus(ctx: Context, slices: list[dict] | None,
                                               vendors: dict[str, _vendors.Vendor]
                                               ) -> tuple[str, _vendors.Vendor]:
    """The class to claim with and the vendor whose devices it selects: the judged vendors
    in turn, NVIDIA first, each over its own drivers' devices on its own nodes."""
    with ctx.step("choose the DeviceClass"):
        for vendor in sorted(set(vendors.values()), key=lambda v: (v.name != "NVIDIA",
                                                                   v.name, v.kind)):
            mine = {n for n, v in vendors.items() if v is vendor}
            device_class = _pods.device_class(ctx, [
                s for s in slices or [] if (s.get("spec") or {}).get("nodeName") in mine
                and s["spec"].get("driver") in vendor.dra_drivers])
            if device_class is not None:
                ctx.observe("draVendor", f"{vendor.name} {vendor.kind}")
                return device_class, vendor
        classes = ctx.evidence.observations["deviceClasses"]
        raise Fail(
            f"GPU nodes publish DRA devices but no DeviceClass selects them "
            f"(classes: {', '.join(classes)}): no ResourceClaim can ask for a GPU")


def _a_claim_is_allocated_published_devices(ctx: Context, slices: list[dict] | None,
                                            device_class: str, vendor: _vendors.Vendor
                                            ) -> tuple[str, list[str]]:
    """The namespace of the pod holding the claim, and its devices (driver/pool/device)."""
    whole_node = _iso(vendor).whole_node
    template = "node-devices" if whole_node else "one-gpu"
    with ctx.step("create a claim template and a pod"):
        ns = ctx.namespace()
        _pods.claim_template(ctx, ns, template, device_class, all_devices=whole_node)
        if whole_node:
            ctx.log(f"{vendor.name}'s DRA driver prepares only claims for every device of a "
                    "node: the claim asks for all of them (allocationMode All)")
        _pods.gpu_pod(ctx, ns, "dra", [
            {"name": "main", "resources": {"claims": [{"name": "gpu"}]}}],
            claims=[{"name": "gpu", "resourceClaimTemplateName": template}],
            image="cuda" if _iso(vendor).tool_judged else "busybox",
            script=_pods.script_for(_iso(vendor)) if _iso(vendor).tool_judged
            else _pods.isolation_script(_iso(vendor).devices))
    with ctx.step("wait for the claim's allocation"):
        claim = ctx.wait_for("the claim to be allocated",
                             lambda: _allocated_claim(ctx, ns, "dra"),
                             timeout=ctx.timeout("claim_timeout"),
                             interval=ctx.timeout("poll"))
        if claim is None:
            _unallocated(ctx, ns, device_class, slices, vendor)
        results = claim["status"]["allocation"]["devices"]["results"]
        named = [f"{r['driver']}/{r['pool']}/{r['device']}" for r in results]
        ctx.observe("allocation", named)
        known = {(s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
                 for s in slices or [] for d in s["spec"].get("devices") or []}
        ctx.check("the claim is allocated devices that ResourceSlices publish",
                  all((r["driver"], r["pool"], r["device"]) in known for r in results),
                  ", ".join(named))
    return ns, named


def _the_pod_sees_exactly_its_allocated_devices(ctx: Context, ns: str, allocated: int,
                                                vendor: _vendors.Vendor) -> list[str]:
    """What the pod saw: the GPUs ``nvidia-smi -L`` listed (NVIDIA), else the device nodes
    of the vendor's row."""
    iso = _iso(vendor)
    with ctx.step("wait for the pod to finish"):
        pod = _pods.wait_finished(ctx, ns, "dra", ctx.timeout("pod_timeout"))
        if pod is None:
            raise ProbeError(f"pod dra did not finish within {ctx.timeout('pod_timeout'):g}s "
                             "although its claim was allocated (image pull or node problem"
                             + _prepare_failure(ctx, ns) + ")")
        phase = pod["status"]["phase"]
        ctx.observe("podNode", pod["spec"].get("nodeName"))
    tool = iso.command if iso.tool_judged else ""
    with ctx.step(f"read the device nodes{' and ' + tool if tool else ''}"):
        text = _pods.logs(ctx, ns, "dra", "main")
        nodes = _pods.device_nodes(text)
    ctx.check("the pod with the claim ran to completion", phase == "Succeeded", phase)
    if iso.tool_judged:
        seen = _pods.gpus_seen(text)
        ctx.check(f"the pod sees exactly its {allocated} allocated device(s)",
                  len(seen) == allocated and nodes == allocated,
                  f"{nodes} {iso.devices} device node(s); {tool.split()[0]}: "
                  + ("; ".join(seen) or "no GPU"))
        return seen
    seen = _pods.device_paths(text)
    ctx.check(f"the pod sees exactly its {allocated} allocated device(s)",
              nodes == allocated,
              f"{nodes} {iso.devices} device node(s) ({vendor.name} {vendor.kind}): "
              + (", ".join(seen) or "none"))
    return seen


def _prepare_failure(ctx: Context, ns: str) -> str:
    """"; kubelet: ..." with the kubelet's FailedPrepareDynamicResources event for the pod
    (its DRA driver refused to prepare the claim), or ""."""
    try:
        events = _gpus.list_or_none(ctx, f"/api/v1/namespaces/{ns}/events") or []
    except (ProbeError, ApiException):  # not allowed to read events: the error says enough
        return ""
    why = next((e.get("message", "") for e in events
                if e.get("reason") == "FailedPrepareDynamicResources"), "")
    return f"; kubelet: {why}" if why else ""


def _unallocated(ctx: Context, ns: str, device_class: str, slices: list[dict] | None,
                 vendor: _vendors.Vendor) -> NoReturn:
    """Why the claim was never allocated: every device of the vendor taken, or for a
    whole-node claim no node with all of them free (ERROR), else FAIL."""
    timeout = ctx.timeout("claim_timeout")
    pod = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/dra")
    ctx.artifact("pod-dra.json", json.dumps(pod, indent=2))
    why = next((c.get("message", "") for c in (pod.get("status") or {}).get(
        "conditions") or [] if c.get("type") == "PodScheduled"), "")
    claims = _gpus.list_or_none(ctx, f"/apis/{_gpus.DRA}/resourceclaims") or []
    # adminAccess allocations (the GPU Operator's DRA-mode DCGM exporter holds one on every
    # GPU of its node: NVIDIA/gpu-operator internal/state/testdata/golden/
    # gpucluster-dcgm-exporter-embedded.yaml, allocationMode All, adminAccess true) monitor
    # a device without taking it: the scheduler still hands it out (KEP-5018,
    # resource.k8s.io/v1 DeviceRequestAllocationResult.adminAccess).
    in_use = {(r["driver"], r["pool"], r["device"]) for c in claims
              for r in (((c.get("status") or {}).get("allocation") or {}).get(
                  "devices") or {}).get("results") or [] if not r.get("adminAccess")}
    mine = [s for s in slices or [] if s["spec"].get("driver") in vendor.dra_drivers]
    total = {(s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
             for s in mine for d in s["spec"].get("devices") or []}
    free = total - in_use
    observed = (f"not allocated after {timeout:g}s; {len(free)} of {len(total)} "
                f"published GPU devices free" + (f"; scheduler: {why}" if why else ""))
    ctx.observe("claim", observed)
    if total and not free:
        # Busy, not broken: no check failed, so the error stands (failed_checks_win).
        raise ProbeError(f"every one of the {len(total)} published GPU devices is already "
                         "allocated to other claims: free one and re-run")
    if _iso(vendor).whole_node:
        by_node: dict[str, set] = {}
        for s in mine:
            by_node.setdefault(s["spec"].get("nodeName", ""), set()).update(
                (s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
                for d in s["spec"].get("devices") or [])
        if by_node and all(devices & in_use for devices in by_node.values()):
            raise ProbeError(f"no node has all its {vendor.name} {vendor.kind} devices free "
                             f"({vendor.name}'s DRA driver prepares only whole-node claims): "
                             "free a node and re-run")
    ctx.check("the claim is allocated", False, observed)
    raise Fail(f"a claim on DeviceClass {device_class} was not allocated within "
               f"{timeout:g}s although {len(free)} GPU devices are free "
               "(the DeviceClass selects no published device, or no scheduler "
               "allocates claims)" + (f"; scheduler says: {why}" if why else ""))


def _allocated_claim(ctx: Context, ns: str, pod_name: str) -> dict | None:
    pod = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod_name}")
    for status in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        claim_name = status.get("resourceClaimName")
        if not claim_name:
            continue
        claim = ctx.kube.request(
            "GET", f"/apis/{_gpus.DRA}/namespaces/{ns}/resourceclaims/{claim_name}")
        if (((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get(
                "results"):
            return claim
    return None
