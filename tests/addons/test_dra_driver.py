"""DRA driver: pinned chart, kubelet plugin only on DRA pools, CRDs owned once, ordering."""

from __future__ import annotations

from dataclasses import replace

from aicp.addons.catalog import CHARTS
from aicp.addons.dra_driver import DraDriver, DraDriverArgs
from aicp.addons.gpu_operator import GpuOperator
from aicp.cli import offline
from aicp.components.contract import (
    GPU_TAINT_KEY,
    LABEL_ALLOCATOR,
    LABEL_DEVICE_PLUGIN,
    GpuPoolRequest,
)
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import kubernetes_objects, schema_errors
from tests.charts import unknown_value_paths, upstream_values

RELEASE = "kubernetes:helm.sh/v3:Release"
DEVICE_PLUGIN_ONLY = (GpuPoolRequest(name="h100", accelerator="h100", max_nodes=2,
                                     allocator="device-plugin"),)


def plan_with_operator(compute_domains: bool = False, **cluster):
    def program():
        c = make_cluster(**cluster)
        operator = GpuOperator("gpu-operator", c)
        DraDriver("dra", c, DraDriverArgs(gpu_operator=operator, compute_domains=compute_domains))
    return offline.run(program, {})


def dra_release(plan):
    return plan.one(RELEASE, "dra-release")


def test_release_is_pinned_to_the_catalog_chart():
    release = dra_release(plan_with_operator())
    chart = CHARTS["dra-driver"]
    assert release.inputs["chart"] == chart.ref and chart.oci
    assert release.inputs["version"] == chart.version == "0.4.1"
    assert "repositoryOpts" not in release.inputs


def test_every_value_we_set_exists_in_the_pinned_chart():
    values = dra_release(plan_with_operator(compute_domains=True)).inputs["values"]
    assert unknown_value_paths(values, upstream_values("dra-driver-nvidia-gpu-0.4.1")) == []


def test_gpus_are_advertised_with_the_chart_acknowledging_one_advertiser_per_node():
    values = dra_release(plan_with_operator()).inputs["values"]
    assert values["resources"]["gpus"]["enabled"] is True
    assert values["gpuResourcesEnabledOverride"] is True
    assert values["resources"]["computeDomains"]["enabled"] is False
    assert values["resourceApiVersion"] == "resource.k8s.io/v1"


def test_driver_root_follows_the_contract():
    values = dra_release(plan_with_operator(
        driver_owner="operator", driver_root="/run/nvidia/driver")).inputs["values"]
    assert values["nvidiaDriverRoot"] == "/run/nvidia/driver"


def test_no_gpu_is_advertised_twice():
    plan = offline.run(lambda: _pools_and_driver(), {})
    selector = dra_release(plan).inputs["values"]["kubeletPlugin"]["nodeSelector"]
    assert selector[LABEL_ALLOCATOR] == "dra"
    for pool in plan.outputs["pools"]:
        runs_dra_plugin = all(pool["labels"].get(k) == v for k, v in selector.items())
        device_plugin_off = pool["labels"].get(LABEL_DEVICE_PLUGIN) == "false"
        assert runs_dra_plugin == device_plugin_off, pool["name"]


def _pools_and_driver():
    import pulumi
    cluster = make_cluster()
    DraDriver("dra", cluster, DraDriverArgs(gpu_operator=GpuOperator("gpu-operator", cluster)))
    pulumi.export("pools", [p.export() for p in cluster.gpu_pools])


def test_kubelet_plugin_keeps_every_toleration_of_the_chart_default():
    # A Helm list value replaces the chart's: ours must restate what the default tolerates.
    values = dra_release(plan_with_operator()).inputs["values"]
    upstream = upstream_values("dra-driver-nvidia-gpu-0.4.1")["kubeletPlugin"]["tolerations"]
    assert {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in upstream
    for toleration in upstream:
        assert toleration in values["kubeletPlugin"]["tolerations"]


# AKS taints Spot nodes kubernetes.azure.com/scalesetpriority=spot:NoSchedule (AKS docs,
# "Add an Azure Spot node pool to an AKS cluster").
AKS_SPOT = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists",
            "effect": "NoSchedule"}


def test_kubelet_plugin_runs_on_aks_spot_gpu_nodes():
    def program():
        from aicp.components.azure import SPOT_TAINT
        cluster = make_cluster("azure", (GpuPoolRequest(
            name="a100", accelerator="a100", max_nodes=2, capacity_type="spot"),))
        cluster = replace(cluster, gpu_pools=tuple(
            replace(p, taints=(*p.taints, SPOT_TAINT)) for p in cluster.gpu_pools))
        DraDriver("dra", cluster, DraDriverArgs())
    values = dra_release(offline.run(program, {})).inputs["values"]
    assert AKS_SPOT in values["kubeletPlugin"]["tolerations"]


