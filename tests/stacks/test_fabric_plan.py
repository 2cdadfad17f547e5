"""`aicp plan` for fabric pools: what each pool gets, high_performance_networking served, and
the on-prem RDMA option (off unless set). Issue #19."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.cli.plan import describe, render_table, run_stack, stack_config

REPO = Path(__file__).resolve().parents[2]
HPN = "high_performance_networking"
NODE_PATCH = "kubernetes:core/v1:NodePatch"


def planned(stack: str, **changes) -> dict:
    raw = {**stack_config(REPO, stack), **changes}
    cfg, run = run_stack(raw, stack)
    return describe(cfg, run, stack)


@pytest.mark.parametrize("stack,kind,asks", [
    ("aws-training", "efa", "pods ask for vpc.amazonaws.com/efa: 32, hugepages-2Mi: 5120Mi;"),
    ("gcp-training", "gpudirect-tcpxo", "pods ask for networks train-nic-0, "),
    ("azure-training", "infiniband", "pods ask for rdma/shared_ib: 1, capability IPC_LOCK;"),
])
def test_a_training_example_plans_its_fabric_and_serves_high_performance_networking(
        stack, kind, asks):
    result = CliRunner().invoke(app, ["plan", "--stack", stack, "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stdout.splitlines() if x.startswith("Fabric of GPU pool")]
    assert f" {kind}, " in line and asks in line
    assert line.endswith(f"{HPN} served")
    # The fabric pools start at zero on the device plugin (EKS and AKS cannot scale a DRA
    # pool from zero): every MUST but dra_support is served, and the plan says so.
    last = result.stdout.splitlines()[-1]
    assert "Every MUST requirement" in last or last.endswith("no resource serves: dra_support")
    doc = json.loads(CliRunner().invoke(app, ["plan", "--stack", stack, "--output", "json",
                                              "--project-dir", str(REPO)]).stdout)
    assert HPN in doc["requirements"]
    [pool] = doc["outputs"]["gpuPools"]
    assert pool["fabric"]["kind"] == kind and pool["minNodes"] <= 1 and pool["maxNodes"] == 2


def test_the_on_prem_example_has_no_fabric_unless_asked(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    raw = stack_config(REPO, "onprem")
    onprem = {**raw["aicp:onprem"], "kubeconfig": str(kubeconfig)}
    plain = planned("onprem", **{"aicp:onprem": onprem})
    assert not [r for r in plain["resources"] if r["type"] == "aicp:addons:NetworkOperator"]
    assert "Fabric of GPU pool" not in render_table(plain)
    assert HPN not in plain["requirements"]

    rdma = planned("onprem", **{"aicp:onprem": {**onprem, "rdma": "ethernet"}})
    [operator] = [r for r in rdma["resources"] if r["type"] == "aicp:addons:NetworkOperator"]
    assert operator["requirements"] == [HPN]
    [group] = [r for r in rdma["resources"] if r["type"] == "kubernetes:yaml/v2:ConfigGroup"
               and r["name"] == "network-operator-nic-cluster-policy"]
    config = json.loads(group["inputs"]["objs"][0]["spec"]["rdmaSharedDevicePlugin"]["config"])
    assert config["configList"][0]["resourceName"] == "rdma_shared_device_a"
    assert config["configList"][0]["selectors"]["linkTypes"] == ["ether"]
    # The racked GPU nodes are labelled for the policy's node affinity.
    # (the example's sandbox node gets a patch of its own, without the fabric label).
    gpu_nodes = {n for nodes in onprem["gpuNodes"].values() for n in nodes}
    patches = [r for r in rdma["resources"] if r["type"] == NODE_PATCH
               and r["inputs"]["metadata"]["name"] in gpu_nodes]
    assert {p["inputs"]["metadata"]["name"] for p in patches} == gpu_nodes
    assert patches and all(p["inputs"]["metadata"]["labels"]["aicp.dev/fabric"] == "rdma"
                           for p in patches)
    [pool] = rdma["outputs"]["gpuPools"]
    assert pool["fabric"]["resources"] == {"rdma/rdma_shared_device_a": 1}
    assert pool["fabric"]["capabilities"] == ["IPC_LOCK"]


def test_an_unknown_rdma_link_type_is_one_line_naming_the_key(tmp_path):
    raw = stack_config(REPO, "onprem")
    bad = {**raw, "aicp:onprem": {**raw["aicp:onprem"], "rdma": "roce"}}
    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.bad.yaml").write_text(json.dumps({"config": bad}))
    result = CliRunner().invoke(app, ["plan", "--stack", "bad", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: aicp:onprem.rdma") and "infiniband" in line, line
