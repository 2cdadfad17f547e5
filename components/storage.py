"""Storage every target hands the addon layer: the default class, the model bucket, the
workload identity that reaches it, and the mount recipe (``StorageOutputs``).

Each target builds its own (``components/<cloud>.py``, a ``*_storage`` function hooked into
its cluster component with one line) from the same ``StorageArgs``; the stack exports the
result and ``addons/storage.py`` writes the ServiceAccount and the recipe into the
workload namespace, where ``aicp verify``'s ``data_access`` check finds them by the label
``RECIPE_LABEL``. No static credentials anywhere: a pod reaches the bucket as the
ServiceAccount, through the cloud's workload identity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.errors import InputPropertyError

SERVICE_ACCOUNT = "aicp-data"  # in the workload namespace; bound to the bucket alone
RECIPE_CONFIGMAP = "aicp-storage"
RECIPE_LABEL = ("aicp.dev/storage", "model-bucket")
# The pod's mount of the bucket in the recipe's example (any path works).
MOUNT_PATH = "/data"

# A bucket (container) name valid on every target: S3 "3-63 characters, lowercase letters,
# numbers, dots and hyphens" (docs.aws.amazon.com/AmazonS3/latest/userguide/
# bucketnamingrules.html; dots break virtual-hosted TLS, so none here), Cloud Storage the
# same (cloud.google.com/storage/docs/buckets#naming), Azure Blob containers "3-63, lowercase
# letters, numbers and hyphens, no two hyphens in a row" (learn.microsoft.com/rest/api/
# storageservices/naming-and-referencing-containers--blobs--and-metadata).
BUCKET_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StorageArgs:
    """What a target's storage builds; every target reads the same fields."""

    # Block storage: the block CSI driver with its permissions, one default class.
    block: bool = True
    default_class: str | None = None  # on-prem existing: the cluster's class to use
    # Object storage: the model bucket, created (``bucket_name`` None) or the one named.
    bucket: bool = True
    bucket_name: str | None = None
    workload_namespace: str = "ai-workloads"
    service_account: str = SERVICE_ACCOUNT
    # The teams' namespaces (``aicp:teams``, #24): each gets the same ServiceAccount bound to
    # the same bucket, and nothing else (``team_subjects``).
    team_namespaces: tuple[str, ...] = ()
    # Parallel file system (FSx for Lustre, GKE Managed Lustre, Azure Managed Lustre).
    parallel_fs: bool = False
    parallel_fs_capacity_gib: int = 1200  # FSx PERSISTENT_2's smallest (docs below)
    # The GPU machines' local NVMe/SSD for images and ephemeral storage.
    local_nvme: bool = True
    # On-prem: an S3-compatible endpoint and the Secret (in the workload namespace) holding
    # its keys, given by the user: on-prem has no workload identity to bind.
    s3_endpoint: str | None = None
    s3_secret: str | None = None

    def __post_init__(self) -> None:
        check_storage(self)


def check_storage(args: StorageArgs) -> None:
    """``InputPropertyError`` for a storage argument no target accepts."""
    check_team_namespaces(args)
    if args.bucket_name is not None and not BUCKET_NAME.match(args.bucket_name):
        raise InputPropertyError(
            "storage.bucket_name", f"{args.bucket_name!r} is not a bucket name every cloud "
            "accepts: 3-63 lowercase letters, digits and single hyphens, starting and ending "
            "with a letter or digit")
    if (args.s3_endpoint is None) != (args.s3_secret is None):
        raise InputPropertyError("storage.s3_endpoint", "give both endpoint and secret")
    if args.s3_endpoint is not None and not re.match(r"^https?://[^\s/]+", args.s3_endpoint):
        raise InputPropertyError("storage.s3_endpoint", f"{args.s3_endpoint!r} is not an "
                                 "http(s) URL (https://minio.example.internal:9000)")
    if args.parallel_fs and args.parallel_fs_capacity_gib < 1200:
        raise InputPropertyError("storage.parallel_fs_capacity_gib",
                                 f"{args.parallel_fs_capacity_gib} GiB is below 1200, the "
                                 "smallest Lustre file system FSx, GKE and Azure offer")


