"""``aicp verify`` run as a user runs it (a subprocess) when the run is cut short.

SIGTERM, SIGHUP and SIGINT mid-run; the API server going away mid-run; a second terminal
running ``aicp verify cleanup`` while a run is in progress. The emulator serves the
reference platform in this process, so the test sees every object the run left.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aicp.verify.kube import ALIVE_SECONDS, HEARTBEAT
from aicp.verify.probe import RUN_LABEL
from aicp.verify.verdicts import EXIT_FAILED, EXIT_INTERRUPTED
from tests.kubeapi.controllers.kubelet import kubelet
from tests.shared import REPO
from tests.verify.conftest import require_shared

VERSION = "1.37"
VERDICT_LINE = re.compile(r"^(PASS|FAIL|ERROR|SKIP)\s+(\w+) \(")


class Run:
    """``aicp verify`` in a subprocess; stdout collected line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aicp.cli.main", *args], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ,
                                                                  "COLUMNS": "200"})
        self.lines: list[str] = []
        self.err = ""
        self._hang_up = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        fd, rest = self.proc.stdout.fileno(), b""
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if self._hang_up.is_set():
                # The terminal goes away: nobody reads stdout or stderr any more.
                self.proc.stdout.close()
                self.proc.stderr.close()
                return
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            *done, rest = (rest + data).split(b"\n")
            self.lines += [line.decode() for line in done]
        if rest:
            self.lines.append(rest.decode())

    def hang_up(self) -> None:
        """Close the reading end of stdout and stderr, as a dropped SSH session does."""
        self._hang_up.set()
        self._reader.join(5)

    def finished_probes(self) -> list[str]:
        return [m[2] for m in map(VERDICT_LINE.match, list(self.lines)) if m]

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        assert self.proc.stderr is not None
        if not self._hang_up.is_set():
            self.err = self.proc.stderr.read()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def until(condition, timeout: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def labelled(kube, run_id: str) -> list[str]:
    """Every object, namespaced or not, labelled with the run id."""
    found = []
    for res in {r.key: r for r in kube.discovery.by_ref.values()}.values():
        if "list" not in res.verbs:
            continue
        ref = f"{res.plural}.{res.group}" if res.group else res.plural
        found += [f"{res.kind} {x['metadata'].get('namespace') or ''}/{x['metadata']['name']}"
                  for x in kube.list(ref, labels=f"{RUN_LABEL}={run_id}")]
    return found


def run_namespaces(kube, run_id: str) -> list[str]:
    return [n["metadata"]["name"] for n in kube.list("namespaces",
                                                     labels=f"{RUN_LABEL}={run_id}")]


@pytest.fixture
def platform(kubeapi_factory, tmp_path):
    kube = kubeapi_factory("reference-platform", minor=VERSION, gpu_nodes=2)
    kube.settle()
    # Creating pods is slow, so mutating probes are mid-step when the run is cut short.
    kube.faults.slow(1.0, resource="pods", verbs={"create"})
    return kube, kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")


def start(kubeconfig: Path, tmp_path: Path, run_id: str, *extra: str) -> Run:
    template = require_shared("conformance", f"AIConformance-{VERSION}.yaml")
    return Run(["verify", "--kubeconfig", str(kubeconfig), "--checklist-template",
                str(template), "--output", "json", "--output-dir", str(tmp_path / "out"),
                "--run-id", run_id, "--probe-timeout", "60", *extra], REPO)


def mid_run(kube, run: Run, run_id: str) -> None:
    """Wait until a probe has finished and another one has objects on the cluster."""
    until(lambda: run.finished_probes() and run_namespaces(kube, run_id)
          or run.proc.poll() is not None, what="a finished probe and a live namespace")
    assert run.proc.poll() is None, "\n".join(run.lines)


@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP"),
                                       (signal.SIGINT, "Ctrl-C")],
                         ids=["TERM", "HUP", "INT"])
