"""Reports of a run: the terminal view, JSON, JUnit XML and the CNCF checklist.

Every written report lives under ``--output-dir``::

    v<version>/<product>/     with ``--output checklist``: the submission, laid out as a
                              cncf/k8s-ai-conformance pull request adds it; everything below
                              then lives in it (PRODUCT.yaml, results/, evidence/, wg-suite/)
    PRODUCT.yaml              the checklist (``--output checklist``)
    results/aicp-results.json ``--output json``
    results/aicp-junit.xml    ``--output junit`` (and always with the checklist: its evidence)
    results/aicp-verify.log   the run log, Go-test style
    evidence/<id>/README.md   the evidence page a reviewer reads (what was created, observed,
                              checked, how it relates to the working group's suite, verdict)
    evidence/<id>/            result.json, object dumps and logs a probe kept, traceback.log
    evidence/wg-suite/        the page of a run of the working group's suite (``--wg-suite``)
    wg-suite/                 that suite's own files, untouched (only from a passing run)
    results/aicp-manifest.json  every file's SHA-256, the suite commit, aicp's version,
                              the cluster's identity; ``aicp-manifest.dsse.json`` signs it
                              (``--sign-key``), ``aicp-signer.pub.pem`` is the key's public half

aicp's files never carry the names the CNCF hybrid validator parses as the working group's
suite output (``junit.xml``, ``results.json``, ``e2e.log``: cncf/k8s-ai-conformance#141,
scripts/validate.go), and their testcases are named by requirement id, never by an upstream
test name, so neither the validator nor a reviewer can take aicp's probes for that suite
(cncf/k8s-ai-conformance#143: a submitter had to rename its own tool's file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..checklist import Template
from ..images import WG_SUITE
from ..verdicts import RunReport

if TYPE_CHECKING:
    from ..evidence.sign import Signer
    from ..wgsuite.run import SuiteRun

REPOSITORY = WG_SUITE["repository"]

FORMATS = ("json", "junit", "checklist")
JSON_FILE = "results/aicp-results.json"
JUNIT_FILE = "results/aicp-junit.xml"
LOG_FILE = "results/aicp-verify.log"
__all__ = ["FORMATS", "JSON_FILE", "JUNIT_FILE", "LOG_FILE", "public_info", "write"]


def public_info(report: RunReport) -> dict[str, str]:
    """The printed settings a public bundle carries (JSON ``cluster``, JUnit properties,
    the log, the evidence pages): the one place that decides it. A local report and a
    submission are both public: a kubeconfig path says nothing about the platform."""
    return report.published_info


def write(report: RunReport, template: Template, formats: list[str], output_dir: Path,
          metadata: dict[str, str] | None = None,
          note: Callable[[str], None] | None = None, *,
          suite: SuiteRun | None = None, quarantined: str | None = None,
          signer: Signer | None = None, cluster: dict[str, str] | None = None,
          keyless: object | None = None) -> list[Path]:
    """Write the chosen formats plus the evidence bundle; returns the files written.

    A previous run's reports in ``output_dir`` (the files its manifest lists, nothing else)
    are moved aside first (``note`` is told where), so a submission folder never mixes two
    runs' evidence. Raises ``bundle.ForeignFiles`` when files aicp did not write are where
    it would write, and ``bundle.NotSaved`` naming each file that could not be written.

    ``suite``: a run of the working group's suite; its files join the bundle only when it
    passed (a failed run's were ``quarantined`` beside the folder: its name). A checklist is
    checked with both CNCF validator generations before anything is written (``note`` is
    told the outcome), and every bundle gets the digest manifest, signed with ``signer``
    and, with ``keyless`` (an OIDC identity token, or what reads a fresh one:
    ``evidence.keyless.identity_token``), with Sigstore; a
    keyless signature that fails is one ``note`` line and the rest is written.
    """
    from ..evidence import cncf, sign
    from ..wgsuite import report as suite_report
    from . import bundle, checklist, json, junit

    output_dir = Path(output_dir)
    # A submission is written as a cncf/k8s-ai-conformance pull request lays it out:
    # ``v<version>/<product>/PRODUCT.yaml`` and the files it links, relative to it.
    prefix = (submission_folder(template.version, cncf.product_name(metadata))
              if "checklist" in formats else "")
    moved = bundle.move_aside(output_dir)
    if moved and note:
        note(f"reports: the previous run's reports in {output_dir} were moved to {moved}")
    contents: dict[str, str | bytes] = dict(bundle.files(report, suite, quarantined))
    if "json" in formats:
        contents[JSON_FILE] = json.text(report)
    if "junit" in formats or "checklist" in formats:
        contents[JUNIT_FILE] = junit.text(report)
    found = None
    if "checklist" in formats:
        contents["PRODUCT.yaml"] = checklist.text(report, template, metadata,
                                                  suite_report.links(suite))
        contents.update(suite_report.files(suite))
        found = cncf.check(contents, template.text, template.version,
                           cncf.product_name(metadata))
        if note:
            note(submission_line(found, template.version, cncf.product_name(metadata)))
    s = report.settings
    contents.update(sign.signed_files(
        contents, signer, aicp_version=report.aicp_version, run_id=s.run_id,
        checklist_version=s.checklist_version, cluster=cluster or {},
        suite=None if suite is None else {"repository": REPOSITORY, "commit": suite.commit,
                                          "passed": suite.passed, "mode": suite.mode,
                                          "image": suite.image or None,
                                          "flags": {f.name: f.shown for f in suite.flags}},
        submission_check=found))
    if keyless is not None:
        from ..evidence import keyless as sigstore

        try:
            token = keyless() if callable(keyless) else keyless
            contents[sign.SIGSTORE_BUNDLE] = sigstore.sign(
                sign.statement(str(contents[sign.MANIFEST])), token)
            if note:
                note(f"signing: Sigstore bundle {sign.SIGSTORE_BUNDLE} written")
        except sigstore.KeylessError as exc:
            if note:
                note(f"signing: {exc}; no Sigstore bundle written")
    return bundle.save(output_dir, {prefix + name: data for name, data in contents.items()})


def submission_folder(version: str, product: str) -> str:
    """Where a submission goes under ``--output-dir``: ``v<version>/<product>/``, the
    folder a cncf/k8s-ai-conformance pull request adds (its README, "How to submit")."""
    return f"v{version}/{product}/"


def submission_line(found: dict[str, list[str]], version: str, product: str) -> str:
    """One line on what both CNCF validator generations say of the submission."""
    bad = {gen: errors for gen, errors in found.items() if errors}
    where = (f"written as {submission_folder(version, product)} (the folder a "
             "cncf/k8s-ai-conformance pull request adds)")
    if not bad:
        return (f"submission: passes both CNCF validator generations offline, {where} "
                "(vendorName membership and URLs are not checked offline)")
    gen, errors = next(iter(bad.items()))
    return (f"submission: NOT accepted by the CNCF validator ({', '.join(bad)}: "
            f"{sum(len(e) for e in bad.values())} errors; first, {gen}: {errors[0]})")
