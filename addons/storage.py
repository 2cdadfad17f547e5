"""Workload storage: the ServiceAccount bound to the model bucket and the mount recipe, in
the workload namespace.

The target's storage (``ClusterOutputs.storage``, built in ``components/<cloud>.py``) holds
the identity binding and the recipe; this addon writes the Kubernetes side of it:

- ``ServiceAccount aicp-data`` with the cloud's identity annotation (EKS IRSA
  ``eks.amazonaws.com/role-arn``, GKE needs none: the IAM binding names the Kubernetes
  principal itself, AKS ``azure.workload.identity/client-id``);
- ``ConfigMap aicp-storage`` labelled ``aicp.dev/storage=model-bucket``: bucket, driver,
  ServiceAccount and ``recipe.json`` (the PV or inline volume a pod mounts). ``aicp verify``'s
  ``data_access`` check reads it; so can a person (``kubectl get cm aicp-storage -o yaml``);
- the same two in each team namespace (``aicp:teams``, #24), whose ServiceAccount the target
  bound to the same bucket and nothing else.

No credentials are written anywhere: the ServiceAccount's token is what the cloud trusts.
The workload namespace is Kueue's when Kueue runs (``after``), else this addon creates it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ..components.contract import ClusterOutputs
from ..components.storage import RECIPE_CONFIGMAP, RECIPE_LABEL, StorageOutputs
from .base import Addon


@dataclass(frozen=True)
class WorkloadStorageArgs:
    # The release that creates the workload namespace (Kueue); none: created here.
    after: Sequence[pulumi.Resource] = ()
    create_namespace: bool = False


class WorkloadStorage(Addon):
    """The workload ServiceAccount and the model bucket's mount recipe."""

    token = "aicp:addons:WorkloadStorage"
    serves = ()

    def __init__(self, name: str, cluster: ClusterOutputs,
                 args: WorkloadStorageArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or WorkloadStorageArgs()
        storage = cluster.storage
        if storage is None or storage.bucket is None:
            self.finish()
            return
        after = list(args.after)
        if args.create_namespace:
            after.append(self.create_namespace(f"{name}-namespace", storage.namespace,
                                               "baseline"))
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={"name": storage.service_account, "namespace": storage.namespace,
                      "annotations": dict(storage.service_account_annotations) or None},
            opts=self.child_opts(depends_on=after))
        recipe = pulumi.Output.from_input(storage.recipe or {}).apply(
            lambda r: json.dumps(r, sort_keys=True))
        self.recipe = k8s.core.v1.ConfigMap(
            f"{name}-recipe",
            metadata={"name": RECIPE_CONFIGMAP, "namespace": storage.namespace,
                      "labels": {RECIPE_LABEL[0]: RECIPE_LABEL[1]}},
            data={"bucket": storage.bucket, "driver": storage.bucket_driver or "",
                  "serviceAccount": storage.service_account, "recipe.json": recipe},
            opts=self.child_opts(depends_on=after))
        self.teams = self._teams(name, storage, after)
        self.finish(serviceAccount=self.service_account.metadata.name,
                    recipe=self.recipe.metadata.name)

    def _teams(self, name: str, storage: StorageOutputs, after: Sequence[pulumi.Resource]
               ) -> dict[str, tuple[k8s.core.v1.ServiceAccount, k8s.core.v1.ConfigMap]]:
        """The same ServiceAccount (annotations included) and recipe in each team namespace
        the target bound to the bucket (``StorageOutputs.team_namespaces``, #24); Kueue
        creates those namespaces (``after``)."""
        made = {}
        recipe = pulumi.Output.from_input(storage.recipe or {}).apply(
            lambda r: json.dumps(r, sort_keys=True))
        for ns in storage.team_namespaces:
            account = k8s.core.v1.ServiceAccount(
                f"{name}-team-{ns}-service-account",
                metadata={"name": storage.service_account, "namespace": ns,
                          "annotations": dict(storage.service_account_annotations) or None},
                opts=self.child_opts(depends_on=list(after)))
            config = k8s.core.v1.ConfigMap(
                f"{name}-team-{ns}-recipe",
                metadata={"name": RECIPE_CONFIGMAP, "namespace": ns,
                          "labels": {RECIPE_LABEL[0]: RECIPE_LABEL[1]}},
                data={"bucket": storage.bucket or "", "driver": storage.bucket_driver or "",
                      "serviceAccount": storage.service_account, "recipe.json": recipe},
                opts=self.child_opts(depends_on=list(after)))
            made[ns] = (account, config)
        return made
