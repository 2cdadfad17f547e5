"""workload_sandboxing: a RuntimeClass runs pods in a sandbox with its own kernel.

The WG test's shape (kubernetes-sigs/ai-conformance@0a155c9
test/workload_sandboxing_test.go), as its cases, in order:

1. ``_a_sandbox_runtime_class_exists``: a RuntimeClass whose name or handler names a
   sandbox (gVisor ``runsc``/``gvisor``, Kata ``kata*``, and the WG list's ``sandboxed``,
   ``quark``, ``krun``);
2. ``_a_sandboxed_pod_runs_the_script``: the isolation script in a pod using it. The
   RuntimeClass's ``scheduling`` (nodeSelector, tolerations) is copied onto the pod, as
   the RuntimeClass admission plugin would;
3. ``_an_unsandboxed_pod_runs_it_on_the_same_node``: the same script in an unsandboxed
   control pod pinned (``spec.nodeName``) to the node the sandboxed pod ran on;
4. ``_the_sandbox_has_its_own_kernel_and_no_host_view``: isolation alone cannot tell a
   sandbox from runc (a runc pod has its own PID and network namespaces too), so the
   kernel identity the two report (``uname -r``, ``/proc/version``, boot id; a field either
   side could not read is ignored) must differ. The sandbox must also show no host daemons
   (kubelet, containerd, dockerd, crio, systemd-journal) and no host paths
   (/etc/kubernetes, /var/lib/kubelet, /var/log/pods).

No sandbox RuntimeClass: Not Implemented (the WG test skips there): FAIL with a reason
starting "not implemented", which the checklist reports as Not Implemented and JUnit as
skipped, never N/A (every cluster can offer a sandbox) and never a failed run (a SHOULD).
FAIL also: the sandboxed pod fails, shares the host's kernel identity, sees host processes or paths.
ERROR: a pod does not finish in time, or the script does not complete.
"""

from __future__ import annotations

from ..probe import Context, Fail, Probe, ProbeError, Settings
from . import _pods

KEYWORDS = ("gvisor", "runsc", "kata", "sandboxed", "quark", "krun")  # WG isKnownSandboxedRuntime
MARKER = "SANDBOX_PROBE"
# The WG test's script, without its trailing sleep: each pod ends once it has printed.
SCRIPT = f"""echo "{MARKER}: SCHEDULING=PASS"
echo "SANDBOX_INFO: KERNEL_RELEASE=$(uname -r 2>/dev/null || echo unknown)"
echo "SANDBOX_INFO: KERNEL_VERSION=$(cat /proc/version 2>/dev/null || echo unknown)"
echo "SANDBOX_INFO: BOOT_ID=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
pid_pass=1
pid_count=0
if [ -d /proc ]; then
  pid_count=$(ls -d /proc/[0-9]* 2>/dev/null | wc -l)
  for p in /proc/[0-9]*/comm; do
    [ -f "$p" ] || continue
    read -r comm < "$p" 2>/dev/null || continue
    case "$comm" in
      kubelet|containerd|containerd-shim*|dockerd|crio|systemd-journal) pid_pass=0 ;;
    esac
  done
fi
echo "SANDBOX_INFO: PID_COUNT=$pid_count"
if [ "$pid_pass" -eq 1 ]; then echo "{MARKER}: PID_ISOLATION=PASS"; \
else echo "{MARKER}: PID_ISOLATION=FAIL"; fi
fs_pass=1
for host_path in /etc/kubernetes /var/lib/kubelet /var/log/pods; do
  if [ -d "$host_path" ]; then fs_pass=0; fi
done
if [ "$fs_pass" -eq 1 ]; then echo "{MARKER}: FS_ISOLATION=PASS"; \
else echo "{MARKER}: FS_ISOLATION=FAIL"; fi
echo "{MARKER}: COMPLETED"
"""


def is_sandbox(runtime_class: dict) -> bool:
    handler = str(runtime_class.get("handler", "")).lower()
    name = runtime_class["metadata"]["name"].lower()
    return any(k in handler or k in name for k in KEYWORDS)


