"""The verdict rules of ``aicp verify``, in one place, and the run data they judge.

What each verdict means for a requirement, for the CNCF checklist (``status``), for the test
artifacts (``test_result``: aicp's JUnit and log) and for the run (``exit_code``), and what the
runner may turn a probe's answer into (``judge``). Every report under ``verify/reports/``
reads a ``RunReport`` through these functions; the golden files in ``tests/verify/golden/``
show the result for one fixed run, byte for byte.

Pure: no I/O, no clock, no cluster; only the result data types are imported at run time.

The CNCF program reads a run two ways: the checklist (``status`` per requirement) and, from
1.37 on, test artifacts (``junit.xml``, ``e2e.log``) where any failing test rejects the
whole submission (cncf/k8s-ai-conformance#141, "Validate hybrid verification test
artifacts"). So a test fails only where the run itself fails: a MUST that failed or could
not be decided. A SHOULD the platform leaves out is "Not Implemented" in the checklist and a
skipped test with that reason; not applicable, manual and not-run requirements are skipped
with theirs. The exit code follows the same rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .result import Evidence, Result, Verdict

if TYPE_CHECKING:  # type names only: importing them would bring the probe API and YAML in
    from .checklist import Requirement
    from .probe import Settings

# Exit codes. 3: no MUST failed, but not every MUST ran (--only, --skip, --read-only, a
# manual check): not a conformance result. 130: interrupted by SIGINT, SIGTERM or SIGHUP,
# after reports and cleanup (a process killed outright by TERM or HUP exits 143 or 129).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

class UsageError(Exception):
    """A mistake in how aicp was called (an option, a stack file), as one line naming the
    fix: exit ``EXIT_USAGE``, before anything is created. The CLI raises the same class."""


# A value echoed in an error line is cut to this many characters: a 10,000-character
# value (a pasted file in the wrong key) would otherwise bury the key and the fix. Long
# enough for any file path a person would type.
ECHO_LIMIT = 200
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+""")


def error_line(message: object) -> str:
    """``message`` as the one line a person reads: on one line, and each value (a quoted
    text, or a run without spaces) longer than ``ECHO_LIMIT`` cut to its start and end with
    its length between."""
    text = " ".join(str(message).split())

    def cut(match: re.Match[str]) -> str:
        value = match.group(0)
        if len(value) <= ECHO_LIMIT:
            return value
        return f"{value[:ECHO_LIMIT // 2]}…[{len(value)} characters]…{value[-12:]}"

    return _QUOTED.sub(cut, text)


# What a probe may answer, and what makes a requirement exercised: SKIP is decided (not
# applicable); MANUAL and NOT_RUN (the runner's own verdicts) are not.
DECIDED = frozenset({Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR})
MUST, SHOULD = "MUST", "SHOULD"

# Printed settings that stay on this machine (``RunReport.published_info``).
LOCAL_ONLY = frozenset({"kubeconfig"})
# And the ones a submission (``--output checklist``, a public pull request) leaves out too:
# the API server's address and the context's name (on EKS an ARN with the account id).
PRIVATE = frozenset({"cluster", "context"})

TestResult = Literal["passed", "failure", "error", "skipped"]


@dataclass
class Outcome:
    """One requirement of the checklist and its result."""

    requirement: Requirement
    result: Result


