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

Teams (``KueueArgs.teams``) share the GPU pools through one cohort (kubernetes-sigs/kueue
v0.19.2 site/content/en/docs/concepts/cluster_queue.md, "Cohort", "Borrowing limits",
"Lending limits", "Preemption"; concepts/fair_sharing.md; concepts/workload_priority_class.md):

- per team a namespace (labelled for Kueue's selector and with ``aicp.dev/team``), a
  LocalQueue ``gpu`` in it, and a ClusterQueue named after the team whose
  ``namespaceSelector`` matches that label (not ``kubernetes.io/metadata.name``, so a
  conformance probe can label its own namespace into a team's queue);
- every GPU ClusterQueue, the platform's shared ``gpu`` queue included, carries
  ``cohortName: teams``: unused quota of one team is borrowed by the others; each team's
  ``nominalQuota`` per flavor is its guaranteed share, ``borrowingLimit`` caps what it takes
  beyond it, ``lendingLimit`` what of its quota the cohort may use. The shared queue gets
  what the teams leave of each pool;
- ``preemption.reclaimWithinCohort: Any``: a team below its nominal quota gets it back by
  preempting workloads that borrow it; ``withinClusterQueue: LowerPriority``: inside a team,
  a higher WorkloadPriorityClass preempts a lower one;
- fair sharing on (manager ``fairSharing``; v1beta2 has no ``enable`` field: the block's
  presence turns it on, apis/config/v1beta2/configuration_types.go ``FairSharing``), each
  ClusterQueue with its team's ``fairSharing.weight``;
- WorkloadPriorityClasses ``aicp-low``/``aicp-normal``/``aicp-high`` (label
  ``kueue.x-k8s.io/priority-class`` on a job).

Queued provisioning (GKE Dynamic Workload Scheduler, a pool with ``capacity_type
"queued-provisioning"``): a ProvisioningRequestConfig with class ``queued-provisioning.gke.io``
and an AdmissionCheck of controller ``kueue.x-k8s.io/provisioning-request`` on it, required by
every GPU ClusterQueue on that pool's flavor only (``admissionChecksStrategy.onFlavors``):
Kueue creates the ProvisioningRequest and admits once GKE has provisioned the nodes
(kueue v0.19.2 site/content/en/docs/admission-check-controllers/provisioning.md; GKE
"Run a large-scale workload with flex-start with queued provisioning").

The custom resources wait for the whole release: Kueue's CRDs are in its ``templates/crd``
and its validating webhooks (``Fail``) must be serving before they are created (kueue v0.19.2
``charts/kueue/templates/webhook/manifests.yaml``: a create before the webhook Service has
endpoints is refused with "no endpoints available for service").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi.errors import InputPropertyError
from pulumi_kubernetes._utilities import get_version as k8s_version

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

# The teams' cohort: every GPU ClusterQueue belongs to it.
COHORT = "teams"
TEAM_LABEL = "aicp.dev/team"
# name → value; a job picks one with the label kueue.x-k8s.io/priority-class (kueue v0.19.2
# concepts/workload_priority_class.md).
PRIORITY_CLASSES = {"aicp-low": 100, "aicp-normal": 1000, "aicp-high": 10000}
# GKE's provisioning class for queued provisioning, and Kueue's controller for the check
# (GKE provisioningrequest how-to; kueue v0.19.2 admission-check-controllers/provisioning.md).
QUEUED_PROVISIONING_CLASS = "queued-provisioning.gke.io"
PROVISIONING_CONTROLLER = "kueue.x-k8s.io/provisioning-request"
PROVISIONING_CHECK = "dws-prov"
PROVISIONING_CONFIG = "dws-config"

FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset", "ray.io/rayjob", "ray.io/raycluster", "pod")
LWS_FRAMEWORK = "leaderworkerset.x-k8s.io/leaderworkerset"


@dataclass(frozen=True)
class Team:
    """One team sharing the GPU pools (see the module docstring)."""

    name: str
    quota: Mapping[str, int] = field(default_factory=dict)  # pool name → GPUs guaranteed
    borrowing_limit: int | None = None  # GPUs per flavor beyond its quota; None: no limit
    lending_limit: int | None = None  # GPUs per flavor of its quota lent; None: all
    weight: int = 1  # fair sharing weight


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
    teams: tuple[Team, ...] = ()


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
        **({"fairSharing": {"preemptionStrategies": [
            "LessThanOrEqualToFinalShare", "LessThanInitialShare"]}} if args.teams else {}),
    }


def gpu_quota_resource(pool: GpuPool) -> str:
    return DRA_GPU if pool.allocator == "dra" else DEVICE_PLUGIN_GPU


def gpu_quota(pool: GpuPool, args: KueueArgs) -> int:
    """GPUs the pool holds at its largest: max nodes × GPUs per node (× time-slices)."""
    replicas = args.device_plugin_gpu_replicas if pool.allocator == "device-plugin" else 1
    return pool.max_nodes * pool.gpus_per_node * replicas


def resource_groups(pools: Sequence[GpuPool], args: KueueArgs,
                    team: Team | None = None) -> list[dict[str, Any]]:
    """Every pool's flavor; quota as ``team`` has it (a team lists every flavor, with 0
    where it owns nothing, so it can borrow there), else what the teams leave."""
    groups = []
    for resource in (DEVICE_PLUGIN_GPU, DRA_GPU):
        flavors = [{"name": p.name, "resources": [flavor_quota(p, args, team, resource)]}
                   for p in pools if gpu_quota_resource(p) == resource]
        if flavors:
            groups.append({"coveredResources": [resource], "flavors": flavors})
    return groups


def flavor_quota(pool: GpuPool, args: KueueArgs, team: Team | None,
                 resource: str) -> dict[str, Any]:
    if team is None:
        owned = sum(t.quota.get(pool.name, 0) for t in args.teams)
        return {"name": resource, "nominalQuota": max(0, gpu_quota(pool, args) - owned)}
    nominal = team.quota.get(pool.name, 0)
    quota: dict[str, Any] = {"name": resource, "nominalQuota": nominal}
    if team.borrowing_limit is not None:
        quota["borrowingLimit"] = team.borrowing_limit
    if team.lending_limit is not None:
        # Kueue refuses a lendingLimit above the nominalQuota (v0.19.2 ClusterQueue webhook).
        quota["lendingLimit"] = min(team.lending_limit, nominal)
    return quota


def validate_teams(teams: Sequence[Team], pools: Sequence[GpuPool], args: KueueArgs) -> None:
    """Team names are unique DNS labels apart from Kueue's namespaces; quota names pools;
    the teams' quota of a pool fits what it holds at maxNodes. ``InputPropertyError`` on
    ``teams[i].name`` / ``teams[i].quota["pool"]``."""
    holds = {p.name: gpu_quota(p, args) for p in pools}
    seen: set[str] = set()
    asked: dict[str, int] = {}
    for i, team in enumerate(teams):
        if team.name in seen:
            raise InputPropertyError(f"teams[{i}].name", f"{team.name!r} is used by another "
                                     "team")
        if team.name in (args.namespace, args.workloads_namespace, CLUSTER_QUEUE):
            raise InputPropertyError(f"teams[{i}].name", f"{team.name!r} is taken by the "
                                     "platform's own Kueue namespace or queue; pick another")
        seen.add(team.name)
        for pool, gpus in team.quota.items():
            key = f"teams[{i}].quota[{json.dumps(pool)}]"
            if pool not in holds:
                raise InputPropertyError(key, f"no GPU pool is named {pool!r}; use one of "
                                         f"{', '.join(holds)}")
            if gpus < 0:
                raise InputPropertyError(key, f"{gpus} must be at least 0")
            asked[pool] = asked.get(pool, 0) + gpus
            if asked[pool] > holds[pool]:
                raise InputPropertyError(
                    key, f"the teams' quota of pool {pool} adds up to {asked[pool]} GPUs, more "
                    f"than the pool holds at maxNodes ({holds[pool]}); lower the quotas or "
                    "raise its maxNodes")


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
    """Kueue release, then per-pool ResourceFlavors, the ClusterQueues (the shared one and
    one per team, in one cohort) and their LocalQueues."""

    token = "aicp:addons:Kueue"
    serves = ("gang_scheduling",)

    def __init__(self, name: str, cluster: ClusterOutputs, args: KueueArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or KueueArgs()
        pools = cluster.gpu_pools
        validate_teams(args.teams, pools, args)
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
        flavors = self._flavors(name, pools)
        checks = self._admission_checks(name, pools)
        self._priority_classes(name, args)
        cluster_queue = self._cluster_queue(
            f"{name}-cluster-queue", CLUSTER_QUEUE, {MANAGED_LABEL: "true"},
            pools, args, None, [*flavors, *checks])
        self._local_queue(f"{name}-local-queue", args.workloads_namespace,
                          [cluster_queue, self.workloads_namespace])
        for team in args.teams:
            self._team(name, team, pools, args, [*flavors, *checks])
        self.finish(namespace=args.namespace, release=self.release.name,
                    clusterQueue=CLUSTER_QUEUE, localQueue=LOCAL_QUEUE,
                    workloadsNamespace=args.workloads_namespace,
                    teams={t.name: {"namespace": t.name, "clusterQueue": t.name,
                                    "localQueue": LOCAL_QUEUE} for t in args.teams},
                    cohort=COHORT if args.teams else None)

    def _flavors(self, name: str, pools: Sequence[GpuPool]) -> list[pulumi.Resource]:
        """One ResourceFlavor per GPU pool: its nodes, its taints tolerated."""
        after_kueue = self.child_opts(depends_on=[self.release])
        topologies = fabric_topologies(name, pools, after_kueue)
        return [k8s.apiextensions.CustomResource(
            f"{name}-flavor-{pool.name}",
            api_version=API, kind="ResourceFlavor",
            metadata={"name": pool.name},
            spec={**topology_name(pool, topologies), "nodeLabels": {LABEL_POOL: pool.name},
                  "tolerations": [{"key": t.key, "operator": "Equal", "value": t.value,
                                   "effect": t.effect} for t in pool.taints]},
            opts=after_kueue) for pool in pools]

    def _admission_checks(self, name: str, pools: Sequence[GpuPool]) -> list[pulumi.Resource]:
        """GKE queued provisioning: the ProvisioningRequestConfig and its AdmissionCheck."""
        if not queued_pools(pools):
            return []
        config = k8s.apiextensions.CustomResource(
            f"{name}-provisioning-config", api_version=API, kind="ProvisioningRequestConfig",
            metadata={"name": PROVISIONING_CONFIG},
            # No managedResources: every resource of the checked flavor is provisioned (v0.19.2
            # CRD: "If empty, all resources are considered managed").
            spec={"provisioningClassName": QUEUED_PROVISIONING_CLASS},
            opts=self.child_opts(depends_on=[self.release]))
        check = k8s.apiextensions.CustomResource(
            f"{name}-provisioning-check", api_version=API, kind="AdmissionCheck",
            metadata={"name": PROVISIONING_CHECK},
            spec={"controllerName": PROVISIONING_CONTROLLER,
                  "parameters": {"apiGroup": API.split("/")[0],
                                 "kind": "ProvisioningRequestConfig",
                                 "name": PROVISIONING_CONFIG}},
            opts=self.child_opts(depends_on=[self.release, config]))
        return [config, check]

    def _priority_classes(self, name: str, args: KueueArgs) -> None:
        if not args.teams:
            return
        for cls, value in PRIORITY_CLASSES.items():
            WorkloadPriorityClass(
                f"{name}-priority-{cls}", cls, value,
                f"aicp: {cls.removeprefix('aicp-')} priority of a team's jobs",
                self.child_opts(depends_on=[self.release]))

    def _cluster_queue(self, resource_name: str, queue: str, selector: Mapping[str, str],
                       pools: Sequence[GpuPool], args: KueueArgs, team: Team | None,
                       after: Sequence[pulumi.Resource]) -> pulumi.Resource:
        return k8s.apiextensions.CustomResource(
            resource_name, api_version=API, kind="ClusterQueue", metadata={"name": queue},
            spec=cluster_queue_spec(selector, pools, args, team),
            opts=self.child_opts(depends_on=[self.release, *after]))

    def _local_queue(self, resource_name: str, namespace: str,
                     after: Sequence[pulumi.Resource], queue: str = CLUSTER_QUEUE) -> None:
        k8s.apiextensions.CustomResource(
            resource_name, api_version=API, kind="LocalQueue",
            metadata={"name": LOCAL_QUEUE, "namespace": namespace},
            spec={"clusterQueue": queue},
            opts=self.child_opts(depends_on=[self.release, *after]))

    def _team(self, name: str, team: Team, pools: Sequence[GpuPool], args: KueueArgs,
              after: Sequence[pulumi.Resource]) -> None:
        """A team's namespace, its ClusterQueue in the cohort, its LocalQueue."""
        labels = {MANAGED_LABEL: "true", TEAM_LABEL: team.name}
        namespace = self.create_namespace(f"{name}-team-{team.name}", team.name, "baseline",
                                          labels)
        queue = self._cluster_queue(f"{name}-team-{team.name}-cluster-queue", team.name,
                                    labels, pools, args, team, after)
        self._local_queue(f"{name}-team-{team.name}-local-queue", team.name,
                          [queue, namespace], queue=team.name)


class WorkloadPriorityClass(pulumi.CustomResource):
    """A Kueue WorkloadPriorityClass: its ``value`` and ``description`` are top-level fields
    (no ``spec``; v0.19.2 CRD kueue.x-k8s.io_workloadpriorityclasses.yaml), which the Python
    ``apiextensions.CustomResource`` cannot carry. The provider takes any fields of a custom
    resource (pulumi-kubernetes 4.34 sdk/nodejs/apiextensions/customResource.ts
    ``[othersFields: string]: any``); this registers the same resource type with them."""

    def __init__(self, resource_name: str, name: str, value: int, description: str,
                 opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            f"kubernetes:{API}:WorkloadPriorityClass", resource_name,
            {"apiVersion": API, "kind": "WorkloadPriorityClass", "metadata": {"name": name},
             "value": value, "description": description},
            # The kubernetes provider plugin of this SDK, as its own resources ask for it.
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                version=k8s_version())))


def queued_pools(pools: Sequence[GpuPool]) -> list[str]:
    return [p.name for p in pools if p.capacity_type == "queued-provisioning"]


def cluster_queue_spec(selector: Mapping[str, str], pools: Sequence[GpuPool], args: KueueArgs,
                       team: Team | None) -> dict[str, Any]:
    """A GPU ClusterQueue: without teams the platform's one queue; with teams each queue
    (the shared one included) in the cohort, reclaiming its quota and fair-shared."""
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": dict(selector)},
        "queueingStrategy": "BestEffortFIFO",
    }
    groups = resource_groups(pools, args, team)
    if groups:
        spec["resourceGroups"] = groups
    if args.teams:
        spec["cohortName"] = COHORT
        spec["preemption"] = {"reclaimWithinCohort": "Any",
                              "withinClusterQueue": "LowerPriority"}
        spec["fairSharing"] = {"weight": team.weight if team else 1}
    queued = queued_pools(pools)
    if queued:
        spec["admissionChecksStrategy"] = {"admissionChecks": [
            {"name": PROVISIONING_CHECK, "onFlavors": queued}]}
    return spec
