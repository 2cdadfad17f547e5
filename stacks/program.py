"""The platform: config → one target → the AI addon layer, and the stack outputs.

The target is chosen here, once (``load``): its module checks the config (and the keys it
reads outside the config model, the on-prem secrets), asks the cloud its preflight
questions and declares the cluster (``stacks/targets/<target>.py``).

Ordering between addons is explicit because a component's ``depends_on`` does not reach
its children (pulumi/runtime/resource.py): each addon takes what it must wait for in its
args. CRDs come before the controllers that use them (an object of a kind the API server
does not serve yet is refused: "no matches for kind", k8s.io/apimachinery
pkg/api/meta/errors.go NoKindMatchError), webhooks are ready before the objects they admit
(a webhook with ``failurePolicy: Fail`` and no endpoint refuses them,
https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
#failure-policy), aggregated APIs last.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pulumi
from pulumi.errors import InputPropertyError

from ..addons.base import Addon
from ..addons.catalog import CHARTS, MANIFESTS, istio_charts
from ..components.contract import ClusterOutputs, node_range
from .config import ConfigError, PlatformConfig, decode, from_pulumi, parse
from .config import check_teams as config_check_teams
from .preflight import Report
from .targets import TARGETS, owners, target
from .targets.base import Secrets, Target, honour, unread

A = TypeVar("A", bound=Addon)


@dataclass
class Platform:
    config: PlatformConfig
    cluster: ClusterOutputs
    addons: dict[str, Addon] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # addon → pinned version
    not_applicable: dict[str, str] = field(default_factory=dict)  # requirement → why
    preflight: dict[str, Any] = field(default_factory=dict)  # what the clouds said first


def check_one_allocator(cfg: PlatformConfig) -> None:
    """Under the GPU Operator every GPU pool uses the same allocator.

    The operator's validator checks on every GPU node that ``nvidia.com/gpu`` is
    advertised and crash-loops where it never is (gpu-operator v26.7.0
    ``cmd/nvidia-validator/main.go`` ``validateGPUResource``); it drops that check only when
    the device plugin is off cluster-wide (``controllers/object_controls.go``
    ``TransformValidator``, case "plugin"), not per node. On DRA nodes beside device-plugin
    pools the ClusterPolicy would never report ready.
    """
    if not cfg.addons.gpu_operator.enabled:
        return
    allocators = [p.allocator for p in cfg.gpu_pools]
    if len(set(allocators)) > 1:
        i = allocators.index("device-plugin")
        raise ConfigError(
            f"aicp:gpuPools[{i}].allocator: 'device-plugin' beside 'dra' pools leaves the GPU "
            "Operator never ready (its validator waits for nvidia.com/gpu on every GPU node "
            "unless the device plugin is off cluster-wide); use one allocator for every pool")


# The Kueue addon's team property paths (addons/kueue.py validate_teams) → config keys.
TEAM_KEYS = {"teams[*].name": "aicp:teams[{}].name",
             "teams[*].quota[*]": "aicp:teams[{}].quota.{}"}


def kueue_teams(cfg: PlatformConfig) -> tuple[Any, ...]:
    """The config's teams as the Kueue addon takes them."""
    from ..addons.kueue import Team

    return tuple(Team(t.name, dict(t.quota), t.borrowing_limit, t.lending_limit, t.weight)
                 for t in cfg.teams)


def check_teams(cfg: PlatformConfig) -> None:
    """The teams' quota against what each pool holds at maxNodes, before anything is
    declared (the Kueue addon's rule, on the pools as the target resolves them)."""
    config_check_teams(cfg)
    if not cfg.teams:
        return
    from ..addons.kueue import KueueArgs, validate_teams
    from ..components.contract import resolve_pool
    from .targets.base import pool_requests, refused

    pools = [resolve_pool(cfg.target, r) for r in pool_requests(cfg)]
    with refused(TEAM_KEYS):
        validate_teams(kueue_teams(cfg), pools, KueueArgs(
            workloads_namespace=cfg.addons.kueue.namespace))


