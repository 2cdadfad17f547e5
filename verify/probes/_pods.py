"""Helpers shared by probes that run short pods and read their logs (not a probe)."""

from __future__ import annotations

import json

from ..probe import Context

DRA = "resource.k8s.io/v1"


def create(ctx: Context, path: str, body: dict, namespace: str | None = None) -> dict:
    """POST ``body`` (labelled for cleanup) and track it."""
    body.setdefault("metadata", {}).setdefault("labels", {}).update(ctx.labels)
    created = ctx.kube.request("POST", path, body=body)
    ctx.track(created, namespace=namespace)
    return created


def gpu_pod(ctx: Context, ns: str, name: str, containers: list[dict],
            claims: list[dict] | None = None) -> dict:
    """A run-once pod of ``nvidia-smi -L`` containers, tolerating accelerator taints."""
    spec = {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": c["name"], "image": ctx.image("cuda"),
                            "command": ["nvidia-smi", "-L"],
                            **({"resources": c["resources"]} if c.get("resources") else {})}
                           for c in containers]}
    if claims:
        spec["resourceClaims"] = claims
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


def logs(ctx: Context, ns: str, pod: str, container: str) -> str:
    text = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log",
                            query={"container": container}, text=True)
    ctx.artifact(f"{pod}-{container}.log", text)
    return text


def gpus_seen(text: str) -> list[str]:
    """``nvidia-smi -L`` lines naming a GPU ("GPU 0: NVIDIA H100 ... (UUID: GPU-...)")."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("GPU ")]


def device_class(ctx: Context) -> str | None:
    """The DeviceClass to claim a GPU with: NVIDIA's when present, else the first."""
    items = ctx.kube.request("GET", f"/apis/{DRA}/deviceclasses").get("items", [])
    names = [i["metadata"]["name"] for i in items]
    ctx.observe("deviceClasses", names)
    return next((n for n in names if "nvidia" in n), names[0] if names else None)


def claim_template(ctx: Context, ns: str, name: str, device_class_name: str) -> dict:
    return create(ctx, f"/apis/{DRA}/namespaces/{ns}/resourceclaimtemplates", {
        "apiVersion": DRA, "kind": "ResourceClaimTemplate", "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{
            "name": "gpu", "exactly": {"deviceClassName": device_class_name,
                                       "allocationMode": "ExactCount", "count": 1}}]}}}}, ns)


def pinned_gpu_pod(ctx: Context, ns: str, name: str, containers: list[dict],
                   nodes: list[str]) -> dict:
    """A run-once ``nvidia-smi -L`` pod that may only run on the named ``nodes``.

    ``containers`` as for ``gpu_pod``; a container's ``resources`` may hold
    ``limits: {"nvidia.com/gpu": 1}`` (device plugin).
    """
    spec = {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{
                    "key": "metadata.name", "operator": "In",
                    "values": sorted(nodes)}]}]}}},
            "containers": [{"name": c["name"], "image": ctx.image("cuda"),
                            "command": ["nvidia-smi", "-L"],
                            **({"resources": c["resources"]} if c.get("resources") else {})}
                           for c in containers]}
    return create(ctx, f"/api/v1/namespaces/{ns}/pods",
                  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec},
                  ns)