def test_a_signal_mid_run_writes_finished_reports_cleans_up_and_exits_130(
        platform, tmp_path, sig, said):
    kube, kubeconfig = platform
    run_id = f"sig-{signal.Signals(sig).name.lower()}"
    run = start(kubeconfig, tmp_path, run_id)
    try:
        mid_run(kube, run, run_id)
        finished = run.finished_probes()
        run.proc.send_signal(sig)
        code = run.wait()
    finally:
        run.kill()
    assert code == EXIT_INTERRUPTED, "\n".join(run.lines) + run.err
    assert "Traceback" not in run.err and "Traceback" not in "\n".join(run.lines)
    assert labelled(kube, run_id) == []

    doc = json.loads((tmp_path / "out" / "results" / "aicp-results.json").read_text())
    assert doc["interrupted"] is True and doc["signal"] == signal.Signals(sig).name
    assert doc["exitCode"] == EXIT_INTERRUPTED
    assert doc["cleanup"] == {"leftovers": [], "errors": []}
    got = {r["id"]: r for r in doc["requirements"]}
    for rid in finished:  # what finished before the signal is reported with its evidence
        assert got[rid]["verdict"] in ("PASS", "FAIL", "ERROR", "SKIP")
        assert not got[rid]["reason"].startswith("interrupted"), got[rid]
    cut = [r for r in doc["requirements"] if r["reason"].startswith(f"interrupted ({said})")]
    assert cut, [(r["id"], r["reason"]) for r in doc["requirements"]]
    last = run.lines[-1]
    assert last.startswith(f"interrupted ({said}): ") and " MUST ran (" in last, last
    assert last.endswith(f"— exit 130; reports: {tmp_path / 'out'}"), last


def test_the_api_server_lost_mid_run_keeps_the_results_and_names_the_cleanup(
        platform, tmp_path):
    kube, kubeconfig = platform
    run = start(kubeconfig, tmp_path, "lost")
    try:
        mid_run(kube, run, "lost")
        present = run_namespaces(kube, "lost")
        port = kube.port
        kube.stop()  # the VPN drops: nothing answers any more
        code = run.wait(timeout=180)
    finally:
        run.kill()
    out = "\n".join(run.lines)
    assert code == EXIT_FAILED, out + run.err
    assert "Traceback" not in run.err and "Traceback" not in out
    doc = json.loads((tmp_path / "out" / "results" / "aicp-results.json").read_text())
    lost = [r for r in doc["requirements"] if "lost the connection to the cluster" in r["reason"]]
    assert lost and all(r["verdict"] == "ERROR" for r in lost)
    assert set(present) <= set(doc["cleanup"]["leftovers"]), doc["cleanup"]
    advice = [line for line in run.lines if line.startswith("cleanup: not finished")]
    assert len(advice) == 1, out
    assert "the cluster stopped answering: Connection refused" in advice[0]
    command = advice[0].split("; run: ", 1)[1]
    assert command == shlex.join(["aicp", "verify", "cleanup", "--run-id", "lost",
                                  "--kubeconfig", str(kubeconfig)])
    assert run.lines[-1].endswith(f"— exit 1; reports: {tmp_path / 'out'}")

    # The cluster comes back; the command the run printed removes what it left.
    kube.start(port=port)
    assert labelled(kube, "lost")
    cleanup = Run(shlex.split(command)[1:], REPO)
    assert cleanup.wait() == 0, "\n".join(cleanup.lines) + cleanup.err
    assert labelled(kube, "lost") == []


def test_a_concurrent_cleanup_leaves_a_live_run_untouched(platform, tmp_path):
    kube, kubeconfig = platform
    run = start(kubeconfig, tmp_path, "live")
    try:
        mid_run(kube, run, "live")
        assert run_namespaces(kube, "live")
        # Containers not yet started stay in ContainerCreating: the run cannot finish (and
        # restore the default SIGTERM) while the cleanup beside it runs, however loaded the
        # machine; the probes waiting for them stop at the signal.
        kubelet(kube).waiting = lambda pod, container: {
            "state": {"waiting": {"reason": "ContainerCreating"}}}
        other = Run(["verify", "cleanup", "--kubeconfig", str(kubeconfig)], REPO)
        assert other.wait() == 0, "\n".join(other.lines) + other.err
        assert any(re.fullmatch(
            rf"skipped run live: still running \(heartbeat \d+s ago; pid {run.proc.pid} on this "
            r"host is alive\); pass --force to delete it anyway, or --run-id live", line)
            for line in other.lines), other.lines
        assert other.lines[-1] == "deleted 0 objects", other.lines
        assert run.proc.poll() is None
        run.proc.send_signal(signal.SIGTERM)
        code = run.wait()
    finally:
        run.kill()
    assert code == EXIT_INTERRUPTED
    doc = json.loads((tmp_path / "out" / "results" / "aicp-results.json").read_text())
    assert not [r for r in doc["requirements"] if "was deleted while the probe ran"
                in r["reason"]]
    assert labelled(kube, "live") == []


