"""A Kueue-like admitter: all-or-nothing quota for Jobs labelled with a queue, with cohorts.

Emulates Kueue's webhook (a Job with ``kueue.x-k8s.io/queue-name`` is suspended at
creation) and controller: it creates a ``Workload`` (kueue.x-k8s.io/v1beta2) per Job and
admits it when the ClusterQueue behind the LocalQueue has quota, in one flavor, for the
whole Job (parallelism x requests). Admission unsuspends the Job and adds the flavor's
nodeLabels and tolerations to its pod template. Quota is released when the Job finishes or
is deleted. Each behaviour follows kubernetes-sigs/kueue v0.19.2:

- ``namespaceSelector``: a ClusterQueue admits only workloads whose namespace its selector
  matches; otherwise the workload stays pending, "Workload namespace doesn't match
  ClusterQueue selector" (site/content/en/docs/concepts/cluster_queue.md, "Namespace
  selector"; pkg/cache/scheduler ClusterQueue inadmissible message).
- Cohorts (``spec.cohortName``; v1beta1 ``cohort``): ClusterQueues of one cohort lend each
  other unused quota. A flavor's quota a queue may use is its ``nominalQuota`` plus what it
  borrows, at most ``borrowingLimit`` (unset: no limit), from what the others lend; each
  lends at most ``lendingLimit`` of its nominal quota (unset: all of it), keeping the rest
  for itself (cluster_queue.md "Cohort", "BorrowingLimit", "LendingLimit").
- Preemption (cluster_queue.md "Preemption"; concepts/preemption.md): a workload that fits
  its queue's nominal quota but not what the cohort has left may, with
  ``reclaimWithinCohort`` ``Any`` (any priority) or ``LowerPriority``, preempt workloads of
  queues of the cohort that use more than their nominal quota; with ``withinClusterQueue:
  LowerPriority`` it preempts lower-priority workloads of its own queue. Candidates go lowest
  priority first, then the most recently admitted (preemption.md "candidates ... sorted").
  A preempted workload gets ``Evicted`` (reason ``Preempted``) and ``Preempted`` (reason
  ``InCohortReclamation`` or ``InClusterQueue``: apis/kueue/v1beta2 workload_types.go;
  pkg/scheduler/preemption/preemption.go ``HumanReadablePreemptionReasons``), loses its
  admission, and its Job is suspended again (its pods deleted) and requeued.
- Priority: a Job's ``kueue.x-k8s.io/priority-class`` label names a WorkloadPriorityClass
  whose ``value`` is the workload's ``spec.priority``, referenced by ``spec.priorityClassRef``
  (concepts/workload_priority_class.md; v1beta2 Workload CRD).
- DRA: with ``device_class_mappings`` (the manager's ``resources.deviceClassMappings``), the
  devices a pod's ResourceClaimTemplates request count as the mapped resource
  (tasks/manage/setup_dra.md).
- The ClusterQueue's ``status.flavorsReservation`` and ``admittedWorkloads`` report what is
  reserved (apis/kueue/v1beta2 clusterqueue_types.go).

Not emulated: fair sharing's share ordering (the reclaim above is what it reduces to for a
queue within its nominal quota), ``borrowWithinCohort``, hierarchical Cohort objects,
admission checks, flavor fungibility beyond "first flavor that fits".
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from kubernetes.utils import parse_quantity

from ..selectors import matches_label_selector
from ..store import now
from .base import Controller
from .resources import fmt, pod_requests
from .workloads import owner_ref

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


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


def cohort_of(cq: dict) -> str | None:
    spec = cq.get("spec") or {}
    return spec.get("cohortName") or spec.get("cohort")


class _Quota:
    """One ClusterQueue's quota of one (flavor, resource)."""

    def __init__(self, entry: dict | None):
        entry = entry or {}
        self.nominal = parse_quantity(entry.get("nominalQuota", 0))
        borrowing = entry.get("borrowingLimit")
        lending = entry.get("lendingLimit")
        self.borrowing = None if borrowing is None else parse_quantity(borrowing)
        self.lendable = self.nominal if lending is None else min(parse_quantity(lending),
                                                                  self.nominal)

    @property
    def guaranteed(self) -> Decimal:
        return self.nominal - self.lendable


