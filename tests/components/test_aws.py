"""The AWS target, as Pulumi would send it: an EKS cluster whose GPU pools scale from zero."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.errors import InputPropertyError

from aicp.cli import fakes, offline
from aicp.components.contract import CONFORMANCE_OUTPUT, GpuPoolRequest

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG_TAG = "aws:autoscaling/tag:Tag"
GPU_NODE_GROUP = "aicp:aws:GpuNodeGroup"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ROLE = "aws:iam/role:Role"
CA = "k8s.io/cluster-autoscaler"

POOLS = (
    GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                   allocator="device-plugin", capacity_reservation_id="cr-0abc"),
    GpuPoolRequest(name="l4", accelerator="l4", min_nodes=1, max_nodes=3, allocator="dra",
                   capacity_type="spot"),
)


def _plan(**overrides) -> offline.Plan:
    def program() -> None:
        from aicp.components.aws import AwsCluster, AwsClusterArgs

        args = {"cluster_name": "aicp", "kubernetes_version": "1.35", "region": "us-west-2",
                    "zones": ("us-west-2a", "us-west-2b", "us-west-2c"), "gpu_pools": POOLS,
                    "tags": {"team": "ml"}}
        cluster = AwsCluster("c", AwsClusterArgs(**{**args, **overrides}))
        out = cluster.outputs
        pulumi.export("kubeconfigText", pulumi.Output.unsecret(out.kubeconfig))
        pulumi.export("autoscalerValues", out.autoscaler_values)
        pulumi.export("contract", {
            "target": out.target, "name": out.name, "autoscaler": out.autoscaler,
            "driver": {"owner": out.gpu_driver.owner, "root": out.gpu_driver.root,
                       "values": out.gpu_driver.operator_values},
            "pools": [p.export() for p in out.gpu_pools],
            "ready": [r.urn for r in out.ready], "provider": out.provider.urn})

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


@pytest.fixture(scope="module")
def byo_plan() -> offline.Plan:
    return _plan(zones=(), subnet_ids=("subnet-a", "subnet-b"), endpoint_public_access=False,
                 admin_principal_arns=("arn:aws:iam::123456789012:role/platform",))


def gpu_group(plan: offline.Plan, pool: str) -> offline.Resource:
    return plan.one(NODE_GROUP, f"c-gpu-{pool}")


def asg_tags(plan: offline.Plan, group: offline.Resource) -> dict[str, str]:
    tags = [r.inputs for r in plan.children(group) if r.type == ASG_TAG]
    assert {t["autoscalingGroupName"] for t in tags} == {f"eks-{group.name}-asg"}
    assert not any(t["tag"]["propagateAtLaunch"] for t in tags)
    return {t["tag"]["key"]: t["tag"]["value"] for t in tags}


def policy(resource: offline.Resource, key: str) -> dict:
    return json.loads(resource.inputs[key])


# --- GPU node groups ---------------------------------------------------------------------

@pytest.mark.parametrize("pool", ["h100", "l4"])
def test_gpu_pools_are_tainted_so_cpu_pods_stay_off(plan, pool):
    assert gpu_group(plan, pool).inputs["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]


def test_system_pool_is_untainted_and_labelled_system(plan):
    system = plan.one(NODE_GROUP, "c-system")
    assert "taints" not in system.inputs
    assert system.inputs["labels"] == {"aicp.dev/pool": "system"}
    assert system.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert system.inputs["capacityType"] == "ON_DEMAND"
    assert system.inputs["instanceTypes"] == ["m7i.xlarge"]


def test_gpu_pools_are_labelled_with_pool_accelerator_allocator_and_gpu_present(plan):
    assert gpu_group(plan, "h100").inputs["labels"] == {
        "aicp.dev/gpu-pool": "h100", "aicp.dev/accelerator": "h100",
        "aicp.dev/gpu-allocator": "device-plugin", "nvidia.com/gpu.present": "true",
        "k8s.amazonaws.com/accelerator": "h100", "aicp.dev/fabric": "efa"}
    # DRA nodes never advertise nvidia.com/gpu: no CA GPU label, device plugin switched off.
    assert gpu_group(plan, "l4").inputs["labels"] == {
        "aicp.dev/gpu-pool": "l4", "aicp.dev/accelerator": "l4", "aicp.dev/gpu-allocator": "dra",
        "nvidia.com/gpu.present": "true", "nvidia.com/gpu.deploy.device-plugin": "false",
        # What the GPU Operator's driver manager flips to evict the DRA kubelet plugin.
        "aicp.dev/dra-kubelet-plugin": "true"}


@pytest.mark.parametrize("pool,instance", [("h100", "p5.48xlarge"), ("l4", "g6.xlarge")])
def test_gpu_pools_run_the_al2023_nvidia_ami_on_the_catalog_instance_type(plan, pool, instance):
    group = gpu_group(plan, pool)
    assert group.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group.inputs["instanceTypes"] == [instance]


@pytest.mark.parametrize("pool,low,high", [("h100", 0, 2), ("l4", 1, 3)])
def test_scaling_follows_the_request_and_starts_at_the_minimum(plan, pool, low, high):
    assert gpu_group(plan, pool).inputs["scalingConfig"] == {
        "minSize": low, "maxSize": high, "desiredSize": low}


def test_spot_pool_asks_for_spot_capacity_and_others_for_on_demand(plan):
    assert gpu_group(plan, "l4").inputs["capacityType"] == "SPOT"
    assert gpu_group(plan, "h100").inputs["capacityType"] == "ON_DEMAND"


def test_capacity_reservation_is_targeted_by_the_pool_launch_template(plan):
    h100 = plan.one(LAUNCH_TEMPLATE, "c-gpu-h100").inputs
    assert h100["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": "cr-0abc"}}
    assert "capacityReservationSpecification" not in plan.one(LAUNCH_TEMPLATE, "c-gpu-l4").inputs


@pytest.mark.parametrize("group", ["c-system", "c-gpu-h100", "c-gpu-l4"])
def test_every_node_group_uses_a_launch_template_that_requires_imdsv2(plan, group):
    template = plan.one(LAUNCH_TEMPLATE, group)
    assert plan.one(NODE_GROUP, group).inputs["launchTemplate"] == {
        "id": f"{template.name}-id", "version": "1"}
    # Hop limit 1: only host-network pods reach IMDS, workloads cannot borrow the node role.
    assert template.inputs["metadataOptions"] == {
        "httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}


def test_gpu_root_volume_is_encrypted_gp3_sized_for_gpu_images(plan):
    [root] = plan.one(LAUNCH_TEMPLATE, "c-gpu-h100").inputs["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/xvda"
    assert root["ebs"]["encrypted"] == "true"
    assert root["ebs"]["volumeType"] == "gp3"
    assert root["ebs"]["volumeSize"] >= 200


# --- one component per GPU pool ------------------------------------------------------------

@pytest.mark.parametrize("pool", ["h100", "l4"])
def test_each_gpu_pool_is_one_component_holding_its_template_node_group_and_tags(plan, pool):
    component = plan.one(GPU_NODE_GROUP, f"c-gpu-{pool}")
    assert component.parent == plan.one("aicp:aws:Cluster").urn
    group = gpu_group(plan, pool)
    # p5.48xlarge (h100) is an EFA type: its placement and security groups are the pool's.
    efa = {(PLACEMENT_GROUP, f"c-gpu-{pool}-efa"), (SECURITY_GROUP, f"c-gpu-{pool}-efa")}
    assert {(r.type, r.name) for r in plan.children(component)} == {
        (LAUNCH_TEMPLATE, f"c-gpu-{pool}"), (NODE_GROUP, f"c-gpu-{pool}"),
        *(efa if pool == "h100" else ())}
    tags = plan.children(group)
    assert tags and {r.type for r in tags} == {ASG_TAG}
    assert plan.depends_on(group, plan.one(LAUNCH_TEMPLATE, f"c-gpu-{pool}"))


def test_a_gpu_pool_adds_one_child_to_the_cluster(plan):
    one_pool = _plan(gpu_pools=POOLS[:1])
    assert len(plan.children(plan.one("aicp:aws:Cluster"))) == \
        len(one_pool.children(one_pool.one("aicp:aws:Cluster"))) + 1


@pytest.mark.parametrize("pool", ["h100", "l4"])
def test_pool_resources_keep_the_urns_they_had_as_children_of_the_cluster(plan, pool):
    # Stacks made before the pool component existed update them in place, not replace them.
    cluster = plan.one("aicp:aws:Cluster")
    template, group = plan.one(LAUNCH_TEMPLATE, f"c-gpu-{pool}"), gpu_group(plan, pool)
    for moved in (template, group):  # what the SDK sends the engine
        assert moved.aliases == [{"spec": {"parentUrn": cluster.urn}}]
    before = "urn:pulumi:plan::aicp::aicp:aws:Cluster$"
    assert f"{before}{LAUNCH_TEMPLATE}::c-gpu-{pool}" in plan.former_urns(template)
    assert f"{before}{NODE_GROUP}::c-gpu-{pool}" in plan.former_urns(group)
    for tag in plan.children(group):  # through the node group's alias
        assert f"{before}{NODE_GROUP}${ASG_TAG}::{tag.name}" in plan.former_urns(tag)


def test_every_resource_is_found_where_it_was_before_pools_were_components(plan, byo_plan):
    for p in (plan, byo_plan):
        for r in p.resources:
            if r.type in (PLACEMENT_GROUP, SECURITY_GROUP):
                # Made with the EFA fabric, after pools were components: nothing to alias.
                assert r.aliases == [] and r.name.endswith("-efa"), r.name
            elif r.type != GPU_NODE_GROUP:
                assert r.urn.replace(f"{GPU_NODE_GROUP}$", "") in p.former_urns(r), r.name
    # What did not move declares no alias.
    assert plan.one(NODE_GROUP, "c-system").aliases == []
    assert plan.one(LAUNCH_TEMPLATE, "c-system").aliases == []


# --- cluster-autoscaler --------------------------------------------------------------------

def test_device_plugin_pool_asg_carries_the_node_template_to_scale_from_zero(plan):
    tags = asg_tags(plan, gpu_group(plan, "h100"))
    assert tags[f"{CA}/enabled"] == "true"
    assert tags[f"{CA}/aicp"] == "owned"
    assert tags[f"{CA}/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags[f"{CA}/node-template/resources/nvidia.com/gpu"] == "8"
    assert tags[f"{CA}/node-template/resources/ephemeral-storage"].endswith("Gi")
    labels = gpu_group(plan, "h100").inputs["labels"]
    assert {k: v for k, v in tags.items() if "/label/" in k} == {
        f"{CA}/node-template/label/{k}": v for k, v in labels.items()}


def test_dra_pool_asg_templates_labels_and_taint_but_no_gpu_resource(plan):
    tags = asg_tags(plan, gpu_group(plan, "l4"))
    assert tags[f"{CA}/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags[f"{CA}/node-template/label/aicp.dev/gpu-allocator"] == "dra"
    assert f"{CA}/node-template/resources/nvidia.com/gpu" not in tags


def test_system_pool_is_auto_discovered_by_the_cluster_autoscaler(plan):
    tags = asg_tags(plan, plan.one(NODE_GROUP, "c-system"))
    assert tags[f"{CA}/enabled"] == "true" and tags[f"{CA}/aicp"] == "owned"


def test_cluster_autoscaler_role_trusts_exactly_its_service_account(plan):
    trust = policy(plan.one(ROLE, "c-cluster-autoscaler"), "assumeRolePolicy")
    [statement] = trust["Statement"]
    issuer = "oidc.eks.us-west-2.amazonaws.com/id/PLANC-EKS"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{fakes.ACCOUNT}:oidc-provider/{issuer}"}
    assert statement["Condition"] == {"StringEquals": {
        f"{issuer}:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
        f"{issuer}:aud": "sts.amazonaws.com"}}


def test_cluster_autoscaler_may_only_scale_groups_of_this_cluster(plan):
    statements = policy(
        plan.one("aws:iam/rolePolicy:RolePolicy", "c-cluster-autoscaler"), "policy")["Statement"]
    writes = [s for s in statements if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert writes == [{
        "Effect": "Allow", "Resource": "*",
        "Action": ["autoscaling:SetDesiredCapacity",
                   "autoscaling:TerminateInstanceInAutoScalingGroup"],
        "Condition": {"StringEquals": {f"aws:ResourceTag/{CA}/aicp": "owned"}}}]
    reads = {a for s in statements if "Condition" not in s for a in s["Action"]}
    assert {"eks:DescribeNodegroup", "ec2:DescribeLaunchTemplateVersions",
            "autoscaling:DescribeAutoScalingGroups"} <= reads
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in reads)


def test_autoscaler_values_point_the_chart_at_this_cluster_and_role(plan):
    assert plan.outputs["autoscalerValues"] == {
        "cloudProvider": "aws", "awsRegion": "us-west-2",
        "autoDiscovery": {"clusterName": "aicp"},
        "rbac": {"serviceAccount": {"create": True, "name": "cluster-autoscaler", "annotations": {
            "eks.amazonaws.com/role-arn":
                f"arn:aws:iam::{fakes.ACCOUNT}:role/c-cluster-autoscaler"}}}}


# --- control plane ------------------------------------------------------------------------

def test_secrets_are_encrypted_with_a_rotating_kms_key(plan):
    key = plan.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert plan.one("aws:eks/cluster:Cluster").inputs["encryptionConfig"] == {
        "resources": ["secrets"],
        "provider": {"keyArn": f"arn:aws:kms:{fakes.REGION}:{fakes.ACCOUNT}:key/{key.name}"}}


def test_cluster_authenticates_with_access_entries_only(plan):
    assert plan.one("aws:eks/cluster:Cluster").inputs["accessConfig"] == {
        "authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True}


def test_every_control_plane_log_type_is_on(plan):
    assert plan.one("aws:eks/cluster:Cluster").inputs["enabledClusterLogTypes"] == [
        "api", "audit", "authenticator", "controllerManager", "scheduler"]


def test_cluster_runs_the_requested_version_and_name(plan):
    cluster = plan.one("aws:eks/cluster:Cluster").inputs
    assert (cluster["name"], cluster["version"]) == ("aicp", "1.35")


def test_oidc_provider_is_created_from_the_cluster_issuer_for_sts(plan):
    oidc = plan.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert oidc["url"] == "https://oidc.eks.us-west-2.amazonaws.com/id/PLANC-EKS"
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]


def test_node_role_is_least_privilege_and_the_cni_gets_its_own_irsa_role(plan):
    def attached(role: str) -> set[str]:
        return {r.inputs["policyArn"].rsplit("/", 1)[1]
                for r in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r.inputs["role"] == role}

    assert attached("c-node") == {"AmazonEKSWorkerNodePolicy",
                                  "AmazonEC2ContainerRegistryReadOnly"}
    assert attached("c-vpc-cni") == {"AmazonEKS_CNI_Policy"}
    addon = plan.one("aws:eks/addon:Addon", "c-vpc-cni")
    assert addon.inputs["serviceAccountRoleArn"].endswith(":role/c-vpc-cni")
    sub = policy(plan.one(ROLE, "c-vpc-cni"), "assumeRolePolicy")["Statement"][0]["Condition"]
    assert "system:serviceaccount:kube-system:aws-node" in sub["StringEquals"].values()
    for group in plan.of_type(NODE_GROUP):  # aws-node has its role before any node joins
        assert plan.depends_on(group, addon)


# --- network -------------------------------------------------------------------------------

def test_vpc_spans_the_zones_with_subnets_tagged_for_load_balancers(plan):
    subnets = {r.name: r.inputs for r in plan.of_type("aws:ec2/subnet:Subnet")}
    for zone in ("us-west-2a", "us-west-2b", "us-west-2c"):
        private, public = subnets[f"c-private-{zone}"], subnets[f"c-public-{zone}"]
        assert private["availabilityZone"] == public["availabilityZone"] == zone
        assert private["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert public["tags"]["kubernetes.io/role/elb"] == "1"
        assert private["tags"]["kubernetes.io/cluster/aicp"] == "shared"
    cidrs = [s["cidrBlock"] for s in subnets.values()]
    assert len(set(cidrs)) == len(cidrs)
    assert len(plan.of_type("aws:ec2/natGateway:NatGateway")) == 1
    private_ids = sorted(f"c-private-{z}-id" for z in ("us-west-2a", "us-west-2b", "us-west-2c"))
    assert sorted(plan.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["subnetIds"]) == \
        private_ids
    assert sorted(gpu_group(plan, "l4").inputs["subnetIds"]) == private_ids
    # An EFA pool stays in one zone (its cluster placement group's): the first.
    assert gpu_group(plan, "h100").inputs["subnetIds"] == ["c-private-us-west-2a-id"]


def test_existing_subnets_are_used_and_no_vpc_is_created(byo_plan):
    assert not [r for r in byo_plan.resources if r.type.startswith("aws:ec2/")
                and r.type not in (LAUNCH_TEMPLATE, PLACEMENT_GROUP, SECURITY_GROUP)]
    # The EFA pool's own groups (placement, security) sit in the cluster's VPC.
    assert [r.inputs["vpcId"] for r in byo_plan.of_type(SECURITY_GROUP)] == ["vpc-0plan"]
    assert byo_plan.one("aws:eks/cluster:Cluster").inputs["vpcConfig"] == {
        "subnetIds": ["subnet-a", "subnet-b"],
        "endpointPrivateAccess": True, "endpointPublicAccess": False}
    for group in byo_plan.of_type(NODE_GROUP):
        efa = group.name == "c-gpu-h100"
        assert group.inputs["subnetIds"] == (["subnet-a"] if efa else ["subnet-a", "subnet-b"])


def test_admin_principals_get_a_cluster_admin_access_entry(byo_plan):
    principal = "arn:aws:iam::123456789012:role/platform"
    assert byo_plan.one("aws:eks/accessEntry:AccessEntry").inputs["principalArn"] == principal
    association = byo_plan.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation").inputs
    assert association["policyArn"] == \
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert association["accessScope"] == {"type": "cluster"}


# --- kubeconfig, provider, contract --------------------------------------------------------

def test_kubeconfig_stays_secret_and_authenticates_with_aws_eks_get_token(plan):
    provider = plan.one("pulumi:providers:kubernetes")
    assert provider.secret_paths == ["kubeconfig"]
    assert provider.inputs["enableServerSideApply"] == "true"
    assert plan.one("aicp:aws:Cluster").outputs["kubeconfig"] == offline.REDACTED
    config = json.loads(plan.outputs["kubeconfigText"])
    [user] = config["users"]
    assert user["user"]["exec"]["command"] == "aws"
    assert user["user"]["exec"]["args"][:4] == ["eks", "get-token", "--cluster-name", "aicp"]
    assert user["user"]["exec"]["args"][4:6] == ["--region", "us-west-2"]
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1"
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == fakes.FAKE_CA


def test_kubernetes_provider_waits_for_the_system_node_group(plan):
    provider = plan.one("pulumi:providers:kubernetes")
    assert plan.depends_on(provider, plan.one(NODE_GROUP, "c-system"))
    contract = plan.outputs["contract"]
    assert contract["ready"][0] == plan.one(NODE_GROUP, "c-system").urn


def test_addons_wait_for_the_whole_network_so_their_load_balancers_go_first(plan):
    # An internet-facing ELB of a LoadBalancer Service sits in the public subnets and needs
    # the internet gateway; deleting either first fails with DependencyViolation.
    ready = set(plan.outputs["contract"]["ready"])
    for kind in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet",
                 "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway",
                 "aws:ec2/routeTableAssociation:RouteTableAssociation"):
        resources = plan.of_type(kind)
        assert resources and {r.urn for r in resources} <= ready, kind


def test_contract_says_the_host_owns_the_driver_and_the_cluster_autoscaler_scales(plan):
    contract = plan.outputs["contract"]
    assert contract["target"] == "aws" and contract["name"] == "aicp"
    assert contract["autoscaler"] == "cluster-autoscaler"
    assert contract["driver"] == {"owner": "host", "root": "/", "values": {
        "driver": {"enabled": False}, "toolkit": {"enabled": False}}}
    assert [(p["name"], p["machineType"], p["gpusPerNode"]) for p in contract["pools"]] == [
        ("h100", "p5.48xlarge", 8), ("l4", "g6.xlarge", 1)]


def test_component_serves_no_conformance_requirement_on_its_own(plan):
    outputs = plan.one("aicp:aws:Cluster").outputs
    assert outputs[CONFORMANCE_OUTPUT] == []
    assert outputs["clusterName"] == "aicp"
    assert outputs["oidcProviderArn"].startswith(f"arn:aws:iam::{fakes.ACCOUNT}:oidc-provider/")


def test_every_aws_resource_is_a_child_on_the_component_region_provider(plan):
    component = plan.one("aicp:aws:Cluster")
    region = plan.one("pulumi:providers:aws")
    assert region.inputs["region"] == "us-west-2"
    assert json.loads(region.inputs["defaultTags"])["tags"] == {
        "team": "ml", "aicp.dev/cluster": "aicp"}
    inside = {r.urn for r in plan.descendants(component)}
    for r in plan.resources:
        if r.type.startswith("aws:"):
            assert r.urn in inside, r.name
            assert r.provider.startswith(region.urn), r.name


def test_every_invoke_is_answered_by_the_fakes(plan, byo_plan):
    tokens = {token for token, _ in plan.invokes + byo_plan.invokes}
    assert tokens <= set(fakes.INVOKES)


# --- args ----------------------------------------------------------------------------------

@pytest.mark.parametrize("change,path,reason", [
    ({"zones": ("us-west-2a",)}, "zones", "list at least two availability zones"),
    ({"zones": tuple(f"us-west-2{z}" for z in "abcdefg")}, "zones", "at most six zones"),
    ({"subnet_ids": ("subnet-1",)}, "subnet_ids", "give subnets in at least two zones"),
    ({"region": ""}, "region", "required for target aws"),
    ({"gpu_pools": (GpuPoolRequest(name="l4", accelerator="l4", max_nodes=2),)},
     "gpu_pools[0].min_nodes", "0 cannot scale up for DRA claims on aws (cluster-autoscaler "
     "cannot scale a DRA pool up from zero"),
    ({"system_min_nodes": 5}, "system_min_nodes", "5 is more than system_max_nodes 4"),
    ({"gpu_pools": (GpuPoolRequest(name="l4", accelerator="l4", max_nodes=2,
                                   allocator="device-plugin", instance_type="p5.48xlarge"),)},
     "gpu_pools[0].instance_type", "'p5.48xlarge' does not carry l4 on aws"),
])
def test_args_refuse_what_eks_or_the_autoscaler_cannot_build(change, path, reason):
    from aicp.components.aws import AwsClusterArgs

    args = {"cluster_name": "aicp", "kubernetes_version": "1.35", "region": "us-west-2",
                "zones": ("us-west-2a", "us-west-2b"), "gpu_pools": POOLS}
    with pytest.raises(InputPropertyError) as err:
        AwsClusterArgs(**{**args, **change})
    assert err.value.property_path == path
    assert err.value.reason.startswith(reason), err.value.reason


# --- identity and teardown order that mocks never check ---------------------------

def _plan_with(config: dict) -> offline.Plan:
    def program() -> None:
        from aicp.components.aws import AwsCluster, AwsClusterArgs

        cluster = AwsCluster("c", AwsClusterArgs(
            cluster_name="aicp", kubernetes_version="1.35", region="us-west-2",
            zones=("us-west-2a", "us-west-2b"), gpu_pools=POOLS))
        pulumi.export("kubeconfigText", pulumi.Output.unsecret(cluster.outputs.kubeconfig))

    return offline.run(program, config)


def test_the_stack_aws_identity_settings_reach_the_explicit_provider():
    # An explicit aws.Provider reads none of the stack's aws:* config; profile and assumed
    # roles are passed through (else resources land under the caller's identity).
    role = "arn:aws:iam::123456789012:role/platform-deployer"
    plan = _plan_with({"aws:profile": "ml-prod",
                       "aws:assumeRoles": [{"roleArn": role, "sessionName": "aicp"}]})
    provider = plan.one("pulumi:providers:aws").inputs
    assert provider["profile"] == "ml-prod"
    # Provider config reaches the engine as JSON text (non-string provider inputs are).
    assert json.loads(provider["assumeRoles"]) == [{"roleArn": role, "sessionName": "aicp"}]


def test_kubeconfig_gets_its_token_as_the_same_identity():
    # pulumi-eks providerCredentialOpts: profileName → AWS_PROFILE, roleArn → --role-arn.
    role = "arn:aws:iam::123456789012:role/platform-deployer"
    plan = _plan_with({"aws:profile": "ml-prod", "aws:assumeRoles": [{"roleArn": role}]})
    user = json.loads(plan.outputs["kubeconfigText"])["users"][0]["user"]["exec"]
    assert user["args"][-2:] == ["--role-arn", role]
    assert user["env"] == [{"name": "AWS_PROFILE", "value": "ml-prod"}]


def test_without_identity_settings_the_kubeconfig_uses_the_default_chain():
    plan = _plan_with({})
    user = json.loads(plan.outputs["kubeconfigText"])["users"][0]["user"]["exec"]
    assert "--role-arn" not in user["args"] and "env" not in user
    assert "profile" not in plan.one("pulumi:providers:aws").inputs


def test_cluster_and_node_groups_wait_for_their_role_policy_attachments(plan):
    # Destroy order is the reverse: EKS removes its security groups and ENIs while the
    # roles still carry their policies (Terraform AWS provider aws_eks_cluster docs).
    attachments = plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    cluster = plan.one("aws:eks/cluster:Cluster")
    cluster_attachments = [a for a in attachments if a.name.startswith("c-cluster-")]
    node_attachments = [a for a in attachments if a.name.startswith("c-node-")]
    assert cluster_attachments and node_attachments
    for a in cluster_attachments:
        assert a.urn in cluster.dependencies
    for group in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        for a in node_attachments:
            assert a.urn in group.dependencies, (group.name, a.name)
    cni = plan.one("aws:eks/addon:Addon", "c-vpc-cni")
    assert any(a.urn in cni.dependencies for a in attachments if "vpc-cni" in a.name)


# --- EC2 Capacity Blocks for ML -------------------------------------------------------------
# EKS user guide, "Create a managed node group with Capacity Blocks for ML": a custom launch
# template with InstanceMarketOptions.MarketType "capacity-block" and
# CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId, and the
# node group's capacityType CAPACITY_BLOCK.

BLOCK = GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                       allocator="device-plugin", capacity_type="capacity-block",
                       capacity_reservation_id="cr-02168da1478b509e0")


def test_a_capacity_block_pool_has_the_shape_eks_documents():
    plan = _plan(gpu_pools=(BLOCK,))
    template = plan.one(LAUNCH_TEMPLATE, "c-gpu-h100").inputs
    assert template["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert template["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": "cr-02168da1478b509e0"}}
    group = gpu_group(plan, "h100").inputs
    assert group["capacityType"] == "CAPACITY_BLOCK"
    assert group["instanceTypes"] == ["p5.48xlarge"]
    assert group["launchTemplate"]["id"] == "c-gpu-h100-id"


def test_on_demand_and_spot_templates_set_no_market_type(plan):
    # A managed node group's Spot is its capacityType; its launch template asks for none.
    for pool in ("h100", "l4"):
        assert "instanceMarketOptions" not in plan.one(LAUNCH_TEMPLATE, f"c-gpu-{pool}").inputs


@pytest.mark.parametrize("pool,path,reason", [
    (GpuPoolRequest(name="h100", accelerator="h100", max_nodes=2, allocator="device-plugin",
                    capacity_type="capacity-block"),
     "gpu_pools[0].capacity_reservation_id", "required for gpu_pools[0].capacity_type: "
     "capacity-block"),
    (GpuPoolRequest(name="h100", accelerator="h100", max_nodes=2, allocator="device-plugin",
                    capacity_type="flex-start"),
     "gpu_pools[0].capacity_type", "'flex-start' is not sold on aws; use one of on-demand, "
     "spot, capacity-block"),
])
def test_capacity_types_eks_does_not_sell_or_cannot_target_are_refused(pool, path, reason):
    from aicp.components.aws import AwsClusterArgs

    with pytest.raises(InputPropertyError) as err:
        AwsClusterArgs(cluster_name="aicp", kubernetes_version="1.35", region="us-west-2",
                       zones=("us-west-2a", "us-west-2b"), gpu_pools=(pool,))
    assert err.value.property_path == path
    assert err.value.reason.startswith(reason), err.value.reason
