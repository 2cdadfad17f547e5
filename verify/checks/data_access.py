"""data_access: workloads keep data on the default class and reach the model bucket with
the workload identity, and only with it.

aicp's own platform check (the CNCF checklist has no storage requirement; the working
group asks for "scalable access to data" and "secure access to ... object storage"). Its
cases, in order:

1. ``_a_default_class_binds_and_keeps_data``: a PersistentVolumeClaim without
   ``storageClassName`` gets the cluster's default StorageClass (the DefaultStorageClass
   admission plugin: kubernetes.io/docs/concepts/storage/persistent-volumes/#class-1), is
   bound by its provisioner, and a pod writes a file on it and reads it back. No default
   class, or a claim that stays Pending: FAIL with the class and the claim's events.
2. ``_the_workload_identity_reads_and_writes_the_bucket``: the model bucket an aicp stack
   publishes (a ConfigMap labelled ``aicp.dev/storage=model-bucket`` in the workload
   namespace, beside the ServiceAccount bound to the bucket through the cloud's workload
   identity; its ``recipe.json`` is the stack's mount recipe) is mounted through its CSI
   driver in a pod running as that ServiceAccount, which writes an object and reads it
   back. No published bucket, or a refused mount: FAIL with the reason.
3. ``_a_pod_without_the_identity_is_refused``: the same mount in a pod running as the
   namespace's ``default`` ServiceAccount must not reach the bucket: its mount is refused
   (a ``FailedMount`` event) or its read fails. Reading the object back: FAIL (the bucket
   is open to every pod of the namespace, e.g. driver-wide credentials instead of the pod's:
   Mountpoint for Amazon S3 needs ``authenticationSource: pod``,
   awslabs/mountpoint-s3-csi-driver docs/CONFIGURATION.md "Pod-Level Credentials").
   Neither a refusal nor an end within the wait: ERROR.

ERROR also: a pod that does not finish in time for another reason (an image pull).
"""

from __future__ import annotations

import copy
import json

from ..probe import Context, Fail, Probe, ProbeError, Settings
from ..probes import _pods

# kubernetes.io/docs/concepts/storage/storage-classes/#default-storageclass
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
# What an aicp stack writes beside the workload ServiceAccount (stacks/program.py).
RECIPE_LABEL = "aicp.dev/storage=model-bucket"
MOUNT = "/data"


def script(path: str, token: str) -> str:
    """Write ``token`` to ``path`` (a new object: Mountpoint refuses overwrites), read it
    back, delete it (the stack mounts with ``allow-delete``); any failing step fails the
    pod. The token printed back is what proves the round trip."""
    return (f'set -e; mkdir -p "$(dirname {path})"; echo {token} > {path}; '
            f'echo "READ: $(cat {path})"; rm -f {path}')


class DataAccess(Probe):
    id = "data_access"
    category = "storage"
    mutating = True
    title = ("A PVC of the default class binds and keeps data; the model bucket is "
             "reachable with the workload identity and only with it")

    timeouts = {
        # Dynamic provisioning of a cloud disk then attach: EBS/PD/Azure Disk take tens of
        # seconds; the upstream external-provisioner retries with backoff up to 5 min
        # (kubernetes-csi/external-provisioner README "--retry-interval-max" default 5m).
        "pod_timeout": 300.0,
        # A refused mount shows as a FailedMount event within the kubelet's first mount
        # attempt (kubernetes pkg/kubelet/volumemanager: retries with backoff, events on
        # each failure); two minutes leaves several attempts.
        "denied_timeout": 120.0,
    }

    @classmethod
    def budget(cls, settings: Settings) -> float:
        return 2 * cls.timeout(settings, "pod_timeout") + cls.timeout(
            settings, "denied_timeout") + 60.0

    def cases(self, ctx: Context) -> str:
        klass = _a_default_class_binds_and_keeps_data(ctx)
        recipe = _the_workload_identity_reads_and_writes_the_bucket(ctx)
        _a_pod_without_the_identity_is_refused(ctx, recipe)
        return (f"a claim of the default class {klass} bound and kept data; bucket "
                f"{recipe['bucket']} was written and read as ServiceAccount "
                f"{recipe['namespace']}/{recipe['serviceAccount']} through "
                f"{recipe['driver']}, and refused to the namespace's default ServiceAccount")


