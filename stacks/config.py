"""The stack configuration (namespace ``aicp:`` in ``Pulumi.<stack>.yaml``), typed and checked
for its shape.

Every problem is found before any resource is declared and reported as one line naming
the key path, the bad value and what is allowed, e.g.
``aicp:gpuPools[1].minNodes: 3 is more than maxNodes 2``. This module knows no cloud: what
a target refuses (region codes, zones, node limits, the catalog's accelerators) is that
target's ``check`` (``stacks/targets/<target>.py``), run before anything is declared, and
the keys a target reads outside the model (the on-prem secrets) are that target's too.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from ..addons.catalog import DEFAULT_KUBERNETES, KUBERNETES
from .errors import ConfigError

NAMESPACE = "aicp"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
# A Kubernetes Duration is Go's time.ParseDuration format (k8s.io/apimachinery
# pkg/apis/meta/v1/duration.go); Kueue's waitForPodsReady.timeout is a *metav1.Duration
# (kubernetes-sigs/kueue apis/config/v1beta1/configuration_types.go, WaitForPodsReady).
_GO_DURATION = re.compile(r"^(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
                          r"((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))*$")



def _camel(name: str) -> str:
    # pydantic's to_camel also capitalises after a digit: k3s became k3S.
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=_camel, populate_by_name=False)


class Network(_Model):
    vpc_cidr: StrictStr = "10.0.0.0/16"
    # Bring your own: private subnet ids (AWS), subnetwork self-link (GCP), subnet id (Azure).
    subnet_ids: tuple[StrictStr, ...] = ()


class Endpoint(_Model):
    private_access: StrictBool = True
    public_access: StrictBool = True
    public_access_cidrs: tuple[StrictStr, ...] = ("0.0.0.0/0",)


class SystemPool(_Model):
    instance_type: StrictStr | None = None
    min_nodes: StrictInt = Field(default=2, ge=1)
    max_nodes: StrictInt = Field(default=4, ge=1)


class GpuPool(_Model):
    name: StrictStr
    accelerator: StrictStr
    instance_type: StrictStr | None = None
    min_nodes: StrictInt = Field(default=0, ge=0)
    max_nodes: StrictInt = Field(ge=1)
    capacity_type: Literal["on-demand", "spot", "capacity-block", "flex-start",
                           "queued-provisioning"] = "on-demand"
    capacity_reservation_id: StrictStr | None = None
    # dra: GPUs are handed out through ResourceClaims by the NVIDIA DRA driver;
    # device-plugin: as the nvidia.com/gpu extended resource. Never both on one node.
    allocator: Literal["dra", "device-plugin"] = "dra"
    # On-prem only: on the clouds it follows the instance type in the accelerator catalog.
    gpus_per_node: StrictInt | None = Field(default=None, ge=1)


class OnOff(_Model):
    enabled: StrictBool = True


class GpuOperator(_Model):
    enabled: StrictBool = True
    # host: the node image ships the driver and toolkit (EKS AL2023 NVIDIA, AKS's install);
    # operator: the GPU Operator installs them (default on AKS and on-prem).
    driver: Literal["host", "operator"] | None = None
    # The operator's bundled Node Feature Discovery; false where the cluster already runs NFD.
    nfd: StrictBool = True


class Kueue(_Model):
    enabled: StrictBool = True
    # From admission to all pods Ready, so it covers a cold GPU pool: scale-up from zero and
    # a 10-20 GB image pull. Kueue's own default (v0.19.2 apis/config/v1beta2/defaults.go).
    wait_for_pods_ready_timeout: StrictStr = "30m"
    namespace: StrictStr = "ai-workloads"


class Gateway(_Model):
    enabled: StrictBool = True
    implementation: Literal["istio"] = "istio"
    # How the inference Gateway gets an address: LoadBalancer on the clouds and on k3s
    # (ServiceLB); NodePort or ClusterIP where nothing provisions load balancers. Unset:
    # LoadBalancer, but NodePort on an existing on-prem cluster.
    service_type: Literal["LoadBalancer", "NodePort", "ClusterIP"] | None = None


class Autoscaler(_Model):
    enabled: StrictBool = True
    expander: Literal["least-waste", "priority", "random", "most-pods", "price"] = "least-waste"


class KubeRay(_Model):
    enabled: StrictBool = True
    webhook: StrictBool = True


class Gcp(_Model):
    project: StrictStr
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    master_ipv4_cidr_block: StrictStr = "172.16.0.0/28"


class Azure(_Model):
    resource_group: StrictStr | None = None  # created as <clusterName>-rg when not given
    # Register the subscription-wide AKSInfinibandSupport feature from the stack (opt-in;
    # components/azure.py INFINIBAND_FEATURE).
    register_infiniband_feature: StrictBool = False


class SshHost(_Model):
    host: StrictStr
    user: StrictStr = "root"
    pool: StrictStr | None = None  # agents: the GPU pool this host belongs to


class K3s(_Model):
    servers: tuple[SshHost, ...] = Field(min_length=1)
    agents: tuple[SshHost, ...] = ()
    # Name of the secret config key holding the SSH private key (pulumi config set --secret).
    ssh_private_key_key: StrictStr = "aicp:sshPrivateKey"


class Virtualization(_Model):
    # The layer that serves GPUs to VMs (components/onprem.py VirtualizationLayer).
    layer: Literal["kubevirt"]
    pools: tuple[StrictStr, ...]
    workload: Literal["vm-passthrough", "vm-vgpu"] = "vm-passthrough"
    vgpu_manager_image: StrictStr | None = None


class OnPremSandbox(_Model):
    # existing clusters: the CPU nodes that get gVisor (components/onprem.py EXISTING_SANDBOX).
    runtime: Literal["gvisor", "kata"] = "gvisor"  # kata: the nodes need KVM
    nodes: tuple[StrictStr, ...] = Field(min_length=1)


class OnPrem(_Model):
    mode: Literal["existing", "k3s"]
    # existing: a kubeconfig path; the secret config key aicp:kubeconfig works too.
    kubeconfig: StrictStr | None = None
    context: StrictStr | None = None
    # existing: which nodes form each GPU pool (pool name → node names).
    gpu_nodes: Mapping[StrictStr, tuple[StrictStr, ...]] = Field(default_factory=dict)
    k3s: K3s | None = None
    # A racked RDMA fabric on the GPU nodes (components/fabric.py onprem_rdma_fabric): the
    # NVIDIA Network Operator publishes its HCAs. Off unless set.
    rdma: Literal["infiniband", "ethernet"] | None = None
    # KubeVirt serving the GPUs of these pools to VMs (virtualized_accelerator). Off unless set.
    virtualization: Virtualization | None = None
    # existing: gVisor installed on these nodes for workload_sandboxing.
    sandbox: OnPremSandbox | None = None


class BlockStorage(_Model):
    enabled: StrictBool = True
    # On an existing on-prem cluster: the class to use (it must exist and be the default).
    default_class: StrictStr | None = None


class BucketStorage(_Model):
    enabled: StrictBool = True
    # An existing bucket (or Azure container) to use instead of creating one.
    name: StrictStr | None = None


class ParallelFs(_Model):
    enabled: StrictBool = False  # FSx for Lustre, GKE Managed Lustre, Azure Managed Lustre
    capacity_gib: StrictInt = Field(default=1200, ge=1200)


class S3Endpoint(_Model):
    # On-prem: an S3-compatible endpoint and the Secret (in the workload namespace) with
    # its access keys; on-prem has no workload identity to bind.
    endpoint: StrictStr
    secret: StrictStr


class Storage(_Model):
    """Block storage and the model bucket on by default (cheap), parallel FS off (#20)."""

    block: BlockStorage = BlockStorage()
    bucket: BucketStorage = BucketStorage()
    parallel_fs: ParallelFs = ParallelFs()
    local_nvme: StrictBool = True
    s3: S3Endpoint | None = None


class Addons(_Model):
    gpu_operator: GpuOperator = GpuOperator()
    kueue: Kueue = Kueue()
    gateway: Gateway = Gateway()
    inference_extension: OnOff = OnOff()
    autoscaler: Autoscaler = Autoscaler()
    monitoring: OnOff = OnOff()
    kuberay: KubeRay = KubeRay()
    # workload_sandboxing: a gVisor or Kata pool and its RuntimeClass (issue #25).
    sandbox: OnOff = OnOff()
    # disaggregated_inference: LeaderWorkerSet and the endpoint picker's prefill/decode
    # profile; light until a model is deployed (issue #25).
    disaggregated_inference: OnOff = OnOff()


class Team(_Model):
    """A team sharing the GPU pools: its namespace, LocalQueue and ClusterQueue (Kueue)."""

    name: StrictStr
    # GPUs the team is guaranteed, per GPU pool name: its ClusterQueue's nominalQuota there.
    quota: Mapping[StrictStr, StrictInt] = Field(default_factory=dict)
    # GPUs per pool it may borrow from the cohort beyond its quota (unset: no limit).
    borrowing_limit: StrictInt | None = Field(default=None, ge=0)
    # GPUs of its quota per pool the cohort may borrow (unset: all of it).
    lending_limit: StrictInt | None = Field(default=None, ge=0)
    # Share of unused GPUs under Kueue's fair sharing, relative to the other teams.
    weight: StrictInt = Field(default=1, ge=1)


class PlatformConfig(_Model):
    # One of the targets stacks/targets/__init__.py TARGETS lists; the program looks it up.
    target: StrictStr
    cluster_name: StrictStr = "aicp"
    kubernetes_version: StrictStr = DEFAULT_KUBERNETES
    region: StrictStr | None = None
    zones: tuple[StrictStr, ...] = ()
    network: Network = Network()
    endpoint: Endpoint = Endpoint()
    system_pool: SystemPool = SystemPool()
    gpu_pools: tuple[GpuPool, ...] = Field(min_length=1)
    addons: Addons = Addons()
    gcp: Gcp | None = None
    azure: Azure | None = None
    onprem: OnPrem | None = None
    tags: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    storage: Storage = Storage()
    teams: tuple[Team, ...] = ()

    @property
    def checklist_version(self) -> str:
        return self.kubernetes_version


# --- error text ---------------------------------------------------------------------------

def _key(loc: tuple[Any, ...]) -> str:
    out = NAMESPACE + ":"
    first = True
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("" if first else ".") + str(part)
        first = False
    return out


def _allowed(model: type[BaseModel]) -> str:
    return ", ".join(f.alias or n for n, f in model.model_fields.items())


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: Any = PlatformConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == part)
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type)
                      and issubclass(a, BaseModel)), model)
    return model


