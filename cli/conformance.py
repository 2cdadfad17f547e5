"""Requirement ids and levels of the CNCF Kubernetes AI Conformance checklists.

Only ids and levels, for planning; descriptions stay upstream (cncf/k8s-ai-conformance
``docs/AIConformance-<minor>.yaml``) and ``aicp verify`` reads the template itself.
"""

from __future__ import annotations

_M, _S = "MUST", "SHOULD"

_V134 = {
    "dra_support": _M, "ai_inference": _M, "gang_scheduling": _M, "cluster_autoscaling": _M,
    "pod_autoscaling": _M, "accelerator_metrics": _M, "ai_service_metrics": _M,
    "secure_accelerator_access": _M, "robust_controller": _M,
}
_V135 = {**_V134, "driver_runtime_management": _S, "gpu_sharing": _S,
         "virtualized_accelerator": _S}
# 1.36 drops dra_support: core Kubernetes conformance covers DRA from 1.35.
_V136 = {**{k: v for k, v in _V135.items() if k != "dra_support"},
         "advanced_inference_ingress": _S, "high_performance_networking": _S,
         "disaggregated_inference": _S}
_V137 = {**_V136, "workload_sandboxing": _S}

LEVELS: dict[str, dict[str, str]] = {"1.34": _V134, "1.35": _V135, "1.36": _V136, "1.37": _V137}


def musts(version: str) -> list[str]:
    return [rid for rid, level in LEVELS[version].items() if level == _M]