# 1 ----------------------------------------------------------------------------------------
def _a_default_class_binds_and_keeps_data(ctx: Context) -> str:
    with ctx.step("find the default StorageClass"):
        classes = ctx.kube.request("GET", "/apis/storage.k8s.io/v1/storageclasses").get(
            "items", [])
        defaults = [c for c in classes if (c["metadata"].get("annotations") or {}).get(
            DEFAULT_CLASS) == "true"]
        ctx.observe("storageClasses", {c["metadata"]["name"]: c.get("provisioner")
                                       for c in classes})
        if not ctx.check("a default StorageClass exists", bool(defaults),
                         ", ".join(c["metadata"]["name"] for c in defaults) or "none"):
            raise Fail("no default StorageClass (annotation " + DEFAULT_CLASS + "=true on "
                       f"none of {len(classes)} classes): a claim without storageClassName "
                       "stays Pending; install the block CSI driver and mark one class "
                       "default")
        # More than one default: the newest is used (Kubernetes 1.26+, same page).
        chosen = max(defaults, key=lambda c: c["metadata"].get("creationTimestamp", ""))
        name = chosen["metadata"]["name"]
        ctx.observe("defaultStorageClass", {"name": name,
                                            "provisioner": chosen.get("provisioner"),
                                            "volumeBindingMode": chosen.get(
                                                "volumeBindingMode", "Immediate")})
    with ctx.step(f"a pod writes and reads a claim of {name}"):
        ns = ctx.namespace()
        _pods.create(ctx, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            # No storageClassName: the default class is what is under test.
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}, ns)
        token = f"aicp-{ctx.run_id}-block"
        pod = _run(ctx, ns, "block", {"persistentVolumeClaim": {"claimName": "data"}},
                   script(f"{MOUNT}/aicp-verify/{ctx.run_id}.txt", token))
        claim = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
        phase = (claim.get("status") or {}).get("phase", "Pending")
        ctx.observe("claim", {"phase": phase, "class": claim["spec"].get("storageClassName"),
                              "volume": claim["spec"].get("volumeName")})
        ctx.check(f"the claim got the default class {name}",
                  claim["spec"].get("storageClassName") == name,
                  claim["spec"].get("storageClassName") or "(none)")
        if not ctx.check("the claim is Bound", phase == "Bound", phase):
            raise Fail(f"a claim of the default class {name} stayed {phase}: "
                       f"{_events(ctx, ns, 'PersistentVolumeClaim', 'data')}")
        if pod is None:
            raise ProbeError(f"the pod using the bound claim did not finish within "
                             f"{ctx.timeout('pod_timeout'):g}s: "
                             f"{_events(ctx, ns, 'Pod', 'block')}")
        _read_back(ctx, ns, "block", pod, token, f"a volume of class {name}")
    return name


# 2 ----------------------------------------------------------------------------------------
def _the_workload_identity_reads_and_writes_the_bucket(ctx: Context) -> dict:
    with ctx.step("find the model bucket"):
        found = ctx.kube.request("GET", "/api/v1/configmaps",
                                 query={"labelSelector": RECIPE_LABEL}).get("items", [])
        if not ctx.check("a model bucket is published (ConfigMap labelled "
                         f"{RECIPE_LABEL})", bool(found),
                         ", ".join(f"{c['metadata']['namespace']}/{c['metadata']['name']}"
                                   for c in found) or "none"):
            raise Fail("no model bucket reachable with workload identity is published: no "
                       f"ConfigMap labelled {RECIPE_LABEL} (an aicp stack writes one beside "
                       "the workload ServiceAccount; storage.bucket.enabled)")
        recipe = _recipe(found[0])
        ctx.observe("bucket", {k: recipe[k] for k in ("bucket", "driver", "namespace",
                                                      "serviceAccount")})
    ns, sa = recipe["namespace"], recipe["serviceAccount"]
    with ctx.step(f"a pod as {ns}/{sa} writes and reads bucket {recipe['bucket']}"):
        account = _get_or_none(ctx, f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}")
        if not ctx.check(f"the workload ServiceAccount {ns}/{sa} exists", bool(account),
                         "found" if account else "missing") or account is None:
            raise Fail(f"the model bucket's ServiceAccount {ns}/{sa} does not exist: no "
                       "pod can use the workload identity")
        ctx.observe("serviceAccountAnnotations",
                    (account.get("metadata") or {}).get("annotations") or {})
        token = f"aicp-{ctx.run_id}-bucket"
        volume = _bucket_volume(ctx, recipe, "with")
        pod = _run(ctx, ns, _name(ctx, "with"), volume,
                   script(f"{MOUNT}/aicp-verify/{ctx.run_id}.txt", token), service_account=sa,
                   recipe=recipe)
        if pod is None:
            raise Fail(f"a pod as {ns}/{sa} could not mount bucket {recipe['bucket']} within "
                       f"{ctx.timeout('pod_timeout'):g}s: "
                       f"{_events(ctx, ns, 'Pod', _name(ctx, 'with'))}")
        _read_back(ctx, ns, _name(ctx, "with"), pod, token, f"bucket {recipe['bucket']}")
    return recipe


