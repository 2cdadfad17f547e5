"""What a suite run adds to the reports: its page, its files and where they are linked."""

from __future__ import annotations

from . import ARTIFACTS, COMMIT, FOLDER, MAPPED, REPOSITORY
from .run import SuiteRun

PAGE = f"evidence/{FOLDER}/README.md"


def links(run: SuiteRun | None) -> dict[str, list[str]]:
    """Requirement id -> the suite's files it links: only the three mapped ids, only when
    the whole run passed and that id's test passed (a skipped test linked from an
    Implemented requirement is an error in the hybrid validator)."""
    if run is None or not run.passed:
        return {}
    files = [f"{FOLDER}/{name}" for name in ARTIFACTS if name in run.artifacts]
    out = {}
    for rid in MAPPED:
        found = run.mapped(rid)
        if found and found.result == "passed":
            out[rid] = [PAGE, *files]
    return out


def files(run: SuiteRun | None) -> dict[str, str | bytes]:
    """The submission's files from a passing run (none from a failing one)."""
    if run is None or not run.passed:
        return {}
    return {PAGE: page(run), **{f"{FOLDER}/{n}": run.artifacts[n] for n in ARTIFACTS
                                if n in run.artifacts}}


def requirement_line(run: SuiteRun | None, requirement_id: str,
                     quarantined: str | None = None) -> str | None:
    """One line for a mapped id's evidence page: the suite's result for its test, by
    requirement (the suite's test names stay in the suite's files)."""
    if run is None or requirement_id not in MAPPED:
        return None
    found = run.mapped(requirement_id)
    if not run.passed:
        where = (f" in `{quarantined}` beside the reports folder (--output-dir)"
                 if quarantined else "")
        return (f"The suite's run failed ({len(run.failed)} failing tests); its files are "
                f"kept out of this submission{where}.")
    if found is None:
        return "The suite ran but reported no result for this requirement's test."
    if found.result == "skipped":
        return (f"The suite skipped this requirement's test: {found.reason or 'no reason'}. "
                "Its files are not linked from this id.")
    return (f"The suite's test for this requirement passed; its files are linked: "
            f"[{FOLDER}/](../../{FOLDER}/).")


def page(run: SuiteRun, quarantined: bool = False) -> str:
    """The suite run as a reviewer reads it: commit, command, each flag and its source."""
    results = [t.result for t in run.tests.values()]
    lines = ["# The working group's suite, run by aicp", "",
             f"- Suite: {REPOSITORY} `test/` at commit `{run.commit}` (pinned by aicp: "
             f"{COMMIT})",
             f"- Command: `{run.command}`",
             ("- Ran: in the cluster as a Job (`--wg-suite-mode job`) from image "
              f"`{run.image}`, as its own ServiceAccount" if run.mode == "job" else
              "- Ran: locally, with the Go toolchain of the machine that ran aicp "
              "(`--wg-suite-mode local`)"),
             f"- go test exit code {run.returncode}, took {run.duration:.1f} s",
             f"- Tests: {results.count('passed')} passed, {results.count('failed')} failed, "
             f"{results.count('skipped')} skipped",
             "- Its files (" + ", ".join(f"`{n}`" for n in ARTIFACTS if n in run.artifacts)
             + ") are the suite's own output, not aicp's, copied untouched"
             + (", and kept out of the submission because the run failed." if quarantined
                else f" into `{FOLDER}/`."), ""]
    lines += ["## Flags", "", "| flag | value | where it came from |", "| --- | --- | --- |"]
    lines += [f"| -{f.name} | {f.shown} | {f.source} |" for f in run.flags]
    lines += ["", "## Requirements the CNCF validator maps to a suite test", "",
              "| requirement | suite result | reason |", "| --- | --- | --- |"]
    for rid in MAPPED:
        found = run.mapped(rid)
        lines.append(f"| {rid} | {found.result if found else 'not run'} | "
                     f"{(found.reason if found else '') or '—'} |")
    if run.failed:
        lines += ["", f"{len(run.failed)} tests failed: see `e2e.log` beside this page (the "
                  "suite's own names and messages)."]
    if run.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in run.notes]]
    return "\n".join(lines) + "\n"
