"""Reports of a run: the terminal view, JSON, JUnit XML and the CNCF checklist.

Every written report lives under ``--output-dir``::

    PRODUCT.yaml              the checklist (``--output checklist``)
    results/results.json      ``--output json``
    results/junit.xml         ``--output junit`` (and always with the checklist: its evidence)
    results/e2e.log           the run log, Go-test style
    evidence/<id>/            result.json, object dumps and logs a probe kept, traceback.log
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("json", "junit", "checklist")


def testcase_name(requirement_id: str) -> str:
    """``secure_accelerator_access`` → ``TestSecureAcceleratorAccess`` (JUnit, anchors)."""
    return "Test" + "".join(part.capitalize() for part in requirement_id.split("_"))


def write(report, template, formats: list[str], output_dir: Path,
          metadata: dict[str, str] | None = None) -> list[Path]:
    """Write the chosen formats plus the evidence bundle; returns the files written."""
    from . import bundle, checklist, json, junit

    output_dir = Path(output_dir)
    written = bundle.write(report, output_dir)
    if "json" in formats:
        written.append(json.write(report, output_dir / "results" / "results.json"))
    if "junit" in formats or "checklist" in formats:
        written.append(junit.write(report, output_dir / "results" / "junit.xml"))
    if "checklist" in formats:
        written.append(checklist.write(report, template, output_dir / "PRODUCT.yaml",
                                       metadata))
    return written