# 3 ----------------------------------------------------------------------------------------
def _a_pod_without_the_identity_is_refused(ctx: Context, recipe: dict) -> None:
    ns, bucket, name = recipe["namespace"], recipe["bucket"], _name(ctx, "without")
    with ctx.step(f"a pod as {ns}/default tries bucket {bucket}"):
        token = f"aicp-{ctx.run_id}-denied"
        volume = _bucket_volume(ctx, recipe, "without")
        _create_pod(ctx, ns, name, volume, script(f"{MOUNT}/aicp-verify/{ctx.run_id}-x.txt",
                                                  token), "default", recipe)

        def settled():
            pod = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return ("ended", pod)
            refused = _failed_mounts(ctx, ns, name)
            return ("refused", refused) if refused else None

        outcome = ctx.wait_for(f"pod {name} to be refused or end", settled,
                               timeout=ctx.timeout("denied_timeout"), interval=2.0, first=0.2)
        if outcome is None:
            raise ProbeError(f"a pod as {ns}/default neither had its mount of bucket {bucket} "
                             f"refused nor ended within {ctx.timeout('denied_timeout'):g}s: "
                             "could not decide whether the bucket is open to it")
        kind, what = outcome
        if kind == "refused":
            ctx.check("a pod without the workload ServiceAccount cannot mount the bucket",
                      True, f"FailedMount: {what}")
            return
        text = _pods.logs(ctx, ns, name, "data")
        read = f"READ: {token}" in text
        ctx.check("a pod without the workload ServiceAccount cannot read or write the "
                  "bucket", not read, f"{what['status']['phase']}; "
                  f"{'read its object back' if read else 'could not'}")
        if read:
            raise Fail(f"a pod as {ns}/default (without the workload ServiceAccount) wrote "
                       f"and read bucket {bucket}: access is not scoped to the identity "
                       "(driver-wide credentials? mount with the pod's own identity)",
                       partial=True)


# Helpers ----------------------------------------------------------------------------------
def _recipe(configmap: dict) -> dict:
    data = configmap.get("data") or {}
    try:
        mount = json.loads(data.get("recipe.json") or "{}")
    except ValueError as exc:
        raise ProbeError(f"ConfigMap {configmap['metadata']['namespace']}/"
                         f"{configmap['metadata']['name']}: recipe.json is not JSON "
                         f"({exc})") from None
    missing = [k for k in ("bucket", "serviceAccount", "driver") if not data.get(k)]
    if missing or not (mount.get("persistentVolume") or mount.get("volume")):
        raise ProbeError(f"ConfigMap {configmap['metadata']['namespace']}/"
                         f"{configmap['metadata']['name']} lacks "
                         f"{', '.join(missing) or 'a persistentVolume or volume in recipe.json'}")
    return {"bucket": data["bucket"], "serviceAccount": data["serviceAccount"],
            "driver": data["driver"], "namespace": configmap["metadata"]["namespace"],
            "mount": mount}


def _name(ctx: Context, who: str) -> str:
    return f"aicp-verify-{ctx.run_id}-bucket-{who}"[:63]


