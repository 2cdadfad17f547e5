"""Kueue and JobSet: pinned charts, the restated manager config, per-pool quota, ordering."""

from __future__ import annotations

import yaml

from aicp.addons.catalog import CHARTS
from aicp.addons.dra_driver import GPU_DEVICE_CLASS
from aicp.addons.jobset import JobSet
from aicp.addons.kueue import Kueue, KueueArgs
from aicp.cli import offline
from aicp.components.contract import GPU_TAINT_KEY, LABEL_POOL, GpuPoolRequest
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import kubernetes_objects, schema_errors
from tests.charts import unknown_value_paths, upstream_values

RELEASE = "kubernetes:helm.sh/v3:Release"
CR = "kubernetes:kueue.x-k8s.io/v1beta2:"
POOLS = (
    GpuPoolRequest(name="h100", accelerator="h100", max_nodes=2, allocator="device-plugin"),
    GpuPoolRequest(name="l40s", accelerator="l40s", instance_type="g6e.12xlarge", max_nodes=3,
                   allocator="device-plugin"),
    GpuPoolRequest(name="l4", accelerator="l4", instance_type="g6.12xlarge", min_nodes=1,
                   max_nodes=5, allocator="dra"),
)


def plan_for(args: KueueArgs | None = None, pools=POOLS):
    def program():
        cluster = make_cluster(pools=pools)
        jobset = JobSet("jobset", cluster)
        Kueue("kueue", cluster, args or KueueArgs(after=(jobset.release,)))
    return offline.run(program, {})


def manager_config(plan) -> dict:
    values = plan.one(RELEASE, "kueue-release").inputs["values"]
    return yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])


def test_releases_are_pinned_to_the_catalog_charts():
    plan = plan_for()
    for key, name in (("kueue", "kueue-release"), ("jobset", "jobset-release")):
        release, chart = plan.one(RELEASE, name), CHARTS[key]
        assert release.inputs["chart"] == chart.ref
        assert release.inputs["version"] == chart.version
        assert release.inputs.get("skipAwait") is not True


def test_every_value_we_set_exists_in_the_pinned_chart():
    values = plan_for().one(RELEASE, "kueue-release").inputs["values"]
    assert unknown_value_paths(values, upstream_values("kueue-v0.19.2")) == []