def _explain(err: Mapping[str, Any]) -> str:
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    key = _key(loc)
    if kind == "extra_forbidden":
        model = _model_at(loc)
        names = [f.alias or n for n, f in model.model_fields.items()]
        close = difflib.get_close_matches(str(loc[-1]).lower(), [n.lower() for n in names],
                                          n=1, cutoff=0.8)
        hint = f"did you mean {names[[n.lower() for n in names].index(close[0])]}? " \
            if close else ""
        return f"{key}: unknown key; {hint}allowed here: {_allowed(model)}"
    if kind == "missing":
        return f"{key}: required key is missing"
    if value is None:
        return f"{key}: has no value (an empty key in YAML); give a value or leave the key out"
    if kind == "literal_error":
        expected = err["ctx"]["expected"].replace("'", "")
        return f"{key}: {value!r} is not one of {expected.replace(' or ', ', ')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{key}: {value!r} is not a whole number"
    if kind in ("string_type",):
        return f"{key}: {value!r} is not a string (quote it in YAML: \"{value}\")"
    if kind in ("bool_type", "bool_parsing"):
        return f"{key}: {value!r} is not true or false"
    if kind in ("model_type", "dict_type"):
        return f"{key}: expected a mapping of keys, got {value!r}"
    if kind in ("tuple_type", "list_type"):
        return f"{key}: expected a list, got {value!r}"
    if kind == "too_short":
        return f"{key}: must list at least one entry"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{key}: {value!r} must be at least {err['ctx'].get('ge', err['ctx'].get('gt'))}"
    return f"{key}: {err['msg']} (got {value!r})"


