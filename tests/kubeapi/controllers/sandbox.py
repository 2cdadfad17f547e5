"""What the WG sandbox probe script prints, in a sandbox and in a plain runc container.

``probe_logs(pod, container, kube)`` answers for a container running the isolation script
(kubernetes-sigs/ai-conformance@0a155c9 test/workload_sandboxing_test.go
``sandboxProbeScript``; aicp's probe runs the same checks). gVisor's Sentry reports its own
kernel (release 4.4.0) and boot id, shows only the pod's processes and no host paths; a
runc container shares the node's kernel (``status.nodeInfo.kernelVersion``) and boot id.
``leaky`` handlers (a "sandbox" that is really runc, or one that mounts host paths and
shares the host PID namespace) are what the failing worlds use.
"""

from __future__ import annotations

SANDBOXED = ("runsc", "gvisor", "kata-qemu", "kata")
MARKER = "SANDBOX_PROBE"


def runs_probe(pod: dict, container: str) -> bool:
    spec = next((c for c in pod["spec"]["containers"] if c["name"] == container), {})
    return MARKER in " ".join((spec.get("command") or []) + (spec.get("args") or []))


def probe_logs(pod: dict, container: str, kube, *, leaky: tuple[str, ...] = ()) -> str:
    node = kube.find("nodes", pod["spec"].get("nodeName", "")) or {}
    host = ((node.get("status") or {}).get("nodeInfo") or {}).get("kernelVersion", "")
    host_boot = ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID", "")
    rc_name = pod["spec"].get("runtimeClassName") or ""
    rc = kube.find("runtimeclasses.node.k8s.io", rc_name) if rc_name else None
    handler = (rc or {}).get("handler", "runc")
    sandboxed = handler in SANDBOXED and handler not in leaky and rc_name not in leaky
    host_view = handler in leaky or rc_name in leaky
    if sandboxed:
        release, version = "4.4.0", "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"
        boot = f"{pod['metadata']['uid'][:8]}-0000-4000-8000-000000000000"
    else:
        release, version = host, f"Linux version {host} (buildd@lcy02) #1 SMP"
        boot = host_boot or "7f3c2a10-1111-4222-8333-444455556666"
    pid_pass = "FAIL" if host_view else "PASS"
    fs_pass = "FAIL" if host_view else "PASS"
    return "\n".join([
        f"{MARKER}: SCHEDULING=PASS",
        f"SANDBOX_INFO: KERNEL_RELEASE={release}", f"SANDBOX_INFO: KERNEL_VERSION={version}",
        f"SANDBOX_INFO: BOOT_ID={boot}",
        f"SANDBOX_INFO: PID_COUNT={40 if host_view else 2}",
        f"{MARKER}: PID_ISOLATION={pid_pass}", f"{MARKER}: KERNEL_ISOLATION=PASS",
        f"{MARKER}: FS_ISOLATION={fs_pass}", f"{MARKER}: NET_ISOLATION=PASS",
        f"{MARKER}: COMPLETED", ""])