@dataclass
class StorageOutputs:
    """What a target's storage hands the addon layer and the stack outputs."""

    # The one default StorageClass (name), or None where no block storage is set up.
    default_class: pulumi.Input[str] | None = None
    # The model bucket and the CSI driver that mounts it.
    bucket: pulumi.Input[str] | None = None
    bucket_driver: str | None = None
    # The ServiceAccount bound to the bucket, and what binds it (cloud annotations).
    service_account: str = SERVICE_ACCOUNT
    namespace: str = "ai-workloads"
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # The mount recipe: {"persistentVolume": PV spec} or {"volume": inline pod volume}, plus
    # "podAnnotations"/"podLabels" a pod needs (GCS FUSE sidecar, AKS workload identity).
    recipe: pulumi.Input[Mapping[str, Any]] | None = None
    # The identity binding: role ARN, Google principal, managed identity client id.
    identity: pulumi.Input[str] | None = None
    parallel_fs: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)
    local_nvme: str = ""  # how the GPU machines' local disks are used, in words
    # On-prem: the user's S3-compatible endpoint, its bucket and the Secret with its keys.
    s3_endpoint: str | None = None
    s3_secret: str | None = None
    s3_bucket: str | None = None
    # The teams' namespaces whose ServiceAccount the target bound to the bucket too (#24).
    team_namespaces: tuple[str, ...] = ()
    # Teams' namespaces no identity binds (on-prem: none exists) → what their pods need instead.
    unbound_teams: Mapping[str, str] = field(default_factory=dict)
    resources: list[pulumi.Resource] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        """The stack output ``storage``: the default class, the bucket, its mount recipe
        (a ready PVC/PV example) and the ServiceAccount to use."""
        return {"defaultStorageClass": self.default_class, "bucket": self.bucket,
                "bucketDriver": self.bucket_driver,
                "serviceAccount": f"{self.namespace}/{self.service_account}"
                if self.bucket else None,
                "identity": self.identity, "mountRecipe": self.example(),
                "parallelFileSystem": dict(self.parallel_fs) or None,
                "localNvme": self.local_nvme or None,
                **team_export(self),
                **({"s3": {"endpoint": self.s3_endpoint, "bucket": self.s3_bucket,
                           "secret": f"{self.namespace}/{self.s3_secret}"}}
                   if self.s3_endpoint else {})}

    def example(self) -> pulumi.Output[Any] | None:
        """A ready-to-apply PV + PVC (or pod volume) for the bucket, as a mapping."""
        if self.recipe is None:
            return None
        return pulumi.Output.from_input(self.recipe).apply(
            lambda r: mount_example(dict(r), self.namespace, self.service_account))


def mount_example(recipe: Mapping[str, Any], namespace: str, service_account: str
                  ) -> dict[str, Any]:
    """The recipe as objects a user applies: a static PV and its claim, and a pod's spec."""
    out: dict[str, Any] = {}
    volume: dict[str, Any]
    if recipe.get("persistentVolume"):
        spec = dict(recipe["persistentVolume"])
        out["persistentVolume"] = {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "model-bucket"},
            "spec": {**spec, "claimRef": {"namespace": namespace, "name": "model-bucket"}}}
        out["persistentVolumeClaim"] = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "model-bucket", "namespace": namespace},
            "spec": {"accessModes": spec.get("accessModes", ["ReadWriteMany"]),
                     "storageClassName": spec.get("storageClassName", ""),
                     "volumeName": "model-bucket",
                     "resources": {"requests": dict(spec.get("capacity") or {})}}}
        volume = {"persistentVolumeClaim": {"claimName": "model-bucket"}}
    else:
        volume = dict(recipe.get("volume") or {})
    out["pod"] = {"metadata": {"namespace": namespace,
                               **({"annotations": recipe["podAnnotations"]}
                                  if recipe.get("podAnnotations") else {}),
                               **({"labels": recipe["podLabels"]}
                                  if recipe.get("podLabels") else {})},
                  "spec": {"serviceAccountName": service_account,
                           "volumes": [{"name": "models", **volume}],
                           "containers": [{"name": "main", "volumeMounts": [
                               {"name": "models", "mountPath": MOUNT_PATH}]}]}}
    return out


