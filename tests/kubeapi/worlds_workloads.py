"""Worlds shaped like real platforms for the workload probes (autoscaling, operators, gangs).

Each builder changes a started ``reference-platform`` emulator into one platform. Where a
real sample exists it comes from ``../shared/fixtures`` (the test skips without it); CRDs
absent from ``../shared/crds`` are declared minimally here, each with the upstream file
and version it stands for (names, group, version, scope; the schema keeps unknown fields).
"""

from __future__ import annotations

import yaml

from . import objects as o
from .controllers.autoscaler import (
    NodeGroupAutoscaler,
    fixture_status,
    helm_deployment,
    status_configmap,
)
from .scenarios import gpu_node_objects

# --- cluster autoscaling ------------------------------------------------------------------

def helm_autoscaler(kube, *, status: str = "yaml", namespace: str = "cluster-autoscaler",
                    configmap: str = "cluster-autoscaler-status", max_nodes: int = 1) -> None:
    """cluster-autoscaler installed by its Helm chart in its own release namespace, writing
    its status there (``status``: which fixture format), nothing in kube-system."""
    args = [] if configmap == "cluster-autoscaler-status" else [
        f"--status-config-map-name={configmap}"]
    kube.seed([o.namespace(namespace), helm_deployment(namespace, args)])
    status_configmap(kube, namespace, configmap, fixture_status(status))
    _grow_h100(kube, max_nodes)


def openshift_autoscaler(kube, max_nodes: int = 1) -> None:
    """OpenShift's cluster-autoscaler as its operator deploys it: Deployment
    cluster-autoscaler-default in openshift-machine-api, image
    quay.io/openshift/origin-cluster-autoscaler (DefaultClusterAutoscalerImage), the
    arguments of AutoscalerArgs with --cloud-provider=clusterapi
    (openshift/cluster-autoscaler-operator pkg/controller/clusterautoscaler/
    clusterautoscaler.go); its status ConfigMap in its --namespace."""
    ns = "openshift-machine-api"
    dep = o.ready_deployment("cluster-autoscaler-default", ns,
                             "quay.io/openshift/origin-cluster-autoscaler:v4.0",
                             labels={"cluster-autoscaler": "default",
                                     "k8s-app": "cluster-autoscaler"})
    dep["spec"]["template"]["spec"]["containers"][0].update(
        command=["cluster-autoscaler"],
        args=["--logtostderr", "--record-duplicated-events", "--cloud-provider=clusterapi",
              f"--namespace={ns}", "--leader-elect-lease-duration=137s",
              "--leader-elect-renew-deadline=107s", "--leader-elect-retry-period=26s",
              "--max-bulk-soft-taint-count=0", "--v=1"])
    kube.seed([o.namespace(ns), dep])
    status_configmap(kube, ns, "cluster-autoscaler-status", fixture_status("yaml"))
    _grow_h100(kube, max_nodes)


def pool_at_max_status(pool: str = "h100") -> str:
    """The YAML status fixture with its node group named after ``pool`` and at maxSize
    (a previous run's node still there)."""
    doc = yaml.safe_load(fixture_status("yaml"))
    group = doc["nodeGroups"][0]
    group["name"] = f"eks-{pool}-20260101"
    group["health"]["cloudProviderTarget"] = group["health"]["maxSize"]
    return yaml.safe_dump(doc, sort_keys=False)


def _grow_h100(kube, max_nodes: int) -> None:
    existing = len(kube.list("nodes", labels="nvidia.com/gpu.present=true"))
    kube.add(NodeGroupAutoscaler(lambda i: gpu_node_objects(existing + i), max_nodes=max_nodes))


# karpenter.sh/v1 NodePool, cluster-scoped (kubernetes-sigs/karpenter@3171ecac
# pkg/apis/crds/karpenter.sh_nodepools.yaml).
KARPENTER_NODEPOOL = o.crd("karpenter.sh", "v1", "NodePool", "nodepools",
                                 namespaced=False)
KARPENTER_POOL_LABEL = "karpenter.sh/nodepool"  # the label Karpenter puts on its nodes


