"""driver_runtime_management: every GPU node runs one verified driver and CUDA version.

Read-only. Per GPU node, the driver and CUDA driver versions come from the DRA driver's
ResourceSlice device attributes ``driverVersion``/``cudaDriverVersion`` (preferred, as
the requirement asks once DRA exposes them; NVIDIA DRA driver 0.4.x publishes both), else
from GPU Feature Discovery's node labels ``nvidia.com/cuda.driver-version.full`` /
``nvidia.com/cuda.runtime-version.full`` (or their parts, and the deprecated
``nvidia.com/cuda.driver.major/minor/rev`` and ``nvidia.com/cuda.runtime.major/minor``).
Versions compare numerically at the precision they share, as the WG suite's
``versionsCompatible`` does (kubernetes-sigs/ai-conformance
test/driver_runtime_management_test.go): ``580.65.06`` from a label equals ``580.65.6``
from DRA's semver, and the DRA driver's ``cudaDriverVersion`` ``12.8.0`` equals GFD's
``12.8`` (the DRA driver parses ``<major>.<minor>`` as semver: kubernetes-sigs/
dra-driver-nvidia-gpu cmd/gpu-kubelet-plugin/nvlib.go; GFD's ``runtime-version.full`` is
``MAJOR.MINOR``: NVIDIA/k8s-device-plugin v0.20 internal/lm/nvml.go newVersionLabeler), so
a cluster with a DRA pool and a device-plugin pool is not called inconsistent.

Then what the WG suite runs (same file, ``DriverAndRuntimeCompatibility``): one pod from a
plain image without CUDA (``busybox``; the suite uses ``ubuntu:22.04``) given one GPU (a
DRA claim, else the device-plugin resource), placed by the scheduler, must see exactly one
``/dev/nvidia[0-9]*`` device, find ``nvidia-smi`` injected by the container runtime
configuration (CDI or the runtime hook) and report through it the driver version its node
advertises. VM GPU hosts are left out (no container driver there), named in the
evidence. A GPU Operator ``ClusterPolicy`` (nvidia.com/v1), when present, must be
``status.state: ready`` (driver and container toolkit validated on the nodes); the nodes'
container runtimes are recorded.

Its cases, in order:

1. ``_gpus.gpu_nodes_to_exercise``: the container-GPU nodes (SKIP when none);
2. ``_every_gpu_node_reports_its_versions``: each node's driver and CUDA versions and their
   source (ERROR when no source reports any) and its container runtime;
3. ``_one_driver_and_cuda_version_on_every_gpu_node``;
4. ``_the_gpu_operator_cluster_policy_is_ready`` (judged only where one exists);
5. ``_a_plain_image_pod_given_one_gpu_gets_the_driver``: the WG suite's pod.

Several driver versions across pools are allowed (the GPU Operator's ``NVIDIADriver``
resource exists to run one driver per node pool: NVIDIA/gpu-operator api/nvidia/v1alpha1
nvidiadriver_types.go, ``nodeSelector``): what must hold is that each node runs the driver
its mechanism reports (the plain-image pod's check) and that the nodes of one pool agree.
A pool is the node's platform pool label (``_gpus.POOL_LABELS``); nodes without one form
one pool, as before. A pool that publishes no version at all is named, not failed (the WG
test's WARNING); a node silent beside pool-mates that report fails.

PASS: the GPU nodes of each pool report one driver (and CUDA) version, the source is named,
and the plain-image pod saw its GPU and the advertised driver. FAIL: versions differ within
a pool (nodes and versions named), some nodes report none while others do, the
ClusterPolicy is not ready,
or the pod saw no GPU, no injected ``nvidia-smi`` or another driver. SKIP: no GPU node.
ERROR: no source reports any version (no DRA attributes, no GFD labels), or the pod never
finished.
"""

from __future__ import annotations

import re

from ..probe import Context, Fail, Probe, ProbeError, Skip
from . import _gpus, _pods, _vendors

POLICIES = "/apis/nvidia.com/v1/clusterpolicies"
RESULT = re.compile(r"^RESULT: (\w+)=(.*)$", re.M)
# The WG suite's NVIDIA driver probe, cut to what is judged here: nvidia-smi present only
# where the runtime injected it, and the driver version NVML reports through it.
DRIVER_SCRIPT = (_pods.PROBE_SCRIPT.split("; nvidia-smi")[0] + "; "
                 "if command -v nvidia-smi >/dev/null 2>&1; then "
                 "echo \"RESULT: NVIDIA_SMI=$(command -v nvidia-smi)\"; "
                 "echo \"RESULT: ACTUAL_DRIVER_VERSION=$(nvidia-smi --query-gpu=driver_version "
                 "--format=csv,noheader,nounits | head -n 1)\"; "
                 "else echo \"RESULT: NVIDIA_SMI=\"; fi")


