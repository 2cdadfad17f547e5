"""Worlds for aicp verify: fake clusters and probes in memory, the emulator over HTTP.

The emulator fixtures (``kubeapi``, ``kubeconfig``...) come from tests/kubeapi through the
root conftest's ``pytest_plugins``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aicp.verify import checklist
from aicp.verify.checklist import Requirement
from aicp.verify.probe import Probe, Settings
from aicp.verify.registry import Planned
from aicp.verify.result import CreatedObject
from tests.shared import require_shared

VERSIONS = ("1.34", "1.35", "1.36", "1.37")


def mismatches(probes, got, row) -> list[str]:
    """Every cell of a verdict-table row that differs, so one run shows all of a world's
    wrong verdicts: ``got`` and ``row`` hold ``(verdict, reason)`` and ``(owed, fragment)``."""
    return [f"{probe.id}: {verdict.value} {reason} (owed {want.value} ...{fragment}...)"
            for probe, (verdict, reason), (want, fragment) in zip(probes, got, row, strict=True)
            if verdict is not want or fragment not in reason]


def template(version: str) -> checklist.Template:
    return checklist.load(require_shared("conformance", f"AIConformance-{version}.yaml"))


class FakeCluster:
    """A cluster in memory: records namespaces and deletions in order.

    Stands in for ``kube.Kube`` where a test needs only what the runner asks of it
    (namespaces, deletes, the wait for them, needs)."""

    def __init__(self, needs: dict[str, str | None] | None = None):
        self.lock = threading.Lock()
        self.namespaces: set[str] = set()
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.waited: list[list[str]] = []
        self.needs = needs or {}

    def create_namespace(self, name, labels):
        with self.lock:
            self.namespaces.add(name)
            self.created.append(f"Namespace {name}")

    def delete(self, obj: CreatedObject):
        with self.lock:
            self.deleted.append(f"{obj.kind} {obj.name}")
            if obj.kind == "Namespace":
                self.namespaces.discard(obj.name)

    def wait_namespaces_gone(self, names, timeout):
        self.waited.append(list(names))
        return [n for n in names if n in self.namespaces]

    def unmet(self, need):
        return self.needs.get(need)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def settings(run_id: str = "t1", version: str = "1.35") -> Settings:
    return Settings(run_id, version, {"busybox": "busybox@sha256:" + "0" * 64})


def planned(*probes: type[Probe], level: str = "MUST") -> list[Planned]:
    return [Planned(Requirement(p.id, p.category, level, f"{p.id} description"), p)
            for p in probes]


def probe(pid: str, body, *, needs=(), mutating=True, category="accelerators") -> type[Probe]:
    """A probe class whose ``run`` is ``body(ctx)``."""
    return type(pid, (Probe,), {"id": pid, "category": category, "needs": tuple(needs),
                                "mutating": mutating, "run": lambda self, ctx: body(ctx)})


@pytest.fixture
def shared_templates() -> Path:
    return require_shared("conformance")


def passing_probe(pid: str, **options) -> type[Probe]:
    def body(ctx):
        ctx.check("looked", True)
        return ctx.passed("ok")
    return probe(pid, body, **options)


def submission(folder: Path) -> Path:
    """The one ``v<version>/<product>/`` folder a run with ``--output checklist`` wrote in
    ``folder`` (its --output-dir), as a cncf/k8s-ai-conformance pull request adds it."""
    found = [p for p in Path(folder).glob("v*.*/*") if p.is_dir()]
    assert len(found) == 1, f"expected one submission folder in {folder}, found {found}"
    return found[0]
