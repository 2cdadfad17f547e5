"""Paging: a list is read ``limit`` items at a time, following ``continue`` tokens.

An expired continue token is answered "410 ResourceExpired error together with a continue
token" from which the list goes on "from the latest snapshot" (the ``continue`` field of
``ListOptions``, kubernetes/apimachinery pkg/apis/meta/v1/types.go).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..probe import ProbeError

# Items per list request, as kubectl's --chunk-size: a 5,000-node or 100,000-pod cluster is
# read in pages, so memory holds one page, not the whole collection.
PAGE = 500


def items(request: Callable[..., Any], path: str, *, query: dict | None = None,
          page: int = PAGE) -> Iterator[dict]:
    """Every item of the list at ``path``, fetched ``page`` at a time (limit/continue).

    ``request`` is ``Kube.request``. Callers keep what they need while iterating, so memory
    is one page whatever the cluster's size. When the server expires the list's snapshot
    mid-way (410), the listing goes on from the inconsistent continue token the 410 carries,
    as the API documents; without one it cannot resume without repeating items, so it fails.
    """
    token = None
    while True:
        params = {**(query or {}), "limit": str(page)}
        if token:
            params["continue"] = token
        try:
            doc = request("GET", path, query=params)
        except ApiException as exc:
            resume = _expired_continue(exc) if token else None
            if not resume:
                if exc.status == 410:
                    raise ProbeError(f"list {path}: the server expired the listing after "
                                     "some pages and offered no way on: rerun") from None
                raise
            token = resume
            continue
        yield from doc.get("items") or []
        token = ((doc or {}).get("metadata") or {}).get("continue")
        if not token:
            return


def _expired_continue(exc: ApiException) -> str | None:
    """The continue token a 410 ResourceExpired offers to list on inconsistently."""
    if exc.status != 410:
        return None
    try:
        return (json.loads(exc.body or "{}").get("metadata") or {}).get("continue") or None
    except (ValueError, AttributeError):
        return None
