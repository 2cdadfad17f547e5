"""Run the suite in the cluster as a Job (``--wg-suite-mode job``), and bring its output back.

No Go toolchain is needed on the user's machine. The Job runs the official Go image
(``WG_SUITE["image"]``, pinned by tag), fetches the suite at the pinned commit with git (the
image is built on ``buildpack-deps:bookworm-scm``, which has git, gzip and base64:
docker-library/golang ``1.25/bookworm/Dockerfile``), checks that the commit is the pinned
one, and runs ``go test -v -timeout 75m ./test -json <flags>`` as the local mode does. go's
stdout (``results.json``) travels back in the pod's log, gzip-compressed and base64-encoded
between two marker lines (the log holds git's and go's own chatter too, and results.json
must come back byte for byte); ``e2e.log`` and ``junit.xml`` are then made from it here,
exactly as in the local mode (``run.collect``).

The suite talks to the API server as the pod's ServiceAccount: without ``-kubeconfig`` its
``buildRESTConfig`` (test/util_test.go) loads client-go's default rules, whose deferred
config falls back to the in-cluster config when no kubeconfig exists
(k8s.io/client-go tools/clientcmd ``DeferredLoadingClientConfig.ClientConfig``). The
ServiceAccount's ClusterRole (``RULES``) grants what the suite's tests call, read from them.

Everything the Job needs lives in a namespace of the run (labelled ``aicp.dev/verify-run``)
plus a ClusterRole and ClusterRoleBinding carrying the same label; they are deleted when the
suite ends, fails, times out or is interrupted, as the probes' objects are; a run whose
process dies leaves them to ``aicp verify cleanup --run-id <id>``, and the Job's own
``activeDeadlineSeconds`` stops the pod regardless. The suite's own namespaces are the
suite's: it deletes them itself (``deleteNamespaceAndWait``), as in the local mode.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import time
from collections.abc import Callable

from ..images import WG_SUITE, mirrored
from ..kube import Kube
from ..probe import Cancelled, CleanupStack, Context, ProbeError, Settings, one_line
from ..probes import _pods
from ..runner import HEARTBEAT_SECONDS
from . import COMMIT, PACKAGE, REPOSITORY
from .flags import Flag
from .run import GO_TIMEOUT_MINUTES, SuiteRun, collect

PROBE_ID = "wg_suite"  # the run's namespace is aicp-verify-<run id>-wg-suite
IMAGE = WG_SUITE["image"]
NAME = "aicp-wg-suite"
BEGIN = "=== AICP WG-SUITE results.json gzip base64 BEGIN ==="
END = "=== AICP WG-SUITE results.json END exit "
# Beyond go test's own -timeout: the clone, the module download and the build. A pod that
# outlives it is stopped by the Job controller (activeDeadlineSeconds).
FETCH_BUILD_SECONDS = 900.0
TIMEOUTS = {
    "start_timeout": 600.0,  # a cold node pulls the ~300 MB Go image first
    "suite_timeout": GO_TIMEOUT_MINUTES * 60 + FETCH_BUILD_SECONDS,
    "cleanup_timeout": 300.0,
    "poll": 10.0,
}
# What the suite's tests call (kubernetes-sigs/ai-conformance test/): util_test.go (read at
# 3d8edfa0: namespaces, pods, pods/log, nodes, ResourceClaimTemplates, ResourceSlices,
# DeviceClasses), the gang test (batch Jobs, pods by label), the autoscaling test (pods in
# every namespace, PodDisruptionBudgets, ResourceClaims) and workload_sandboxing_test.go (at
# the pinned 6c1b76b8: RuntimeClasses; agent-sandbox ``sandboxes.agents.x-k8s.io`` where
# served). Discovery needs no rule (system:discovery). Nothing more is granted: a test that
# calls more fails with the API server's 403 in its own output, naming what is missing.
RULES = [
    {"apiGroups": [""], "resources": ["namespaces"],
     "verbs": ["get", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods"],
     "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
     "verbs": ["get", "create", "delete"]},
    {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaimtemplates"],
     "verbs": ["get", "create", "delete"]},
    {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices", "deviceclasses"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"], "verbs": ["get", "list"]},
    {"apiGroups": ["agents.x-k8s.io"], "resources": ["sandboxes"],
     "verbs": ["get", "list", "create", "delete"]},
]


def script() -> str:
    """The container's shell script; the suite's flags follow as its arguments ("$@")."""
    return "\n".join([
        'cd "$(mktemp -d)" || exit 3',
        f"git init -q suite && cd suite && git fetch -q --depth 1 {REPOSITORY} {COMMIT} "
        "&& git checkout -q FETCH_HEAD || { echo 'aicp: fetching the suite failed'; exit 3; }",
        f'[ "$(git rev-parse HEAD)" = {COMMIT} ] || {{ echo "aicp: fetched $(git rev-parse '
        'HEAD), not the pinned commit"; exit 3; }',
        f'go test -v -timeout {GO_TIMEOUT_MINUTES}m {PACKAGE} -json "$@" > ../results.json',
        "rc=$?",
        f"echo '{BEGIN}'",
        "gzip -c ../results.json | base64",
        f'echo "{END}$rc ==="',
        'exit "$rc"',
    ])


def timeout(settings: Settings, name: str) -> float:
    return settings.timing.resolve(PROBE_ID, name, TIMEOUTS[name])


def manifests(ns: str, run_id: str, flags: list[Flag], image: str,
              labels: dict[str, str]) -> list[tuple[str, dict]]:
    """(API path, object) in the order they are created."""
    role = f"{NAME}-{run_id}"
    meta = lambda name, **more: {"name": name, "labels": dict(labels), **more}  # noqa: E731
    deadline = int(TIMEOUTS["suite_timeout"])
    args = [f.arg for f in flags if f.value is not None]
    return [
        (f"/api/v1/namespaces/{ns}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME)}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
          "metadata": meta(role), "rules": RULES}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
          "metadata": meta(role),
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                      "name": role},
          "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
        (f"/apis/batch/v1/namespaces/{ns}/jobs",
         {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(NAME),
          "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline,
                   "template": {"metadata": {"labels": dict(labels)}, "spec": {
                       "serviceAccountName": NAME, "restartPolicy": "Never",
                       "containers": [{
                           "name": "suite", "image": image,
                           "command": ["sh", "-c", script(), NAME, *args],
                           # Compiling client-go and the suite takes about a core and a
                           # couple of GiB; asked for so the pod is not squeezed out.
                           "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}}}}),
    ]


def results_of(log: str) -> tuple[bytes | None, int | None, str]:
    """results.json, go test's exit code and the log's other lines (git's, go's stderr)."""
    lines = log.splitlines()
    try:
        start = lines.index(BEGIN)
    except ValueError:
        return None, None, log
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(END)), None)
    if end is None:
        return None, None, "\n".join(lines[:start])
    try:
        data = gzip.decompress(base64.b64decode("".join(lines[start + 1:end]), validate=True))
        code = int(lines[end].removeprefix(END).split()[0])
    except (ValueError, binascii.Error, OSError, IndexError):
        return None, None, "\n".join(lines[:start])
    return data, code, "\n".join(lines[:start] + lines[end + 1:])


def run_job(kube: Kube, settings: Settings, flags: list[Flag], mirror: str | None,
            interrupted: Callable[[], str | None] = lambda: None,
            say: Callable[[str], None] = lambda line: None) -> SuiteRun:
    """Create the Job, wait for it (bounded), read its log, delete everything; a
    ``SuiteRun`` as the local mode returns it (``returncode`` 124 when the time ran out,
    130 when interrupted, with a note saying so)."""
    image = mirrored(IMAGE, mirror)
    started = time.monotonic()
    budget = timeout(settings, "start_timeout") + timeout(settings, "suite_timeout")
    cleanup = CleanupStack(kube)
    ctx = Context(PROBE_ID, settings, kube, deadline=time.monotonic() + budget
                  + timeout(settings, "cleanup_timeout"), cleanup=cleanup)
    given = [*flags, Flag("kubeconfig", None, "unset: in the cluster the suite uses the "
                          f"Job's ServiceAccount {NAME} (in-cluster config)")]
    shown = " ".join(["go", "test", "-v", "-timeout", f"{GO_TIMEOUT_MINUTES}m", PACKAGE,
                      "-json", *[f"-{f.name}={f.shown}" for f in flags
                                 if f.value is not None]])
    run = SuiteRun(COMMIT, given, shown, 1, 0.0, mode="job", image=image)
    stdout: bytes | None = None
    try:
        ns = ctx.namespace()
        for path, body in manifests(ns, settings.run_id, flags, image, ctx.labels):
            _pods.create(ctx, path, body, body["metadata"].get("namespace") or (
                ns if "/namespaces/" in path else None))
        say(f"wg-suite: Job {ns}/{NAME} created (image {image})")
        pod = _wait(ctx, ns, interrupted)
        stdout, code, rest = results_of(_log(ctx, ns, pod))
        run.stderr = rest[-4000:]
        finished = _terminated(pod)
        if stdout is None:
            run.returncode = finished if finished is not None else 124
            run.notes.append("the Job printed no results.json: " + (
                (rest.strip().splitlines() or ["its log is empty"])[-1]))
        else:
            run.returncode = code if code is not None else 1
    except Cancelled as exc:
        run.returncode = 130 if interrupted() else 124
        run.notes.append(f"the suite's Job was stopped ({interrupted() or 'out of time'}: "
                         f"{exc}) and deleted")
    except (ProbeError, Exception) as exc:  # noqa: BLE001 - reported, never a pass
        run.notes.append(f"the suite's Job could not run: {one_line(exc)}")
    finally:
        left = _finish(ctx, cleanup)
        if left:
            run.notes.append(f"not deleted yet: {', '.join(left)}; run: aicp verify cleanup "
                             f"--run-id {settings.run_id}")
    run.duration = time.monotonic() - started
    collect(run, stdout or b"")
    return run


def _wait(ctx: Context, ns: str, interrupted: Callable[[], str | None]) -> dict:
    """The Job's pod once it has finished: started within ``start_timeout`` (else the
    reason it waits, an image pull or the scheduler, is said), then finished within
    ``suite_timeout``; raises ``Cancelled`` on a signal, on either timeout, or when the Job
    failed without a pod (its condition's reason)."""
    seen: dict = {"beat": 0.0, "pod": {}}

    def look() -> str:
        """The pod's phase, or Gone when the Job failed and left no pod."""
        if interrupted():
            ctx.cancelled.set()
            return ""
        if time.monotonic() - seen["beat"] >= HEARTBEAT_SECONDS:
            # The run is alive: ``aicp verify cleanup`` elsewhere leaves its namespace be
            # (a heartbeat under a minute old), as the runner beats for the probes'.
            ctx.kube.heartbeat([ns])
            seen["beat"] = time.monotonic()
        # The namespace is the run's own and holds this Job alone (backoffLimit 0: one pod).
        pods = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods").get("items") or []
        if pods:
            seen["pod"] = pods[0]
            return str((pods[0].get("status") or {}).get("phase") or "Pending")
        job = ctx.kube.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/{NAME}")
        failed = [c for c in (job.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Failed" and c.get("status") == "True"]
        if failed:
            seen["failed"] = f"{failed[0].get('reason')}: {failed[0].get('message')}"
            return "Gone"
        return "Pending"

    poll = timeout(ctx.settings, "poll")
    start = timeout(ctx.settings, "start_timeout")
    if not ctx.wait_for(f"the suite's Job {ns}/{NAME} to start", lambda: look() in (
            "Running", "Succeeded", "Failed", "Gone"), timeout=start, interval=poll,
            first=0.05):
        ctx.checkpoint()  # a signal: Cancelled
        raise Cancelled(f"the Job's pod did not start within {start:g} s "
                        f"({_waiting(seen['pod'])})")
    limit = timeout(ctx.settings, "suite_timeout")
    if not ctx.wait_for(f"the suite's Job {ns}/{NAME} to finish", lambda: look() in (
            "Succeeded", "Failed", "Gone"), timeout=limit, interval=poll, first=0.05):
        ctx.checkpoint()
        raise Cancelled(f"the Job did not finish within {limit:g} s")
    if "failed" in seen and not seen["pod"]:
        raise Cancelled(f"the Job failed with no pod left ({seen['failed']})")
    return seen["pod"]


def _waiting(pod: dict) -> str:
    """Why a pod has not started: its containers' waiting reasons, else its phase and the
    scheduler's condition message."""
    status = pod.get("status") or {}
    waits = [f"{w.get('reason')}: {w.get('message') or ''}".rstrip(": ")
             for cs in status.get("containerStatuses") or []
             if (w := (cs.get("state") or {}).get("waiting"))]
    if waits:
        return "; ".join(waits)
    unscheduled = [c.get("message") for c in status.get("conditions") or []
                   if c.get("type") == "PodScheduled" and c.get("status") == "False"]
    return f"{status.get('phase') or 'no pod yet'}" + (
        f": {unscheduled[0]}" if unscheduled and unscheduled[0] else "")


def _log(ctx: Context, ns: str, pod: dict) -> str:
    return ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}"
                            "/log", query={"container": "suite"}, text=True)


def _terminated(pod: dict) -> int | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (cs.get("state") or {}).get("terminated")
        if state:
            return int(state.get("exitCode", 1))
    return None


def _finish(ctx: Context, cleanup: CleanupStack) -> list[str]:
    """Delete what the run created (reverse order), then its namespace, and wait."""
    ctx.cancelled.clear()
    left = cleanup.finish(timeout(ctx.settings, "cleanup_timeout"))
    return [*left, *cleanup.errors]
