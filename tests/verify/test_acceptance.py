"""Runner acceptance: whole ``aicp verify`` runs on the emulated reference platform.

Every probe in ``verify/probes/`` at the time the tests run takes part (the registry is
iterated, nothing is listed by hand). A first run with a short per-probe timeout finds the
probes that decide on the emulator on their own; the fault run repeats exactly those with
``--only`` so the comparison is about retries, not about timeouts.
"""

from __future__ import annotations

import _thread
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from aicp.verify import registry, session
from aicp.verify.kube import HEARTBEAT
from aicp.verify.probe import RUN_LABEL, Context
from aicp.verify.verdicts import EXIT_INTERRUPTED
from tests.kubeapi import objects as o
from tests.verify.conftest import require_shared

VERSION = "1.37"  # the template with the most requirement ids
SCOUT_TIMEOUT = 6.0


def verify(kubeconfig: Path, out: Path, *, version: str = VERSION,
           **options) -> tuple[int, dict]:
    opts = session.Options(
        kubeconfig=kubeconfig, output=["json"], output_dir=out, run_id=options.pop(
            "run_id", "acc"),
        checklist_template=require_shared("conformance", f"AIConformance-{version}.yaml"),
        **options)
    code = session.run(opts, Console(file=open(out.parent / f"{out.name}.log", "w"),
                                     width=200))
    path = out / "results" / "aicp-results.json"
    return code, json.loads(path.read_text()) if path.exists() else {}


def verdicts(doc: dict) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in doc["requirements"]}


def labelled(kubeapi) -> list[str]:
    """Every object carrying the run label: namespaces and cluster-scoped objects."""
    found = []
    for res in {r.key: r for r in kubeapi.discovery.by_ref.values()}.values():
        if res.namespaced or "list" not in res.verbs:
            continue
        ref = f"{res.plural}.{res.group}" if res.group else res.plural
        found += [f"{res.kind} {x['metadata']['name']}"
                  for x in kubeapi.list(ref, labels=RUN_LABEL)]
    return found


@pytest.fixture
def platform(kubeapi_factory, tmp_path):
    kube = kubeapi_factory("reference-platform", minor=VERSION, gpu_nodes=2)
    kube.settle()  # operators' pods exist before the run, as on a real cluster
    return kube, kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")


def deciding(doc: dict) -> list[str]:
    """Probes that decided by themselves (no timeout) in a scouting run."""
    return [r["id"] for r in doc["requirements"]
            if r["verdict"] not in ("MANUAL", "NOT_RUN")
            and not r["reason"].startswith(("timed out after", "global timeout"))]


def test_retried_throttling_and_outages_change_no_verdict_and_leave_nothing(platform,
                                                                           tmp_path):
    kube, kubeconfig = platform
    _, scout = verify(kubeconfig, tmp_path / "scout", probe_timeout=SCOUT_TIMEOUT,
                      run_id="scout")
    assert scout["cleanup"] == {"leftovers": [], "errors": []}
    ids = deciding(scout)
    assert set(registry.discover()) & set(ids), "no probe decides on the emulator"
    assert labelled(kube) == []

    _, clean = verify(kubeconfig, tmp_path / "clean", only=ids, run_id="clean")
    faults = [kube.faults.throttle(r"/pods$", verbs={"list"}, times=3, retry_after=1),
              kube.faults.throttle(r"/namespaces/[^/]+$", verbs={"get"}, times=2,
                                   retry_after=1),
              kube.faults.error(503, r"/namespaces$", verbs={"create"}, times=2),
              kube.faults.error(503, r"/api/v1/nodes$", verbs={"list"}, times=2),
              kube.faults.error(503, resource="pods", verbs={"create"}, times=2)]
    _, faulty = verify(kubeconfig, tmp_path / "faulty", only=ids, run_id="faulty")

    assert verdicts(faulty) == verdicts(clean)
    assert sum(f.hits for f in faults) >= 5, [(f.path, f.hits) for f in faults]
    assert kube.requests.count(status=429) >= 1 and kube.requests.count(status=503) >= 1
    for doc in (clean, faulty):
        assert doc["cleanup"] == {"leftovers": [], "errors": []}
    assert labelled(kube) == []


