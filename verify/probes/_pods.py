"""Helpers shared by probes that run short pods and read their logs (not a probe).

A GPU probe container runs ``PROBE_SCRIPT``: it counts the accelerator device nodes it can
open, as the WG suite does (kubernetes-sigs/ai-conformance test/util_test.go
``acceleratorProbeCommand``, NVIDIA ``DevicePattern: /dev/nvidia[0-9]*``), then runs
``nvidia-smi -L``. Both matter: the NVIDIA container runtime mounts ``nvidia-smi`` (the
``utility`` driver capability) only into containers it gives GPUs, and with
``NVIDIA_VISIBLE_DEVICES`` unset behaves as runc (NVIDIA/nvidia-container-runtime README.md,
"Environment variables (OCI spec)"), so a runtime that leaks ``/dev/nvidia*`` without the
utilities would look isolated to ``nvidia-smi`` alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

from ..probe import Context, Fail, ProbeError
from . import _gpus, _vendors

DRA = "resource.k8s.io/v1"
DEVICE_GLOB = "/dev/nvidia[0-9]*"
COUNT_PREFIX = "RESULT: ACCELERATOR_COUNT="
PROBE_SCRIPT = (f'count=0; for device in {DEVICE_GLOB}; do [ -e "$device" ] || continue; '
                f'count=$((count + 1)); done; echo "{COUNT_PREFIX}$count"; '
                "nvidia-smi -L 2>&1 || true")
_COUNT = re.compile(rf"^{re.escape(COUNT_PREFIX)}(\d+)$", re.M)
DEVICE_PREFIX = "RESULT: DEVICE="
ACCESS_PREFIX = "RESULT: ACCESS_COUNT="
_ACCESS = re.compile(rf"^{re.escape(ACCESS_PREFIX)}(\d+)$", re.M)


def isolation_script(devices: str, access: tuple[str, ...] = (), command: str = "") -> str:
    """``PROBE_SCRIPT`` for any vendor's row (``_vendors.Isolation``): the device nodes
    counted and named (a device plugin mounts them at their host paths, so the path is the
    device), the shared access nodes counted, then the vendor's listing tool."""
    parts = [f'count=0; for device in {devices}; do [ -e "$device" ] || continue; '
             f'count=$((count + 1)); echo "{DEVICE_PREFIX}$device"; done; '
             f'echo "{COUNT_PREFIX}$count"']
    if access:
        parts.append(f'access=0; for path in {" ".join(access)}; do [ -e "$path" ] && '
                     f'access=$((access + 1)); done; echo "{ACCESS_PREFIX}$access"')
    if command:
        parts.append(f"{command} 2>&1 || true")
    return "; ".join(parts)


def script_for(iso: _vendors.Isolation) -> str:
    """What a container given a vendor's devices runs: NVIDIA keeps ``PROBE_SCRIPT`` (what
    every GPU probe runs), the others their row's ``isolation_script``."""
    if iso.devices == DEVICE_GLOB:
        return PROBE_SCRIPT
    return isolation_script(iso.devices, iso.access, iso.command)


def device_paths(text: str) -> list[str]:
    """The device nodes ``isolation_script`` named."""
    return [line[len(DEVICE_PREFIX):].strip() for line in text.splitlines()
            if line.startswith(DEVICE_PREFIX)]


def access_nodes(text: str) -> int | None:
    """How many shared access nodes (AMD's /dev/kfd) ``isolation_script`` counted."""
    m = _ACCESS.search(text)
    return int(m.group(1)) if m else None


def create(ctx: Context, path: str, body: dict, namespace: str | None = None) -> dict:
    """POST ``body`` (labelled for cleanup) and track it."""
    body.setdefault("metadata", {}).setdefault("labels", {}).update(ctx.labels)
    created = ctx.kube.request("POST", path, body=body)
    ctx.track(created, namespace=namespace)
    return created