def parse(logs: str) -> dict[str, str]:
    """``SANDBOX_PROBE: X=PASS`` and ``SANDBOX_INFO: K=V`` lines; "unknown" read as ""."""
    out: dict[str, str] = {}
    for line in logs.splitlines():
        line = line.strip()
        for prefix in (f"{MARKER}: ", "SANDBOX_INFO: "):
            if line.startswith(prefix):
                key, _, value = line[len(prefix):].partition("=")
                out[key] = "" if value.strip() == "unknown" else value.strip()
    return out


def _identity_differs(sandbox: dict[str, str], control: dict[str, str]) -> list[str]:
    return [f for f in ("KERNEL_RELEASE", "KERNEL_VERSION", "BOOT_ID")
            if sandbox.get(f) and control.get(f) and sandbox[f] != control[f]]


class WorkloadSandboxing(Probe):
    id = "workload_sandboxing"
    category = "security"
    mutating = True
    title = "Workloads can run in a kernel-isolating sandbox (gVisor, Kata)"

    timeouts = {
        # The control pod: the WG test's -sandbox-timeout default (3 min).
        "pod_timeout": 180.0,
        # The sandboxed pod may wait for its pool to scale up from zero (aicp's sandbox
        # pools on GKE, AKS and EKS start empty): cluster-autoscaler gives a node up to
        # --max-node-provision-time, 15 min by default (kubernetes/autoscaler
        # cluster-autoscaler/FAQ.md); 10 min covers a node's boot plus the runtime's.
        "sandbox_pod_timeout": 600.0,
    }

    @classmethod
    def budget(cls, settings: Settings) -> float:
        return (cls.timeout(settings, "sandbox_pod_timeout")
                + cls.timeout(settings, "pod_timeout") + 60.0)

    def cases(self, ctx: Context) -> str:
        chosen = _a_sandbox_runtime_class_exists(ctx)
        ns, node, sandbox = _a_sandboxed_pod_runs_the_script(ctx, chosen)
        control = _an_unsandboxed_pod_runs_it_on_the_same_node(ctx, ns, node)
        return _the_sandbox_has_its_own_kernel_and_no_host_view(ctx, chosen, node, sandbox,
                                                                control)


def _a_sandbox_runtime_class_exists(ctx: Context) -> dict:
    """The first sandbox RuntimeClass; none is Not Implemented (module doc)."""
    with ctx.step("list RuntimeClasses"):
        classes = ctx.kube.request("GET", "/apis/node.k8s.io/v1/runtimeclasses").get(
            "items", [])
        ctx.observe("runtimeClasses", {c["metadata"]["name"]: c.get("handler")
                                       for c in classes})
        sandboxes = [c for c in classes if is_sandbox(c)]
        if not sandboxes:
            known = ", ".join(f"{c['metadata']['name']} ({c.get('handler')})"
                              for c in classes) or "none"
            # A SHOULD left out: FAIL reads "Not Implemented" in the checklist and
            # "skipped" in JUnit (verdicts.test_result); SKIP would say N/A, and sandboxing
            # applies to every cluster.
            raise Fail("not implemented: no sandbox RuntimeClass (name or handler "
                       f"{'/'.join(KEYWORDS)}): RuntimeClasses {known}; install "
                       "gVisor or Kata Containers and a RuntimeClass for it")
    return sandboxes[0]


def _a_sandboxed_pod_runs_the_script(ctx: Context, chosen: dict
                                     ) -> tuple[str, str, dict[str, str]]:
    """The namespace, the node the sandboxed pod ran on, and what its script printed."""
    rc = chosen["metadata"]["name"]
    with ctx.step(f"run the isolation script with RuntimeClass {rc}"):
        ns = ctx.namespace()
        scheduling = chosen.get("scheduling") or {}
        spec = _spec(ctx)
        spec["runtimeClassName"] = rc
        if scheduling.get("nodeSelector"):
            spec["nodeSelector"] = dict(scheduling["nodeSelector"])
        if scheduling.get("tolerations"):
            spec["tolerations"] = list(scheduling["tolerations"])
        sandboxed = _run(ctx, ns, "sandboxed", spec, "sandbox_pod_timeout")
        if sandboxed is None:
            raise ProbeError(f"the pod with RuntimeClass {rc} did not finish within "
                             f"{ctx.timeout('sandbox_pod_timeout'):g}s (no node runs handler "
                             f"{chosen.get('handler')}, or the image cannot be pulled)")
        pod, sandbox = sandboxed
        node = pod["spec"].get("nodeName", "")
        phase = pod["status"]["phase"]
        if not ctx.check(f"a pod with RuntimeClass {rc} ran the script", phase ==
                         "Succeeded" and "COMPLETED" in sandbox, f"{phase} on {node}"):
            raise Fail(f"the pod with RuntimeClass {rc} ended {phase}: the sandbox "
                       "runtime does not work on the node it was scheduled to")
    return ns, node, sandbox


