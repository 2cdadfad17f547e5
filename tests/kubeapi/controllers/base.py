"""Scripted controllers: level-triggered reconcilers run on one worker thread.

After each write the store queues an event; the worker drains the queue, calls edge
reactors for each event, then ``sync`` once on every controller watching a resource that
changed (or whose ``resync`` period or a timer it set is due). Controllers write back
through the emulator (never holding the worker's lock), so their writes queue further
events: no deadlock, and ``KubeAPI.settle()`` waits until the cascade has died down.

Resync periods and timers run on the emulator's clock (``kube.clock``): the worker sleeps
until the next one is due or an event or ``clock.advance`` wakes it, never polling.

A periodic resync never follows a pass at once: after a pass that took D seconds of the
emulator's clock the worker rests ``REST`` times D before the next one (events and timers
still run at once). A resync is how a controller re-checks the world, not work a write
asked for; on a large cluster (5,000 nodes, 100,000 pods) one pass of every controller
outlasts a 0.5 s period, and without the rest the worker would run resyncs back to back,
never idle, so ``settle()`` would never return and the HTTP server would share the
interpreter with a worker that never sleeps.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..emulator import KubeAPI
    from ..store import Event

# Periodic resyncs wait this many times the last pass's length: at most a fifth of the
# worker's time goes to them however long a pass takes.
REST = 4.0


class Controller:
    """Subclass, set ``watches`` (resource refs like ``pods`` or ``jobs.batch``), and
    implement an idempotent ``sync``: read the world, write what is missing."""

    name = "controller"
    watches: tuple[str, ...] = ()
    resync: float | None = 0.5

    def sync(self, kube: KubeAPI) -> None:
        raise NotImplementedError


class Dispatcher:
    def __init__(self, kube: KubeAPI):
        self.kube = kube
        self.controllers: list[Controller] = []
        self.reactors: list[tuple[str, Callable[[Event], None]]] = []
        self.errors: list[str] = []
        self._queue: deque[Event] = deque()
        self._due: set[int] = set()
        self._last: dict[int, float] = {}
        self._timers: dict[int, float] = {}
        self._rest_until = 0.0  # no periodic resync before this (emulator clock)
        self._cv = threading.Condition()
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kubeapi-controllers",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def notify(self, event: Event) -> None:
        with self._cv:
            self._queue.append(event)
            self._cv.notify_all()

    def add(self, controller: Controller) -> Controller:
        with self._cv:
            self.controllers.append(controller)
            self._due.add(id(controller))
            self._cv.notify_all()
        return controller

    def timer(self, controller: Controller, at: float) -> None:
        """Sync ``controller`` again once the emulator's clock reads ``at`` (the earliest
        of its timers wins): how a controller waits for time, not for a write."""
        with self._cv:
            key = id(controller)
            self._timers[key] = min(at, self._timers.get(key, at))
            self._cv.notify_all()

    def resync(self) -> None:
        """Mark every controller due now, as if each resync period had passed."""
        with self._cv:
            self._due.update(id(c) for c in self.controllers)
            self._cv.notify_all()

    def wake(self) -> None:
        """Re-read the clock (after ``clock.advance``): due resyncs and timers run."""
        with self._cv:
            self._mark_resyncs()
            self._cv.notify_all()

    def react(self, ref: str, fn: Callable[[Event], None]) -> None:
        with self._cv:
            self.reactors.append((ref, fn))

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until no event is queued and no controller is running."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._busy or self._due:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("controllers did not settle within "
                                       f"{timeout} s; errors: {self.errors[-3:]}")
                self._cv.wait(left)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not (self._queue or self._due or self._stop):
                    self._cv.wait(self._next_wait())
                    self._mark_resyncs()
                if self._stop:
                    return
                batch = list(self._queue)
                self._queue.clear()
                refs = {e.resource.ref for e in batch}
                run = [c for c in self.controllers
                       if id(c) in self._due or refs.intersection(c.watches)]
                reactors = list(self.reactors)
                self._due.clear()
                self._busy = True
            started = self.kube.clock.now()
            try:
                for event in batch:
                    for ref, fn in reactors:
                        if ref == event.resource.ref:
                            self._guard(getattr(fn, "__name__", "reactor"), fn, event)
                for controller in run:
                    self._last[id(controller)] = self.kube.clock.now()
                    self._guard(controller.name, controller.sync, self.kube)
            finally:
                ended = self.kube.clock.now()
                with self._cv:
                    self._rest_until = ended + REST * max(0.0, ended - started)
                    self._busy = False
                    self._cv.notify_all()

    def _guard(self, name: str, fn: Callable, arg) -> None:
        try:
            fn(arg)
        except Exception as e:
            from ..errors import ApiError
            if isinstance(e, ApiError) and e.code == 409:
                return  # a stale read; the next sync sees the newer object
            self.errors.append(f"{name}: {traceback.format_exc()}")

    def _next_wait(self) -> float:
        """Real seconds until the next resync or timer is due (an hour when none is: an
        event, ``timer`` or ``clock.advance`` wakes the worker sooner)."""
        now = self.kube.clock.now()
        dues = [max(self._last.get(id(c), 0) + c.resync, self._rest_until)
                for c in self.controllers if c.resync]
        dues += self._timers.values()
        if not dues:
            return 3600.0
        return self.kube.clock.real(min(dues) - now, cap=3600.0)

    def _mark_resyncs(self) -> None:
        now = self.kube.clock.now()
        for c in self.controllers:
            key = id(c)
            # Not during a pass (a sync that moves the clock wakes this): the pass's end
            # sets the rest that the next periodic resync waits for.
            if c.resync and not self._busy and now >= self._rest_until and \
                    now - self._last.get(key, 0) >= c.resync:
                self._due.add(key)
            if key in self._timers and self._timers[key] <= now:
                del self._timers[key]
                self._due.add(key)
