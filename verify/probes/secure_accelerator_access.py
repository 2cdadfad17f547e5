"""secure_accelerator_access: only a container that claimed an accelerator can see one.

The upstream test's three cases, each read from ``nvidia-smi -L`` in the pod's logs: a
container with a DRA claim sees its device; a pod without a claim sees none; a second
container of the claiming pod, without the claim, sees none.

GPUs offered only through the device plugin (``nvidia.com/gpu`` in allocatable, no DRA
devices published for the node) get the same three cases with ``limits: nvidia.com/gpu:
1`` instead of a claim, pinned to those nodes; the pod without a request runs on the node
the requesting pod ran on, where an unrequested container seeing the node's GPUs (the
CUDA image's ``NVIDIA_VISIBLE_DEVICES=all`` honoured for it) is the leak. A cluster with
both kinds of GPU nodes gets both paths.
"""

from __future__ import annotations

from ..probe import Context, Probe
from ..result import Result
from . import _gpus, _pods

POD_TIMEOUT = 300.0


class SecureAcceleratorAccess(Probe):
    id = "secure_accelerator_access"
    category = "security"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    mutating = True
    title = "Accelerator access is isolated by DRA claims or device-plugin requests"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find GPU nodes"):
            slices, gpu_nodes, not_applicable = _gpus.survey(ctx)
            if not_applicable:
                return ctx.skip(not_applicable)
            published = _gpus.devices_by_node(slices)
            plugin_nodes = sorted(n for n, node in gpu_nodes.items() if n not in published
                                  and _gpus.allocatable(node).get("nvidia.com/gpu", 0) > 0)
            ctx.observe("devicePluginNodes", plugin_nodes)
        with ctx.step("find a DeviceClass"):
            dc = _pods.device_class(ctx) if slices is not None else None
            if dc is None and not plugin_nodes:
                return ctx.error("no DeviceClass exists and no node advertises nvidia.com/gpu: "
                                 "install the accelerator's DRA driver or device plugin")
        with ctx.step("create namespace"):
            ns = ctx.namespace()
        seen_by = []
        if dc is not None:
            result = self._dra(ctx, ns, dc)
            if result is not None:
                return result
            seen_by.append(f"only the container holding the claim saw a GPU "
                           f"({ctx.evidence.observations['draGpu']})")
        if plugin_nodes:
            result = self._device_plugin(ctx, ns, plugin_nodes)
            if result is not None:
                return result
            seen_by.append(f"only the container requesting nvidia.com/gpu saw a GPU "
                           f"({ctx.evidence.observations['devicePluginGpu']})")
        if all(c.passed for c in ctx.evidence.checks):
            return ctx.passed("; ".join(seen_by))
        failed = next(c for c in ctx.evidence.checks if not c.passed)
        return ctx.failed(f"accelerator access is not isolated: expected that {failed.name}, "
                          f"observed {failed.observed}")

    def _dra(self, ctx: Context, ns: str, dc: str) -> Result | None:
        with ctx.step("create a ResourceClaimTemplate"):
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
        ctx.check("a container with a claim sees exactly its one GPU",
                  len(seen["with claim"]) == 1, "; ".join(seen["with claim"]) or "none")
        ctx.check("the claiming pod's second container sees no GPU",
                  not seen["second container"], "; ".join(seen["second container"]) or "none")
        ctx.check("a pod without a claim sees no GPU", not seen["pod without claim"],
                  "; ".join(seen["pod without claim"]) or "none")
        ctx.observe("draGpu", "; ".join(seen["with claim"]))
        return None

    def _device_plugin(self, ctx: Context, ns: str, nodes: list[str]) -> Result | None:
        with ctx.step("start a pod requesting nvidia.com/gpu: 1"):
            _pods.pinned_gpu_pod(ctx, ns, "dp-requesting", [
                {"name": "with-gpu", "resources": {"limits": {"nvidia.com/gpu": 1}}},
                {"name": "without-gpu"}], nodes)
            pod = _pods.wait_finished(ctx, ns, "dp-requesting", POD_TIMEOUT)
            if pod is None:
                return ctx.error(f"pod dp-requesting did not finish within {POD_TIMEOUT:g}s "
                                 f"(no free nvidia.com/gpu on {', '.join(nodes)}, or the image "
                                 "cannot be pulled)")
            node = pod["spec"]["nodeName"]
            ctx.observe("devicePluginNode", node)
        with ctx.step("start a pod without a request on the same node"):
            _pods.pinned_gpu_pod(ctx, ns, "dp-unrequested", [{"name": "main"}], [node])
            if _pods.wait_finished(ctx, ns, "dp-unrequested", POD_TIMEOUT) is None:
                return ctx.error(f"pod dp-unrequested did not finish within {POD_TIMEOUT:g}s "
                                 f"on node {node}")
        with ctx.step("read nvidia-smi -L from the device-plugin pods"):
            seen = {key: _pods.gpus_seen(_pods.logs(ctx, ns, pod_name, container))
                    for key, (pod_name, container) in {
                        "with request": ("dp-requesting", "with-gpu"),
                        "second container": ("dp-requesting", "without-gpu"),
                        "pod without request": ("dp-unrequested", "main")}.items()}
        ctx.check("a container requesting nvidia.com/gpu: 1 sees exactly one GPU",
                  len(seen["with request"]) == 1, "; ".join(seen["with request"]) or "none")
        ctx.check("the requesting pod's second container sees no GPU",
                  not seen["second container"], "; ".join(seen["second container"]) or "none")
        ctx.check("a pod without a request on the same GPU node sees no GPU",
                  not seen["pod without request"],
                  "; ".join(seen["pod without request"]) or "none")
        ctx.observe("devicePluginGpu", "; ".join(seen["with request"]))
        return None
