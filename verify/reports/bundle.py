"""The evidence bundle: the run log and, per requirement, what its probe observed.

aicp's own platform checks (``verify/checks/``) have theirs under
``evidence/platform/<id>/``, pages that say they are no part of the CNCF checklist; they
never appear in ``results/e2e.log`` (a checklist artifact, read test by test).

``evidence/<id>/README.md`` is the page a reviewer reads without tools (as kOps ships
``tests/<Test>/output.md`` for its AI-conformance scenario): what the probe created (kinds,
names, images by digest), what it observed with timings, each check with what was expected
and what was seen, the verdict and why. ``result.json`` beside it is the same, for
machines; object dumps and logs a probe kept sit next to them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import verdicts
from ..verdicts import DECIDED, Outcome, RunReport
from ..wgsuite import relation
from . import JUNIT_FILE, LOG_FILE, public_info

if TYPE_CHECKING:
    from ..wgsuite.run import SuiteRun

PAGE = "README.md"
# What a run writes into --output-dir: nothing else there is touched.
OWN = ("PRODUCT.yaml", "results", "evidence", "wg-suite")
# The bundle's manifest: every file the run wrote (or set out to write), one a line, relative
# to --output-dir. Only what it lists is ever moved aside; anything else where aicp writes is
# the user's, and aicp refuses to write there.
MANIFEST = ".aicp-files"
# A submission's folder (``--output checklist``): v<version>/<product>/, everything in it
# aicp's (reports.submission_folder).
SUBMISSION = re.compile(r"^v\d+\.\d+$")


def _own(name: str) -> bool:
    """A path where aicp writes: under ``OWN``, or anywhere in a submission folder."""
    parts = name.split("/")
    if SUBMISSION.match(parts[0]):
        return len(parts) > 2
    return parts[0] in OWN


def _submissions(output_dir: Path) -> list[Path]:
    """The ``v<version>/<product>/`` folders in ``output_dir``."""
    return [product for version in sorted(output_dir.iterdir())
            if version.is_dir() and not version.is_symlink() and SUBMISSION.match(version.name)
            for product in sorted(version.iterdir())
            if product.is_dir() and not product.is_symlink()]


class ForeignFiles(Exception):
    """Files aicp did not write sit where it would write: one line naming them and the fix."""


class NotSaved(Exception):
    """Some reports could not be written; ``written`` and ``failed`` (path, why) say which."""

    def __init__(self, output_dir: Path, written: list[Path], failed: list[tuple[str, str]]):
        self.output_dir, self.written, self.failed = output_dir, written, failed
        super().__init__(f"could not write {', '.join(name for name, _ in failed)} "
                         f"({'; '.join(dict.fromkeys(why for _, why in failed))})")


def files(report: RunReport, suite: SuiteRun | None = None,
          quarantined: str | None = None) -> dict[str, str]:
    """The bundle's files (the log and the evidence), relative path -> content; ``suite``
    (a run of the working group's suite) and where its failed files went are told on the
    pages of the requirements it maps."""
    out = {LOG_FILE: _e2e_log(report)}
    for outcome in report.outcomes:
        if not has_evidence(outcome):
            continue
        result = outcome.result
        base = f"evidence/{outcome.requirement.id}"
        out[f"{base}/{PAGE}"] = evidence_page(report, outcome, suite, quarantined)
        out[f"{base}/result.json"] = json.dumps({"id": outcome.requirement.id,
                                                 **result.to_dict()}, indent=2,
                                                default=str) + "\n"
        for name in _artifact_names(outcome):
            out[f"{base}/{name}"] = result.evidence.artifacts[_artifact_key(outcome, name)]
        if result.traceback:
            out[f"{base}/traceback.log"] = result.traceback
    for outcome in report.platform:
        if not has_evidence(outcome):
            continue
        result = outcome.result
        base = f"{PLATFORM_DIR}/{outcome.requirement.id}"
        out[f"{base}/{PAGE}"] = platform_page(report, outcome)
        out[f"{base}/result.json"] = json.dumps({"id": outcome.requirement.id,
                                                 "platformCheck": True,
                                                 **result.to_dict()}, indent=2,
                                                default=str) + "\n"
        for name in _artifact_names(outcome):
            out[f"{base}/{name}"] = result.evidence.artifacts[_artifact_key(outcome, name)]
        if result.traceback:
            out[f"{base}/traceback.log"] = result.traceback
    return out


PLATFORM_DIR = "evidence/platform"


def platform_page(report: RunReport, outcome: Outcome) -> str:
    """The Markdown page of one aicp platform check: the same evidence as a requirement's
    page (``evidence_page``), introduced as aicp's own check, with no checklist status."""
    req, r = outcome.requirement, outcome.result
    page = evidence_page(report, outcome).split("\n")
    # The requirement page's head names the checklist, its status and its JUnit test; a
    # platform check has none of them: keep everything from "## Cluster"/"## What was
    # created" on, under a head of its own.
    start = next(i for i, line in enumerate(page) if line.startswith("## "))
    effect = ("fails the run (--strict-platform)" if report.strict_platform else
              "does not change the exit code or `conformant` (pass --strict-platform to "
              "make it)")
    head = [f"# aicp platform check {req.id}: {r.verdict.value}", "",
            f"{req.description or req.id} ({req.category}). This is aicp's own check "
            "beyond the Kubernetes AI Conformance checklist: it is not in PRODUCT.yaml, "
            f"{JUNIT_FILE} or {LOG_FILE}.", "",
            f"- Verdict: **{r.verdict.value}**: {r.reason or 'no reason given'}",
            f"- Effect on the run: a failed or undecided check {effect}",
            f"- Produced by {verdicts.producer(report)}, run `{report.settings.run_id}`, "
            f"started {_utc(r.started)}, took {r.duration:.2f} s.", ""]
    body = [line for line in page[start:] if JUNIT_FILE not in line]
    return "\n".join(head + body)


def save(output_dir: Path, contents: dict[str, str | bytes]) -> list[Path]:
    """Write ``contents`` under ``output_dir``, the manifest first, each file atomically.

    A file that cannot be written (a full disk) leaves no partial copy and does not stop
    the others; ``NotSaved`` then names each one. Without the manifest nothing is written.
    """
    output_dir = Path(output_dir)
    names = list(contents)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        _atomic(output_dir / MANIFEST, "".join(f"{name}\n" for name in names))
    except OSError as exc:
        raise NotSaved(output_dir, [], [(name, _why(exc)) for name in names]) from None
    written, failed = [], []
    for name in names:
        path = output_dir / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic(path, contents[name])
        except OSError as exc:
            failed.append((name, _why(exc)))
        else:
            written.append(path)
    if failed:
        raise NotSaved(output_dir, written, failed)
    return written


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _fill(handle, data: bytes) -> None:
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def _atomic(path: Path, content: str | bytes) -> None:
    """A temporary file in the same folder, then ``os.replace``: all or nothing."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            _fill(handle, data)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _manifest(output_dir: Path) -> list[str]:
    """The files the manifest lists, kept only where aicp writes (never ``..``)."""
    try:
        lines = (output_dir / MANIFEST).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [line for line in lines
            if line and not line.startswith("/") and ".." not in line.split("/")
            and _own(line)]


def foreign_files(output_dir: Path) -> list[str]:
    """Files where aicp writes (``OWN``) that no aicp manifest there lists."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    ours = set(_manifest(output_dir))
    found = _under_own(output_dir)
    return [f for f in found if f not in ours and not _leftover_temp(f, ours)]


def _under_own(output_dir: Path) -> list[str]:
    """Every file (or link, or PRODUCT.yaml whatever it is) where aicp writes."""
    found = []
    for name in OWN:
        path = output_dir / name
        if path.is_dir() and not path.is_symlink() and name != "PRODUCT.yaml":
            found += [p.relative_to(output_dir).as_posix() for p in sorted(path.rglob("*"))
                      if p.is_symlink() or not p.is_dir()]
        elif path.exists() or path.is_symlink():
            found.append(name)
    for product in _submissions(output_dir):  # all of a submission folder is aicp's
        found += [p.relative_to(output_dir).as_posix() for p in sorted(product.rglob("*"))
                  if p.is_symlink() or not p.is_dir()]
    return found


def _leftover_temp(name: str, ours: set[str]) -> bool:
    """A temporary file ``_atomic`` left beside a listed file (the run was killed)."""
    folder, _, base = name.rpartition("/")
    return (base.startswith(".") and base.endswith(".tmp")
            and any(base.startswith(f".{Path(o).name}.") and o.rpartition("/")[0] == folder
                    for o in ours))


def refusal(output_dir: Path, foreign: list[str]) -> str:
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                      else "")
    return (f"--output-dir {output_dir} holds files aicp did not write: {shown}: move them "
            "out of it or choose another --output-dir")


