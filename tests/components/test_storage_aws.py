"""EKS storage (#20), as Pulumi would send it: the EBS CSI driver with its IRSA role, one
default gp3 class, the model bucket (encrypted, never public), Mountpoint for S3, an IRSA
role that reaches exactly that bucket, and the GPU nodes' NVMe striped for containerd."""

from __future__ import annotations

import base64
import json

import pulumi
import pytest

from aicp.cli import offline
from aicp.components.contract import GpuPoolRequest
from aicp.components.storage import StorageArgs

ADDON, ROLE, POLICY = "aws:eks/addon:Addon", "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy"
CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
POOLS = (GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                        allocator="device-plugin"),)


def _plan(**storage) -> offline.Plan:
    def program() -> None:
        from aicp.components.aws import AwsCluster, AwsClusterArgs

        cluster = AwsCluster("c", AwsClusterArgs(
            cluster_name="aicp", kubernetes_version="1.35", region="us-west-2",
            zones=("us-west-2a", "us-west-2b"), gpu_pools=POOLS,
            storage=StorageArgs(**storage)))
        pulumi.export("storage", cluster.outputs.storage.export()
                      if cluster.outputs.storage else None)

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def trust(role: offline.Resource) -> dict:
    return json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"][
        "StringEquals"]


def test_the_ebs_driver_runs_as_its_controller_with_the_managed_policy(plan):
    addon = plan.one(ADDON, "c-ebs-csi")
    assert addon.inputs["addonName"] == "aws-ebs-csi-driver"
    role = plan.one(ROLE, "c-ebs-csi")
    assert addon.inputs["serviceAccountRoleArn"].endswith(":role/c-ebs-csi")
    assert [v for k, v in trust(role).items() if k.endswith(":sub")] == [
        "system:serviceaccount:kube-system:ebs-csi-controller-sa"]
    (attached,) = [r for r in plan.children(role) if r.type.endswith("RolePolicyAttachment")]
    assert attached.inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy")
    assert plan.depends_on(addon, attached)


def test_exactly_one_default_class_encrypted_gp3_waiting_for_the_pod(plan):
    classes = plan.of_type(CLASS)
    defaults = [c for c in classes if c.inputs["metadata"].get("annotations", {}).get(
        "storageclass.kubernetes.io/is-default-class") == "true"]
    assert [c.inputs["metadata"]["name"] for c in defaults] == ["gp3"]
    gp3 = defaults[0].inputs
    assert (gp3["provisioner"], gp3["parameters"], gp3["volumeBindingMode"]) == (
        "ebs.csi.aws.com", {"type": "gp3", "encrypted": "true"}, "WaitForFirstConsumer")
    assert plan.depends_on(defaults[0], plan.one(ADDON, "c-ebs-csi"))
    assert plan.outputs["storage"]["defaultStorageClass"] == "gp3"


def test_the_bucket_is_encrypted_and_never_public(plan):
    bucket = plan.one("aws:s3/bucket:Bucket", "c-models")
    kids = {r.type.split(":")[-1]: r.inputs for r in plan.children(bucket)}
    assert kids["BucketServerSideEncryptionConfiguration"]["rules"][0][
        "applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    assert {k: v for k, v in kids["BucketPublicAccessBlock"].items() if k != "bucket"} == {
        "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
        "restrictPublicBuckets": True}
    assert kids["BucketOwnershipControls"]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_only_the_workload_service_account_reaches_only_that_bucket(plan):
    role = plan.one(ROLE, "c-models")
    assert [v for k, v in trust(role).items() if k.endswith(":sub")] == [
        "system:serviceaccount:ai-workloads:aicp-data"]
    (policy,) = [r for r in plan.children(role) if r.type == POLICY]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    bucket = plan.outputs["storage"]["bucket"]
    assert {s["Resource"] for s in statements} == {f"arn:aws:s3:::{bucket}",
                                                   f"arn:aws:s3:::{bucket}/*"}
    assert not any("*" == a or a.endswith(":*") for s in statements for a in s["Action"])
    out = plan.outputs["storage"]
    assert out["serviceAccount"] == "ai-workloads/aicp-data"
    assert out["identity"].endswith(":role/c-models")


def test_mountpoint_mounts_with_the_pods_own_identity(plan):
    assert plan.one(ADDON, "c-mountpoint-s3").inputs["addonName"] == (
        "aws-mountpoint-s3-csi-driver")
    pv = plan.outputs["storage"]["mountRecipe"]["persistentVolume"]["spec"]
    assert pv["csi"]["driver"] == "s3.csi.aws.com"
    assert pv["csi"]["volumeAttributes"] == {"bucketName": plan.outputs["storage"]["bucket"],
                                             "authenticationSource": "pod"}
    assert "allow-delete" in pv["mountOptions"]


def test_no_static_credentials_anywhere(plan):
    text = json.dumps([r.inputs for r in plan.resources])
    assert "aws_access_key_id" not in text.lower() and "secretaccesskey" not in text.lower()


def test_gpu_nodes_stripe_their_nvme_for_containerd_and_the_kubelet(plan):
    template = plan.one("aws:ec2/launchTemplate:LaunchTemplate", "c-gpu-h100")
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert "Content-Type: application/node.eks.aws" in user_data
    assert "localStorage:\n      strategy: RAID0" in user_data
    assert "userData" not in plan.one("aws:ec2/launchTemplate:LaunchTemplate",
                                      "c-system").inputs


def test_a_named_bucket_is_used_not_created_and_the_role_is_scoped_to_it():
    plan = _plan(bucket_name="team-models")
    assert plan.of_type("aws:s3/bucket:Bucket") == []
    (policy,) = [r for r in plan.of_type(POLICY) if r.name == "c-models"]
    assert "arn:aws:s3:::team-models/*" in policy.inputs["policy"]
    assert plan.outputs["storage"]["bucket"] == "team-models"


def test_parallel_fs_is_off_by_default_and_lustre_links_the_bucket_when_on(plan):
    assert plan.of_type("aws:fsx/lustreFileSystem:LustreFileSystem") == []
    on = _plan(parallel_fs=True)
    fs = on.one("aws:fsx/lustreFileSystem:LustreFileSystem", "c-lustre")
    assert (fs.inputs["deploymentType"], fs.inputs["storageCapacity"]) == ("PERSISTENT_2", 1200)
    dra = on.one("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation")
    assert dra.inputs["dataRepositoryPath"] == f"s3://{on.outputs['storage']['bucket']}"
    assert on.one(ADDON, "c-fsx-csi").inputs["addonName"] == "aws-fsx-csi-driver"
    assert on.outputs["storage"]["parallelFileSystem"]["driver"] == "fsx.csi.aws.com"


def test_storage_off_declares_none_of_it():
    plan = _plan(block=False, bucket=False, local_nvme=False)
    assert plan.of_type(CLASS) == [] and plan.of_type("aws:s3/bucket:Bucket") == []
    assert {a.inputs["addonName"] for a in plan.of_type(ADDON)} == {"vpc-cni"}
