"""Fault injection and the request log, for reliability tests and API-call budgets."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field


@dataclass
class Request:
    """One served request as the request log records it."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    bytes_sent: int
    seconds: float
    verb: str = ""      # Kubernetes verb: get, list, watch, create, update, patch, delete...
    resource: str = ""  # plural[.group], "" for discovery and proxies


class RequestLog:
    """Every request the emulator answered, oldest first; safe to read while serving."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Request] = []

    def add(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __len__(self) -> int:
        return len(self.requests)

    def matching(self, method: str | None = None, path: str | None = None,
                 verb: str | None = None, resource: str | None = None,
                 status: int | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper())
                    and (path is None or re.search(path, r.path))
                    and (verb is None or r.verb == verb)
                    and (resource is None or r.resource == resource)
                    and (status is None or r.status == status)]

    def count(self, **kwargs) -> int:
        return len(self.matching(**kwargs))


@dataclass
class Fault:
    """What goes wrong for requests matching ``path`` (regex), ``verbs`` and ``resource``."""

    action: str  # "status", "slow", "drop" or "forbid"
    path: str = ".*"
    verbs: frozenset[str] = frozenset()  # Kubernetes verbs or HTTP methods; empty: all
    resource: str | None = None          # plural[.group]
    namespace: str | None = None
    code: int = 500
    retry_after: int = 1
    seconds: float = 0.0
    times: int | None = None  # None: permanent; N: the first N matching requests
    hits: int = field(default=0)

    def matches(self, method: str, verb: str, path: str, resource: str,
                namespace: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.verbs and verb not in self.verbs and method not in self.verbs:
            return False
        if self.resource is not None and self.resource != resource:
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return re.search(self.path, path) is not None


class Faults:
    """Rules checked in the order added; the first matching one fires (and is counted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def throttle(self, path: str = ".*", *, verbs=(), resource=None, times=None,
                 retry_after: int = 1) -> Fault:
        """429 TooManyRequests with ``Retry-After``."""
        return self.add(Fault("status", path, frozenset(verbs), resource, code=429,
                              retry_after=retry_after, times=times))

    def error(self, code: int = 500, path: str = ".*", *, verbs=(), resource=None,
              times=None) -> Fault:
        """500 InternalError, 503 ServiceUnavailable or any other code with a Status body."""
        return self.add(Fault("status", path, frozenset(verbs), resource, code=code,
                              times=times))

    def slow(self, seconds: float, path: str = ".*", *, verbs=(), resource=None,
             times=None) -> Fault:
        """Delay the response, then answer normally."""
        return self.add(Fault("slow", path, frozenset(verbs), resource, seconds=seconds,
                              times=times))

    def drop(self, path: str = ".*", *, verbs=(), resource=None, times=None) -> Fault:
        """Close the connection without answering."""
        return self.add(Fault("drop", path, frozenset(verbs), resource, times=times))

    def forbid(self, verbs=(), resource: str | None = None, *, namespace: str | None = None,
               path: str = ".*", times=None) -> Fault:
        """403 Forbidden as RBAC words it; also makes SelfSubjectAccessReviews deny."""
        return self.add(Fault("forbid", path, frozenset(verbs), resource, namespace,
                              code=403, times=times))

    def fire(self, method: str, verb: str, path: str, resource: str,
             namespace: str | None) -> Fault | None:
        with self._lock:
            for fault in self.rules:
                if fault.matches(method, verb, path, resource, namespace):
                    fault.hits += 1
                    return fault
        return None

    def denies(self, verb: str, resource: str, namespace: str | None) -> bool:
        """Whether a forbid rule covers this access (without counting a hit)."""
        with self._lock:
            return any(f.action == "forbid" and (not f.verbs or verb in f.verbs or "*" in
                                                 f.verbs)
                       and f.resource in (None, resource)
                       and f.namespace in (None, namespace)
                       and (f.times is None or f.hits < f.times) for f in self.rules)