def gateway_service_type(cfg: PlatformConfig, chosen: Target | None = None) -> Literal[
        "LoadBalancer", "NodePort", "ClusterIP"]:
    """The inference Gateway's Service type: as configured, else what gets it an address.

    Where the cluster provisions no load balancers (an existing on-prem cluster often has
    no controller for them), a LoadBalancer Service would stay pending and the Gateway
    without an address, so it gets a NodePort (reachable on every node).
    """
    if cfg.addons.gateway.service_type is not None:
        return cfg.addons.gateway.service_type
    chosen = chosen or target(cfg.target)
    return "LoadBalancer" if chosen.load_balancers(cfg) else "NodePort"


def pool_node_range(key: str, low: int, high: int, high_name: str) -> None:
    """The pool contract's node range (``components/contract.py``), as the config error
    that names ``key``: the config model checks it with this (``config.parse``)."""
    try:
        node_range(key, low, high, high_name)
    except InputPropertyError as exc:
        raise ConfigError(f"{key}: {exc.reason}") from None


def load(cfg: PlatformConfig, secrets: Secrets | None = None) -> Target:
    """The target ``cfg`` names, after every rule of it and of the platform passed; with
    ``secrets`` (the keys read outside the model), their rules first."""
    if secrets is not None:
        secrets.check(cfg.target)
    chosen = target(cfg.target)
    if secrets is not None:
        chosen.check_secrets(cfg, secrets)
    chosen.check(cfg)
    check_one_allocator(cfg)
    check_teams(cfg)
    return chosen


def read(raw: Mapping[str, Any], other: Mapping[str, Any] | Collection[str] = (), *,
         text: bool = False) -> tuple[PlatformConfig, Target]:
    """``aicp:`` config (keys without the namespace) checked as ``pulumi up`` checks it
    before anything is declared, and its target; or ConfigError.

    ``other``: the stack's other namespaces' settings by full key (``aws:region``...; the
    keys alone where their values are not at hand): the chosen target takes in the ones that
    decide where resources go (``base.honour``). ``text``: values as the engine hands them,
    objects and lists as JSON (``config.decode``); the keys a target reads outside the model
    (secrets: a kubeconfig may be JSON) stay as written.
    """
    provider = dict(other) if isinstance(other, Mapping) else dict.fromkeys(other)
    values = {name: decode(v) for name, v in raw.items()} if text else dict(raw)
    named = values.get("target")
    if isinstance(named, str) and named in TARGETS:
        values = honour(values, target(named).PROVIDER_KEYS, provider)
    found = owners(values)
    secrets = Secrets({name: raw[name] for name in found}, found, frozenset(provider))
    cfg = parse({name: v for name, v in values.items() if name not in found},
                pool_node_range)
    chosen = load(cfg, secrets)
    unread(values, chosen.UNREAD, cfg.target)
    return cfg, chosen


def checked(raw: Mapping[str, Any],
            other: Mapping[str, Any] | Collection[str] = ()) -> PlatformConfig:
    """``aicp:`` config (keys without the namespace), checked as ``pulumi up`` checks it
    before anything is declared, or ConfigError."""
    return read(raw, other)[0]


def configured() -> tuple[PlatformConfig, Target]:
    """The running Pulumi program's config, checked, and its target (``read``)."""
    raw, other = from_pulumi()
    return read(raw, other, text=True)


