"""GPU Operator: what Pulumi would send for the release, per driver ownership and pool mix."""

from __future__ import annotations

from dataclasses import replace

import yaml

from aicp.addons.catalog import CHARTS
from aicp.addons.gpu_operator import GpuOperator, GpuOperatorArgs
from aicp.cli import offline
from aicp.components.contract import LABEL_DEVICE_PLUGIN, GpuDriver, GpuPoolRequest
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import kubernetes_objects, schema_errors
from tests.charts import unknown_value_paths, upstream_values

RELEASE = "kubernetes:helm.sh/v3:Release"
DRA_ONLY = (GpuPoolRequest(name="l4", accelerator="l4", max_nodes=2, allocator="dra"),)


def plan_for(args: GpuOperatorArgs | None = None, **cluster):
    return offline.run(lambda: GpuOperator("gpu-operator", make_cluster(**cluster), args), {})


def values_of(plan) -> dict:
    return plan.one(RELEASE).inputs["values"]


def test_release_is_pinned_to_the_catalog_chart():
    release = plan_for().one(RELEASE)
    chart = CHARTS["gpu-operator"]
    assert (release.inputs["chart"], release.inputs["version"]) == (chart.chart, chart.version)
    assert release.inputs["repositoryOpts"]["repo"] == chart.repo
    assert release.inputs.get("skipAwait") is not True


def test_every_value_we_set_exists_in_the_pinned_chart():
    upstream = upstream_values("gpu-operator-v26.7.0")
    for cluster in ({}, {"driver_owner": "operator", "driver_root": "/run/nvidia/driver"}):
        values = values_of(plan_for(GpuOperatorArgs(time_slicing_replicas=4), **cluster))
        assert unknown_value_paths(values, upstream) == []


def test_host_driver_leaves_driver_and_toolkit_to_the_host():
    values = values_of(plan_for(driver_owner="host"))
    assert values["driver"]["enabled"] is False
    assert values["toolkit"]["enabled"] is False


def test_operator_owned_driver_installs_where_the_dra_driver_looks_for_it():
    values = values_of(plan_for(driver_owner="operator", driver_root="/run/nvidia/driver"))
    assert values["driver"]["enabled"] is True
    assert values["hostPaths"]["driverInstallDir"] == "/run/nvidia/driver"


def test_target_specific_operator_values_are_merged_in():
    # AKS's preinstalled driver needs the runtime class its node image registers.
    driver = GpuDriver(owner="host", root="/",
                       operator_values={"operator": {"runtimeClass": "nvidia-container-runtime"}})

    def program():
        GpuOperator("gpu-operator", replace(make_cluster(), gpu_driver=driver))

    values = values_of(offline.run(program, {}))
    assert values["operator"] == {"upgradeCRD": True, "runtimeClass": "nvidia-container-runtime"}


def test_dcgm_servicemonitor_carries_the_kube_prometheus_stack_release_label():
    monitor = values_of(plan_for(GpuOperatorArgs(prometheus_release="kps")))[
        "dcgmExporter"]["serviceMonitor"]
    assert monitor == {"enabled": True, "additionalLabels": {"release": "kps"}}


def test_feature_discovery_stays_on_so_gpu_nodes_get_their_labels():
    values = values_of(plan_for())
    assert values["gfd"]["enabled"] is True
    assert values["nfd"]["enabled"] is True


def test_operator_never_deploys_its_own_dra_driver():
    values = values_of(plan_for())
    assert values["gpuCluster"]["deployCR"] is False
    assert values["clusterPolicy"]["deployCR"] is True
    assert "draDriver" not in values


def test_dra_pools_opt_out_of_the_device_plugin_by_node_label():
    # The device plugin runs on device-plugin pools; DRA pool nodes carry the operator's
    # per-node switch set to false, which the operator honours rather than overwrites.
    plan = offline.run(lambda: _record_pools(), {})
    pools = plan.outputs["pools"]
    for pool in pools:
        expected = "false" if pool["allocator"] == "dra" else None
        assert pool["labels"].get(LABEL_DEVICE_PLUGIN) == expected
    assert values_of(plan)["devicePlugin"]["enabled"] is True


