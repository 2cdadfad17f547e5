"""A probe's ``needs`` against this cluster: ``gpu_nodes``, ``api:<group/version>``,
``addon:<name>``. An unmet need makes the requirement not applicable (SKIP) and says why.

With a Pulumi stack, the stack's ``addons`` output is what is installed; without one, an
addon counts as present when its API group is served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transport import Kube

# Extended resources the vendors' device plugins advertise on a node's allocatable:
# NVIDIA/k8s-device-plugin (nvidia.com/gpu), ROCm/k8s-device-plugin (amd.com/gpu),
# intel/intel-device-plugins-for-kubernetes cmd/gpu_plugin (gpu.intel.com/i915, /xe).
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe")
# An addon counts as present when its API group is served (no stack says otherwise).
ADDON_GROUPS = {
    "kueue": "kueue.x-k8s.io", "volcano": "scheduling.volcano.sh", "ray": "ray.io",
    "kuberay": "ray.io", "kubeflow-trainer": "trainer.kubeflow.org",
    "gateway-api": "gateway.networking.k8s.io", "prometheus": "monitoring.coreos.com",
    "kube-prometheus-stack": "monitoring.coreos.com", "keda": "keda.sh",
    "gpu-operator": "nvidia.com", "lws": "leaderworkerset.x-k8s.io",
    "inference-extension": "inference.networking.k8s.io",
}


def unmet(kube: Kube, need: str) -> str | None:
    """Why ``need`` does not hold on ``kube``'s cluster, or None when it does."""
    if need == "gpu_nodes":
        count = 0
        for node in kube.items("/api/v1/nodes"):
            count += 1
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            labels = (node.get("metadata") or {}).get("labels") or {}
            if any(quantity(allocatable.get(r)) > 0 for r in GPU_RESOURCES) or \
                    labels.get("nvidia.com/gpu.present") == "true":
                return None
        # A DRA-only pool advertises no extended resource: its GPUs are ResourceSlices.
        if kube.resources("resource.k8s.io/v1") and any(
                (s.get("spec") or {}).get("driver", "").startswith("gpu.")
                for s in kube.items("/apis/resource.k8s.io/v1/resourceslices")):
            return None
        return (f"no node advertises an accelerator ({', '.join(GPU_RESOURCES)}, the "
                f"nvidia.com/gpu.present label or GPU ResourceSlices) among "
                f"{count} nodes")
    if need.startswith("api:"):
        group_version = need.removeprefix("api:")
        return None if kube.resources(group_version) else f"{group_version} is not served"
    if need.startswith("addon:"):
        addon = need.removeprefix("addon:")
        expected = kube.expectations.get("addons")
        if isinstance(expected, dict) and expected:
            return None if addon in expected else f"the stack does not install {addon}"
        group = ADDON_GROUPS.get(addon)
        if group and _serves_group(kube, group):
            return None
        return f"addon {addon} not detected" + (f" (API group {group})" if group else "")
    raise ValueError(f"unknown probe need {need!r}")


def _serves_group(kube: Kube, group: str) -> bool:
    groups = kube.request("GET", "/apis").get("groups", [])
    return any(g.get("name") == group for g in groups)


def quantity(value: Any) -> float:
    """A plain-number quantity ("8") as a float; anything else counts as 0."""
    try:
        return float(str(value or 0))
    except ValueError:
        return 0.0
