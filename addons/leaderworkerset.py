"""LeaderWorkerSet: the workload API llm-d runs prefill and decode model servers with.

A disaggregated deployment is two LeaderWorkerSets (``leaderworkerset.x-k8s.io/v1``), one
per phase, each a group of pods per replica (a leader and its tensor-parallel workers), so
each phase scales on its own; llm-d's guides deploy them so (llm-d/llm-d guides/pd-
disaggregation). The controller is light (one Deployment, webhooks with internal
certificates) until a model is deployed. Installed from the published OCI chart with its
defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from ..components.contract import ClusterOutputs
from .base import Addon
from .catalog import CHARTS

RELEASE = "lws"
API = "leaderworkerset.x-k8s.io/v1"


@dataclass(frozen=True)
class LeaderWorkerSetArgs:
    namespace: str = "lws-system"


class LeaderWorkerSet(Addon):
    """The LeaderWorkerSet controller release (part of disaggregated_inference)."""

    token = "aicp:addons:LeaderWorkerSet"
    serves = ("disaggregated_inference",)

    def __init__(self, name: str, cluster: ClusterOutputs,
                 args: LeaderWorkerSetArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, cluster, opts)
        args = args or LeaderWorkerSetArgs()
        namespace = self.create_namespace(f"{name}-namespace", args.namespace, "baseline")
        self.release = self.helm_release(
            f"{name}-release", CHARTS["leaderworkerset"], name=RELEASE,
            namespace=args.namespace, values={}, depends_on=[namespace])
        self.finish(namespace=args.namespace, release=self.release.name, api=API)
