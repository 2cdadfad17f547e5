"""GKE storage (#20), as Pulumi would send it: the PD CSI driver kept on with GKE's one
default class, a Hyperdisk class where GPU machines attach only Hyperdisk, the model bucket
(uniform access, public access prevented), the Cloud Storage FUSE driver, and an IAM binding
of exactly that bucket to the workload ServiceAccount's principal; local SSD for images."""

from __future__ import annotations

import json

import pulumi
import pytest

from aicp.cli import offline
from aicp.components.contract import GpuPoolRequest
from aicp.components.storage import StorageArgs

CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
POOL = "gcp:container/nodePool:NodePool"


def _plan(accelerator: str = "h100", instance_type: str | None = "a3-highgpu-8g",
          **storage) -> offline.Plan:
    def program() -> None:
        from aicp.components.gcp import GkeCluster, GkeClusterArgs

        cluster = GkeCluster("c", GkeClusterArgs(
            cluster_name="aicp", kubernetes_version="1.35", project="proj-1",
            region="us-central1", zones=("us-central1-a",), gpu_pools=(GpuPoolRequest(
                name="gpu", accelerator=accelerator, instance_type=instance_type,
                min_nodes=0, max_nodes=2, allocator="device-plugin"),),
            storage=StorageArgs(**storage)))
        storage_out = cluster.outputs.storage
        pulumi.export("storage", storage_out.export() if storage_out else None)

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def addons(plan: offline.Plan) -> dict:
    return plan.one("gcp:container/cluster:Cluster").inputs["addonsConfig"]


def test_the_pd_and_gcs_fuse_drivers_are_on_and_gkes_default_class_is_the_only_default(plan):
    assert addons(plan) == {"gcePersistentDiskCsiDriverConfig": {"enabled": True},
                            "gcsFuseCsiDriverConfig": {"enabled": True}}
    # GKE's standard-rwo is the default; aicp declares no second one.
    assert not [c for c in plan.of_type(CLASS) if c.inputs["metadata"].get("annotations")]
    assert plan.outputs["storage"]["defaultStorageClass"] == "standard-rwo"


def test_hyperdisk_only_machines_get_a_hyperdisk_class_that_is_not_a_second_default():
    plan = _plan("h200", "a3-ultragpu-8g")
    (klass,) = plan.of_type(CLASS)
    assert (klass.inputs["provisioner"], klass.inputs["parameters"]) == (
        "pd.csi.storage.gke.io", {"type": "hyperdisk-balanced"})
    assert "annotations" not in klass.inputs["metadata"]


def test_the_bucket_has_uniform_access_and_public_access_prevented(plan):
    bucket = plan.one("gcp:storage/bucket:Bucket").inputs
    assert (bucket["uniformBucketLevelAccess"], bucket["publicAccessPrevention"]) == (
        True, "enforced")
    assert bucket["name"] == plan.outputs["storage"]["bucket"] == "aicp-models-proj-1"


def test_only_the_workload_service_accounts_principal_is_bound_to_that_bucket(plan):
    (binding,) = plan.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert binding.inputs == {
        "bucket": "aicp-models-proj-1", "role": "roles/storage.objectUser",
        "member": "principal://iam.googleapis.com/projects/123456789012/locations/global/"
                  "workloadIdentityPools/proj-1.svc.id.goog/subject/ns/ai-workloads/sa/"
                  "aicp-data"}
    # No storage role anywhere else (a project-wide grant would reach every bucket).
    storage_roles = [r for r in plan.resources if str(r.inputs.get("role", "")).startswith(
        "roles/storage")]
    assert storage_roles == [binding]


def test_the_recipe_mounts_the_bucket_inline_with_the_fuse_sidecar(plan):
    pod = plan.outputs["storage"]["mountRecipe"]["pod"]
    assert pod["metadata"]["annotations"] == {"gke-gcsfuse/volumes": "true"}
    assert pod["spec"]["volumes"][0]["csi"] == {
        "driver": "gcsfuse.csi.storage.gke.io",
        "volumeAttributes": {"bucketName": "aicp-models-proj-1", "mountOptions": "implicit-dirs"}}
    assert pod["spec"]["serviceAccountName"] == "aicp-data"


@pytest.mark.parametrize(("accelerator", "machine", "count"), [
    ("h100", "a3-highgpu-8g", 0), ("a100", "a2-ultragpu-8g", 8), ("l4", "g2-standard-8", None)])
def test_gpu_pools_back_ephemeral_storage_with_their_local_ssd(accelerator, machine, count):
    plan = _plan(accelerator, machine)
    config = plan.one(POOL, "c-gpu-gpu").inputs["nodeConfig"]
    if count is None:
        assert "ephemeralStorageLocalSsdConfig" not in config
    else:
        assert config["ephemeralStorageLocalSsdConfig"] == {"localSsdCount": count}


def test_a_named_bucket_is_bound_not_created():
    plan = _plan(bucket_name="team-models")
    assert plan.of_type("gcp:storage/bucket:Bucket") == []
    (binding,) = plan.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert binding.inputs["bucket"] == "team-models"


def test_managed_lustre_is_off_by_default_and_gets_its_driver_class_and_peering_when_on(plan):
    assert "lustreCsiDriverConfig" not in addons(plan)
    on = _plan(parallel_fs=True)
    assert addons(on)["lustreCsiDriverConfig"] == {"enabled": True}
    lustre = [c for c in on.of_type(CLASS) if c.inputs["provisioner"] ==
              "lustre.csi.storage.gke.io"]
    assert len(lustre) == 1
    assert on.one("gcp:servicenetworking/connection:Connection")
    assert json.dumps(on.outputs["storage"]["parallelFileSystem"])
