"""A run's namespaces over time: the heartbeat, their state, the wait until they are gone,
and ``cleanup``, which deletes what earlier runs left.

Everything a run creates carries ``aicp.dev/verify-run=<id>`` (``probe.RUN_LABEL``), so
``aicp verify cleanup`` finds leftovers by that label.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from kubernetes.client.exceptions import ApiException

from ..probe import RUN_LABEL
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
    """What ``cleanup`` did: "Kind name" deleted, still present, and live runs left alone."""

    deleted: list[str]
    left: list[str]
    alive: dict[str, float]  # run id → seconds since its newest heartbeat


def cleanup(kube: Kube, run_id: str | None = None, *, force: bool = False,
            timeout: float = 300.0, log: Callable[[str], None] = lambda line: None) -> Sweep:
    """Delete namespaces and cluster-scoped objects labelled ``aicp.dev/verify-run``.

    Without ``run_id``, a run whose namespaces carry a heartbeat younger than
    ALIVE_SECONDS is still going: its objects are left alone (``alive``) unless ``force``.
    Naming the run with ``run_id`` is the user's own decision, so no liveness check.
    """
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    found = kube.request("GET", "/api/v1/namespaces",
                         query={"labelSelector": selector}).get("items", [])
    alive = {} if run_id or force else _alive(found)
    deleted: list[str] = []
    for base, resource in _cluster_scoped(kube):
        items = kube.request("GET", f"{base}/{resource['name']}",
                             query={"labelSelector": selector}).get("items", [])
        for item in items:
            name = item["metadata"]["name"]
            if _run_of(item) in alive:
                continue
            try:
                kube.request("DELETE", f"{base}/{resource['name']}/{name}",
                             query={"propagationPolicy": "Background"})
            except ApiException as exc:
                if exc.status != 404:
                    raise
            deleted.append(f"{resource['kind']} {name}")
            log(f"deleted {resource['kind']} {name}")
    namespaces = [n["metadata"]["name"] for n in found if _run_of(n) not in alive]
    for name in namespaces:
        kube.delete(CreatedObject("Namespace", name))
        deleted.append(f"Namespace {name}")
        log(f"deleting Namespace {name}")
    left = kube.wait_namespaces_gone(namespaces, timeout) if namespaces else []
    return Sweep(deleted, [f"Namespace {n}" for n in left], alive)


def _run_of(obj: dict) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL, ""))


def _alive(namespaces: list[dict]) -> dict[str, float]:
    """Run id → age of its newest heartbeat, for runs whose heartbeat is fresh."""
    current = datetime.now(UTC)
    ages: dict[str, float] = {}
    for ns in namespaces:
        stamp = ((ns.get("metadata") or {}).get("annotations") or {}).get(HEARTBEAT)
        try:
            beat = datetime.strptime(str(stamp), _STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue  # no heartbeat: a run from before heartbeats, or not ours to judge
        age = max(0.0, (current - beat).total_seconds())
        run = _run_of(ns)
        if age < ALIVE_SECONDS and (run not in ages or age < ages[run]):
            ages[run] = age
    return ages


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