def _first(errors: list[Any]) -> Any:
    # An unknown key first: a typo (maxNode) also makes its intended key (maxNodes)
    # missing, and the typo is the thing to fix.
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


# A pool's node range is the pool contract's rule (components/contract.py ``node_range``),
# handed in by the stack (stacks/program.py ``read``) as this module imports no component:
# ``node_range(key, minNodes, maxNodes, "maxNodes")`` raises ConfigError naming ``key``. It
# is checked here, to keep its place among the rules.
NodeRange = Callable[[str, int, int, str], None]


def _check(cfg: PlatformConfig, node_range: NodeRange | None) -> None:
    """Rules that span fields and hold on every target; the first one broken is reported.
    Without ``node_range`` the pools' node ranges are left to the components."""
    def within(key: str, low: int, high: int) -> None:
        if node_range is not None:
            node_range(key, low, high, "maxNodes")

    if cfg.kubernetes_version not in KUBERNETES:
        raise ConfigError(
            f"aicp:kubernetesVersion: {cfg.kubernetes_version!r} is not supported; use one of "
            f"{', '.join(KUBERNETES)} (DRA's resource.k8s.io/v1 needs 1.34 or newer)")
    if not _DNS_LABEL.match(cfg.cluster_name):
        raise ConfigError(
            f"aicp:clusterName: {cfg.cluster_name!r} must be a lowercase DNS label of at most "
            "32 characters (letters, digits, '-')")
    within("aicp:systemPool.minNodes", cfg.system_pool.min_nodes, cfg.system_pool.max_nodes)
    for i, pool in enumerate(cfg.gpu_pools):
        key = f"aicp:gpuPools[{i}]"
        if not _DNS_LABEL.match(pool.name):
            raise ConfigError(
                f"{key}.name: {pool.name!r} must be a lowercase DNS label of at most 32 "
                "characters")
        within(f"{key}.minNodes", pool.min_nodes, pool.max_nodes)
    timeout = cfg.addons.kueue.wait_for_pods_ready_timeout
    if not _GO_DURATION.match(timeout):
        raise ConfigError(f"aicp:addons.kueue.waitForPodsReadyTimeout: {timeout!r} is not a "
                          "duration; write it like 10m, 90s or 1h30m")


