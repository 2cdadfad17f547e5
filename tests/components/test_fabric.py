"""Every fabric-class machine type of the catalog gets its fabric, as Pulumi would send it;
every other type is planned exactly as before (issue #19).

One plan per fabric row (components/fabric.py FABRICS): a cluster of that target with one
pool of that type. The rules checked are the ones cited beside the code: the EKS user
guide's EFA interface layout for managed node groups, pulumi-eks ``enableEfaSupport``'s
cluster placement group and single zone, the EC2 EFA security group; cluster-toolkit's
A3 blueprints (one VPC per GPU NIC at MTU 8244, the RDMA VPC's RoCE profile, additional node
networks, compact placement) and GKE multi-networking; AKS ND-series pools marked.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import replace

import pulumi
import pytest

from aicp.cli import offline
from aicp.components.accelerators import OFFERINGS
from aicp.components.contract import CONFORMANCE_OUTPUT, GpuPoolRequest, resolve_pool
from aicp.components.fabric import (
    EFA_DEVICE_CLASS,
    EFA_RESOURCE,
    FABRICS,
    IB_RESOURCE,
    LABEL_FABRIC,
    Fabric,
)

HPN = "high_performance_networking"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ASG_TAG = "aws:autoscaling/tag:Tag"
GKE_NETWORK = "gcp:compute/network:Network"
GKE_SUBNET = "gcp:compute/subnetwork:Subnetwork"
GKE_FIREWALL = "gcp:compute/firewall:Firewall"
NODE_POOL = "gcp:container/nodePool:NodePool"
GKE_CLUSTER = "gcp:container/cluster:Cluster"
AKS_POOL = "azure-native:containerservice:AgentPool"
COMPONENT = {"aws": "aicp:aws:GpuNodeGroup", "gcp": "aicp:gcp:GpuPool",
             "azure": "aicp:azure:GpuPool"}


def pool_for(o) -> GpuPoolRequest:
    return GpuPoolRequest(name="train", accelerator=o.accelerator, instance_type=o.machine_type,
                          min_nodes=0, max_nodes=2, allocator="device-plugin")


def plan_for(target: str, pools: tuple[GpuPoolRequest, ...]) -> offline.Plan:
    def program() -> None:
        if target == "aws":
            from aicp.components.aws import AwsCluster, AwsClusterArgs
            c = AwsCluster("c", AwsClusterArgs(
                cluster_name="aicp", kubernetes_version="1.35", region="us-west-2",
                zones=("us-west-2a", "us-west-2b"), gpu_pools=pools))
        elif target == "gcp":
            from aicp.components.gcp import GkeCluster, GkeClusterArgs
            c = GkeCluster("c", GkeClusterArgs(
                cluster_name="aicp", kubernetes_version="1.35", project="my-proj",
                region="us-central1", zones=("us-central1-b", "us-central1-c"), gpu_pools=pools))
        else:
            from aicp.components.azure import AksCluster, AksClusterArgs
            c = AksCluster("c", AksClusterArgs(
                cluster_name="aicp", kubernetes_version="1.35", location="eastus2",
                zones=("1", "2", "3"), gpu_pools=pools))
        pulumi.export("pools", [p.export() for p in c.outputs.gpu_pools])
    return offline.run(program, {})


ROWS = sorted(FABRICS.values(), key=lambda f: (f.target, f.machine_type))


@functools.cache
def planned(f: Fabric) -> offline.Plan:
    [o] = [o for o in OFFERINGS if (o.target, o.machine_type) == (f.target, f.machine_type)]
    return plan_for(f.target, (pool_for(o),))


def rows(*kinds: str) -> list:
    return [pytest.param(f, id=f"{f.target}-{f.machine_type}") for f in ROWS
            if not kinds or f.kind in kinds]


@pytest.fixture(params=rows())
def fabric_plan(request) -> tuple[Fabric, offline.Plan]:
    return request.param, planned(request.param)


def test_every_fabric_row_is_a_machine_type_of_the_catalog():
    offered = {(o.target, o.machine_type) for o in OFFERINGS}
    assert set(FABRICS) <= offered
    # The fabric-class types, all of them.
    assert {m for _, m in FABRICS} >= {
        "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge", "p4d.24xlarge", "p4de.24xlarge",
        "a3-highgpu-8g", "a3-megagpu-8g", "a3-ultragpu-8g", "Standard_ND96isr_H100_v5",
        "Standard_ND96isr_H200_v5", "Standard_ND96asr_v4"}


def test_the_pool_exports_its_fabric_and_is_labelled_for_it(fabric_plan):
    f, plan = fabric_plan
    [pool] = plan.outputs["pools"]
    fabric = pool["fabric"]
    assert pool["labels"][LABEL_FABRIC] == f.kind
    assert (fabric["kind"], fabric["interfaces"], fabric["bandwidthGbps"]) == (
        f.kind, f.interfaces, f.gbps)
    if f.kind == "efa":
        assert fabric["resources"] == {EFA_RESOURCE: f.interfaces}
        # A container using EFA asks for huge pages too, as the EKS guide's NCCL test does
        # (awsdocs/amazon-eks-user-guide node-efa.adoc: hugepages-2Mi: 5120Mi).
        assert fabric["hugePages"] == {"hugepages-2Mi": "5120Mi"}
    elif f.kind == "infiniband":
        assert fabric["resources"] == {IB_RESOURCE: 1}
        # Azure/aks-rdma-infiniband's GPUDirect RDMA pods add IPC_LOCK (locked memory).
        assert fabric["capabilities"] == ["IPC_LOCK"]
    else:
        # What a pod names to get the NICs: eth0 on the default network, then one per NIC.
        names = [n["network"] for n in fabric["gkeNetworks"]]
        assert fabric["networks"] == names
        annotation = fabric["podAnnotations"]["networking.gke.io/interfaces"]
        assert [i["network"] for i in json.loads(annotation)] == [
            "default", *names]
    if f.kind != "efa":
        assert "hugePages" not in fabric
    if f.kind != "infiniband":
        assert "capabilities" not in fabric


def test_the_pool_component_serves_high_performance_networking(fabric_plan):
    f, plan = fabric_plan
    component = plan.one(COMPONENT[f.target], "c-gpu-train")
    assert component.outputs[CONFORMANCE_OUTPUT] == [HPN]
    assert component.outputs["fabric"] == f.bandwidth_class


@pytest.mark.parametrize("f", rows("efa"))
def test_efa_pools_get_every_network_card_a_placement_group_and_one_zone(f):
    plan = planned(f)
    nics = plan.one(LAUNCH_TEMPLATE, "c-gpu-train").inputs["networkInterfaces"]
    layout = [(n["networkCardIndex"], n["deviceIndex"], n["interfaceType"]) for n in nics]
    # EKS user guide device-management-efa.adoc, managed node groups.
    assert layout == [(0, 0, "interface"), (0, 1, "efa-only"),
                      *((card, 0, "efa-only") for card in range(1, f.interfaces))]
    security = plan.one(SECURITY_GROUP, "c-gpu-train-efa")
    assert all(n["securityGroups"][-1] == f"{security.name}-id" and "subnetId" not in n
               for n in nics)
    assert {"fromPort": 0, "toPort": 0, "protocol": "-1", "self": True} in \
        security.inputs["ingress"]
    assert {"fromPort": 0, "toPort": 0, "protocol": "-1", "self": True} in \
        security.inputs["egress"]
    group = plan.one(PLACEMENT_GROUP, "c-gpu-train-efa").inputs
    assert group["strategy"] == "cluster"
    template = plan.one(LAUNCH_TEMPLATE, "c-gpu-train").inputs
    assert template["placement"] == {"groupName": group["name"]}
    assert plan.one(NODE_GROUP, "c-gpu-train").inputs["subnetIds"] == ["c-private-us-west-2a-id"]
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
            for t in plan.of_type(ASG_TAG) if "c-gpu-train" in t.name}
    # A node from zero has the EFA devices too (cluster-autoscaler's node template), and the
    # 5128 2 MiB huge pages the EFA installer reserves (EKS user guide node-efa.adoc).
    assert tags[f"k8s.io/cluster-autoscaler/node-template/resources/{EFA_RESOURCE}"] == \
        str(f.interfaces)
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/hugepages-2Mi"] == "10256Mi"
    # The AMI reserves them; aicp's user data (nodeadm's local NVMe RAID0) leaves them be.
    user_data = plan.one(LAUNCH_TEMPLATE, "c-gpu-train").inputs.get("userData") or ""
    assert "hugepages" not in base64.b64decode(user_data).decode().lower()


@pytest.mark.parametrize("f", rows("gpudirect-tcpx", "gpudirect-tcpxo", "gpudirect-rdma"))
def test_gpudirect_pools_get_their_vpcs_networks_and_compact_placement(f):
    plan = planned(f)
    [pool] = plan.outputs["pools"]
    nets = pool["fabric"]["gkeNetworks"]
    vpcs = {r.inputs["name"]: r.inputs for r in plan.of_type(GKE_NETWORK) if r.name != "c-vpc"}
    subnets = {r.inputs["name"]: r.inputs for r in plan.of_type(GKE_SUBNET)
               if r.name != "c-nodes"}
    if f.kind == "gpudirect-rdma":
        # One gVNIC VPC, one RDMA VPC on the zone's RoCE profile with a subnet per NIC.
        assert len(nets) == f.interfaces + 1 and len(vpcs) == 2
        rdma = vpcs["aicp-train-rdma"]
        assert rdma["networkProfile"] == \
            "projects/my-proj/global/networkProfiles/us-central1-b-vpc-roce"
        assert [n["deviceMode"] for n in nets] == ["NetDevice", *["RDMA"] * f.interfaces]
    else:
        assert len(nets) == len(vpcs) == f.interfaces
        assert {n["deviceMode"] for n in nets} == {"NetDevice"}
        assert not any("networkProfile" in v for v in vpcs.values())
    assert {v["mtu"] for v in vpcs.values()} == {f.mtu}
    assert set(subnets) == {n["subnet"] for n in nets}
    firewalls = [r.inputs for r in plan.of_type(GKE_FIREWALL) if r.name != "c-master-webhooks"]
    assert len(firewalls) == len(vpcs)
    pool_inputs = plan.one(NODE_POOL, "c-gpu-train").inputs
    assert [(c["network"], c["subnetwork"]) for c in
            pool_inputs["networkConfig"]["additionalNodeNetworkConfigs"]] == [
        (n["vpc"], n["subnet"]) for n in nets]
    assert pool_inputs["placementPolicy"] == {"type": "COMPACT"}
    assert pool_inputs["nodeLocations"] == ["us-central1-b"]
    cluster = plan.one(GKE_CLUSTER).inputs
    assert cluster["enableMultiNetworking"] is True
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"


@pytest.mark.parametrize("f", rows("infiniband"))
def test_infiniband_pools_stay_one_regional_scale_set(f):
    pool = planned(f).one(AKS_POOL, "c-gpu-train").inputs
    assert pool["vmSize"] == f.machine_type and pool["type"] == "VirtualMachineScaleSets"
    assert "availabilityZones" not in pool
    assert pool["nodeLabels"][LABEL_FABRIC] == "infiniband"


@pytest.mark.parametrize("f", rows("efa"))
def test_an_efa_pool_on_dra_gets_its_efa_devices_through_a_claim(f):
    [o] = [o for o in OFFERINGS if (o.target, o.machine_type) == (f.target, f.machine_type)]
    plan = plan_for("aws", (replace(pool_for(o), allocator="dra", min_nodes=1),))
    [pool] = plan.outputs["pools"]
    assert pool["fabric"]["claims"] == {"deviceClassName": EFA_DEVICE_CLASS,
                                        "count": f.interfaces}
    assert "resources" not in pool["fabric"]
    assert pool["fabric"]["hugePages"] == {"hugepages-2Mi": "5120Mi"}
    # The interfaces are the same; only the device plugin's extended resource is not there.
    assert len(plan.one(LAUNCH_TEMPLATE, "c-gpu-train").inputs["networkInterfaces"]) == \
        f.interfaces + 1
    tags = [t.inputs["tag"]["key"] for t in plan.of_type(ASG_TAG) if "c-gpu-train" in t.name]
    assert not [k for k in tags if k.endswith(EFA_RESOURCE)]
    assert "k8s.io/cluster-autoscaler/node-template/resources/hugepages-2Mi" in tags


# --- everything else is unchanged ---------------------------------------------------------

NON_FABRIC = [o for o in OFFERINGS if (o.target, o.machine_type) not in FABRICS]


@pytest.mark.parametrize("o", NON_FABRIC, ids=[f"{o.target}-{o.machine_type}"
                                              for o in NON_FABRIC])
def test_other_machine_types_get_no_fabric(o):
    pool = resolve_pool(o.target, pool_for(o))
    assert pool.fabric is None and LABEL_FABRIC not in pool.labels
    assert "fabric" not in pool.export()


@pytest.mark.parametrize("target", ["aws", "gcp", "azure"])
def test_a_cluster_of_other_types_declares_nothing_of_a_fabric(target):
    pools = tuple(GpuPoolRequest(name=f"p{i}", accelerator=o.accelerator,
                                 instance_type=o.machine_type, max_nodes=1,
                                 allocator="device-plugin")
                  for i, o in enumerate(o for o in NON_FABRIC if o.target == target))
    plan = plan_for(target, pools)
    for r in plan.resources:
        assert r.type not in (PLACEMENT_GROUP, SECURITY_GROUP, GKE_FIREWALL) or \
            r.name == "c-master-webhooks", r.name
        assert HPN not in r.outputs.get(CONFORMANCE_OUTPUT, []), r.name
    assert "networkInterfaces" not in str([r.inputs for r in plan.of_type(LAUNCH_TEMPLATE)])
    if target == "gcp":
        assert "enableMultiNetworking" not in plan.one(GKE_CLUSTER).inputs
        assert [r.name for r in plan.of_type(GKE_NETWORK)] == ["c-vpc"]
        for p in plan.of_type(NODE_POOL):
            assert "placementPolicy" not in p.inputs and "networkConfig" not in p.inputs