def _parts(version: str) -> tuple[int, ...] | None:
    v = re.split(r"[-+]", str(version).strip().removeprefix("v"), maxsplit=1)[0]
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return None


def compatible(a: str, b: str) -> bool:
    """Equal at the precision both share (module doc); non-numeric versions must be
    equal ignoring case."""
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None:
        return bool(a.strip()) and a.strip().lower() == b.strip().lower()
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


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
    mutating = True  # the plain-image pod (module doc)
    title = "Accelerator driver and runtime versions are verifiable and consistent"

    timeouts = {
        "pod_timeout": 300.0,  # the plain-image pod: a free GPU and an image pull
    }

    def cases(self, ctx: Context) -> str:
        slices, gpu_nodes = _gpus.gpu_nodes_to_exercise(ctx, must=False)
        gpu_nodes = _nodes_of_vendors_with_driver_facts(ctx, slices, gpu_nodes)
        report = _every_gpu_node_reports_its_versions(ctx, slices, gpu_nodes)
        drivers, cudas, silent = _one_driver_and_cuda_version_on_every_gpu_node(
            ctx, report, {n: _gpus.pool_of(node) for n, node in gpu_nodes.items()})
        states = _the_gpu_operator_cluster_policy_is_ready(ctx)
        pod = _a_plain_image_pod_given_one_gpu_gets_the_driver(ctx, slices, gpu_nodes, report)
        sources = sorted({r["source"] for r in report.values() if r.get("driver")})
        live = {n: s for n, s in states.items() if s != "ignored"}
        if all(c.passed for c in ctx.evidence.checks):
            policy = (f"; ClusterPolicy {', '.join(live)} ready" if live else "")
            quiet = ctx.evidence.observations.get("poolsWithoutDriverVersion") or {}
            if quiet:
                policy += (f"; {', '.join(quiet)} publish no driver version (pools "
                           f"{', '.join(sorted(set(quiet.values())))}): the plain-image pod "
                           "is the only check there, as in the WG test")
            if len(drivers) > 1 or len(cudas) > 1:
                return (f"each of the {len(report)} GPU nodes runs the driver its pool "
                        f"reports: {_describe(drivers)} (source: {', '.join(sources)})"
                        f"{policy}; {ctx.evidence.observations['plainPod']}"
                        + _gpus.left_out(ctx))
            driver = next(iter(drivers))
            cuda = f", CUDA {next(iter(cudas))}" if cudas else ""
            count = (f"all {len(report)}" if not quiet else
                     f"the {len(report) - len(quiet)} reporting")
            return (f"{count} GPU nodes run driver {driver}{cuda} "
                    f"(source: {', '.join(sources)}){policy}; "
                    f"{ctx.evidence.observations['plainPod']}" + _gpus.left_out(ctx))
        if not pod:
            raise Fail(f"a plain-image pod given one GPU did not get a working driver: "
                       f"{ctx.evidence.checks[-1].observed}")
        split = _split_pool(ctx)
        if split and split[0] == "driver":
            raise Fail(f"GPU nodes run different driver versions: {split[1]}")
        if split:
            raise Fail(f"GPU nodes report different CUDA versions: {split[1]}")
        if silent:
            raise Fail(f"{len(silent)} of {len(report)} GPU nodes report no driver "
                       f"version ({', '.join(silent)}) while the others report "
                       f"{_describe(drivers)} (source: {', '.join(sources)})", partial=True)
        raise Fail("the GPU Operator ClusterPolicy is not ready: "
                   + ", ".join(f"{n}: {s}" for n, s in states.items()), partial=True)


def _nodes_of_vendors_with_driver_facts(ctx: Context, slices: list[dict] | None,
                                        gpu_nodes: dict[str, dict]) -> dict[str, dict]:
    """The nodes whose vendor row names where the driver version is published (NVIDIA's
    GFD labels and DRA attributes); the others are left out and named (``_vendors``)."""
    published = _gpus.devices_by_node(slices)
    left = {}
    for n, node in sorted(gpu_nodes.items()):
        vendor = _vendors.of_node(node, {d for d, _ in published.get(n, [])})
        if vendor is not None and not vendor.driver_version_labels:
            left[n] = (f"{vendor.name} {vendor.kind}: the vendor table names no driver "
                       "version source for it")
    if left:
        ctx.observe("acceleratorsLeftOut", left)
        gpu_nodes = {n: node for n, node in gpu_nodes.items() if n not in left}
        if not gpu_nodes:
            raise Skip("not applicable: no node of an accelerator whose driver facts the "
                       "vendor table knows (" + "; ".join(f"{n}: {w}" for n, w in left.items())
                       + ")")
    return gpu_nodes