def test_manager_config_restates_every_upstream_default_it_does_not_change():
    upstream = yaml.safe_load(upstream_values("kueue-v0.19.2")["managerConfig"][
        "controllerManagerConfigYaml"])
    ours = manager_config(plan_for())
    for key, value in upstream.items():
        if key != "integrations":
            assert ours[key] == value, key
    assert ours["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"


def test_gangs_wait_for_all_pods_ready_without_blocking_the_queue():
    # blockAdmission would hold the whole queue while one gang waits for a cold
    # pool. Upstream's default is non-blocking (kueue v0.19.2 apis/config/v1beta2/
    # defaults.go: blockAdmission false, timeout 30m).
    config = manager_config(plan_for(KueueArgs(pods_ready_timeout="7m")))
    assert config["waitForPodsReady"] == {"timeout": "7m", "blockAdmission": False}


def test_default_timeout_covers_a_cold_gpu_pool():
    # The timeout runs from admission: scale-from-zero (GPU VM boot, driver, join: ~5-10
    # min) plus a 10-20 GB image pull (~5-10 min). 10m evicted such gangs; Kueue's own
    # default is 30m.
    config = manager_config(plan_for())
    assert config["waitForPodsReady"]["timeout"] == "30m"


def test_stack_config_defaults_to_the_same_timeout():
    from aicp.stacks.config import parse
    cfg = parse({"target": "aws", "region": "us-west-2", "zones": ["us-west-2a", "us-west-2b"],
                 "gpuPools": [{"name": "l4", "accelerator": "l4", "minNodes": 1,
                               "maxNodes": 1}]})
    assert cfg.addons.kueue.wait_for_pods_ready_timeout == "30m"


def test_integrations_cover_jobs_jobsets_ray_and_pod_groups():
    frameworks = manager_config(plan_for())["integrations"]["frameworks"]
    assert {"batch/job", "jobset.x-k8s.io/jobset", "ray.io/rayjob", "ray.io/raycluster",
            "pod"} <= set(frameworks)
    assert "leaderworkerset.x-k8s.io/leaderworkerset" not in frameworks
    with_lws = manager_config(plan_for(KueueArgs(leaderworkerset=True)))
    assert "leaderworkerset.x-k8s.io/leaderworkerset" in with_lws["integrations"]["frameworks"]


def test_pod_webhook_only_touches_opted_in_namespaces():
    plan = plan_for()
    selector = manager_config(plan)["managedJobsNamespaceSelector"]["matchLabels"]
    workloads = plan.one("kubernetes:core/v1:Namespace", "kueue-workloads-namespace")
    labels = workloads.inputs["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in selector.items())
    others = [n for n in plan.of_type("kubernetes:core/v1:Namespace") if n is not workloads]
    for namespace in others:
        assert not all(namespace.inputs["metadata"]["labels"].get(k) == v
                       for k, v in selector.items()), namespace.name


def test_dra_device_class_maps_to_the_quota_resource_dra_pools_use():
    plan = plan_for()
    mappings = manager_config(plan)["resources"]["deviceClassMappings"]
    assert [m["deviceClassNames"] for m in mappings] == [[GPU_DEVICE_CLASS]]
    queue = plan.one(CR + "ClusterQueue").inputs["spec"]
    dra_group = [g for g in queue["resourceGroups"]
                 if [f["name"] for f in g["flavors"]] == ["l4"]]
    assert dra_group and dra_group[0]["coveredResources"] == [mappings[0]["name"]]


def test_no_device_class_mapping_without_dra_pools():
    config = manager_config(plan_for(pools=POOLS[:2]))
    assert "deviceClassMappings" not in config["resources"]


def test_cpu_and_memory_need_no_quota_to_be_admitted():
    assert manager_config(plan_for())["resources"]["quotaCheckStrategy"] == "IgnoreUndeclared"


def test_one_flavor_per_gpu_pool_pinned_to_its_nodes_and_tolerating_its_taint():
    flavors = plan_for().of_type(CR + "ResourceFlavor")
    assert sorted(f.inputs["metadata"]["name"] for f in flavors) == ["h100", "l4", "l40s"]
    for flavor in flavors:
        spec = flavor.inputs["spec"]
        assert spec["nodeLabels"] == {LABEL_POOL: flavor.inputs["metadata"]["name"]}
        assert [t["key"] for t in spec["tolerations"]] == [GPU_TAINT_KEY]


def test_cluster_queue_gpu_quota_is_max_nodes_times_gpus_per_node_per_flavor():
    plan = offline.run(lambda: _export_pools(), {})
    pools = {p["name"]: p for p in plan.outputs["pools"]}
    queue = plan.one(CR + "ClusterQueue").inputs["spec"]
    quota = {f["name"]: (r["name"], r["nominalQuota"])
             for g in queue["resourceGroups"] for f in g["flavors"] for r in f["resources"]}
    assert quota == {
        name: ("aicp.dev/dra-gpu" if p["allocator"] == "dra" else "nvidia.com/gpu",
               p["maxNodes"] * p["gpusPerNode"])
        for name, p in pools.items()}
    assert quota["h100"][1] == 16 and quota["l40s"][1] == 12 and quota["l4"][1] == 20


def _export_pools():
    import pulumi
    cluster = make_cluster(pools=POOLS)
    Kueue("kueue", cluster)
    pulumi.export("pools", [p.export() for p in cluster.gpu_pools])


def test_time_sliced_device_plugin_gpus_count_once_per_slice():
    queue = plan_for(KueueArgs(device_plugin_gpu_replicas=4)).one(CR + "ClusterQueue")
    quota = {f["name"]: f["resources"][0]["nominalQuota"]
             for g in queue.inputs["spec"]["resourceGroups"] for f in g["flavors"]}
    assert quota == {"h100": 64, "l40s": 48, "l4": 20}


def test_local_queue_lives_in_the_workloads_namespace_and_feeds_the_cluster_queue():
    plan = plan_for()
    local = plan.one(CR + "LocalQueue").inputs
    queue = plan.one(CR + "ClusterQueue").inputs
    assert local["metadata"]["namespace"] == "ai-workloads"
    assert local["spec"]["clusterQueue"] == queue["metadata"]["name"]


def test_custom_resources_wait_for_the_kueue_release():
    plan = plan_for()
    release = plan.one(RELEASE, "kueue-release")
    custom = [r for r in plan.resources if r.type.startswith(CR)]
    # A flavor per pool, the ClusterQueue, the LocalQueue, and the Topology of the h100 pool
    # (p5.48xlarge: an EFA type whose nodes carry network-topology labels).
    assert sorted(r.type.removeprefix(CR) for r in custom) == [
        "ClusterQueue", "LocalQueue", "ResourceFlavor", "ResourceFlavor", "ResourceFlavor",
        "Topology"]
    for resource in custom:
        assert plan.depends_on(resource, release), resource.name
    queue = plan.one(CR + "ClusterQueue")
    for flavor in plan.of_type(CR + "ResourceFlavor"):
        assert plan.depends_on(queue, flavor)


def test_kueue_starts_after_jobset_so_the_integration_finds_its_api():
    plan = plan_for()
    assert plan.depends_on(plan.one(RELEASE, "kueue-release"), plan.one(RELEASE, "jobset-release"))


def test_namespaces_carry_pod_security_levels():
    plan = plan_for()
    levels = {n.inputs["metadata"]["name"]:
              n.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for n in plan.of_type("kubernetes:core/v1:Namespace")}
    assert levels == {"kueue-system": "restricted", "ai-workloads": "baseline",
                      "jobset-system": "baseline"}


def test_declared_objects_validate():
    objects = kubernetes_objects(plan_for())
    assert {o.inputs["kind"] for o in objects} >= {"ResourceFlavor", "ClusterQueue",
                                                    "LocalQueue", "Namespace"}
    for obj in objects:
        assert schema_errors(obj) == [], obj.name


def test_serves_gang_scheduling():
    plan = plan_for()
    assert plan.one("aicp:addons:Kueue").outputs["conformance"] == ["gang_scheduling"]
    assert plan.one("aicp:addons:JobSet").outputs["conformance"] == []


# --- teams: one cohort, quota per team, reclaim by preemption, fair sharing ---------------
# kubernetes-sigs/kueue v0.19.2 site/content/en/docs/concepts/cluster_queue.md ("Cohort",
# "BorrowingLimit", "LendingLimit", "Preemption"), concepts/fair_sharing.md,
# concepts/workload_priority_class.md.

from aicp.addons.kueue import COHORT, TEAM_LABEL, Team  # noqa: E402

TEAMS = (Team("research", {"h100": 12, "l4": 10}, borrowing_limit=8),
         Team("serving", {"h100": 4, "l40s": 12, "l4": 5}, lending_limit=2, weight=2))


def teams_plan(teams=TEAMS, pools=POOLS):
    return plan_for(KueueArgs(teams=teams), pools)


def cluster_queues(plan) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"]
            for r in plan.of_type(CR + "ClusterQueue")}


def quotas(spec: dict) -> dict[str, dict]:
    return {f["name"]: f["resources"][0] for g in spec["resourceGroups"] for f in g["flavors"]}


def test_each_team_gets_a_namespace_a_local_queue_and_a_cluster_queue():
    plan = teams_plan()
    namespaces = {n.inputs["metadata"]["name"]: n.inputs["metadata"]["labels"]
                  for n in plan.of_type("kubernetes:core/v1:Namespace")}
    locals_ = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]):
               r.inputs["spec"]["clusterQueue"] for r in plan.of_type(CR + "LocalQueue")}
    queues = cluster_queues(plan)
    for team in ("research", "serving"):
        assert namespaces[team]["aicp.dev/kueue-managed"] == "true"
        assert namespaces[team][TEAM_LABEL] == team
        assert locals_[(team, "gpu")] == team
        # The queue admits the team's namespace only, by a label a probe can set too.
        assert queues[team]["namespaceSelector"] == {"matchLabels": {
            "aicp.dev/kueue-managed": "true", TEAM_LABEL: team}}