def build(cfg: PlatformConfig, chosen: Target | None = None) -> Platform:
    from ..addons.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
    from ..addons.dra_driver import DraDriver, DraDriverArgs
    from ..addons.gateway_api import GatewayApi
    from ..addons.gpu_operator import GpuOperator, GpuOperatorArgs
    from ..addons.inference_extension import InferenceExtension, InferenceExtensionArgs
    from ..addons.istio import Istio, IstioArgs
    from ..addons.jobset import JobSet
    from ..addons.kuberay import KubeRay, KubeRayArgs
    from ..addons.kueue import Kueue, KueueArgs
    from ..addons.leaderworkerset import LeaderWorkerSet
    from ..addons.metrics_adapter import MetricsAdapter, MetricsAdapterArgs
    from ..addons.monitoring import Monitoring
    from ..addons.sandbox import Sandbox
    from ..addons.sandbox import version as sandbox_version
    from ..addons.storage import WorkloadStorage, WorkloadStorageArgs
    chosen = chosen or load(cfg)
    # Before the first resource: what the cloud says about the GPU pools (read-only).
    report = Report()
    chosen.preflight(cfg, report)
    cluster = chosen.cluster(cfg)
    p = Platform(cfg, cluster, preflight=report.export())
    want = cfg.addons

    def add(key: str, addon: A, version: str) -> A:
        p.addons[key] = addon
        p.versions[key] = version
        return addon

    monitoring = None
    if want.monitoring.enabled:
        monitoring = add("monitoring", Monitoring("monitoring", cluster),
                         CHARTS["kube-prometheus-stack"].version)

    gpu_operator = None
    if want.gpu_operator.enabled:
        gpu_operator = add("gpu-operator", GpuOperator("gpu-operator", cluster, GpuOperatorArgs(
            prometheus_release="kube-prometheus-stack" if monitoring else None,
            deploy_nfd=want.gpu_operator.nfd,
            # The operator skips the DCGM ServiceMonitor for good when its CRD is missing.
            depends_on=(monitoring.crds,) if monitoring else ())),
            CHARTS["gpu-operator"].version)
    if any(pool.allocator == "dra" for pool in cluster.gpu_pools):
        add("dra-driver", DraDriver("dra-driver", cluster, DraDriverArgs(
            gpu_operator=gpu_operator)), CHARTS["dra-driver"].version)

    fabric_addons(cluster, add, after=(gpu_operator,) if gpu_operator else ())
    integrations: list[pulumi.Resource] = []
    if want.kuberay.enabled:
        kuberay = add("kuberay", KubeRay("kuberay", cluster, KubeRayArgs(
            webhook=want.kuberay.webhook)), CHARTS["kuberay-operator"].version)
        integrations.append(kuberay)
    kueue = None
    if want.kueue.enabled:
        jobset = add("jobset", JobSet("jobset", cluster), CHARTS["jobset"].version)
        kueue = add("kueue", Kueue("kueue", cluster, KueueArgs(
            workloads_namespace=want.kueue.namespace,
            pods_ready_timeout=want.kueue.wait_for_pods_ready_timeout,
            teams=kueue_teams(cfg),
            after=(jobset, *integrations))), CHARTS["kueue"].version)
    # The workload ServiceAccount and bucket recipe, in Kueue's workload namespace (#20).
    WorkloadStorage("storage", cluster, WorkloadStorageArgs(
        after=(kueue,) if kueue else (), create_namespace=kueue is None))
    azure_lustre_csi(cluster, add)  # Azure Managed Lustre's CSI driver, when on (#20)

    if want.disaggregated_inference.enabled:
        add("leaderworkerset", LeaderWorkerSet("leaderworkerset", cluster),
            CHARTS["leaderworkerset"].version)
    if want.gateway.enabled:
        gateway_api = add("gateway-api", GatewayApi("gateway-api", cluster),
                          MANIFESTS["gateway-api"].version)
        istio = add("istio", Istio("istio", cluster, IstioArgs(
            gateway_api=(gateway_api,), service_type=gateway_service_type(cfg, chosen))),
                    istio_charts(cluster.kubernetes_version)[1].version)
        if want.inference_extension.enabled:
            add("inference-extension", InferenceExtension(
                "inference-extension", cluster, InferenceExtensionArgs(
                    gateway_name=istio.gateway_name, gateway_namespace=istio.gateway_namespace,
                    metrics=monitoring is not None,
                    disaggregated=want.disaggregated_inference.enabled,
                    after=(istio, *((monitoring.crds,) if monitoring else ())))),
                MANIFESTS["inference-extension"].version)

    if cluster.autoscaler == "cluster-autoscaler" and want.autoscaler.enabled:
        add("cluster-autoscaler", ClusterAutoscaler("cluster-autoscaler", cluster,
                                                    ClusterAutoscalerArgs(
                                                        expander=want.autoscaler.expander)),
            CHARTS["cluster-autoscaler"].version)
    elif cluster.autoscaler == "none":
        p.not_applicable["cluster_autoscaling"] = (
            f"the {cfg.target} target has no node autoscaler: nodes are fixed hardware")
    p.not_applicable.update(cluster.features.get("notApplicable") or {})
    if want.sandbox.enabled:
        add("sandbox", Sandbox("sandbox", cluster), sandbox_version(cluster))

    if monitoring is not None:
        # After the Prometheus it reads, beside the rest: while its aggregated API is not
        # ready, discovery reports that group failed (k8s.io/client-go
        # discovery/discovery_client.go ErrGroupDiscoveryFailed), and both Helm
        # (v3.21.4 pkg/action/action.go getCapabilities: "orphaned API service" warning)
        # and pulumi-kubernetes (provider/pkg/clients/clients.go) go on with the rest.
        add("metrics-adapter", MetricsAdapter("metrics-adapter", cluster, MetricsAdapterArgs(
            prometheus_url=monitoring.prometheus_service,
            prometheus_port=monitoring.prometheus_port, namespace=monitoring.namespace,
            after=(monitoring,))), CHARTS["prometheus-adapter"].version)
    return p


