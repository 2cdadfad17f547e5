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


def test_a_named_container_is_used():
    assert _plan(bucket_name="team-models").outputs["storage"]["bucket"] == "team-models"


# --- Azure Managed Lustre behind aicp:storage.parallelFs ---------------------------------
# Sources (cited next to the code in components/azure.py): learn.microsoft.com/azure/
# azure-managed-lustre/amlfs-prerequisites (a subnet of its own; /24 and larger by size),
# .../create-file-system-portal#throughput-configurations (Premium-500: 4 TiB steps),
# kubernetes-sigs/azurelustre-csi-driver docs/examples/storageclass_existing_lustre.yaml.

@pytest.fixture(scope="module")
def lustre() -> offline.Plan:
    return _plan(parallel_fs=True)


def test_the_lustre_file_system_gets_its_own_subnet_beside_the_nodes(lustre):
    subnets = {r.inputs["subnetName"]: r.inputs for r in
               lustre.of_type("azure-native:network:Subnet")}
    assert subnets["nodes"]["addressPrefix"] == "10.0.0.0/17"
    assert subnets["lustre"]["addressPrefix"] == "10.0.128.0/24"  # not inside the nodes'
    fs = lustre.one("azure-native:storagecache:AmlFilesystem").inputs
    assert fs["filesystemSubnet"] == "c-lustre-id"  # the lustre subnet, not the nodes'


def test_1200_gib_buys_the_smallest_amlfs_and_the_output_says_so(lustre):
    fs = lustre.one("azure-native:storagecache:AmlFilesystem").inputs
    assert fs["sku"] == {"name": "AMLFS-Durable-Premium-500"}
    assert fs["storageCapacityTiB"] == 4
    assert fs["maintenanceWindow"] == {"dayOfWeek": "Saturday", "timeOfDayUTC": "22:00"}
    out = lustre.outputs["storage"]["parallelFileSystem"]
    assert (out["capacityGib"], out["capacityTib"], out["sku"]) == (
        1200, 4, "AMLFS-Durable-Premium-500")
    from aicp.components.azure import amlfs_tib
    assert [amlfs_tib(g) for g in (4096, 4097, 16 * 1024)] == [4, 8, 16]


def test_the_storage_class_mounts_the_file_system_by_its_mgs_address(lustre):
    (klass,) = [r for r in lustre.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
                if r.inputs["provisioner"] == "azurelustre.csi.azure.com"]
    assert klass.inputs["parameters"] == {"fs-name": "lustrefs",
                                          "mgs-ip-address": "c-lustre-mgs"}
    assert (klass.inputs["reclaimPolicy"], klass.inputs["volumeBindingMode"]) == (
        "Retain", "Immediate")  # Delete would remove the file system with the claim
    assert "storageclass.kubernetes.io/is-default-class" not in str(klass.inputs)
    out = lustre.outputs["storage"]["parallelFileSystem"]
    assert (out["driver"], out["storageClass"], out["mgsAddress"]) == (
        "azurelustre.csi.azure.com", "azurelustre-rwx", "c-lustre-mgs")


def test_no_lustre_is_declared_when_the_key_is_off(plan):
    assert plan.of_type("azure-native:storagecache:AmlFilesystem") == []
    assert plan.outputs["storage"]["parallelFileSystem"] is None


@pytest.mark.parametrize(("change", "path"), [
    ({"subnet_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                   "virtualNetworks/v/subnets/nodes"}, "storage.parallel_fs"),
    ({"vnet_cidr": "10.0.0.0/24"}, "vnet_cidr"),
])
def test_lustre_is_refused_before_anything_where_it_has_no_subnet_of_its_own(change, path):
    from aicp.components.azure import AksClusterArgs

    with pytest.raises(InputPropertyError) as refused:
        AksClusterArgs(cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
                       gpu_pools=(H100,), storage=StorageArgs(parallel_fs=True), **change)
    assert refused.value.property_path == path


def test_a_size_above_the_subnet_table_is_refused():
    from aicp.components.azure import AksClusterArgs

    with pytest.raises(InputPropertyError) as refused:
        AksClusterArgs(cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
                       gpu_pools=(H100,), storage=StorageArgs(
                           parallel_fs=True, parallel_fs_capacity_gib=401 * 1024))
    assert refused.value.property_path == "storage.parallel_fs_capacity_gib"


# --- local NVMe on GPU pools behind aicp:storage.localNvme ---------------------------------
# AKS agent-pool kubeletDiskType "Temporary": emptyDir, container runtime data root and
# kubelet ephemeral storage on the temp disk (AKS API; learn.microsoft.com/azure/aks/
# best-practices-storage-nvme); ND H100 v5's temp storage is its local NVMe
# (learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nd-h100-v5-series).

def _pool(plan: offline.Plan, name: str) -> dict:
    return next(r.inputs for r in plan.of_type("azure-native:containerservice:AgentPool")
                if r.inputs["agentPoolName"] == name)


def _nd_plan(**storage) -> offline.Plan:
    def program() -> None:
        from aicp.components.azure import AksCluster, AksClusterArgs

        AksCluster("c", AksClusterArgs(
            cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
            gpu_pools=(H100, T4), storage=StorageArgs(**storage)))

    return offline.run(program, {})


T4 = GpuPoolRequest(name="t4", accelerator="t4", min_nodes=0, max_nodes=2,
                    allocator="device-plugin")


def test_an_nd_h100_pool_keeps_images_and_scratch_on_its_local_nvme():
    plan = _nd_plan()
    h100, t4 = _pool(plan, "h100"), _pool(plan, "t4")
    assert h100["vmSize"] == "Standard_ND96isr_H100_v5"
    assert h100["kubeletDiskType"] == "Temporary"
    assert t4["vmSize"] == "Standard_NC4as_T4_v3"
    assert "kubeletDiskType" not in t4  # no local NVMe: the OS disk, unchanged


def test_local_nvme_off_leaves_every_pool_on_its_os_disk():
    plan = _nd_plan(local_nvme=False)
    assert "kubeletDiskType" not in _pool(plan, "h100")


def test_the_lustre_csi_driver_is_installed_from_its_pinned_chart_onto_the_gpu_pools():
    def program() -> None:
        from aicp.addons.azurelustre_csi import AzureLustreCsi, wanted
        from aicp.components.azure import AksCluster, AksClusterArgs

        cluster = AksCluster("c", AksClusterArgs(
            cluster_name="aicp-az", kubernetes_version="1.35", location="eastus2",
            gpu_pools=(H100,), storage=StorageArgs(parallel_fs=True))).outputs
        assert wanted(cluster)
        AzureLustreCsi("azurelustre-csi", cluster)

    release = offline.run(program, {}).one("kubernetes:helm.sh/v3:Release").inputs
    # kubernetes-sigs/azurelustre-csi-driver charts/README.md: the released OCI chart,
    # release "azurelustre" in kube-system; node.tolerations replace the chart's own set.
    assert (release["chart"], release["version"], release["name"], release["namespace"]) == (
        "oci://mcr.microsoft.com/microsoft.azuremanagedlustre/azurelustre-csi-driver",
        "0.6.0", "azurelustre", "kube-system")
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present",
            "effect": "NoSchedule"} in release["values"]["node"]["tolerations"]