def test_every_gpu_cluster_queue_is_in_the_teams_cohort():
    queues = cluster_queues(teams_plan())
    assert set(queues) == {"gpu", "research", "serving"}
    assert {spec["cohortName"] for spec in queues.values()} == {COHORT}


def test_team_quota_is_nominal_with_its_limits_and_every_flavor_listed_to_borrow():
    queues = cluster_queues(teams_plan())
    research, serving = quotas(queues["research"]), quotas(queues["serving"])
    assert research["h100"] == {"name": "nvidia.com/gpu", "nominalQuota": 12,
                                "borrowingLimit": 8}
    assert research["l40s"]["nominalQuota"] == 0  # owns none, may borrow
    assert research["l4"]["name"] == "aicp.dev/dra-gpu"
    assert serving["l40s"] == {"name": "nvidia.com/gpu", "nominalQuota": 12,
                               "lendingLimit": 2}
    # Kueue refuses a lendingLimit above the nominal quota.
    assert serving["h100"]["lendingLimit"] == 2 and serving["l4"]["lendingLimit"] == 2


def test_the_shared_queue_holds_what_the_teams_leave_of_each_pool():
    # h100: 2 x 8 = 16, teams 16; l40s: 3 x 4 = 12, teams 12; l4: 5 x 4 = 20, teams 15.
    shared = quotas(cluster_queues(teams_plan())["gpu"])
    assert {f: q["nominalQuota"] for f, q in shared.items()} == {"h100": 0, "l40s": 0, "l4": 5}


def test_a_team_reclaims_its_quota_and_priorities_preempt_within_a_team():
    for spec in cluster_queues(teams_plan()).values():
        assert spec["preemption"] == {"reclaimWithinCohort": "Any",
                                      "withinClusterQueue": "LowerPriority"}


