"""The defaulting the API server applies on create, for the fields probes read back."""

from __future__ import annotations

import itertools

_cluster_ips = itertools.count(10)


def _pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in spec.get("containers") or []:
        image = c.get("image") or ""
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})


def _qos(spec: dict) -> str:
    containers = spec.get("containers") or []
    res = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all(
        r.get("limits") and all(r.get("limits", {}).get(k) is not None for k in ("cpu", "memory"))
        and all(r.get("requests", r["limits"]).get(k) == r["limits"].get(k)
                for k in ("cpu", "memory")) for r in res)
    return "Guaranteed" if guaranteed else "Burstable"


def on_create(kind: str, obj: dict, uid: str) -> None:
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict):
        _pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": _qos(spec)}
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        if spec.get("clusterIP") != "None":
            n = next(_cluster_ips)
            spec.setdefault("clusterIP", f"10.96.{n // 250}.{n % 250 + 1}")
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _pod_spec((spec.get("template") or {}).setdefault("spec", {}))
    elif kind == "DaemonSet" and isinstance(spec, dict):
        _pod_spec((spec.get("template") or {}).setdefault("spec", {}))
    elif kind == "Job" and isinstance(spec, dict):
        if "parallelism" not in spec and "completions" not in spec:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        template = spec.setdefault("template", {})
        _pod_spec(template.setdefault("spec", {}))
        if not spec.get("manualSelector"):
            # The API server labels a Job's pods with its uid and selects them by it.
            name = obj["metadata"]["name"]
            labels = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                      "batch.kubernetes.io/job-name": name, "job-name": name}
            template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
