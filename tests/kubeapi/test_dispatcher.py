"""The controller worker on a cluster where one pass outlasts the resync period (5,000 nodes,
100,000 pods: every controller's pass took longer than its 0.5 s, and ``settle()`` never
returned), played on the emulator's clock: a controller whose sync moves the clock on by
four times its period, so the pass "takes" that long whatever the machine's speed. Nothing
here sleeps or reads the wall clock; the clock is frozen and only the test and the sync
move it."""

from __future__ import annotations

from tests.kubeapi import objects as o
from tests.kubeapi.clock import Clock
from tests.kubeapi.controllers.base import REST, Controller
from tests.kubeapi.controllers.kubelet import Kubelet
from tests.kubeapi.controllers.scheduler import Scheduler
from tests.kubeapi.emulator import KubeAPI


class Overrun(Controller):
    """Resyncs every 0.5 s; each sync takes 2 s of the emulator's clock."""

    name = "overrun"
    resync = 0.5
    takes = 2.0

    def __init__(self) -> None:
        self.runs = 0

    def sync(self, kube: KubeAPI) -> None:
        self.runs += 1
        kube.clock.advance(self.takes)


class Labeller(Controller):
    """Answers a write: labels each ConfigMap ``seen=yes``."""

    name = "labeller"
    watches = ("configmaps",)
    resync = None

    def sync(self, kube: KubeAPI) -> None:
        for cm in kube.view("configmaps", "default"):
            if (cm["metadata"].get("labels") or {}).get("seen") != "yes":
                kube.patch("configmaps", cm["metadata"]["name"],
                           {"metadata": {"labels": {"seen": "yes"}}}, "default")


def test_settle_returns_while_a_sync_outlasts_its_resync_period_and_still_waits_for_writes():
    kube = KubeAPI("1.35", clock=Clock(scale=0))
    overrun, labeller = Overrun(), Labeller()
    kube.add(overrun, labeller)
    kube.start()
    try:
        kube.settle(timeout=30)  # before the fix: resyncs back to back, TimeoutError
        assert overrun.runs >= 1
        # A write made now is still waited for, resyncs overrunning or not.
        kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "a", "namespace": "default"}})
        kube.settle(timeout=30)
        assert kube.get("configmaps", "a", "default")["metadata"]["labels"] == {"seen": "yes"}

        # However the clock moves, periodic passes get at most 1 / (1 + REST) of it.
        start, runs = kube.clock.now(), overrun.runs
        for _ in range(200):
            kube.clock.advance(0.5)
            kube.settle(timeout=30)
        spent = (overrun.runs - runs) * Overrun.takes
        assert overrun.runs > runs  # it still resyncs
        assert spent <= (kube.clock.now() - start) / (1 + REST) + Overrun.takes
        assert kube.controllers.errors == []
    finally:
        kube.stop()


def test_an_explicit_resync_runs_at_once_whatever_the_last_pass_took():
    """``kube.resync()`` is a request, not a periodic resync: the rest does not apply."""
    kube = KubeAPI("1.35", clock=Clock(scale=0))
    overrun = Overrun()
    kube.add(overrun)
    kube.start()
    try:
        kube.settle(timeout=30)
        runs = overrun.runs
        kube.resync()
        assert overrun.runs == runs + 1
    finally:
        kube.stop()


def pods_on(kube: KubeAPI, node: str) -> list[str]:
    return [p["metadata"]["name"] for p in kube.view("pods", fields=f"spec.nodeName={node}")]


def is_pending(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase", "Pending") == "Pending"


def test_the_stores_kept_sets_follow_every_write_as_a_full_list_does():
    """``view(where=...)`` and the pods-by-node index give what filtering every object gives,
    through creates, binds, status changes, deletes and a namespace's removal."""
    kube = KubeAPI("1.35")
    kube.seed([o.node("n1"), o.node("n2"), o.namespace("team")])
    kube.seed([{**o.pod("seeded"), "spec": {**o.pod("seeded")["spec"], "nodeName": "n1"}}])
    assert pods_on(kube, "n1") == ["seeded"]  # no status: Pending, as a list reads it

    def same() -> None:
        every = kube.view("pods")
        assert kube.view("pods", where=is_pending) == [p for p in every if is_pending(p)]
        for node in ("n1", "n2", ""):
            assert pods_on(kube, node) == [p["metadata"]["name"] for p in every
                                           if (p["spec"].get("nodeName") or "") == node]
        assert kube.view("pods", "team", where=is_pending) == [
            p for p in every if is_pending(p) and p["metadata"]["namespace"] == "team"]

    kube.create(o.pod("a"))
    kube.create({**o.pod("b"), "metadata": {"name": "b", "namespace": "team"}})
    same()
    kube.bind("default", "a", "n2")
    same()
    kube.patch("pods", "a", {"status": {"phase": "Running"}}, "default", status=True)
    same()
    kube.delete("pods", "seeded", "default")
    same()
    kube.delete("namespaces", "team")
    same()
    assert pods_on(kube, "n2") == ["a"] and kube.view("pods", where=is_pending) == []


def test_the_schedulers_index_frees_what_ends_and_counts_what_was_placed_by_name():
    """The scheduler's usage comes from its index, not a list of every pod: a pod placed
    with ``nodeName`` takes its GPUs, a pod that ends or is deleted gives them back, and
    the waiting pod is bound then (frozen clock: only writes move the controllers)."""
    kube = KubeAPI("1.35", clock=Clock(scale=0))
    kube.seed([o.gpu_node("gpu-0", gpus=8, taint=False)])
    kube.add(Scheduler(), Kubelet(completes=lambda pod: False))
    kube.start()
    try:
        placed = o.pod("placed", limits={"nvidia.com/gpu": "4"})
        placed["spec"]["nodeName"] = "gpu-0"
        kube.create(placed)
        kube.create(o.pod("half", limits={"nvidia.com/gpu": "4"}))
        kube.create(o.pod("wait", limits={"nvidia.com/gpu": "4"}))
        kube.settle(timeout=30)

        def node_of(name: str) -> str | None:
            return kube.get("pods", name, "default")["spec"].get("nodeName")
        assert node_of("half") == "gpu-0" and node_of("wait") is None
        [cond] = [c for c in kube.get("pods", "wait", "default")["status"]["conditions"]
                  if c["type"] == "PodScheduled"]
        assert "Insufficient nvidia.com/gpu" in cond["message"]

        kube.patch("pods", "half", {"status": {"phase": "Succeeded"}}, "default", status=True)
        kube.settle(timeout=30)
        assert node_of("wait") == "gpu-0"  # the ended pod's GPUs went to it

        kube.create(o.pod("next", limits={"nvidia.com/gpu": "4"}))
        kube.settle(timeout=30)
        assert node_of("next") is None  # placed + wait hold all 8
        kube.delete("pods", "placed", "default")
        kube.settle(timeout=30)
        assert node_of("next") == "gpu-0"
        assert kube.controllers.errors == []
    finally:
        kube.stop()