def _record_pools():
    import pulumi
    cluster = make_cluster()
    GpuOperator("gpu-operator", cluster)
    pulumi.export("pools", [p.export() for p in cluster.gpu_pools])


def test_no_device_plugin_at_all_when_every_pool_uses_dra():
    plan = plan_for(pools=DRA_ONLY)
    assert values_of(plan)["devicePlugin"]["enabled"] is False
    operator = plan.one("aicp:addons:GpuOperator")
    assert "secure_accelerator_access" not in operator.outputs["conformance"]


def test_time_slicing_shares_each_gpu_in_the_device_plugin_config():
    config = values_of(plan_for(GpuOperatorArgs(time_slicing_replicas=4)))["devicePlugin"]["config"]
    assert config["create"] is True and config["default"] in config["data"]
    sharing = yaml.safe_load(config["data"][config["default"]])["sharing"]
    assert sharing["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]


def test_release_owns_the_compute_domain_crds():
    assert plan_for().one(RELEASE).inputs["skipCrds"] is False


def test_namespace_is_privileged_for_host_access_and_release_waits_for_it():
    plan = plan_for()
    namespace = plan.one("kubernetes:core/v1:Namespace")
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert plan.one(RELEASE).inputs["namespace"] == namespace.inputs["metadata"]["name"]
    assert plan.depends_on(plan.one(RELEASE), namespace)


def test_declared_objects_validate():
    plan = plan_for()
    objects = kubernetes_objects(plan)
    assert objects
    for obj in objects:
        assert schema_errors(obj) == [], obj.name


def test_serves_driver_management_and_metrics():
    served = plan_for().one("aicp:addons:GpuOperator").outputs["conformance"]
    assert {"driver_runtime_management", "accelerator_metrics",
            "secure_accelerator_access"} <= set(served)


# --- what real clusters reject or leave unhealthy although mocks accept it ----------------

def test_on_gke_critical_pods_get_the_scoped_quota_the_release_waits_for():
    # GKE admits system-node-critical / system-cluster-critical pods outside kube-system only
    # under a ResourceQuota scoped to those classes (NVIDIA/aicr#915: "insufficient quota to
    # match these scopes"; NVIDIA/gpu-operator#660 quotes NVIDIA's GKE guide).
    from aicp.components.contract import CRITICAL_PODS_NEED_QUOTA

    plan = plan_for(target="gcp", features={CRITICAL_PODS_NEED_QUOTA: True})
    quota = plan.one("kubernetes:core/v1:ResourceQuota")
    namespace = plan.one("kubernetes:core/v1:Namespace")
    assert quota.inputs["metadata"]["namespace"] == namespace.inputs["metadata"]["name"]
    assert quota.inputs["spec"]["scopeSelector"] == {"matchExpressions": [{
        "scopeName": "PriorityClass", "operator": "In",
        "values": ["system-node-critical", "system-cluster-critical"]}]}
    assert plan.depends_on(plan.one(RELEASE), quota)
    assert schema_errors(quota) == []


def test_clusters_without_the_quota_rule_get_no_quota():
    assert plan_for().of_type("kubernetes:core/v1:ResourceQuota") == []


def _binding_subject_rules(plan):
    roles = {r.inputs["metadata"]["name"]: r for r in plan.of_type(
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")}
    out = []
    for b in plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"):
        role = roles[b.inputs["roleRef"]["name"]]
        for subject in b.inputs["subjects"]:
            out.append(((subject["namespace"], subject["name"]), role.inputs["rules"]))
    return out


def test_dcgm_exporter_attributes_dra_gpus_to_pods():
    # ClusterPolicy's exporter has neither KUBERNETES_ENABLE_DRA nor ResourceSlice RBAC; the
    # GPUCluster manifests show both (gpu-operator v26.7.0 manifests/state-dcgm-exporter/
    # 0700_daemonset.yaml, 0210_clusterrole.yaml; assets/... 0210_clusterrole.yaml "TODO").
    plan = plan_for()  # the default world has a DRA pool
    env = values_of(plan)["dcgmExporter"]["env"]
    assert {"name": "KUBERNETES_ENABLE_DRA", "value": "true"} in env
    # Without pod metadata ClusterPolicy mounts no API token into the exporter
    # (object_controls.go, automountServiceAccountToken), and the informer cannot list.
    assert values_of(plan)["dcgmExporter"]["enablePodUID"] is True
    grants = _binding_subject_rules(plan)
    assert any(subject == ("gpu-operator", "nvidia-dcgm-exporter") and any(
        "resourceslices" in r["resources"] and "resource.k8s.io" in r["apiGroups"]
        and {"list", "watch"} <= set(r["verbs"]) for r in rules)
        for subject, rules in grants)
    for obj in kubernetes_objects(plan):
        assert schema_errors(obj) == [], obj.name


def test_without_dra_pools_the_exporter_is_left_as_upstream_ships_it():
    plan = plan_for(pools=(GpuPoolRequest(name="h100", accelerator="h100", max_nodes=2,
                                          allocator="device-plugin"),))
    assert "env" not in values_of(plan)["dcgmExporter"]
    assert "enablePodUID" not in values_of(plan)["dcgmExporter"]
    assert _binding_subject_rules(plan) == []


def test_operator_driver_manager_evicts_the_dra_kubelet_plugin_by_its_node_label():
    # Known issue in NVIDIA's "DRA Driver for NVIDIA GPUs" install guide: pass the DRA nodes'
    # label in driver.manager.env; k8s-driver-manager reads NODE_LABEL_FOR_GPU_POD_EVICTION
    # and flips that label to evict the pods selecting on it.
    from aicp.addons.dra_driver import DraDriver, DraDriverArgs

    def program():
        import pulumi
        cluster = make_cluster(driver_owner="operator", driver_root="/run/nvidia/driver")
        op = GpuOperator("gpu-operator", cluster)
        DraDriver("dra", cluster, DraDriverArgs(gpu_operator=op))
        pulumi.export("pools", [p.export() for p in cluster.gpu_pools])

    plan = offline.run(program, {})
    operator = next(r for r in plan.of_type(RELEASE) if r.inputs["chart"] == "gpu-operator")
    dra = next(r for r in plan.of_type(RELEASE) if r.inputs["chart"] != "gpu-operator")
    env = operator.inputs["values"]["driver"]["manager"]["env"]
    (label,) = [e["value"] for e in env if e["name"] == "NODE_LABEL_FOR_GPU_POD_EVICTION"]
    assert dra.inputs["values"]["kubeletPlugin"]["nodeSelector"][label] == "true"
    for pool in plan.outputs["pools"]:
        assert (pool["labels"].get(label) == "true") == (pool["allocator"] == "dra")


def test_host_drivers_have_no_driver_manager_to_configure():
    assert "manager" not in values_of(plan_for(driver_owner="host"))["driver"]


def test_operator_installed_toolkit_refuses_gpu_selection_by_unprivileged_env():
    # nvidia-container-toolkit v1.20.0 cmd/nvidia-ctk-installer/toolkit/toolkit.go:
    # ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED; without "false" any pod that
    # tolerates the taint sets NVIDIA_VISIBLE_DEVICES=all and sees every GPU.
    driver = GpuDriver(owner="operator", root="/run/nvidia/driver", toolkit_on_host=False,
                       operator_values={"toolkit": {"env": [
                           {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"}]}})

    def program():
        GpuOperator("gpu-operator", replace(make_cluster(), gpu_driver=driver))

    env = values_of(offline.run(program, {}))["toolkit"]["env"]
    assert {"name": "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
            "value": "false"} in env
    assert {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"} in env  # target's kept


def test_host_toolkit_is_not_configured_by_the_operator():
    assert "env" not in values_of(plan_for(driver_owner="host"))["toolkit"]


# AKS taints Spot nodes kubernetes.azure.com/scalesetpriority=spot:NoSchedule (AKS docs,
# "Add an Azure Spot node pool to an AKS cluster").
AKS_SPOT = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists",
            "effect": "NoSchedule"}


def _aks_spot_plan():
    def program():
        from aicp.components.azure import SPOT_TAINT
        cluster = make_cluster("azure", (GpuPoolRequest(
            name="a100", accelerator="a100", max_nodes=2, capacity_type="spot",
            allocator="device-plugin"),), driver_owner="operator",
            driver_root="/run/nvidia/driver")
        cluster = replace(cluster, gpu_pools=tuple(
            replace(p, taints=(*p.taints, SPOT_TAINT)) for p in cluster.gpu_pools))
        GpuOperator("gpu-operator", cluster)
    return offline.run(program, {})


def test_every_operand_and_feature_discovery_run_on_aks_spot_gpu_nodes():
    # Driver, toolkit, device plugin, DCGM exporter, GFD and validator are the operator's
    # daemonsets; NFD's worker labels the node first. Each list keeps the chart's default
    # (a Helm list value replaces it) and adds the Spot taint.
    values = values_of(_aks_spot_plan())
    upstream = upstream_values("gpu-operator-v26.7.0")
    daemonsets = values["daemonsets"]["tolerations"]
    worker = values["node-feature-discovery"]["worker"]["tolerations"]
    for toleration in upstream["daemonsets"]["tolerations"]:
        assert toleration in daemonsets
    for toleration in upstream["node-feature-discovery"]["worker"]["tolerations"]:
        assert toleration in worker
    assert AKS_SPOT in daemonsets and AKS_SPOT in worker


def test_without_nfd_no_worker_values_are_set():
    values = values_of(plan_for(GpuOperatorArgs(deploy_nfd=False)))
    assert "node-feature-discovery" not in values
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        values["daemonsets"]["tolerations"]


# --- what the pools' fabrics ask of the operator (issue #19) ------------------------------

EFA_POOL = GpuPoolRequest(name="train", accelerator="h100", instance_type="p5.48xlarge",
                          max_nodes=2, allocator="device-plugin")
IB_POOL = GpuPoolRequest(name="train", accelerator="h100",
                         instance_type="Standard_ND96isr_H100_v5", max_nodes=2,
                         allocator="device-plugin")
NO_MOFED = {"name": "MOFED_ENABLED", "value": "false"}


def test_beside_the_efa_device_plugin_the_gpu_device_plugin_mounts_no_infiniband_devices():
    # k8s-device-plugin's MOFED mode hands a GPU container every /dev/infiniband/uverbs<N>,
    # EFA's too (NVIDIA/k8s-device-plugin#1692); the operator applies devicePlugin.env last.
    values = values_of(plan_for(pools=(EFA_POOL,)))
    assert NO_MOFED in values["devicePlugin"]["env"]
    assert unknown_value_paths(values, upstream_values("gpu-operator-v26.7.0")) == []


def test_without_efa_device_plugin_pools_the_device_plugin_env_is_upstreams():
    l4 = GpuPoolRequest(name="l4", accelerator="l4", max_nodes=2, allocator="device-plugin")
    assert "env" not in values_of(plan_for(pools=(l4,)))["devicePlugin"]
    dra = replace(EFA_POOL, allocator="dra", min_nodes=1)
    # A DRA EFA pool runs no GPU device plugin (and gets the EFA DRA driver).
    assert "env" not in values_of(plan_for(pools=(dra,)))["devicePlugin"]


def test_infiniband_pools_get_gpudirect_rdma_with_the_network_operators_mofed():
    # Azure/aks-rdma-infiniband configs/values/gpu-operator/values.yaml: driver.rdma.enabled.
    values = values_of(plan_for(target="azure", pools=(IB_POOL,), driver_owner="operator",
                                driver_root="/run/nvidia/driver"))
    assert values["driver"]["rdma"] == {"enabled": True, "useHostMofed": False}
    assert unknown_value_paths(values, upstream_values("gpu-operator-v26.7.0")) == []


def test_gpudirect_rdma_is_left_alone_where_the_host_owns_the_driver_or_there_is_no_ib():
    host = values_of(plan_for(target="azure", pools=(IB_POOL,), driver_owner="host"))
    assert "rdma" not in host["driver"]
    nc = replace(IB_POOL, instance_type="Standard_NC40ads_H100_v5")
    plain = values_of(plan_for(target="azure", pools=(nc,), driver_owner="operator",
                               driver_root="/run/nvidia/driver"))
    assert "rdma" not in plain["driver"]
    assert "env" not in plain["devicePlugin"]
