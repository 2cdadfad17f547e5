"""data_access, aicp's own platform check, against the emulated platform's storage
(``tests/kubeapi/controllers/storage.py``: EBS-style provisioner, Mountpoint-style bucket)."""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.checks.data_access import DEFAULT_CLASS, DataAccess
from aicp.verify.kube import connect
from aicp.verify.probe import RUN_LABEL, Settings, Timing
from aicp.verify.registry import check_requirement, plan_checks
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi.controllers.storage import BUCKET, SERVICE_ACCOUNT, WORKLOADS, storage

FAST = Timing(overrides={"denied_timeout": 5.0, "pod_timeout": 10.0})


def run(kubeconfig, timing: Timing = FAST):
    kube = connect(kubeconfig)
    report = Runner(kube, Settings("da1", "1.37", images.catalog(), timing=timing),
                    cleanup_timeout=10).run(plan_checks({"data_access": DataAccess}))
    assert report.outcomes == [] and report.leftovers == []
    assert kube.request("GET", "/api/v1/namespaces",
                        query={"labelSelector": RUN_LABEL})["items"] == []
    return report.platform[0].result


def checks(result) -> dict[str, bool]:
    return {c.name: c.passed for c in result.evidence.checks}


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_the_default_class_binds_and_the_bucket_is_the_identitys_alone(kubeapi, kubeconfig):
    result = run(kubeconfig)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.reason == (
        f"a claim of the default class gp3 bound and kept data; bucket {BUCKET} was written "
        f"and read as ServiceAccount {WORKLOADS}/{SERVICE_ACCOUNT} through s3.csi.aws.com, "
        "and refused to the namespace's default ServiceAccount")
    assert all(checks(result).values()) and len(checks(result)) == 8
    assert result.evidence.observations["claim"]["class"] == "gp3"
    # The pod without the identity never ran: refused at mount, as the kubelet reports it.
    refused = next(c for c in result.evidence.checks if "cannot mount" in c.name)
    assert refused.observed.startswith("FailedMount: MountVolume.SetUp failed for volume")
    assert storage(kubeapi).objects(BUCKET) == []  # the object written was deleted


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_a_default_class_it_fails_before_creating_anything(kubeapi, kubeconfig):
    kubeapi.mutate("storageclasses.storage.k8s.io", "gp3",
                   lambda c: c["metadata"]["annotations"].pop(DEFAULT_CLASS))
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith(f"no default StorageClass (annotation {DEFAULT_CLASS}"
                                    "=true on none of 1 classes)")
    assert result.evidence.objects == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_default_class_no_driver_serves_leaves_the_claim_pending(kubeapi, kubeconfig):
    storage(kubeapi).block = ()  # the EBS CSI driver is not installed
    result = run(kubeconfig, Timing(overrides={"pod_timeout": 2.0}))
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("a claim of the default class gp3 stayed Pending: "
                                    "ExternalProvisioning: Waiting for a volume to be created "
                                    "either by the external provisioner 'ebs.csi.aws.com'")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_the_identity_binding_the_workload_pod_cannot_mount_the_bucket(
        kubeapi, kubeconfig):
    storage(kubeapi).buckets[BUCKET] = set()  # the IAM role trusts no ServiceAccount
    result = run(kubeconfig, Timing(overrides={"pod_timeout": 2.0}))
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith(
        f"a pod as {WORKLOADS}/{SERVICE_ACCOUNT} could not mount bucket {BUCKET} within 2s: "
        "FailedMount: MountVolume.SetUp failed for volume \"data\"")
    assert checks(result)["a default StorageClass exists"]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_a_bucket_open_to_every_pod_fails_the_check(kubeapi, kubeconfig):
    storage(kubeapi).buckets[BUCKET].add((WORKLOADS, "default"))  # driver-wide credentials
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL and result.partial
    assert result.reason.startswith(f"a pod as {WORKLOADS}/default (without the workload "
                                    f"ServiceAccount) wrote and read bucket {BUCKET}")


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1)
def test_without_a_published_bucket_it_fails_naming_the_label(kubeapi, kubeconfig):
    kubeapi.delete("configmaps", "aicp-storage", WORKLOADS)
    result = run(kubeconfig)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("no model bucket reachable with workload identity is "
                                    "published: no ConfigMap labelled "
                                    "aicp.dev/storage=model-bucket")


def test_the_check_reads_as_a_platform_row_never_a_checklist_level():
    req = check_requirement(DataAccess)
    assert (req.id, req.category, req.level) == ("data_access", "storage", "PLATFORM")
