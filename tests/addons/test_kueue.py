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