def has_evidence(outcome: Outcome) -> bool:
    """A requirement whose probe ran has an evidence folder; manual and not-run ones none."""
    return outcome.result.verdict in DECIDED


def evidence_files(outcome: Outcome) -> list[str]:
    """The bundle files for one requirement, relative to the output dir, the page first."""
    base = f"evidence/{outcome.requirement.id}"
    names = [PAGE, "result.json", *_artifact_names(outcome)]
    if outcome.result.traceback:
        names.append("traceback.log")
    return [f"{base}/{name}" for name in names]


def _artifact_names(outcome: Outcome) -> list[str]:
    # A probe names files, never paths; the page and result.json keep their own names.
    reserved = {PAGE, "result.json", "traceback.log"}
    names = []
    for name in outcome.result.evidence.artifacts:
        base = Path(name).name
        if base and base not in reserved and base not in names:
            names.append(base)
    return names


def _artifact_key(outcome: Outcome, name: str) -> str:
    return next(k for k in outcome.result.evidence.artifacts if Path(k).name == name)


def move_aside(output_dir: Path) -> Path | None:
    """Move the files a previous run's manifest lists out of ``output_dir``; returns where.

    They go to a sibling ``<name>.previous-<UTC time of that run>`` folder: inside the
    folder they would be part of the submission, and deleting them is not ours to do.
    Anything else stays where it is; a file aicp did not write where it would write raises
    ``ForeignFiles`` and nothing is moved.
    """
    output_dir = Path(output_dir)
    foreign = foreign_files(output_dir)
    if foreign:
        raise ForeignFiles(refusal(output_dir, foreign))
    manifest = output_dir / MANIFEST
    if not manifest.is_file():
        return None
    ours = _manifest(output_dir)
    top = [p.name for p in output_dir.iterdir() if p.name.endswith(".tmp")]
    temps = [name for name in [*_under_own(output_dir), *top]
             if _leftover_temp(name, {*ours, MANIFEST})]
    listed = [name for name in [*ours, *temps]
              if (output_dir / name).is_file() or (output_dir / name).is_symlink()]
    when = max((output_dir / name).lstat().st_mtime for name in [MANIFEST, *listed])
    base = output_dir.resolve()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    target = base.with_name(f"{base.name}.previous-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}.previous-{stamp}-{n}")
    target.mkdir(parents=True)
    for name in [*listed, MANIFEST]:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(output_dir / name), str(target / name))
    folders = [*OWN, *sorted({p.parent.relative_to(output_dir).as_posix()
                              for p in _submissions(output_dir)})]
    for name in folders:  # the folders those files leave empty
        folder = output_dir / name
        if folder.is_dir() and not folder.is_symlink():
            for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
                if not any(sub.iterdir()):
                    sub.rmdir()
            if not any(folder.iterdir()):
                folder.rmdir()
    return target


