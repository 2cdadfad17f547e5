"""Each team's namespace reaches the model bucket with workload identity (#24 item 5), as the
example stacks plan it: the same ServiceAccount ``aicp-data`` and ``aicp-storage`` recipe in
every team namespace, bound through the cloud's own mechanism to exactly the stack's bucket,
and no namespace beyond the workload namespace and the teams' bound at all. Too many teams
for the cloud's limit are one line and exit 2, before anything is declared."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aicp.cli.main import app
from tests.stacks.test_config_errors import DROP, REPO, Case, at, write_project
from tests.stacks.test_storage_config import plan

SA = "aicp-data"
WORKLOADS = "ai-workloads"


def teams(stack: str) -> list[str]:
    """The example's team names, read from the example file itself."""
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    return [t["name"] for t in config["aicp:teams"]]


def of_type(doc: dict, type_: str) -> list[dict]:
    return [r for r in doc["resources"] if r["type"] == type_]


def bound(stack: str) -> set[str]:
    return {WORKLOADS, *teams(stack)}


@pytest.fixture(scope="module", params=["aws", "gcp", "azure"])
def example(request, tmp_path_factory) -> tuple[str, dict]:
    stack = request.param
    return stack, plan(tmp_path_factory.mktemp(stack), Case("example", stack, ""))


def test_the_examples_declare_two_teams():
    for stack in ("aws", "gcp", "azure"):
        assert len(teams(stack)) == 2, stack


def test_every_team_namespace_gets_the_service_account_and_recipe_and_no_other(example):
    stack, doc = example
    accounts = {r["inputs"]["metadata"]["namespace"]: r["inputs"]["metadata"]
                for r in of_type(doc, "kubernetes:core/v1:ServiceAccount")
                if r["inputs"]["metadata"]["name"] == SA}
    assert set(accounts) == bound(stack)
    # The same identity annotation (EKS role ARN, AKS client id; GKE none) everywhere.
    annotations = {json.dumps(m.get("annotations"), sort_keys=True) for m in accounts.values()}
    assert len(annotations) == 1
    recipes = {r["inputs"]["metadata"]["namespace"]: r["inputs"]
               for r in of_type(doc, "kubernetes:core/v1:ConfigMap")
               if r["inputs"]["metadata"]["name"] == "aicp-storage"}
    assert set(recipes) == bound(stack)
    for ns, recipe in recipes.items():
        assert recipe["metadata"]["labels"] == {"aicp.dev/storage": "model-bucket"}
        assert recipe["data"] == recipes[WORKLOADS]["data"], ns
        assert recipe["data"]["bucket"] == doc["outputs"]["storage"]["bucket"]
    # Each team's objects wait for Kueue, which creates the team's namespace.
    for r in of_type(doc, "kubernetes:core/v1:ServiceAccount"):
        if r["inputs"]["metadata"]["namespace"] in teams(stack):
            assert any(":Namespace::" in u and u.endswith(
                f"-team-{r['inputs']['metadata']['namespace']}") for u in r["dependsOn"])
    assert doc["outputs"]["storage"]["teamServiceAccounts"] == [
        f"{t}/{SA}" for t in teams(stack)]


def _aws(tmp_path: Path) -> dict:
    return plan(tmp_path, Case("example", "aws", ""))


