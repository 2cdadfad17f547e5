"""AKS storage (#20), as Pulumi would send it: the Disk CSI driver kept on with AKS's one
default class, the Blob CSI driver, a storage account that allows no public access and no
shared keys, and a managed identity federated with exactly the workload ServiceAccount and
granted data access on exactly the model container."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.errors import InputPropertyError

from aicp.cli import offline
from aicp.components.contract import GpuPoolRequest
from aicp.components.storage import StorageArgs

ROLE = "azure-native:authorization:RoleAssignment"
H100 = GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                      allocator="device-plugin")


def _plan(**storage) -> offline.Plan:
    def program() -> None:
        from aicp.components.azure import AksCluster, AksClusterArgs

        cluster = AksCluster("c", AksClusterArgs(
            cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
            gpu_pools=(H100,), storage=StorageArgs(**storage)))
        out = cluster.outputs.storage
        pulumi.export("storage", out.export() if out else None)

    return offline.run(program, {})


@pytest.fixture(scope="module")
def plan() -> offline.Plan:
    return _plan()


def test_the_disk_and_blob_drivers_are_on_and_aks_default_class_is_the_only_default(plan):
    cluster = plan.one("azure-native:containerservice:ManagedCluster")
    assert cluster.inputs["storageProfile"] == {"blobCSIDriver": {"enabled": True},
                                                "diskCSIDriver": {"enabled": True}}
    assert plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass") == []
    assert plan.outputs["storage"]["defaultStorageClass"] == "default"


def test_the_storage_account_is_encrypted_private_and_keyless(plan):
    account = plan.one("azure-native:storage:StorageAccount").inputs
    assert (account["allowBlobPublicAccess"], account["allowSharedKeyAccess"],
            account["enableHttpsTrafficOnly"], account["minimumTlsVersion"]) == (
        False, False, True, "TLS1_2")
    assert account["encryption"]["services"]["blob"]["enabled"] is True
    assert plan.one("azure-native:storage:BlobContainer").inputs["publicAccess"] == "None"


def test_only_the_workload_service_account_reaches_only_the_container(plan):
    credential = plan.one("azure-native:managedidentity:FederatedIdentityCredential").inputs
    assert credential["subject"] == "system:serviceaccount:ai-workloads:aicp-data"
    assert credential["audiences"] == ["api://AzureADTokenExchange"]
    (grant,) = [r for r in plan.of_type(ROLE) if r.name == "c-models-blob-data"]
    assert grant.inputs["scope"] == "c-models-container-id"  # the container, not the account
    assert grant.inputs["roleDefinitionId"].endswith(
        "/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe")  # Storage Blob Data Contributor
    assert grant.inputs["principalId"] == "c-models-principal"


def test_the_recipe_mounts_with_the_pods_token_and_the_identitys_client_id(plan):
    out = plan.outputs["storage"]
    csi = out["mountRecipe"]["persistentVolume"]["spec"]["csi"]
    assert csi["driver"] == "blob.csi.azure.com"
    assert csi["volumeAttributes"]["mountWithWorkloadIdentityToken"] == "true"
    assert csi["volumeAttributes"]["clientID"] == out["identity"] == "c-models-client"
    assert csi["volumeAttributes"]["containerName"] == out["bucket"] == "models"


def test_a_named_container_is_used_and_azure_managed_lustre_is_refused_before_anything():
    assert _plan(bucket_name="team-models").outputs["storage"]["bucket"] == "team-models"
    from aicp.components.azure import AksClusterArgs

    with pytest.raises(InputPropertyError) as refused:
        AksClusterArgs(cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
                       gpu_pools=(H100,), storage=StorageArgs(parallel_fs=True))
    assert refused.value.property_path == "storage.parallel_fs"
