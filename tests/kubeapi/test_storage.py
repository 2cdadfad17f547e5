"""The emulated CSI storage (controllers/storage.py): claims bound per class, buckets that
keep data across pods and refuse pods without the identity."""

from __future__ import annotations

import pytest

from tests.kubeapi import objects as o
from tests.kubeapi.clock import Clock
from tests.kubeapi.controllers.storage import BUCKET, SERVICE_ACCOUNT, WORKLOADS, storage


def bucket_pod(name: str, script: str, service_account: str | None = SERVICE_ACCOUNT) -> dict:
    pod = o.pod(name, WORKLOADS, command=["sh", "-c", script])
    pod["spec"]["volumes"] = [{"name": "m", "csi": {"driver": "s3.csi.aws.com",
                                                    "volumeAttributes": {"bucketName": BUCKET}}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "m", "mountPath": "/models"}]
    if service_account:
        pod["spec"]["serviceAccountName"] = service_account
    return pod


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, clock=Clock(scale=0))
def test_a_bucket_keeps_what_one_pod_wrote_for_the_next(kubeapi):
    kubeapi.create(bucket_pod("writer", "mkdir -p /models/ckpt && echo w1 > /models/ckpt/a"))
    kubeapi.settle()
    kubeapi.create(bucket_pod("reader", "cat /models/ckpt/a"))
    kubeapi.settle()
    reader = kubeapi.get("pods", "reader", WORKLOADS)
    assert reader["status"]["phase"] == "Succeeded"
    assert kubeapi.logs[(WORKLOADS, "reader", "main")] == "w1\n"
    assert storage(kubeapi).objects(BUCKET) == ["ckpt/a"]


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, clock=Clock(scale=0))
def test_a_pod_without_the_identity_waits_with_a_failed_mount(kubeapi):
    kubeapi.create(bucket_pod("stranger", "echo x > /models/x", service_account=None))
    kubeapi.settle()
    pod = kubeapi.get("pods", "stranger", WORKLOADS)
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    (event,) = kubeapi.list("events", WORKLOADS, fields="involvedObject.name=stranger")
    assert event["reason"] == "FailedMount"
    assert storage(kubeapi).objects(BUCKET) == []


@pytest.mark.kubeapi("reference-platform", gpu_nodes=1, clock=Clock(scale=0))
def test_a_claim_without_a_class_gets_the_default_and_binds_when_its_pod_is_placed(kubeapi):
    kubeapi.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "c", "namespace": "default"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}})
    kubeapi.settle()
    claim = kubeapi.get("persistentvolumeclaims", "c", "default")
    # gp3 is WaitForFirstConsumer: no pod yet, no volume (external-provisioner waits).
    assert claim["spec"]["storageClassName"] == "gp3" and "volumeName" not in claim["spec"]
    (waiting,) = kubeapi.list("events", "default", fields="involvedObject.name=c")
    assert waiting["reason"] == "WaitForFirstConsumer"
    pod = o.pod("user", command=["sh", "-c", "echo kept > /d/f && cat /d/f"])
    pod["spec"]["volumes"] = [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "d", "mountPath": "/d"}]
    kubeapi.create(pod)
    kubeapi.settle()
    claim = kubeapi.get("persistentvolumeclaims", "c", "default")
    assert claim["status"]["phase"] == "Bound"
    volume = kubeapi.get("persistentvolumes", claim["spec"]["volumeName"])
    assert volume["spec"]["csi"]["driver"] == "ebs.csi.aws.com"
    assert volume["spec"]["claimRef"]["name"] == "c"
    assert kubeapi.logs[("default", "user", "main")] == "kept\n"