def karpenter(kube, pool: str = "gpu") -> None:
    """Karpenter instead of cluster-autoscaler: a NodePool, GPU nodes labelled with it (and
    no aicp pool label), new nodes made for pending pods."""
    kube.seed([KARPENTER_NODEPOOL])
    kube.seed([{"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                "metadata": {"name": pool},
                "spec": {"template": {"spec": {"requirements": [
                    {"key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In",
                     "values": ["nvidia"]}]}}, "limits": {"nvidia.com/gpu": "64"}}}])
    for node in kube.list("nodes", labels="nvidia.com/gpu.present=true"):
        def relabel(n: dict) -> None:
            n["metadata"]["labels"].pop("aicp.dev/gpu-pool", None)
            n["metadata"]["labels"][KARPENTER_POOL_LABEL] = pool
        kube.mutate("nodes", node["metadata"]["name"], relabel)
    if kube.find("resourceflavors.kueue.x-k8s.io", "h100") is not None:
        kube.mutate("resourceflavors.kueue.x-k8s.io", "h100", lambda f: f["spec"].update(
            nodeLabels={KARPENTER_POOL_LABEL: pool}))
    existing = len(kube.list("nodes", labels="nvidia.com/gpu.present=true"))

    def make(i: int) -> list[dict]:
        objs = gpu_node_objects(existing + i, prefix="gpu-karpenter")
        for obj in objs:
            if obj["kind"] == "Node":
                obj["metadata"]["labels"].pop("aicp.dev/gpu-pool", None)
                obj["metadata"]["labels"][KARPENTER_POOL_LABEL] = pool
        return objs
    kube.add(NodeGroupAutoscaler(make, max_nodes=1))


# --- operators ----------------------------------------------------------------------------

KUBERAY_IMAGE = "quay.io/kuberay/operator:v1.7.0"
# The operator Deployment's labels per install (../shared/fixtures/
# kuberay-operator-install-labels.yaml, ray-project/kuberay@feeaf72f v1.7.0).
KUBERAY_HELM_LABELS = {"app.kubernetes.io/name": "kuberay-operator",
                       "app.kubernetes.io/instance": "kuberay-operator"}
KUBERAY_KUSTOMIZE_LABELS = {"app.kubernetes.io/name": "kuberay",
                            "app.kubernetes.io/component": "kuberay-operator"}


def _operator(kube, name: str, namespace: str, image: str, labels: dict) -> None:
    for old in kube.list("deployments.apps", namespace):
        if old["metadata"]["name"] == name:
            kube.delete("deployments.apps", name, namespace)
    kube.seed([o.ready_deployment(name, namespace, image, labels=labels)])


def kuberay_helm(kube) -> None:
    """KubeRay by its Helm chart: the chart's labels, no webhook (the chart has none)."""
    from .controllers.kuberay import KubeRay
    _operator(kube, "kuberay-operator", "ray-system", KUBERAY_IMAGE, KUBERAY_HELM_LABELS)
    KubeRay(webhook=False).install(kube)


def kuberay_kustomize(kube, *, ca_bundle: bool = True, endpoints: int = 1) -> None:
    """KubeRay by kustomize (config/default-with-webhooks): its labels, and the webhook
    ``vraycluster.kb.io`` of config/webhook/manifests.yaml behind ``webhook-service``."""
    from .controllers.kuberay import CA_BUNDLE, KubeRay, webhook_configuration
    _operator(kube, "kuberay-operator", "ray-system", KUBERAY_IMAGE, KUBERAY_KUSTOMIZE_LABELS)
    config = webhook_configuration("ray-system", "validating-webhook-configuration",
                                   "webhook-service", CA_BUNDLE if ca_bundle else "")
    KubeRay(configuration=config, endpoints=endpoints).install(kube)


def kubeflow_trainer(kube, *, outcome: str = "Complete") -> None:
    """Kubeflow Trainer instead of KubeRay (ray.io not served): the WG test's operator."""
    from .controllers.trainer import install
    kube.delete("customresourcedefinitions.apiextensions.k8s.io", "rayclusters.ray.io")
    install(kube, outcome=outcome)


# Kubeflow Trainer from its kustomize manifests, the install its documentation gives
# (kubeflow/trainer@092247af manifests/base/manager/manager.yaml): the Deployment and its
# pods labelled app.kubernetes.io/name=trainer, component=manager, part-of=kubeflow (not the
# Helm chart's kubeflow-trainer), the Service kubeflow-trainer-controller-manager selecting
# component=manager with the webhook port 443 -> webhook (9443).
TRAINER_KUSTOMIZE_LABELS = {"app.kubernetes.io/name": "trainer",
                            "app.kubernetes.io/component": "manager",
                            "app.kubernetes.io/part-of": "kubeflow"}