def _an_unsandboxed_pod_runs_it_on_the_same_node(ctx: Context, ns: str, node: str
                                                 ) -> dict[str, str]:
    with ctx.step(f"run the same script unsandboxed on {node}"):
        spec = _spec(ctx)
        spec["nodeName"] = node  # pinned, past the scheduler and any sandbox-pool taint
        controlled = _run(ctx, ns, "control", spec)
        if controlled is None or "COMPLETED" not in controlled[1]:
            raise ProbeError(f"the unsandboxed control pod on {node} did not complete the "
                             f"script within {ctx.timeout('pod_timeout'):g}s: nothing to "
                             "compare with")
    return controlled[1]


def _the_sandbox_has_its_own_kernel_and_no_host_view(ctx: Context, chosen: dict, node: str,
                                                     sandbox: dict[str, str],
                                                     control: dict[str, str]) -> str:
    rc = chosen["metadata"]["name"]
    ctx.observe("kernels", {"node": node,
                            "sandbox": sandbox.get("KERNEL_RELEASE", ""),
                            "control": control.get("KERNEL_RELEASE", "")})
    differs = _identity_differs(sandbox, control)
    own = ctx.check("the sandbox's kernel identity differs from an unsandboxed pod's on the "
                    "same node", bool(differs),
                    f"differs in {', '.join(differs)}" if differs else
                    f"same kernel {sandbox.get('KERNEL_RELEASE') or '(unread)'}")
    procs = ctx.check("the sandbox sees no host processes",
                      sandbox.get("PID_ISOLATION") == "PASS",
                      f"{sandbox.get('PID_COUNT', '?')} processes visible; "
                      f"PID_ISOLATION={sandbox.get('PID_ISOLATION', 'missing')}")
    paths = ctx.check("the sandbox sees no host paths", sandbox.get("FS_ISOLATION") == "PASS",
                      f"FS_ISOLATION={sandbox.get('FS_ISOLATION', 'missing')}")
    if own and procs and paths:
        return (f"RuntimeClass {rc} (handler {chosen.get('handler')}) ran a pod on "
                f"kernel {sandbox.get('KERNEL_RELEASE')}, unlike an unsandboxed "
                f"pod on {node} ({control.get('KERNEL_RELEASE')}), with no host "
                "processes or paths in view")
    failed = [c.name for c in ctx.evidence.checks if not c.passed]
    raise Fail(f"the pod with RuntimeClass {rc} is not isolated from the host: "
               f"{'; '.join(failed)} failed (sandbox kernel "
               f"{sandbox.get('KERNEL_RELEASE') or '(unread)'}, unsandboxed "
               f"{control.get('KERNEL_RELEASE') or '(unread)'})", partial=True)


def _spec(ctx: Context) -> dict:
    return {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "prober", "image": ctx.image("busybox"),
                            "command": ["/bin/sh", "-c"], "args": [SCRIPT],
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                          "limits": {"cpu": "200m", "memory": "128Mi"}}}]}


def _run(ctx: Context, ns: str, name: str, spec: dict, timeout: str = "pod_timeout"
         ) -> tuple[dict, dict[str, str]] | None:
    _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}, ns)
    pod = _pods.wait_finished(ctx, ns, name, ctx.timeout(timeout))
    if pod is None:
        return None
    return pod, parse(_pods.logs(ctx, ns, name, "prober"))
