"""From measurements to verdicts (pure; no cluster, no clock).

Every verdict is a ``Finding``: where (pool, node, GPU), what (metric), the measured value,
the expected (published) figure, their fraction, the threshold, the figure's source, the
verdict and why. PASS at or above the threshold's fraction of the figure; FAIL below it;
SKIP when no figure is published for the product (never a guess); ERROR when the tool
printed nothing to judge.

Stragglers: per pool and metric, every node's value is compared with the pool's median; a
node below the median by more than ``stragglerShare`` is named with both numbers. A pool of
one node has no median to compare with (SKIP).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..result import Verdict
from .catalog import DEFAULT_FRACTIONS

KEYS = tuple(DEFAULT_FRACTIONS)


class ThresholdError(ValueError):
    """A thresholds override that names an unknown key or an impossible value."""


@dataclass(frozen=True)
class Finding:
    scope: str  # gpu | node | pool
    pool: str
    node: str
    gpu: str
    metric: str
    verdict: Verdict
    reason: str
    measured: float | str | None = None
    expected: float | None = None
    unit: str = ""
    fraction: float | None = None
    threshold: float | None = None
    source: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["verdict"] = self.verdict.value
        return {k: v for k, v in out.items() if v not in (None, "")}


def thresholds(defaults: Mapping[str, float], pools: Mapping[str, Mapping[str, float]],
               pool: str) -> dict[str, float]:
    """The fractions one pool is judged by: the defaults, the file's defaults, the pool's."""
    return {**DEFAULT_FRACTIONS, **defaults, **(pools.get(pool) or {})}


def check_fractions(where: str, values: Mapping) -> dict[str, float]:
    """Validate one mapping of an overrides file: known keys, numbers in (0, 2]."""
    out = {}
    for key, value in (values or {}).items():
        if key not in DEFAULT_FRACTIONS:
            raise ThresholdError(f"{where}.{key}: unknown threshold; use one of "
                                 f"{', '.join(KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 < float(value) <= 2:
            raise ThresholdError(f"{where}.{key}: {value!r} is not a fraction; give a number "
                                 "above 0 and at most 2 (0.6 = 60% of the published figure)")
        out[key] = float(value)
    return out


def against(scope: str, pool: str, node: str, gpu: str, metric: str, measured: float | None,
            expected: float | None, threshold: float, unit: str, source: str,
            why_none: str = "") -> Finding:
    """One measurement judged as a fraction of its published figure."""
    base: dict[str, Any] = dict(scope=scope, pool=pool, node=node, gpu=gpu, metric=metric,
                                unit=unit, source=source)
    if measured is None:
        return Finding(**base, verdict=Verdict.ERROR,
                       reason=why_none or f"no {metric} measurement in the tool's output")
    if not expected:
        return Finding(**base, verdict=Verdict.SKIP, measured=round(measured, 2),
                       reason=why_none or f"no published {metric} figure for this product")
    fraction = measured / expected
    ok = fraction >= threshold
    return Finding(**base, verdict=Verdict.PASS if ok else Verdict.FAIL,
                   measured=round(measured, 2), expected=expected,
                   fraction=round(fraction, 3), threshold=threshold,
                   reason=(f"{measured:.1f} {unit} is {fraction:.0%} of the published "
                           f"{expected:g} {unit}" + ("" if ok else
                                                     f", below the {threshold:.0%} floor")))


def stragglers(pool: str, metric: str, values: Mapping[str, float], share: float,
               unit: str) -> list[Finding]:
    """Each node of ``pool`` against the pool's median of ``metric`` (module doc)."""
    if len(values) < 2:
        return [Finding("pool", pool, "", "", f"straggler:{metric}", Verdict.SKIP,
                        f"{len(values)} node(s) measured: no median to compare with")]
    median = statistics.median(values.values())
    out = []
    for node, value in sorted(values.items()):
        below = (median - value) / median if median else 0.0
        slow = below > share
        out.append(Finding(
            "node", pool, node, "", f"straggler:{metric}",
            Verdict.FAIL if slow else Verdict.PASS,
            (f"straggler: {value:.1f} {unit} is {below:.0%} below the pool median "
             f"{median:.1f} {unit} (allowed {share:.0%})") if slow else
            f"{value:.1f} {unit} within {share:.0%} of the pool median {median:.1f} {unit}",
            measured=round(value, 2), expected=round(median, 2), unit=unit,
            fraction=round(value / median, 3) if median else None, threshold=1 - share,
            source="pool median"))
    return out


def overall(findings: Iterable[Finding]) -> tuple[Verdict, str]:
    """FAIL if anything failed, else ERROR if anything could not be decided, else PASS when
    something passed; zero checks is never a PASS."""
    items = list(findings)
    failed = [f for f in items if f.verdict is Verdict.FAIL]
    errors = [f for f in items if f.verdict is Verdict.ERROR]
    passed = [f for f in items if f.verdict is Verdict.PASS]
    if failed:
        names = "; ".join(f"{_where(f)} {f.metric}: {f.reason}" for f in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        return Verdict.FAIL, f"{len(failed)} check(s) failed: {names}{more}"
    if errors:
        names = "; ".join(f"{_where(f)} {f.metric}: {f.reason}" for f in errors[:5])
        return Verdict.ERROR, f"{len(errors)} check(s) could not be decided: {names}"
    if passed:
        return Verdict.PASS, f"{len(passed)} checks passed"
    return Verdict.SKIP, "nothing was measured"


def _where(f: Finding) -> str:
    parts = [p for p in (f.pool and f"pool {f.pool}", f.node and f"node {f.node}",
                         f.gpu and f"GPU {f.gpu}") if p]
    return ", ".join(parts)
