"""The GCP target, as Pulumi would send it: a private GKE cluster whose GPU pools get their
driver from Google's COS installer and scale from zero with GKE's autoscaler."""

from __future__ import annotations

import json
from dataclasses import replace

import pulumi
import pytest
from pulumi.errors import InputPropertyError

from aicp.cli import fakes, offline
from aicp.components.contract import CONFORMANCE_OUTPUT, GpuPoolRequest
from tests.charts import unknown_value_paths, upstream_values
from tests.schemas import Validator

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
GPU_POOL = "aicp:gcp:GpuPool"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
NETWORK = "gcp:compute/network:Network"
DRIVER_ROOT = "/home/kubernetes/bin/nvidia"
TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]

POOLS = (
    GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                   allocator="device-plugin", capacity_reservation_id="a3-reservation"),
    GpuPoolRequest(name="l4", accelerator="l4", min_nodes=1, max_nodes=3, allocator="dra",
                   capacity_type="spot"),
)
BASE = {"cluster_name": "aicp", "kubernetes_version": "1.35", "project": "my-proj",
        "region": "us-central1", "zones": ("us-central1-a", "us-central1-c"),
        "gpu_pools": POOLS, "labels": {"team": "ml"}}


def _plan(**overrides) -> offline.Plan:
    def program() -> None:
        from aicp.components.gcp import GkeCluster, GkeClusterArgs

        cluster = GkeCluster("c", GkeClusterArgs(**{**BASE, **overrides}))
        out = cluster.outputs
        pulumi.export("kubeconfigText", pulumi.Output.unsecret(out.kubeconfig))
        pulumi.export("contract", {
            "target": out.target, "name": out.name, "autoscaler": out.autoscaler,
            "autoscalerValues": out.autoscaler_values, "features": out.features,
            "kubernetesVersion": out.kubernetes_version,
            "driver": {"owner": out.gpu_driver.owner, "root": out.gpu_driver.root,
                       "toolkitOnHost": out.gpu_driver.toolkit_on_host,
                       "values": out.gpu_driver.operator_values},
            "pools": [p.export() for p in out.gpu_pools],
            "ready": [r.urn for r in out.ready], "provider": out.provider.urn})

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


@pytest.fixture(scope="module")
def byo_plan() -> offline.Plan:
    # An H100 type without GPUDirect: a GPUDirect pool makes its own VPCs beside any subnetwork
    # (tests/components/test_fabric.py), and this plan shows that nothing else is made.
    pools = (replace(POOLS[0], instance_type="a3-highgpu-1g"), POOLS[1])
    return _plan(zones=(), gpu_pools=pools,
                 subnetwork="projects/net/regions/us-central1/subnetworks/shared",
                 endpoint_public_access=False, database_encryption_key=(
                     "projects/my-proj/locations/us-central1/keyRings/gke/cryptoKeys/secrets"),
                 deletion_protection=False, release_channel="STABLE")


def gpu_pool(plan: offline.Plan, pool: str) -> dict:
    return plan.one(NODE_POOL, f"c-gpu-{pool}").inputs


def contract(plan: offline.Plan) -> dict:
    return plan.outputs["contract"]


# --- GPU node pools ------------------------------------------------------------------------

@pytest.mark.parametrize("pool,machine,accelerator,count", [
    ("h100", "a3-highgpu-8g", "nvidia-h100-80gb", 8),
    ("l4", "g2-standard-8", "nvidia-l4", 1),
])
def test_gpu_pools_attach_the_catalog_accelerator_to_the_catalog_machine_type(
        plan, pool, machine, accelerator, count):
    config = gpu_pool(plan, pool)["nodeConfig"]
    assert config["machineType"] == machine
    [guest] = config["guestAccelerators"]
    assert (guest["type"], guest["count"]) == (accelerator, count)
    assert config["imageType"] == "COS_CONTAINERD"


