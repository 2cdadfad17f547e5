"""SIGTERM and SIGHUP end a run the way Ctrl-C does: probes stop, reports, cleanup, exit 130.

CI cancelling a job, ``timeout``, a dropped SSH session and a Job being deleted all send
SIGTERM or SIGHUP; left to Python's defaults they kill the process at once and the run's
namespaces (GPU pods, Jobs, an HPA) stay. Each of the three signals raises ``Interrupted``
(a ``KeyboardInterrupt``) in the main thread, where the runner already handles Ctrl-C.
Once the probes are over, ``defer`` holds further signals back so the reports are written
whole; the signal is then only remembered.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# Set by the real ``aicp`` process (cli/main.py), which exits as soon as the run returns.
_process_exits = False


def process_exits_after_run() -> None:
    """Say that the process ends right after the run: once a signal has stopped the run,
    further ones are ignored until it exits (``interrupts``)."""
    global _process_exits
    _process_exits = True


class Interrupted(KeyboardInterrupt):
    """A handled signal; ``name`` is SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def name_of(exc: BaseException) -> str:
    return exc.name if isinstance(exc, Interrupted) else "SIGINT"


class Guard:
    """The installed handlers; ``received`` is the first signal that arrived."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.deferred = False
        self.run_id = ""  # set once probes may have created something

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received = self.received or name
        if not self.deferred:
            raise Interrupted(name)

    def defer(self) -> None:
        """From now on a signal is remembered, not raised (the reports are being written)."""
        self.deferred = True


@contextmanager
def interrupts() -> Iterator[Guard]:
    """Turn SIGINT, SIGTERM and SIGHUP into ``Interrupted`` while the block runs."""
    guard = Guard()
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be set from the main thread (a test's worker thread).
        yield guard
        return
    previous = {sig: signal.getsignal(sig) for sig in HANDLED}
    for sig in HANDLED:
        signal.signal(sig, guard.handle)
    try:
        yield guard
    finally:
        # The process exits next with the code the run decided (130) and the closing line
        # already says so: a second SIGTERM landing on the default handler in between would
        # kill it with 143 instead. Another caller (a test) gets its handlers back.
        keep_out = guard.received is not None and _process_exits
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if keep_out else handler)


@contextmanager
def remembered_ctrl_c() -> Iterator[Callable[[], str | None]]:
    """Ctrl-C raised as Python's default handler raises it, and remembered too.

    Python drops an exception raised while a finalizer (``__del__``, a weakref callback)
    runs: a ``KeyboardInterrupt`` landing there is printed as "Exception ignored" and lost
    (CPython ``Modules/signalmodule.c`` runs handlers at the next bytecode boundary of the
    main thread, whatever it is executing). A runner used without ``interrupts()`` asks
    the returned function each tick, so a Ctrl-C is never lost. A handler someone else
    installed is left alone (then this remembers nothing).
    """
    got: list[str] = []
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield lambda: None
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        got.append("SIGINT")
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handle)
    try:
        yield lambda: got[0] if got else None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