# The e2e log ------------------------------------------------------------------------------
# Written the way ``go test -v`` prints (``=== RUN``, ``--- PASS/FAIL/SKIP: Name (1.23s)``,
# then ``PASS``/``FAIL``): the CNCF hybrid validator parses a referenced e2e.log that way
# (cncf/k8s-ai-conformance#141). Output lines are indented, and a line that could read as a
# result line is quoted, so a probe's log can never add or change a test result.
_RESULT_LIKE = re.compile(r"^\s*(---|===) ")
_WORD = {"passed": "PASS", "failure": "FAIL", "error": "FAIL", "skipped": "SKIP"}


def _out(text: str) -> str:
    return f"    {'| ' if _RESULT_LIKE.match(text) else ''}{text}"


def _e2e_log(report: RunReport) -> str:
    s = report.settings
    lines = [f"{verdicts.producer(report)}, run {s.run_id}: checklist {s.checklist_version} "
             "(written by aicp, not by the kubernetes-sigs/ai-conformance suite)"]
    lines += [f"{key}: {value}" for key, value in public_info(report).items()]
    lines.append(f"exit code {report.exit_code}")
    failed = False
    for outcome in report.outcomes:
        result, name = outcome.result, verdicts.testcase_name(outcome.requirement.id)
        word = _WORD[verdicts.test_result(outcome)]
        failed = failed or word == "FAIL"
        lines.append(f"=== RUN   {name}")
        lines.append(_out(f"requirement {outcome.requirement.id} "
                          f"({outcome.requirement.level})"))
        for step in result.evidence.steps:
            took = "" if step.duration is None else f" {step.duration:.2f}s"
            lines.append(_out(f"step {step.name}{took}" + (f" [{step.error}]" if step.error
                                                             else "")))
        lines += [_out(line) for line in result.evidence.log]
        lines += [_out(f"check {'ok' if c.passed else 'FAILED'}: {c.name}"
                       + (f" ({c.observed})" if c.observed else ""))
                  for c in result.evidence.checks]
        lines.append(f"--- {word}: {name} ({result.duration:.2f}s)")
        lines.append(_out(verdicts.explanation(outcome)))
    if report.leftovers:
        lines.append(f"cleanup: still present after the wait: {', '.join(report.leftovers)}")
    lines += [f"cleanup: {e}" for e in report.cleanup_errors]
    lines.append("FAIL" if failed else "PASS")
    lines.append(f"{'FAIL' if failed else 'ok  '}\taicp-verify\t{report.duration:.3f}s")
    return "\n".join(lines) + "\n"


