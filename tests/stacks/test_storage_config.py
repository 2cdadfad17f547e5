"""The ``aicp:storage`` block (#20) under bad values: one exact line on stderr, exit 2,
before anything is declared, through the real ``aicp plan`` entry; and what the example
stacks plan by default (block storage and the bucket on, parallel FS off)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.main import app
from tests.stacks.test_config_errors import Case, at, both, write_project

BUCKET_RULE = ("is not a bucket name every cloud accepts: 3-63 lowercase letters, digits "
               "and single hyphens, starting and ending with a letter or digit")
CASES = [
    Case("bucket name with capitals", "aws",
         f"error: aicp:storage.bucket.name: 'Team_Models' {BUCKET_RULE}",
         config=at("storage", {"bucket": {"name": "Team_Models"}})),
    Case("bucket name with two hyphens in a row (Azure containers refuse it)", "gcp",
         f"error: aicp:storage.bucket.name: 'team--models' {BUCKET_RULE}",
         config=at("storage", {"bucket": {"name": "team--models"}})),
    Case("typo in a storage key", "aws",
         "error: aicp:storage.bukcet: unknown key; did you mean bucket? allowed here: block, "
         "bucket, parallelFs, localNvme, s3",
         config=at("storage", {"bukcet": {"enabled": False}})),
    Case("parallel FS smaller than any Lustre", "aws",
         "error: aicp:storage.parallelFs.capacityGib: 100 must be at least 1200",
         config=at("storage", {"parallelFs": {"enabled": True, "capacityGib": 100}})),
    Case("localNvme not a boolean", "gcp",
         "error: aicp:storage.localNvme: 'yes' is not true or false",
         config=at("storage", {"localNvme": "yes"})),
    # Azure Managed Lustre needs a subnet of its own in the VNet aicp creates
    # (learn.microsoft.com/azure/azure-managed-lustre/amlfs-prerequisites).
    Case("Azure Managed Lustre on an existing subnet", "azure",
         "error: aicp:storage.parallelFs.enabled: Azure Managed Lustre on an existing subnet "
         "is not set up by aicp (it needs a subnet of its own in the VNet): set it to false, "
         "or let aicp create the VNet",
         config=lambda c: both(c, at("storage", {"parallelFs": {"enabled": True}}),
                               at("network.subnetIds", [
                                   "/subscriptions/s/resourceGroups/g/providers/"
                                   "Microsoft.Network/virtualNetworks/v/subnets/nodes"]))),
    Case("Azure Managed Lustre above the subnet table", "azure",
         "error: aicp:storage.parallelFs.capacityGib: 410624 GiB is above 400 TiB, the "
         "largest Azure Managed Lustre aicp sizes a subnet for; ask for less",
         config=at("storage", {"parallelFs": {"enabled": True, "capacityGib": 410624}})),
    Case("S3 keys on a cloud", "aws",
         "error: aicp:storage.s3: only for target onprem; on a cloud the stack's bucket is "
         "reached with workload identity, no keys: remove it",
         config=at("storage", {"s3": {"endpoint": "https://s3.example", "secret": "keys"}})),
    Case("on-prem S3 endpoint that is not a URL", "onprem",
         "error: aicp:storage.s3.endpoint: 'minio:9000' is not an http(s) URL "
         "(https://minio.example.internal:9000)",
         config=at("storage", {"s3": {"endpoint": "minio:9000", "secret": "keys"},
                               "bucket": {"name": "models"}}),
         kubeconfig="apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"),
    Case("on-prem parallel FS", "onprem",
         "error: aicp:storage.parallelFs.enabled: aicp sets up no parallel file system "
         "on-prem: set it to false and mount yours with its CSI driver",
         config=at("storage", {"parallelFs": {"enabled": True}}),
         kubeconfig="apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_storage_config_is_one_exact_line_exit_2(case: Case, tmp_path: Path):
    write_project(tmp_path, case)
    result = CliRunner().invoke(app, ["plan", "--stack", case.stack, "--project-dir",
                                      str(tmp_path)])
    assert isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr == case.expected + "\n"


def plan(tmp_path: Path, case: Case) -> dict:
    write_project(tmp_path, case)
    result = CliRunner().invoke(app, ["plan", "--stack", case.stack, "--project-dir",
                                      str(tmp_path), "--output", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("stack", "default_class"), [
    ("aws", "gp3"), ("gcp", "standard-rwo"), ("azure", "default")])
def test_each_cloud_example_plans_a_default_class_the_bucket_and_its_recipe(
        stack, default_class, tmp_path):
    doc = plan(tmp_path, Case("example", stack, ""))
    out = doc["outputs"]
    assert out["defaultStorageClass"] == default_class
    assert out["storage"]["serviceAccount"] == "ai-workloads/aicp-data"
    assert out["storage"]["bucket"] and out["storage"]["mountRecipe"]["pod"]
    assert out["storage"]["parallelFileSystem"] is None
    recipe = next(r for r in doc["resources"] if r["type"] == "kubernetes:core/v1:ConfigMap"
                  and r["inputs"]["metadata"]["name"] == "aicp-storage")
    assert recipe["inputs"]["metadata"] == {"labels": {"aicp.dev/storage": "model-bucket"},
                                            "name": "aicp-storage", "namespace": "ai-workloads"}
    assert json.loads(recipe["inputs"]["data"]["recipe.json"])


def test_the_azure_example_with_parallel_fs_plans_amlfs_and_its_csi_driver(tmp_path):
    doc = plan(tmp_path, Case("lustre", "azure", "",
                              config=at("storage", {"parallelFs": {"enabled": True}})))
    lustre = doc["outputs"]["storage"]["parallelFileSystem"]
    assert (lustre["driver"], lustre["storageClass"], lustre["capacityTib"]) == (
        "azurelustre.csi.azure.com", "azurelustre-rwx", 4)
    types = {r["type"] for r in doc["resources"]}
    assert {"azure-native:storagecache:AmlFilesystem", "aicp:addons:AzureLustreCsi"} <= types
    assert doc["outputs"]["addons"]["azurelustre-csi"] == "0.6.0"


def test_the_plan_table_lists_the_storage(tmp_path):
    write_project(tmp_path, Case("example", "aws", ""))
    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--project-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("Storage:")
    assert lines[start + 1:start + 4] == [
        "  default StorageClass: gp3",
        "  model bucket: aicp-aws-models-plan (s3.csi.aws.com), ServiceAccount "
        "ai-workloads/aicp-data",
        "  identity: arn:aws:iam::123456789012:role/aicp-aws-models"]


def test_k3s_uses_its_bundled_local_path_class(tmp_path):
    from tests.stacks.test_config_errors import K3S, SECURE, both

    doc = plan(tmp_path, Case("k3s", "onprem", "", config=lambda c: both(
        c, at("onprem", K3S), at("sshPrivateKey", SECURE))))
    assert doc["outputs"]["defaultStorageClass"] == "local-path"
    assert doc["outputs"]["storage"]["bucket"] is None


def test_an_existing_cluster_exports_the_named_class_and_the_users_s3_endpoint(tmp_path):
    kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
    doc = plan(tmp_path, Case("existing", "onprem", "", kubeconfig=kubeconfig, config=at(
        "storage", {"block": {"defaultClass": "fast-nvme"}, "bucket": {"name": "models"},
                    "s3": {"endpoint": "https://minio.lab:9000", "secret": "minio-keys"}})))
    storage = doc["outputs"]["storage"]
    assert doc["outputs"]["defaultStorageClass"] == "fast-nvme"
    assert storage["s3"] == {"endpoint": "https://minio.lab:9000", "bucket": "models",
                             "secret": "ai-workloads/minio-keys"}
    # No identity to bind on-prem: no ServiceAccount recipe, no keys written by aicp.
    assert storage["bucket"] is None and storage["mountRecipe"] is None
    assert not [r for r in doc["resources"] if r["type"] == "kubernetes:core/v1:Secret"
                and "minio" in json.dumps(r["inputs"])]
    assert not [r for r in doc["resources"] if r["name"].startswith("storage-")]


def test_the_recipe_the_aws_stack_writes_has_the_shape_the_emulated_platform_serves(tmp_path):
    # The emulated platform's ConfigMap (tests/kubeapi/controllers/storage.py) is what
    # aicp verify's data_access check passes on; the stack must write the same shape.
    from tests.kubeapi.controllers.storage import aws_objects

    doc = plan(tmp_path, Case("example", "aws", ""))
    written = next(r["inputs"] for r in doc["resources"]
                   if r["type"] == "kubernetes:core/v1:ConfigMap"
                   and r["inputs"]["metadata"]["name"] == "aicp-storage")
    world = next(x for x in aws_objects() if x["kind"] == "ConfigMap")
    assert written["metadata"]["labels"] == world["metadata"]["labels"]
    assert set(written["data"]) == set(world["data"])
    ours, theirs = (json.loads(d["data"]["recipe.json"])["persistentVolume"]
                    for d in (written, world))
    assert ours["csi"]["driver"] == theirs["csi"]["driver"] == written["data"]["driver"]
    assert ours["csi"]["volumeAttributes"] == {
        **theirs["csi"]["volumeAttributes"], "bucketName": written["data"]["bucket"]}
    assert (ours["accessModes"], ours["storageClassName"]) == (
        theirs["accessModes"], theirs["storageClassName"])