def test_waits_for_an_operator_that_installs_the_driver_and_leaves_its_crds_to_it():
    plan = plan_with_operator(driver_owner="operator", driver_root="/run/nvidia/driver")
    assert plan.depends_on(dra_release(plan), plan.one(RELEASE, "gpu-operator-release"))
    assert dra_release(plan).inputs["skipCrds"] is True
    assert plan.one(RELEASE, "gpu-operator-release").inputs["skipCrds"] is False


def test_with_a_host_driver_it_starts_beside_the_gpu_operator():
    # Stand-up time: nothing this release needs comes from the operator's pods
    # when the host carries the driver; the CRDs still come from the operator's crds/ only.
    plan = plan_with_operator(driver_owner="host")
    assert not plan.depends_on(dra_release(plan), plan.one(RELEASE, "gpu-operator-release"))
    assert dra_release(plan).inputs["skipCrds"] is True


def test_installs_its_own_crds_without_a_gpu_operator():
    plan = offline.run(lambda: DraDriver("dra", make_cluster()), {})
    assert dra_release(plan).inputs.get("skipCrds") is False


def test_nothing_is_installed_without_dra_pools_or_compute_domains():
    plan = offline.run(lambda: DraDriver("dra", make_cluster(pools=DEVICE_PLUGIN_ONLY)), {})
    driver = plan.one("aicp:addons:DraDriver")
    assert plan.descendants(driver) == []
    assert driver.outputs["conformance"] == []


def test_namespace_is_privileged_and_declared_objects_validate():
    plan = plan_with_operator()
    namespace = plan.one("kubernetes:core/v1:Namespace", "dra-namespace")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == \
        "privileged"
    assert plan.depends_on(dra_release(plan), namespace)
    for obj in kubernetes_objects(plan):
        assert schema_errors(obj) == [], obj.name


def test_serves_dra_support_secure_access_and_gpu_sharing():
    served = plan_with_operator().one("aicp:addons:DraDriver").outputs["conformance"]
    assert set(served) == {"dra_support", "secure_accelerator_access", "gpu_sharing"}


# --- gpu_sharing: time-slicing through the driver's opaque config (issue #25) -------------

def test_time_slicing_is_on_by_default_with_its_feature_gate_and_device_class():
    import yaml

    from tests.shared import require_shared

    plan = plan_with_operator()
    values = dra_release(plan).inputs["values"]
    # Alpha and off by default at 0.4.1: without the gate the kubelet plugin refuses a
    # GpuConfig with sharing.
    assert values["featureGates"] == {"TimeSlicingSettings": True}
    cls = plan.one("kubernetes:resource.k8s.io/v1:DeviceClass").inputs
    assert cls["metadata"]["name"] == "gpu-time-sliced.aicp.dev"
    # The same devices as the chart's whole-GPU class (the upstream capture of it).
    upstream = {d["metadata"]["name"]: d for d in yaml.safe_load_all(
        require_shared("fixtures", "nvidia-dra-deviceclasses.yaml").read_text()) if d}
    assert cls["spec"]["selectors"] == upstream["gpu.nvidia.com"]["spec"]["selectors"]
    assert cls["spec"]["config"] == [{"opaque": {"driver": "gpu.nvidia.com", "parameters": {
        "apiVersion": "resource.nvidia.com/v1beta1", "kind": "GpuConfig",
        "sharing": {"strategy": "TimeSlicing",
                    "timeSlicingConfig": {"interval": "Default"}}}}}]
    outputs = plan.one("aicp:addons:DraDriver").outputs
    assert outputs["sharing"]["strategy"] == "TimeSlicing"


def test_time_slicing_can_be_turned_off():
    def program():
        c = make_cluster()
        DraDriver("dra", c, DraDriverArgs(time_slicing=False))
    plan = offline.run(program, {})
    assert "featureGates" not in dra_release(plan).inputs["values"]
    assert plan.of_type("kubernetes:resource.k8s.io/v1:DeviceClass") == []
    assert "gpu_sharing" not in plan.one("aicp:addons:DraDriver").outputs["conformance"]


def test_on_gke_the_driver_namespace_admits_its_critical_pods():
    # Controller at system-cluster-critical, kubelet plugins at system-node-critical (chart
    # 0.4.1 values.yaml); GKE needs a ResourceQuota scoped to them (NVIDIA/aicr#915).
    from aicp.components.contract import CRITICAL_PODS_NEED_QUOTA

    plan = offline.run(lambda: DraDriver("dra", make_cluster(
        target="gcp", features={CRITICAL_PODS_NEED_QUOTA: True})), {})
    quota = plan.one("kubernetes:core/v1:ResourceQuota")
    assert quota.inputs["metadata"]["namespace"] == "dra-driver-nvidia-gpu"
    assert plan.depends_on(dra_release(plan), quota)
    plain = offline.run(lambda: DraDriver("dra", make_cluster()), {})
    assert plain.of_type("kubernetes:core/v1:ResourceQuota") == []
