"""Storage: a CSI provisioner that binds claims per StorageClass, and mounts that keep data.

``CsiStorage(block, buckets).install(kube)`` plays, each behaviour after the real one:

- the DefaultStorageClass admission plugin: a claim created with no ``storageClassName``
  gets the default class, the newest when several are marked (kubernetes
  plugin/pkg/admission/storage/storageclass/setdefault/admission.go; ``""`` is left alone:
  "no class");
- the external-provisioner sidecar of each block driver in ``block``: a Pending claim of a
  class whose ``provisioner`` is one of them gets a PersistentVolume ``pvc-<claim uid>``
  (kubernetes-csi/external-provisioner pkg/controller: ``makeVolumeName`` prefix "pvc",
  ``claimRef``, the class's reclaim policy, ``spec.csi.driver``) and both are Bound;
  with ``volumeBindingMode: WaitForFirstConsumer`` only once a pod using it has a node
  (the scheduler's ``volume.kubernetes.io/selected-node``). A class whose provisioner no
  driver serves leaves the claim Pending with the PV controller's ``ExternalProvisioning``
  event, a claim with no class with its ``FailedBinding`` event (kubernetes
  pkg/controller/volume/persistentvolume/pv_controller.go). A claim naming a
  ``volumeName`` binds to that volume when its ``claimRef`` allows (static provisioning);
- the kubelet's volume manager: a pod's containers wait in ContainerCreating until every
  claim it uses is Bound; a bucket volume (a PV or inline ``csi`` volume of a driver in
  ``buckets``' drivers, ``volumeAttributes.bucketName``) mounts only for a pod whose
  ServiceAccount the bucket trusts (``buckets[bucket]``, the cloud's workload identity
  binding: IAM role trust, GCP principal, federated credential); any other pod stays in
  ContainerCreating with a ``FailedMount`` event, as the kubelet reports a failed
  ``NodePublishVolume`` (kubernetes pkg/volume/util/operationexecutor/
  operation_generator.go "MountVolume.SetUp failed for volume"). Mountpoint for Amazon S3
  with ``authenticationSource: pod`` and Cloud Storage FUSE both authenticate as the pod's
  ServiceAccount (awslabs/mountpoint-s3-csi-driver docs/CONFIGURATION.md, "Pod-Level
  Credentials"; cloud.google.com/kubernetes-engine/docs/how-to/cloud-storage-fuse-csi-driver-setup);
- data: a mounted pod's ``sh -c`` script really runs under the host's ``sh``, its mount
  paths mapped to a directory per volume (a block volume's own, a bucket's shared by every
  pod mounting it), and its exit status is the container's.

``storage(kube)`` is the scenario's instance; ``buckets`` and ``block`` may be changed by a
test (the binding removed, a driver gone) followed by ``kube.resync()``.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from ..store import now
from .base import Controller
from .kubelet import argv, kubelet

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


class CsiStorage(Controller):
    name = "csi-storage"
    watches = ("persistentvolumeclaims", "persistentvolumes", "storageclasses", "pods")
    # Everything it binds or refuses follows a watched write (a test that removes a binding
    # or a driver calls kube.resync()): no periodic pass over every pod of a large cluster.
    resync = None

    def __init__(self, block: tuple[str, ...], buckets: dict[str, set[tuple[str, str]]],
                 bucket_drivers: tuple[str, ...]):
        self.block = tuple(block)
        self.buckets = {b: set(who) for b, who in buckets.items()}
        self.bucket_drivers = tuple(bucket_drivers)
        self._root = tempfile.TemporaryDirectory(prefix="kubeapi-storage-")
        self._codes: dict[str, int] = {}
        self._reported: set[str] = set()
        self.kube = None

    def install(self, kube) -> CsiStorage:
        self.kube = kube
        kube.add(self)
        kube.admit(self.admit)
        k = kubelet(kube)
        waiting, logs, code = k.waiting, k.logs, k.exit_code
        k.waiting = lambda pod, c: self.waiting(pod) or waiting(pod, c)
        k.logs = lambda pod, c, kube_: (self.run(pod, c) if self.mounts(pod)
                                        else logs(pod, c, kube_))
        k.exit_code = lambda pod: self._codes.get(pod["metadata"]["uid"], code(pod))
        return self

    # Admission --------------------------------------------------------------------------
    def admit(self, res, obj: dict, old) -> None:
        if res.key != ("", "persistentvolumeclaims") or old is not None:
            return
        spec = obj.setdefault("spec", {})
        if spec.get("storageClassName") is not None or self.kube is None:
            return
        defaults = [c for c in self.kube.view("storageclasses.storage.k8s.io")
                    if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
        if defaults:
            spec["storageClassName"] = max(
                defaults, key=lambda c: c["metadata"].get("creationTimestamp", ""))[
                "metadata"]["name"]

    # The provisioner and the PV controller ----------------------------------------------
    def sync(self, kube) -> None:
        classes = {c["metadata"]["name"]: c for c in kube.view("storageclasses.storage.k8s.io")}
        pods = kube.view("pods", where=_has_volumes)
        bound = False
        for claim in kube.view("persistentvolumeclaims"):
            if (claim.get("status") or {}).get("phase") == "Bound" or claim["metadata"].get(
                    "deletionTimestamp"):
                continue
            bound = self._bind(kube, claim, classes, pods) or bound
        self._reclaim(kube)
        for pod in pods:
            self._report_refused(kube, pod)
        if bound:  # the kubelet waits on claims, not on pods: wake it now
            kube.controllers.timer(kubelet(kube), kube.clock.now())

    def _bind(self, kube, claim: dict, classes: dict, pods: list[dict]) -> bool:
        meta, spec = claim["metadata"], claim["spec"]
        ns, name = meta["namespace"], meta["name"]
        if spec.get("volumeName"):
            pv = kube.find("persistentvolumes", spec["volumeName"])
            ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
            if pv and ref.get("name") in (None, name) and ref.get("namespace") in (None, ns):
                self._bound(kube, claim, pv)
                return True
            return False
        klass = classes.get(spec.get("storageClassName") or "")
        if klass is None:
            why = ("no persistent volumes available for this claim and no storage class is "
                   "set") if not spec.get("storageClassName") else (
                f'storageclass.storage.k8s.io "{spec["storageClassName"]}" not found')
            self._event(kube, claim, "FailedBinding", why)
            return False
        if klass.get("provisioner") not in self.block:
            self._event(kube, claim, "ExternalProvisioning",
                        "Waiting for a volume to be created either by the external "
                        f"provisioner '{klass.get('provisioner')}' or manually by the system "
                        "administrator. If volume creation is delayed, please verify that "
                        "the provisioner is running and correctly registered.")
            return False
        if klass.get("volumeBindingMode") == "WaitForFirstConsumer" and not any(
                p["metadata"]["namespace"] == ns and p["spec"].get("nodeName")
                and name in _claims(p) for p in pods):
            self._event(kube, claim, "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding")
            return False
        pv = kube.create({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {
                "pv.kubernetes.io/provisioned-by": klass["provisioner"]}},
            "spec": {"capacity": {"storage": spec["resources"]["requests"]["storage"]},
                     "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": klass.get("reclaimPolicy", "Delete"),
                     "storageClassName": klass["metadata"]["name"],
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "namespace": ns, "name": name, "uid": meta["uid"]},
                     "csi": {"driver": klass["provisioner"],
                             "volumeHandle": f"vol-{meta['uid'][:17]}", "fsType": "ext4"}}},
            validate=False)
        self._event(kube, claim, "ProvisioningSucceeded",
                    f"Successfully provisioned volume {pv['metadata']['name']}")
        self._bound(kube, claim, pv)
        return True

    def _bound(self, kube, claim: dict, pv: dict) -> None:
        meta = claim["metadata"]

        def pv_bound(p: dict) -> None:
            p.setdefault("status", {})["phase"] = "Bound"
        kube.mutate("persistentvolumes", pv["metadata"]["name"], pv_bound, status=True)

        def claim_spec(c: dict) -> None:
            c["spec"]["volumeName"] = pv["metadata"]["name"]
        kube.mutate("persistentvolumeclaims", meta["name"], claim_spec, meta["namespace"])

        def claim_bound(c: dict) -> None:
            c.setdefault("status", {}).update(
                phase="Bound", accessModes=pv["spec"].get("accessModes"),
                capacity=dict(pv["spec"].get("capacity") or {}))
        kube.mutate("persistentvolumeclaims", meta["name"], claim_bound, meta["namespace"],
                    status=True)

    def _reclaim(self, kube) -> None:
        """A released volume with policy Delete is deleted (the provisioner's DeleteVolume)."""
        for pv in kube.view("persistentvolumes"):
            ref = pv["spec"].get("claimRef") or {}
            if (pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete" and ref
                    and kube.find("persistentvolumeclaims", ref.get("name", ""),
                                  ref.get("namespace")) is None):
                kube.delete("persistentvolumes", pv["metadata"]["name"])

    # The kubelet's volume manager -------------------------------------------------------
    def mounts(self, pod: dict) -> list[tuple[str, str]]:
        """(mountPath, host directory) of the pod's data volumes; claims must be Bound."""
        found = []
        paths = {m["name"]: m["mountPath"] for c in pod["spec"].get("containers") or []
                 for m in c.get("volumeMounts") or []}
        for volume in pod["spec"].get("volumes") or []:
            where = self._volume(pod, volume)
            if where and volume["name"] in paths:
                found.append((paths[volume["name"]], where[1]))
        return found

    def _volume(self, pod: dict, volume: dict) -> tuple[str, str, str | None] | None:
        """(kind, host dir, bucket) of a claim or bucket volume; None for any other."""
        assert self.kube is not None
        csi = volume.get("csi")
        if volume.get("persistentVolumeClaim"):
            claim = self.kube.find("persistentvolumeclaims",
                                   volume["persistentVolumeClaim"]["claimName"],
                                   pod["metadata"]["namespace"])
            pv_name = ((claim or {}).get("spec") or {}).get("volumeName")
            pv = self.kube.find("persistentvolumes", pv_name) if pv_name else None
            if pv is None or (claim or {}).get("status", {}).get("phase") != "Bound":
                return ("unbound", "", None)
            csi = pv["spec"].get("csi") or {}
            if csi.get("driver") not in self.bucket_drivers:
                return ("block", self._dir("volumes", pv_name), None)
        if csi and csi.get("driver") in self.bucket_drivers:
            attrs = csi.get("volumeAttributes") or {}
            # Mountpoint and GCS FUSE name it bucketName, the Blob CSI driver containerName.
            bucket = attrs.get("bucketName") or attrs.get("containerName") or ""
            return ("bucket", self._dir("buckets", bucket), bucket)
        return None

    def waiting(self, pod: dict) -> dict | None:
        """ContainerCreating while a claim is unbound or a bucket refuses the pod."""
        if self.kube is None:
            return None
        for volume in pod["spec"].get("volumes") or []:
            where = self._volume(pod, volume)
            if where and (where[0] == "unbound" or self._refused(pod, volume, where[2])):
                return {"state": {"waiting": {"reason": "ContainerCreating"}}}
        return None

    def _refused(self, pod: dict, volume: dict, bucket: str | None) -> bool:
        if bucket is None:
            return False
        who = (pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName") or "default")
        return who not in self.buckets.get(bucket, set())

    def _report_refused(self, kube, pod: dict) -> None:
        if not pod["spec"].get("nodeName") or (pod.get("status") or {}).get("phase") not in (
                None, "Pending"):
            return
        for volume in pod["spec"].get("volumes") or []:
            where = self._volume(pod, volume)
            if not where or not self._refused(pod, volume, where[2]):
                continue
            key = f"{pod['metadata']['uid']}/{volume['name']}"
            if key in self._reported:
                continue
            self._reported.add(key)
            sa = pod["spec"].get("serviceAccountName") or "default"
            self._event(kube, pod, "FailedMount",
                        f'MountVolume.SetUp failed for volume "{volume["name"]}" : rpc error: '
                        f'code = Internal desc = could not mount bucket "{where[2]}": '
                        f"AccessDenied: ServiceAccount {pod['metadata']['namespace']}/{sa} "
                        "is not bound to an identity allowed on the bucket", kind="Pod")

    # Data -------------------------------------------------------------------------------
    def run(self, pod: dict, container: str) -> str:
        """The container's ``sh -c`` script under the host's sh, mounts mapped (module doc)."""
        words = argv(pod, container)
        if len(words) < 3 or words[1] != "-c":
            return ""
        script = words[2]
        for path, host in sorted(self.mounts(pod), key=lambda m: -len(m[0])):
            script = re.sub(rf"(?<![\w/.-]){re.escape(path.rstrip('/'))}(?=/|\s|$|\"|')",
                            host, script)
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              timeout=30, check=False)
        self._codes[pod["metadata"]["uid"]] = done.returncode
        return done.stdout + done.stderr

    def objects(self, bucket: str) -> list[str]:
        """What the bucket holds now, as keys relative to it."""
        root = Path(self._dir("buckets", bucket))
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def _dir(self, kind: str, name: str) -> str:
        path = Path(self._root.name) / kind / (name or "_")
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def _event(self, kube, obj: dict, reason: str, message: str, kind: str | None = None
               ) -> None:
        meta = obj["metadata"]
        key = f"{meta['uid']}/{reason}"
        if key in self._reported:
            return
        self._reported.add(key)
        kind = kind or "PersistentVolumeClaim"
        component = ("kubelet" if kind == "Pod" else "persistentvolume-controller")
        kube.create({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"generateName": meta["name"] + ".",
                                  "namespace": meta["namespace"]},
                     "involvedObject": {"apiVersion": "v1", "kind": kind, "name": meta["name"],
                                        "namespace": meta["namespace"], "uid": meta["uid"]},
                     "reason": reason, "message": message,
                     "type": "Normal" if reason in ("ProvisioningSucceeded",
                                                    "WaitForFirstConsumer",
                                                    "ExternalProvisioning") else "Warning",
                     "source": {"component": component}, "reportingComponent": component,
                     "count": 1, "firstTimestamp": now(), "lastTimestamp": now()})


