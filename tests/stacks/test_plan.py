"""`aicp plan`: the real program, offline, mapped to conformance requirements."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.conformance import musts
from aicp.cli.main import app
from aicp.cli.plan import describe, run_stack, stack_config
from tests.addons.plan_checks import (
    RELEASE,
    declared_objects,
    invalid_objects,
    patch_errors,
    unpinned_releases,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def aws_stack():
    cfg, run = run_stack(stack_config(REPO, "aws"), "aws")
    return run, describe(cfg, run, "aws")


@pytest.fixture(scope="module")
def aws_run(aws_stack):
    return aws_stack[0]


@pytest.fixture(scope="module")
def aws_plan(aws_stack) -> dict:
    return aws_stack[1]


def example_stack_config(stack: str, tmp: Path) -> dict:
    """An example stack as a user would plan it; on-prem's kubeconfig file made to exist."""
    raw = stack_config(REPO, stack)
    if stack == "onprem":
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n"
                              "users: []\n")
        raw["aicp:onprem"] = {**raw["aicp:onprem"], "kubeconfig": str(kubeconfig)}
    return raw


EXAMPLES = sorted(p.name.split(".")[1] for p in REPO.glob("Pulumi.*.yaml"))


@pytest.fixture(scope="module", params=EXAMPLES)
def example_plan(request, tmp_path_factory):
    raw = example_stack_config(request.param, tmp_path_factory.mktemp(request.param))
    cfg, run = run_stack(raw, request.param)
    return request.param, describe(cfg, run, request.param), run


def test_every_target_has_an_example_stack():
    assert {"aws", "azure", "gcp", "onprem"} <= set(EXAMPLES)


def test_example_stack_serves_every_must_requirement_or_says_why_not(example_plan):
    stack, plan, _ = example_plan
    version = plan["checklistVersion"]
    if stack in ("aws-training", "azure-training"):
        # Their fabric pools start at zero, which on EKS and AKS takes the device plugin
        # (a DRA pool must keep a node there): the one MUST they leave is dra_support, and
        # the example's header says so and names the conformant example.
        assert plan["unservedMust"] == ["dra_support"]
        header = (REPO / f"Pulumi.{stack}.yaml").read_text().split("config:")[0]
        assert "dra_support is not served here" in header and "conformant one" in header
        return
    assert plan["unservedMust"] == []
    for rid in musts(version):
        assert rid in plan["requirements"] or plan["notApplicable"].get(rid), rid
    if stack == "onprem":
        assert "cluster_autoscaling" in plan["notApplicable"]
        assert not [r for r in plan["resources"] if r["type"] == "aicp:addons:ClusterAutoscaler"
                    and r["requirements"]]


def test_every_object_an_example_stack_declares_validates_against_upstream_schemas(
        example_plan):
    _, _, run = example_plan
    assert len(declared_objects(run)) > 10
    assert invalid_objects(run) == {}
    patches = {f"{r.type} {r.name}": patch_errors(r) for r in run.resources
               if r.type.startswith("kubernetes:") and r.type.endswith("Patch")}
    assert all(errors == [] for errors in patches.values()), patches


def test_every_helm_release_of_an_example_stack_is_pinned_to_the_catalog(example_plan):
    _, _, run = example_plan
    assert run.of_type(RELEASE)
    assert unpinned_releases(run) == []


