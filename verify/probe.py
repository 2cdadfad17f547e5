"""The Probe base class and the Context a probe runs in.

A probe module ``verify/probes/<requirement id>.py`` defines one ``Probe`` subclass whose
``id`` is the module name; the registry finds it there. The checklist template, not the
probe, says which ids a version has and at which level.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .result import Check, CreatedObject, Evidence, Result, Step, Verdict

if TYPE_CHECKING:  # kube raises ProbeError and labels with RUN_LABEL, both from here
    from .kube import Kube

RUN_LABEL = "aicp.dev/verify-run"
PROBE_LABEL = "aicp.dev/verify-probe"


class Cancelled(Exception):
    """Raised inside a probe at its next checkpoint once the runner gave up on it."""


class ProbeError(Exception):
    """An environment problem that stops a probe; its message is the ERROR reason as is.

    ``kube.Forbidden`` is one ("missing permission: create pods in namespace X").
    """


class Fail(Exception):
    """The cluster violates the requirement: the probe stops with FAIL and this reason.

    ``partial``: some of the requirement held (a checklist may say Partially Implemented).
    """

    def __init__(self, reason: str, *, partial: bool = False):
        super().__init__(reason)
        self.partial = partial


class Skip(Exception):
    """The requirement does not apply to this cluster: the probe stops with SKIP (N/A)."""


@dataclass(frozen=True)
class Timing:
    """How long a probe waits, from settings rather than module globals.

    A probe declares its waits in ``Probe.timeouts`` (name → seconds, each with its
    upstream source beside it). A run uses them as declared; a test (or a user's
    ``Settings``) replaces them here: ``timeout`` every name ending in ``timeout``,
    ``poll`` every name that is ``poll``, ``interval`` or ends in ``_poll``/``_interval``,
    and ``overrides`` single names (``{"over_quota_wait": 1.0}``) or one probe's
    (``{"gang_scheduling.over_quota_wait": 1.0}``), which win over both.
    """

    timeout: float | None = None
    poll: float | None = None
    overrides: Mapping[str, float] = field(default_factory=dict)

    def resolve(self, probe_id: str, name: str, declared: float) -> float:
        for key in (f"{probe_id}.{name}", name):
            if key in self.overrides:
                return float(self.overrides[key])
        if self.timeout is not None and name.endswith("timeout"):
            return self.timeout
        if self.poll is not None and (name in ("poll", "interval")
                                      or name.endswith(("_poll", "_interval"))):
            return self.poll
        return declared


@dataclass(frozen=True)
class Wait:
    """What a probe is waiting for now (``Context.wait_for``): a progress line names it."""

    what: str  # "the GPU pod to run on a new node of pool h100"
    started: float  # time.monotonic()
    limit: float  # seconds until the wait gives up

    def describe(self, now: float) -> str:
        """``waiting for X (4m10s of 23m)``, at ``now`` (time.monotonic())."""
        return (f"waiting for {self.what} ({span(max(0.0, now - self.started))} of "
                f"{span(self.limit)})")


def span(seconds: float) -> str:
    """A duration as a person reads it: ``45s``, ``4m10s``, ``23m``, ``1h05m``."""
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


@dataclass(frozen=True)
class Settings:
    """Run-wide settings a probe may read (never the kubeconfig)."""

    run_id: str
    checklist_version: str
    images: dict[str, str] = field(default_factory=dict)
    long: bool = False
    # From a Pulumi stack: gpuPools, addons, autoscaler, target (empty without --stack).
    expectations: dict[str, Any] = field(default_factory=dict)
    # The probes' waits as declared, or replaced (tests): see ``Timing``.
    timing: Timing = field(default_factory=Timing)
    # --read-only: a probe whose --long path creates objects leaves that path out.
    read_only: bool = False


class Probe:
    """One conformance requirement, checked against a live cluster.

    Class attributes are the declaration: ``id`` (the checklist requirement id, also the
    module name), ``category`` (the checklist's spec section; the template says at which
    level a version has the id, ``checklist.LEVELS``), ``needs``
    (preconditions such as ``gpu_nodes``, ``addon:kueue``, ``api:resource.k8s.io/v1``;
    an unmet one makes the requirement not applicable, SKIP), ``mutating`` (creates
    objects; left out by ``--read-only``), ``long`` (runs only with ``--long``) and
    ``exclusive`` (changes what other probes observe cluster-wide, e.g. adds a node: the
    runner runs it alone, after every other probe).
    """

    id: ClassVar[str]
    category: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    mutating: ClassVar[bool] = True
    long: ClassVar[bool] = False
    exclusive: ClassVar[bool] = False
    title: ClassVar[str] = ""
    # The probe's waits in seconds, by name (``scale_up_timeout``, ``poll``...), each with
    # its upstream source beside it; read with ``ctx.timeout(name)`` or ``cls.timeout``.
    timeouts: ClassVar[Mapping[str, float]] = {}

    @classmethod
    def timeout(cls, settings: Settings, name: str) -> float:
        """One declared wait, as this run's settings have it (``Timing``)."""
        return settings.timing.resolve(cls.id, name, cls.timeouts[name])

    @classmethod
    def budget(cls, settings: Settings) -> float | None:
        """Seconds the probe's own waits can take, derived from its timeouts (None: no
        claim). The runner gives the probe at least this, whatever ``--probe-timeout``."""
        return None

    def run(self, ctx: Context) -> Result:
        """The runner's entry: the probe's named cases in order, then PASS.

        A case stops the probe one way, by raising: ``Fail`` (FAIL), ``Skip`` (N/A),
        ``ProbeError`` (ERROR; the runner reports it), ``Cancelled`` (the runner's).
        """
        ctx.timeouts = self.timeouts
        try:
            reason = self.cases(ctx)
        except Fail as exc:
            return ctx.failed(str(exc), partial=exc.partial)
        except Skip as exc:
            return ctx.skip(str(exc))
        return ctx.passed(reason)

    def cases(self, ctx: Context) -> str:  # pragma: no cover - abstract
        """Run the requirement's cases, one named function each, in the order the
        module docstring gives them; return the PASS reason, or raise to stop."""
        raise NotImplementedError