# The evidence page ------------------------------------------------------------------------
def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(str(text).split())
    return (text[:300] + "…" if len(text) > 300 else text).replace("|", "\\|") or "—"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def evidence_page(report: RunReport, outcome: Outcome, suite: SuiteRun | None = None,
                  quarantined: str | None = None) -> str:
    """The Markdown page for one requirement: readable as plain text too."""
    from ..wgsuite.report import requirement_line

    s, req, r = report.settings, outcome.requirement, outcome.result
    ev = r.evidence
    name = verdicts.testcase_name(req.id)
    status = verdicts.status(outcome) or "left empty (not decided: a person decides)"
    lines = [f"# {req.id}: {r.verdict.value}", "",
             f"Requirement ({req.level}, {req.category}, Kubernetes AI Conformance "
             f"checklist {s.checklist_version}):", "",
             *[f"> {line}" for line in (req.description.strip() or req.id).splitlines()], "",
             f"- Verdict: **{r.verdict.value}**: {r.reason}",
             f"- Checklist status: {status}",
             f"- Why: {verdicts.explanation(outcome)}",
             f"- Test: `{name}` in `{JUNIT_FILE}` and `{LOG_FILE}` "
             f"({verdicts.test_result(outcome)})",
             f"- Produced by {verdicts.producer(report)}, run `{s.run_id}`, started "
             f"{_utc(r.started)}, took {r.duration:.2f} s; these are aicp's own probes, not "
             "the kubernetes-sigs/ai-conformance suite.", ""]
    lines += ["## aicp's checks and the working group's suite", "", relation(req.id)]
    said = requirement_line(suite, req.id, quarantined)
    if said:
        lines += ["", said]
    lines.append("")
    if report.info:
        lines += ["## Cluster", ""]
        # Images are listed per object below.
        lines += [f"- {key}: {_cell(value)}" for key, value in public_info(report).items()
                  if not key.startswith("image ")]
        lines.append("")
    lines += ["## What was created", ""]
    if ev.objects:
        lines += ["| kind | apiVersion | namespace | name | images |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {o.kind} | {o.api_version} | {o.namespace or '(cluster)'} | {o.name} | "
                  f"{_cell(', '.join(o.images)) if o.images else '—'} |" for o in ev.objects]
        lines.append("")
        label = f"Every object carries the label `aicp.dev/verify-run={s.run_id}`"
        # Deleted is said only when it was seen: after a lost API server some deletes
        # failed and some objects may be there still (never "deleted" and "present" at once).
        if report.leftovers:
            lines.append(f"{label}; aicp asked for their deletion after the probe, but "
                         f"these were still present after the wait: "
                         f"{', '.join(report.leftovers)} (`aicp verify cleanup --run-id "
                         f"{s.run_id}` deletes them).")
        elif report.cleanup_errors:
            lines.append(f"{label}; aicp asked for their deletion after the probe, but "
                         "cleanup reported errors, so some may still be present "
                         f"(`aicp verify cleanup --run-id {s.run_id}` finds them; the errors "
                         f"are in {LOG_FILE}).")
        else:
            lines.append(f"{label} and was deleted after the probe.")
    else:
        lines.append("Nothing: this probe only read the cluster.")
    lines.append("")
    images = [i for o in ev.objects for i in o.images]
    if images:
        lines += ["## Images", ""]
        lines += [f"- `{image}`" for image in dict.fromkeys(images)]
        lines.append("")
    lines += ["## Steps and timings", ""]
    if ev.steps:
        lines += ["| step | started | took | outcome |", "| --- | --- | --- | --- |"]
        lines += [f"| {st.name} | {_utc(st.started)} | "
                  f"{'—' if st.duration is None else f'{st.duration:.2f} s'} | "
                  f"{_cell(st.error) if st.error else 'done'} |" for st in ev.steps]
    else:
        lines.append("No timed step was recorded.")
    lines += ["", "## Checks", ""]
    if ev.checks:
        lines += ["| expected | observed | result |", "| --- | --- | --- |"]
        lines += [f"| {_cell(c.name)} | {_cell(c.observed)} | "
                  f"{'ok' if c.passed else 'FAILED'} |" for c in ev.checks]
    else:
        lines.append(f"No check was recorded: the verdict rests on the reason above "
                     f"({r.verdict.value}).")
    if ev.observations:
        lines += ["", "## Observations", ""]
        lines += [f"- {key}: {_cell(value)}" for key, value in ev.observations.items()]
    if ev.log:
        lines += ["", "## Log", "", "```text", *ev.log, "```"]
    files = [f for f in evidence_files(outcome) if not f.endswith(f"/{PAGE}")]
    lines += ["", "## Files", ""]
    lines += [f"- [{Path(f).name}]({Path(f).name})" for f in files]
    lines += [f"- [{JUNIT_FILE}](../../{JUNIT_FILE}), [{LOG_FILE}](../../{LOG_FILE})", ""]
    return "\n".join(lines)
