"""A run's namespaces over time: who holds them, the heartbeat, their state, the wait until
they are gone, and ``cleanup``, which deletes what earlier runs left.

Everything a run creates carries ``aicp.dev/verify-run=<id>`` (``probe.RUN_LABEL``), so
``aicp verify cleanup`` finds leftovers by that label.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kubernetes.client.exceptions import ApiException

from ..probe import RUN_LABEL, ProbeError, one_line
from ..result import CreatedObject
from .retry import CONNECTION_ERRORS, Lost

if TYPE_CHECKING:
    from .transport import Kube

# A running ``aicp verify`` refreshes this annotation on its namespaces every
# runner.HEARTBEAT_SECONDS; ``aicp verify cleanup`` leaves a run alone while its newest
# heartbeat is younger than ALIVE_SECONDS (a few missed beats, not one slow request). Both
# ends read their own clock: machines more than a minute apart misjudge, hence --force and
# --run-id.
HEARTBEAT = "aicp.dev/verify-heartbeat"
ALIVE_SECONDS = 60.0
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    """This machine's time as a heartbeat stamp."""
    return datetime.now(UTC).strftime(_STAMP)


# Who holds a run ------------------------------------------------------------------------
# A heartbeat alone cannot tell a run killed a second ago (SIGKILL, the OOM killer: no
# handler runs, nothing is deleted) from one alive. So each namespace also names the process
# that holds it, as a Lease names its holder (holderIdentity; renewTime and
# leaseDurationSeconds are HEARTBEAT and ALIVE_SECONDS here): coordination.k8s.io/v1
# LeaseSpec, and k8s.io/client-go tools/leaderelection/leaderelection.go, whose candidates
# take a lease over once leaseDuration has passed since the renew they last observed. A
# cleanup on the holder's own machine need not wait that long: it asks the kernel whether
# the process still runs, and whether it is the same process (its start time, against a
# reused pid). Elsewhere it can only read the heartbeat, as leader election does.
HOLDER = "aicp.dev/verify-holder"


