"""The sandbox runtime's RuntimeClass (workload_sandboxing, a SHOULD from checklist 1.37).

Each target builds its sandbox pool and says so in ``ClusterOutputs.features[SANDBOX]``
(``components/contract.py`` SandboxRuntime): GKE Sandbox (gVisor) and AKS Pod Sandboxing
(Kata) create their RuntimeClass themselves; on EKS aicp installs gVisor on a node group of
its own and this addon creates the RuntimeClass, with the ``scheduling`` that lands pods on
that group: the RuntimeClass admission controller merges its nodeSelector and tolerations
into every pod naming it (https://kubernetes.io/docs/concepts/containers/runtime-class/
#scheduling), so an agent's pod needs only ``runtimeClassName``.

The working group's test finds the class by a name or handler containing gvisor, runsc,
kata... (kubernetes-sigs/ai-conformance test/workload_sandboxing_test.go
``isKnownSandboxedRuntime``): ``gvisor``/``runsc`` here.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import SANDBOX, ClusterOutputs
from .base import Addon
from .catalog import GVISOR_RELEASE


def version(cluster: ClusterOutputs) -> str:
    """What ``addons`` reports for the sandbox: the pinned gVisor, or the cloud's feature."""
    info = cluster.features.get(SANDBOX) or {}
    if info.get("createdBy") == "aicp":
        return f"gvisor {GVISOR_RELEASE}"
    return {"gcp": "GKE Sandbox", "azure": "AKS Pod Sandboxing"}.get(cluster.target,
                                                                    "cloud")


class Sandbox(Addon):
    """Records the target's sandbox runtime; creates its RuntimeClass where aicp owns it."""

    token = "aicp:addons:Sandbox"
    serves = ("workload_sandboxing",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        info: dict[str, Any] = dict(cluster.features.get(SANDBOX) or {})
        self.runtime_class: k8s.node.v1.RuntimeClass | None = None
        if not info:
            self.serves = ()
            self.finish(installed=False, reason=f"the {cluster.target} target builds no "
                        "sandbox pool")
            return
        if info["createdBy"] == "aicp":
            scheduling = k8s.node.v1.SchedulingArgs(
                node_selector=dict(info["nodeSelector"]) or None,
                tolerations=[k8s.core.v1.TolerationArgs(
                    key=t.get("key"), operator=t.get("operator"), value=t.get("value"),
                    effect=t.get("effect")) for t in info["tolerations"]] or None)
            self.runtime_class = k8s.node.v1.RuntimeClass(
                f"{name}-runtime-class",
                metadata={"name": info["runtimeClass"],
                          "labels": {"app.kubernetes.io/managed-by": "aicp"}},
                handler=info["handler"], scheduling=scheduling,
                opts=self.child_opts())
        self.finish(installed=True, **info)