def _bucket_volume(ctx: Context, recipe: dict, who: str) -> dict:
    """The pod volume of the recipe: a static PersistentVolume and its claim (Mountpoint
    for Amazon S3, Azure Blob), or an inline CSI volume (Cloud Storage FUSE)."""
    mount, ns = recipe["mount"], recipe["namespace"]
    if not mount.get("persistentVolume"):
        return copy.deepcopy(mount["volume"])
    name = _name(ctx, who)
    spec = copy.deepcopy(mount["persistentVolume"])
    # A volumeHandle is unique in the cluster (awslabs/mountpoint-s3-csi-driver
    # examples/kubernetes/static_provisioning: "must be unique"); the claimRef reserves
    # the volume for this claim only.
    spec.setdefault("csi", {})["volumeHandle"] = name
    spec["claimRef"] = {"namespace": ns, "name": name}
    spec.setdefault("storageClassName", "")
    _pods.create(ctx, "/api/v1/persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": spec})
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": spec.get("accessModes") or ["ReadWriteMany"],
                 "storageClassName": spec["storageClassName"], "volumeName": name,
                 "resources": {"requests": {"storage": (spec.get("capacity") or {}).get(
                     "storage", "1Gi")}}}}, ns)
    return {"persistentVolumeClaim": {"claimName": name}}


def _create_pod(ctx: Context, ns: str, name: str, volume: dict, command: str,
                service_account: str | None, recipe: dict | None) -> dict:
    mount = (recipe or {}).get("mount") or {}
    meta: dict = {"name": name}
    if mount.get("podAnnotations"):  # GKE: gke-gcsfuse/volumes injects the FUSE sidecar
        meta["annotations"] = dict(mount["podAnnotations"])
    if mount.get("podLabels"):  # AKS: azure.workload.identity/use
        meta["labels"] = dict(mount["podLabels"])
    spec: dict = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                  "volumes": [{"name": "data", **volume}],
                  "containers": [{"name": "data", "image": ctx.image("busybox"),
                                  "command": ["sh", "-c", command],
                                  "volumeMounts": [{"name": "data", "mountPath": MOUNT}],
                                  "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                                "limits": {"cpu": "200m",
                                                           "memory": "128Mi"}}}]}
    if service_account:
        spec["serviceAccountName"] = service_account
    return _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods",
                        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}, ns)


def _run(ctx: Context, ns: str, name: str, volume: dict, command: str, *,
         service_account: str | None = None, recipe: dict | None = None) -> dict | None:
    _create_pod(ctx, ns, name, volume, command, service_account, recipe)
    return _pods.wait_finished(ctx, ns, name, ctx.timeout("pod_timeout"))


def _read_back(ctx: Context, ns: str, name: str, pod: dict, token: str, where: str) -> None:
    text = _pods.logs(ctx, ns, name, "data")
    phase = pod["status"]["phase"]
    ok = phase == "Succeeded" and f"READ: {token}" in text
    if not ctx.check(f"a pod wrote {where} and read the same data back", ok,
                     f"{phase}; {text.strip().splitlines()[-1] if text.strip() else 'no output'}"):
        raise Fail(f"the pod using {where} ended {phase} without reading back what it wrote")


def _events(ctx: Context, ns: str, kind: str, name: str) -> str:
    items = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/events", query={
        "fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"}).get(
        "items", [])
    said = [f"{e.get('reason')}: {e.get('message')}" for e in items if e.get("reason")]
    return "; ".join(dict.fromkeys(said)) or f"no events on {kind} {name}"


def _failed_mounts(ctx: Context, ns: str, name: str) -> str:
    items = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/events", query={
        "fieldSelector": f"involvedObject.name={name},reason=FailedMount"}).get("items", [])
    return "; ".join(dict.fromkeys(str(e.get("message", "")) for e in items))


def _get_or_none(ctx: Context, path: str) -> dict | None:
    """The object, or None when the API server answers 404."""
    try:
        return ctx.kube.request("GET", path)
    except ProbeError:
        raise
    except Exception as exc:
        if getattr(exc, "status", None) == 404:  # kubernetes ApiException: an answer here
            return None
        raise