@dataclass(frozen=True)
class Holder:
    """The process running a run: where (host, pid namespace) and which (pid, start time)."""

    host: str
    pid: int
    started: str = ""  # the kernel's start time of the process ("" where it cannot say)
    pid_namespace: str = ""  # boot id + pid namespace: where ``pid`` means this process

    def annotation(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "started": self.started,
                           "pidNamespace": self.pid_namespace}, sort_keys=True)

    @classmethod
    def parse(cls, text: object) -> Holder | None:
        try:
            doc = json.loads(str(text))
            return cls(str(doc["host"]), int(doc["pid"]), str(doc.get("started") or ""),
                       str(doc.get("pidNamespace") or ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # not written by this version: judged by the heartbeat alone

    def where(self) -> str:
        return f"pid {self.pid} on {'this host' if self.local() else f'host {self.host}'}"

    def local(self) -> bool:
        """Whether this machine can ask the kernel about the holder's pid."""
        me = this_process()
        return (self.host, self.pid_namespace) == (me.host, me.pid_namespace)

    def running(self) -> bool | None:
        """True/False from the kernel on the holder's own machine, None elsewhere."""
        if not self.local():
            return None
        stat = _proc_stat(self.pid)
        if stat is None:  # no /proc (macOS): signal 0 tells whether the pid exists
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True  # someone else's process: alive, but maybe not ours
            return True
        if not stat:
            return False
        state, started = stat
        # A zombie (Z) or dead (X) process has ended; another start time is another
        # process that got the pid. proc(5): /proc/[pid]/stat fields 3 (state) and 22.
        return state not in ("Z", "X") and not (self.started and started != self.started)


def _proc_stat(pid: int) -> tuple[str, str] | tuple[()] | None:
    """(state, start time) from /proc/<pid>/stat; () when there is no such process; None
    without /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ()
    # proc(5): "pid (comm) state ..."; comm may hold spaces and parentheses, so split
    # after the last ")". Field 3 is the state, field 22 the start time in clock ticks
    # after boot.
    fields = text.rsplit(")", 1)[-1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else ()


def _pid_namespace() -> str:
    """This kernel boot and pid namespace: two containers may share a hostname, never this.
    proc(5) /proc/sys/kernel/random/boot_id; namespaces(7) /proc/[pid]/ns/pid."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


@functools.cache
def _this_process(pid: int) -> Holder:
    stat = _proc_stat(pid)
    return Holder(socket.gethostname(), pid, stat[1] if stat else "", _pid_namespace())


def this_process() -> Holder:
    """This process as a run's holder (per pid: a forked child is another process)."""
    return _this_process(os.getpid())


def namespace_annotations() -> dict[str, str]:
    """What a run's namespace carries from its creation: its holder and a first beat."""
    return {HOLDER: this_process().annotation(), HEARTBEAT: now()}


def heartbeat(kube: Kube, names: list[str]) -> None:
    """Tell ``aicp verify cleanup`` these namespaces belong to a run that is alive."""
    patch = {"metadata": {"annotations": {HEARTBEAT: now()}}}
    for name in names:
        try:
            kube.client.call_api(*kube.client.param_serialize(
                "PATCH", f"/api/v1/namespaces/{name}",
                header_params={"Content-Type": "application/merge-patch+json",
                               "Accept": "application/json"},
                body=patch, auth_settings=["BearerToken"])[:4],
                _request_timeout=10).read()
        except ApiException:
            continue  # that namespace is gone already; beat the others
        except CONNECTION_ERRORS:
            return  # one beat missed; the next one tries again


def namespace_state(kube: Kube, name: str) -> str:
    """"active", "terminating" or "gone" (404)."""
    try:
        ns = kube.request("GET", f"/api/v1/namespaces/{name}")
    except ApiException as exc:
        if exc.status == 404:
            return "gone"
        raise
    meta, status = ns.get("metadata") or {}, ns.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") == "Terminating":
        return "terminating"
    return "active"


def wait_namespaces_gone(kube: Kube, names: list[str], timeout: float) -> list[str]:
    """Wait until each namespace answers 404; returns those still there at ``timeout``.

    A cluster that stopped answering ends the wait at once: every namespace not seen
    gone is returned (it may be left).
    """
    end = time.monotonic() + timeout
    left = list(names)
    while left:
        still = []
        for i, name in enumerate(left):
            try:
                kube.request("GET", f"/api/v1/namespaces/{name}")
                still.append(name)
            except ApiException as exc:
                if exc.status != 404:
                    still.append(name)
            except Lost:
                return still + left[i:]
        left = still
        if not left or time.monotonic() >= end:
            break
        time.sleep(min(1.0, max(0.05, end - time.monotonic())))
    return left


# Cleanup of earlier runs ---------------------------------------------------------------
class Sweep(NamedTuple):
    """What ``cleanup`` did: "Kind name" deleted; "Kind name (why)" it was asked to delete
    and did not; live runs left alone (run id → why it is judged alive)."""

    deleted: list[str]
    left: list[str]
    alive: dict[str, str]


def cleanup(kube: Kube, run_id: str | None = None, *, force: bool = False,
            timeout: float = 300.0, log: Callable[[str], None] = lambda line: None) -> Sweep:
    """Delete namespaces and cluster-scoped objects labelled ``aicp.dev/verify-run``.

    Without ``run_id``, a run still going is left alone (``alive``) unless ``force``: its
    holder process runs on this machine, or, held elsewhere (or by an older aicp), its
    newest heartbeat is younger than ALIVE_SECONDS. A run whose holder is gone is deleted
    at once, however fresh its heartbeat. Naming the run with ``run_id`` is the user's own
    decision, so no liveness check. A delete refused is ``left`` with its reason, and the
    rest go on; a cluster that stops answering (``Lost``) ends the sweep.
    """
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    found = kube.request("GET", "/api/v1/namespaces",
                         query={"labelSelector": selector}).get("items", [])
    alive = {} if run_id or force else _alive(found, log)
    deleted: list[str] = []
    left: list[str] = []
    for base, resource in _cluster_scoped(kube):
        items = _listed(kube, base, resource["name"], selector,
                        f"any {resource['kind']} of the run", left)
        for item in items:
            name = item["metadata"]["name"]
            if _run_of(item) in alive:
                continue
            _delete(kube, f"{base}/{resource['name']}/{name}", f"{resource['kind']} {name}",
                    deleted, left, log)
    _outside_run_namespaces(kube, selector, found, alive, deleted, left, log)
    namespaces = []
    for name in [n["metadata"]["name"] for n in found if _run_of(n) not in alive]:
        try:
            kube.delete(CreatedObject("Namespace", name))
        except (ApiException, ProbeError) as exc:
            if _lost(exc):
                raise
            left.append(f"Namespace {name} ({_why(exc)})")
            log(f"could not delete Namespace {name}: {_why(exc)}")
            continue
        namespaces.append(name)
        deleted.append(f"Namespace {name}")
        log(f"deleting Namespace {name}")
    still = kube.wait_namespaces_gone(namespaces, timeout) if namespaces else []
    left += [f"Namespace {n} (still terminating after {timeout:g}s)" for n in still]
    return Sweep(deleted, left, alive)


# Namespaced objects a run creates outside its own namespaces: disaggregated_inference's
# --long model servers must stand in the InferencePool's namespace to be selected by it.
OUTSIDE = (("/apis/apps/v1", "deployments", "Deployment"),)


def _outside_run_namespaces(kube: Kube, selector: str, found: list[dict],
                            alive: dict[str, str], deleted: list[str], left: list[str],
                            log: Callable[[str], None]) -> None:
    """Delete the run's objects of ``OUTSIDE`` kinds that stand in other namespaces."""
    ours = {n["metadata"]["name"] for n in found}
    for base, plural, kind in OUTSIDE:
        items = _listed(kube, base, plural, selector,
                        f"any {kind} of the run outside its namespaces", left)
        for item in items:
            meta = item["metadata"]
            if meta["namespace"] in ours or _run_of(item) in alive:
                continue
            _delete(kube, f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}",
                    f"{kind} {meta['namespace']}/{meta['name']}", deleted, left, log)


def _listed(kube: Kube, base: str, plural: str, selector: str, what: str,
            left: list[str]) -> list[dict]:
    """The run's objects of one kind (none when the list is refused: ``what`` is then left
    over with the reason); a lost connection is raised."""
    try:
        return kube.request("GET", f"{base}/{plural}",
                            query={"labelSelector": selector}).get("items", [])
    except (ApiException, ProbeError) as exc:
        if _lost(exc):
            raise
        left.append(f"{what} (could not list {plural}: {_why(exc)})")
        return []


def _delete(kube: Kube, path: str, what: str, deleted: list[str], left: list[str],
            log: Callable[[str], None]) -> None:
    """Delete one object of a dead run (gone already counts as deleted); a refusal is
    left over with its reason, a lost connection is raised."""
    try:
        kube.request("DELETE", path, query={"propagationPolicy": "Background"})
    except (ApiException, ProbeError) as exc:
        if getattr(exc, "status", None) != 404:
            if _lost(exc):
                raise
            left.append(f"{what} ({_why(exc)})")
            log(f"could not delete {what}: {_why(exc)}")
            return
    deleted.append(what)
    log(f"deleted {what}")


def _lost(exc: BaseException) -> bool:
    return isinstance(exc, Lost)


def _why(exc: BaseException) -> str:
    """A ProbeError (``Forbidden``: "missing permission: delete namespaces") is written for
    people already; an ApiException is its status and message."""
    return str(exc) if isinstance(exc, ProbeError) else one_line(exc)


def _run_of(obj: dict) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL, ""))


