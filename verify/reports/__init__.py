"""Reports of a run: the terminal view, JSON, JUnit XML and the CNCF checklist.

Every written report lives under ``--output-dir``::

    PRODUCT.yaml              the checklist (``--output checklist``)
    results/results.json      ``--output json``
    results/junit.xml         ``--output junit`` (and always with the checklist: its evidence)
    results/e2e.log           the run log, Go-test style
    evidence/<id>/README.md   the evidence page a reviewer reads (what was created, observed,
                              checked, and the verdict)
    evidence/<id>/            result.json, object dumps and logs a probe kept, traceback.log
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..checklist import Template
from ..verdicts import RunReport

FORMATS = ("json", "junit", "checklist")
__all__ = ["FORMATS", "write"]


def write(report: RunReport, template: Template, formats: list[str], output_dir: Path,
          metadata: dict[str, str] | None = None,
          note: Callable[[str], None] | None = None) -> list[Path]:
    """Write the chosen formats plus the evidence bundle; returns the files written.

    A previous run's reports in ``output_dir`` (the files its manifest lists, nothing else)
    are moved aside first (``note`` is told where), so a submission folder never mixes two
    runs' evidence. Raises ``bundle.ForeignFiles`` when files aicp did not write are where
    it would write, and ``bundle.NotSaved`` naming each file that could not be written.
    """
    from . import bundle, checklist, json, junit

    output_dir = Path(output_dir)
    moved = bundle.move_aside(output_dir)
    if moved and note:
        note(f"reports: the previous run's reports in {output_dir} were moved to {moved}")
    contents: dict[str, str | bytes] = dict(bundle.files(report))
    if "json" in formats:
        contents["results/results.json"] = json.text(report)
    if "junit" in formats or "checklist" in formats:
        contents["results/junit.xml"] = junit.text(report)
    if "checklist" in formats:
        contents["PRODUCT.yaml"] = checklist.text(report, template, metadata)
    return bundle.save(output_dir, contents)