def test_cleanup_after_a_sigkill_deletes_the_dead_runs_objects_at_once(platform, tmp_path):
    kube, kubeconfig = platform
    run = start(kubeconfig, tmp_path, "kill9")
    try:
        mid_run(kube, run, "kill9")
        # Containers stay in ContainerCreating: the run's pods are there when it is killed.
        kubelet(kube).waiting = lambda pod, container: {
            "state": {"waiting": {"reason": "ContainerCreating"}}}
        until(lambda: any(x.startswith("Pod ") for x in labelled(kube, "kill9"))
              or run.proc.poll() is not None, what="a pod of the run")
        run.proc.kill()  # SIGKILL, as the OOM killer sends: no handler, no cleanup
        assert run.wait() == -signal.SIGKILL
    finally:
        run.kill()
    left = labelled(kube, "kill9")
    assert any(x.startswith("Pod ") for x in left), left
    # Its heartbeat is still fresh: judged by the heartbeat alone, it would be "running".
    stamps = [datetime.strptime(n["metadata"]["annotations"][HEARTBEAT], "%Y-%m-%dT%H:%M:%SZ")
              .replace(tzinfo=UTC) for n in kube.list("namespaces",
                                                      labels=f"{RUN_LABEL}=kill9")]
    assert stamps and min((datetime.now(UTC) - t).total_seconds()
                          for t in stamps) < ALIVE_SECONDS

    cleanup = Run(["verify", "cleanup", "--kubeconfig", str(kubeconfig)], REPO)
    assert cleanup.wait() == 0, "\n".join(cleanup.lines) + cleanup.err
    out = "\n".join(cleanup.lines)
    assert "skipped run" not in out and "Traceback" not in out + cleanup.err
    assert f"run kill9: its process (pid {run.proc.pid} on this host) has ended" in out, out
    assert labelled(kube, "kill9") == []


def test_a_signal_before_any_probe_started_says_nothing_was_created(platform, tmp_path):
    kube, kubeconfig = platform
    kube.faults.slow(30.0, path=r"^/version$")  # the run hangs while connecting
    run = start(kubeconfig, tmp_path, "early")
    try:
        until(lambda: kube.faults.rules[-1].hits, what="the run to ask for /version")
        run.proc.send_signal(signal.SIGTERM)
        code = run.wait()
    finally:
        run.kill()
    assert code == EXIT_INTERRUPTED
    assert run.err.strip().splitlines() == [
        "error: interrupted (SIGTERM) before any probe started; nothing was created"]
    assert labelled(kube, "early") == [] and not (tmp_path / "out").exists()


def test_a_dropped_ssh_session_sighup_with_nobody_reading_still_reports_and_cleans_up(
        platform, tmp_path):
    kube, kubeconfig = platform
    run = start(kubeconfig, tmp_path, "hup")
    try:
        mid_run(kube, run, "hup")
        finished = run.finished_probes()
        run.hang_up()  # every later write to stdout or stderr fails (EPIPE)
        run.proc.send_signal(signal.SIGHUP)
        code = run.wait()
    finally:
        run.kill()
    assert code == EXIT_INTERRUPTED
    assert labelled(kube, "hup") == []
    doc = json.loads((tmp_path / "out" / "results" / "aicp-results.json").read_text())
    assert doc["signal"] == "SIGHUP" and doc["cleanup"] == {"leftovers": [], "errors": []}
    got = {r["id"]: r["verdict"] for r in doc["requirements"]}
    assert all(got[rid] in ("PASS", "FAIL", "ERROR", "SKIP") for rid in finished)


SECOND_SIGNAL = """
import os, signal, sys
from aicp.verify import signals
if sys.argv[1] == "process":
    signals.process_exits_after_run()
try:
    with signals.interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
except signals.Interrupted:
    pass
print("exit 130", flush=True)
os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM, after the closing line
sys.exit(130)
"""


def test_a_second_signal_after_the_closing_line_keeps_the_exit_code_it_printed():
    # Once "exit 130" is printed, a second SIGTERM (CI cancelling twice, `timeout -k`) must
    # not turn the exit into 143. Sent by the process to itself: no race with a clock.
    run = subprocess.run([sys.executable, "-c", SECOND_SIGNAL, "process"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (EXIT_INTERRUPTED, "exit 130\n"), run.stderr


def test_a_caller_that_is_not_the_aicp_process_gets_its_handlers_back():
    run = subprocess.run([sys.executable, "-c", SECOND_SIGNAL, "library"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == -signal.SIGTERM  # Python's default: the signal ends it
