"""What one requirement's outcome means in every report: test name, test result, status.

The CNCF program reads a run two ways: the checklist (``status`` per requirement) and, from
1.37 on, test artifacts (``junit.xml``, ``e2e.log``) where any failing test rejects the
whole submission (cncf/k8s-ai-conformance#141, "Validate hybrid verification test
artifacts"). So a test fails only where the run itself fails: a MUST that failed or could
not be decided. A SHOULD the platform leaves out is "Not Implemented" in the checklist and
a skipped test with that reason; not applicable, manual and not-run requirements are
skipped with theirs. ``RunReport.exit_code`` follows the same rule.
"""

from __future__ import annotations

from importlib import metadata

from ..result import Verdict

# The upstream suite's names for the three requirements the hybrid validator maps to a
# test when an evidence entry has no #fragment (cncf/k8s-ai-conformance#141; the names of
# kubernetes-sigs/ai-conformance test/, as in the junit.xml of cncf/k8s-ai-conformance#144).
UPSTREAM_NAMES = {
    "secure_accelerator_access": "TestSecureAcceleratorAccess",
    "gang_scheduling": "TestGangScheduling",
    "cluster_autoscaling": "TestAcceleratorClusterAutoscaling",
}


def aicp_version() -> str:
    try:
        return metadata.version("aicp")
    except metadata.PackageNotFoundError:  # a checkout run without installing it
        return "unknown"


def producer() -> str:
    """Who wrote the artifacts, so no reviewer takes them for the upstream suite's output."""
    return f"aicp verify {aicp_version()}"


def testcase_name(requirement_id: str) -> str:
    """``gang_scheduling`` → ``TestGangScheduling``; the upstream name where one is mapped."""
    return UPSTREAM_NAMES.get(requirement_id) or "Test" + "".join(
        part.capitalize() for part in requirement_id.split("_"))


def status(outcome) -> str:
    """The checklist status; never "Implemented" without a PASS, empty when undecided."""
    r = outcome.result
    if r.verdict is Verdict.PASS:
        return "Implemented"
    if r.verdict is Verdict.FAIL:
        return "Partially Implemented" if r.partial else "Not Implemented"
    if r.verdict is Verdict.SKIP:
        return "N/A"
    return ""


def test_result(outcome) -> str:
    """``passed``, ``failure``, ``error`` or ``skipped``: only a MUST can fail a test."""
    verdict, must = outcome.result.verdict, outcome.requirement.level == "MUST"
    if verdict is Verdict.PASS:
        return "passed"
    if must and verdict is Verdict.FAIL:
        return "failure"
    if must and verdict is Verdict.ERROR:
        return "error"
    return "skipped"


def explanation(outcome) -> str:
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