def fabric_addons(cluster: ClusterOutputs, add: Any,
                  after: tuple[pulumi.Resource, ...] = ()) -> None:
    """What the GPU pools' fabrics need in the cluster (components/fabric.py): the EFA
    device plugin for EFA device-plugin pools, the EFA DRA driver for EFA DRA pools, the
    NCCL plugin installers and Network objects for GKE GPUDirect pools, the NVIDIA Network
    Operator for InfiniBand/RDMA pools (after the GPU Operator, whose Node Feature Discovery
    labels the NICs)."""
    from ..addons.catalog import IMAGES
    from ..addons.efa_device_plugin import EfaDevicePlugin, efa_pools
    from ..addons.efa_dra_driver import EfaDraDriver, efa_dra_pools
    from ..addons.nccl_plugin import NcclPlugin, gke_pools
    from ..addons.network_operator import NetworkOperator, NetworkOperatorArgs, rdma_pools
    pools = cluster.gpu_pools
    if efa_pools(pools):
        add("efa-device-plugin", EfaDevicePlugin("efa-device-plugin", cluster),
            CHARTS["efa-device-plugin"].version)
    if efa_dra_pools(pools):
        add("efa-dra-driver", EfaDraDriver("efa-dra-driver", cluster),
            CHARTS["efa-dra-driver"].version)
    if gke_pools(pools):
        kinds = sorted({str((p.fabric or {})["kind"]) for p in gke_pools(pools)})
        add("nccl-plugin", NcclPlugin("nccl-plugin", cluster), ", ".join(
            IMAGES["nccl-" + k.removeprefix("gpudirect-")].rsplit(":", 1)[1] for k in kinds))
    if rdma_pools(pools):
        add("network-operator", NetworkOperator("network-operator", cluster,
                                                NetworkOperatorArgs(after=after)),
            CHARTS["network-operator"].version)


def azure_lustre_csi(cluster: ClusterOutputs, add: Any) -> None:
    """The Azure Lustre CSI driver where the cluster has an Azure Managed Lustre (#20)."""
    from ..addons.azurelustre_csi import AzureLustreCsi, wanted
    if wanted(cluster):
        add("azurelustre-csi", AzureLustreCsi("azurelustre-csi", cluster),
            CHARTS["azurelustre-csi"].version)


def export(p: Platform) -> None:
    """What ``aicp verify --stack`` reads back with ``pulumi stack output``."""
    cfg, cluster = p.config, p.cluster
    pulumi.export("target", cfg.target)
    pulumi.export("clusterName", cluster.name)
    pulumi.export("kubernetesVersion", cluster.kubernetes_version)
    pulumi.export("checklistVersion", cfg.checklist_version)
    pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
    pulumi.export("gpuPools", [pool.export() for pool in cluster.gpu_pools])
    pulumi.export("autoscaler", cluster.autoscaler)
    pulumi.export("addons", dict(p.versions))
    pulumi.export("notApplicable", dict(p.not_applicable))
    pulumi.export("preflight", dict(p.preflight))
    storage = cluster.storage.export() if cluster.storage else {}
    pulumi.export("defaultStorageClass", storage.get("defaultStorageClass"))
    pulumi.export("storage", storage)


def main() -> Any:
    try:
        platform = build(*configured())
    except ConfigError as exc:
        # RunError ends the program with the message alone: no traceback for a config typo.
        raise pulumi.RunError(str(exc)) from None
    export(platform)
    return platform
