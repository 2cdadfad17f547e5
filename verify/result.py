"""What a probe found: a verdict, the sentence saying why, and the evidence behind it."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(timestamp: float | None) -> str | None:
    """Epoch seconds as the one time format of every report: ISO 8601 UTC, milliseconds."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def seconds(duration: float | None) -> float | None:
    """A duration as every report names it (``durationSeconds``), to the millisecond."""
    return None if duration is None else round(duration, 3)


class Verdict(enum.StrEnum):
    """A requirement's outcome.

    Probes return PASS, FAIL, SKIP (not applicable) or ERROR (could not decide). The runner
    alone uses MANUAL (the checklist has the id, no probe implements it) and NOT_RUN (the
    probe was left out by ``--only``/``--skip``/``--read-only``).
    """

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"
    MANUAL = "MANUAL"
    NOT_RUN = "NOT_RUN"



@dataclass
class Step:
    """One named step of a probe, timed; ``error`` says how it ended when it did not finish."""

    name: str
    started: float
    duration: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "started": iso(self.started),
                "durationSeconds": seconds(self.duration), "error": self.error}


@dataclass
class Check:
    """One assertion a probe made about the cluster, with what it observed."""

    name: str
    passed: bool
    observed: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "observed": self.observed}


@dataclass
class CreatedObject:
    """An object a probe created (and the runner deletes)."""

    kind: str
    name: str
    namespace: str | None = None
    api_version: str = "v1"
    # Container images its spec runs (by digest where the catalog pins one): evidence pages.
    images: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name,
                "namespace": self.namespace, **({"images": list(self.images)}
                                                if self.images else {})}


@dataclass
class Evidence:
    """Everything observed while a probe ran; filled by the Context's helpers."""

    steps: list[Step] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    objects: list[CreatedObject] = field(default_factory=list)
    observations: dict[str, Any] = field(default_factory=dict)
    # name → bytes/text written under evidence/<id>/ by the reports
    artifacts: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps],
                "checks": [c.to_dict() for c in self.checks],
                "objects": [o.to_dict() for o in self.objects],
                "observations": self.observations,
                "artifacts": sorted(self.artifacts),
                "log": self.log}


@dataclass
class Result:
    """A verdict, the sentence a platform engineer can act on, and the evidence.

    ``partial`` marks a FAIL of a multi-part probe where some parts passed (the checklist
    says "Partially Implemented"); ``traceback`` never reaches the terminal, only the
    evidence bundle.
    """

    verdict: Verdict
    reason: str
    evidence: Evidence = field(default_factory=Evidence)
    partial: bool = False
    started: float = field(default_factory=time.time)
    duration: float = 0.0
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "reason": self.reason, "partial": self.partial,
                "started": iso(self.started), "durationSeconds": seconds(self.duration),
                **self.evidence.to_dict()}