def _group(report: dict[str, dict], key: str) -> dict[str, list[str]]:
    """Version (as first seen) → nodes, versions equal when ``compatible``."""
    groups: dict[str, list[str]] = {}
    for node_name, r in sorted(report.items()):
        for version in r[key].split(", "):
            shown = next((g for g in groups if compatible(g, version)), version)
            names = groups.setdefault(shown, [])
            if node_name not in names:
                names.append(node_name)
    return groups


def _describe(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{v} on {', '.join(n)}" for v, n in groups.items())


def _every_gpu_node_reports_its_versions(ctx: Context, slices: list[dict] | None,
                                         gpu_nodes: dict[str, dict]) -> dict[str, dict]:
    """Node name → its versions, their source and its container runtime (``_versions``)."""
    with ctx.step("read driver versions"):
        published = _gpus.devices_by_node(slices)
        report: dict[str, dict] = {}
        for node_name, node in sorted(gpu_nodes.items()):
            report[node_name] = _versions(node, published.get(node_name, []))
        ctx.observe("versions", report)
        ctx.observe("containerRuntimes", sorted({r["containerRuntime"] for r in report.values()
                                                 if r.get("containerRuntime")}))
        if not any(r.get("driver") for r in report.values()):
            raise ProbeError(f"no GPU node reports its driver version: {len(report)} GPU "
                             "nodes have neither DRA device attributes driverVersion nor GPU "
                             "Feature Discovery labels nvidia.com/cuda.driver-version.*")
    return report


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


def _one_driver_and_cuda_version_on_every_gpu_node(
        ctx: Context, report: dict[str, dict], pools: dict[str, str] | None = None
) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Driver and CUDA versions → their nodes, and the nodes reporting none; the versions
    must agree within each pool (module doc)."""
    reporting = {n: r for n, r in report.items() if r.get("driver")}
    pools = pools or {}
    # A whole pool publishing no version is the platform's mechanism (GKE runs no GPU
    # Feature Discovery): the WG test logs "WARNING: node ... advertises no accelerator
    # driver version" and lets the in-container probe verify the stack
    # (kubernetes-sigs/ai-conformance test/driver_runtime_management_test.go
    # inspectPlatformDriverRuntimeMechanism). A node silent beside pool-mates that report
    # is an inconsistency within the pool, judged as before.
    reporting_pools = {pools.get(n, "") for n in reporting}
    quiet = sorted(n for n in set(report) - set(reporting)
                   if pools.get(n, "") not in reporting_pools)
    if quiet:
        ctx.observe("poolsWithoutDriverVersion", {
            n: pools.get(n, "") or "(no pool label)" for n in quiet})
        ctx.log("WARNING: " + ", ".join(quiet) + " advertise no driver version (their "
                "pool publishes none); the plain-image pod verifies the driver stack")
    silent = sorted(set(report) - set(reporting) - set(quiet))
    drivers = _group(reporting, "driver")
    cudas = _group({n: r for n, r in reporting.items() if r.get("cuda")}, "cuda")
    ctx.check("every GPU node reports its driver version", not silent,
              f"{len(reporting)} of {len(report)}"
              + (f"; none from {', '.join(silent)}" if silent else "")
              + (f"; {', '.join(quiet)} in pools publishing none" if quiet else ""))
    by_pool: dict[str, list[str]] = {}
    for n in sorted(reporting):
        by_pool.setdefault(pools.get(n, ""), []).append(n)
    if len(by_pool) > 1:
        ctx.observe("driverPools", {p or "(no pool label)": _describe(_group(
            {n: reporting[n] for n in ns}, "driver")) for p, ns in by_pool.items()})
    split: list[tuple[str, str]] = []
    for kind in ("driver", "cuda"):
        for nodes in by_pool.values():
            groups = _group({n: reporting[n] for n in nodes if reporting[n].get(kind)}, kind)
            if len(groups) > 1:
                split.append((kind, _describe(groups)))
    ctx.observe("poolSplit", split)
    one_pool = len(by_pool) <= 1
    scope = "every GPU node" if one_pool else "the GPU nodes of each pool"
    ctx.check(f"one driver version on {scope}", not any(k == "driver" for k, _ in split)
              and bool(drivers), _describe(drivers))
    ctx.check(f"one CUDA driver version on {scope}", not any(k == "cuda" for k, _ in split),
              _describe(cudas) or "not reported")
    return drivers, cudas, silent


def _split_pool(ctx: Context) -> tuple[str, str] | None:
    """The first (kind, versions) a pool disagrees on, as ``_one_driver...`` recorded it."""
    split = ctx.evidence.observations.get("poolSplit") or []
    return tuple(split[0]) if split else None  # type: ignore[return-value]


def _the_gpu_operator_cluster_policy_is_ready(ctx: Context) -> dict[str, str]:
    """Each ClusterPolicy's ``status.state`` (none: no GPU Operator, nothing judged)."""
    with ctx.step("read the GPU Operator ClusterPolicy"):
        policies = _gpus.list_or_none(ctx, POLICIES)
        states = {_gpus.name(p): (p.get("status") or {}).get("state", "(no status)")
                  for p in policies or []}
        if policies is not None:
            ctx.observe("clusterPolicies", states)
    live = {n: s for n, s in states.items() if s != "ignored"}
    if policies:
        ctx.check("the GPU Operator ClusterPolicy is ready",
                  bool(live) and all(s == "ready" for s in live.values()),
                  ", ".join(f"{n}: {s}" for n, s in states.items()))
    return states


def _a_plain_image_pod_given_one_gpu_gets_the_driver(
        ctx: Context, slices: list[dict] | None, gpu_nodes: dict[str, dict],
        report: dict[str, dict]) -> bool:
    """The WG suite's pod (module doc), as its check."""
    published = _gpus.devices_by_node(slices)
    with ctx.step("run a plain-image pod with one GPU"):
        dc = _pods.device_class(ctx, slices) if any(
            published.get(n) for n in gpu_nodes) else None
        resources = sorted({r for n, node in gpu_nodes.items() if not published.get(n)
                            for r in _gpus.gpu_resources(node)},
                           key=lambda r: (r != "nvidia.com/gpu", r))
        if dc is None and not resources:
            raise ProbeError("no DeviceClass selects the published GPUs and no node "
                             "advertises a device-plugin GPU resource: no pod can be "
                             "given a GPU")
        ns = ctx.namespace()
        if dc is not None:
            _pods.claim_template(ctx, ns, "one-gpu", dc)
            holder: dict = {"resources": {"claims": [{"name": "gpu"}]}}
            claims = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
        else:
            holder, claims = {"resources": {"limits": {resources[0]: 1}}}, None
        _pods.gpu_pod(ctx, ns, "plain", [{"name": "prober", **holder}], claims=claims,
                      image="busybox", script=DRIVER_SCRIPT)
        pod = _pods.wait_finished(ctx, ns, "plain", ctx.timeout("pod_timeout"))
        if pod is None:
            raise ProbeError(f"the plain-image pod with one GPU did not finish within "
                             f"{ctx.timeout('pod_timeout'):g}s (no free GPU, or the image "
                             "cannot be pulled)")
        text = _pods.logs(ctx, ns, "plain", "prober")
    node = pod["spec"].get("nodeName", "")
    results = dict(RESULT.findall(text))
    count = _pods.device_nodes(text)
    smi, seen = results.get("NVIDIA_SMI", "").strip(), results.get(
        "ACTUAL_DRIVER_VERSION", "").strip()
    advertised = (report.get(node) or {}).get("driver") or ""
    problems = []
    if count != 1:
        problems.append(f"{count} {_pods.DEVICE_GLOB} device(s), expected 1")
    if not smi:
        problems.append("nvidia-smi was not injected into the container")
    elif not seen:
        problems.append("nvidia-smi reported no driver version")
    elif advertised and not any(compatible(v, seen) for v in advertised.split(", ")):
        problems.append(f"driver {seen} while {node} advertises {advertised}")
    observed = "; ".join(problems) or (
        f"on {node}: 1 device, nvidia-smi at {smi}, driver {seen}"
        + (f" (advertised {advertised})" if advertised else ""))
    ctx.observe("plainPod", f"a plain-image pod with one GPU {observed}")
    return ctx.check("a plain-image pod given one GPU sees it, gets nvidia-smi injected "
                     "and the advertised driver", not problems, observed)
