"""cluster-autoscaler: the cluster's minor, the target's cloud values, our scaling policy.

``../shared`` has no copy of the cluster-autoscaler chart. The keys set here (``image.tag``,
``extraArgs``, ``resources``) were read in kubernetes/autoscaler
``charts/cluster-autoscaler/values.yaml``; the flags in ``cluster-autoscaler/FAQ.md``
("What are the parameters to CA?").
"""

from __future__ import annotations

import pytest

from aicp.addons.catalog import CHARTS, KUBERNETES, NOT_OFFERED
from aicp.cli import offline
from aicp.components.contract import CONFORMANCE_OUTPUT
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import RELEASE, release_of, unpinned_releases

TOKEN = "aicp:addons:ClusterAutoscaler"
CA = CHARTS["cluster-autoscaler"]


def _plan(*, minor="1.35", autoscaler="cluster-autoscaler", **ca_args) -> offline.Plan:
    def program() -> None:
        from aicp.addons.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs

        cluster = make_cluster(minor=minor, autoscaler=autoscaler)
        ClusterAutoscaler("ca", cluster, ClusterAutoscalerArgs(**ca_args))

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def values(plan: offline.Plan) -> dict:
    return release_of(plan, CA).inputs["values"]


def test_chart_is_pinned_to_the_catalog(plan):
    assert unpinned_releases(plan) == []
    assert release_of(plan, CA).inputs["repositoryOpts"] == {"repo": CA.repo}


# Every minor a cluster-autoscaler target (EKS) offers has its pin; 1.37 has none because
# EKS offers no 1.37 (addons/catalog.py NOT_OFFERED; tests/stacks: the aws target refuses it).
@pytest.mark.parametrize("minor", sorted(m for m in KUBERNETES
                                         if m not in NOT_OFFERED["aws"]))
def test_image_follows_the_cluster_minor(minor):
    tag = values(_plan(minor=minor))["image"]["tag"]
    assert tag == KUBERNETES[minor]["cluster-autoscaler"]
    assert tag.startswith(f"v{minor}.")


@pytest.mark.parametrize("autoscaler", ["gke", "aks", "none"])
def test_absent_where_the_target_scales_its_own_nodes(autoscaler):
    plan = _plan(autoscaler=autoscaler)
    assert plan.of_type(RELEASE) == []
    outputs = plan.one(TOKEN).outputs
    assert outputs["installed"] is False
    assert outputs[CONFORMANCE_OUTPUT] == []


def test_target_values_reach_the_chart(plan):
    v = values(plan)
    assert (v["cloudProvider"], v["awsRegion"]) == ("aws", "us-west-2")
    assert v["autoDiscovery"] == {"clusterName": "aicp"}


def test_scaling_policy_packs_gpu_nodes_and_balances_similar_groups(plan):
    args = values(plan)["extraArgs"]
    assert args["expander"] == "least-waste"
    assert args["balance-similar-node-groups"] is True
    assert args["skip-nodes-with-system-pods"] is False
    assert args["scale-down-unneeded-time"]


def test_expander_and_idle_time_are_configurable():
    args = values(_plan(expander="priority", scale_down_unneeded_time="30m"))["extraArgs"]
    assert (args["expander"], args["scale-down-unneeded-time"]) == ("priority", "30m")


def test_runs_in_the_namespace_whose_service_account_the_aws_target_grants_a_role(plan):
    from aicp.components.aws import CA_NAMESPACE

    assert release_of(plan, CA).inputs["namespace"] == CA_NAMESPACE


def test_target_values_win_over_ours_key_by_key():
    from aicp.addons.cluster_autoscaler import deep_merge

    ours = {"extraArgs": {"expander": "least-waste", "v": 4}, "image": {"tag": "v1"}}
    target = {"extraArgs": {"v": 2}, "cloudProvider": "clusterapi"}
    assert deep_merge(ours, target) == {
        "extraArgs": {"expander": "least-waste", "v": 2}, "image": {"tag": "v1"},
        "cloudProvider": "clusterapi"}


def test_cluster_autoscaler_serves_cluster_autoscaling(plan):
    outputs = plan.one(TOKEN).outputs
    assert outputs[CONFORMANCE_OUTPUT] == ["cluster_autoscaling"]
    assert outputs["imageTag"] == values(plan)["image"]["tag"]


# --- DRA pools scale (issue #25 item 6) ----------------------------------------------------

def _dra_plan(pools, minor="1.34") -> offline.Plan:
    def program() -> None:
        import dataclasses

        from aicp.addons.cluster_autoscaler import ClusterAutoscaler

        cluster = make_cluster(pools=pools, minor=minor)
        # The service account the aws target names (components/aws.py CA_SERVICE_ACCOUNT).
        cluster = dataclasses.replace(cluster, autoscaler_values={
            **cluster.autoscaler_values,
            "rbac": {"serviceAccount": {"create": True, "name": "cluster-autoscaler"}}})
        ClusterAutoscaler("ca", cluster)

    return offline.run(program, {})


def test_a_dra_pool_on_1_34_turns_on_the_autoscalers_dra_handling_with_read_access():
    # cluster-autoscaler v1.34.x leaves --enable-dynamic-resource-allocation false: a
    # pending ResourceClaim would never scale the DRA pool up.
    from tests.addons.conftest import POOLS

    plan = _dra_plan(POOLS)
    assert values(plan)["extraArgs"]["enable-dynamic-resource-allocation"] is True
    role = plan.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert role.inputs["rules"] == [{
        "apiGroups": ["resource.k8s.io"],
        "resources": ["resourceclaims", "resourceclaimtemplates", "resourceslices",
                      "deviceclasses"],
        "verbs": ["get", "list", "watch"]}]
    binding = plan.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount",
                                           "name": "cluster-autoscaler",
                                           "namespace": "kube-system"}]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]


def test_device_plugin_pools_alone_leave_the_flag_and_the_role_out():
    from aicp.components.contract import GpuPoolRequest

    plan = _dra_plan((GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0,
                                     max_nodes=2, allocator="device-plugin"),))
    assert "enable-dynamic-resource-allocation" not in values(plan)["extraArgs"]
    assert plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole") == []
