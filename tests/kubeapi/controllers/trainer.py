"""A Kubeflow-Trainer-like operator: its CRDs, the TrainJob webhook and a reconciler.

The CRDs are minimal stand-ins for kubeflow/trainer@0f13bb7a
manifests/base/crds/trainer.kubeflow.org_{trainjobs,clustertrainingruntimes}.yaml
(v1alpha1; TrainJob namespaced with ``spec.runtimeRef`` required, ClusterTrainingRuntime
cluster-scoped); the rest of the schema keeps unknown fields. The operator Deployment runs
in ``kubeflow-system`` labelled ``app.kubernetes.io/name=kubeflow-trainer`` with the
``ClusterTrainingRuntime`` ``torch-distributed`` and the ValidatingWebhookConfiguration
``validator.trainer.kubeflow.org`` (the names kubernetes-sigs/ai-conformance@3d8edfa
test/crd_controller_test.go expects). The webhook denies a TrainJob whose runtime does not
exist (the emulator's wording); the reconciler marks a TrainJob ``Complete`` (or ``Failed``
with ``outcome="Failed"``).
"""

from __future__ import annotations

from .. import errors
from .. import objects as o
from ..store import now
from .base import Controller
from .kuberay import CA_BUNDLE, webhook_service

NAMESPACE = "kubeflow-system"
WEBHOOK = "validator.trainjob.trainer.kubeflow.org"
CONFIGURATION = "validator.trainer.kubeflow.org"
# Decoration only: the probe finds Trainer by its CRD and label, never by this image name.
IMAGE = "ghcr.io/kubeflow/trainer/trainer-controller-manager:v2.1.0"


TRAINJOBS = o.crd("trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs", spec_schema={
    "type": "object", "required": ["runtimeRef"], "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"runtimeRef": {"type": "object", "required": ["name"],
                                  "x-kubernetes-preserve-unknown-fields": True,
                                  "properties": {"name": {"type": "string"}}}}})
RUNTIMES = o.crd("trainer.kubeflow.org", "v1alpha1", "ClusterTrainingRuntime",
                 "clustertrainingruntimes", namespaced=False, spec_schema={
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True})


def webhook_configuration() -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration", "metadata": {"name": CONFIGURATION},
            "webhooks": [{
                "name": WEBHOOK, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": {"caBundle": CA_BUNDLE, "service": {
                    "name": "kubeflow-trainer-controller-manager", "namespace": NAMESPACE,
                    "path": "/validate-trainer-kubeflow-org-v1alpha1-trainjob", "port": 443}},
                "rules": [{"apiGroups": ["trainer.kubeflow.org"], "apiVersions": ["v1alpha1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["trainjobs"]}]}]}


class Trainer(Controller):
    name = "kubeflow-trainer"
    watches = ("trainjobs.trainer.kubeflow.org",)

    def __init__(self, outcome: str = "Complete"):
        self.outcome = outcome
        self.kube = None

    def admit(self, res, obj: dict, old) -> None:
        if res.key != ("trainer.kubeflow.org", "trainjobs") or not self.kube:
            return
        ref = ((obj.get("spec") or {}).get("runtimeRef") or {}).get("name", "")
        if self.kube.find("clustertrainingruntimes.trainer.kubeflow.org", ref) is None:
            name = obj["metadata"].get("name", "")
            raise errors.ApiError(
                422, "Invalid", f'admission webhook "{WEBHOOK}" denied the request: '
                f'TrainJob.trainer.kubeflow.org "{name}" is invalid: spec.runtimeRef: '
                f'Invalid value: "{ref}": ClusterTrainingRuntime not found',
                {"name": name, "group": "trainer.kubeflow.org", "kind": "TrainJob"})

    def sync(self, kube) -> None:
        for job in kube.list("trainjobs.trainer.kubeflow.org"):
            if (job.get("status") or {}).get("conditions"):
                continue
            cond = {"type": self.outcome, "status": "True",
                    "reason": "JobsCompleted" if self.outcome == "Complete" else "JobsFailed",
                    "message": f"TrainJob is {self.outcome.lower()}",
                    "lastTransitionTime": now()}
            kube.mutate("trainjobs.trainer.kubeflow.org", job["metadata"]["name"],
                        lambda j, c=cond: j.update(status={"conditions": [c]}),
                        job["metadata"]["namespace"], status=True)


def install(kube, *, outcome: str = "Complete") -> Trainer:
    trainer = Trainer(outcome)
    trainer.kube = kube
    kube.seed([TRAINJOBS, RUNTIMES])
    kube.seed([o.namespace(NAMESPACE),
               o.ready_deployment("kubeflow-trainer-controller-manager", NAMESPACE, IMAGE,
                                  labels={"app.kubernetes.io/name": "kubeflow-trainer"}),
               {"apiVersion": "trainer.kubeflow.org/v1alpha1",
                "kind": "ClusterTrainingRuntime", "metadata": {"name": "torch-distributed"},
                "spec": {"template": {}}},
               webhook_configuration(),
               webhook_service(NAMESPACE, "kubeflow-trainer-controller-manager")])
    kube.admit(trainer.admit)
    kube.add(trainer)
    return trainer
