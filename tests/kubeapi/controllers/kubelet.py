"""A kubelet: runs bound pods, writes their logs, and completes those that end.

A pod bound to a node becomes Running with every condition and container status a real
kubelet reports (the v37 client's models require them). ``logs(pod, container, kube)``
returns what a container prints; the default prints the allocated GPUs for a command
containing ``nvidia-smi -L`` and nothing otherwise (``sandbox_kernel`` plays ``uname -r``).
``completes(pod)`` decides whether the pod's command ends (default: pods with restartPolicy
Never/OnFailure; ``sleeps_forever`` keeps ``sleep`` running); ``exit_code(pod)`` its exit
code. ``finish(ns, name, exit_code)`` ends a pod on demand.
"""

from __future__ import annotations

from collections.abc import Callable

from ..store import now
from .base import Controller

LogFn = Callable[[dict, str, object], str]


def allocated_gpus(kube, pod: dict, container: str | None = None) -> list[dict]:
    """The devices a container holds (the whole pod's when ``container`` is None).

    As with a real DRA driver, a container sees a claim's devices only when it lists the
    claim in ``resources.claims``; with the device plugin, only its own nvidia.com/gpu.
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
                        devices.append(d)
    if devices:
        return devices
    count = 0
    for c in containers:
        res = c.get("resources") or {}
        count += int({**(res.get("limits") or {}), **(res.get("requests") or {})}.get(
            "nvidia.com/gpu", 0))
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {"metadata": {}}
    product = (node["metadata"].get("labels") or {}).get("nvidia.com/gpu.product", "GPU")
    return [{"name": f"gpu-{i}", "attributes": {
        "productName": {"string": product.replace("-", " ")}, "index": {"int": i},
        "uuid": {"string": f"GPU-{pod['metadata']['uid'][:8]}-{i:04d}"}}} for i in range(count)]


def nvidia_smi_logs(pod: dict, container: str, kube) -> str:
    command = " ".join(next((c.get("command") or []) + (c.get("args") or [])
                            for c in pod["spec"]["containers"] if c["name"] == container))
    if "nvidia-smi" not in command:
        return ""
    lines = []
    for i, d in enumerate(allocated_gpus(kube, pod, container)):
        attrs = d.get("attributes") or {}
        product = (attrs.get("productName") or {}).get("string", "GPU")
        uuid = (attrs.get("uuid") or {}).get("string", f"GPU-{i}")
        lines.append(f"GPU {i}: {product} (UUID: {uuid})\n")
    return "".join(lines) or "No devices were found\n"


def sandbox_kernel(pod: dict, container: str, kube) -> str:
    """``uname -r``: gVisor's Sentry reports its own kernel release; runc shares the node's."""
    if pod["spec"].get("runtimeClassName") == "gvisor":
        return "4.4.0\n"
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {}
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("kernelVersion", "") + "\n"


def _restartable_ends(pod: dict) -> bool:
    return pod["spec"].get("restartPolicy", "Always") != "Always"


def _ends_unless_sleeping(pod: dict) -> bool:
    return _restartable_ends(pod) and "sleep" not in (
        pod["spec"]["containers"][0].get("command") or [])


def sleeps_forever(kube) -> None:
    """``sleep 3600`` outlives any test: the kubelet would end Never pods at once."""
    for controller in kube.controllers.controllers:
        if isinstance(controller, Kubelet):
            controller.completes = _ends_unless_sleeping


class Kubelet(Controller):
    name = "kubelet"
    watches = ("pods",)

    def __init__(self, logs: LogFn = nvidia_smi_logs,
                 completes: Callable[[dict], bool] = _restartable_ends,
                 exit_code: Callable[[dict], int] = lambda pod: 0):
        self.logs, self.completes, self.exit_code = logs, completes, exit_code

    def sync(self, kube) -> None:
        for pod in kube.view("pods"):
            spec, meta = pod["spec"], pod["metadata"]
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if not spec.get("nodeName") or meta.get("deletionTimestamp"):
                continue
            if phase == "Pending":
                self._start(kube, pod)
            elif phase == "Running" and self.completes(pod):
                self.finish(kube, meta["namespace"], meta["name"], self.exit_code(pod))

    def _start(self, kube, pod: dict) -> None:
        meta = pod["metadata"]
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
                "imageID": f"docker.io/library/{c['image']}@sha256:{'0' * 64}",
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
