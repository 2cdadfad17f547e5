"""The Azure target: what an AKS platform asks of Azure Resource Manager, read from the plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.errors import InputPropertyError

from aicp.cli import fakes, offline
from aicp.components.azure import (
    GPU_DRIVERS,
    SPOT_TAINT,
    AksCluster,
    AksClusterArgs,
    agent_pool_name,
)
from aicp.components.contract import CONFORMANCE_OUTPUT, GpuPoolRequest, resolve_pool

REPO = Path(__file__).resolve().parents[2]
MC = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"
GPU_POOL = "aicp:azure:GpuPool"
ROLE = "azure-native:authorization:RoleAssignment"
CRG = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/gpu/providers/"
       "Microsoft.Compute/capacityReservationGroups/h100-crg")
SUBNET = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/net/providers/"
          "Microsoft.Network/virtualNetworks/hub/subnets/aks")

H100 = GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                      allocator="device-plugin")
A100 = GpuPoolRequest(name="a100", accelerator="a100", min_nodes=1, max_nodes=3, allocator="dra")
ARGS = AksClusterArgs(cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
                      zones=("1", "2", "3"), gpu_pools=(H100, A100))


def build(args: AksClusterArgs = ARGS) -> tuple[offline.Plan, dict[str, Any]]:
    """Plan the component alone; also hand back its ClusterOutputs."""
    seen: dict[str, Any] = {}

    def program() -> None:
        cluster = AksCluster("aicp", args)
        seen["outputs"] = cluster.outputs
        pulumi.export("kubeconfig", cluster.outputs.kubeconfig)
        # Test-only: the decoded text, to check what the provider receives.
        pulumi.export("kubeconfigText", pulumi.Output.unsecret(cluster.outputs.kubeconfig))

    return offline.run(program, {}), seen


@pytest.fixture(scope="module")
def planned() -> tuple[offline.Plan, dict[str, Any]]:
    return build()


@pytest.fixture(scope="module")
def plan(planned) -> offline.Plan:
    return planned[0]


def pool(plan: offline.Plan, name: str) -> dict[str, Any]:
    return plan.one(POOL, f"aicp-gpu-{name}").inputs


def cluster(plan: offline.Plan) -> dict[str, Any]:
    return plan.one(MC).inputs


# --- GPU pools -------------------------------------------------------------------------

def test_gpu_pools_run_the_catalog_vm_size_for_their_accelerator(plan):
    assert pool(plan, "h100")["vmSize"] == "Standard_ND96isr_H100_v5"
    assert pool(plan, "a100")["vmSize"] == "Standard_NC24ads_A100_v4"
    assert pool(plan, "h100")["mode"] == "User"


def test_gpu_pools_autoscale_between_min_and_max_and_may_start_at_zero(plan):
    h100, a100 = pool(plan, "h100"), pool(plan, "a100")
    assert h100["enableAutoScaling"] is True and a100["enableAutoScaling"] is True
    assert (h100["minCount"], h100["maxCount"], h100["count"]) == (0, 2, 0)
    assert (a100["minCount"], a100["maxCount"], a100["count"]) == (1, 3, 1)


def test_gpu_pool_is_tainted_so_cpu_pods_stay_off(plan):
    assert pool(plan, "h100")["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert pool(plan, "a100")["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule"]


def test_gpu_pool_labels_are_the_catalog_labels_verbatim(plan):
    for request in (H100, A100):
        assert pool(plan, request.name)["nodeLabels"] == resolve_pool("azure", request).labels
    assert pool(plan, "a100")["nodeLabels"]["nvidia.com/gpu.deploy.device-plugin"] == "false"
    assert "nvidia.com/gpu.deploy.device-plugin" not in pool(plan, "h100")["nodeLabels"]


def test_every_pool_runs_ubuntu_because_the_gpu_operator_needs_one_supported_os(plan):
    assert pool(plan, "h100")["osSKU"] == "Ubuntu"
    assert pool(plan, "a100")["osSKU"] == "Ubuntu"
    assert cluster(plan)["agentPoolProfiles"][0]["osSKU"] == "Ubuntu"


def test_gpu_pools_follow_the_cluster_minor_and_join_the_node_subnet(plan):
    subnet = plan.one("azure-native:network:Subnet")
    for name in ("h100", "a100"):
        assert pool(plan, name)["orchestratorVersion"] == "1.35"
        assert pool(plan, name)["resourceName"] == "aicp-az"
        assert pool(plan, name)["vnetSubnetID"] == f"{subnet.name}-id"
    assert pool(plan, "h100")["agentPoolName"] == "h100"


def test_regular_gpu_pools_upgrade_without_a_surge_gpu_vm(plan):
    assert pool(plan, "h100")["scaleSetPriority"] == "Regular"
    assert pool(plan, "h100")["upgradeSettings"] == {"maxSurge": "0", "maxUnavailable": "1"}


# --- one component per GPU pool --------------------------------------------------------

@pytest.mark.parametrize("name", ["h100", "a100"])
def test_each_gpu_pool_is_one_component_holding_its_agent_pool(plan, name):
    component = plan.one(GPU_POOL, f"aicp-gpu-{name}")
    assert component.parent == plan.one("aicp:azure:Cluster").urn
    assert plan.children(component) == [plan.one(POOL, f"aicp-gpu-{name}")]


@pytest.mark.parametrize("name", ["h100", "a100"])
def test_agent_pools_keep_the_urns_they_had_as_children_of_the_cluster(plan, name):
    # Stacks made before the pool component existed update them in place, not replace them.
    agent_pool = plan.one(POOL, f"aicp-gpu-{name}")
    # Besides the aliases pulumi-azure-native declares for each of its API versions' types.
    assert {"spec": {"parentUrn": plan.one("aicp:azure:Cluster").urn}} in agent_pool.aliases
    assert f"urn:pulumi:plan::aicp::aicp:azure:Cluster${POOL}::aicp-gpu-{name}" in \
        plan.former_urns(agent_pool)


def test_every_resource_is_found_where_it_was_before_pools_were_components(plan):
    for r in plan.resources:
        if r.type != GPU_POOL:
            assert r.urn.replace(f"{GPU_POOL}$", "") in plan.former_urns(r), r.name
    assert not [a for a in plan.one(POOL, "aicp-system").aliases if a["spec"]["parentUrn"]]


# --- driver ownership ------------------------------------------------------------------

def test_by_default_the_operator_installs_a_hardened_driver_stack(planned):
    # AKS's own install leaves the toolkit accepting NVIDIA_VISIBLE_DEVICES
    # from unprivileged containers (secure_accelerator_access fails), so the default is now
    # the operator, whose toolkit refuses it (aicp.addons.gpu_operator TOOLKIT_HARDENING_ENV).
    plan, seen = planned
    assert {pool(plan, n)["gpuProfile"]["driver"] for n in ("h100", "a100")} == {"None"}
    driver = seen["outputs"].gpu_driver
    assert (driver.owner, driver.root, driver.toolkit_on_host) == \
        ("operator", "/run/nvidia/driver", False)
    assert driver.operator_values["driver"] == {"enabled": True}
    assert driver.operator_values["toolkit"]["enabled"] is True
    assert driver.operator_values["operator"] == {"runtimeClass": "nvidia"}


def test_host_driver_is_aks_install_and_the_operator_leaves_it_alone():
    plan, seen = build(dataclasses.replace(ARGS, gpu_driver="host"))
    assert {pool(plan, n)["gpuProfile"]["driver"] for n in ("h100", "a100")} == {"Install"}
    driver = seen["outputs"].gpu_driver
    assert (driver.owner, driver.root, driver.toolkit_on_host) == ("host", "/", True)
    assert driver.operator_values == {
        "driver": {"enabled": False}, "toolkit": {"enabled": False},
        "operator": {"runtimeClass": "nvidia-container-runtime"}}


def test_driver_root_is_where_the_operator_would_install_it():
    # The DRA driver's nvidiaDriverRoot must equal the operator's hostPaths.driverInstallDir.
    assert GPU_DRIVERS["operator"].root == "/run/nvidia/driver"
    assert GPU_DRIVERS["host"].root == "/"


# --- cluster ---------------------------------------------------------------------------

def test_cluster_has_an_oidc_issuer_and_workload_identity(planned):
    plan, _ = planned
    mc = cluster(plan)
    assert mc["oidcIssuerProfile"] == {"enabled": True}
    assert mc["securityProfile"]["workloadIdentity"] == {"enabled": True}
    component = plan.one("aicp:azure:Cluster")
    assert component.outputs["oidcIssuerUrl"].startswith("https://")


def test_cluster_uses_azure_cni_overlay_with_ranges_outside_the_vnet(plan):
    net = cluster(plan)["networkProfile"]
    assert (net["networkPlugin"], net["networkPluginMode"]) == ("azure", "overlay")
    assert net["podCidr"] == "10.244.0.0/16"
    assert net["serviceCidr"] == "10.96.0.0/16" and net["dnsServiceIP"] == "10.96.0.10"
    vnet = plan.one("azure-native:network:VirtualNetwork").inputs
    assert vnet["addressSpace"]["addressPrefixes"] == ["10.0.0.0/16"]
    assert plan.one("azure-native:network:Subnet").inputs["addressPrefix"] == "10.0.0.0/17"


def test_cluster_runs_the_requested_minor(plan):
    assert cluster(plan)["kubernetesVersion"] == "1.35"


def test_system_pool_autoscales_in_the_zones_and_takes_platform_pods(plan):
    system = cluster(plan)["agentPoolProfiles"]
    assert len(system) == 1
    s = system[0]
    assert (s["mode"], s["vmSize"]) == ("System", "Standard_D8ds_v5")
    assert (s["enableAutoScaling"], s["minCount"], s["maxCount"]) == (True, 2, 4)
    assert s["availabilityZones"] == ["1", "2", "3"]
    assert "nodeTaints" not in s  # no CriticalAddonsOnly: the addons' controllers run here


def test_cluster_autoscaler_profile_and_auto_upgrade(plan):
    mc = cluster(plan)
    assert mc["autoScalerProfile"]["expander"] == "least-waste"
    assert mc["autoUpgradeProfile"] == {"upgradeChannel": "patch",
                                        "nodeOSUpgradeChannel": "NodeImage"}


def test_local_accounts_stay_on_by_default_so_user_credentials_need_no_kubelogin(plan):
    mc = cluster(plan)
    assert mc["disableLocalAccounts"] is False and "aadProfile" not in mc
    creds = [a for t, a in plan.invokes
             if t == "azure-native:containerservice:listManagedClusterUserCredentials"]
    assert creds and "format" not in creds[0]


def test_entra_admin_groups_turn_local_accounts_off_and_ask_for_an_exec_kubeconfig():
    plan, _ = build(dataclasses.replace(ARGS, entra_admin_group_ids=("group-1",)))
    mc = cluster(plan)
    assert mc["disableLocalAccounts"] is True
    assert mc["aadProfile"] == {"managed": True, "enableAzureRBAC": True,
                                "adminGroupObjectIDs": ["group-1"]}
    creds = [a for t, a in plan.invokes
             if t == "azure-native:containerservice:listManagedClusterUserCredentials"]
    assert creds[0]["format"] == "exec"


def test_control_plane_runs_as_its_own_user_assigned_identity(plan):
    identity = plan.one("azure-native:managedidentity:UserAssignedIdentity", "aicp-identity")
    assert identity.inputs["resourceName"] == "aicp-az-control-plane"
    assert cluster(plan)["identity"] == {"type": "UserAssigned",
                                         "userAssignedIdentities": [f"{identity.name}-id"]}


def test_control_plane_may_manage_the_node_subnet_before_the_cluster_exists(plan):
    subnet = plan.one("azure-native:network:Subnet")
    grant = plan.one(ROLE, "aicp-subnet-network")
    assert grant.inputs["scope"] == f"{subnet.name}-id"
    assert grant.inputs["principalId"] == "aicp-identity-principal"
    assert grant.inputs["principalType"] == "ServicePrincipal"
    assert grant.inputs["roleDefinitionId"] == (
        f"/subscriptions/{fakes.AZURE_SUBSCRIPTION}/providers/Microsoft.Authorization/"
        "roleDefinitions/4d97b98b-1d4f-4787-a291-c67834d212e7")
    assert plan.depends_on(plan.one(MC), grant)


def test_public_api_server_with_authorized_ranges():
    plan, _ = build(dataclasses.replace(ARGS, authorized_ip_ranges=("203.0.113.0/24",)))
    assert cluster(plan)["apiServerAccessProfile"] == {"authorizedIPRanges": ["203.0.113.0/24"]}
    plan, _ = build(dataclasses.replace(ARGS, authorized_ip_ranges=("0.0.0.0/0",)))
    assert "apiServerAccessProfile" not in cluster(plan)


def test_private_cluster():
    plan, _ = build(dataclasses.replace(ARGS, private_cluster=True))
    assert cluster(plan)["apiServerAccessProfile"] == {"enablePrivateCluster": True}


def test_existing_resource_group_and_subnet_are_used_as_they_are():
    plan, _ = build(dataclasses.replace(ARGS, resource_group="platform", subnet_id=SUBNET))
    for token in ("azure-native:resources:ResourceGroup", "azure-native:network:VirtualNetwork",
                  "azure-native:network:Subnet"):
        assert plan.of_type(token) == []
    assert cluster(plan)["resourceGroupName"] == "platform"
    assert cluster(plan)["agentPoolProfiles"][0]["vnetSubnetID"] == SUBNET
    assert pool(plan, "h100")["vnetSubnetID"] == SUBNET
    assert plan.one(ROLE, "aicp-subnet-network").inputs["scope"] == SUBNET


def test_a_resource_group_is_created_when_none_is_named(plan):
    group = plan.one("azure-native:resources:ResourceGroup").inputs
    assert group["resourceGroupName"] == "aicp-az-rg" and group["location"] == "eastus2"
    assert cluster(plan)["resourceGroupName"] == "aicp-az-rg"
    assert cluster(plan)["location"] == "eastus2"


# --- Spot and capacity reservations ----------------------------------------------------

def test_spot_pool_bids_up_to_on_demand_and_carries_the_aks_spot_taint():
    spot = dataclasses.replace(H100, capacity_type="spot")
    plan, seen = build(dataclasses.replace(ARGS, gpu_pools=(spot,)))
    p = pool(plan, "h100")
    assert (p["scaleSetPriority"], p["scaleSetEvictionPolicy"], p["spotMaxPrice"]) == \
        ("Spot", "Delete", -1)
    assert p["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule",
                               "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"]
    assert "upgradeSettings" not in p
    assert SPOT_TAINT in seen["outputs"].gpu_pools[0].taints


def test_capacity_reservation_group_is_used_after_the_identity_may_use_it():
    # AKS docs: the control-plane identity needs Contributor on the group's resource group.
    reserved = dataclasses.replace(A100, capacity_reservation_id=CRG)
    second = dataclasses.replace(A100, name="a100b", capacity_reservation_id=CRG)
    plan, _ = build(dataclasses.replace(ARGS, gpu_pools=(reserved, second)))
    p = plan.one(POOL, "aicp-gpu-a100")
    assert p.inputs["capacityReservationGroupID"] == CRG
    grant = plan.one(ROLE, "aicp-reservations-0")  # one grant per resource group
    assert grant.inputs["scope"] == CRG.split("/providers/")[0]
    assert grant.inputs["roleDefinitionId"].endswith("/b24988ac-6180-42a0-ab88-20f7382dd24c")
    assert plan.depends_on(p, grant) and plan.depends_on(plan.one(MC), grant)


def test_no_reservation_grant_without_reservations(plan):
    # The control-plane identity's grants; the model container's identity has its own
    # (tests/components/test_storage_azure.py).
    identity = plan.one("azure-native:managedidentity:UserAssignedIdentity", "aicp-identity")
    assert [r.name for r in plan.of_type(ROLE) if r.parent == identity.urn] == [
        "aicp-subnet-network"]


# --- kubeconfig and contract -----------------------------------------------------------

def test_kubeconfig_is_the_decoded_user_credential_and_stays_secret(plan):
    assert "kubeconfig" in plan.secret_outputs and plan.outputs["kubeconfig"] == "[secret]"
    assert plan.outputs["kubeconfigText"].startswith("apiVersion: v1\nkind: Config\n")
    provider = plan.one("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_paths
    assert provider.inputs["kubeconfig"] == "[secret]"
    component = plan.one("aicp:azure:Cluster")
    assert component.outputs["kubeconfig"] == "[secret]"


def test_the_kubernetes_provider_waits_for_the_cluster(plan):
    assert plan.depends_on(plan.one("pulumi:providers:kubernetes"), plan.one(MC))


def test_only_known_invokes_are_made(plan):
    tokens = {t for t, _ in plan.invokes}
    assert tokens == {"azure-native:authorization:getClientConfig",
                      "azure-native:containerservice:listManagedClusterUserCredentials"}
    assert tokens <= set(fakes.INVOKES)


def test_outputs_are_the_contract_with_the_aks_autoscaler(planned):
    plan, seen = planned
    out = seen["outputs"]
    assert (out.target, out.autoscaler, dict(out.autoscaler_values)) == ("azure", "aks", {})
    assert out.kubernetes_version == "1.35"
    assert [p.name for p in out.gpu_pools] == ["h100", "a100"]
    assert out.gpu_pools[0].machine_type == pool(plan, "h100")["vmSize"]
    assert len(out.ready) == 2  # the cluster and its system AgentPool
    component = plan.one("aicp:azure:Cluster")
    assert component.outputs[CONFORMANCE_OUTPUT] == ["cluster_autoscaling"]


def test_every_resource_is_a_child_of_the_component(plan):
    component = plan.one("aicp:azure:Cluster")
    assert {r.urn for r in plan.descendants(component)} == \
        {r.urn for r in plan.resources if r is not component}


def test_azure_resources_carry_tags_azure_accepts(plan):
    tagged = [r for r in plan.resources if r.type.startswith("azure-native:")
              and r.type != ROLE]
    assert tagged
    for r in tagged:
        if "tags" in r.inputs:
            assert r.inputs["tags"]["aicp-cluster"] == "aicp-az"
            assert not any("/" in k for k in r.inputs["tags"])


def test_the_target_declares_no_kubernetes_objects(plan):
    # Only the provider: addons declare the objects (and validate them against schemas).
    assert [r.type for r in plan.resources if r.type.startswith("kubernetes:")] == []


# --- argument checks -------------------------------------------------------------------

@pytest.mark.parametrize(("change", "path", "reason"), [
    ({"zones": ("1", "eastus2-1")}, "zones[1]", "'eastus2-1' is not an Azure zone"),
    ({"pod_cidr": "10.0.128.0/17"}, "vnet_cidr", "'10.0.0.0/16' overlaps the AKS pod range"),
    ({"service_cidr": "10.244.0.0/24"}, "service_cidr", "'10.244.0.0/24' overlaps the pod"),
    ({"vnet_cidr": "10.96.0.0/12"}, "vnet_cidr", "'10.96.0.0/12' overlaps the AKS service"),
    ({"autoscaler_expander": "price"}, "autoscaler_expander", "'price' is not offered by AKS"),
    ({"tags": {"team/owner": "ml"}}, 'tags["team/owner"]', "Azure tag names cannot contain"),
    ({"system_min_nodes": 0}, "system_min_nodes", "0 must be at least 1"),
    ({"private_cluster": True, "authorized_ip_ranges": ("203.0.113.0/24",)},
     "authorized_ip_ranges", "a private cluster has no public endpoint"),
    ({"gpu_pools": (H100, dataclasses.replace(A100, name="h-100"))}, "gpu_pools[1].name",
     "'h-100' and gpu_pools[0].name 'h100' both become AKS pool name 'h100'"),
    ({"gpu_pools": (dataclasses.replace(A100, name="system"),)}, "gpu_pools[0].name",
     "'system' is the name of the AKS system pool"),
    ({"gpu_pools": (dataclasses.replace(A100, name="1gpu"),)}, "gpu_pools[0].name",
     "'1gpu' gives no AKS pool name"),
    ({"gpu_pools": (dataclasses.replace(H100, min_nodes=3),)}, "gpu_pools[0].min_nodes",
     "3 is more than max_nodes 2"),
    ({"gpu_pools": (dataclasses.replace(A100, min_nodes=0),)}, "gpu_pools[0].min_nodes",
     "0 cannot scale up for DRA claims on azure"),
    ({"gpu_pools": (dataclasses.replace(A100, capacity_reservation_id="h100-crg"),)},
     "gpu_pools[0].capacity_reservation_id",
     "'h100-crg' is not an Azure capacity reservation id"),
    ({"gpu_pools": (dataclasses.replace(A100, capacity_type="spot",
                                        capacity_reservation_id=CRG),)},
     "gpu_pools[0].capacity_reservation_id", "capacity reservations are on-demand"),
])
def test_bad_arguments_are_refused_before_anything_is_declared(change, path, reason):
    with pytest.raises(InputPropertyError) as err:
        dataclasses.replace(ARGS, **change)
    assert err.value.property_path == path
    assert err.value.reason.startswith(reason), err.value.reason


def test_a_byo_subnet_is_not_checked_against_the_default_vnet_range():
    args = dataclasses.replace(ARGS, subnet_id=SUBNET, vnet_cidr="10.244.0.0/16")
    assert args.subnet_id == SUBNET


def test_aks_pool_names_are_short_lowercase_alphanumerics():
    assert agent_pool_name("h100-spot") == "h100spot"
    assert agent_pool_name("a-very-long-pool-name") == "averylongpoo"
    with pytest.raises(ValueError):
        agent_pool_name("1gpu")


def test_the_example_azure_stack_config_is_valid():
    from aicp.cli.plan import stack_config
    from aicp.stacks.config import parse

    raw = stack_config(REPO, "azure")
    cfg = parse({k.split(":", 1)[1]: v for k, v in raw.items()})
    # AKS offers 1.37 (checklist 1.37, issue #25).
    assert cfg.target == "azure" and cfg.kubernetes_version == "1.37"
    pools = {p.name: p for p in cfg.gpu_pools}
    # Both DRA (one allocator under the GPU Operator: its validator waits for
    # nvidia.com/gpu on every GPU node, gpu-operator v26.7.0
    # cmd/nvidia-validator/main.go validateGPUResource), so both keep a node.
    assert (pools["t4"].min_nodes, pools["t4"].max_nodes) == (1, 3)
    assert (pools["t4-spot"].min_nodes, pools["t4-spot"].max_nodes) == (1, 3)
    assert {p.allocator for p in cfg.gpu_pools} == {"dra"}
    assert pools["t4-spot"].capacity_type == "spot"
    AksClusterArgs(cluster_name=cfg.cluster_name, kubernetes_version=cfg.kubernetes_version,
                   location=cfg.region or "", zones=cfg.zones,
                   gpu_pools=tuple(GpuPoolRequest(name=p.name, accelerator=p.accelerator,
                                                  min_nodes=p.min_nodes,
                                                  max_nodes=p.max_nodes,
                                                  allocator=p.allocator)
                                   for p in cfg.gpu_pools))


# --- a ManagedCluster update must not carry pool changes (pulumi-azure-native#2719) --

def test_cluster_updates_never_carry_agent_pool_changes(plan):
    # AKS refuses pool changes in a ManagedCluster PUT ("Adding agent pools to an existing
    # cluster is not allowed through managed cluster operations", pulumi-azure-native#2719,
    # #579): after creation the inline profile is ignored.
    mc = plan.one("azure-native:containerservice:ManagedCluster")
    assert mc.ignore_changes == ["agentPoolProfiles"]
    assert [p["name"] for p in mc.inputs["agentPoolProfiles"]] == ["system"]


def test_system_pool_changes_go_through_the_per_pool_api(plan):
    system = plan.one(POOL, "aicp-system")
    inline = plan.one("azure-native:containerservice:ManagedCluster").inputs[
        "agentPoolProfiles"][0]
    assert system.inputs["agentPoolName"] == inline["name"] == "system"
    for key in ("mode", "vmSize", "minCount", "maxCount", "orchestratorVersion", "nodeLabels"):
        assert system.inputs[key] == inline[key], key
    # AKS will not delete the last System pool; the cluster's deletion removes it.
    assert system.retain_on_delete is True
    assert "count" in system.ignore_changes


def test_gpu_pools_are_created_after_the_system_pool_operation(plan):
    system = plan.one(POOL, "aicp-system")
    for name in ("h100", "a100"):
        assert plan.depends_on(plan.one(POOL, f"aicp-gpu-{name}"), system)
