"""The working group's own test suite (kubernetes-sigs/ai-conformance ``test/``), run for the
user beside aicp's probes, and what a reviewer is told about how the two relate.

aicp's probes are aicp's: their cases differ from the suite's (stricter in places, different
in others), so aicp never names its results after the suite's tests or files. The suite's
own artifacts go into the submission untouched, under ``wg-suite/``, linked only from the
three requirement ids the CNCF hybrid validator maps to a suite test (``MAPPED``).
"""

from __future__ import annotations

from ..images import WG_SUITE

REPOSITORY, COMMIT, PACKAGE = WG_SUITE["repository"], WG_SUITE["commit"], WG_SUITE["package"]
FOLDER = "wg-suite"  # inside the submission: the suite's files, exactly as it wrote them
ARTIFACTS = ("results.json", "e2e.log", "junit.xml")

# The ids cncf/k8s-ai-conformance scripts/validate.go (hybrid verification, PR #141) maps to
# a suite test when an evidence entry has no #fragment. Read only to judge the suite's own
# output; aicp's reports never carry these names.
MAPPED = {
    "secure_accelerator_access": "TestSecureAcceleratorAccess",
    "gang_scheduling": "TestGangScheduling",
    "cluster_autoscaling": "TestAcceleratorClusterAutoscaling",
}
# Requirements the suite also tests without the validator mapping them: driver_runtime_management
# (test/README.md "Test Cases Covered", at 6fef273b) and workload_sandboxing (the
# ``sandbox-`` flags of test/main_test.go at the pinned commit).
ALSO_TESTED = frozenset({"driver_runtime_management", "workload_sandboxing"})


def relation(requirement_id: str) -> str:
    """One paragraph for the evidence page: how aicp's check relates to the suite's."""
    suite = f"the working group's suite ({REPOSITORY.removeprefix('https://')} `test/`)"
    own = ("The checks listed on this page are aicp's own probe, written for aicp: its cases "
           "and thresholds are not the suite's, and its result is not the suite's result.")
    if requirement_id in MAPPED:
        return (f"{own} {suite.capitalize()} has its own test for this requirement, and the "
                "CNCF hybrid validator checks that test for this id. Its artifacts are added "
                f"only by `aicp verify --wg-suite` (under `{FOLDER}/`, untouched, linked from "
                "this id when that test passed).")
    if requirement_id in ALSO_TESTED:
        return (f"{own} {suite.capitalize()} also tests this requirement, but the CNCF "
                "validator maps no suite test to this id, so its artifacts are not linked "
                "here.")
    return f"{own} {suite.capitalize()} has no test for this requirement."
