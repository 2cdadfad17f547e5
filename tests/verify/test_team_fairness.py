"""team_fairness, a platform check beyond the checklist, against an emulated two-team
platform: the ClusterQueues aicp's Kueue addon declares for two teams (one cohort), on the
reference platform's two 8-GPU H100 nodes, with the emulated Kueue's cohorts, borrowing and
preemption (tests/kubeapi/controllers/kueue.py, each rule cited from kubernetes-sigs/kueue)."""

from __future__ import annotations

import pytest
import yaml

from aicp.addons.kueue import (
    MANAGED_LABEL,
    TEAM_LABEL,
    KueueArgs,
    Team,
    cluster_queue_spec,
    manager_config,
)
from aicp.components.contract import GpuPoolRequest, resolve_pool
from aicp.verify import images
from aicp.verify.checks.team_fairness import TeamFairness
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.probes.gang_scheduling import GangScheduling
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.kubelet import sleeps_forever
from tests.kubeapi.controllers.kueue import KueueAdmitter
from tests.kubeapi.scenarios import kueue_objects
from tests.verify.conftest import planned

FAST = {"admit_timeout": 5.0, "reclaim_timeout": 5.0, "poll": 0.05,
        "over_quota_wait": 0.6, "release_timeout": 5.0}
POOL = resolve_pool("aws", GpuPoolRequest(name="h100", accelerator="h100", min_nodes=2,
                                          max_nodes=2, allocator="device-plugin"))
TEAMS = (Team("research", {"h100": 8}), Team("serving", {"h100": 8}))


def two_teams(kube, teams=TEAMS, edit=None, pool=POOL) -> KueueAdmitter:
    """The Kueue objects aicp declares for ``teams`` on one 16-GPU pool (addons/kueue.py),
    the reference platform's h100 flavor, and the emulated Kueue; for a DRA pool, the
    manager Configuration ConfigMap with its deviceClassMappings too."""
    args = KueueArgs(teams=teams)
    flavor = [o for o in kueue_objects(16) if o["kind"] == "ResourceFlavor"]
    queues = [("gpu", {MANAGED_LABEL: "true"}, None)] + [
        (t.name, {MANAGED_LABEL: "true", TEAM_LABEL: t.name}, t) for t in teams]
    objects = flavor + [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
         "metadata": {"name": name}, "spec": cluster_queue_spec(selector, [pool], args, team)}
        for name, selector, team in queues]
    mappings = None
    if pool.allocator == "dra":
        config = manager_config(args, dra=True)
        mappings = config["resources"]["deviceClassMappings"]
        objects += [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kueue-manager-config", "namespace": "kueue-system"},
            "data": {"controller_manager_config.yaml": yaml.safe_dump(config)}}]
    for obj in objects:
        if edit:
            edit(obj)
    kube.seed(objects, validate=True)
    sleeps_forever(kube)
    return KueueAdmitter(mappings).install(kube)


def run(kubeconfig, probe=TeamFairness, level="SHOULD"):
    kube = connect(kubeconfig)
    settings = Settings("tf1", "1.35", images.catalog(), timing=Timing(overrides=FAST))
    report = Runner(kube, settings, cleanup_timeout=10).run(planned(probe, level=level))
    assert report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.outcomes[0].result


