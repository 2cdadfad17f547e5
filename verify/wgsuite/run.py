"""Run the suite with the user's Go toolchain and keep what it wrote, untouched.

``go test -v -timeout 75m ./test -json <flags>`` in a checkout of the pinned commit, as the
suite's README ("Generating Test Artifacts") and GKE's v1.37 submission run it:
``results.json`` is go test's stdout byte for byte; ``e2e.log`` is the concatenation of its
``Output`` fields (what ``jq -j '.Output // empty'`` gives, the shape of GKE's e2e.log);
``junit.xml`` is gotestsum's rendering of results.json (``gotestsum --junitfile junit.xml
--raw-command -- cat results.json``, as GKE made it), written only when gotestsum is on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import COMMIT, MAPPED, PACKAGE, REPOSITORY
from .flags import Flag

# The suite's README recommends -timeout 75m or more: scale-up and scale-down take long.
GO_TIMEOUT_MINUTES = 75


class SuiteError(Exception):
    """The suite cannot be run as asked: one line naming the fix (exit 2)."""


@dataclass
class TestOutcome:
    result: str  # passed, failed, skipped
    reason: str = ""  # for a skip or a failure: the suite's last output line for the test


@dataclass
class SuiteRun:
    """One suite run: its flags, exit status, per-test results and its files (bytes)."""

    commit: str
    flags: list[Flag]
    command: str  # as published: local paths left out
    returncode: int
    duration: float
    tests: dict[str, TestOutcome] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    stderr: str = ""
    notes: list[str] = field(default_factory=list)
    mode: str = "local"  # local (the user's go) or job (in the cluster, ``job.run_job``)
    image: str = ""  # the image a job ran

    @property
    def failed(self) -> list[str]:
        return [name for name, t in self.tests.items() if t.result == "failed"]

    @property
    def passed(self) -> bool:
        """Nothing failed and go test agreed: only such a run's files may be submitted."""
        return self.returncode == 0 and not self.failed and bool(self.tests)

    def mapped(self, requirement_id: str) -> TestOutcome | None:
        name = MAPPED.get(requirement_id)
        return self.tests.get(name) if name else None


def checkout_commit(source: Path) -> str:
    """The commit a git checkout has out, read from ``.git`` (no git binary needed)."""
    git = source / ".git"
    if git.is_file():  # a worktree: "gitdir: <path>"
        git = Path(git.read_text().split(":", 1)[1].strip())
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        raise SuiteError(f"--wg-suite-source {source} is not a git checkout: clone it with "
                         f"`git clone {REPOSITORY} {source} && git -C {source} checkout "
                         f"{COMMIT}`") from None
    if not head.startswith("ref: "):
        return head
    ref = head.removeprefix("ref: ")
    if (git / ref).is_file():
        return (git / ref).read_text().strip()
    for line in (git / "packed-refs").read_text().splitlines() if (
            git / "packed-refs").is_file() else []:
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    return ""


def preflight(source: Path | None) -> tuple[Path, str]:
    """The checkout and the go binary, checked before any probe runs."""
    if source is None:
        raise SuiteError(f"--wg-suite local needs --wg-suite-source DIR, a checkout of "
                         f"{REPOSITORY} at {COMMIT} (`git clone {REPOSITORY} DIR && git -C "
                         f"DIR checkout {COMMIT}`)")
    source = Path(source).expanduser()
    commit = checkout_commit(source)
    if commit != COMMIT:
        raise SuiteError(f"--wg-suite-source {source} has {commit or 'no commit'} checked "
                         f"out, not the pinned {COMMIT}: run `git -C {source} checkout "
                         f"{COMMIT}`")
    if not (source / PACKAGE).is_dir():
        raise SuiteError(f"--wg-suite-source {source} has no {PACKAGE} folder: is it "
                         f"{REPOSITORY}?")
    go = shutil.which("go")
    if go is None:
        raise SuiteError("--wg-suite local needs Go on PATH (https://go.dev/dl/), or run "
                         "the suite in the cluster")
    return source, go


def kubeconfig_for(data: dict, context: str | None) -> dict:
    """The run's kubeconfig with its context made current: the suite has no -context flag
    (it loads the current context, test/util_test.go ``buildRESTConfig``)."""
    out = dict(data)
    if context:
        out["current-context"] = context
    return out