def test_fair_sharing_is_on_with_each_team_weight():
    plan = teams_plan()
    assert manager_config(plan)["fairSharing"] == {"preemptionStrategies": [
        "LessThanOrEqualToFinalShare", "LessThanInitialShare"]}
    queues = cluster_queues(plan)
    assert queues["serving"]["fairSharing"] == {"weight": 2}
    assert queues["research"]["fairSharing"] == {"weight": 1}


def test_workload_priority_classes_are_declared_for_teams():
    plan = teams_plan()
    classes = {r.inputs["metadata"]["name"]: r.inputs["value"]
               for r in plan.of_type(CR + "WorkloadPriorityClass")}
    assert classes == {"aicp-low": 100, "aicp-normal": 1000, "aicp-high": 10000}


def test_without_teams_there_is_one_queue_outside_any_cohort_and_no_fair_sharing():
    plan = plan_for()
    assert "cohortName" not in cluster_queues(plan)["gpu"]
    assert "fairSharing" not in manager_config(plan)
    assert plan.of_type(CR + "WorkloadPriorityClass") == []


def test_team_objects_validate():
    objects = kubernetes_objects(teams_plan())
    assert {o.inputs["kind"] for o in objects} >= {"WorkloadPriorityClass", "ClusterQueue"}
    for obj in objects:
        assert schema_errors(obj) == [], obj.name


def test_quota_over_what_a_pool_holds_at_max_is_refused():
    import pytest
    from pulumi.errors import InputPropertyError

    from aicp.addons.kueue import validate_teams
    from aicp.components.contract import resolve_pool

    pools = [resolve_pool("aws", p) for p in POOLS]
    too_much = (Team("research", {"h100": 12}), Team("serving", {"h100": 5}))
    with pytest.raises(InputPropertyError) as err:
        validate_teams(too_much, pools, KueueArgs())
    assert err.value.property_path == 'teams[1].quota["h100"]'
    assert err.value.reason == (
        "the teams' quota of pool h100 adds up to 17 GPUs, more than the pool holds at "
        "maxNodes (16); lower the quotas or raise its maxNodes")


# --- GKE queued provisioning: Kueue's ProvisioningRequest admission check ----------------
# kueue v0.19.2 site/content/en/docs/admission-check-controllers/provisioning.md; GKE
# "Run a large-scale workload with flex-start with queued provisioning" (class
# queued-provisioning.gke.io).

QUEUED = (GpuPoolRequest(name="h100", accelerator="h100", max_nodes=4,
                         allocator="device-plugin", capacity_type="queued-provisioning"),
          GpuPoolRequest(name="l4", accelerator="l4", max_nodes=3, allocator="device-plugin"))


def test_queued_provisioning_flavor_requires_the_provisioning_request_check():
    def program():
        Kueue("kueue", make_cluster("gcp", QUEUED, autoscaler="gke"),
              KueueArgs(teams=(Team("research", {"h100": 16, "l4": 2}),)))
    plan = offline.run(program, {})
    config = plan.one(CR + "ProvisioningRequestConfig").inputs
    assert config["spec"] == {"provisioningClassName": "queued-provisioning.gke.io"}
    check = plan.one(CR + "AdmissionCheck").inputs
    assert check["spec"] == {"controllerName": "kueue.x-k8s.io/provisioning-request",
                             "parameters": {"apiGroup": "kueue.x-k8s.io",
                                            "kind": "ProvisioningRequestConfig",
                                            "name": config["metadata"]["name"]}}
    for spec in cluster_queues(plan).values():
        assert spec["admissionChecksStrategy"] == {"admissionChecks": [
            {"name": check["metadata"]["name"], "onFlavors": ["h100"]}]}
    for obj in kubernetes_objects(plan):
        assert schema_errors(obj) == [], obj.name


def test_no_admission_check_without_a_queued_provisioning_pool():
    plan = plan_for()
    assert plan.of_type(CR + "AdmissionCheck") == []
    assert "admissionChecksStrategy" not in cluster_queues(plan)["gpu"]


def test_spot_flavor_tolerates_the_aks_spot_taint():
    from dataclasses import replace

    from aicp.components.azure import SPOT_TAINT

    def program():
        cluster = make_cluster("azure", (GpuPoolRequest(
            name="t4", accelerator="t4", max_nodes=2, capacity_type="spot"),))
        cluster = replace(cluster, gpu_pools=tuple(
            replace(p, taints=(*p.taints, SPOT_TAINT)) for p in cluster.gpu_pools))
        Kueue("kueue", cluster)
    flavor = offline.run(program, {}).one(CR + "ResourceFlavor").inputs
    assert {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal",
            "value": "spot", "effect": "NoSchedule"} in flavor["spec"]["tolerations"]
