"""Kueue: gang admission (all-or-nothing, ``waitForPodsReady``) and GPU quota per pool.

The chart takes the manager's ``Configuration`` as one string and does not merge it, so the
whole ``config.kueue.x-k8s.io/v1beta2`` document is restated here (kubernetes-sigs/kueue v0.19.2
``charts/kueue/values.yaml`` ``managerConfig.controllerManagerConfigYaml``, one string).

Decisions, with the Kueue 0.19.2 behaviour behind them:

- ``managedJobsNamespaceSelector`` is opt-in (label ``aicp.dev/kueue-managed=true``): with the
  ``pod`` framework on, the pod webhook is ``failurePolicy: Fail`` on every selected namespace,
  and the GPU Operator's or monitoring's pods must not depend on Kueue being up (kueue v0.19.2
  ``charts/kueue/templates/webhook/manifests.yaml``, the ``mpod.kb.io`` webhook).
- Quota covers GPUs only. ``resources.quotaCheckStrategy: IgnoreUndeclared`` (feature gate
  ``QuotaCheckStrategy``, beta and on since 0.19) admits a workload on its GPU quota without
  cpu/memory quota, which the contract cannot size (it knows GPUs per node, not CPUs). Node
  capacity bounds cpu/memory; the GPU taint keeps GPU-less pods off GPU nodes.
- One ResourceFlavor per GPU pool, pinned to the pool's nodes by ``aicp.dev/gpu-pool`` and
  tolerating its taint. Device-plugin pools quota ``nvidia.com/gpu`` (extended resource); DRA
  pools quota ``aicp.dev/dra-gpu``, which ``resources.deviceClassMappings`` maps the driver's
  ``gpu.nvidia.com`` DeviceClass to. Two names, two resource groups: a claim-template
  workload can never be placed on a device-plugin pool's flavor, where no ResourceSlice
  exists, nor the other way round.

The custom resources wait for the whole release: Kueue's CRDs are in its ``templates/crd``
and its validating webhooks (``Fail``) must be serving before they are created (kueue v0.19.2
``charts/kueue/templates/webhook/manifests.yaml``: a create before the webhook Service has
endpoints is refused with "no endpoints available for service").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ..components.contract import LABEL_POOL, ClusterOutputs, GpuPool
from .base import Addon
from .catalog import CHARTS
from .dra_driver import GPU_DEVICE_CLASS

RELEASE = "kueue"
API = "kueue.x-k8s.io/v1beta2"
# Namespaces whose jobs and pods Kueue manages carry this label.
MANAGED_LABEL = "aicp.dev/kueue-managed"
DEVICE_PLUGIN_GPU = "nvidia.com/gpu"
DRA_GPU = "aicp.dev/dra-gpu"
CLUSTER_QUEUE = "gpu"
LOCAL_QUEUE = "gpu"

FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset", "ray.io/rayjob", "ray.io/raycluster", "pod")
LWS_FRAMEWORK = "leaderworkerset.x-k8s.io/leaderworkerset"


@dataclass(frozen=True)
class KueueArgs:
    namespace: str = "kueue-system"
    # Where AI jobs run: labelled for Kueue's selector, holds the LocalQueue.
    workloads_namespace: str = "ai-workloads"
    # A gang whose pods are not all Ready in this time is evicted and requeued. The clock
    # starts at admission, so it must cover a cold GPU pool: scale-up from zero plus a
    # 10-20 GB image pull. 30m is Kueue's default (v0.19.2 apis/config/v1beta2/defaults.go).
    pods_ready_timeout: str = "30m"
    leaderworkerset: bool = False
    # Each device-plugin GPU is advertised this many times (GPU Operator time-slicing).
    device_plugin_gpu_replicas: int = 1
    # Releases serving the integrated APIs (JobSet, KubeRay): Kueue starts after them.
    after: Sequence[pulumi.Resource] = ()


def manager_config(args: KueueArgs, *, dra: bool) -> dict[str, Any]:
    """The full manager Configuration: upstream 0.19.2 chart defaults plus our choices."""
    resources: dict[str, Any] = {"quotaCheckStrategy": "IgnoreUndeclared"}
    if dra:
        resources["deviceClassMappings"] = [
            {"name": DRA_GPU, "deviceClassNames": [GPU_DEVICE_CLASS]}]
    frameworks = [*FRAMEWORKS, *([LWS_FRAMEWORK] if args.leaderworkerset else [])]
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": ":8081"},
        "metrics": {"bindAddress": ":8443"},
        "webhook": {"port": 9443},
        "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
        "controller": {"groupKindConcurrency": {
            "Job.batch": 5, "Pod": 5, "Workload.kueue.x-k8s.io": 10,
            "LocalQueue.kueue.x-k8s.io": 5, "ClusterQueue.kueue.x-k8s.io": 5,
            "ResourceFlavor.kueue.x-k8s.io": 1}},
        "clientConnection": {"qps": 300, "burst": 500},
        # On by default in v1beta2 (30m, non-blocking): tune, there is no `enable` (kueue v0.19.2
        # apis/config/v1beta2/defaults.go, WaitForPodsReady defaults).
        # Non-blocking as upstream: blockAdmission would hold every other workload of the
        # queue while one gang waits for a cold pool, stalling the queue for the timeout.
        "waitForPodsReady": {"timeout": args.pods_ready_timeout, "blockAdmission": False},
        "managedJobsNamespaceSelector": {"matchLabels": {MANAGED_LABEL: "true"}},
        "integrations": {"frameworks": frameworks},
        "resources": resources,
    }


def gpu_quota_resource(pool: GpuPool) -> str:
    return DRA_GPU if pool.allocator == "dra" else DEVICE_PLUGIN_GPU


def gpu_quota(pool: GpuPool, args: KueueArgs) -> int:
    """GPUs the pool holds at its largest: max nodes × GPUs per node (× time-slices)."""
    replicas = args.device_plugin_gpu_replicas if pool.allocator == "device-plugin" else 1
    return pool.max_nodes * pool.gpus_per_node * replicas


def resource_groups(pools: Sequence[GpuPool], args: KueueArgs) -> list[dict[str, Any]]:
    groups = []
    for resource in (DEVICE_PLUGIN_GPU, DRA_GPU):
        flavors = [{"name": p.name, "resources": [
                       {"name": resource, "nominalQuota": gpu_quota(p, args)}]}
                   for p in pools if gpu_quota_resource(p) == resource]
        if flavors:
            groups.append({"coveredResources": [resource], "flavors": flavors})
    return groups


def fabric_topologies(name: str, pools: Sequence[GpuPool], opts: pulumi.ResourceOptions
                      ) -> dict[str, k8s.apiextensions.CustomResource]:
    """A Kueue ``Topology`` per fabric pool whose nodes carry network-topology labels
    (``gpuPools[].fabric.topologyLevels``, components/fabric.py), named after the pool.

    Its flavor then names it (``topologyName``), and a gang that asks for
    ``kueue.x-k8s.io/podset-required-topology`` or ``-preferred-topology`` is admitted only
    where one domain of that level holds it, as close together as the fabric allows.
    Topology Aware Scheduling is Beta and on by default since Kueue 0.14 (kueue v0.19.2
    pkg/features/kube_features.go ``TopologyAwareScheduling``); the Topology API is
    ``kueue.x-k8s.io/v1beta2`` (kueue v0.19.2 charts CRD topologies: v1beta2 storage), its
    last level may be ``kubernetes.io/hostname`` only (the CRD's CEL rule).
    """
    out = {}
    for pool in pools:
        levels = (pool.fabric or {}).get("topologyLevels")
        if levels:
            out[pool.name] = k8s.apiextensions.CustomResource(
                f"{name}-topology-{pool.name}", api_version=API, kind="Topology",
                metadata={"name": pool.name},
                spec={"levels": [{"nodeLabel": label} for label in levels]}, opts=opts)
    return out


# Logical resource Kueue counts a fabric pool's DRA network devices as. The ClusterQueue sets
# no quota on it: quotaCheckStrategy IgnoreUndeclared admits on GPU quota alone.
FABRIC_DEVICES = "aicp.dev/fabric-devices"


def with_fabric_mappings(config: dict[str, Any], pools: Sequence[GpuPool]) -> dict[str, Any]:
    """The manager Configuration with the fabric pools' DRA DeviceClasses mapped (the EFA DRA
    driver's ``efa.networking.k8s.aws``): Kueue finds a workload whose claim names an
    unmapped DeviceClass inadmissible (kueue pkg/dra/claims.go: "DeviceClass %s is not
    mapped in DRA configuration"), so the NCCL proof's pods, claiming GPUs and EFA devices,
    would never be admitted."""
    classes = sorted({str(p.fabric["claims"]["deviceClassName"]) for p in pools
                      if p.fabric and p.fabric.get("claims")})
    if not classes:
        return config
    resources = dict(config.get("resources") or {})
    resources["deviceClassMappings"] = [
        *(resources.get("deviceClassMappings") or []),
        {"name": FABRIC_DEVICES, "deviceClassNames": classes}]
    return {**config, "resources": resources}


def topology_name(pool: GpuPool, topologies: dict[str, Any]) -> dict[str, str]:
    """The flavor's ``topologyName`` where its pool has a Topology."""
    return {"topologyName": pool.name} if pool.name in topologies else {}


class Kueue(Addon):
    """Kueue release, then per-pool ResourceFlavors, one ClusterQueue and a LocalQueue."""

    token = "aicp:addons:Kueue"
    serves = ("gang_scheduling",)

    def __init__(self, name: str, cluster: ClusterOutputs, args: KueueArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or KueueArgs()
        pools = cluster.gpu_pools
        dra = any(p.allocator == "dra" for p in pools)
        namespace = self.create_namespace(f"{name}-namespace", args.namespace, "restricted")
        self.release = self.helm_release(
            f"{name}-release", CHARTS["kueue"], name=RELEASE, namespace=args.namespace,
            values={"managerConfig": {"controllerManagerConfigYaml": yaml.safe_dump(
                with_fabric_mappings(manager_config(args, dra=dra), pools),
                sort_keys=False)}},
            depends_on=[namespace, *args.after])
        self.workloads_namespace = self.create_namespace(
            f"{name}-workloads-namespace", args.workloads_namespace, "baseline",
            {MANAGED_LABEL: "true"})

        after_kueue = self.child_opts(depends_on=[self.release])
        topologies = fabric_topologies(name, pools, after_kueue)
        flavors = [k8s.apiextensions.CustomResource(
            f"{name}-flavor-{pool.name}",
            api_version=API, kind="ResourceFlavor",
            metadata={"name": pool.name},
            spec={**topology_name(pool, topologies), "nodeLabels": {LABEL_POOL: pool.name},
                  "tolerations": [{"key": t.key, "operator": "Equal", "value": t.value,
                                   "effect": t.effect} for t in pool.taints]},
            opts=after_kueue) for pool in pools]
        cq_spec: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {MANAGED_LABEL: "true"}},
            "queueingStrategy": "BestEffortFIFO",
        }
        groups = resource_groups(pools, args)
        if groups:
            cq_spec["resourceGroups"] = groups
        cluster_queue = k8s.apiextensions.CustomResource(
            f"{name}-cluster-queue",
            api_version=API, kind="ClusterQueue",
            metadata={"name": CLUSTER_QUEUE},
            spec=cq_spec,
            opts=self.child_opts(depends_on=[self.release, *flavors]))
        k8s.apiextensions.CustomResource(
            f"{name}-local-queue",
            api_version=API, kind="LocalQueue",
            metadata={"name": LOCAL_QUEUE, "namespace": args.workloads_namespace},
            spec={"clusterQueue": CLUSTER_QUEUE},
            opts=self.child_opts(depends_on=[self.release, cluster_queue,
                                             self.workloads_namespace]))
        self.finish(namespace=args.namespace, release=self.release.name,
                    clusterQueue=CLUSTER_QUEUE, localQueue=LOCAL_QUEUE,
                    workloadsNamespace=args.workloads_namespace)
