"""driver_runtime_management: every GPU node runs one verified driver and CUDA version.

Read-only. Per GPU node, the driver and CUDA driver versions come from the DRA driver's
ResourceSlice device attributes ``driverVersion``/``cudaDriverVersion`` (preferred, as
the requirement asks once DRA exposes them; NVIDIA DRA driver 0.4.x publishes both), else
from GPU Feature Discovery's node labels ``nvidia.com/cuda.driver-version.full`` /
``nvidia.com/cuda.runtime-version.full`` (or their parts, and the deprecated
``nvidia.com/cuda.driver.major/minor/rev`` and ``nvidia.com/cuda.runtime.major/minor``).
Versions compare numerically (``580.65.06`` from a label equals ``580.65.6`` from DRA's
semver). A GPU Operator ``ClusterPolicy`` (nvidia.com/v1), when present, must be
``status.state: ready`` (driver and container toolkit validated on the nodes); the nodes'
container runtimes are recorded.

PASS: every GPU node reports the same driver (and CUDA) version and the source is named.
FAIL: versions differ (nodes and versions named), some nodes report none while others
do, or the ClusterPolicy is not ready. SKIP: no GPU node. ERROR: no source reports any
version (no DRA attributes, no GFD labels).
"""

from __future__ import annotations

from ..probe import Context, Probe
from ..result import Result
from . import _gpus

POLICIES = "/apis/nvidia.com/v1/clusterpolicies"


def _normal(version: str) -> tuple:
    parts = []
    for p in str(version).strip().lstrip("v").split("."):
        parts.append(int(p) if p.isdigit() else p)
    return tuple(parts)


def _from_labels(labels: dict[str, str], kind: str) -> str | None:
    """``driver`` or ``runtime`` version from GFD labels, new names first."""
    full = labels.get(f"nvidia.com/cuda.{kind}-version.full")
    if full:
        return full
    last = ("revision", "rev") if kind == "driver" else (None, None)
    for prefix, rev in ((f"nvidia.com/cuda.{kind}-version", last[0]),
                        (f"nvidia.com/cuda.{kind}", last[1])):
        major, minor = labels.get(f"{prefix}.major"), labels.get(f"{prefix}.minor")
        if major and minor:
            revision = labels.get(f"{prefix}.{rev}") if rev else None
            return ".".join(p for p in (major, minor, revision) if p)
    return None


class DriverRuntimeManagement(Probe):
    id = "driver_runtime_management"
    category = "accelerators"
    levels = {"1.35": "SHOULD", "1.36": "SHOULD", "1.37": "SHOULD"}
    mutating = False
    title = "Accelerator driver and runtime versions are verifiable and consistent"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find GPU nodes"):
            slices, gpu_nodes, not_applicable = _gpus.survey(ctx)
            if not_applicable:
                return ctx.skip(not_applicable)
        with ctx.step("read driver versions"):
            published = _gpus.devices_by_node(slices)
            report: dict[str, dict] = {}
            for node_name, node in sorted(gpu_nodes.items()):
                report[node_name] = self._versions(node, published.get(node_name, []))
            ctx.observe("versions", report)
        with ctx.step("read the GPU Operator ClusterPolicy"):
            policies = _gpus.list_or_none(ctx, POLICIES)
            states = {_gpus.name(p): (p.get("status") or {}).get("state", "(no status)")
                      for p in policies or []}
            if policies is not None:
                ctx.observe("clusterPolicies", states)
        reporting = {n: r for n, r in report.items() if r.get("driver")}
        silent = sorted(set(report) - set(reporting))
        if not reporting:
            return ctx.error(f"no GPU node reports its driver version: {len(report)} GPU nodes "
                             "have neither DRA device attributes driverVersion nor GPU Feature "
                             "Discovery labels nvidia.com/cuda.driver-version.*")
        drivers = _group(reporting, "driver")
        cudas = _group({n: r for n, r in reporting.items() if r.get("cuda")}, "cuda")
        sources = sorted({r["source"] for r in reporting.values()})
        ok = [ctx.check("every GPU node reports its driver version", not silent,
                        f"{len(reporting)} of {len(report)}"
                        + (f"; none from {', '.join(silent)}" if silent else "")),
              ctx.check("one driver version on every GPU node", len(drivers) == 1,
                        _describe(drivers)),
              ctx.check("one CUDA driver version on every GPU node", len(cudas) <= 1,
                        _describe(cudas) or "not reported")]
        live = {n: s for n, s in states.items() if s != "ignored"}
        if policies:
            ok.append(ctx.check("the GPU Operator ClusterPolicy is ready",
                                bool(live) and all(s == "ready" for s in live.values()),
                                ", ".join(f"{n}: {s}" for n, s in states.items())))
        runtimes = sorted({r["containerRuntime"] for r in report.values()
                           if r.get("containerRuntime")})
        ctx.observe("containerRuntimes", runtimes)
        if all(ok):
            driver = next(iter(drivers))
            cuda = f", CUDA {next(iter(cudas))}" if cudas else ""
            policy = (f"; ClusterPolicy {', '.join(live)} ready" if live else "")
            return ctx.passed(f"all {len(report)} GPU nodes run driver {driver}{cuda} "
                              f"(source: {', '.join(sources)}){policy}")
        if len(drivers) > 1:
            return ctx.failed(f"GPU nodes run different driver versions: {_describe(drivers)}")
        if len(cudas) > 1:
            return ctx.failed(f"GPU nodes report different CUDA versions: {_describe(cudas)}")
        if silent:
            return ctx.failed(f"{len(silent)} of {len(report)} GPU nodes report no driver "
                              f"version ({', '.join(silent)}) while the others report "
                              f"{_describe(drivers)} (source: {', '.join(sources)})",
                              partial=True)
        return ctx.failed("the GPU Operator ClusterPolicy is not ready: "
                          + ", ".join(f"{n}: {s}" for n, s in states.items()), partial=True)

    @staticmethod
    def _versions(node: dict, devices: list[tuple[str, dict]]) -> dict:
        out: dict = {"containerRuntime": ((node.get("status") or {}).get("nodeInfo") or {}).get(
            "containerRuntimeVersion")}
        drivers = {str(v) for _, d in devices if (v := _gpus.attribute(d, "driverVersion"))}
        cudas = {str(v) for _, d in devices if (v := _gpus.attribute(d, "cudaDriverVersion"))}
        if drivers:
            out.update(source="DRA ResourceSlice attributes", driver=", ".join(sorted(drivers)),
                       cuda=", ".join(sorted(cudas)) or None, devices=len(devices))
            return out
        labels = _gpus.labels(node)
        driver = _from_labels(labels, "driver")
        if driver:
            out.update(source="GPU Feature Discovery labels", driver=driver,
                       cuda=_from_labels(labels, "runtime"))
        return out


def _group(report: dict[str, dict], key: str) -> dict[str, list[str]]:
    """Version (as first seen) → nodes, versions equal when numerically equal."""
    groups: dict[tuple, tuple[str, list[str]]] = {}
    for node_name, r in sorted(report.items()):
        for version in r[key].split(", "):
            shown, names = groups.setdefault(_normal(version), (version, []))
            if node_name not in names:
                names.append(node_name)
    return {shown: names for shown, names in groups.values()}


def _describe(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{v} on {', '.join(n)}" for v, n in groups.items())