@dataclass
class RunReport:
    """A finished run: one outcome per checklist requirement, in the template's order.

    ``aicp_version`` and ``started`` are facts the caller states (the installed version,
    the clock): this module reads neither.
    """

    settings: Settings
    aicp_version: str
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0  # epoch seconds
    duration: float = 0.0
    interrupted: bool = False
    signal: str = ""  # SIGINT, SIGTERM or SIGHUP when interrupted
    cleanup_errors: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    # Printed and reported context: cluster server, kubeconfig context, images.
    info: dict[str, str] = field(default_factory=dict)
    # The reports are a submission (``--output checklist``): every file in the folder is
    # meant for a public pull request.
    submission: bool = False
    # aicp's own platform checks (``verify/checks/``), apart from the checklist: never in
    # ``outcomes``, the checklist, JUnit, e2e.log or ``conformant`` (``platform_code``).
    platform: list[Outcome] = field(default_factory=list)
    strict_platform: bool = False  # --strict-platform: a failed check fails the run

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    @property
    def published_info(self) -> dict[str, str]:
        """``info`` as the written reports carry it: a local path (the kubeconfig's) says
        nothing about the platform; a submission is public, and leaves out the cluster's
        address and context name as well (the terminal still shows them)."""
        hidden = LOCAL_ONLY | (PRIVATE if self.submission else frozenset())
        return {k: v for k, v in self.info.items() if k not in hidden}

    def count(self, level: str) -> dict[str, int]:
        """Verdict → how many requirements of ``level`` got it (only verdicts that occur)."""
        found: dict[str, int] = {}
        for o in self.outcomes:
            if o.requirement.level == level:
                found[o.result.verdict.value] = found.get(o.result.verdict.value, 0) + 1
        return found

    def ran(self, level: str = MUST) -> tuple[int, int]:
        """(requirements of ``level`` that were exercised, requirements of ``level``)."""
        of_level = [o for o in self.outcomes if o.requirement.level == level]
        return sum(o.result.verdict in DECIDED for o in of_level), len(of_level)

    @property
    def all_musts_ran(self) -> bool:
        """Every MUST was exercised (decided): the run is complete, which says nothing of
        whether they passed. Only a complete run can be a conformance result."""
        ran, total = self.ran(MUST)
        return ran == total

    @property
    def conformant(self) -> bool:
        """The platform conforms: exactly when the run exits 0 (every MUST ran, none failed
        or went undecided, not interrupted). Every machine-readable report says this, never
        ``all_musts_ran``, so it cannot disagree with the exit code."""
        return conformant(self)


# The run ----------------------------------------------------------------------------------
def exit_code(report: RunReport) -> int:
    """The requirements' code (``conformance_code``); with ``--strict-platform`` a platform
    check that failed or could not be decided makes a 0 or 3 a 1. Without it, platform
    checks never change the code: they have their own line (``platform_line``)."""
    code = conformance_code(report)
    if report.strict_platform and code in (EXIT_OK, EXIT_INCOMPLETE) and platform_failed(report):
        return EXIT_FAILED
    return code


def platform_failed(report: RunReport) -> list[Outcome]:
    """The platform checks that failed or could not be decided."""
    return [o for o in report.platform if o.result.verdict in (Verdict.FAIL, Verdict.ERROR)]


def platform_line(report: RunReport) -> str:
    """``aicp platform checks: 1/2 passed, 1 failed (data_access) — not part of the
    conformance result`` (or, with --strict-platform, that it fails the run)."""
    ran = [o for o in report.platform if o.result.verdict in DECIDED]
    passed = [o for o in ran if o.result.verdict is Verdict.PASS]
    parts = [f"{len(passed)}/{len(ran)} passed"]
    for verdict, word in ((Verdict.FAIL, "failed"), (Verdict.ERROR, "undecided (ERROR)"),
                          (Verdict.SKIP, "not applicable")):
        ids = [o.requirement.id for o in ran if o.result.verdict is verdict]
        if ids:
            parts.append(f"{len(ids)} {word} ({', '.join(ids)})")
    left = len(report.platform) - len(ran)
    if left:
        parts.append(f"{left} not run")
    effect = ("a failed or undecided check fails the run (--strict-platform)"
              if report.strict_platform else
              "not part of the conformance result; --strict-platform makes a failure exit 1")
    return f"aicp platform checks: {', '.join(parts)} — {effect}"


def conformance_code(report: RunReport) -> int:
    """130 interrupted; 1 a MUST failed or could not be decided; 3 a MUST was not exercised;
    else 0. Reports that could not be written do not change it (the closing line says so).

    MANUAL, NOT_RUN and SKIP (not applicable) never fail a run: nothing was violated. But a
    MUST that was not exercised (MANUAL, NOT_RUN) leaves the run short of a conformance
    result, so it cannot be 0. SHOULDs never change the code, nor do platform checks.
    """
    if report.interrupted:
        return EXIT_INTERRUPTED
    musts = [o for o in report.outcomes if o.requirement.level == MUST]
    if any(o.result.verdict in (Verdict.FAIL, Verdict.ERROR) for o in musts):
        return EXIT_FAILED
    if not report.all_musts_ran:
        return EXIT_INCOMPLETE
    return EXIT_OK


def conformant(report: RunReport) -> bool:
    """True only for a run whose requirement verdicts exit ``EXIT_OK``: the one rule a
    report may call "conformant". Platform checks never change it; only under
    ``--strict-platform`` can the exit code be 1 while the platform is conformant."""
    return conformance_code(report) == EXIT_OK


