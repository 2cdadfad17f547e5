"""`aicp plan`: the real program, offline, mapped to conformance requirements."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.conformance import musts
from aicp.main import app
from aicp.plan import build_plan, run_stack, stack_config
from tests.addons.helm_releases import (
    RELEASE,
    declared_objects,
    invalid_objects,
    unpinned_releases,
)
from tests.addons.kube_objects import patch_errors

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def aws_run():
    return run_stack(stack_config(REPO, "aws"), "aws")[1]


@pytest.fixture(scope="module")
def aws_plan() -> dict:
    return build_plan(stack_config(REPO, "aws"), "aws")


def test_aws_plan_serves_every_must_requirement_of_its_checklist(aws_plan):
    assert aws_plan["checklistVersion"] == "1.35"
    assert aws_plan["unservedMust"] == []
    assert set(musts("1.35")) <= set(aws_plan["requirements"])
    assert len(musts("1.35")) == 9


def test_every_object_the_aws_stack_declares_validates_against_upstream_schemas(aws_run):
    declared = declared_objects(aws_run)
    assert len(declared) > 10
    assert invalid_objects(aws_run) == {}
    patches = {f"{r.type} {r.name}": patch_errors(r) for r in aws_run.resources
               if r.type.startswith("kubernetes:") and r.type.endswith("Patch")}
    assert all(errors == [] for errors in patches.values()), patches


def test_every_helm_release_of_the_aws_stack_is_pinned_to_the_catalog(aws_run):
    assert aws_run.of_type(RELEASE)
    assert unpinned_releases(aws_run) == []


def test_custom_resources_wait_for_the_release_that_brings_their_crds(aws_run):
    releases = {r.inputs["chart"]: r for r in aws_run.of_type(RELEASE)}
    kueue = releases["oci://registry.k8s.io/kueue/charts/kueue"]
    for cr in aws_run.resources:
        if cr.type.startswith("kubernetes:kueue.x-k8s.io/"):
            assert aws_run.depends_on(cr, kueue), cr.name
    gateway = aws_run.one("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    crds = aws_run.one("kubernetes:yaml/v2:ConfigFile", "gateway-api-crds")
    assert aws_run.depends_on(gateway, crds)


def test_plan_keeps_the_kubeconfig_secret(aws_plan):
    assert "kubeconfig" in aws_plan["secretOutputs"]
    assert aws_plan["outputs"]["kubeconfig"] == "[secret]"
    providers = [r for r in aws_plan["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert providers and all("kubeconfig" in p["secretPaths"] for p in providers)


def test_stack_exports_what_verify_needs(aws_plan):
    out = aws_plan["outputs"]
    assert out["checklistVersion"] == "1.35"
    pools = {p["name"]: p for p in out["gpuPools"]}
    assert pools["h100"]["gpusPerNode"] == 8 and pools["h100"]["minNodes"] == 0
    assert pools["l4"]["allocator"] == "dra"
    assert out["addons"]["kueue"] == "0.19.2"


def test_plan_json_lists_every_resource_with_its_requirements():
    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--output", "json",
                                      "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"type", "name", "parent", "inputs", "requirements"} <= set(doc["resources"][0])
    kueue = [r for r in doc["resources"] if r["type"] == "aicp:addons:Kueue"]
    assert kueue and "gang_scheduling" in kueue[0]["requirements"]


def test_plan_table_ends_by_naming_the_served_must_requirements():
    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Every MUST requirement of checklist 1.35 is served (9)")


def test_unknown_stack_is_one_line_listing_the_stacks_there():
    result = CliRunner().invoke(app, ["plan", "--stack", "nope", "--project-dir", str(REPO)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --stack: no Pulumi.nope.yaml in {REPO}; stacks here: aws"] or \
        result.stderr.startswith("error: --stack: no Pulumi.nope.yaml")


def test_bad_config_is_one_line_exit_2_and_no_traceback(tmp_path):
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    text = (REPO / "Pulumi.aws.yaml").read_text().replace("accelerator: l4", "accelerator: l5")
    (tmp_path / "Pulumi.aws.yaml").write_text(text)
    run = subprocess.run([sys.executable, "-m", "aicp.main", "plan", "--stack", "aws",
                          "--project-dir", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: aicp:gpuPools[1].accelerator: 'l5' is not one of h100, h200, a100, l40s, l4 "
        "on aws")
    assert run.stdout == ""
