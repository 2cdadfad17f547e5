"""The verdict every workload probe owes each platform world.

Rows are worlds: the emulated reference platform (aicp's own stack) changed into one real
platform by a builder of tests/kubeapi/worlds_workloads.py, built from ../shared/fixtures
where a sample exists. Columns: pod_autoscaling, robust_controller, cluster_autoscaling,
gang_scheduling, workload_sandboxing (SHOULD), ai_service_metrics. Each cell is (verdict, a
fragment of the reason). The comments name what each row proves; rows marked "before:"
got another verdict from the probes before they judged the requirement rather than one
install of it (each such row fails on the earlier probe).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings, Timing
from aicp.verify.probes.ai_service_metrics import AiServiceMetrics
from aicp.verify.probes.cluster_autoscaling import ClusterAutoscaling
from aicp.verify.probes.gang_scheduling import GangScheduling
from aicp.verify.probes.pod_autoscaling import PodAutoscaling
from aicp.verify.probes.robust_controller import RobustController
from aicp.verify.probes.workload_sandboxing import WorkloadSandboxing
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import objects as o
from tests.kubeapi import worlds_workloads as w
from tests.kubeapi.controllers.autoscaler import status_configmap
from tests.kubeapi.controllers.kubelet import sleeps_forever
from tests.kubeapi.controllers.prometheus import KPS, monitoring
from tests.kubeapi.controllers.sandbox import probe_logs, runs_probe
from tests.kubeapi.custom_metrics import CustomMetrics, gpu_util
from tests.kubeapi.emulator import KubeAPI
from tests.kubeapi.scenarios import reference_platform
from tests.shared import require_shared
from tests.verify.conftest import mismatches, planned

PROBES = (PodAutoscaling, RobustController, ClusterAutoscaling, GangScheduling,
          WorkloadSandboxing, AiServiceMetrics)
P, F, S, E = Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR
NO_METRICS_API = (E, "neither the custom metrics API")
KUBERAY = (P, "KubeRay operator Ready, CRD rayclusters.ray.io Established; webhook "
              "vraycluster.kb.io denied")
NO_AUTOSCALER = (S, "no node autoscaler found")
KUEUE_GPU = (P, "Kueue ClusterQueue aicp: a 4-pod gang ran together")
NO_SANDBOX = (F, "not implemented: no sandbox RuntimeClass")  # a SHOULD left out
NO_MONITORING = (E, "no ServiceMonitor API")


def cells(pa=NO_METRICS_API, rc=KUBERAY, ca=NO_AUTOSCALER, gs=KUEUE_GPU, ws=NO_SANDBOX,
          sm=NO_MONITORING) -> tuple[tuple[Verdict, str], ...]:
    return pa, rc, ca, gs, ws, sm


def _idle_dcgm(kube) -> None:
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": lambda pod: 0.0}).install(kube)


def _loaded_dcgm(kube) -> None:
    CustomMetrics({"DCGM_FI_DEV_GPU_UTIL": gpu_util}).install(kube)


def _gvisor(kube) -> None:
    kube.create(o.runtime_class("gvisor", "runsc"))


def _ca_in_kube_system(kube) -> None:
    status_configmap(kube)
    w._grow_h100(kube, 1)


def _one_gpu(kube) -> None:
    _loaded_dcgm(kube)
    kube.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"][
        "resourceGroups"][0]["flavors"][0]["resources"][2].update(nominalQuota=1))


def _kps_ignore_namespace_selectors(kube) -> None:
    monitoring(kube, selector={"matchLabels": {"release": KPS}}, ns_selector=False,
               ignoreNamespaceSelectors=True)


def _two_prometheuses(kube) -> None:
    """kube-prometheus-stack beside a second Prometheus that serves no query API of its own
    (OpenShift's user-workload Prometheus is queried through Thanos Querier elsewhere:
    docs.openshift.com "Enabling monitoring for user-defined projects"): the probe judges
    the one that answers, not the first by name."""
    monitoring(kube, selector={}, ns_selector={})
    kube.seed([o.namespace("cluster-monitoring"),
               {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
                "metadata": {"name": "user-workload", "namespace": "cluster-monitoring"},
                "spec": {"serviceMonitorSelector": {}, "serviceMonitorNamespaceSelector": {}}}])


def _kps_route_prefix(kube) -> None:
    """Prometheus served under a routePrefix (prometheus-operator
    CommonPrometheusFields.routePrefix; kube-prometheus-stack prometheus.prometheusSpec.
    routePrefix): its query API is /prometheus/api/v1/query."""
    monitoring(kube, selector={}, ns_selector={}, routePrefix="/prometheus")


# world -> (builder applied to the reference platform, its options, the row)
WORLDS: dict[str, tuple[Callable, dict, tuple[tuple[Verdict, str], ...]]] = {
    # aicp's own stack: KubeRay with its webhook, Kueue with GPU quota, nothing else.
    "reference": (lambda kube: None, {}, cells()),
    # before: ERROR on every real cluster (nvidia-smi runs no kernel; fake 85 % for any pod).
    "gpu-loaded": (_loaded_dcgm, {}, cells(pa=(P, "1 -> 2 -> 1 on custom metric "
                                                  "DCGM_FI_DEV_GPU_UTIL (idle 0, n-body "
                                                  "load 85"))),
    "gpu-idle": (_idle_dcgm, {}, cells(pa=(E, "rose under an n-body compute load"))),
    # before: FAIL (the Helm chart ships no webhook).
    "kuberay-helm": (w.kuberay_helm, {"kuberay": False}, cells(
        rc=(P, "it ships no admission webhook for rayclusters, judged without one"))),
    # before: ERROR (no Deployment labelled app.kubernetes.io/name=kuberay-operator).
    "kuberay-kustomize": (w.kuberay_kustomize, {"kuberay": False}, cells(rc=KUBERAY)),
    # before: ERROR (only KubeRay was exercised).
    "kubeflow-trainer": (w.kubeflow_trainer, {"kuberay": False}, cells(
        rc=(P, "Kubeflow Trainer operator Ready, CRD trainjobs.trainer.kubeflow.org "
               "Established; webhook validator.trainjob.trainer.kubeflow.org denied"))),
    # before: ERROR (only the Helm chart's app.kubernetes.io/name=kubeflow-trainer label).
    "kubeflow-trainer-kustomize": (w.kubeflow_trainer_kustomize, {"kuberay": False}, cells(
        rc=(P, "Kubeflow Trainer operator Ready, CRD trainjobs.trainer.kubeflow.org "
               "Established; webhook validator.trainjob.trainer.kubeflow.org denied"))),
    "ca-kube-system": (_ca_in_kube_system, {}, cells(
        ca=(P, "GPU pool h100 scaled up 2 -> 3 nodes"))),
    # before: SKIP, a false N/A for a MUST (only kube-system was looked at).
    "ca-helm-yaml": (functools.partial(w.helm_autoscaler, status="yaml"), {}, cells(
        ca=(P, "GPU pool h100 scaled up 2 -> 3 nodes"))),
    "ca-helm-legacy": (functools.partial(w.helm_autoscaler, status="legacy"), {}, cells(
        ca=(P, "GPU pool h100 scaled up 2 -> 3 nodes"))),
    # before: a 9-minute wait, then FAIL.
    "pool-at-max": (lambda kube: (w.helm_autoscaler(kube), status_configmap(
        kube, "cluster-autoscaler", "cluster-autoscaler-status", w.pool_at_max_status())),
        {}, cells(ca=(E, "every GPU pool is at its maximum node count: h100 (node group "
                         "eks-h100-20260101 at 12/12)"))),
    "karpenter": (w.karpenter, {}, cells(ca=(P, "GPU pool gpu scaled up 2 -> 3 nodes"))),
    # before: SKIP, a false N/A (an image not named cluster-autoscaler; found by its
    # command line now).
    "ca-openshift-clusterapi": (w.openshift_autoscaler, {}, cells(
        ca=(P, "GPU pool h100 scaled up 2 -> 3 nodes"))),
    # before: ERROR (Kueue only).
    "kai": (w.kai_scheduler, {}, cells(gs=(P, "KAI scheduler: a PodGroup of 2 pods ran "
                                              "together"))),
    "volcano": (w.volcano, {}, cells(gs=(P, "Volcano: a PodGroup of 2 pods ran together"))),
    # before: ERROR (GPU quota only).
    "kueue-cpu-quota": (w.kueue_cpu_quota, {}, cells(
        gs=(P, "Kueue ClusterQueue aicp: a 4-pod gang ran together, a job exceeding the "
               "free quota started 0 of 2 pods"))),
    # before: ERROR ("a gang needs at least 2").
    # The HPA's second replica waits for a GPU; scale-up is the HPA's ask, not its pod.
    "one-gpu": (_one_gpu, {"gpu_nodes": 1, "gpus_per_node": 1}, cells(
        pa=(P, "1 -> 2 -> 1 on custom metric DCGM_FI_DEV_GPU_UTIL"),
        gs=(P, "a job exceeding the free quota started 0 of 2 pods"))),
    # before: FAIL (the over-quota job, sized against the on-demand flavor, was rightly
    # admitted to spot). Kueue assigns a flavor only where its nodeLabels match the pod's
    # node selector; the emulated Kueue ignores node selectors, so this row waits for it.
    "kueue-spot-and-on-demand": (w.kueue_spot_and_on_demand, {}, cells(
        gs=(P, "Kueue ClusterQueue aicp: a 4-pod gang ran together, a job exceeding the "
               "free quota started 0 of"))),
    # before: ERROR (an over-quota job sized against the nominal quota was admitted by
    # borrowing); the cohort's lendable quota is the queue's too.
    "kueue-cohort": (w.kueue_cohort, {}, cells(
        gs=(P, "Kueue ClusterQueue aicp: a 4-pod gang ran together, a job exceeding the "
               "free quota started 0 of 3 pods"))),
    "kueue-pinned-namespaces": (w.kueue_pinned_namespaces, {}, cells(
        gs=(E, "selects namespaces by kubernetes.io/metadata.name"))),
    # before: only nvidia.com/gpu was a GPU.
    "mig-mixed": (lambda kube: (w.mig_pool(kube), w.kueue_mig_quota(kube),
                                status_configmap(kube)), {}, cells(
        ca=(P, "GPU pool a100-mig scaled up 1 -> 2 nodes"),
        gs=(P, "Kueue ClusterQueue aicp: a 4-pod gang ran together"))),
    # before: no unsandboxed control pod; no host-process or host-path checks.
    "gvisor": (_gvisor, {}, cells(ws=(P, "RuntimeClass gvisor (handler runsc) ran a pod on "
                                         "kernel 4.4.0, unlike an unsandboxed pod"))),
    # before: FAIL (the ServiceMonitor beside Prometheus cannot reach the probe's namespace).
    "kps-ignore-namespace-selectors": (_kps_ignore_namespace_selectors, {}, cells(
        sm=(P, "discovered the workload through a ServiceMonitor"))),
    # before: ERROR (the first Prometheus by name, which has no query API Service).
    "two-prometheuses": (_two_prometheuses, {}, cells(
        sm=(P, "discovered the workload through a ServiceMonitor"))),
    # before: ERROR (queries sent to / instead of the routePrefix).
    "kps-route-prefix": (_kps_route_prefix, {}, cells(
        sm=(P, "discovered the workload through a ServiceMonitor"))),
}


def _logs(pod: dict, container: str, kube) -> str:
    return probe_logs(pod, container, kube) if runs_probe(pod, container) else ""


# over_quota_wait: gang_scheduling watches the over-quota job this long.
FAST = Timing(timeout=3.0, poll=0.05, overrides={"over_quota_wait": 0.6})


def verdicts(kube: KubeAPI, tmp_path) -> list[tuple[Verdict, str]]:
    client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
    out = []
    for probe in PROBES:  # one at a time, as the runner runs exclusive probes
        level = "SHOULD" if probe is WorkloadSandboxing else "MUST"
        report = Runner(client, Settings("ww1", "1.37", images.catalog(), timing=FAST),
                        cleanup_timeout=10).run(planned(probe, level=level))
        assert report.leftovers == [], probe.id
        result = report.outcomes[0].result
        out.append((result.verdict, result.reason))
    return out


# Worlds that need an emulator behaviour another engineer adds (issue #22 section 4); each
# turns green, strictly, once the emulator has it.
# Worlds whose verdict needs an emulator behaviour not built yet (none now).
NEEDS_EMULATOR: dict[str, str] = {}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NEEDS_EMULATOR[n]))
    if n in NEEDS_EMULATOR else n for n in WORLDS])
def test_every_workload_probe_owes_each_platform_world_its_verdict(name, tmp_path):
    require_shared("fixtures")
    build, options, row = WORLDS[name]
    kube = reference_platform("1.35", logs=_logs, **{"gpu_nodes": 2, **options})
    sleeps_forever(kube)
    kube.start()
    try:
        build(kube)
        kube.settle()
        got = verdicts(kube, tmp_path)
    finally:
        kube.stop()
    assert mismatches(PROBES, got, row) == []


def test_the_runner_gives_a_probe_the_budget_its_own_timeouts_need(kubeapi_factory, tmp_path):
    """--probe-timeout is a floor: a cold GPU node's 20-minute scale-up is not cut at 10."""
    from aicp.verify.probe import Probe

    class Slow(Probe):
        id, category = "cluster_autoscaling", "schedulingOrchestration"

        @classmethod
        def budget(cls, settings):
            return 3.0

        def run(self, ctx):
            ctx.sleep(1.0)
            ctx.check("outlived --probe-timeout", True, "1 s > 0.2 s")
            return ctx.passed("waited 1 s")

    kube = kubeapi_factory("empty")
    client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
    report = Runner(client, Settings("rb1", "1.35"), probe_timeout=0.2,
                    cleanup_timeout=5).run(planned(Slow))
    assert report.outcomes[0].result.verdict is P, report.outcomes[0].result.reason