def test_custom_resources_wait_for_the_release_that_brings_their_crds(aws_run):
    releases = {r.inputs["chart"]: r for r in aws_run.of_type(RELEASE)}
    kueue = releases["oci://registry.k8s.io/kueue/charts/kueue"]
    for cr in aws_run.resources:
        if cr.type.startswith("kubernetes:kueue.x-k8s.io/"):
            assert aws_run.depends_on(cr, kueue), cr.name
    gateway = aws_run.one("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    crds = aws_run.one("kubernetes:yaml/v2:ConfigFile", "gateway-api-crds")
    assert aws_run.depends_on(gateway, crds)


def test_gpu_operator_waits_for_the_servicemonitor_crd(aws_run):
    crds = [r for r in aws_run.of_type(RELEASE)
            if r.inputs["chart"] == "prometheus-operator-crds"]
    operator = [r for r in aws_run.of_type(RELEASE) if r.inputs["chart"] == "gpu-operator"]
    assert crds and operator and aws_run.depends_on(operator[0], crds[0])


def test_plan_keeps_the_kubeconfig_secret(aws_plan):
    assert "kubeconfig" in aws_plan["secretOutputs"]
    assert aws_plan["outputs"]["kubeconfig"] == "[secret]"
    providers = [r for r in aws_plan["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert providers and all("kubeconfig" in p["secretPaths"] for p in providers)


def test_stack_exports_what_verify_needs(aws_plan):
    out = aws_plan["outputs"]
    assert out["checklistVersion"] == "1.35"
    pools = {p["name"]: p for p in out["gpuPools"]}
    # One allocator for every pool under the GPU Operator: both L4 pools are DRA pools,
    # which keep a node on EKS; the second is Spot.
    assert pools["l4"]["gpusPerNode"] == 1 and pools["l4"]["minNodes"] == 1
    assert pools["l4-spot"]["capacityType"] == "spot" and pools["l4-spot"]["minNodes"] == 1
    assert {p["allocator"] for p in pools.values()} == {"dra"}
    assert out["addons"]["kueue"] == "0.19.2"


def test_plan_json_lists_every_resource_with_its_requirements():
    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--output", "json",
                                      "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"type", "name", "parent", "inputs", "requirements"} <= set(doc["resources"][0])
    kueue = [r for r in doc["resources"] if r["type"] == "aicp:addons:Kueue"]
    assert kueue and "gang_scheduling" in kueue[0]["requirements"]


def all_keys_sorted(value) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(map(all_keys_sorted, value.values()))
    if isinstance(value, list):
        return all(map(all_keys_sorted, value))
    return True


def test_plan_output_is_the_same_on_every_run():
    # A plan committed for review must not churn: component order, resource order and
    # every dependsOn list come out the same each time (the SDK registers resources in
    # whatever order its tasks finish and keeps dependencies in a set).
    docs = set()
    for _ in range(5):
        result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--output", "json",
                                          "--project-dir", str(REPO)])
        assert result.exit_code == 0, result.output
        docs.add(hashlib.sha256(result.stdout.encode()).hexdigest())
    assert len(docs) == 1
    doc = json.loads(result.stdout)
    for r in doc["resources"]:
        assert r["dependsOn"] == sorted(r["dependsOn"]), r["urn"]
        # Input keys arrive in the hash order of a protobuf map, which differs between
        # processes (PYTHONHASHSEED): only a sorted order is the same in every one.
        assert all_keys_sorted(r["inputs"]), r["urn"]
    tables = {CliRunner().invoke(app, ["plan", "--stack", "aws", "--project-dir",
                                       str(REPO)]).stdout for _ in range(2)}
    assert len(tables) == 1


def test_plan_table_ends_by_naming_the_served_must_requirements():
    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Every MUST requirement of checklist 1.35 is served (9)")


def test_unknown_stack_is_one_line_listing_the_stacks_there():
    result = CliRunner().invoke(app, ["plan", "--stack", "nope", "--project-dir", str(REPO)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: --stack: no Pulumi.nope.yaml in {REPO}; stacks here: {', '.join(EXAMPLES)}")


@pytest.mark.parametrize("stack", ["aws", "myorg/aws", "myorg/aicp/aws"])
def test_a_fully_qualified_stack_name_reads_the_stack_file_pulumi_reads(stack):
    # Pulumi names the config file after the stack's own name, the last part of
    # ORG/PROJECT/NAME or ORG/NAME (pulumi/pulumi pkg/cmd/pulumi/stack, LoadProjectStack:
    # workspace.DetectProjectStackPath(stack.Ref().Name().Q())).
    result = CliRunner().invoke(app, ["plan", "--stack", stack, "--output", "json",
                                      "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc.pop("stack") == stack
    # The program runs as stack "aws", as under pulumi up: the same plan, the same URNs.
    assert doc == {k: v for k, v in plan_json("aws").items() if k != "stack"}
    assert stack_config(REPO, stack) == stack_config(REPO, "aws")


def plan_json(stack: str) -> dict:
    result = CliRunner().invoke(app, ["plan", "--stack", stack, "--output", "json",
                                      "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("stack, line", [
    ("a/b/c/aws", "error: --stack a/b/c/aws: a Pulumi stack is NAME, ORG/NAME or "
                  "ORG/PROJECT/NAME"),
    ("myorg/", "error: --stack myorg/: a Pulumi stack is NAME, ORG/NAME or ORG/PROJECT/NAME"),
    ("myorg/nope", "error: --stack myorg/nope: no Pulumi.nope.yaml in {repo}; stacks here: "
                   "{examples}"),
])
def test_a_malformed_or_unknown_qualified_stack_is_one_line(stack, line):
    result = CliRunner().invoke(app, ["plan", "--stack", stack, "--project-dir", str(REPO)])
    assert result.exit_code == 2
    assert result.stderr.strip() == line.format(repo=REPO, examples=", ".join(EXAMPLES))


def test_missing_onprem_kubeconfig_plans_with_a_stand_in_and_says_so(tmp_path):
    # Plan runs offline and needs no cluster: a kubeconfig file that is not on
    # this machine is stood in for, with a note; `pulumi up` still refuses it (one line).
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    text = (REPO / "Pulumi.onprem.yaml").read_text().replace(
        "~/.kube/config", str(tmp_path / "absent"))
    (tmp_path / "Pulumi.onprem.yaml").write_text(text)
    result = CliRunner().invoke(app, ["plan", "--stack", "onprem", "--project-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"note: aicp:onprem.kubeconfig: no file at {tmp_path / 'absent'}; planned with a "
        "stand-in kubeconfig (pulumi up needs the real one)\n")


def test_pulumi_up_refuses_a_missing_onprem_kubeconfig_in_one_line(tmp_path):
    import pulumi

    from aicp.cli import offline
    from aicp.stacks.program import main as program

    raw = stack_config(REPO, "onprem")
    raw["aicp:onprem"] = {**raw["aicp:onprem"], "kubeconfig": str(tmp_path / "absent")}
    with pytest.raises(pulumi.RunError) as err:
        offline.run(program, raw, stack="onprem")
    assert str(err.value).startswith(
        f"aicp:onprem.kubeconfig: no file at {tmp_path / 'absent'}")
    assert "\n" not in str(err.value)


def test_bad_config_is_one_line_exit_2_and_no_traceback(tmp_path):
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    text = (REPO / "Pulumi.aws.yaml").read_text().replace("accelerator: l4", "accelerator: l5")
    (tmp_path / "Pulumi.aws.yaml").write_text(text)
    run = subprocess.run([sys.executable, "-m", "aicp.cli.main", "plan", "--stack", "aws",
                          "--project-dir", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: aicp:gpuPools[0].accelerator: 'l5' is not one of h100, h200, a100, l40s, l4 "
        "on aws")
    assert run.stdout == ""


def test_every_example_in_plan_help_runs(tmp_path):
    help_text = CliRunner().invoke(app, ["plan", "--help"]).stdout
    examples = [line.strip() for line in help_text.split("Examples:")[1].splitlines()
                if line.strip().startswith("aicp plan")]
    assert len(examples) == 2
    for example in examples:
        argv = example.split(">")[0].split()[1:]
        result = CliRunner().invoke(app, [*argv, "--project-dir", str(REPO)])
        assert result.exit_code == 0, (example, result.output)
