"""Kueue as the probes and checks find it (helpers, not a probe): its manager Configuration.

Kueue reads its Configuration from a ConfigMap in its own namespace (kueue v0.19.2 chart:
ConfigMap ``kueue-manager-config``, key ``controller_manager_config.yaml``; apis/config
``Configuration``); a namespace or name other installs choose is found through the workload
behind Kueue's admission webhooks (``discover``), the default namespaces only as a hint.
"""

from __future__ import annotations

from decimal import Decimal

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from .. import discover
from ..probe import Context, ProbeError

KUEUE = "kueue.x-k8s.io"
# Where Kueue's installs put it by default: the chart's and the manifests' kueue-system,
# and "kueue" (a hint only).
KUEUE_NAMESPACES = ("kueue-system", "kueue")


def manager_config(ctx: Context) -> dict:
    """Kueue's manager Configuration from its ConfigMap, when readable (else {}): in the
    namespace of the workload behind Kueue's admission webhooks, else in the namespaces its
    installs use by default."""
    found = discover.operator_behind_webhooks(ctx, KUEUE, "clusterqueues")
    if found:
        ctx.observe("kueueFoundBy", [f.evidence for f in found])
    for ns in dict.fromkeys([*(f.namespace for f in found), *KUEUE_NAMESPACES]):
        try:
            items = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/configmaps")["items"]
        except (ApiException, ProbeError):  # absent namespace, or no permission
            continue
        for cm in items:
            for text in (cm.get("data") or {}).values():
                try:
                    doc = yaml.safe_load(text)
                except yaml.YAMLError:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "Configuration" and \
                        str(doc.get("apiVersion", "")).startswith("config.kueue.x-k8s.io"):
                    ctx.observe("kueueConfig", f"{ns}/{cm['metadata']['name']}")
                    return doc
    return {}


def device_class_mappings(ctx: Context) -> dict[str, str]:
    """Kueue's ``resources.deviceClassMappings`` (quota name → first DeviceClass), where its
    Configuration is readable; {} otherwise (kueue v0.19.2 apis/config/v1beta2
    DeviceClassMapping)."""
    mappings = (manager_config(ctx).get("resources") or {}).get("deviceClassMappings") or []
    return {m["name"]: (m.get("deviceClassNames") or [""])[0]
            for m in mappings if isinstance(m, dict) and m.get("name")}


def reserved(cq: dict, flavor: str, resource: str) -> Decimal:
    """What a ClusterQueue holds of ``flavor``'s ``resource`` now: ``status.flavorsReservation``
    (quota reserved by admitted workloads), else ``flavorsUsage`` (kueue v0.19.2
    ClusterQueueStatus)."""
    status = cq.get("status") or {}
    for entry in status.get("flavorsReservation") or status.get("flavorsUsage") or []:
        if entry.get("name") == flavor:
            for r in entry.get("resources") or []:
                if r.get("name") == resource:
                    return parse_quantity(r.get("total", 0))
    return Decimal(0)


def cohort(cq: dict) -> str | None:
    """The ClusterQueue's cohort: ``spec.cohortName`` (v1beta2), ``spec.cohort`` (v1beta1)."""
    spec = cq.get("spec") or {}
    return spec.get("cohortName") or spec.get("cohort")
