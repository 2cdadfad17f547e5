"""A Kueue-like admitter: all-or-nothing quota for Jobs labelled with a queue.

Emulates Kueue's webhook (a Job with ``kueue.x-k8s.io/queue-name`` is suspended at
creation) and controller: it creates a ``Workload`` (kueue.x-k8s.io/v1beta2) per Job and
admits it only when the ClusterQueue behind the LocalQueue has nominal quota, in one
flavor, for the whole Job (parallelism x requests). Admission unsuspends the Job and
adds the flavor's nodeLabels and tolerations to its pod template. Quota is released when
the Job finishes or is deleted. No cohorts, borrowing, preemption or priorities.
"""

from __future__ import annotations

from collections import Counter

from kubernetes.utils import parse_quantity

from ..store import now
from .base import Controller
from .resources import fmt, pod_requests
from .workloads import owner_ref

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def suspend_queued_jobs(res, obj: dict, old) -> None:
    """The admission half (Kueue's mutating webhook)."""
    if res.key == ("batch", "jobs") and QUEUE_LABEL in (obj["metadata"].get("labels") or {}):
        obj["spec"]["suspend"] = True


def _finished(job: dict) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def _condition(type_: str, status: str, reason: str, message: str) -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now()}


class KueueAdmitter(Controller):
    name = "kueue"
    watches = ("jobs.batch", "workloads.kueue.x-k8s.io", "clusterqueues.kueue.x-k8s.io",
               "localqueues.kueue.x-k8s.io")

    def install(self, kube) -> KueueAdmitter:
        kube.admit(suspend_queued_jobs)
        kube.add(self)
        return self

    def sync(self, kube) -> None:
        jobs = {(j["metadata"]["namespace"], j["metadata"]["uid"]): j
                for j in kube.list("jobs.batch", labels=QUEUE_LABEL)}
        workloads = kube.list("workloads.kueue.x-k8s.io")
        by_job = {}
        for wl in workloads:
            for ref in wl["metadata"].get("ownerReferences") or []:
                by_job[(wl["metadata"]["namespace"], ref["uid"])] = wl
        for key, job in jobs.items():
            if key not in by_job and not _finished(job):
                by_job[key] = self._workload_for(kube, job)
        usage: dict[str, Counter] = {}
        for key, wl in by_job.items():
            job = jobs.get(key)
            admitted = (wl.get("status") or {}).get("admission")
            if admitted and job is not None and _finished(job):
                self._finish(kube, wl)
            elif admitted and job is not None:
                usage.setdefault(admitted["clusterQueue"], Counter()).update(self._flavored(wl))
        for key, wl in sorted(by_job.items(), key=lambda kv: kv[1]["metadata"][
                "creationTimestamp"]):
            job = jobs.get(key)
            if job is None or (wl.get("status") or {}).get("admission") or _finished(job):
                continue
            self._try_admit(kube, job, wl, usage)

    def _workload_for(self, kube, job: dict) -> dict:
        meta = job["metadata"]
        template = job["spec"]["template"]
        return kube.create({
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
            "metadata": {"name": f"job-{meta['name']}-{meta['uid'][:5]}",
                         "namespace": meta["namespace"], "labels": {
                             "kueue.x-k8s.io/job-uid": meta["uid"]},
                         "ownerReferences": [owner_ref(job)]},
            "spec": {"queueName": meta["labels"][QUEUE_LABEL], "podSets": [{
                "name": "main", "count": job["spec"].get("parallelism", 1),
                "template": {"metadata": template.get("metadata") or {},
                             "spec": template["spec"]}}]}})

    @staticmethod
    def _needs(wl: dict) -> Counter:
        need: Counter = Counter()
        for ps in wl["spec"]["podSets"]:
            per_pod = pod_requests(ps["template"]["spec"])
            per_pod.pop("pods", None)
            for name, qty in per_pod.items():
                need[name] += qty * ps.get("count", 1)
        return need

    def _flavored(self, wl: dict) -> Counter:
        admission = wl["status"]["admission"]
        out: Counter = Counter()
        for psa in admission.get("podSetAssignments") or []:
            for name, qty in (psa.get("resourceUsage") or {}).items():
                out[(psa["flavors"][name], name)] += parse_quantity(qty)
        return out

    def _try_admit(self, kube, job: dict, wl: dict, usage: dict[str, Counter]) -> None:
        ns, queue = job["metadata"]["namespace"], wl["spec"]["queueName"]
        local = kube.find("localqueues.kueue.x-k8s.io", queue, ns)
        cq = kube.find("clusterqueues.kueue.x-k8s.io", local["spec"]["clusterQueue"]) \
            if local else None
        if cq is None:
            return self._pending(kube, wl, f"LocalQueue {queue} doesn't exist or has no "
                                           "ClusterQueue")
        need = self._needs(wl)
        used = usage.setdefault(cq["metadata"]["name"], Counter())
        for group in cq["spec"].get("resourceGroups") or []:
            covered = set(group.get("coveredResources") or [])
            if not set(need) <= covered:
                continue
            for flavor in group.get("flavors") or []:
                quota = {r["name"]: parse_quantity(r["nominalQuota"])
                         for r in flavor.get("resources") or []}
                if all(used[(flavor["name"], r)] + q <= quota.get(r, 0) for r, q in need.items()):
                    for r, q in need.items():
                        used[(flavor["name"], r)] += q
                    return self._admit(kube, job, wl, cq, flavor["name"], need)
        self._pending(kube, wl, f"couldn't assign flavors to pod set main: insufficient quota "
                                f"in ClusterQueue {cq['metadata']['name']}")

    def _pending(self, kube, wl: dict, message: str) -> None:
        conds = (wl.get("status") or {}).get("conditions") or []
        if any(c["type"] == "QuotaReserved" and c.get("message") == message for c in conds):
            return
        kube.mutate("workloads.kueue.x-k8s.io", wl["metadata"]["name"], lambda w: w.update(
            status={"conditions": [_condition("QuotaReserved", "False", "Pending", message)]}),
            wl["metadata"]["namespace"], status=True)

    def _admit(self, kube, job: dict, wl: dict, cq: dict, flavor: str, need: Counter) -> None:
        ps = wl["spec"]["podSets"][0]
        admission = {"clusterQueue": cq["metadata"]["name"], "podSetAssignments": [{
            "name": ps["name"], "count": ps.get("count", 1),
            "flavors": {r: flavor for r in need},
            "resourceUsage": {r: fmt(q) for r, q in need.items()}}]}
        conds = [_condition("QuotaReserved", "True", "QuotaReserved",
                            f"Quota reserved in ClusterQueue {cq['metadata']['name']}"),
                 _condition("Admitted", "True", "Admitted",
                            "The workload is admitted")]
        kube.mutate("workloads.kueue.x-k8s.io", wl["metadata"]["name"],
                    lambda w: w.update(status={"admission": admission, "conditions": conds}),
                    wl["metadata"]["namespace"], status=True)
        rf = kube.find("resourceflavors.kueue.x-k8s.io", flavor) or {"spec": {}}

        def unsuspend(j: dict) -> None:
            j["spec"]["suspend"] = False
            pod_spec = j["spec"]["template"]["spec"]
            if rf["spec"].get("nodeLabels"):
                pod_spec.setdefault("nodeSelector", {}).update(rf["spec"]["nodeLabels"])
            for t in rf["spec"].get("tolerations") or []:
                if t not in pod_spec.setdefault("tolerations", []):
                    pod_spec["tolerations"].append(t)
        kube.mutate("jobs.batch", job["metadata"]["name"], unsuspend,
                    job["metadata"]["namespace"])

    def _finish(self, kube, wl: dict) -> None:
        def done(w: dict) -> None:
            conds = [c for c in w["status"].get("conditions") or [] if c["type"] != "Finished"]
            w["status"]["conditions"] = conds + [
                _condition("Finished", "True", "JobFinished", "Job finished")]
            w["status"].pop("admission", None)
        kube.mutate("workloads.kueue.x-k8s.io", wl["metadata"]["name"], done,
                    wl["metadata"]["namespace"], status=True)
