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

from ..components import gvisor
from ..components.contract import SANDBOX, ClusterOutputs
from .base import Addon
from .catalog import CHARTS, GVISOR_RELEASE, IMAGES

# Existing on-prem clusters: the DaemonSet that installs gVisor on the labelled nodes.
INSTALLER_NAMESPACE = "aicp-sandbox"
INSTALLER_NAME = "aicp-gvisor-installer"


def version(cluster: ClusterOutputs) -> str:
    """What ``addons`` reports for the sandbox: the pinned gVisor, or the cloud's feature."""
    info = cluster.features.get(SANDBOX) or {}
    if info.get("createdBy") == "aicp":
        return f"gvisor {GVISOR_RELEASE}"
    if info.get("installer") == "kata-deploy":
        return f"kata-deploy {CHARTS['kata-deploy'].version}"
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
        self.installer: pulumi.Resource | None = None
        if info.get("installer") == "gvisor-daemonset":
            self.installer = self._gvisor_installer(name, info)
        elif info.get("installer") == "kata-deploy":
            self.installer = self._kata_deploy(name, info)
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
                # Pods name it only once runsc is on every node it selects.
                opts=self.child_opts(depends_on=[self.installer] if self.installer else []))
        self.finish(installed=True, **info)

    def _gvisor_installer(self, name: str, info: dict[str, Any]) -> k8s.apps.v1.DaemonSet:
        """gVisor on the nodes of an existing cluster that carry the sandbox label.

        The init container enters the host (hostPID, ``nsenter --target 1``: mount, UTS,
        IPC, network and PID namespaces of the node's init) and runs
        ``components/gvisor.existing_script``; the pause container then keeps the pod Ready,
        so Pulumi's DaemonSet wait (every selected node Ready and updated) ends only when
        every labelled node has runsc. A node whose containerd config the script cannot
        take shows its one-line reason in the init container's log and never gets Ready.
        """
        ns = self.create_namespace(f"{name}-installer-ns", INSTALLER_NAMESPACE, "privileged")
        labels = {"app.kubernetes.io/name": INSTALLER_NAME,
                  "app.kubernetes.io/managed-by": "aicp"}
        host = ["nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid",
                "--", "bash", "-c", gvisor.existing_script(GVISOR_RELEASE)]
        spec: Any = {  # a manifest dict: any Input accepts one
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostPID": True,
                    "nodeSelector": dict(info["nodeLabel"]),
                    # The named nodes are yours: whatever taints they carry.
                    "tolerations": [{"operator": "Exists"}],
                    "initContainers": [{
                        "name": "install", "image": IMAGES["gvisor-installer"],
                        "command": host,
                        "securityContext": {"privileged": True},
                    }],
                    "containers": [{
                        "name": "done", "image": IMAGES["pause"],
                        "resources": {"requests": {"cpu": "1m", "memory": "8Mi"},
                                      "limits": {"memory": "16Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "runAsNonRoot": True, "runAsUser": 65535},
                    }],
                },
            },
        }
        return k8s.apps.v1.DaemonSet(
            f"{name}-gvisor-installer",
            metadata={"name": INSTALLER_NAME, "namespace": INSTALLER_NAMESPACE,
                      "labels": labels},
            spec=spec, opts=self.child_opts(depends_on=[ns]))

    def _kata_deploy(self, name: str, info: dict[str, Any]) -> k8s.helm.v3.Release:
        """Kata Containers on the labelled nodes of an existing cluster, by kata-deploy.

        Values of kata-containers 4.1.0's chart (helm-chart/kata-deploy/values.yaml): its
        DaemonSet goes where ``nodeSelector`` says, tolerating what ``tolerations`` lists;
        ``shims.disableAll`` with ``shims.qemu.enabled`` installs the QEMU shim alone, so
        one RuntimeClass, kata-qemu, is made (``runtimeClasses.enabled``, no default
        ``kata`` class: ``createDefault: false``); ``snapshotter.setup: []`` leaves
        containerd's snapshotters as they are (the default sets up nydus, which the QEMU
        shim does not need); ``k8sDistribution: k8s`` is containerd at /etc/containerd.
        The DaemonSet runs at system-node-critical (``priorityClassName``).
        """
        ns = self.create_namespace(f"{name}-kata-ns", "kata-system", "privileged",
                                   critical_pods=True)
        return self.helm_release(
            f"{name}-kata-deploy", CHARTS["kata-deploy"], name="kata-deploy",
            namespace="kata-system", values={
                "k8sDistribution": "k8s",
                "nodeSelector": dict(info["nodeLabel"]),
                "tolerations": [{"operator": "Exists"}],
                "shims": {"disableAll": True, "qemu": {"enabled": True}},
                "runtimeClasses": {"enabled": True, "createDefault": False},
                "snapshotter": {"setup": []},
            }, depends_on=self.namespace_ready(ns))
