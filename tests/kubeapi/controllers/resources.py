"""Resource arithmetic shared by the scheduler, Kueue and the autoscaler."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from kubernetes.utils import parse_quantity


def pod_requests(spec: dict) -> Counter:
    """Effective requests of a pod spec: sum of containers, limits standing in for requests."""
    total: Counter = Counter()
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for name, qty in merged.items():
            total[name] += parse_quantity(qty)
    for c in spec.get("initContainers") or []:  # init containers run one at a time
        res = c.get("resources") or {}
        for name, qty in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
            total[name] = max(total[name], parse_quantity(qty))
    total["pods"] += 1
    return total


def allocatable(node: dict) -> dict[str, Decimal]:
    return {k: parse_quantity(v) for k, v in
            ((node.get("status") or {}).get("allocatable") or {}).items()}


def fmt(value: Decimal) -> str:
    return str(int(value)) if value == int(value) else f"{int(value * 1000)}m"