def test_an_exception_inside_probes_is_error_and_their_objects_are_deleted(
        platform, tmp_path, monkeypatch):
    kube, kubeconfig = platform
    original = Context.track

    def track_then_fail(self, obj, **kwargs):
        original(self, obj, **kwargs)
        raise RuntimeError("injected failure after creating an object")

    monkeypatch.setattr(Context, "track", track_then_fail)
    code, doc = verify(kubeconfig, tmp_path / "exc", probe_timeout=SCOUT_TIMEOUT)
    failed = [r for r in doc["requirements"] if "injected failure" in r["reason"]]
    assert failed and all(r["verdict"] == "ERROR" for r in failed)
    assert all(r["objects"] for r in failed)  # they had created something first
    assert code == 1
    assert doc["cleanup"] == {"leftovers": [], "errors": []}
    assert labelled(kube) == []


def test_ctrl_c_in_the_middle_of_a_probe_cleans_up_and_exits_130(platform, tmp_path,
                                                                  monkeypatch):
    kube, kubeconfig = platform
    original = Context.namespace
    fired = threading.Event()

    def namespace_then_ctrl_c(self, suffix=""):
        name = original(self, suffix)
        if not fired.is_set():
            fired.set()
            _thread.interrupt_main()  # what SIGINT does: KeyboardInterrupt in the main thread
            self.cancelled.wait(5)    # the probe is mid-step when the runner gives up
        return name

    monkeypatch.setattr(Context, "namespace", namespace_then_ctrl_c)
    code, doc = verify(kubeconfig, tmp_path / "int", probe_timeout=SCOUT_TIMEOUT)
    assert fired.is_set()
    assert code == EXIT_INTERRUPTED
    assert doc["interrupted"] is True
    assert any(r["reason"].startswith("interrupted") for r in doc["requirements"])
    assert doc["cleanup"]["leftovers"] == []
    assert kube.list("namespaces", labels=RUN_LABEL) == []
    assert labelled(kube) == []


def test_cleanup_removes_what_an_earlier_run_left(platform, tmp_path):
    kube, kubeconfig = platform
    run = {RUN_LABEL: "old1", "aicp.dev/verify-probe": "robust-controller"}
    kube.seed([o.namespace("aicp-verify-old1-x", labels=run),
               o.pod("left", "aicp-verify-old1-x", labels=run),
               o.namespace("aicp-verify-old2-x", labels={**run, RUN_LABEL: "old2"}),
               {**o.device_class("aicp-verify-old1"), "metadata": {
                   "name": "aicp-verify-old1", "labels": run}},
               {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "aicp-verify-old1", "labels": run}, "value": 10}])
    assert len(labelled(kube)) == 4

    assert session.cleanup(session.Options(kubeconfig=kubeconfig, run_id="old1"),
                           Console(file=open(tmp_path / "c1.log", "w"))) == 0
    assert labelled(kube) == ["Namespace aicp-verify-old2-x"]
    assert kube.find("pods", "left", "aicp-verify-old1-x") is None
    assert kube.find("deviceclasses.resource.k8s.io", "gpu.nvidia.com") is not None

    assert session.cleanup(session.Options(kubeconfig=kubeconfig),
                           Console(file=open(tmp_path / "c2.log", "w"))) == 0
    assert labelled(kube) == []


def test_cleanup_names_a_live_run_it_skips_and_force_deletes_it(platform, tmp_path):
    kube, kubeconfig = platform
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ns = o.namespace("aicp-verify-busy-x", labels={RUN_LABEL: "busy"})
    ns["metadata"]["annotations"] = {HEARTBEAT: fresh}
    kube.seed([ns, o.pod("gpu", "aicp-verify-busy-x", labels={RUN_LABEL: "busy"})])

    log = tmp_path / "c.log"
    assert session.cleanup(session.Options(kubeconfig=kubeconfig),
                           Console(file=open(log, "w"), width=200)) == 0
    lines = log.read_text().splitlines()
    assert re.fullmatch(r"skipped run busy: still running \(heartbeat \d+s ago\); pass --force "
                        r"to delete it anyway, or --run-id busy", lines[-2]), lines
    assert lines[-1] == "deleted 0 objects"
    assert kube.find("pods", "gpu", "aicp-verify-busy-x") is not None

    assert session.cleanup(session.Options(kubeconfig=kubeconfig, force=True),
                           Console(file=open(log, "w"), width=200)) == 0
    assert log.read_text().splitlines()[-1] == "deleted 1 objects"
    assert labelled(kube) == []
