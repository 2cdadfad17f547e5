"""Which probe implements which requirement id, and what a run will do with each id.

One module per requirement id in ``verify/probes/``; the module's ``Probe`` subclass whose
``id`` equals the module name registers it. The template decides what a version contains:
a probe for an id the template lacks is not run; an id with no probe is a manual check.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass

from .checklist import Requirement, Template
from .probe import Probe
from .result import Verdict
from .verdicts import UsageError

# The probes package, named from this module's own place (``aicp.verify.probes`` installed).
PROBES_PACKAGE = f"{__package__}.probes"
# aicp's own platform checks beyond the checklist (``verify/checks/<id>.py``): found the same
# way, run by the same runner after the requirements, reported apart (``verdicts``).
CHECKS_PACKAGE = f"{__package__}.checks"
PLATFORM = "PLATFORM"  # the level a platform check's Requirement carries: never MUST/SHOULD

MANUAL_REMEDIATION = (
    "manual check, no aicp probe for {id}: verify it by hand and record the status, "
    "evidence (documentation URL or test output path) and notes in the checklist")


def discover(package: str = PROBES_PACKAGE) -> dict[str, type[Probe]]:
    """Import every module of the probes package; return requirement id → Probe class."""
    pkg = importlib.import_module(package)
    found: dict[str, type[Probe]] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        classes = [obj for obj in vars(module).values()
                   if isinstance(obj, type) and issubclass(obj, Probe) and obj is not Probe
                   and obj.__module__ == module.__name__ and getattr(obj, "id", None)]
        matching = [cls for cls in classes if cls.id == info.name]
        if len(matching) != 1:
            raise RuntimeError(f"{module.__name__} must define exactly one Probe with "
                               f"id = {info.name!r} (found {[c.id for c in classes]})")
        found[info.name] = matching[0]
    return found


@dataclass
class Planned:
    """A requirement and what the run does with it: run ``probe``, or report ``verdict``."""

    requirement: Requirement
    probe: type[Probe] | None
    verdict: Verdict | None = None  # MANUAL or NOT_RUN when nothing runs
    reason: str = ""
    platform: bool = False  # an aicp platform check (``plan_checks``), not a requirement

    @property
    def runs(self) -> bool:
        return self.probe is not None and self.verdict is None


def plan(template: Template, probes: dict[str, type[Probe]], *, only: Sequence[str] = (),
         skip: Sequence[str] = (), read_only: bool = False, long: bool = False) -> list[Planned]:
    """Every requirement of the template, in its order, with what the run does with it."""
    valid = template.ids
    for flag, ids in (("--only", only), ("--skip", skip)):
        for rid in ids:
            if rid not in valid:
                raise UsageError(f"{flag} {rid}: not a requirement of checklist "
                                 f"{template.version}; valid ids: {', '.join(valid)}")
    planned = []
    for req in template.requirements:
        probe = probes.get(req.id)
        if only and req.id not in only:
            item = Planned(req, probe, Verdict.NOT_RUN, "not selected (--only)")
        elif req.id in skip:
            item = Planned(req, probe, Verdict.NOT_RUN, "skipped by --skip")
        elif probe is None:
            item = Planned(req, None, Verdict.MANUAL, MANUAL_REMEDIATION.format(id=req.id))
        elif read_only and probe.mutating:
            item = Planned(req, probe, Verdict.NOT_RUN,
                           "creates objects, left out by --read-only")
        elif probe.long and not long:
            item = Planned(req, probe, Verdict.NOT_RUN, "long-running probe: pass --long")
        else:
            item = Planned(req, probe)
        planned.append(item)
    return planned


def check_requirement(check: type[Probe]) -> Requirement:
    """The row a platform check stands in: its id, its category (``platform`` when it
    declares none), level ``PLATFORM`` and its title (or docstring's first line)."""
    doc = (check.__doc__ or "").strip().splitlines()
    return Requirement(check.id, getattr(check, "category", "") or "platform", PLATFORM,
                       check.title or (doc[0] if doc else check.id))


def split_ids(ids: Sequence[str], checks: dict[str, type[Probe]]) -> tuple[list[str], list[str]]:
    """``--only``/``--skip`` values as (requirement ids, platform check ids)."""
    return [i for i in ids if i not in checks], [i for i in ids if i in checks]


def plan_checks(checks: dict[str, type[Probe]], *, only: Sequence[str] = (),
                skip: Sequence[str] = (), read_only: bool = False,
                long: bool = False) -> list[Planned]:
    """Every platform check, by id, with what the run does with it (``Planned.platform``).

    ``only``/``skip`` are the run's ``--only``/``--skip``: a run narrowed with ``--only``
    runs the platform checks it names and no other; ``--read-only`` leaves the mutating
    ones out, ``--long`` gates the long ones, as for requirement probes.
    """
    planned = []
    for cid in sorted(checks):
        check, req = checks[cid], check_requirement(checks[cid])
        if only and cid not in only:
            item = Planned(req, check, Verdict.NOT_RUN, "not selected (--only)", platform=True)
        elif cid in skip:
            item = Planned(req, check, Verdict.NOT_RUN, "skipped by --skip", platform=True)
        elif read_only and check.mutating:
            item = Planned(req, check, Verdict.NOT_RUN,
                           "creates objects, left out by --read-only", platform=True)
        elif check.long and not long:
            item = Planned(req, check, Verdict.NOT_RUN, "long-running check: pass --long",
                           platform=True)
        else:
            item = Planned(req, check, platform=True)
        planned.append(item)
    return planned
