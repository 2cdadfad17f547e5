"""Deployment, ReplicaSet and Job controllers: pods from templates, and status back.

Simplified: a template change replaces the Deployment's pods at once (a new ReplicaSet
for the new ``pod-template-hash``, the old ones scaled to 0, as the ``Recreate`` strategy
does; no rolling surge); Jobs run ``parallelism`` pods at a time until ``completions`` succeed or
``backoffLimit`` failures, and delete their active pods when suspended.
"""

from __future__ import annotations

import hashlib
import json

from ..json_tree import clone
from ..selectors import matches_label_selector
from ..store import now, random_suffix
from .base import Controller


def owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def by_owner(objs: list[dict]) -> dict[str, list[dict]]:
    """Objects grouped by the uid of each owner they name (one pass, not one per owner)."""
    found: dict[str, list[dict]] = {}
    for obj in objs:
        for ref in obj["metadata"].get("ownerReferences") or []:
            found.setdefault(ref.get("uid"), []).append(obj)
    return found


def has_owner(obj: dict) -> bool:
    """The pods ``by_owner`` can group (``KubeAPI.view``'s ``where``)."""
    return bool(obj["metadata"].get("ownerReferences"))


def owned_by(obj: dict, owner: dict) -> bool:
    return any(r.get("uid") == owner["metadata"]["uid"]
               for r in obj["metadata"].get("ownerReferences") or [])


def pod_from_template(owner: dict, name: str, template: dict) -> dict:
    template = clone(template)
    meta = template.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                         "labels": meta.get("labels") or {},
                         **({"annotations": meta["annotations"]} if meta.get("annotations")
                            else {}),
                         "ownerReferences": [owner_ref(owner)]},
            "spec": template["spec"]}


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


class ReplicaSets(Controller):
    name = "replicasets"
    watches = ("replicasets.apps", "pods")

    def sync(self, kube) -> None:
        pods = by_owner(kube.view("pods", where=has_owner))
        for rs in kube.list("replicasets.apps"):
            ns = rs["metadata"]["namespace"]
            mine = [p for p in pods.get(rs["metadata"]["uid"], [])
                    if p["metadata"]["namespace"] == ns
                    and not p["metadata"].get("deletionTimestamp")
                    and _phase(p) not in ("Succeeded", "Failed")]
            want = rs["spec"].get("replicas", 1)
            for _ in range(want - len(mine)):
                kube.create(pod_from_template(rs, f"{rs['metadata']['name']}-{random_suffix()}",
                                              rs["spec"]["template"]))
            for extra in sorted(mine, key=lambda p: p["metadata"]["name"])[want:]:
                kube.delete("pods", extra["metadata"]["name"], ns)
            mine = mine[:want]
            ready = sum(_ready(p) for p in mine)
            status = {"replicas": len(mine), "fullyLabeledReplicas": len(mine),
                      "readyReplicas": ready, "availableReplicas": ready,
                      "observedGeneration": rs["metadata"]["generation"]}
            if rs.get("status") != status:
                kube.mutate("replicasets.apps", rs["metadata"]["name"],
                            lambda o, s=status: o.update(status=s), ns, status=True)