def kubeflow_trainer_kustomize(kube) -> None:
    """Issue #22's second example: Trainer by kustomize; the operator is reachable only
    through its wiring (webhook -> Service -> EndpointSlice -> Pod -> ReplicaSet ->
    Deployment), its labels match no install the probe knew."""
    from .controllers.trainer import IMAGE, NAMESPACE, install
    kube.delete("customresourcedefinitions.apiextensions.k8s.io", "rayclusters.ray.io")
    install(kube)
    name = "kubeflow-trainer-controller-manager"
    _operator(kube, name, NAMESPACE, IMAGE, TRAINER_KUSTOMIZE_LABELS)
    kube.seed([{"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"type": "ClusterIP",
                         "selector": {"app.kubernetes.io/component": "manager"},
                         "ports": [{"name": "metrics", "port": 8443, "targetPort": "metrics"},
                                   {"name": "webhook", "port": 443, "protocol": "TCP",
                                    "targetPort": "webhook"}]}}])
    kube.settle()
    pods = kube.list("pods", NAMESPACE, labels="app.kubernetes.io/component=manager")
    # The EndpointSlice controller's slice for the Service: one endpoint per ready pod,
    # targetRef the Pod (kubernetes pkg/controller/endpointslice utils.go podToEndpoint).
    for old in kube.list("endpointslices.discovery.k8s.io", NAMESPACE):
        kube.delete("endpointslices.discovery.k8s.io", old["metadata"]["name"], NAMESPACE)
    kube.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{name}-x7k2p", "namespace": NAMESPACE,
                              "labels": {"kubernetes.io/service-name": name}},
                 "addressType": "IPv4",
                 "ports": [{"name": "webhook", "port": 9443, "protocol": "TCP"}],
                 "endpoints": [{"addresses": [f"10.244.7.{i + 10}"],
                                "conditions": {"ready": True},
                                "targetRef": {"kind": "Pod", "namespace": NAMESPACE,
                                              "name": p["metadata"]["name"],
                                              "uid": p["metadata"]["uid"]}}
                               for i, p in enumerate(pods)]})


def endpoint_slice(kube, namespace: str, service: str, selector: dict, port: int) -> None:
    """The EndpointSlice controller's slice for a Service: one ready endpoint per selected
    pod, ``targetRef`` the Pod (kubernetes pkg/controller/endpointslice utils.go
    ``podToEndpoint``)."""
    query = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = kube.list("pods", namespace, labels=query)
    kube.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{service}-q8w4z", "namespace": namespace,
                              "labels": {"kubernetes.io/service-name": service}},
                 "addressType": "IPv4",
                 "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                 "endpoints": [{"addresses": [f"10.244.8.{i + 10}"],
                                "conditions": {"ready": True},
                                "targetRef": {"kind": "Pod", "namespace": namespace,
                                              "name": p["metadata"]["name"],
                                              "uid": p["metadata"]["uid"]}}
                               for i, p in enumerate(pods)]})


def kueue_in_its_own_namespace(kube, namespace: str = "ml-platform") -> None:
    """Kueue's Helm chart installed into a release namespace of the team's choosing
    (kubernetes-sigs/kueue charts/kueue: Deployment kueue-controller-manager labelled
    control-plane=controller-manager, Service kueue-webhook-service on 443 -> 9443,
    ValidatingWebhookConfiguration kueue-validating-webhook-configuration covering
    kueue.x-k8s.io clusterqueues, ConfigMap kueue-manager-config holding the manager's
    Configuration under controller_manager_config.yaml)."""
    from .controllers.kuberay import CA_BUNDLE
    labels = {"app.kubernetes.io/name": "kueue", "control-plane": "controller-manager"}
    kube.seed([o.namespace(namespace),
               o.ready_deployment("kueue-controller-manager", namespace,
                                  "registry.k8s.io/kueue/kueue:v0.19.2", labels=labels),
               {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kueue-webhook-service", "namespace": namespace},
                "spec": {"type": "ClusterIP",
                         "selector": {"control-plane": "controller-manager"},
                         "ports": [{"port": 443, "protocol": "TCP", "targetPort": 9443}]}},
               {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kueue-manager-config", "namespace": namespace},
                "data": {"controller_manager_config.yaml": yaml.safe_dump({
                    "apiVersion": "config.kueue.x-k8s.io/v1beta1", "kind": "Configuration",
                    "manageJobsWithoutQueueName": False,
                    "integrations": {"frameworks": ["batch/job"]}})}},
               {"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "kueue-validating-webhook-configuration"},
                "webhooks": [{"name": "vclusterqueue.kb.io", "sideEffects": "None",
                              "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                              "clientConfig": {"caBundle": CA_BUNDLE, "service": {
                                  "name": "kueue-webhook-service", "namespace": namespace,
                                  "path": "/validate-kueue-x-k8s-io-v1beta2-clusterqueue"}},
                              "rules": [{"apiGroups": ["kueue.x-k8s.io"],
                                         "apiVersions": ["v1beta2"],
                                         "operations": ["CREATE", "UPDATE"],
                                         "resources": ["clusterqueues"]}]}]}])
    kube.settle()
    endpoint_slice(kube, namespace, "kueue-webhook-service",
                   {"control-plane": "controller-manager"}, 9443)


