"""Retries: transient failures are tried again with bounded backoff; a dead cluster is ``Lost``.

429 waits what Retry-After asks (capped); 500/502/503/504 and dropped connections back off
exponentially with jitter; a 403 is never retried (it becomes ``rbac.Forbidden``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..probe import ProbeError
from .rbac import forbidden

if TYPE_CHECKING:
    from .transport import Kube

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class Lost(ProbeError):
    """The cluster stopped answering (connection refused, reset or timed out) after retries."""


def retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def with_retry(call: Callable[[], Any], *, describe: str = "", namespace: str | None = None,
               attempts: int = 6, base: float = 0.25, cap: float = 8.0,
               sleep: Callable[[float], None] = time.sleep,
               on_retry: Callable[[str], None] | None = None) -> Any:
    """Run ``call``, retrying transient failures with capped exponential backoff.

    429 waits what Retry-After asks (capped at 30 s); 5xx and dropped connections back off
    with jitter. A 403 raises ``Forbidden``; any other error is raised unchanged.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ApiException as exc:
            if exc.status == 403:
                raise forbidden(exc, describe, namespace) from None
            if exc.status not in RETRY_STATUSES or attempt == attempts:
                raise
            delay = retry_after(exc) if exc.status == 429 else None
            delay = min(delay, 30.0) if delay is not None else _backoff(attempt, base, cap)
            why = f"HTTP {exc.status}"
        except CONNECTION_ERRORS as exc:
            if attempt == attempts:
                raise
            delay, why = _backoff(attempt, base, cap), type(exc).__name__
        if on_retry:
            on_retry(f"{describe or 'request'}: {why}, retry {attempt} in {delay:.2f}s")
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _backoff(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def connection_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words ("Connection refused", "timed out"...)."""
    text = str(getattr(exc, "reason", None) or exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "certificate verify failed",
                   "nodename nor servname provided"):
        if marker.lower() in text.lower():
            return marker
    return text.splitlines()[0][:160]


class RetryingApi:
    """A generated API class (``CoreV1Api``...) whose every method is retried."""

    def __init__(self, api: Any, on_retry: Callable[[str], None] | None,
                 kube: Kube | None = None):
        self._api, self._on_retry, self._kube = api, on_retry, kube

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._api, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            state = {"retried": False}

            def note(message: str) -> None:
                state["retried"] = True
                if self._on_retry:
                    self._on_retry(message)

            try:
                if self._kube is not None:
                    return self._kube.retry(lambda: target(*args, **kwargs), describe=name,
                                            namespace=kwargs.get("namespace"), on_retry=note)
                return with_retry(lambda: target(*args, **kwargs), describe=name,
                                  namespace=kwargs.get("namespace"), on_retry=note)
            except ApiException as exc:
                # A create retried after a lost response may have landed the first time.
                if exc.status == 409 and state["retried"] and name.startswith("create_"):
                    return self._read_back(name, args, kwargs)
                raise
        return call

    def _read_back(self, name: str, args: tuple, kwargs: dict) -> Any:
        body = kwargs.get("body", args[-1] if args else None)
        meta = body.get("metadata") if isinstance(body, dict) else getattr(body, "metadata", None)
        obj_name = meta.get("name") if isinstance(meta, dict) else getattr(meta, "name", None)
        read = getattr(self._api, "read_" + name.removeprefix("create_"))
        extra = {"namespace": kwargs["namespace"]} if "namespace" in kwargs else {}
        return read(name=obj_name, **extra)