def bucket_name(args: StorageArgs, cluster_name: str, unique: str) -> str:
    """The bucket the stack creates: ``<cluster>-models-<unique>`` (bucket names are global
    on S3 and Cloud Storage; ``unique`` is the account/project), at most 63 characters."""
    if args.bucket_name:
        return args.bucket_name
    return f"{cluster_name}-models-{unique}"[:63].rstrip("-")


# --- the teams' namespaces (#24 item 5) ------------------------------------------------------
# Every team namespace gets the workload ServiceAccount, bound to the same bucket through the
# same cloud identity as the workload namespace's: EKS lists each namespace's subject in the
# IRSA role's trust, GKE adds one bucket IAM member per namespace principal, AKS one
# federated identity credential per namespace on the identity (each target's storage block
# cites its cloud's rule). A namespace not listed gets nothing.


def team_subjects(args: StorageArgs) -> tuple[tuple[str, str], ...]:
    """(namespace, ServiceAccount) of every namespace bound to the bucket: the workload
    namespace first, then each team's, each once."""
    namespaces = dict.fromkeys((args.workload_namespace, *args.team_namespaces))
    return tuple((ns, args.service_account) for ns in namespaces)


def check_team_namespaces(args: StorageArgs) -> None:
    """Each team namespace is a DNS label (RFC 1123, what a Kubernetes namespace takes)."""
    for i, ns in enumerate(args.team_namespaces):
        if not re.match(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", ns):
            raise InputPropertyError(f"storage.team_namespaces[{i}]",
                                     f"{ns!r} is not a namespace name: a lowercase DNS label")


def team_export(out: StorageOutputs) -> dict[str, Any]:
    """The stack output's ``teamServiceAccounts``: ``ns/sa`` of each team bound to the bucket,
    and ``teamsWithoutIdentity`` (on-prem): each team namespace with what its pods need instead
    (both absent without teams, so a stack without teams exports what it did before)."""
    unbound = {"teamsWithoutIdentity": dict(out.unbound_teams)} if out.unbound_teams else {}
    if not (out.bucket and out.team_namespaces):
        return unbound
    return {"teamServiceAccounts": [f"{ns}/{out.service_account}"
                                    for ns in out.team_namespaces], **unbound}


# --- on-prem teams (#24 item 5 on the data issue's on-prem design) ---------------------------
# The data issue (#20) gives on-prem no workload identity: its object storage is the user's
# S3-compatible endpoint, its keys in a Secret the user creates in the workload namespace
# (components/onprem.py). There is no identity to bind a team's namespace to, and aicp holds
# no keys to copy; a pod reads only Secrets of its own namespace (k8s.io/api core/v1
# SecretVolumeSource: "secretName is the name of the secret in the pod's namespace to use";
# EnvVarSource.secretKeyRef: "Selects a key of a secret in the pod's namespace"). So each team
# namespace is named with what its pods need, one line each in ``aicp plan``.


def unbound_teams(args: StorageArgs) -> dict[str, str]:
    """Team namespace → why it has no workload identity on-prem and what its pods need."""
    why = "no workload identity on-prem (the data design has none to bind)"
    if args.bucket and args.s3_endpoint:
        need = (f"create Secret {args.s3_secret} with the keys of {args.s3_endpoint} in this "
                f"namespace for its pods to reach bucket {args.bucket_name}")
    else:
        need = "no object store is configured either (aicp:storage.s3)"
    return {ns: f"{why}; {need}" for ns in args.team_namespaces}
