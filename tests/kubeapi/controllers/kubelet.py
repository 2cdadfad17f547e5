"""A kubelet: runs bound pods, writes their logs, and completes those that end.

A pod bound to a node becomes Running with every condition and container status a real
kubelet reports (the v37 client's models require them). ``logs(pod, container, kube)``
returns what a container prints. The default, ``nvidia_smi_logs`` (a ``GpuRuntime``),
plays the NVIDIA container runtime for the GPU probes' shell: ``/dev/nvidia[0-9]*`` device
nodes counted (``RESULT: ACCELERATOR_COUNT=N``), ``nvidia-smi -L``, ``command -v
nvidia-smi`` and ``nvidia-smi --query-gpu=driver_version``; ``nvidia-smi`` exists only in
containers given a GPU (injected by the toolkit/CDI: ../shared/fixtures/nvidia-smi-L.txt
header), MIG devices print under their parent GPU as in that fixture. Other commands print
through ``COMMAND_LOGS`` (``(predicate(argv), fn(pod, container, kube))`` pairs, first
match wins), so a controller or test adds a command without touching the dispatch.
``sandbox_kernel`` plays ``uname -r``.

Device-plugin GPUs are assigned per node, lowest free index first, and held while the pod
runs (``device_plugin_gpus``): the DCGM emulation reads the same assignment.
``completes(pod)`` decides whether the pod's command ends (default: pods with restartPolicy
Never/OnFailure; ``sleeps_forever`` keeps ``sleep`` running; never asked of a restartPolicy
Always pod, which stays Running); ``exit_code(pod)`` its exit
code. ``finish(ns, name, exit_code)`` ends a pod on demand. ``waiting(pod, container)``
keeps a container from running: it returns the container's ``state.waiting`` (and, after a
failed start, ``lastState``) fields, or None once it can start (default: always None); see
``Kubelet._hold``. ``kubelet(kube)`` is the scenario's kubelet, for a test to set its hooks.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable

from ..store import now
from . import dra
from .base import Controller
from .scheduler import node_selector_matches

LogFn = Callable[[dict, str, object], str]
WaitingFn = Callable[[dict, str], "dict | None"]
GPU_RESOURCE = "nvidia.com/gpu"
SHARED_GPU = "nvidia.com/gpu.shared"
MIG_PREFIX = "nvidia.com/mig-"
# GPUs whose devices are /dev/dri nodes: ROCm/k8s-device-plugin's amd.com/gpu, Intel's GPU
# plugin's gpu.intel.com/i915 and xe (intel/intel-device-plugins-for-kubernetes cmd/gpu_plugin).
DRI_RESOURCES = ("amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe")
# Accelerators whose device plugin mounts one device node per device at its host path:
# Gaudi's /dev/accel/accel<N> (HabanaAI/habanalabs-k8s-device-plugin v1.16.0 server.go
# ``Allocate``), Neuron's /dev/neuron<N> (aws-neuron/aws-neuron-sdk deploy/infrastructure/
# scheduler-flow.rst: --device=/dev/neuron<N>).
ACCEL_RESOURCES = ("habana.ai/gaudi", "aws.amazon.com/neuron")
# Further device-plugin resources whose devices are device nodes at their host paths (a
# test adds a made-up accelerator's here).
DEVICE_NODE_RESOURCES: list[str] = []
_DEVICE_LOOP = re.compile(r"for device in ([^;]+); do")  # the globs naming the devices
_ACCESS_LOOP = re.compile(r"for path in ([^;]+); do")  # a row's shared access nodes
# Which vendor's device a DRA driver or device-plugin resource hands out, so each vendor's
# runtime shows only its own devices: no ``nvidia-smi`` line or /dev/nvidia node for a TPU
# chip or an AMD GPU. Drivers: kubernetes-sigs/dra-driver-nvidia-gpu (gpu.nvidia.com),
# ROCm/k8s-gpu-dra-driver pkg/consts (gpu.amd.com), intel/intel-resource-drivers-for-
# kubernetes (gpu.intel.com, gaudi.intel.com), kubernetes-sigs/dra-driver-google-tpu
# (tpu.google.com); resources: each device plugin's (see DRI_RESOURCES, ACCEL_RESOURCES).
DEVICE_VENDORS = {
    "gpu.nvidia.com": "nvidia", GPU_RESOURCE: "nvidia", SHARED_GPU: "nvidia",
    "gpu.amd.com": "amd", "amd.com/gpu": "amd",
    "gpu.intel.com": "intel", "gpu.intel.com/i915": "intel", "gpu.intel.com/xe": "intel",
    "gaudi.intel.com": "gaudi", "habana.ai/gaudi": "gaudi",
    "aws.amazon.com/neuron": "neuron", "tpu.google.com": "tpu"}
# The node every container given a device of the vendor gets beside the device's own:
# AMD's /dev/kfd (ROCm/k8s-device-plugin ``Allocate``; the AMD DRA driver's CDI edits,
# ROCm/k8s-gpu-dra-driver cmd/gpu-kubeletplugin/state.go ``applyConfig``), the TPU DRA
# driver's VFIO container node /dev/vfio/vfio (dra-driver-google-tpu v0.2.0 README).
ACCESS_NODES = {"amd": ("/dev/kfd",), "tpu": ("/dev/vfio/vfio",)}
ACTIVE = ("Pending", "Running", "Unknown")
COMMAND_LOGS: list[tuple[Callable[[list[str]], bool], LogFn]] = []


def gpu_uuid(node: str, index: int) -> str:
    """GPU ``index`` of ``node``: the UUID ``objects.resource_slice`` and
    ``upstream.gpu_slice`` give it, so DRA, device plugin and DCGM agree."""
    h = hashlib.sha1(f"{node}-{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def container_running(pod: dict, container: str) -> bool:
    """The container's status is ``running``: a pod can be Running while a container waits
    in CrashLoopBackOff, and such a container runs nothing (kubernetes pkg/kubelet
    kubelet_pods.go ``getPhase`` counts a waiting container with a last termination as
    stopped, and a restartable pod of stopped containers as Running)."""
    return any(cs.get("name") == container and "running" in (cs.get("state") or {})
               for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def _image_id(image: str) -> str:
    return f"docker.io/library/{image}@sha256:{'0' * 64}"


def argv(pod: dict, container: str) -> list[str]:
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    return list(spec.get("command") or []) + list(spec.get("args") or [])


def _wanted(container: dict) -> dict[str, int]:
    res = container.get("resources") or {}
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {k: int(v) for k, v in merged.items()
            if k in (GPU_RESOURCE, SHARED_GPU, *DRI_RESOURCES, *ACCEL_RESOURCES,
                     *DEVICE_NODE_RESOURCES)
            or k.startswith(MIG_PREFIX)}


def _node_slots(node: dict, resource: str) -> int:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    try:
        return int(str(alloc.get(resource, 0)))
    except ValueError:
        return 0


def device_plugin_gpus(kube, pod: dict, container: str | None = None) -> list[tuple[str, int]]:
    """(resource, slot) the device plugin gave the pod's containers (one's when named);
    slots are assigned at first ask, lowest free first, and freed when the pod ends."""
    node_name = pod["spec"].get("nodeName") or ""
    table = kube.__dict__.setdefault("gpu_assignments", {})
    held = table.setdefault(node_name, {})
    live = {p["metadata"]["uid"] for p in kube.view("pods", fields=f"spec.nodeName={node_name}")
            if (p.get("status") or {}).get("phase", "Pending") in ACTIVE}
    for uid in list(held):
        if uid not in live:
            del held[uid]
    uid = pod["metadata"]["uid"]
    if uid not in held:
        node = kube.find("nodes", node_name) or {}
        mine: dict[str, list[tuple[str, int]]] = {}
        for c in pod["spec"].get("containers") or []:
            for resource, count in _wanted(c).items():
                taken = {s for other in held.values() for cs in other.values()
                         for r, s in cs if r == resource} | {
                    s for cs in mine.values() for r, s in cs if r == resource}
                free = [s for s in range(_node_slots(node, resource)) if s not in taken]
                mine.setdefault(c["name"], []).extend((resource, s) for s in free[:count])
        held[uid] = mine
    return [g for name, gs in held[uid].items() if container in (None, name) for g in gs]


def _plugin_device(node: dict, resource: str, slot: int) -> dict:
    """What a device-plugin slot is: a whole GPU, a time-sliced replica of one, a MIG
    instance (GFD labels say how many replicas; MIG instances sit on GPU 0 upward)."""
    labels = node["metadata"].get("labels") or {}
    name = node["metadata"]["name"]
    product = (labels.get(f"{resource}.product") or labels.get("nvidia.com/gpu.product")
               or "GPU").replace("-", " ")
    driver = labels.get("nvidia.com/cuda.driver-version.full", "580.65.06")
    product_label = labels.get("nvidia.com/gpu.product", "")
    if resource == GPU_RESOURCE and labels.get("nvidia.com/mig.strategy") == "single" \
            and "-MIG-" in product_label:
        # Under mig.strategy=single nvidia.com/gpu are MIG devices (GFD fixture doc 2a).
        resource = MIG_PREFIX + product_label.split("-MIG-", 1)[1]
        product = product_label.split("-MIG-", 1)[0].replace("-", " ")
    if resource.startswith(MIG_PREFIX):
        profile = resource.removeprefix(MIG_PREFIX)
        parent = slot // 2
        return {"name": f"gpu-{parent}-mig-{profile}-{slot}", "resource": resource,
                "attributes": {
            "type": {"string": "mig"}, "profile": {"string": profile},
            "parentUUID": {"string": gpu_uuid(name, parent)}, "index": {"int": parent},
            "uuid": {"string": f"MIG-{gpu_uuid(name, 1000 + slot)[4:]}"},
            "productName": {"string": product}, "driverVersion": {"version": driver}}}
    replicas = max(1, int(labels.get(f"{resource}.replicas", "1") or 1))
    index = slot // replicas
    return {"name": f"gpu-{index}", "resource": resource, "attributes": {
        "type": {"string": "gpu"}, "productName": {"string": product}, "index": {"int": index},
        "uuid": {"string": gpu_uuid(name, index)}, "driverVersion": {"version": driver}}}


def allocated_gpus(kube, pod: dict, container: str | None = None) -> list[dict]:
    """The devices a container holds (the whole pod's when ``container`` is None).

    As with a real DRA driver, a container sees a claim's devices only when it lists the
    claim in ``resources.claims``; with the device plugin, only its own GPU resources.
    """
    containers = [c for c in pod["spec"].get("containers") or []
                  if container is None or c["name"] == container]
    wanted = {ref["name"] for c in containers
              for ref in ((c.get("resources") or {}).get("claims") or [])}
    devices = []
    for status in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        if status.get("name") not in wanted:
            continue
        claim = kube.find("resourceclaims.resource.k8s.io", status.get("resourceClaimName", ""),
                          pod["metadata"]["namespace"])
        results = (((claim or {}).get("status") or {}).get("allocation") or {}).get(
            "devices", {}).get("results") or []
        for r in results:
            slices = kube.list("resourceslices.resource.k8s.io",
                               fields=f"spec.nodeName={r['pool']}")
            for s in slices:
                for d in s["spec"].get("devices") or []:
                    if d["name"] == r["device"] and s["spec"]["driver"] == r["driver"]:
                        devices.append({**d, "driver": r["driver"]})
    if devices:
        return devices
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {"metadata": {"name": ""}}
    return [_plugin_device(node, resource, slot)
            for resource, slot in device_plugin_gpus(kube, pod, container)]


def device_vendor(device: dict) -> str | None:
    """The vendor of a device a container was given (``DEVICE_VENDORS``), "" for a driver
    or resource the emulator knows no vendor of, None for an untagged device (a test's own
    runtime), which every vendor's runtime shows as before the tags."""
    if "driver" not in device and "resource" not in device:
        return None
    key = device.get("driver") or device.get("resource") or ""
    return "nvidia" if key.startswith(MIG_PREFIX) else DEVICE_VENDORS.get(key, "")


def _index(device: dict) -> int:
    return int(_attr(device, "index") or 0)


def device_path(device: dict) -> str | None:
    """The device node a container given the device opens, at its host path (None: the
    vendor's node is not known here). AMD's render node is the one its DRA driver
    publishes (``renderIndex``: ROCm/k8s-gpu-dra-driver docs/driver-attributes.md), else
    the DRM render minor 128 + index (linux drivers/gpu/drm/drm_drv.c
    ``DRM_MINOR_RENDER``), as for Intel's GPU plugin; Gaudi /dev/accel/accel<N>, Neuron
    /dev/neuron<N>, TPU (v5 on) /dev/vfio/<N> (module doc of ``GpuRuntime.dri``)."""
    vendor, i = device_vendor(device), _index(device)
    if vendor == "amd":
        render = _attr(device, "renderIndex")
        return f"/dev/dri/renderD{render if render is not None else 128 + i}"
    return {"nvidia": f"/dev/nvidia{i}", "intel": f"/dev/dri/renderD{128 + i}",
            "gaudi": f"/dev/accel/accel{i}", "neuron": f"/dev/neuron{i}",
            "tpu": f"/dev/vfio/{i}"}.get(vendor or "")


def of_vendor(devices: list[dict], vendor: str) -> list[dict]:
    """The devices of ``vendor`` (untagged devices count for every vendor)."""
    return [d for d in devices if device_vendor(d) in (None, vendor)]


def _attr(device: dict, key: str):
    value = (device.get("attributes") or {}).get(key) or {}
    return next(iter(value.values()), None) if isinstance(value, dict) else None


def smi_lines(devices: list[dict]) -> list[str]:
    """``nvidia-smi -L`` for these devices, MIG instances under their parent GPU."""
    lines: list[str] = []
    parents: dict[str, int] = {}
    for d in devices:
        if _attr(d, "type") == "mig":
            parent = str(_attr(d, "parentUUID"))
            if parent not in parents:
                parents[parent] = len(parents)
                lines.append(f"GPU {parents[parent]}: {_attr(d, 'productName') or 'GPU'} "
                             f"(UUID: {parent})")
            lines.append(f"  MIG {_attr(d, 'profile')} Device 0: (UUID: {_attr(d, 'uuid')})")
        else:
            uuid = str(_attr(d, "uuid"))
            parents[uuid] = len(parents)
            lines.append(f"GPU {parents[uuid]}: {_attr(d, 'productName') or 'GPU'} "
                         f"(UUID: {uuid})")
    return lines


def all_node_gpus(kube, pod: dict, container: str) -> list[dict]:
    """A broken runtime: every container on the node sees all its GPUs (the CUDA image's
    ``NVIDIA_VISIBLE_DEVICES=all`` honoured for unrequested containers)."""
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {"metadata": {"name": ""}}
    slices = kube.list("resourceslices.resource.k8s.io",
                       fields=f"spec.nodeName={node['metadata']['name']}")
    devices = [{**d, "driver": "gpu.nvidia.com"} for s in slices
               for d in s["spec"].get("devices") or [] if s["spec"]["driver"] == "gpu.nvidia.com"]
    if devices:
        return devices
    count = max(_node_slots(node, GPU_RESOURCE), 0)
    return [_plugin_device(node, GPU_RESOURCE, i) for i in range(count)]


_LITERAL_ECHO = re.compile(r'echo "([^"$]*)"')


class GpuRuntime:
    """The NVIDIA container runtime as the GPU probes' commands see it (module doc).

    ``devices(kube, pod, container)`` is what the container's device nodes expose (default:
    what it was given); ``tools(kube, pod, container)`` what ``nvidia-smi`` reports
    (default: the same). A runtime that leaks ``/dev/nvidia*`` but injects no utilities is
    ``GpuRuntime(devices=all_node_gpus)``; one that leaks everything also sets ``tools``.
    """

    def __init__(self, devices: Callable | None = None, tools: Callable | None = None):
        self.devices = devices or (lambda kube, pod, c: allocated_gpus(kube, pod, c))
        self.tools = tools or (lambda kube, pod, c: allocated_gpus(kube, pod, c))

    def __call__(self, pod: dict, container: str, kube) -> str:
        words = argv(pod, container)
        for matches, fn in COMMAND_LOGS:
            if matches(words):
                return fn(pod, container, kube)
        text = " ".join(words)
        loop = _DEVICE_LOOP.search(text)
        if loop and loop.group(1).strip() != "/dev/nvidia[0-9]*":
            return self.dri(kube, pod, container, text, loop.group(1).split())
        if "nvidia" not in text:
            return ""
        out: list[str] = []
        if "/dev/nvidia[0-9]*" in text:
            # One device node per physical NVIDIA GPU (a MIG instance opens its parent's);
            # another vendor's device has none.
            nodes = {_attr(d, "parentUUID") or _attr(d, "uuid")
                     for d in of_vendor(self.devices(kube, pod, container), "nvidia")}
            out.append(f"RESULT: ACCELERATOR_COUNT={len(nodes)}")
        # nvidia-smi comes with NVIDIA's toolkit and lists NVIDIA GPUs only.
        given = of_vendor(self.tools(kube, pod, container), "nvidia")
        if "command -v nvidia-smi" in text:
            if given:
                driver = _attr(given[0], "driverVersion") or "580.65.06"
                out += ["RESULT: NVIDIA_SMI=/usr/bin/nvidia-smi",
                        f"RESULT: ACTUAL_DRIVER_VERSION={driver}"]
            else:
                out.append("RESULT: NVIDIA_SMI=")
        elif "nvidia-smi" in text:
            out += smi_lines(given) if given else ["sh: nvidia-smi: not found"]
        # Literal ``echo "..."`` run unconditionally after the checks (secure_accelerator_
        # access's HOLDING line); one inside an if/else branch is not emulated.
        tail = text.rsplit("nvidia-smi", 1)[-1]
        if not re.search(r"\b(if|else|fi)\b", tail):
            out += _LITERAL_ECHO.findall(tail)
        return "".join(line + "\n" for line in out)


    def dri(self, kube, pod: dict, container: str, text: str, globs: list[str]) -> str:
        """Another vendor's runtime: each device the container was given is its device node
        at its host path (``device_path``; AMD's ROCm device plugin and DRA driver, Intel's
        GPU plugin, Gaudi's and Neuron's plugins, the TPU DRA driver), shown where it
        matches one of the script's ``globs``; the vendor's access nodes (AMD's /dev/kfd,
        TPU's /dev/vfio/vfio) with any of its devices. No tool is injected: ``amd-smi
        list`` runs only in a ROCm image (ROCm/amdsmi docs "AMD SMI CLI tool usage": "GPU:
        N" blocks with BDF and UUID) and lists AMD GPUs only. An untagged device (a test's
        own runtime) or one of a vendor not known here is ``/dev/xN`` of the first glob
        ``/dev/x*`` (DRM render nodes from 128)."""
        given = self.devices(kube, pod, container)
        first = globs[0]
        stem = first.split("*", 1)[0].split("[", 1)[0]
        base = 128 if first == "/dev/dri/renderD*" else 0
        paths = set()
        for d in given:
            path = device_path(d)
            if path is None:
                paths.add(f"{stem}{base + _index(d)}")
            elif any(fnmatch.fnmatchcase(path, g) for g in globs):
                paths.add(path)
        seen = sorted(paths, key=lambda p: (p.rstrip("0123456789"),
                                            int(p[len(p.rstrip("0123456789")):] or 0)))
        out = [f"RESULT: DEVICE={p}" for p in seen]
        out.append(f"RESULT: ACCELERATOR_COUNT={len(seen)}")
        access = _ACCESS_LOOP.search(text)
        if access:  # the row's shared access nodes
            listed = set(access.group(1).split())
            present: set[str] = set()
            for d in given:
                vendor = device_vendor(d)
                present |= listed if not vendor else set(ACCESS_NODES.get(vendor, ()))
            out.append(f"RESULT: ACCESS_COUNT={len(present & listed)}")
        tail = text
        if "amd-smi list" in text:
            tail = text.rsplit("amd-smi list", 1)[-1]
            image = next((c.get("image", "") for c in pod["spec"]["containers"]
                          if c["name"] == container), "")
            given_amd = sorted({int(_attr(d, "index") or 0)
                                for d in of_vendor(self.tools(kube, pod, container), "amd")})
            if "rocm" not in image:
                out.append("sh: 1: amd-smi: not found")
            elif not given_amd:
                out.append("ERROR:root:Unable to detect any GPU devices, check amdgpu version "
                           "and module status (sudo modprobe amdgpu)")
            for n, i in enumerate(given_amd if "rocm" in image else []):
                node = pod["spec"].get("nodeName", "")
                out += [f"GPU: {n}", f"    BDF: 0000:{i + 12:02x}:00.0",
                        f"    UUID: {gpu_uuid(node, i)[4:]}"]
        if not re.search(r"\b(if|else|fi)\b", tail):
            out += _LITERAL_ECHO.findall(tail)
        return "".join(line + "\n" for line in out)


nvidia_smi_logs = GpuRuntime()


def sandbox_kernel(pod: dict, container: str, kube) -> str:
    """``uname -r``: gVisor's Sentry reports its own kernel release; runc shares the node's."""
    if pod["spec"].get("runtimeClassName") == "gvisor":
        return "4.4.0\n"
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {}
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("kernelVersion", "") + "\n"


# ``sleep N`` last, or ``sleep N & wait $!`` (a script that traps TERM sleeps in the
# background so the trap runs at once).
_TRAILING_SLEEP = re.compile(r"(?:^|;|&&|\n)\s*sleep\s+(\d+)"
                            r"(?:\s*&\s*wait(?:\s+\$!)?)?\s*$")


def trailing_sleep(pod: dict) -> int:
    """Seconds a ``sh -c '...; sleep N'`` script of the pod's first container sleeps last:
    the kubelet keeps such a run-once pod Running that long, as a real node would."""
    words = argv(pod, pod["spec"]["containers"][0]["name"]) if pod["spec"].get(
        "containers") else []
    m = _TRAILING_SLEEP.search(words[-1]) if len(words) >= 3 and words[1] == "-c" else None
    return int(m.group(1)) if m else 0


def _restartable_ends(pod: dict) -> bool:
    return pod["spec"].get("restartPolicy", "Always") != "Always"


def _ends_unless_sleeping(pod: dict) -> bool:
    return _restartable_ends(pod) and "sleep" not in (
        pod["spec"]["containers"][0].get("command") or [])


def _has_work(pod: dict) -> bool:
    """A bound pod the kubelet may start or end: Pending, or Running under a restartPolicy
    that lets it end (under Always a stopped container is restarted and the pod stays
    Running: getPhase, kubernetes pkg/kubelet/kubelet_pods.go). The rest of 100,000 pods
    are not read on each pass (``KubeAPI.view``'s ``where``)."""
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return bool(pod["spec"].get("nodeName")) and not pod["metadata"].get(
        "deletionTimestamp") and (phase == "Pending" or (
            phase == "Running" and _restartable_ends(pod)))


def kubelet(kube) -> Kubelet:
    """The scenario's kubelet (each scenario adds one), for a test to set its hooks."""
    return next(c for c in kube.controllers.controllers if isinstance(c, Kubelet))


def sleeps_forever(kube) -> None:
    """``sleep 3600`` outlives any test: the kubelet would end Never pods at once."""
    kubelet(kube).completes = _ends_unless_sleeping


class Kubelet(Controller):
    name = "kubelet"
    watches = ("pods",)

    def __init__(self, logs: LogFn = nvidia_smi_logs,
                 completes: Callable[[dict], bool] = _restartable_ends,
                 exit_code: Callable[[dict], int] = lambda pod: 0,
                 waiting: WaitingFn = lambda pod, container: None):
        self.logs, self.completes, self.exit_code = logs, completes, exit_code
        self.waiting = waiting
        self._running_since: dict[str, float] = {}

    def sync(self, kube) -> None:
        for pod in kube.view("pods", where=_has_work):
            spec, meta = pod["spec"], pod["metadata"]
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if not spec.get("nodeName") or meta.get("deletionTimestamp"):
                continue
            if phase == "Pending":
                if not self._admits(kube, pod):
                    continue
                held = {c["name"]: w for c in spec["containers"]
                        if (w := self.waiting(pod, c["name"])) is not None}
                if not held and (error := dra.prepare_error(kube, pod)):
                    # A DRA driver refused to prepare a claim: no container starts.
                    held = {c["name"]: {"state": {"waiting": {"reason": "ContainerCreating"}}}
                            for c in spec["containers"]}
                    self._failed_prepare(kube, pod, error)
                if held:
                    self._hold(kube, pod, held)
                    continue
                self._start(kube, pod)
            elif phase == "Running" and self.completes(pod):
                since = self._running_since.setdefault(meta["uid"], kube.clock.now())
                if kube.clock.now() - since < trailing_sleep(pod):
                    kube.controllers.timer(self, since + trailing_sleep(pod))
                    continue
                self._running_since.pop(meta["uid"], None)
                self.finish(kube, meta["namespace"], meta["name"], self.exit_code(pod))

    def _admits(self, kube, pod: dict) -> bool:
        """The kubelet's admission of a pod placed by ``nodeName`` (the API server takes a
        nodeName that contradicts the pod's nodeSelector or required node affinity): it
        fails the pod with reason NodeAffinity (kubernetes pkg/kubelet/lifecycle
        predicate.go, ``generalFilter`` -> "Predicate NodeAffinity failed")."""
        spec = pod["spec"]
        node = kube.find("nodes", spec["nodeName"]) or {"metadata": {"name": spec["nodeName"]}}
        labels = node["metadata"].get("labels") or {}
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        if all(labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items()) and (
                not required or node_selector_matches(required, node)):
            return True
        message = "Pod was rejected: Predicate NodeAffinity failed"

        def reject(p: dict) -> None:
            p["status"].update(phase="Failed", reason="NodeAffinity", message=message)
        kube.mutate("pods", pod["metadata"]["name"], reject, pod["metadata"]["namespace"],
                    status=True)
        return False

    def _failed_prepare(self, kube, pod: dict, error: str) -> None:
        """The kubelet's Warning event for a claim its DRA driver would not prepare, once,
        worded as a real one reads in ``kubectl describe pod`` (a captured event of
        NVIDIA's DRA driver: reason FailedPrepareDynamicResources, "Failed to prepare
        dynamic resources: prepare dynamic resources: NodePrepareResources failed for
        ResourceClaim <name>: <the driver's error>")."""
        meta = pod["metadata"]
        if any(e.get("reason") == "FailedPrepareDynamicResources"
               and (e.get("involvedObject") or {}).get("uid") == meta["uid"]
               for e in kube.view("events", namespace=meta["namespace"])):
            return
        kube.create({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"generateName": meta["name"] + ".",
                                  "namespace": meta["namespace"]},
                     "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                        "namespace": meta["namespace"], "uid": meta["uid"]},
                     "reason": "FailedPrepareDynamicResources", "type": "Warning",
                     "message": "Failed to prepare dynamic resources: prepare dynamic "
                                f"resources: {error}",
                     "source": {"component": "kubelet", "host": pod["spec"]["nodeName"]},
                     "reportingComponent": "kubelet", "count": 1,
                     "firstTimestamp": now(), "lastTimestamp": now()})

    def _hold(self, kube, pod: dict, held: dict[str, dict]) -> None:
        """Write the status of a pod whose ``held`` containers cannot run (none of its
        containers starts): each held one waits with the fields ``waiting`` gave, the others
        wait in ContainerCreating. The phase is ``getPhase``'s (kubernetes
        pkg/kubelet/kubelet_pods.go): a waiting container that never ran keeps the pod
        Pending (an image pull); one with a last termination (a failed start, then
        CrashLoopBackOff) counts as stopped, and a restartPolicy Always pod whose containers
        all stopped is Running. The status is written again only when it changes."""
        statuses = []
        for c in pod["spec"]["containers"]:
            fields = held.get(c["name"]) or {"state": {"waiting": {
                "reason": "ContainerCreating"}}}
            ran = "terminated" in (fields.get("lastState") or {})
            statuses.append({
                "name": c["name"], "image": c["image"],
                # The image ID is known once pulled: a start can only fail after the pull.
                "imageID": _image_id(c["image"]) if ran else "",
                "ready": False, "started": False, "restartCount": 0, **fields})
        stopped = all("terminated" in (cs.get("lastState") or {}) for cs in statuses)
        phase = ("Running" if stopped and pod["spec"].get("restartPolicy", "Always")
                 == "Always" else "Pending")
        status = pod.get("status") or {}
        if status.get("phase") == phase and status.get("containerStatuses") == statuses:
            return
        stamp = now()

        def write(p: dict) -> None:
            p["status"].update(phase=phase, containerStatuses=statuses, startTime=stamp)
            p["status"]["conditions"] = [
                {"type": t, "status": "True" if t in ("PodScheduled", "Initialized")
                 else "False", "lastTransitionTime": stamp, "lastProbeTime": None,
                 **({} if t in ("PodScheduled", "Initialized") else {
                     "reason": "ContainersNotReady",
                     "message": f"containers with unready status: [{', '.join(held)}]"})}
                for t in ("PodScheduled", "Initialized", "Ready", "ContainersReady")]
        kube.mutate("pods", pod["metadata"]["name"], write, pod["metadata"]["namespace"],
                    status=True)

    def _start(self, kube, pod: dict) -> None:
        meta = pod["metadata"]
        self._running_since[meta["uid"]] = kube.clock.now()
        for c in pod["spec"]["containers"]:
            kube.logs[(meta["namespace"], meta["name"], c["name"])] = self.logs(
                pod, c["name"], kube)
        node = kube.find("nodes", pod["spec"]["nodeName"]) or {}
        host_ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                        if a["type"] == "InternalIP"), "10.0.0.1")
        pod_ip = f"10.244.{hash(meta['uid']) % 250}.{hash(meta['name']) % 250 + 2}"
        started = now()

        def run(p: dict) -> None:
            status = p["status"]
            status.update(phase="Running", hostIP=host_ip, hostIPs=[{"ip": host_ip}],
                          podIP=pod_ip, podIPs=[{"ip": pod_ip}], startTime=started)
            status["conditions"] = [
                {"type": t, "status": "True", "lastTransitionTime": started,
                 "lastProbeTime": None}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                          "PodScheduled")]
            status["containerStatuses"] = [{
                "name": c["name"], "image": c["image"],
                "imageID": _image_id(c["image"]),
                "containerID": f"containerd://{meta['uid'].replace('-', '')}{i}",
                "ready": True, "started": True, "restartCount": 0,
                "state": {"running": {"startedAt": started}}}
                for i, c in enumerate(p["spec"]["containers"])]
        kube.mutate("pods", meta["name"], run, meta["namespace"], status=True)

    def finish(self, kube, namespace: str, name: str, exit_code: int = 0) -> None:
        """End every container of a running pod with ``exit_code``."""
        finished = now()

        def end(p: dict) -> None:
            status = p["status"]
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            for c in status.get("conditions") or []:
                if c["type"] in ("Ready", "ContainersReady"):
                    c.update(status="False", reason="PodCompleted", lastTransitionTime=finished)
            for cs in status.get("containerStatuses") or []:
                started = ((cs.get("state") or {}).get("running") or {}).get("startedAt",
                                                                             finished)
                cs.update(ready=False, started=False, state={"terminated": {
                    "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": started, "finishedAt": finished,
                    "containerID": cs.get("containerID")}})
        kube.mutate("pods", name, end, namespace, status=True)


from . import tools as _performance_tools  # noqa: E402,F401 - adds to COMMAND_LOGS