def checks(result) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.observed) for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_a_team_within_its_quota_reclaims_it_from_the_team_borrowing_the_cohort(kubeapi,
                                                                                 kubeconfig):
    kueue = two_teams(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    pair = result.evidence.observations["pair"]
    assert pair == {"cohort": "teams", "flavor": "h100", "resource": "nvidia.com/gpu",
                    "borrower": "gpu", "reclaimer": "research", "borrowerGPUs": 16,
                    "reclaimerGPUs": 8}
    assert result.reason.startswith(
        "cohort teams: with ClusterQueue gpu borrowing all 16 nvidia.com/gpu of flavor h100, "
        "a 8-GPU job of research (within its nominal quota) was admitted in")
    seen = checks(result)
    assert seen["a 16-GPU job of gpu (all it may use of the cohort) is admitted"][0]
    assert seen["a 8-GPU job of research within its nominal quota is admitted within 5s"][0]
    passed, observed = seen["the borrower's workload was preempted to reclaim the quota"]
    assert passed and observed.startswith("Preempted=True InCohortReclamation: Preempted to "
                                          "accommodate a workload")
    assert "Evicted=True Preempted" in result.evidence.observations["borrowerAfter"]
    # The emulated Kueue preempted exactly the borrower, for the reclaimer.
    assert [(p["reason"], p["by"].startswith("job-team-b")) for p in kueue.preemptions] == [
        ("InCohortReclamation", True)]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_a_dra_quota_is_reclaimed_through_claim_templates(kubeapi, kubeconfig):
    # Every example stack's pools are DRA: Kueue quotas aicp.dev/dra-gpu, which its
    # deviceClassMappings maps gpu.nvidia.com claims to (kueue v0.19.2 setup_dra.md).
    dra = resolve_pool("aws", GpuPoolRequest(name="h100", accelerator="h100", min_nodes=2,
                                             max_nodes=2, allocator="dra"))
    kueue = two_teams(kubeapi, pool=dra)
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["pair"]["resource"] == "aicp.dev/dra-gpu"
    assert [p["reason"] for p in kueue.preemptions] == ["InCohortReclamation"]
    kinds = [obj.kind for obj in result.evidence.objects]
    assert kinds.count("ResourceClaimTemplate") == 2


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_without_reclaim_the_check_fails_and_says_why(kubeapi, kubeconfig):
    def never(obj):
        if obj["kind"] == "ClusterQueue":
            obj["spec"]["preemption"]["reclaimWithinCohort"] = "Never"

    two_teams(kubeapi, edit=never)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason == (
        "team B's job of 8 nvidia.com/gpu, within the nominal quota of ClusterQueue research, "
        "was not admitted within 5s while gpu borrowed the cohort: ClusterQueue research has "
        "preemption.reclaimWithinCohort Never (Kueue's default is Never): a team never gets "
        "its quota back while another borrows it; set it to Any or LowerPriority")
    passed, observed = checks(result)[
        "a 8-GPU job of research within its nominal quota is admitted within 5s"]
    assert not passed and "insufficient quota in ClusterQueue research" in observed


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_queues_outside_any_cohort_fail_the_check(kubeapi, kubeconfig):
    kubeapi.seed(kueue_objects(16))
    KueueAdmitter().install(kubeapi)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("no two ClusterQueues with GPU quota share a cohort "
                                    "(1 ClusterQueues, cohorts: none)")


@pytest.mark.kubeapi("empty")
def test_without_kueue_the_check_does_not_apply(kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.SKIP
    assert result.reason.startswith("Kueue (kueue.x-k8s.io) is not served")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_gang_scheduling_still_passes_on_the_two_team_platform(kubeapi, kubeconfig):
    two_teams(kubeapi)
    result = run(kubeconfig, GangScheduling, "MUST")
    assert result.verdict is Verdict.PASS, result.reason
    # Chosen by what it can use: a team's queue, its nominal quota plus what it may borrow.
    assert result.evidence.observations["clusterQueue"] == {
        "name": "research", "resource": "nvidia.com/gpu", "quota": "8", "free": "16"}
    assert result.evidence.observations["namespaceLabels"][TEAM_LABEL] == "research"


@pytest.mark.kubeapi("reference-platform", gpu_nodes=2, with_kueue=False)
def test_gang_scheduling_still_passes_on_the_two_team_dra_platform(kubeapi, kubeconfig):
    dra = resolve_pool("aws", GpuPoolRequest(name="h100", accelerator="h100", min_nodes=2,
                                             max_nodes=2, allocator="dra"))
    two_teams(kubeapi, pool=dra)
    result = run(kubeconfig, GangScheduling, "MUST")
    assert result.verdict is Verdict.PASS, result.reason
    assert result.evidence.observations["clusterQueue"] == {
        "name": "research", "resource": "aicp.dev/dra-gpu", "quota": "8", "free": "16"}
