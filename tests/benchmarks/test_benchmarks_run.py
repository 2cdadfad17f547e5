"""The benchmark scripts stay runnable (smallest sizes); their figures are not asserted."""

from __future__ import annotations

from pathlib import Path

from benchmarks import plan, startup
from benchmarks.common import example_project


def test_dependency_depth_counts_the_longest_chain_of_real_resources():
    resources = [
        {"urn": "c", "type": "aicp:addons:X", "parent": "", "dependsOn": []},
        {"urn": "a", "type": "aws:iam/role:Role", "parent": "c", "dependsOn": []},
        {"urn": "b", "type": "aws:eks/cluster:Cluster", "parent": "c", "dependsOn": ["a"]},
        {"urn": "t", "type": "aws:autoscaling/tag:Tag", "parent": "b", "dependsOn": []},
    ]
    assert plan.depth(resources) == 3


def test_plan_benchmark_measures_an_example_stack(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    figures = plan.measure(example_project(tmp_path), "onprem", repeat=1,
                           empty_cache=tmp_path / "empty")
    assert figures["resources"] > 10 and figures["depth"] >= 2
    assert not list((tmp_path / "empty").iterdir())  # the cold run wrote no bytecode
    assert figures["unserved"] == []


def test_startup_benchmark_prints_a_table():
    text = startup.main(repeat=1)
    assert "aicp verify --help" in text


def test_emulator_benchmark_pages_through_a_small_cluster():
    from benchmarks import emulator
    from tests.shared import require_shared

    require_shared("crds")
    assert "typed page of 500 pods" in emulator.main(nodes=10, pods_per_node=2, pages=1)


def test_verify_benchmark_runs_read_only_on_a_small_cluster(tmp_path: Path):
    from benchmarks import verify
    from tests.shared import require_shared

    require_shared("conformance")
    require_shared("crds")
    figures = verify.run_verify(10, 2, read_only=True, workdir=tmp_path)
    assert figures["requests"] >= 1 and figures["peak_mib"] > 0
    assert set(figures["verdicts"]) >= {"dra_support", "gang_scheduling"}


def test_stand_up_estimate_weighs_the_chain_and_counts_helm_waits_after_nodes():
    from benchmarks.plan import critical_path, helm_waits_after_nodes

    def r(urn, type_, deps=(), chart=""):
        return {"urn": urn, "type": type_, "dependsOn": list(deps), "parent": "",
                "name": urn, "inputs": {"chart": chart} if chart else {}}

    resources = [
        r("eks", "aws:eks/cluster:Cluster"),
        r("ng", "aws:eks/nodeGroup:NodeGroup", ["eks"]),
        r("crds", "kubernetes:helm.sh/v3:Release", ["ng"], chart="base"),
        r("istiod", "kubernetes:helm.sh/v3:Release", ["crds"], chart="istiod"),
        r("epp", "kubernetes:helm.sh/v3:Release", ["istiod"], chart="epp"),
        r("short", "kubernetes:helm.sh/v3:Release", ["ng"], chart="kueue"),
    ]
    minutes, path = critical_path(resources)
    assert [p["urn"] for p in path] == ["eks", "ng", "crds", "istiod", "epp"]
    assert minutes == 15.0 + 3.0 + 0.3 + 3.5 + 3.5
    assert helm_waits_after_nodes(path) == 2  # the CRD-only release waits on no workload