# --- gang schedulers -----------------------------------------------------------------------

# PodGroup CRDs: KAI scheduler's scheduling.run.ai/v2alpha2 (NVIDIA/KAI-Scheduler
# deployments/kai-scheduler/crds/scheduling.run.ai_podgroups.yaml) and Volcano's
# scheduling.volcano.sh/v1beta1 (volcano-sh/volcano config/crd/volcano/bases/
# scheduling.volcano.sh_podgroups.yaml); both namespaced, spec.minMember and spec.queue.
KAI_PODGROUP = o.crd("scheduling.run.ai", "v2alpha2", "PodGroup", "podgroups")
VOLCANO_PODGROUP = o.crd("scheduling.volcano.sh", "v1beta1", "PodGroup", "podgroups")


def without_kueue(kube) -> None:
    """Kueue's CRDs gone (the reference platform seeds them): another gang scheduler."""
    for crd in kube.list("customresourcedefinitions.apiextensions.k8s.io"):
        if crd["spec"]["group"] == "kueue.x-k8s.io":
            kube.delete("customresourcedefinitions.apiextensions.k8s.io", crd["metadata"]["name"])


def kai_scheduler(kube, *, all_or_nothing: bool = True) -> None:
    from .controllers.podgroups import PodGroupScheduler
    without_kueue(kube)
    kube.seed([KAI_PODGROUP])
    kube.add(PodGroupScheduler("kai-scheduler", "podgroups.scheduling.run.ai",
                               "pod-group-name", all_or_nothing=all_or_nothing))


def volcano(kube, *, all_or_nothing: bool = True) -> None:
    from .controllers.podgroups import PodGroupScheduler
    without_kueue(kube)
    kube.seed([VOLCANO_PODGROUP])
    kube.add(PodGroupScheduler("volcano", "podgroups.scheduling.volcano.sh",
                               "scheduling.k8s.io/group-name", all_or_nothing=all_or_nothing))


def kueue_cpu_quota(kube, cpu: int = 16) -> None:
    """Kueue whose only ClusterQueue has CPU quota (no GPU resource covered)."""
    kube.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"].update(
        resourceGroups=[{"coveredResources": ["cpu", "memory"], "flavors": [
            {"name": "h100", "resources": [{"name": "cpu", "nominalQuota": cpu},
                                           {"name": "memory", "nominalQuota": "64Gi"}]}]}]))


# EKS managed node groups label their nodes with the capacity type
# (eks.amazonaws.com/capacityType ON_DEMAND or SPOT: AWS EKS docs "Managed node groups",
# "Capacity types"); Kueue's docs flavor a ClusterQueue by it, on-demand first and spot
# second with twice the quota (kueue.sigs.k8s.io docs "Cluster Queue", flavors on-demand
# and spot).
CAPACITY_TYPE = "eks.amazonaws.com/capacityType"