def node_affinity(nodes: list[str]) -> dict:
    """Required node affinity for any of ``nodes``: one term per node, since a node field
    selector takes exactly one value (kubernetes pkg/apis/core/validation
    ``ValidateNodeFieldSelectorRequirement``: "must be only one value when `operator` is
    'In' or 'NotIn' for node field selector"); terms are ORed."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": [n]}]} for n in sorted(nodes)]}}}


def gpu_pod(ctx: Context, ns: str, name: str, containers: list[dict],
            claims: list[dict] | None = None, nodes: list[str] | None = None,
            image: str = "cuda", script: str = PROBE_SCRIPT) -> dict:
    """A run-once pod of ``PROBE_SCRIPT`` containers, tolerating accelerator taints, on
    one of ``nodes`` when given. A container's ``resources`` may hold a claim reference or
    ``limits`` of a device-plugin resource."""
    spec: dict = {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                  "containers": [{"name": c["name"], "image": ctx.image(image),
                                  "command": ["sh", "-c", script],
                                  **({"resources": c["resources"]} if c.get("resources")
                                     else {})}
                                 for c in containers]}
    if claims:
        spec["resourceClaims"] = claims
    if nodes:
        spec["affinity"] = node_affinity(nodes)
    return create(ctx, f"/api/v1/namespaces/{ns}/pods",
                  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec},
                  ns)


def wait_finished(ctx: Context, ns: str, name: str, timeout: float) -> dict | None:
    """The pod once Succeeded or Failed; None (and its last phase logged) at the timeout."""
    last: dict = {}

    def finished():
        last["pod"] = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return last["pod"] if last["pod"].get("status", {}).get("phase") in (
            "Succeeded", "Failed") else None

    pod = ctx.wait_for(f"pod {name} to finish", finished, timeout=timeout, interval=1.0)
    if pod is None and last.get("pod"):
        ctx.artifact(f"pod-{name}.json", json.dumps(last["pod"], indent=2))
    return pod


def unschedulable(pod: dict) -> bool:
    """The scheduler found no node for the pod (PodScheduled False, reason Unschedulable)."""
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False"
               and c.get("reason") == "Unschedulable"
               for c in (pod.get("status") or {}).get("conditions") or [])


def logs(ctx: Context, ns: str, pod: str, container: str) -> str:
    text = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log",
                            query={"container": container}, text=True)
    ctx.artifact(f"{pod}-{container}.log", text)
    return text


def gpus_seen(text: str) -> list[str]:
    """``nvidia-smi -L`` lines naming a GPU ("GPU 0: NVIDIA H100 ... (UUID: GPU-...)");
    MIG devices are indented lines under their parent GPU's and are not counted."""
    return [line.strip() for line in text.splitlines() if line.startswith("GPU ")]


def device_nodes(text: str) -> int | None:
    """How many ``/dev/nvidia[0-9]*`` device nodes ``PROBE_SCRIPT`` counted (None: no
    count line, e.g. the container never ran the script)."""
    m = _COUNT.search(text)
    return int(m.group(1)) if m else None


def _whole(device: dict) -> bool:
    """No ``type`` attribute, or one a vendor row calls a whole device (NVIDIA's ``gpu``,
    AMD's ``amdgpu``)."""
    kind = _gpus.attribute(device, "type")
    return kind is None or _vendors.is_whole_device_type(str(kind))


