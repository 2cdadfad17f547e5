"""workload_sandboxing: a RuntimeClass runs pods in a sandbox with its own kernel.

Lists ``node.k8s.io/v1`` RuntimeClasses whose handler (or name) is a sandbox runtime:
gVisor (``runsc``, ``gvisor``) or Kata Containers (``kata*``). None → FAIL (a SHOULD the
platform lacks: "Not Implemented" in the checklist; the run's exit code is unaffected).
With one, a busybox pod using it prints ``uname -r``: it must run, and the kernel it
reports must differ from the node's ``status.nodeInfo.kernelVersion`` (gVisor's Sentry
and Kata's guest VM both present their own kernel; the host's kernel means no isolation
from it). The RuntimeClass's ``scheduling`` (nodeSelector, tolerations) is copied onto the
pod, as the RuntimeClass admission plugin would.

FAIL: no sandbox RuntimeClass, the pod fails, or it sees the host kernel. ERROR: the pod
does not finish in time (image pull, no node with the runtime). Never SKIP: every
cluster can offer a sandbox.
"""

from __future__ import annotations

from ..probe import Context, Probe
from ..result import Result
from . import _pods

POD_TIMEOUT = 180.0


def is_sandbox(runtime_class: dict) -> bool:
    handler = str(runtime_class.get("handler", "")).lower()
    name = runtime_class["metadata"]["name"].lower()
    return any(h.startswith("kata") or h in ("runsc", "gvisor") or "gvisor" in h
               for h in (handler, name))


class WorkloadSandboxing(Probe):
    id = "workload_sandboxing"
    category = "security"
    levels = {"1.37": "SHOULD"}
    mutating = True
    title = "Workloads can run in a kernel-isolating sandbox (gVisor, Kata)"

    def run(self, ctx: Context) -> Result:
        with ctx.step("list RuntimeClasses"):
            classes = ctx.kube.request("GET", "/apis/node.k8s.io/v1/runtimeclasses").get(
                "items", [])
            ctx.observe("runtimeClasses", {c["metadata"]["name"]: c.get("handler")
                                           for c in classes})
            sandboxes = [c for c in classes if is_sandbox(c)]
            if not ctx.check("a sandbox RuntimeClass exists (gVisor or Kata)", bool(sandboxes),
                             ", ".join(f"{c['metadata']['name']} ({c.get('handler')})"
                                       for c in sandboxes) or "none"):
                known = ", ".join(f"{c['metadata']['name']} ({c.get('handler')})"
                                  for c in classes) or "none"
                return ctx.failed("no sandbox RuntimeClass (handler runsc/gvisor or kata*): "
                                  f"RuntimeClasses {known}; install gVisor or Kata Containers "
                                  "and a RuntimeClass for it")
            chosen = sandboxes[0]
            rc = chosen["metadata"]["name"]
        with ctx.step(f"run a pod with RuntimeClass {rc}"):
            ns = ctx.namespace()
            scheduling = chosen.get("scheduling") or {}
            spec = {"restartPolicy": "Never", "runtimeClassName": rc,
                    "containers": [{"name": "main", "image": ctx.image("busybox"),
                                    "command": ["uname", "-r"]}]}
            if scheduling.get("nodeSelector"):
                spec["nodeSelector"] = dict(scheduling["nodeSelector"])
            if scheduling.get("tolerations"):
                spec["tolerations"] = list(scheduling["tolerations"])
            _pods.create(ctx, f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sandboxed"},
                "spec": spec}, ns)
            pod = _pods.wait_finished(ctx, ns, "sandboxed", POD_TIMEOUT)
            if pod is None:
                return ctx.error(f"the pod with RuntimeClass {rc} did not finish within "
                                 f"{POD_TIMEOUT:g}s (no node runs handler "
                                 f"{chosen.get('handler')}, or the image cannot be pulled)")
        with ctx.step("compare kernels"):
            phase = pod["status"]["phase"]
            node_name = pod["spec"].get("nodeName", "")
            node = ctx.kube.request("GET", f"/api/v1/nodes/{node_name}")
            host = ((node.get("status") or {}).get("nodeInfo") or {}).get("kernelVersion", "")
            guest = _pods.logs(ctx, ns, "sandboxed", "main").strip()
            ctx.observe("kernels", {"node": node_name, "host": host, "sandbox": guest})
        ran = ctx.check(f"a pod with RuntimeClass {rc} ran", phase == "Succeeded", phase)
        isolated = ctx.check("the sandbox reports its own kernel, not the host's",
                             bool(guest) and guest != host,
                             f"sandbox {guest or '(no output)'}, host {host} on {node_name}")
        if ran and isolated:
            return ctx.passed(f"RuntimeClass {rc} (handler {chosen.get('handler')}) ran a pod "
                              f"on kernel {guest}, isolated from the host kernel {host}")
        if not ran:
            return ctx.failed(f"the pod with RuntimeClass {rc} ended {phase}: the sandbox "
                              "runtime does not work on the node it was scheduled to")
        return ctx.failed(f"the pod with RuntimeClass {rc} saw kernel {guest or '(nothing)'}, "
                          f"the host's is {host}: it is not isolated from the host kernel",
                          partial=True)