def test_eks_the_bucket_role_trusts_exactly_the_teams_service_accounts(tmp_path):
    doc = _aws(tmp_path)
    bucket = doc["outputs"]["storage"]["bucket"]
    trusting = []
    for role in of_type(doc, "aws:iam/role:Role"):
        statements = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
        subs = [v for s in statements for k, v in s.get("Condition", {}).get(
            "StringEquals", {}).items() if k.endswith(":sub")]
        if SA in json.dumps(subs):
            trusting.append((role, statements, subs))
    # One role, trusted by exactly the workload's and each team's ServiceAccount.
    ((role, statements, subs),) = trusting
    assert subs == [[f"system:serviceaccount:{ns}:{SA}" for ns in [WORKLOADS, *teams("aws")]]]
    assert [s["Action"] for s in statements] == ["sts:AssumeRoleWithWebIdentity"]
    assert [v for s in statements for k, v in s["Condition"]["StringEquals"].items()
            if k.endswith(":aud")] == ["sts.amazonaws.com"]
    # Its one permission names the bucket and its objects, nothing else.
    (policy,) = [r for r in of_type(doc, "aws:iam/rolePolicy:RolePolicy")
                 if r["parent"] == role["urn"]]
    resources = {res for s in json.loads(policy["inputs"]["policy"])["Statement"]
                 for res in ([s["Resource"]] if isinstance(s["Resource"], str)
                             else s["Resource"])}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    annotation = {r["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
                  for r in of_type(doc, "kubernetes:core/v1:ServiceAccount")
                  if r["inputs"]["metadata"]["name"] == SA}
    assert annotation == {doc["outputs"]["storage"]["identity"]}


def test_gke_one_bucket_member_per_namespace_principal_and_no_other(tmp_path):
    doc = plan(tmp_path, Case("example", "gcp", ""))
    bucket = doc["outputs"]["storage"]["bucket"]
    grants = [r["inputs"] for r in doc["resources"] if SA in json.dumps(r["inputs"])
              and r["type"].startswith("gcp:")]
    assert {g["bucket"] for g in grants} == {bucket}
    assert {g["role"] for g in grants} == {"roles/storage.objectUser"}
    principal = re.compile(r"^principal://iam\.googleapis\.com/projects/[^/]+/locations/global/"
                           r"workloadIdentityPools/[^/]+\.svc\.id\.goog/subject/ns/"
                           r"([^/]+)/sa/" + SA + "$")
    namespaces = [principal.match(g["member"]).group(1)  # type: ignore[union-attr]
                  for g in grants]
    assert sorted(namespaces) == sorted(bound("gcp"))
    assert all(r["type"] == "gcp:storage/bucketIAMMember:BucketIAMMember"
               for r in doc["resources"] if SA in json.dumps(r["inputs"])
               and r["type"].startswith("gcp:"))


def test_aks_one_federated_credential_per_namespace_created_one_after_another(tmp_path):
    doc = plan(tmp_path, Case("example", "azure", ""))
    credentials = of_type(doc, "azure-native:managedidentity:FederatedIdentityCredential")
    ours = [c for c in credentials if c["inputs"]["subject"].endswith(f":{SA}")]
    assert sorted(c["inputs"]["subject"] for c in ours) == sorted(
        f"system:serviceaccount:{ns}:{SA}" for ns in bound("azure"))
    # All on the one identity that holds the container grant, with AKS's audience.
    assert {c["parent"] for c in ours} == {ours[0]["parent"]}
    assert {tuple(c["inputs"]["audiences"]) for c in ours} == {("api://AzureADTokenExchange",)}
    (grant,) = [r for r in of_type(doc, "azure-native:authorization:RoleAssignment")
                if r["parent"] == ours[0]["parent"]]
    # Its scope is the one container (its id: ``<name>-id`` under the offline mocks).
    (container,) = of_type(doc, "azure-native:storage:BlobContainer")
    assert grant["inputs"]["scope"] == f"{container['name']}-id"
    # Entra ID refuses concurrent credential writes on one identity: each waits for another,
    # so they form one chain.
    urns = {c["urn"] for c in ours}
    waits = [c for c in ours if urns & set(c["dependsOn"])]
    assert len(waits) == len(ours) - 1
    assert len({tuple(sorted(urns & set(c["dependsOn"]))) for c in waits}) == len(waits)


def _refused(tmp_path: Path, stack: str, config) -> str:
    write_project(tmp_path, Case("too many teams", stack, "", config=config))
    result = CliRunner().invoke(app, ["plan", "--stack", stack, "--project-dir",
                                      str(tmp_path)])
    assert isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr.count("\n") == 1
    return result.stderr


def test_aks_refuses_more_teams_than_one_identity_has_credentials(tmp_path):
    many = at("teams", [{"name": f"team-{i:02d}", "quota": {}} for i in range(20)])
    assert _refused(tmp_path, "azure", many) == (
        "error: aicp:teams: 20 teams need 21 federated identity credentials on the model "
        "bucket's identity; Entra ID allows 20 per identity: declare at most 19 teams\n")


def test_aks_takes_nineteen_teams(tmp_path):
    many = at("teams", [{"name": f"team-{i:02d}", "quota": {}} for i in range(19)])
    doc = plan(tmp_path, Case("19 teams", "azure", "", config=many))
    assert len(of_type(doc, "azure-native:managedidentity:FederatedIdentityCredential")) >= 20


def test_eks_refuses_teams_whose_subjects_overflow_the_trust_policy(tmp_path):
    many = at("teams", [{"name": f"team-{i:02d}-" + "x" * 52, "quota": {}} for i in range(20)])
    assert re.fullmatch(
        r"error: aicp:teams: 20 teams make the model bucket role's trust policy about \d+ "
        r"characters, more than the 2048 IAM allows a role's trust policy: declare fewer "
        r"teams or shorter team names\n", _refused(tmp_path, "aws", many))


# --- on-prem: the data issue's design has no workload identity to bind a team to ------------
# (#20: "On-prem: an S3-compatible endpoint and a Secret given by the user"; a pod reads only
# Secrets of its own namespace, k8s.io/api core/v1 SecretVolumeSource.secretName.)
NO_IDENTITY = "no workload identity on-prem (the data design has none to bind)"
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def _onprem(tmp_path: Path, storage: dict | None = None) -> tuple[dict, list[str]]:
    """The on-prem example (an existing cluster) planned as JSON and as the table."""
    case = Case("on-prem teams", "onprem", "", kubeconfig=KUBECONFIG,
                config=at("storage", storage) if storage else None)
    doc = plan(tmp_path, case)
    result = CliRunner().invoke(app, ["plan", "--stack", "onprem", "--project-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    return doc, result.stdout.splitlines()


def test_onprem_teams_get_no_identity_and_the_plan_says_so_once_per_team(tmp_path):
    doc, lines = _onprem(tmp_path)
    why = f"{NO_IDENTITY}; no object store is configured either (aicp:storage.s3)"
    assert doc["outputs"]["storage"]["teamsWithoutIdentity"] == {
        t: why for t in teams("onprem")}
    assert "teamServiceAccounts" not in doc["outputs"]["storage"]
    # Nothing pretends to be an identity: no workload ServiceAccount, in any namespace.
    assert not [r for r in of_type(doc, "kubernetes:core/v1:ServiceAccount")
                if r["inputs"]["metadata"]["name"] == SA]
    said = [line for line in lines if line.startswith("  team namespace ")]
    assert said == [f"  team namespace {t}: {why}" for t in teams("onprem")]


def test_onprem_teams_are_told_which_secret_to_create_in_their_namespace(tmp_path):
    doc, lines = _onprem(tmp_path, {
        "bucket": {"name": "models"},
        "s3": {"endpoint": "https://minio.lab:9000", "secret": "minio-keys"}})
    said = [line for line in lines if line.startswith("  team namespace ")]
    assert said == [
        f"  team namespace {t}: {NO_IDENTITY}; create Secret minio-keys with the keys of "
        f"https://minio.lab:9000 in this namespace for its pods to reach bucket models"
        for t in teams("onprem")]
    # aicp writes no keys: no Secret is declared in a team's namespace.
    assert not [r for r in of_type(doc, "kubernetes:core/v1:Secret")
                if r["inputs"]["metadata"].get("namespace") in teams("onprem")]


def test_a_stack_without_teams_exports_no_team_entry(tmp_path):
    doc = plan(tmp_path, Case("no teams", "onprem", "", kubeconfig=KUBECONFIG,
                              config=at("teams", DROP)))
    assert "teamsWithoutIdentity" not in doc["outputs"]["storage"]