def device_class(ctx: Context, slices: list[dict] | None = None) -> str | None:
    """The DeviceClass to claim one GPU with: the class whose CEL selectors select the
    whole-GPU devices GPU drivers publish (MIG devices when there are no whole GPUs).

    Picking by name fails stock installs: the NVIDIA chart lists
    ``compute-domain-daemon.nvidia.com`` first (the API server lists by name the classes of
    kubernetes-sigs/dra-driver-nvidia-gpu@v0.4.1 deployments/helm/dra-driver-nvidia-gpu/
    templates/deviceclass-*.yaml), EKS adds a NIC class. Where selectors use more CEL
    than the probe evaluates, the class named after the GPU driver is taken (for NVIDIA
    ``gpu.nvidia.com``, the WG suite's choice: kubernetes-sigs/ai-conformance
    test/util_test.go ``acceleratorConfigs``). The choice and why are in the evidence.
    ``slices`` are read when not given.
    """
    items = ctx.kube.request("GET", f"/apis/{DRA}/deviceclasses").get("items", [])
    ctx.observe("deviceClasses", [i["metadata"]["name"] for i in items])
    if slices is None:
        slices = _gpus.resource_slices(ctx)
    devices = [(s["spec"]["driver"], d) for s in slices or []
               if _gpus.is_gpu_driver((s.get("spec") or {}).get("driver", ""))
               for d in s["spec"].get("devices") or []]
    for kind, group in (("whole-GPU", [(r, d) for r, d in devices if _whole(d)]),
                        ("MIG", [(r, d) for r, d in devices
                                 if _gpus.attribute(d, "type") == "mig"])):
        for item in items:
            selected = [(r, d) for r, d in group if _gpus.class_selects(item, r, d)]
            if selected:
                name = item["metadata"]["name"]
                drivers = sorted({r for r, _ in selected})
                ctx.observe("deviceClass", name)
                ctx.observe("deviceClassWhy", f"its selectors select {len(selected)} published "
                                              f"{kind} devices of {', '.join(drivers)}")
                return name
    # Only a class whose selectors the probe cannot evaluate may be taken by its name.
    names = {i["metadata"]["name"] for i in items
             if any(_gpus.class_selects(i, r, d) is None for r, d in devices)}
    drivers = sorted({r for r, _ in devices} & names)
    if drivers:
        ctx.observe("deviceClass", drivers[0])
        ctx.observe("deviceClassWhy", "named after the GPU driver publishing devices (its "
                                      "selectors use CEL the probe does not evaluate)")
        return drivers[0]
    ctx.observe("deviceClassWhy", "none of the DeviceClasses selects a published GPU device")
    return None


def claim_template(ctx: Context, ns: str, name: str, device_class_name: str, *,
                   all_devices: bool = False) -> dict:
    """One device of the class; ``all_devices``: every matching device of a node
    (``allocationMode: All``), for drivers that prepare nothing less."""
    mode = {"allocationMode": "All"} if all_devices else {"allocationMode": "ExactCount",
                                                          "count": 1}
    return create(ctx, f"/apis/{DRA}/namespaces/{ns}/resourceclaimtemplates", {
        "apiVersion": DRA, "kind": "ResourceClaimTemplate", "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{
            "name": "gpu", "exactly": {"deviceClassName": device_class_name, **mode}}]}}}},
        ns)


def device_uuids(text: str) -> list[str]:
    """The UUIDs of the devices ``nvidia-smi -L`` lists: a MIG device's own UUID (its
    ``MIG 3g.20gb Device 0: (UUID: MIG-...)`` line is indented under the parent's ``GPU 0:``
    line, as in the capture in NVIDIA/dcgm-exporter#105), else the GPU's; two MIG instances
    of one GPU share the parent's."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = re.search(r"\(UUID: ([^)]+)\)", line)
        if not m:
            continue
        if line.startswith("GPU "):
            if not (i + 1 < len(lines) and lines[i + 1].lstrip().startswith("MIG ")):
                found.append(m.group(1))
        elif line.lstrip().startswith("MIG "):
            found.append(m.group(1))
    return found


@contextmanager
def failed_checks_win(ctx: Context) -> Iterator[None]:
    """An error after a check already failed is FAIL with both facts: the requirement is
    already known to be unmet (an operator whose webhook is down fails the create with
    HTTP 500 before the probe's later case errs), so the error cannot make it undecided."""
    try:
        yield
    except ProbeError as exc:
        failed = [c for c in ctx.evidence.checks if not c.passed]
        if not failed:
            raise
        held = len(ctx.evidence.checks) - len(failed)
        raise Fail("; ".join(f"{c.name}: observed {c.observed}" for c in failed)
                   + f"; then: {exc}", partial=held > 0) from None