def check_teams(cfg: PlatformConfig) -> None:
    """Team names become namespaces and ClusterQueue names; their quota names GPU pools
    (what a pool holds is the Kueue addon's rule, ``addons/kueue.py`` ``validate_teams``).
    Checked after the target's rules (``stacks/program.py`` ``load``): a pool the target
    refuses is named first."""
    pools = [p.name for p in cfg.gpu_pools]
    for i, team in enumerate(cfg.teams):
        if not _DNS_LABEL.match(team.name):
            raise ConfigError(f"aicp:teams[{i}].name: {team.name!r} must be a lowercase DNS "
                              "label of at most 32 characters (it names the team's namespace)")
        for pool in team.quota:
            if pool not in pools:
                raise ConfigError(f"aicp:teams[{i}].quota.{pool}: no GPU pool is named "
                                  f"{pool!r}; use one of {', '.join(pools)}")
    if cfg.teams and not cfg.addons.kueue.enabled:
        raise ConfigError("aicp:teams: teams share GPUs through Kueue, which is off; set "
                          "aicp:addons.kueue.enabled: true or drop aicp:teams")


def parse(raw: Mapping[str, Any], node_range: NodeRange | None = None) -> PlatformConfig:
    """Check ``aicp:`` config (keys without the namespace) for its shape and return it, or
    raise ConfigError.

    Keys a target reads outside the model (the on-prem secrets) are not for it: the stack
    splits them off first and hands them to their target (``stacks/program.py`` ``read``).
    """
    try:
        cfg = PlatformConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_explain(_first(exc.errors(include_url=False)))) from None
    _check(cfg, node_range)
    return cfg


def decode(value: Any) -> Any:
    # Pulumi hands every config value to programs as text, objects and lists as JSON. Only
    # those are decoded: "1.35" must stay the string it was written as.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def from_pulumi() -> tuple[dict[str, Any], dict[str, Any]]:
    """Every ``aicp:*`` key the running Pulumi program was given, by name without the
    namespace and as the engine hands it (text, not yet ``decode``d), and the stack's other
    namespaces' settings by full key (``aws:region``...)."""
    from pulumi.runtime.config import CONFIG, get_config_env

    merged = {**get_config_env(), **CONFIG.get()}
    raw = {k.split(":", 1)[1]: v for k, v in merged.items() if k.startswith(NAMESPACE + ":")}
    return raw, {k: v for k, v in merged.items() if not k.startswith(NAMESPACE + ":")}


# The top-level keys of the model (``aicp:<key>``).
KEYS = frozenset(f.alias or n for n, f in PlatformConfig.model_fields.items())

__all__ = ["KEYS", "ConfigError", "GpuPool", "PlatformConfig", "decode", "from_pulumi", "parse"]