@pytest.mark.parametrize("pool", ["h100", "l4"])
def test_gpu_pools_are_tainted_so_cpu_pods_stay_off(plan, pool):
    assert gpu_pool(plan, pool)["nodeConfig"]["taints"] == TAINT


def test_gpu_pools_are_labelled_from_the_catalog_with_gke_device_plugin_off(plan):
    assert gpu_pool(plan, "h100")["nodeConfig"]["labels"] == {
        "aicp.dev/gpu-pool": "h100", "aicp.dev/accelerator": "h100",
        "aicp.dev/gpu-allocator": "device-plugin", "nvidia.com/gpu.present": "true",
        "gke-no-default-nvidia-gpu-device-plugin": "true", "aicp.dev/fabric": "gpudirect-tcpx"}
    # DRA pool: the operator's device plugin is off too, and GKE's autoscaler models DRA.
    assert gpu_pool(plan, "l4")["nodeConfig"]["labels"] == {
        "aicp.dev/gpu-pool": "l4", "aicp.dev/accelerator": "l4", "aicp.dev/gpu-allocator": "dra",
        "nvidia.com/gpu.present": "true", "nvidia.com/gpu.deploy.device-plugin": "false",
        "aicp.dev/dra-kubelet-plugin": "true",
        "gke-no-default-nvidia-gpu-device-plugin": "true",
        "cloud.google.com/gke-nvidia-gpu-dra-driver": "true"}


def test_contract_pool_labels_are_exactly_what_the_nodes_carry_from_the_catalog(plan):
    for pool in contract(plan)["pools"]:
        node_labels = gpu_pool(plan, pool["name"])["nodeConfig"]["labels"]
        assert pool["labels"].items() <= node_labels.items()
        assert pool["taints"] == [{"key": "nvidia.com/gpu", "value": "present",
                                   "effect": "NoSchedule"}]


# initial_node_count is per zone: l4 (min 1) over two zones used to start two GPU VMs.
@pytest.mark.parametrize("pool,low,high,initial", [("h100", 0, 2, 0), ("l4", 1, 3, 0)])
def test_gke_autoscales_each_gpu_pool_between_its_total_bounds_from_zero(
        plan, pool, low, high, initial):
    inputs = gpu_pool(plan, pool)
    assert inputs["autoscaling"] == {
        "totalMinNodeCount": low, "totalMaxNodeCount": high, "locationPolicy": "ANY"}
    assert inputs["initialNodeCount"] == initial
    assert "nodeCount" not in inputs


def test_spot_pool_asks_for_spot_vms_and_others_for_on_demand(plan):
    assert gpu_pool(plan, "l4")["nodeConfig"]["spot"] is True
    assert gpu_pool(plan, "h100")["nodeConfig"]["spot"] is False


