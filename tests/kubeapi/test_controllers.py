"""The reference platform's controllers, observed through the client."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.shared import require_shared

from . import objects as o
from .clock import Clock
from .controllers.kubelet import kubelet
from .controllers.scheduler import Scheduler
from .fixtures import RUNNING

GPU_TOLERATION = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
pytestmark = pytest.mark.kubeapi("reference-platform")


@pytest.fixture(autouse=True)
def _needs_shared():
    require_shared("crds")


def wait_for(check, resyncs: int = 2):
    """``check()`` once every cluster of the test has settled; failing that, after a resync
    of every controller (what a level-triggered controller converges to without a further
    write), at most ``resyncs`` times. No wall clock: a loaded machine only takes longer."""
    for attempt in range(resyncs + 1):
        for kube in RUNNING:
            if attempt:
                kube.resync()
            kube.settle()
        value = check()
        if value:
            return value
    raise AssertionError(f"condition not met after {resyncs} resyncs of every controller")


def test_reference_platform_has_tainted_h100_nodes_and_addon_crds(kube_client):
    core = client.CoreV1Api(kube_client)
    gpu = core.list_node(label_selector="nvidia.com/gpu.present=true").items
    assert [n.metadata.name for n in gpu] == ["gpu-h100-0", "gpu-h100-1"]
    assert gpu[0].status.allocatable["nvidia.com/gpu"] == "8"
    assert gpu[0].spec.taints[0].key == "nvidia.com/gpu"
    groups = {g.name for g in client.ApisApi(kube_client).get_api_versions().groups}
    assert {"kueue.x-k8s.io", "resource.nvidia.com", "inference.networking.k8s.io", "ray.io",
            "gateway.networking.k8s.io", "nvidia.com"} <= groups
    slices = client.ResourceV1Api(kube_client).list_resource_slice().items
    assert len(slices) == 2 and len(slices[0].spec.devices) == 8


def test_pod_without_toleration_stays_off_gpu_nodes(kube_client):
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", o.pod("cpu", requests={"cpu": "1"}))
    pod = wait_for(lambda: core.read_namespaced_pod("cpu", "default").spec.node_name)
    assert pod.startswith("system-")


def test_gpu_request_larger_than_any_node_is_unschedulable_with_an_event(kube_client):
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", o.pod("big", limits={"nvidia.com/gpu": "9"},
                                                tolerations=GPU_TOLERATION))
    cond = wait_for(lambda: next((c for c in core.read_namespaced_pod("big", "default")
                                  .status.conditions or [] if c.type == "PodScheduled"), None))
    assert cond.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in cond.message
    events = wait_for(lambda: core.list_namespaced_event(
        "default", field_selector="involvedObject.name=big").items)
    assert events[0].reason == "FailedScheduling"


def test_dra_pod_gets_a_claim_allocated_devices_and_logs_them(kube_client):
    core = client.CoreV1Api(kube_client)
    dra = client.ResourceV1Api(kube_client)
    dra.create_namespaced_resource_claim_template(
        "ai-workloads", o.gpu_claim_template("two-gpus", "ai-workloads", count=2))
    core.create_namespaced_pod("ai-workloads", o.pod(
        "smi", "ai-workloads", command=["nvidia-smi", "-L"], claims={"gpu": "two-gpus"},
        tolerations=GPU_TOLERATION))
    pod = wait_for(lambda: (p := core.read_namespaced_pod("smi", "ai-workloads"))
                   .status.phase == "Succeeded" and p)
    claim_name = pod.status.resource_claim_statuses[0].resource_claim_name
    assert claim_name.startswith("smi-gpu-")
    claim = dra.read_namespaced_resource_claim(claim_name, "ai-workloads")
    results = claim.status.allocation.devices.results
    assert [(r.driver, r.pool) for r in results] == [("gpu.nvidia.com", pod.spec.node_name)] * 2
    assert claim.status.reserved_for[0].name == "smi"
    log = core.read_namespaced_pod_log("smi", "ai-workloads")
    assert log.count("NVIDIA H100 80GB HBM3") == 2


def test_deployment_creates_ready_pods_and_reports_status(kube_client):
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    dep = wait_for(lambda: (d := apps.read_namespaced_deployment("web", "default")).status
                   and d.status.ready_replicas == 2 and d)
    assert dep.status.available_replicas == 2


def test_kueue_admits_jobs_all_or_nothing_within_quota(kubeapi, kube_client):
    batch = client.BatchV1Api(kube_client)
    objects = client.CustomObjectsApi(kube_client)

    def job(name: str, parallelism: int) -> dict:
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": "aicp"}},
                "spec": {"parallelism": parallelism, "completions": parallelism,
                         "template": {"spec": {"restartPolicy": "Never", "containers": [{
                             "name": "w", "image": "busybox", "command": ["sleep", "1"],
                             "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}}}
    # Keep pods running so the quota stays taken.
    kubeapi.controllers.controllers[1].completes = lambda pod: False
    assert batch.create_namespaced_job("ai-workloads", job("first", 2)).spec.suspend is True
    wait_for(lambda: batch.read_namespaced_job("first", "ai-workloads").spec.suspend is False)
    batch.create_namespaced_job("ai-workloads", job("second", 1))
    workloads = wait_for(lambda: [w for w in objects.list_namespaced_custom_object(
        "kueue.x-k8s.io", "v1beta2", "ai-workloads", "workloads")["items"]
        if w["metadata"]["name"].startswith("job-second") and w.get("status")])
    assert workloads[0]["status"]["conditions"][0]["reason"] == "Pending"
    assert batch.read_namespaced_job("second", "ai-workloads").spec.suspend is True
    batch.delete_namespaced_job("first", "ai-workloads", propagation_policy="Background")
    wait_for(lambda: batch.read_namespaced_job("second", "ai-workloads").spec.suspend is False)


def test_job_runs_to_completion(kube_client):
    batch = client.BatchV1Api(kube_client)
    batch.create_namespaced_job("default", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox", "command": ["true"]}]}}}})
    job = wait_for(lambda: (j := batch.read_namespaced_job("once", "default")).status
                   and j.status.succeeded == 1 and j)
    assert {c.type for c in job.status.conditions} >= {"Complete"}


def test_hpa_scales_a_deployment_from_a_test_metric(kubeapi_factory):
    def per_pod_load(hpa: dict, metric: dict) -> float:
        # 200 requests/s spread over the current replicas; the target is 100 per pod.
        return 200.0 / kube.get("deployments.apps", "srv", "default")["spec"]["replicas"]
    kube = kubeapi_factory("reference-platform", metric=per_pod_load)
    with kube.client() as api:
        apps, scaling = client.AppsV1Api(api), client.AutoscalingV2Api(api)
        apps.create_namespaced_deployment("default", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "srv"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "srv"}},
                     "template": {"metadata": {"labels": {"app": "srv"}},
                                  "spec": {"containers": [{"name": "c", "image": "vllm"}]}}}})
        scaling.create_namespaced_horizontal_pod_autoscaler("default", {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "srv"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "srv"}, "minReplicas": 1, "maxReplicas": 4,
                     "metrics": [{"type": "Pods", "pods": {
                         "metric": {"name": "requests_per_second"},
                         "target": {"type": "AverageValue", "averageValue": "100"}}}]}})
        wait_for(lambda: apps.read_namespaced_deployment("srv", "default").spec.replicas == 2)
        for _ in range(3):  # a few more HPA syncs: it must settle at 2, not keep scaling
            kube.resync()
        assert apps.read_namespaced_deployment("srv", "default").spec.replicas == 2


def test_node_group_autoscaler_adds_a_gpu_node_for_unschedulable_pods(kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=0, autoscale_gpu_nodes=1)
    with kube.client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", o.pod("gpu", limits={"nvidia.com/gpu": "1"},
                                                    tolerations=GPU_TOLERATION))
        node = wait_for(lambda: core.read_namespaced_pod("gpu", "default").spec.node_name)
        assert node == "gpu-h100-0"


def test_a_pod_waiting_for_its_claims_to_be_allocated_adds_no_node(kubeapi_factory):
    kube = kubeapi_factory("reference-platform", gpu_nodes=1, autoscale_gpu_nodes=1,
                           controllers=False)
    kube.add(Scheduler())  # and no DRA allocator: the claim stays unallocated
    kube.create(o.gpu_claim_template("one", "default"))
    kube.create(o.pod("claims", claims={"gpu": "one"}, tolerations=GPU_TOLERATION))
    kube.settle()
    scheduled = kube.get("pods", "claims", "default")["status"]["conditions"][-1]
    assert scheduled["message"] == "waiting for resource claim allocation"
    assert [n["metadata"]["name"] for n in kube.list("nodes")] == [
        "gpu-h100-0", "system-0", "system-1"]


def test_every_gpu_node_of_the_conformant_platform_serves_dcgm_metrics_added_ones_too(
        kubeapi_factory):
    kube = kubeapi_factory("conformant-platform", gpu_nodes=1)
    away = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{
            "key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["gpu-h100-0"]}]}]}}}
    # It keeps running (this kubelet keeps `sleep` running): a pod that ended would leave
    # the added node empty, and the autoscaler removes it after 2 s of the real clock.
    kube.create({**(pod := o.pod("grow", limits={"nvidia.com/gpu": "1"},
                                 command=["sleep", "3600"], tolerations=GPU_TOLERATION)),
                 "spec": {**pod["spec"], "affinity": away}})
    with kube.client() as api:
        core = client.CoreV1Api(api)
        wait_for(lambda: core.read_namespaced_pod("grow", "default").spec.node_name)
        for node in ("gpu-h100-0", "gpu-h100-1"):
            exporter = wait_for(lambda n=node: core.list_namespaced_pod(
                "gpu-operator", field_selector=f"spec.nodeName={n}",
                label_selector="app=nvidia-dcgm-exporter").items)[0]
            text = core.connect_get_namespaced_pod_proxy_with_path(
                f"{exporter.metadata.name}:9400", "gpu-operator", "metrics")
            assert f'DCGM_FI_DEV_GPU_UTIL{{gpu="7",UUID="GPU-{node}-07"' in text


# KubeRay v1.7.0 ray-operator/controllers/ray/common/pod.go: BuildPod replaces the head's
# command unless ray.io/overwrite-container-cmd is "true" or it already runs "ray start";
# initLivenessAndReadinessProbe injects Ray health probes where the container has none.
BUSYBOX = "docker.io/library/busybox:1.36.1@sha256:" + "7" * 64
RAY_IMAGE = "registry.local:5000/hub/rayproject/ray:2.46.0@sha256:" + "7" * 64


def ray_cluster(name: str, image: str = BUSYBOX, *, overwrite: str | None = None,
                probes: bool = False) -> dict:
    container: dict = {"name": "ray-head", "image": image,
                       "command": ["sh", "-c", "sleep 3600"]}
    if probes:
        container |= {"readinessProbe": {"exec": {"command": ["true"]}},
                      "livenessProbe": {"exec": {"command": ["true"]}}}
    meta: dict = {"name": name, "namespace": "default"}
    if overwrite is not None:
        meta["annotations"] = {"ray.io/overwrite-container-cmd": overwrite}
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": meta,
            "spec": {"headGroupSpec": {"rayStartParams": {}, "template": {
                "spec": {"containers": [container]}}}}}


def reconciled(kubeapi, name: str) -> tuple[dict, dict]:
    """The RayCluster and its head pod once the emulated KubeRay and kubelet are done."""
    pod = wait_for(lambda: next(iter(kubeapi.list("pods", "default",
                                                  labels=f"ray.io/cluster={name}")), None))
    wait_for(lambda: (kubeapi.find("pods", pod["metadata"]["name"], "default")
                      .get("status") or {}).get("phase") == "Running")
    kubeapi.resync()
    return (kubeapi.find("rayclusters.ray.io", name, "default"),
            kubeapi.find("pods", pod["metadata"]["name"], "default"))


def ready_condition(pod: dict) -> str:
    return next(c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready")


def test_kuberay_replaces_a_busybox_heads_command_and_it_never_becomes_ready(kubeapi):
    kubeapi.create(ray_cluster("plain", probes=True))
    rc, pod = reconciled(kubeapi, "plain")
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["/bin/bash", "-c", "--"]
    assert container["args"][0].startswith(" sh  -c  sleep 3600  && ulimit -n "
                                           "${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start "
                                           "--head  --block ")
    [status] = pod["status"]["containerStatuses"]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff" and not status["ready"]
    assert ready_condition(pod) == "False"
    assert (rc.get("status") or {}).get("state") != "ready"


def test_an_overwritten_command_without_its_own_probes_gets_rays_and_stays_unready(kubeapi):
    kubeapi.create(ray_cluster("noprobe", overwrite="TRUE"))  # case-insensitive
    rc, pod = reconciled(kubeapi, "noprobe")
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["sh", "-c", "sleep 3600"]
    assert container["readinessProbe"]["exec"]["command"][:2] == ["bash", "-c"]
    assert "api/gcs_healthz" in container["readinessProbe"]["exec"]["command"][2]
    assert ready_condition(pod) == "False"
    assert "running" in pod["status"]["containerStatuses"][0]["state"]  # only the probe fails
    assert (rc.get("status") or {}).get("state") != "ready"


def test_an_overwritten_command_with_its_own_probes_runs_busybox_to_ready(kubeapi):
    kubeapi.create(ray_cluster("busybox", overwrite="true", probes=True))
    rc, pod = reconciled(kubeapi, "busybox")
    assert pod["spec"]["containers"][0]["command"] == ["sh", "-c", "sleep 3600"]
    assert pod["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    assert ready_condition(pod) == "True"
    assert rc["status"]["state"] == "ready"
    assert {c["type"]: c["status"] for c in rc["status"]["conditions"]} == {
        "HeadPodReady": "True", "RayClusterProvisioned": "True"}


def test_a_ray_image_runs_the_generated_command_and_injected_probes_to_ready(kubeapi):
    kubeapi.create(ray_cluster("ray", RAY_IMAGE))
    rc, pod = reconciled(kubeapi, "ray")
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["/bin/bash", "-c", "--"]
    assert container["livenessProbe"]["exec"]["command"][0] == "bash"
    assert ready_condition(pod) == "True"
    assert rc["status"]["state"] == "ready"


# The kubelet's getPhase (kubernetes pkg/kubelet/kubelet_pods.go): a container that never ran
# keeps the pod Pending; one whose start failed is stopped, and a restartPolicy Always pod of
# stopped containers is Running. Neither is Ready, and a container that can start later does.
@pytest.mark.parametrize(("fields", "phase"), [
    ({"state": {"waiting": {"reason": "ImagePullBackOff"}}}, "Pending"),
    ({"state": {"waiting": {"reason": "CrashLoopBackOff"}},
      "lastState": {"terminated": {"exitCode": 128, "reason": "StartError"}}}, "Running")])
def test_a_container_the_kubelet_holds_back_sets_the_phase_getphase_gives(
        kubeapi_factory, fields, phase):
    kube = kubeapi_factory("reference-platform", gpu_nodes=0)
    held = {"on": True}
    kubelet(kube).waiting = lambda pod, container: fields if held["on"] else None
    kube.create(o.pod("held", restart_policy="Always"))
    kube.settle()
    pod = kube.get("pods", "held", "default")
    [status] = pod["status"]["containerStatuses"]
    assert pod["status"]["phase"] == phase
    assert status["state"] == fields["state"] and not status["ready"]
    assert bool(status["imageID"]) is (phase == "Running")  # known once pulled
    assert not any(c["type"] == "Ready" and c["status"] == "True"
                   for c in pod["status"]["conditions"])
    held["on"] = False

    def state() -> dict:
        return kube.get("pods", "held", "default")["status"]["containerStatuses"][0]["state"]
    if phase == "Pending":  # a pull that succeeds at last: the container starts (a resync)
        assert wait_for(lambda: "running" in state())
    else:  # the kubelet keeps backing off a pod that is no longer Pending
        kube.resync()
        assert state() == fields["state"]


def test_a_pod_whose_script_ends_in_sleep_runs_that_long_on_the_emulators_clock(
        kubeapi_factory):
    """The kubelet keeps a run-once ``...; sleep 30`` pod Running 30 s of ``kube.clock`` and
    wakes for it on a timer: frozen, the pod never ends; advanced, it ends at once."""
    kube = kubeapi_factory("reference-platform", gpu_nodes=0, clock=Clock(scale=0))
    kube.create(o.pod("nap", command=["sh", "-c", "echo hi; sleep 30"]))
    kube.settle()
    assert kube.get("pods", "nap", "default")["status"]["phase"] == "Running"
    kube.clock.advance(29)
    kube.settle()
    assert kube.get("pods", "nap", "default")["status"]["phase"] == "Running"
    kube.clock.advance(1)
    assert wait_for(lambda: kube.get("pods", "nap", "default")["status"]["phase"]
                    == "Succeeded", resyncs=0)