def kueue_spot_and_on_demand(kube) -> None:
    """Issue #22's fourth example: a ClusterQueue with an on-demand and a spot GPU flavor
    (4 and 8 GPUs), each flavor the nodes of its capacity type."""
    for node, capacity in (("gpu-h100-0", "ON_DEMAND"), ("gpu-h100-1", "SPOT")):
        kube.mutate("nodes", node, lambda n, c=capacity: n["metadata"]["labels"].update(
            {CAPACITY_TYPE: c}))
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    kube.seed([{"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                "metadata": {"name": name},
                "spec": {"nodeLabels": {"aicp.dev/gpu-pool": "h100", CAPACITY_TYPE: value},
                         "tolerations": tolerations}}
               for name, value in (("on-demand", "ON_DEMAND"), ("spot", "SPOT"))])

    def flavor(name: str, gpus: int) -> dict:
        return {"name": name, "resources": [{"name": "cpu", "nominalQuota": 500},
                                            {"name": "memory", "nominalQuota": "4Ti"},
                                            {"name": "nvidia.com/gpu", "nominalQuota": gpus}]}
    kube.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"].update(
        resourceGroups=[{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                         "flavors": [flavor("on-demand", 4), flavor("spot", 8)]}]))


def kueue_cohort(kube) -> None:
    """The ClusterQueue aicp (4 GPUs) in cohort ``gpus`` beside an idle ClusterQueue
    ``research`` (8 GPUs) that lends what it does not use (Kueue docs "Cluster Queue",
    "Cohort" and "Borrowing"; v1beta2 ``spec.cohortName``)."""
    def flavor(gpus: int) -> dict:
        return {"name": "h100", "resources": [{"name": "cpu", "nominalQuota": 500},
                                              {"name": "memory", "nominalQuota": "4Ti"},
                                              {"name": "nvidia.com/gpu", "nominalQuota": gpus}]}

    def groups(gpus: int) -> list[dict]:
        return [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                 "flavors": [flavor(gpus)]}]
    kube.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"].update(
        cohortName="gpus", resourceGroups=groups(4)))
    kube.seed([{"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
                "metadata": {"name": "research"},
                "spec": {"cohortName": "gpus", "namespaceSelector": {},
                         "resourceGroups": groups(8)},
                "status": {"conditions": [{"type": "Active", "status": "True",
                                           "reason": "Ready",
                                           "message": "Can admit new workloads",
                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}])


def kueue_pinned_namespaces(kube) -> None:
    """A ClusterQueue admitting only namespaces named in kubernetes.io/metadata.name."""
    kube.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"].update(
        namespaceSelector={"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                                 "operator": "In",
                                                 "values": ["ai-workloads"]}]}))


# --- GPU resource names beyond nvidia.com/gpu ------------------------------------------------

MIG_1G = "nvidia.com/mig-1g.10gb"  # MIG mixed strategy (k8s-device-plugin, A100 40GB profile)


def mig_node(index: int, *, pool: str = "a100-mig") -> dict:
    """A GPU node of the MIG mixed strategy: only ``nvidia.com/mig-<profile>`` allocatable."""
    n = o.gpu_node(f"gpu-{pool}-{index}", gpus=0, accelerator="a100", pool=pool,
                   device_plugin=False, ip=f"10.0.2.{index + 10}")
    for part in ("capacity", "allocatable"):
        n["status"][part][MIG_1G] = "7"
    n["metadata"]["labels"]["nvidia.com/mig.strategy"] = "mixed"
    return n


def mig_pool(kube, *, nodes: int = 1, autoscale: int = 1) -> None:
    """GPU nodes replaced by a MIG-mixed pool that an autoscaler can grow."""
    for n in kube.list("nodes", labels="nvidia.com/gpu.present=true"):
        kube.delete("nodes", n["metadata"]["name"])
    kube.seed([mig_node(i) for i in range(nodes)])
    if autoscale:
        kube.add(NodeGroupAutoscaler(lambda i: [mig_node(nodes + i)], max_nodes=autoscale))


def kueue_mig_quota(kube, quota: int = 7) -> None:
    kube.mutate("clusterqueues.kueue.x-k8s.io", "aicp", lambda cq: cq["spec"].update(
        resourceGroups=[{"coveredResources": ["cpu", "memory", MIG_1G], "flavors": [
            {"name": "h100", "resources": [{"name": "cpu", "nominalQuota": 64},
                                           {"name": "memory", "nominalQuota": "256Gi"},
                                           {"name": MIG_1G, "nominalQuota": quota}]}]}]))
    kube.mutate("resourceflavors.kueue.x-k8s.io", "h100", lambda f: f["spec"].update(
        nodeLabels={"aicp.dev/gpu-pool": "a100-mig"}))
