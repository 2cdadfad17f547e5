"""``aicp plan`` for each example stack: wall time, resources, the longest chain of
resources ``pulumi up`` must create one after another (so a change that serialises the
stand-up shows here), and an estimate of the stand-up time along that chain.

The estimate weighs each resource by a typical creation time for its kind (``MINUTES``,
each figure with its source) and follows dependencies and real parents: the critical path
is control plane -> node group -> addons, and what matters after the node group is how many
Helm waits sit on it one after another (the target: at most two).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import AICP, example_project, stacks, table, timed


def depth(resources: list[dict[str, Any]]) -> int:
    """Longest chain of real resources, following dependencies and custom parents.

    Components (``aicp:*``) create nothing; a child waits for a parent that is real.
    """
    by_urn = {r["urn"]: r for r in resources}
    real = {u for u, r in by_urn.items() if not r["type"].startswith("aicp:")}
    memo: dict[str, int] = {}

    def longest(urn: str) -> int:
        if urn not in memo:
            r = by_urn[urn]
            before = [d for d in r["dependsOn"] if d in by_urn]
            if r["parent"] in real:
                before.append(r["parent"])
            memo[urn] = (1 if urn in real else 0) + max(map(longest, before), default=0)
        return memo[urn]

    return max(map(longest, by_urn), default=0)


# Typical creation time in minutes per resource kind; anything not listed takes seconds.
MINUTES: dict[str, float] = {
    # EKS control plane: 13-16 min across 21 regions, us-west-2 15:00 (easontechtalk.com,
    # "Unofficial EKS Cluster Creation Performance", measured with identical configs).
    "aws:eks/cluster:Cluster": 15.0,
    # A managed node group: EC2 boot, bootstrap, join [estimate: an audit of this stack's
    # stand-up, 23 min for control plane, node group and four Helm waits, 16 with two,
    # implies 2-3 min a node group].
    "aws:eks/nodeGroup:NodeGroup": 3.0,
    "aws:eks/addon:Addon": 1.0,  # VPC CNI: a DaemonSet rollout [estimate]
    "aws:ec2/natGateway:NatGateway": 1.5,  # [estimate: NAT gateways take a minute or two]
    # GKE regional cluster and node pools; AKS cluster and agent pools [estimates of the
    # same order as EKS's node groups; GKE/AKS publish no figure].
    "gcp:container/cluster:Cluster": 8.0,
    "gcp:container/nodePool:NodePool": 4.0,
    "azure-native:containerservice:ManagedCluster": 8.0,
    "azure-native:containerservice:AgentPool": 4.0,
    # k3s install over SSH (download, start, register) [estimate].
    "command:remote:Command": 1.5,
    # A Helm release Pulumi waits on until its Deployments/DaemonSets are ready [estimate:
    # the same audit, (23 - 16) min over two waits].
    "kubernetes:helm.sh/v3:Release": 3.5,
}
HELM = "kubernetes:helm.sh/v3:Release"
# Charts that hold only CRDs: Helm applies them and has no workload to wait for (Istio
# "base", prometheus-community "prometheus-operator-crds") [estimate: seconds].
CRD_ONLY_CHARTS = {"base": 0.3, "prometheus-operator-crds": 0.3}


def chart_name(resource: dict[str, Any]) -> str:
    """The chart's name, also for an OCI reference (``oci://ghcr.io/istio/release/charts/base``
    is Istio's ``base``, as a 1.37 stack installs it)."""
    return str(resource["inputs"].get("chart", "")).rsplit("/", 1)[-1]


def minutes(resource: dict[str, Any]) -> float:
    if resource["type"] == HELM:
        chart = chart_name(resource)
        if chart in CRD_ONLY_CHARTS:
            return CRD_ONLY_CHARTS[chart]
    return MINUTES.get(resource["type"], 0.0)


def is_helm_wait(resource: dict[str, Any]) -> bool:
    """A release Pulumi waits on for workloads (not one that only applies CRDs)."""
    return resource["type"] == HELM and chart_name(resource) not in CRD_ONLY_CHARTS
NODE_POOLS = ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool",
              "azure-native:containerservice:AgentPool",
              "azure-native:containerservice:ManagedCluster", "command:remote:Command")


def critical_path(resources: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """The chain of real resources with the largest sum of ``MINUTES``, and that sum."""
    by_urn = {r["urn"]: r for r in resources}
    real = {u for u, r in by_urn.items() if not r["type"].startswith("aicp:")}
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(urn: str) -> tuple[float, list[str]]:
        if urn not in memo:
            r = by_urn[urn]
            before = [d for d in r["dependsOn"] if d in by_urn]
            if r["parent"] in real:
                before.append(r["parent"])
            best = max((longest(b) for b in before), default=(0.0, []), key=lambda t: t[0])
            own = minutes(r) if urn in real else 0.0
            memo[urn] = (best[0] + own, [*best[1], urn] if urn in real else best[1])
        return memo[urn]

    total, path = max((longest(u) for u in by_urn), default=(0.0, []), key=lambda t: t[0])
    return total, [by_urn[u] for u in path]


def helm_waits_after_nodes(path: list[dict[str, Any]]) -> int:
    """Helm releases on the path after its last node group (or pool, or k3s host)."""
    last = max((i for i, r in enumerate(path) if r["type"] in NODE_POOLS), default=-1)
    return sum(1 for r in path[last + 1:] if is_helm_wait(r))


def path_summary(path: list[dict[str, Any]]) -> str:
    """The weighed steps of a path: ``eks 15 > system node group 3 > ...``."""
    return " > ".join(f"{r['name']} {minutes(r):g}" for r in path if minutes(r))


def measure(project: Path, stack: str, repeat: int, empty_cache: Path) -> dict[str, Any]:
    argv = [AICP, "plan", "--stack", stack, "--output", "json", "--project-dir", str(project)]
    seconds, run = timed(argv, repeat=repeat)
    # The same run where no bytecode exists (pip --no-compile, uv): every module the
    # program imports is compiled from source, as on each run when nothing can be written.
    cold, _ = timed(argv, env={"PYTHONPYCACHEPREFIX": str(empty_cache),
                               "PYTHONDONTWRITEBYTECODE": "1"})
    doc = json.loads(run.stdout)
    minutes, path = critical_path(doc["resources"])
    return {"stack": stack, "seconds": seconds, "cold": cold,
            "resources": len(doc["resources"]), "depth": depth(doc["resources"]),
            "unserved": doc["unservedMust"], "minutes": minutes,
            "helmWaits": helm_waits_after_nodes(path), "path": path_summary(path)}


def main(repeat: int = 3) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        project = example_project(Path(tmp))
        empty = Path(tmp) / "no-bytecode"
        empty.mkdir()
        rows = [measure(project, s, repeat, empty) for s in stacks(project)]
    timing = table(
        f"aicp plan, per example stack (best of {repeat} as installed; target < 5 s on 2 "
        "cores)",
        ["stack", "wall s", "no bytecode s", "resources", "depth", "unserved MUST"],
        [[r["stack"], f"{r['seconds']:.2f}", f"{r['cold']:.2f}", r["resources"], r["depth"],
          ",".join(r["unserved"]) or "-"] for r in rows])
    standup = table(
        "estimated stand-up along the critical path (minutes per kind: benchmarks/plan.py "
        "MINUTES; target: at most 2 Helm waits after the node group)",
        ["stack", "minutes", "Helm waits after nodes", "critical path (name minutes)"],
        [[r["stack"], f"{r['minutes']:.1f}", r["helmWaits"], r["path"]] for r in rows])
    return timing + "\n" + standup


if __name__ == "__main__":
    print(main())
