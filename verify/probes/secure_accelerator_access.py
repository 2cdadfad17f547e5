"""secure_accelerator_access: only a container that claimed an accelerator can see one.

The upstream test's three cases, each read from ``nvidia-smi -L`` in the pod's logs: a
container with a DRA claim sees its device; a pod without a claim sees none; a second
container of the claiming pod, without the claim, sees none.
"""

from __future__ import annotations

from aicp.verify.probe import Context, Probe
from aicp.verify.probes import _pods
from aicp.verify.result import Result

POD_TIMEOUT = 300.0


class SecureAcceleratorAccess(Probe):
    id = "secure_accelerator_access"
    category = "security"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    needs = ("gpu_nodes", "api:resource.k8s.io/v1")
    mutating = True
    title = "Accelerator access is isolated by DRA claims"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find a DeviceClass"):
            dc = _pods.device_class(ctx)
            if dc is None:
                return ctx.error("no DeviceClass exists: install the accelerator's DRA driver")
        with ctx.step("create namespace and ResourceClaimTemplate"):
            ns = ctx.namespace()
            _pods.claim_template(ctx, ns, "one-gpu", dc)
        with ctx.step("start pods"):
            _pods.gpu_pod(ctx, ns, "claiming", [
                {"name": "with-claim", "resources": {"claims": [{"name": "gpu"}]}},
                {"name": "without-claim"}],
                claims=[{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}])
            _pods.gpu_pod(ctx, ns, "unclaimed", [{"name": "main"}])
        with ctx.step("wait for pods to finish"):
            for name in ("claiming", "unclaimed"):
                if _pods.wait_finished(ctx, ns, name, POD_TIMEOUT) is None:
                    return ctx.error(f"pod {name} did not finish within {POD_TIMEOUT:g}s "
                                     "(no schedulable GPU node, or the image cannot be pulled)")
        with ctx.step("read nvidia-smi -L from the logs"):
            seen = {key: _pods.gpus_seen(_pods.logs(ctx, ns, pod, container))
                    for key, (pod, container) in {
                        "with claim": ("claiming", "with-claim"),
                        "second container": ("claiming", "without-claim"),
                        "pod without claim": ("unclaimed", "main")}.items()}
        ok = [ctx.check("a container with a claim sees exactly its one GPU",
                        len(seen["with claim"]) == 1, "; ".join(seen["with claim"]) or "none"),
              ctx.check("the claiming pod's second container sees no GPU",
                        not seen["second container"],
                        "; ".join(seen["second container"]) or "none"),
              ctx.check("a pod without a claim sees no GPU", not seen["pod without claim"],
                        "; ".join(seen["pod without claim"]) or "none")]
        if all(ok):
            return ctx.passed("only the container holding the claim saw a GPU "
                              f"({seen['with claim'][0]})")
        failed = next(c for c in ctx.evidence.checks if not c.passed)
        return ctx.failed(f"accelerator access is not isolated: expected that {failed.name}, "
                          f"observed {failed.observed}")
