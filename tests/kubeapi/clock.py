"""The emulator's clock: what its timed behaviours measure, which a test can move.

Controller resyncs and timers, a run-once pod whose script ends in ``sleep N``, a watch's
``timeoutSeconds`` and bookmarks, and Prometheus' ``scrape_every`` all read ``kube.clock``
rather than the wall clock. It runs at ``scale`` times real time from its creation (1.0:
real seconds; 0: frozen), and ``advance(seconds)`` moves it on at once: whatever waits for
emulated time is woken and sees the jump, so a test decides when time passes instead of
sleeping until it has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    def __init__(self, scale: float = 1.0):
        self._lock = threading.Lock()
        self._scale = scale
        self._base_real = time.monotonic()
        self._base = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Emulated seconds since the clock was made."""
        with self._lock:
            return self._base + (time.monotonic() - self._base_real) * self._scale

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, scale: float) -> None:
        """From now on, emulated time runs ``scale`` times real time (0: only ``advance``)."""
        with self._lock:
            real = time.monotonic()
            self._base += (real - self._base_real) * self._scale
            self._base_real, self._scale = real, scale
        self._wake()

    def advance(self, seconds: float) -> None:
        """Move emulated time on by ``seconds``; every waiter re-reads the clock now."""
        with self._lock:
            self._base += seconds
        self._wake()

    def real(self, seconds: float, cap: float) -> float:
        """Real seconds to wait for ``seconds`` of emulated time, at most ``cap``: a waiter
        is woken early by ``advance``, so the cap only bounds a change of ``scale``."""
        seconds = max(0.0, seconds)
        return min(cap, seconds / self._scale) if self._scale > 0 else cap

    def on_change(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after each ``advance`` or change of scale (to wake a waiter)."""
        with self._lock:
            self._listeners.append(fn)

    def _wake(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            fn()