def test_capacity_reservation_is_consumed_by_name(plan):
    assert gpu_pool(plan, "h100")["nodeConfig"]["reservationAffinity"] == {
        "consumeReservationType": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name", "values": ["a3-reservation"]}
    assert "reservationAffinity" not in gpu_pool(plan, "l4")["nodeConfig"]


@pytest.mark.parametrize("name", ["c-system", "c-gpu-h100", "c-gpu-l4"])
def test_every_pool_is_shielded_repaired_upgraded_and_hides_node_credentials(plan, name):
    inputs = plan.one(NODE_POOL, name).inputs
    config = inputs["nodeConfig"]
    assert config["shieldedInstanceConfig"] == {
        "enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert config["serviceAccount"] == f"aicp-nodes@{fakes.GCP_PROJECT}.iam.gserviceaccount.com"
    assert inputs["management"] == {"autoRepair": True, "autoUpgrade": True}
    # a3-highgpu-8g (h100) gets GPUDirect-TCPX: compact placement in the first zone.
    zones = ["us-central1-a"] if name == "c-gpu-h100" else ["us-central1-a", "us-central1-c"]
    assert inputs["nodeLocations"] == zones
    assert inputs["cluster"] == "aicp" and inputs["location"] == "us-central1"


def test_gpu_pools_upgrade_without_a_surge_gpu_node(plan):
    assert gpu_pool(plan, "h100")["upgradeSettings"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_system_pool_is_untainted_labelled_system_and_autoscaled(plan):
    system = plan.one(NODE_POOL, "c-system").inputs
    assert "taints" not in system["nodeConfig"]
    assert system["nodeConfig"]["labels"] == {"aicp.dev/pool": "system"}
    assert system["nodeConfig"]["machineType"] == "e2-standard-8"
    assert system["autoscaling"] == {
        "totalMinNodeCount": 2, "totalMaxNodeCount": 4, "locationPolicy": "BALANCED"}
    assert "guestAccelerators" not in system["nodeConfig"]


# --- one component per GPU pool ------------------------------------------------------------

@pytest.mark.parametrize("pool", ["h100", "l4"])
def test_each_gpu_pool_is_one_component_holding_its_node_pool(plan, pool):
    component = plan.one(GPU_POOL, f"c-gpu-{pool}")
    assert component.parent == plan.one("aicp:gcp:Cluster").urn
    node_pool = plan.one(NODE_POOL, f"c-gpu-{pool}")
    # a3-highgpu-8g (h100) has GPUDirect-TCPX: the pool also holds its four GPU NIC VPCs.
    vpcs = [plan.one(NETWORK, f"c-gpu-h100-h100-nic-{i}") for i in range(4)] \
        if pool == "h100" else []
    assert sorted(r.urn for r in plan.children(component)) == sorted(
        r.urn for r in (node_pool, *vpcs))


@pytest.mark.parametrize("pool", ["h100", "l4"])
def test_pool_node_pools_keep_the_urns_they_had_as_children_of_the_cluster(plan, pool):
    # Stacks made before the pool component existed update them in place, not replace them.
    node_pool = plan.one(NODE_POOL, f"c-gpu-{pool}")
    assert node_pool.aliases == [{"spec": {"parentUrn": plan.one("aicp:gcp:Cluster").urn}}]
    assert f"urn:pulumi:plan::aicp::aicp:gcp:Cluster${NODE_POOL}::c-gpu-{pool}" in \
        plan.former_urns(node_pool)


def test_every_resource_is_found_where_it_was_before_pools_were_components(plan, byo_plan):
    for p in (plan, byo_plan):
        for r in p.resources:
            if r.name.startswith("c-gpu-h100-h100-nic-"):
                # Made with the GPUDirect fabric, after pools were components: no alias.
                assert r.aliases == [], r.name
            elif r.type != GPU_POOL:
                assert r.urn.replace(f"{GPU_POOL}$", "") in p.former_urns(r), r.name
    assert plan.one(NODE_POOL, "c-system").aliases == []


# --- GPU driver ownership ----------------------------------------------------------------

def test_gke_installs_no_driver_on_any_gpu_pool_whatever_its_allocator(plan):
    for name in ("h100", "l4"):
        [guest] = gpu_pool(plan, name)["nodeConfig"]["guestAccelerators"]
        assert guest["gpuDriverInstallationConfig"] == {
            "gpuDriverVersion": "INSTALLATION_DISABLED"}
        labels = gpu_pool(plan, name)["nodeConfig"]["labels"]
        assert labels["gke-no-default-nvidia-gpu-device-plugin"] == "true"


def test_contract_says_the_host_driver_lives_where_the_cos_installer_puts_it(plan):
    driver = contract(plan)["driver"]
    assert driver["owner"] == "host" and driver["root"] == DRIVER_ROOT
    assert driver["toolkitOnHost"] is False  # the GPU Operator installs the toolkit
    values = driver["values"]
    assert values["driver"] == {"enabled": False}
    assert values["hostPaths"]["driverInstallDir"] == DRIVER_ROOT
    assert values["toolkit"]["installDir"] == DRIVER_ROOT
    assert {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"} in values["toolkit"]["env"]


def test_operator_values_exist_in_the_pinned_gpu_operator_chart(plan):
    upstream = upstream_values("gpu-operator-v26.7.0")
    assert unknown_value_paths(contract(plan)["driver"]["values"], upstream) == []


def test_driver_installer_runs_only_on_gpu_nodes_without_a_gke_installed_driver(plan):
    installer = plan.one(DAEMONSET).inputs
    assert installer["metadata"]["namespace"] == "kube-system"
    spec = installer["spec"]["template"]["spec"]
    [term] = spec["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "cloud.google.com/gke-accelerator", "operator": "Exists"},
        {"key": "gke-no-default-nvidia-gpu-device-plugin", "operator": "In",
         "values": ["true"]},
        {"key": "cloud.google.com/gke-gpu-driver-version", "operator": "DoesNotExist"}]
    assert spec["tolerations"] == [{"operator": "Exists"}]
    [init] = spec["initContainers"]
    assert init["image"] == "cos-nvidia-installer:fixed"
    assert init["imagePullPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in init["env"]}
    host_dir = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    assert env["NVIDIA_INSTALL_DIR_HOST"] == host_dir["nvidia-install-dir-host"] == \
        contract(plan)["driver"]["root"]


def test_driver_installer_validates_and_goes_through_the_cluster_provider(plan):
    installer = plan.one(DAEMONSET)
    assert Validator("1.35").errors(installer.inputs) == []
    assert installer.provider.startswith(plan.one("pulumi:providers:kubernetes").urn)


def test_no_gpu_pool_means_no_driver_installer():
    assert _plan(gpu_pools=()).of_type(DAEMONSET) == []


# --- control plane -------------------------------------------------------------------------

def test_cluster_follows_the_release_channel_from_the_requested_minor(plan, byo_plan):
    cluster = plan.one(CLUSTER).inputs
    assert cluster["releaseChannel"] == {"channel": "REGULAR"}
    assert cluster["minMasterVersion"] == "1.35"
    assert (cluster["name"], cluster["location"]) == ("aicp", "us-central1")
    assert byo_plan.one(CLUSTER).inputs["releaseChannel"] == {"channel": "STABLE"}


def test_default_node_pool_is_removed_and_never_runs_as_the_default_account(plan):
    cluster = plan.one(CLUSTER).inputs
    assert cluster["removeDefaultNodePool"] is True and cluster["initialNodeCount"] == 1
    assert cluster["nodeConfig"]["serviceAccount"].startswith("aicp-nodes@")


def test_workload_identity_uses_the_project_pool(plan):
    assert plan.one(CLUSTER).inputs["workloadIdentityConfig"] == {
        "workloadPool": "my-proj.svc.id.goog"}
    assert plan.one("aicp:gcp:Cluster").outputs["workloadPool"] == "my-proj.svc.id.goog"


def test_nodes_are_private_and_shielded_on_dataplane_v2(plan):
    cluster = plan.one(CLUSTER).inputs
    assert cluster["privateClusterConfig"] == {
        "enablePrivateNodes": True, "enablePrivateEndpoint": False,
        "masterIpv4CidrBlock": "172.16.0.0/28"}
    assert cluster["enableShieldedNodes"] is True
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"
    assert cluster["networkingMode"] == "VPC_NATIVE"


def test_public_endpoint_admits_only_the_authorized_cidrs(plan):
    assert plan.one(CLUSTER).inputs["masterAuthorizedNetworksConfig"] == {
        "cidrBlocks": [{"cidrBlock": "0.0.0.0/0", "displayName": "aicp-0"}]}


def test_private_endpoint_when_public_access_is_off(byo_plan):
    cluster = byo_plan.one(CLUSTER).inputs
    assert cluster["privateClusterConfig"]["enablePrivateEndpoint"] is True
    assert cluster["masterAuthorizedNetworksConfig"] == {"cidrBlocks": []}


def test_gke_installs_the_gateway_api_crds_and_the_contract_says_so(plan):
    assert plan.one(CLUSTER).inputs["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}
    assert contract(plan)["features"]["gatewayApiCrdsManaged"] is True


def test_secrets_are_encrypted_with_the_given_kms_key_only_when_asked(plan, byo_plan):
    assert "databaseEncryption" not in plan.one(CLUSTER).inputs
    assert byo_plan.one(CLUSTER).inputs["databaseEncryption"] == {
        "state": "ENCRYPTED",
        "keyName": "projects/my-proj/locations/us-central1/keyRings/gke/cryptoKeys/secrets"}


def test_deletion_protection_is_on_unless_turned_off(plan, byo_plan):
    assert plan.one(CLUSTER).inputs["deletionProtection"] is True
    assert byo_plan.one(CLUSTER).inputs["deletionProtection"] is False


def test_node_service_account_has_only_the_node_roles(plan):
    members = plan.of_type("gcp:projects/iAMMember:IAMMember")
    email = f"aicp-nodes@{fakes.GCP_PROJECT}.iam.gserviceaccount.com"
    assert {m.inputs["member"] for m in members} == {f"serviceAccount:{email}"}
    assert {m.inputs["project"] for m in members} == {"my-proj"}
    assert sorted(m.inputs["role"] for m in members) == [
        "roles/artifactregistry.reader", "roles/logging.logWriter",
        "roles/monitoring.metricWriter", "roles/monitoring.viewer",
        "roles/stackdriver.resourceMetadata.writer"]


# --- network ------------------------------------------------------------------------------

def test_vpc_native_subnetwork_carries_the_pod_and_service_ranges(plan):
    subnet = plan.one("gcp:compute/subnetwork:Subnetwork", "c-nodes").inputs
    assert subnet["ipCidrRange"] == "10.0.0.0/20"
    assert subnet["privateIpGoogleAccess"] is True
    assert subnet["secondaryIpRanges"] == [
        {"rangeName": "pods", "ipCidrRange": "10.0.128.0/17"},
        {"rangeName": "services", "ipCidrRange": "10.0.16.0/20"}]
    cluster = plan.one(CLUSTER).inputs
    assert cluster["ipAllocationPolicy"] == {
        "clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"}
    assert cluster["subnetwork"].endswith("/regions/us-central1/subnetworks/aicp-nodes")
    assert cluster["network"].endswith("/global/networks/aicp")
    assert plan.one("gcp:compute/network:Network", "c-vpc").inputs["autoCreateSubnetworks"] is False


def test_private_nodes_reach_registries_through_cloud_nat(plan):
    nat = plan.one("gcp:compute/routerNat:RouterNat").inputs
    assert nat["router"] == "aicp-router" and nat["region"] == "us-central1"
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


def test_existing_subnetwork_is_used_and_no_network_is_created(byo_plan):
    # Only the webhook firewall rule, on the network the subnetwork belongs to.
    created = [r for r in byo_plan.resources if r.type.startswith("gcp:compute/")]
    assert [r.type for r in created] == ["gcp:compute/firewall:Firewall"]
    assert created[0].inputs["network"].endswith("/global/networks/plan-network")
    cluster = byo_plan.one(CLUSTER).inputs
    assert cluster["subnetwork"] == "projects/net/regions/us-central1/subnetworks/shared"
    assert "network" not in cluster
    assert "nodeLocations" not in byo_plan.one(NODE_POOL, "c-gpu-l4").inputs


# --- kubeconfig, provider, contract --------------------------------------------------------

def test_kubeconfig_stays_secret_and_authenticates_with_gke_gcloud_auth_plugin(plan):
    provider = plan.one("pulumi:providers:kubernetes")
    assert provider.secret_paths == ["kubeconfig"]
    assert provider.inputs["enableServerSideApply"] == "true"
    assert plan.one("aicp:gcp:Cluster").outputs["kubeconfig"] == offline.REDACTED
    config = json.loads(plan.outputs["kubeconfigText"])
    [user] = config["users"]
    assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert user["user"]["exec"]["provideClusterInfo"] is True
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "https://203.0.113.10"
    assert cluster["cluster"]["certificate-authority-data"] == fakes.FAKE_CA
    assert config["current-context"] == "gke_my-proj_us-central1_aicp"


def test_kubernetes_provider_and_addons_wait_for_the_system_pool(plan):
    system = plan.one(NODE_POOL, "c-system")
    assert plan.depends_on(plan.one("pulumi:providers:kubernetes"), system)
    firewall = plan.one("gcp:compute/firewall:Firewall", "c-master-webhooks")
    assert contract(plan)["ready"] == [system.urn, firewall.urn]


def test_contract_says_gke_scales_the_pools_so_no_cluster_autoscaler_is_installed(plan):
    c = contract(plan)
    assert (c["target"], c["name"], c["kubernetesVersion"]) == ("gcp", "aicp", "1.35")
    assert c["autoscaler"] == "gke" and c["autoscalerValues"] == {}
    assert [(p["name"], p["machineType"], p["gpusPerNode"], p["minNodes"], p["maxNodes"])
            for p in c["pools"]] == [("h100", "a3-highgpu-8g", 8, 0, 2),
                                     ("l4", "g2-standard-8", 1, 1, 3)]


def test_component_serves_cluster_autoscaling_through_gke(plan):
    outputs = plan.one("aicp:gcp:Cluster").outputs
    assert outputs[CONFORMANCE_OUTPUT] == ["cluster_autoscaling"]
    assert outputs["clusterName"] == "aicp"


def test_every_gcp_resource_is_a_child_on_the_component_project_provider(plan):
    component = plan.one("aicp:gcp:Cluster")
    provider = plan.one("pulumi:providers:gcp")
    assert (provider.inputs["project"], provider.inputs["region"]) == ("my-proj", "us-central1")
    assert json.loads(provider.inputs["defaultLabels"]) == {"team": "ml", "aicp-cluster": "aicp"}
    inside = {r.urn for r in plan.descendants(component)}
    for r in plan.resources:
        if r.type.startswith("gcp:"):
            assert r.urn in inside, r.name
            assert r.provider.startswith(provider.urn), r.name


def test_every_invoke_is_answered_by_the_fakes(plan, byo_plan):
    tokens = {token for token, _ in plan.invokes + byo_plan.invokes}
    assert tokens <= set(fakes.INVOKES)


# --- args ----------------------------------------------------------------------------------

@pytest.mark.parametrize("change,path,reason", [
    ({"project": ""}, "project", "a GCP project id is required"),
    ({"region": ""}, "region", "required for target gcp"),
    ({"system_min_nodes": 5}, "system_min_nodes", "5 is more than system_max_nodes 4"),
    ({"vpc_cidr": "10.0.0.0/24"}, "vpc_cidr", "'10.0.0.0/24' is too small on gcp: give /20"),
    ({"vpc_cidr": "10.0.0.0/33"}, "vpc_cidr", "'10.0.0.0/33' is not an IPv4 CIDR block"),
    ({"labels": {"Team": "ml"}}, 'labels["Team"]', "GCP labels are lowercase letters"),
    ({"gpu_pools": (GpuPoolRequest(name="l4", accelerator="l4", min_nodes=3, max_nodes=2),)},
     "gpu_pools[0].min_nodes", "3 is more than max_nodes 2"),
    ({"gpu_pools": POOLS + (POOLS[0],)}, f"gpu_pools[{len(POOLS)}].name",
     f"{POOLS[0].name!r} is used by another pool"),
    ({"gpu_pools": (GpuPoolRequest(name="l40s", accelerator="l40s", max_nodes=2),)},
     "gpu_pools[0].accelerator", "'l40s' is not one of h100, h200, a100, l4 on gcp"),
    ({"gpu_pools": (GpuPoolRequest(name="l4", accelerator="l4", max_nodes=2,
                                   capacity_type="spot", capacity_reservation_id="res"),)},
     "gpu_pools[0].capacity_reservation_id",
     "capacity reservations are on-demand; drop it or set gpu_pools[0].capacity_type"),
])
def test_args_refuse_what_gke_cannot_build(change, path, reason):
    from aicp.components.gcp import GkeClusterArgs

    with pytest.raises(InputPropertyError) as err:
        GkeClusterArgs(**{**BASE, **change})
    assert err.value.property_path == path
    assert err.value.reason.startswith(reason), err.value.reason


# --- what GKE rejects or leaves broken although mocks accept it ---------------------

def test_no_gpu_pool_starts_more_nodes_than_its_minimum(plan):
    # pulumi-gcp 10.2 container.NodePool initial_node_count: "the number of nodes per zone".
    zones = len(BASE["zones"])
    for request in POOLS:
        assert gpu_pool(plan, request.name)["initialNodeCount"] * zones <= request.min_nodes


def test_system_pool_starts_with_a_node_in_every_zone(plan):
    assert plan.one(NODE_POOL, "c-system").inputs["initialNodeCount"] == 1


def test_control_plane_reaches_the_webhook_ports_of_private_nodes(plan):
    # GKE private clusters: the control plane reaches nodes on 443 and 10250 only ("Adding
    # firewall rules for specific use cases"); Kueue/JobSet/KubeRay 9443, Kueue visibility
    # 8082, prometheus-adapter 6443, Istio 15017 need a rule from the master CIDR.
    rule = plan.one("gcp:compute/firewall:Firewall", "c-master-webhooks").inputs
    assert rule["direction"] == "INGRESS"
    assert rule["sourceRanges"] == ["172.16.0.0/28"]
    assert rule["allows"] == [{"protocol": "tcp", "ports": ["6443", "8082", "9443", "15017"]}]
    assert rule["network"].endswith("/global/networks/aicp")  # the cluster's own VPC
    assert rule["targetServiceAccounts"] == [
        f"aicp-nodes@{fakes.GCP_PROJECT}.iam.gserviceaccount.com"]


def test_project_apis_are_enabled_before_anything_uses_them(plan):
    apis = {r.inputs["service"]: r for r in plan.of_type("gcp:projects/service:Service")}
    assert set(apis) == {"container.googleapis.com", "compute.googleapis.com",
                         "iam.googleapis.com"}
    for api in apis.values():
        assert api.inputs["disableOnDestroy"] is False  # other workloads may use them
    assert plan.depends_on(plan.one(CLUSTER), apis["container.googleapis.com"])
    assert plan.depends_on(plan.one("gcp:compute/network:Network", "c-vpc"),
                           apis["compute.googleapis.com"])
    assert plan.depends_on(plan.one("gcp:serviceaccount/account:Account"),
                           apis["iam.googleapis.com"])


def test_h200_pools_boot_from_hyperdisk_others_from_pd_balanced():
    # Compute Engine GPU machine types, A3 Ultra: Hyperdisk only (pd-* boot disks rejected).
    plan = _plan(gpu_pools=(GpuPoolRequest(name="h200", accelerator="h200", max_nodes=1),
                            GpuPoolRequest(name="l4", accelerator="l4", max_nodes=1)))
    assert gpu_pool(plan, "h200")["nodeConfig"]["machineType"] == "a3-ultragpu-8g"
    assert gpu_pool(plan, "h200")["nodeConfig"]["diskType"] == "hyperdisk-balanced"
    assert gpu_pool(plan, "l4")["nodeConfig"]["diskType"] == "pd-balanced"


def test_contract_tells_addons_that_critical_pods_need_a_scoped_quota(plan):
    from aicp.components.contract import CRITICAL_PODS_NEED_QUOTA
    assert contract(plan)["features"][CRITICAL_PODS_NEED_QUOTA] is True


def test_stack_impersonation_reaches_the_provider_and_the_kubeconfig():
    # An explicit gcp.Provider ignores gcp:impersonateServiceAccount unless passed through;
    # the auth plugin runs gcloud, which reads CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT.
    sa = "deployer@my-proj.iam.gserviceaccount.com"

    def program() -> None:
        from aicp.components.gcp import GkeCluster, GkeClusterArgs
        cluster = GkeCluster("c", GkeClusterArgs(**BASE))
        pulumi.export("kubeconfigText", pulumi.Output.unsecret(cluster.outputs.kubeconfig))

    plan = offline.run(program, {"gcp:impersonateServiceAccount": sa})
    assert plan.one("pulumi:providers:gcp").inputs["impersonateServiceAccount"] == sa
    user = json.loads(plan.outputs["kubeconfigText"])["users"][0]["user"]["exec"]
    assert user["env"] == [{"name": "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT", "value": sa}]


def test_without_impersonation_the_caller_credentials_are_used(plan):
    assert "impersonateServiceAccount" not in plan.one("pulumi:providers:gcp").inputs
    user = json.loads(plan.outputs["kubeconfigText"])["users"][0]["user"]["exec"]
    assert "env" not in user


# --- Dynamic Workload Scheduler ------------------------------------------------------------
# GKE "Run a large-scale workload with flex-start with queued provisioning": gcloud container
# node-pools create --flex-start --enable-queued-provisioning --enable-autoscaling
# --num-nodes=0 --location-policy=ANY --reservation-affinity=none --no-enable-autorepair.

DWS_POOLS = (
    GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=4,
                   allocator="device-plugin", capacity_type="queued-provisioning"),
    GpuPoolRequest(name="l4", accelerator="l4", min_nodes=0, max_nodes=3,
                   allocator="device-plugin", capacity_type="flex-start"),
)


@pytest.fixture(scope="module")
def dws_plan() -> offline.Plan:
    return _plan(gpu_pools=DWS_POOLS)


def test_queued_provisioning_pool_has_the_flags_gke_documents(dws_plan):
    pool = gpu_pool(dws_plan, "h100")
    assert pool["queuedProvisioning"] == {"enabled": True}
    assert pool["nodeConfig"]["flexStart"] is True
    assert pool["nodeConfig"]["reservationAffinity"] == {
        "consumeReservationType": "NO_RESERVATION"}
    assert pool["management"]["autoRepair"] is False
    assert pool["autoscaling"]["locationPolicy"] == "ANY"
    assert pool["autoscaling"]["totalMinNodeCount"] == 0 and pool["initialNodeCount"] == 0


def test_flex_start_pool_is_flex_start_vms_without_queued_provisioning(dws_plan):
    pool = gpu_pool(dws_plan, "l4")
    assert pool["nodeConfig"]["flexStart"] is True
    assert "queuedProvisioning" not in pool
    assert pool["nodeConfig"]["reservationAffinity"] == {
        "consumeReservationType": "NO_RESERVATION"}
    assert pool["management"]["autoRepair"] is True


def test_on_demand_and_spot_pools_are_not_flex_start(plan):
    for name in ("h100", "l4"):
        pool = gpu_pool(plan, name)
        assert "flexStart" not in pool["nodeConfig"] and "queuedProvisioning" not in pool
    assert gpu_pool(plan, "l4")["nodeConfig"]["spot"] is True


def test_a_queued_provisioning_pool_that_keeps_nodes_is_refused():
    from aicp.components.gcp import GkeClusterArgs

    pool = GpuPoolRequest(name="h100", accelerator="h100", min_nodes=1, max_nodes=4,
                          allocator="device-plugin", capacity_type="queued-provisioning")
    with pytest.raises(InputPropertyError) as err:
        GkeClusterArgs(**{**BASE, "gpu_pools": (pool,)})
    assert err.value.property_path == "gpu_pools[0].min_nodes"
    assert err.value.reason.startswith("1: a queued-provisioning pool starts at 0 nodes")