# What the runner makes of a probe ---------------------------------------------------------
def judge(returned: object, evidence: Evidence) -> Result:
    """The verdict a probe's return value earns: zero checks is never a PASS, a PASS with
    a failed check is a FAIL, anything but a Result with a probe verdict is an ERROR."""
    if returned is None:
        return Result(Verdict.ERROR, "the probe returned no result", evidence)
    if not isinstance(returned, Result) or returned.verdict not in DECIDED:
        return Result(Verdict.ERROR, f"the probe returned {returned!r}, not a verdict",
                      evidence)
    if returned.verdict is Verdict.PASS:
        checks = returned.evidence.checks
        if not checks:
            return Result(Verdict.ERROR, "the probe claimed PASS with zero checks run; "
                          "zero checks is never a PASS", returned.evidence)
        failed = [c for c in checks if not c.passed]
        if failed:
            return Result(Verdict.FAIL, f"check failed: {failed[0].name} "
                          f"(observed: {failed[0].observed})", returned.evidence)
    return returned


def said(signal: str) -> str:
    """How a reason names a signal: Ctrl-C for SIGINT (what a person pressed)."""
    return "Ctrl-C" if signal in ("", "SIGINT") else signal


def not_applicable(unmet: list[str], evidence: Evidence) -> Result:
    """A precondition the probe ``needs`` does not hold here: SKIP, never a violation."""
    return Result(Verdict.SKIP, f"not applicable: {'; '.join(unmet)}", evidence)


def timed_out(seconds: float, step: str, evidence: Evidence) -> Result:
    return Result(Verdict.ERROR, f"timed out after {seconds:g}s at step {step}", evidence)


def global_timeout(seconds: float, step: str, evidence: Evidence) -> Result:
    return Result(Verdict.ERROR, f"global timeout {seconds:g}s reached at step {step}",
                  evidence)


def not_started(seconds: float) -> Result:
    return Result(Verdict.ERROR, f"not started: global timeout {seconds:g}s reached")


def interrupted(signal: str, step: str, evidence: Evidence) -> Result:
    return Result(Verdict.ERROR, f"interrupted ({said(signal)}) at step {step}", evidence)


def interrupted_before_start() -> Result:
    return Result(Verdict.NOT_RUN, "interrupted before it started")


def unsettled(signal: str) -> Result:
    """A signal landed between two statements of the runner: the id has no result."""
    return Result(Verdict.ERROR, f"interrupted ({said(signal)})")


# What an outcome means in every report ----------------------------------------------------
def testcase_name(requirement_id: str) -> str:
    """A requirement's testcase in aicp's artifacts: its id, never a name of the working
    group's suite (``TestGangScheduling``...), so no reviewer or validator takes aicp's probe
    for that suite's test (cncf/k8s-ai-conformance#143)."""
    return requirement_id


def producer(report: RunReport) -> str:
    """Who wrote the artifacts, so no reviewer takes them for the upstream suite's output."""
    return f"aicp verify {report.aicp_version}"


def status(outcome: Outcome) -> str:
    """The checklist status; never "Implemented" without a PASS, empty when undecided (a
    person decides)."""
    r = outcome.result
    if r.verdict is Verdict.PASS:
        return "Implemented"
    if r.verdict is Verdict.FAIL:
        return "Partially Implemented" if r.partial else "Not Implemented"
    if r.verdict is Verdict.SKIP:
        return "N/A"
    return ""


def test_result(outcome: Outcome) -> TestResult:
    """``passed``, ``failure``, ``error`` or ``skipped``: only a MUST can fail a test."""
    verdict, must = outcome.result.verdict, outcome.requirement.level == MUST
    if verdict is Verdict.PASS:
        return "passed"
    if must and verdict is Verdict.FAIL:
        return "failure"
    if must and verdict is Verdict.ERROR:
        return "error"
    return "skipped"


def explanation(outcome: Outcome) -> str:
    """One line: what the outcome means for the requirement, and the probe's reason."""
    r, level = outcome.result, outcome.requirement.level or "requirement"
    reason = r.reason or "no reason given"
    if r.verdict is Verdict.PASS:
        return f"Implemented ({level}): {reason}"
    if r.verdict is Verdict.FAIL:
        return f"{status(outcome)} ({level}): {reason}"
    if r.verdict is Verdict.SKIP:
        return f"N/A ({level}, not applicable): {reason}"
    if r.verdict is Verdict.ERROR:
        return f"not decided ({level}, ERROR): {reason}"
    if r.verdict is Verdict.MANUAL:
        return f"manual check ({level}): {reason}"
    return f"not run ({level}): {reason}"