def _alive(namespaces: list[dict], log: Callable[[str], None]) -> dict[str, str]:
    """Run id → why it is alive, for the runs judged alive (see ``cleanup``)."""
    current = datetime.now(UTC)
    ages: dict[str, float] = {}
    holders: dict[str, Holder] = {}
    for ns in namespaces:
        notes = (ns.get("metadata") or {}).get("annotations") or {}
        run = _run_of(ns)
        holder = Holder.parse(notes.get(HOLDER)) if HOLDER in notes else None
        if holder is not None:
            holders.setdefault(run, holder)
        try:
            beat = datetime.strptime(str(notes.get(HEARTBEAT)), _STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue  # no heartbeat: a run from before heartbeats, or not ours to judge
        age = max(0.0, (current - beat).total_seconds())
        if run not in ages or age < ages[run]:
            ages[run] = age
    alive: dict[str, str] = {}
    for run in sorted(set(ages) | set(holders)):
        holder, age = holders.get(run), ages.get(run)
        beat = f"heartbeat {age:.0f}s ago" if age is not None else "no heartbeat"
        running = holder.running() if holder is not None else None
        if holder is not None and running is not None:
            if running:
                alive[run] = f"{beat}; {holder.where()} is alive"
            else:
                log(f"run {run}: its process ({holder.where()}) has ended: deleting what it "
                    f"left ({beat})")
        elif age is not None and age < ALIVE_SECONDS:
            alive[run] = beat + (f"; {holder.where()}, which cannot be checked from here"
                                 if holder is not None else "")
        else:
            log(f"run {run}: {beat}" + (f" ({holder.where()})" if holder is not None else "")
                + f", older than {ALIVE_SECONDS:g}s: deleting what it left")
    return alive


def _cluster_scoped(kube: Kube) -> list[tuple[str, dict]]:
    """Every listable, deletable cluster-scoped resource except namespaces and nodes."""
    found = []
    versions = ["v1"] + [g["preferredVersion"]["groupVersion"]
                         for g in kube.request("GET", "/apis").get("groups", [])
                         if g.get("preferredVersion")]
    for api_version in versions:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        for res in kube.resources(api_version):
            verbs = set(res.get("verbs", []))
            if (res.get("namespaced") or "/" in res.get("name", "")
                    or not {"list", "delete"} <= verbs
                    or res.get("kind") in ("Namespace", "Node")):
                continue
            found.append((base, res))
    return found