def run_local(source: Path, go: str, flags: list[Flag], kubeconfig: dict,
              context: str | None = None, kubeconfig_file: Path | None = None) -> SuiteRun:
    """Run the suite. The user's kubeconfig file is passed as it is when its current
    context is the run's (its relative file paths then still resolve); otherwise (a stack's
    kubeconfig, another context) a copy with the run's context made current is written to a
    private temporary file."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aicp-wg-suite-") as tmp:
        path = kubeconfig_file
        if path is None or (context and kubeconfig.get("current-context") != context):
            path = Path(tmp) / "kubeconfig"
            path.touch(mode=0o600)
            path.write_text(yaml.safe_dump(kubeconfig_for(kubeconfig, context)))
        given = [*flags, Flag("kubeconfig", str(path), "the run's kubeconfig and context",
                              local=True)]
        args = ["test", "-v", "-timeout", f"{GO_TIMEOUT_MINUTES}m", PACKAGE, "-json",
                *[f.arg for f in given if f.value is not None]]
        try:
            proc = subprocess.run([go, *args], cwd=source, capture_output=True,
                                  timeout=GO_TIMEOUT_MINUTES * 60 + 300, check=False)
        except subprocess.TimeoutExpired as exc:
            proc = subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or b"",
                                               exc.stderr or b"")
    shown = " ".join(["go", *args[:6], *[f"-{f.name}={f.shown}" for f in given
                                         if f.value is not None]])
    run = SuiteRun(COMMIT, given, shown, proc.returncode, time.monotonic() - started,
                   stderr=proc.stderr.decode("utf-8", "replace")[-4000:])
    collect(run, proc.stdout)
    return run


def collect(run: SuiteRun, stdout: bytes) -> None:
    """results.json as go wrote it, e2e.log from it, junit.xml from gotestsum if present."""
    run.artifacts["results.json"] = stdout
    events = events_of(stdout)
    run.artifacts["e2e.log"] = "".join(e.get("Output") or "" for e in events).encode()
    run.tests = outcomes(events)
    if not run.tests:
        run.notes.append("go test printed no test result: "
                         + (run.stderr.strip().splitlines() or ["no output"])[-1])
    gotestsum = shutil.which("gotestsum")
    if gotestsum is None:
        run.notes.append("junit.xml not made: gotestsum is not on PATH "
                         "(results.json and e2e.log carry the same results)")
        return
    with tempfile.TemporaryDirectory(prefix="aicp-wg-suite-") as tmp:
        (Path(tmp) / "results.json").write_bytes(stdout)
        done = subprocess.run([gotestsum, "--junitfile", "junit.xml", "--raw-command", "--",
                               "cat", "results.json"], cwd=tmp, capture_output=True,
                              check=False, timeout=300)
        junit = Path(tmp) / "junit.xml"
        if junit.is_file():
            run.artifacts["junit.xml"] = junit.read_bytes()
        else:
            run.notes.append(f"junit.xml not made: gotestsum exited {done.returncode}")


def events_of(stdout: bytes) -> list[dict[str, Any]]:
    """The JSON events of ``go test -json`` (lines that are not JSON are go's own, kept in
    results.json as they are, skipped here)."""
    found = []
    for line in stdout.decode("utf-8", "replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


def outcomes(events: list[dict[str, Any]]) -> dict[str, TestOutcome]:
    """Each test's last pass/fail/skip, with the suite's own last output line as reason."""
    said: dict[str, str] = {}
    found: dict[str, TestOutcome] = {}
    for event in events:
        test, action = event.get("Test"), event.get("Action")
        if not test:
            continue
        if action == "output":
            line = (event.get("Output") or "").strip()
            if line and not line.startswith(("=== ", "--- ")):
                said[test] = line.split(": ", 1)[-1] if ".go:" in line.split(": ", 1)[0] \
                    else line
        elif action in ("pass", "fail", "skip"):
            result = {"pass": "passed", "fail": "failed", "skip": "skipped"}[action]
            found[test] = TestOutcome(result, "" if result == "passed" else said.get(test, ""))
    return found


def quarantine(run: SuiteRun, output_dir: Path, run_id: str, page: str) -> Path:
    """A failed run's files, beside the submission folder and never inside it."""
    base = Path(output_dir).expanduser().absolute()
    target = base.with_name(f"{base.name}.wg-suite-failed-{run_id}")
    n = 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}.wg-suite-failed-{run_id}-{n}")
    target.mkdir(parents=True)
    for name, data in run.artifacts.items():
        (target / name).write_bytes(data)
    (target / "go-test-stderr.log").write_text(run.stderr)
    (target / "README.md").write_text(page)
    os.chmod(target, 0o755)
    return target