def _has_volumes(pod: dict) -> bool:
    """The pods this controller reads (``KubeAPI.view``'s ``where``): those with volumes."""
    return bool(pod["spec"].get("volumes"))


def _claims(pod: dict) -> set[str]:
    return {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
            if v.get("persistentVolumeClaim")}


def storage(kube) -> CsiStorage:
    """The scenario's storage, for a test to change (a binding removed, a driver gone)."""
    return next(c for c in kube.controllers.controllers if isinstance(c, CsiStorage))


# The reference platform's storage: EKS's, from the upstream objects --------------------------
EBS = "ebs.csi.aws.com"  # kubernetes-sigs/aws-ebs-csi-driver charts/aws-ebs-csi-driver
S3 = "s3.csi.aws.com"  # awslabs/mountpoint-s3-csi-driver charts/aws-mountpoint-s3-csi-driver
BUCKET = "aicp-models-example"
WORKLOADS, SERVICE_ACCOUNT = "ai-workloads", "aicp-data"


def aws_objects(bucket: str = BUCKET) -> list[dict]:
    """The objects an EKS cluster with both drivers shows: their CSIDriver objects (the
    charts' templates/csidriver.yaml), a gp3 default class (the EBS driver's
    docs/parameters.md; ``WaitForFirstConsumer`` as its examples), a workload ServiceAccount
    with an IRSA role annotation (docs.aws.amazon.com/eks/latest/userguide/
    associate-service-account-role.html) and the stack's mount recipe beside it, shaped
    as Mountpoint's examples/kubernetes/static_provisioning/static_provisioning.yaml."""
    import json

    recipe = {"persistentVolume": {
        "capacity": {"storage": "1200Gi"}, "accessModes": ["ReadWriteMany"],
        "storageClassName": "", "mountOptions": ["allow-delete", "region us-west-2"],
        "csi": {"driver": S3, "volumeHandle": "s3-csi-driver-volume",
                "volumeAttributes": {"bucketName": bucket, "authenticationSource": "pod"}}}}
    return [
        {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": EBS},
         "spec": {"attachRequired": True, "podInfoOnMount": False,
                  "fsGroupPolicy": "File"}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": S3},
         "spec": {"attachRequired": False, "podInfoOnMount": True, "fsGroupPolicy": "None",
                  "requiresRepublish": True, "tokenRequests": [{"audience": "sts.amazonaws.com",
                                                                "expirationSeconds": 3600}]}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "gp3", "annotations": {DEFAULT_CLASS: "true"}},
         "provisioner": EBS, "parameters": {"type": "gp3", "encrypted": "true"},
         "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete",
         "allowVolumeExpansion": True},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": WORKLOADS, "annotations": {
             "eks.amazonaws.com/role-arn":
                 "arn:aws:iam::123456789012:role/aicp-models-example-data"}}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "aicp-storage", "namespace": WORKLOADS,
                      "labels": {"aicp.dev/storage": "model-bucket"}},
         "data": {"bucket": bucket, "serviceAccount": SERVICE_ACCOUNT, "driver": S3,
                  "recipe.json": json.dumps(recipe)}},
    ]


def aws_storage(kube) -> CsiStorage:
    """The reference platform's storage: the objects above and their drivers at work."""
    kube.seed(aws_objects())
    return CsiStorage((EBS,), {BUCKET: {(WORKLOADS, SERVICE_ACCOUNT)}}, (S3,)).install(kube)