class Deployments(Controller):
    name = "deployments"
    watches = ("deployments.apps", "replicasets.apps")

    def sync(self, kube) -> None:
        sets = kube.list("replicasets.apps")
        for dep in kube.list("deployments.apps"):
            ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
            template = dep["spec"]["template"]
            digest = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
            owned = [r for r in sets if r["metadata"]["namespace"] == ns and owned_by(r, dep)]
            rs = next((r for r in owned
                       if (r["metadata"].get("labels") or {}).get("pod-template-hash") == digest),
                      None)
            replicas = dep["spec"].get("replicas", 1)
            for stale in owned:
                if stale is not rs and stale["spec"].get("replicas") != 0:
                    kube.mutate("replicasets.apps", stale["metadata"]["name"],
                                lambda o: o["spec"].update(replicas=0), ns)
            if rs is None:
                labels = {**(template.get("metadata") or {}).get("labels", {}),
                          "pod-template-hash": digest}
                tpl = clone(template)
                tpl.setdefault("metadata", {})["labels"] = labels
                rs = kube.create({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"{name}-{digest}", "namespace": ns, "labels": labels,
                                 "ownerReferences": [owner_ref(dep)]},
                    "spec": {"replicas": replicas, "template": tpl, "selector": {
                        "matchLabels": {**dep["spec"]["selector"].get("matchLabels", {}),
                                        "pod-template-hash": digest}}}})
            elif rs["spec"].get("replicas") != replicas:
                kube.mutate("replicasets.apps", rs["metadata"]["name"],
                            lambda o, n=replicas: o["spec"].update(replicas=n), ns)
            st = rs.get("status") or {}
            available = st.get("availableReplicas", 0)
            status = {"observedGeneration": dep["metadata"]["generation"],
                      "replicas": st.get("replicas", 0), "updatedReplicas": st.get("replicas", 0),
                      "readyReplicas": st.get("readyReplicas", 0),
                      "availableReplicas": available,
                      "unavailableReplicas": max(0, replicas - available)}
            old = dep.get("status") or {}
            cond_ok = "True" if available >= replicas else "False"
            prev = {c["type"]: c for c in old.get("conditions") or []}
            status["conditions"] = [prev["Available"] if prev.get("Available", {}).get(
                "status") == cond_ok else {
                "type": "Available", "status": cond_ok,
                "reason": "MinimumReplicasAvailable" if cond_ok == "True"
                else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability." if cond_ok == "True"
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": now(), "lastTransitionTime": now()}]
            if old != status:
                kube.mutate("deployments.apps", name, lambda o, s=status: o.update(status=s), ns,
                            status=True)


class Jobs(Controller):
    name = "jobs"
    watches = ("jobs.batch", "pods")

    def sync(self, kube) -> None:
        pods = by_owner(kube.view("pods", where=has_owner))
        for job in kube.list("jobs.batch"):
            ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
            spec = job["spec"]
            status = clone(job.get("status") or {})
            conditions = status.get("conditions") or []
            if any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                   for c in conditions):
                continue
            mine = [p for p in pods.get(job["metadata"]["uid"], [])
                    if p["metadata"]["namespace"] == ns]
            active = [p for p in mine if _phase(p) not in ("Succeeded", "Failed")
                      and not p["metadata"].get("deletionTimestamp")]
            succeeded = sum(_phase(p) == "Succeeded" for p in mine)
            failed = sum(_phase(p) == "Failed" for p in mine)
            completions = spec.get("completions")
            stamp = now()
            if spec.get("suspend"):
                for p in active:
                    kube.delete("pods", p["metadata"]["name"], ns)
                active = []
                if not any(c["type"] == "Suspended" for c in conditions):
                    conditions.append({"type": "Suspended", "status": "True",
                                       "reason": "JobSuspended", "message": "Job suspended",
                                       "lastProbeTime": stamp, "lastTransitionTime": stamp})
            else:
                conditions = [c for c in conditions if c["type"] != "Suspended"]
                status.setdefault("startTime", stamp)
                done = succeeded >= completions if completions is not None else (
                    succeeded > 0 and not active)
                if failed > spec.get("backoffLimit", 6):
                    for p in active:
                        kube.delete("pods", p["metadata"]["name"], ns)
                    active = []
                    conditions += [{"type": t, "status": "True", "reason": "BackoffLimitExceeded",
                                    "message": "Job has reached the specified backoff limit",
                                    "lastProbeTime": stamp, "lastTransitionTime": stamp}
                                   for t in ("FailureTarget", "Failed")]
                elif done:
                    status["completionTime"] = stamp
                    conditions += [{"type": t, "status": "True", "reason": "CompletionsReached",
                                    "message": "Reached expected number of succeeded pods",
                                    "lastProbeTime": stamp, "lastTransitionTime": stamp}
                                   for t in ("SuccessCriteriaMet", "Complete")]
                else:
                    remaining = (completions - succeeded) if completions is not None else 1
                    want = min(spec.get("parallelism", 1), remaining) - len(active)
                    for _ in range(max(0, want)):
                        active.append(kube.create(pod_from_template(
                            job, f"{name}-{random_suffix()}", spec["template"])))
            status.update(active=len(active), succeeded=succeeded, failed=failed,
                          ready=sum(_ready(p) for p in active), conditions=conditions)
            if not status["conditions"]:
                del status["conditions"]
            for key in ("active", "succeeded", "failed"):
                if not status[key]:
                    del status[key]
            if status != (job.get("status") or {}):
                kube.mutate("jobs.batch", name, lambda o, s=status: o.update(status=s), ns,
                            status=True)


__all__ = ["Deployments", "Jobs", "ReplicaSets", "matches_label_selector"]