class Context:
    """What a probe gets: the cluster, namespaces, tracking for cleanup, evidence helpers.

    Every helper is a checkpoint: once the runner cancels the probe (timeout, Ctrl-C) the
    next ``step``, ``sleep`` or ``wait_for`` raises ``Cancelled``.
    """

    def __init__(self, probe_id: str, settings: Settings, kube: Kube, *,
                 deadline: float, cleanup: CleanupStack | None = None):
        self.probe_id = probe_id
        self.settings = settings
        # The cluster: ``ctx.kube.request``/``items``/``resources``, or
        # ``ctx.kube.api(kubernetes.client.CoreV1Api)`` for a retried generated API.
        self.kube = kube
        self.deadline = deadline
        self.evidence = Evidence()
        self.cancelled = threading.Event()
        self.current_step = "start"
        self.cleanup = cleanup if cleanup is not None else CleanupStack(kube)
        self.namespaces: list[str] = []
        # The running probe's declared waits (``Probe.run`` sets them).
        self.timeouts: Mapping[str, float] = {}
        # What ``wait_for`` is waiting for now, read by the progress lines (``Wait``).
        self.waiting: Wait | None = None

    # Identity ---------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.settings.run_id

    @property
    def labels(self) -> dict[str, str]:
        """Labels every created object carries, so ``aicp verify cleanup`` finds it."""
        return {RUN_LABEL: self.run_id, PROBE_LABEL: self.probe_id.replace("_", "-")}

    def timeout(self, name: str) -> float:
        """One of the probe's declared waits (``Probe.timeouts``), as the settings have it."""
        return self.settings.timing.resolve(self.probe_id, name, self.timeouts[name])

    def image(self, name: str) -> str:
        """The (mirrored) image reference for a catalog name, as printed at start."""
        return self.settings.images[name]

    # Lifetime ---------------------------------------------------------------------------
    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def checkpoint(self) -> None:
        if self.cancelled.is_set() or time.monotonic() >= self.deadline:
            raise Cancelled(f"cancelled at step {self.current_step}")

    def sleep(self, seconds: float) -> None:
        """Sleep, unless cancelled or past the deadline first (then raise ``Cancelled``)."""
        self.checkpoint()
        self.cancelled.wait(min(seconds, self.remaining()))
        self.checkpoint()

    def wait_for(self, what: str, predicate: Callable[[], Any], *, timeout: float,
                 interval: float = 1.0, first: float | None = None) -> Any:
        """Poll ``predicate`` until it returns something truthy; None after ``timeout``.

        With ``first``, the polls start ``first`` seconds apart and the gap doubles up to
        ``interval``: a wait that can last minutes on a cloud (a node joining) still
        notices within a second or two a cluster that answers at once, and costs few
        requests when it does not. While it polls, ``waiting`` says what it waits for and
        its limit (the progress lines print it): ``what`` reads after "waiting for".
        """
        start = time.monotonic()
        limit = min(timeout, self.remaining())
        end = start + limit
        gap = interval if first is None else min(first, interval)
        outer, self.waiting = self.waiting, Wait(what, start, limit)
        try:
            while True:
                self.checkpoint()
                value = predicate()
                if value:
                    return value
                if time.monotonic() >= end:
                    self.log(f"gave up waiting for {what} after {timeout:g}s")
                    return None
                self.sleep(min(gap, max(0.0, end - time.monotonic())))
                gap = min(gap * 2, interval)
        finally:
            self.waiting = outer

    # Objects ----------------------------------------------------------------------------
    def namespace(self, suffix: str = "") -> str:
        """Create a namespace for this run and probe; the runner deletes it and waits."""
        self.checkpoint()
        base = f"aicp-verify-{self.run_id}-{self.probe_id.replace('_', '-')}"
        name = f"{base}-{suffix}" if suffix else base
        name = name[:63].rstrip("-")
        self.cleanup.add_namespace(name)
        self.kube.create_namespace(name, self.labels)
        self.namespaces.append(name)
        self.evidence.objects.append(CreatedObject("Namespace", name))
        return name

    def track(self, obj: Any, *, kind: str | None = None, namespace: str | None = None,
              api_version: str | None = None,
              delete: Callable[[], None] | None = None) -> Any:
        """Record an object this probe created; it is deleted in reverse order of creation.

        ``obj`` is a kubernetes model or a dict; ``delete`` overrides how it is deleted
        (the default asks the cluster to delete it by apiVersion/kind/name).
        """
        meta = _get(obj, "metadata")
        created = CreatedObject(
            kind=kind or _get(obj, "kind") or type(obj).__name__.removeprefix("V1"),
            name=_get(meta, "name"),
            namespace=namespace if namespace is not None else _get(meta, "namespace"),
            api_version=api_version or _get(obj, "api_version") or _get(obj, "apiVersion")
            or "v1",
            images=tuple(images_of(obj)))
        self.evidence.objects.append(created)
        self.cleanup.add(created, delete)
        return obj

    # Evidence ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a named step; a timeout report names the step the probe was in.

        Once the step ends, the step around it is current again; between top-level steps
        it is "after <the last one>", so a log line written there never carries the name
        of a step that has already ended. A step left by an exception stays current: the
        verdict (a timeout, an interrupt) names the step the probe stopped in."""
        self.checkpoint()
        outer = self.current_step
        self.current_step = name
        step = Step(name, time.time())
        self.evidence.steps.append(step)
        start = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            # Left current: the probe stops here, and its verdict names this step.
            step.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise
        else:
            top = outer == "start" or outer.startswith("after ")
            self.current_step = f"after {name}" if top else outer
        finally:
            step.duration = time.monotonic() - start

    def check(self, name: str, passed: bool, observed: Any = "") -> bool:
        """Record one assertion and what was observed; returns ``passed``."""
        self.evidence.checks.append(Check(name, bool(passed), str(observed)))
        self.log(f"{'ok' if passed else 'FAILED'}: {name}" + (f" ({observed})" if observed else ""))
        return bool(passed)

    def observe(self, key: str, value: Any) -> None:
        self.evidence.observations[key] = value

    def artifact(self, name: str, content: str) -> str:
        """Keep an object dump or log in the evidence bundle (``evidence/<id>/<name>``)."""
        self.evidence.artifacts[name] = content
        return f"evidence/{self.probe_id}/{name}"

    def log(self, message: str) -> None:
        self.evidence.log.append(f"{time.strftime('%H:%M:%S')} [{self.current_step}] {message}")

    # Verdicts ---------------------------------------------------------------------------
    def passed(self, reason: str) -> Result:
        return Result(Verdict.PASS, reason, self.evidence)

    def failed(self, reason: str, *, partial: bool = False) -> Result:
        return Result(Verdict.FAIL, reason, self.evidence, partial=partial)

    def skip(self, reason: str) -> Result:
        return Result(Verdict.SKIP, reason, self.evidence)

    def error(self, reason: str) -> Result:
        return Result(Verdict.ERROR, reason, self.evidence)


class CleanupStack:
    """Objects and namespaces to delete, shared by every probe of a run (thread-safe)."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self._lock = threading.Lock()
        self._objects: list[tuple[CreatedObject, Callable[[], None] | None]] = []
        self.namespaces: list[str] = []
        self.errors: list[str] = []
        self._deleted_namespaces: set[str] = set()

    def add(self, obj: CreatedObject, delete: Callable[[], None] | None = None) -> None:
        with self._lock:
            self._objects.append((obj, delete))

    def add_namespace(self, name: str) -> None:
        with self._lock:
            if name not in self.namespaces:
                self.namespaces.append(name)

    def delete_namespace(self, name: str) -> None:
        """Ask for the namespace's deletion once; the runner waits for all at the end."""
        with self._lock:
            if name in self._deleted_namespaces:
                return
            self._deleted_namespaces.add(name)
        try:
            self.kube.delete(CreatedObject("Namespace", name))
        except Exception as exc:  # noqa: BLE001 - keep deleting the rest
            with self._lock:
                self._deleted_namespaces.discard(name)
            self.errors.append(f"could not delete namespace {name}: {one_line(exc)}")

    def pending(self) -> list[CreatedObject]:
        with self._lock:
            return [obj for obj, _ in self._objects]

    def unwind(self, only: list[CreatedObject] | None = None) -> list[CreatedObject]:
        """Delete tracked objects in reverse order of creation; returns what was deleted.

        A failed delete is recorded in ``errors`` and does not stop the others.
        """
        done = []
        while True:
            with self._lock:
                candidates = [i for i, (o, _) in enumerate(self._objects)
                              if only is None or any(o is x for x in only)]
                if not candidates:
                    return done
                obj, delete = self._objects.pop(candidates[-1])
            try:
                (delete or (lambda o=obj: self.kube.delete(o)))()
                done.append(obj)
            except Exception as exc:  # noqa: BLE001 - keep deleting the rest
                self.errors.append(f"could not delete {obj}: {one_line(exc)}")

    def finish(self, timeout: float) -> list[str]:
        """Delete every tracked object (reverse order), then the namespaces, and wait up to
        ``timeout`` for them to go; returns the namespaces still there. Never raises: a
        failure is recorded in ``errors`` (a run on its own, outside the runner, ends so)."""
        self.unwind()
        for ns in list(self.namespaces):
            self.delete_namespace(ns)
        try:
            return self.kube.wait_namespaces_gone(list(self.namespaces), timeout)
        except Exception as exc:  # noqa: BLE001 - cleanup never raises; it names what is left
            self.errors.append(f"could not wait for the namespaces: {one_line(exc)}")
            return list(self.namespaces)


def one_line(exc: BaseException) -> str:
    """An exception as one line for a person: kubernetes ApiExceptions carry status+body."""
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "body"):
        message = _status_message(getattr(exc, "body", None)) or getattr(exc, "reason", "")
        return f"HTTP {status}: {message}".strip()
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _status_message(body: Any) -> str:
    import json

    if not body:
        return ""
    try:
        return str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError, TypeError):
        return str(body).splitlines()[0][:200]


_CONTAINER_LISTS = ("containers", "initContainers", "init_containers", "ephemeralContainers",
                    "ephemeral_containers")


def images_of(obj: Any) -> list[str]:
    """Every container image in an object's spec, at any depth (a Pod, a Deployment's or
    Job's template, a JobSet's or RayCluster's groups), in order, without repeats."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _CONTAINER_LISTS and isinstance(value, list):
                    for container in value:
                        image = container.get("image") if isinstance(container, dict) else None
                        if isinstance(image, str) and image not in found:
                            found.append(image)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    to_dict = getattr(obj, "to_dict", None)  # a kubernetes client model
    walk(to_dict() if callable(to_dict) and not isinstance(obj, dict) else obj)
    return found


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)