class KueueAdmitter(Controller):
    name = "kueue"
    watches = ("jobs.batch", "workloads.kueue.x-k8s.io", "clusterqueues.kueue.x-k8s.io",
               "localqueues.kueue.x-k8s.io", "namespaces")

    def __init__(self, device_class_mappings: list[dict] | None = None) -> None:
        """``device_class_mappings``: the manager Configuration's
        ``resources.deviceClassMappings`` (name → deviceClassNames)."""
        self.preemptions: list[dict] = []  # what was preempted, for tests to read
        # DRA: a pod set's claims count as the logical resource their DeviceClass maps to
        # (kueue v0.19.2 site/content/en/docs/tasks/manage/setup_dra.md,
        # apis/config/v1beta2 DeviceClassMapping).
        self.mapped = {cls: m["name"] for m in device_class_mappings or []
                       for cls in m.get("deviceClassNames") or []}
        self.kube = None

    def install(self, kube) -> KueueAdmitter:
        self.kube = kube
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
        self.queues = {cq["metadata"]["name"]: cq
                       for cq in kube.list("clusterqueues.kueue.x-k8s.io")}
        # (cq, flavor, resource) -> reserved; admitted workloads per cq
        self.usage: dict[str, Counter] = {name: Counter() for name in self.queues}
        self.admitted: dict[str, list[tuple[dict, dict]]] = {name: [] for name in self.queues}
        for key, wl in by_job.items():
            job = jobs.get(key)
            admitted = (wl.get("status") or {}).get("admission")
            if admitted and job is not None and _finished(job):
                self._finish(kube, wl)
            elif admitted and job is not None:
                cq = admitted["clusterQueue"]
                self.usage.setdefault(cq, Counter()).update(self._flavored(wl))
                self.admitted.setdefault(cq, []).append((wl, job))
        pending = sorted(
            ((key, wl) for key, wl in by_job.items()
             if jobs.get(key) is not None and not (wl.get("status") or {}).get("admission")
             and not _finished(jobs[key])),
            key=lambda kv: (-int(kv[1]["spec"].get("priority") or 0),
                            kv[1]["metadata"]["creationTimestamp"]))
        for key, wl in pending:
            self._try_admit(kube, jobs[key], wl, self.usage)
        self._report(kube)

    # --- workloads ----------------------------------------------------------------------

    def _workload_for(self, kube, job: dict) -> dict:
        meta = job["metadata"]
        template = job["spec"]["template"]
        spec = {"queueName": meta["labels"][QUEUE_LABEL], "podSets": [{
            "name": "main", "count": job["spec"].get("parallelism", 1),
            "template": {"metadata": template.get("metadata") or {},
                         "spec": template["spec"]}}]}
        priority_class = meta["labels"].get(PRIORITY_LABEL)
        if priority_class:
            wpc = kube.find("workloadpriorityclasses.kueue.x-k8s.io", priority_class)
            if wpc is not None:
                # v1beta2 Workload spec.priorityClassRef (v0.19.2 CRD).
                spec["priorityClassRef"] = {"group": "kueue.x-k8s.io",
                                            "kind": "WorkloadPriorityClass",
                                            "name": priority_class}
                spec["priority"] = int(wpc["value"])
        return kube.create({
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
            "metadata": {"name": f"job-{meta['name']}-{meta['uid'][:5]}",
                         "namespace": meta["namespace"], "labels": {
                             "kueue.x-k8s.io/job-uid": meta["uid"]},
                         "ownerReferences": [owner_ref(job)]},
            "spec": spec})

    def _needs(self, wl: dict) -> Counter:
        need: Counter = Counter()
        for ps in wl["spec"]["podSets"]:
            per_pod = pod_requests(ps["template"]["spec"])
            per_pod.pop("pods", None)
            per_pod.update(self._claimed(ps["template"]["spec"], wl["metadata"]["namespace"]))
            for name, qty in per_pod.items():
                need[name] += qty * ps.get("count", 1)
        return need

    def _claimed(self, spec: dict, namespace: str) -> Counter:
        """Devices a pod's claim templates request, as their mapped resource names."""
        out: Counter = Counter()
        if not self.mapped or self.kube is None:
            return out
        for claim in spec.get("resourceClaims") or []:
            name = claim.get("resourceClaimTemplateName")
            template = self.kube.find("resourceclaimtemplates.resource.k8s.io", name,
                                      namespace) if name else None
            for request in ((template or {}).get("spec") or {}).get("spec", {}).get(
                    "devices", {}).get("requests") or []:
                exactly = request.get("exactly") or {}
                resource = self.mapped.get(exactly.get("deviceClassName"))
                if resource:
                    out[resource] += Decimal(exactly.get("count", 1))
        return out

    @staticmethod
    def _flavored(wl: dict) -> Counter:
        admission = wl["status"]["admission"]
        out: Counter = Counter()
        for psa in admission.get("podSetAssignments") or []:
            for name, qty in (psa.get("resourceUsage") or {}).items():
                out[(psa["flavors"][name], name)] += parse_quantity(qty)
        return out

    # --- quota --------------------------------------------------------------------------

    def _quota(self, cq: dict, flavor: str, resource: str) -> _Quota:
        for group in cq["spec"].get("resourceGroups") or []:
            for f in group.get("flavors") or []:
                if f["name"] == flavor:
                    for r in f.get("resources") or []:
                        if r["name"] == resource:
                            return _Quota(r)
        return _Quota(None)

    def _members(self, cq: dict) -> list[dict]:
        cohort = cohort_of(cq)
        if not cohort:
            return [cq]
        return [q for q in self.queues.values() if cohort_of(q) == cohort]

    def _fits(self, cq: dict, flavor: str, need: Counter) -> bool:
        """Whether ``need`` fits ``cq``'s flavor now: its nominal quota, or with a cohort what
        it may borrow of what the others lend (cluster_queue.md "Cohort", limits)."""
        name = cq["metadata"]["name"]
        for resource, qty in need.items():
            own = self._quota(cq, flavor, resource)
            used = self.usage[name][(flavor, resource)]
            after = used + qty
            if not cohort_of(cq):
                if after > own.nominal:
                    return False
                continue
            if own.borrowing is not None and after > own.nominal + own.borrowing:
                return False
            lent, taken = Decimal(0), Decimal(0)
            for member in self._members(cq):
                q = self._quota(member, flavor, resource)
                u = self.usage[member["metadata"]["name"]][(flavor, resource)]
                if member is cq:
                    u = after
                lent += q.lendable
                taken += max(Decimal(0), u - q.guaranteed)
            if taken > lent:
                return False
        return True

    @staticmethod
    def _selectable(kube, flavor: str, wl: dict) -> bool:
        """A flavor whose nodeLabels the pod set's nodeSelector contradicts is skipped: its
        nodes could never take the pods (kueue v0.19.2 pkg/scheduler/flavorassigner
        flavorassigner.go: the flavor "doesn't match node affinity"; only keys the flavor's
        nodeLabels define are compared)."""
        rf = kube.find("resourceflavors.kueue.x-k8s.io", flavor) or {"spec": {}}
        labels = (rf.get("spec") or {}).get("nodeLabels") or {}
        selector = ((wl["spec"]["podSets"][0].get("template") or {}).get("spec") or {}).get(
            "nodeSelector") or {}
        return all(labels[k] == v for k, v in selector.items() if k in labels)

    def _flavors_for(self, cq: dict, need: Counter) -> list[str]:
        for group in cq["spec"].get("resourceGroups") or []:
            if set(need) <= set(group.get("coveredResources") or []):
                return [f["name"] for f in group.get("flavors") or []]
        return []

    # --- admission ----------------------------------------------------------------------

    def _try_admit(self, kube, job: dict, wl: dict, usage: dict[str, Counter]) -> None:
        """Admit ``wl`` if it fits (``usage``: what each ClusterQueue holds now, kept up to
        date here), else by preempting what its queue's policy allows, else leave it
        pending with the reason."""
        ns, queue = job["metadata"]["namespace"], wl["spec"]["queueName"]
        local = kube.find("localqueues.kueue.x-k8s.io", queue, ns)
        cq = self.queues.get(local["spec"]["clusterQueue"]) if local else None
        if cq is None:
            return self._pending(kube, wl, f"LocalQueue {queue} doesn't exist or has no "
                                           "ClusterQueue")
        namespace = kube.find("namespaces", ns) or {"metadata": {}}
        if not matches_label_selector(cq["spec"].get("namespaceSelector"),
                       namespace["metadata"].get("labels") or {}):
            return self._pending(kube, wl, "Workload namespace doesn't match ClusterQueue "
                                           "selector")
        name = cq["metadata"]["name"]
        need = self._needs(wl)
        flavors = [f for f in self._flavors_for(cq, need) if self._selectable(kube, f, wl)]
        for flavor in flavors:
            if self._fits(cq, flavor, need):
                return self._admit(kube, job, wl, cq, flavor, need)
        for flavor in flavors:
            victims = self._victims(cq, flavor, need, wl)
            if victims:
                for victim, victim_job, reason in victims:
                    self._preempt(kube, victim, victim_job, reason, wl)
                return self._admit(kube, job, wl, cq, flavor, need)
        self._pending(kube, wl, f"couldn't assign flavors to pod set main: insufficient quota "
                                f"in ClusterQueue {name}")

    def _victims(self, cq: dict, flavor: str, need: Counter, wl: dict) -> list:
        """Workloads whose preemption lets ``wl`` fit ``flavor``, by the queue's preemption
        policy; [] when none would (concepts/preemption.md)."""
        policy = cq["spec"].get("preemption") or {}
        reclaim = policy.get("reclaimWithinCohort", "Never")
        within = policy.get("withinClusterQueue", "Never")
        name = cq["metadata"]["name"]
        priority = int(wl["spec"].get("priority") or 0)
        within_nominal = all(
            self.usage[name][(flavor, r)] + q <= self._quota(cq, flavor, r).nominal
            for r, q in need.items())
        candidates = []
        for member in self._members(cq):
            member_name = member["metadata"]["name"]
            for victim, job in self.admitted.get(member_name, []):
                usage = self._flavored(victim)
                if not any((flavor, r) in usage for r in need):
                    continue
                p = int(victim["spec"].get("priority") or 0)
                if member_name == name:
                    if within == "LowerPriority" and p < priority:
                        candidates.append((p, victim, job, member, "InClusterQueue"))
                elif within_nominal and (reclaim == "Any"
                                         or (reclaim == "LowerPriority" and p < priority)):
                    candidates.append((p, victim, job, member, "InCohortReclamation"))
        # Lowest priority first, then the most recently admitted (two stable sorts).
        candidates.sort(key=lambda c: _admitted_at(c[1]), reverse=True)
        candidates.sort(key=lambda c: c[0])
        chosen = []
        saved = {k: Counter(v) for k, v in self.usage.items()}
        for _, victim, job, member, reason in candidates:
            member_name = member["metadata"]["name"]
            if reason == "InCohortReclamation" and not self._borrowing(member, flavor, need):
                continue  # only queues above their nominal quota are reclaimed from
            self.usage[member_name].subtract(self._flavored(victim))
            chosen.append((victim, job, reason))
            if self._fits(cq, flavor, need):
                return chosen
        self.usage = saved
        return []

    def _borrowing(self, cq: dict, flavor: str, need: Counter) -> bool:
        name = cq["metadata"]["name"]
        return any(self.usage[name][(flavor, r)] > self._quota(cq, flavor, r).nominal
                   for r in need)

    def _preempt(self, kube, wl: dict, job: dict, reason: str, by: dict) -> None:
        human = {"InCohortReclamation": "reclamation within the cohort",
                 "InClusterQueue": "prioritization in the ClusterQueue"}[reason]
        message = (f"Preempted to accommodate a workload (UID: {by['metadata'].get('uid')}) "
                   f"due to {human}")
        self.preemptions.append({"workload": wl["metadata"]["name"],
                                 "namespace": wl["metadata"]["namespace"],
                                 "by": by["metadata"]["name"], "reason": reason})

        def evict(w: dict) -> None:
            conds = [c for c in w["status"].get("conditions") or []
                     if c["type"] not in ("QuotaReserved", "Admitted", "Evicted", "Preempted")]
            w["status"]["conditions"] = conds + [
                _condition("Evicted", "True", "Preempted", message),
                _condition("Preempted", "True", reason, message),
                _condition("QuotaReserved", "False", "Pending", message),
                _condition("Admitted", "False", "NoReservation", "The workload has no "
                           "reservation")]
            w["status"].pop("admission", None)
        kube.mutate("workloads.kueue.x-k8s.io", wl["metadata"]["name"], evict,
                    wl["metadata"]["namespace"], status=True)
        template = wl["spec"]["podSets"][0]["template"]["spec"]

        def suspend(j: dict) -> None:
            # Kueue restores the pod template it changed at admission (pkg/controller/
            # jobframework reconciler: RestorePodSetsInfo) and suspends the Job again.
            j["spec"]["suspend"] = True
            pod_spec = j["spec"]["template"]["spec"]
            for key in ("nodeSelector", "tolerations"):
                if key in template:
                    pod_spec[key] = template[key]
                else:
                    pod_spec.pop(key, None)
        kube.mutate("jobs.batch", job["metadata"]["name"], suspend,
                    job["metadata"]["namespace"])
        name = (wl.get("status") or {}).get("admission", {}).get("clusterQueue")
        if name in self.admitted:
            self.admitted[name] = [(w, j) for w, j in self.admitted[name]
                                   if w["metadata"]["uid"] != wl["metadata"]["uid"]]

    def _pending(self, kube, wl: dict, message: str) -> None:
        conds = (wl.get("status") or {}).get("conditions") or []
        if any(c["type"] == "QuotaReserved" and c.get("message") == message for c in conds):
            return
        kept = [c for c in conds if c["type"] in ("Evicted", "Preempted")]
        kube.mutate("workloads.kueue.x-k8s.io", wl["metadata"]["name"], lambda w: w.update(
            status={"conditions": kept + [
                _condition("QuotaReserved", "False", "Pending", message)]}),
            wl["metadata"]["namespace"], status=True)

    def _admit(self, kube, job: dict, wl: dict, cq: dict, flavor: str, need: Counter) -> None:
        name = cq["metadata"]["name"]
        for r, q in need.items():
            self.usage[name][(flavor, r)] += q
        ps = wl["spec"]["podSets"][0]
        admission = {"clusterQueue": name, "podSetAssignments": [{
            "name": ps["name"], "count": ps.get("count", 1),
            "flavors": {r: flavor for r in need},
            "resourceUsage": {r: fmt(q) for r, q in need.items()}}]}
        kept = [c for c in (wl.get("status") or {}).get("conditions") or []
                if c["type"] in ("Evicted", "Preempted")]
        kept = [{**c, "status": "False"} for c in kept]
        conds = kept + [_condition("QuotaReserved", "True", "QuotaReserved",
                                   f"Quota reserved in ClusterQueue {name}"),
                        _condition("Admitted", "True", "Admitted", "The workload is admitted")]
        updated = kube.mutate(
            "workloads.kueue.x-k8s.io", wl["metadata"]["name"],
            lambda w: w.update(status={"admission": admission, "conditions": conds}),
            wl["metadata"]["namespace"], status=True)
        self.admitted.setdefault(name, []).append((updated or wl, job))
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

    def _report(self, kube) -> None:
        """Each ClusterQueue's reservations in its status, written only when they change."""
        for name, cq in self.queues.items():
            reserved: dict[str, dict[str, Decimal]] = {}
            for (flavor, resource), qty in self.usage.get(name, Counter()).items():
                reserved.setdefault(flavor, {})[resource] = qty
            flavors = [{"name": f, "resources": [{"name": r, "total": fmt(q),
                                                  "borrowed": fmt(max(Decimal(0), q - self._quota(
                                                      cq, f, r).nominal))}
                                                 for r, q in sorted(rs.items())]}
                       for f, rs in sorted(reserved.items())]
            count = len(self.admitted.get(name, []))
            status = cq.get("status") or {}
            if status.get("flavorsReservation", []) == flavors and \
                    status.get("admittedWorkloads", 0) == count:
                continue
            kube.mutate("clusterqueues.kueue.x-k8s.io", name, lambda q, f=flavors, n=count: (
                q.setdefault("status", {}).update(
                    flavorsReservation=f, flavorsUsage=f, admittedWorkloads=n,
                    reservingWorkloads=n)), status=True)


def _admitted_at(wl: dict) -> str:
    for c in (wl.get("status") or {}).get("conditions") or []:
        if c["type"] == "QuotaReserved" and c["status"] == "True":
            return c["lastTransitionTime"]
    return ""
