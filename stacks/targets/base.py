"""What every target module shares: its shape (``Target``), the keys a target reads outside
the config model (``Secrets``), how a component's refusal becomes the config error that
names the key (``refused``), and the pool requests.

A component refuses bad arguments with ``pulumi.errors.InputPropertyError(property_path,
reason)``, as pulumi/pulumi-eks does (nodejs/eks/nodes/ami.ts); ``refused`` turns one into
the one-line config error through the target's ``KEYS``, never by reading the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pulumi.errors import InputPropertyError

from ...components.contract import ClusterOutputs, GpuPoolRequest, PropertyError
from ...components.storage import StorageArgs
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import PlatformConfig
    from ..preflight import Report


@dataclass(frozen=True)
class Secrets:
    """What a stack sets outside the config model, split off before the model reads the
    rest (``stacks/program.py`` ``read``): secrets (``pulumi config set --secret``), read
    for their presence and checked, never kept in the model.

    ``values``: each ``aicp:`` key a target reads (name without the namespace) → its value as
    written; ``owners``: that key → the target that reads it; ``other_keys``: the full keys
    of the stack's other namespaces (where a secret may live too).
    """

    values: Mapping[str, Any] = field(default_factory=dict, repr=False)
    owners: Mapping[str, str] = field(default_factory=dict)
    other_keys: frozenset[str] = frozenset()

    def check(self, target: str) -> None:
        """Each key given has a value and is read by ``target``; the first that is not, as
        ConfigError."""
        for name, value in self.values.items():
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"aicp:{name}: empty; set it with pulumi config set "
                                  f"--secret aicp:{name} ... or leave it out")
        for name, owner in self.owners.items():
            if owner != target:
                raise ConfigError(f"aicp:{name}: only read on target {owner}; drop the key")


class Target(Protocol):
    """One target module's fixed shape (its module object satisfies it)."""

    # Component property path, with ``[*]`` for each index or map key → config key, with
    # ``{}`` for each, in order: {"gpu_pools[*].min_nodes": "aicp:gpuPools[{}].minNodes"}.
    KEYS: Mapping[str, str]
    # The stack's provider settings that decide where (and in which project) resources go
    # → the ``aicp:`` path that says the same, e.g. {"aws:region": "region"} (``honour``).
    PROVIDER_KEYS: Mapping[str, str]
    # ``aicp:`` paths (``[*]`` for each index) the target never reads → why (``unread``).
    UNREAD: Mapping[str, str]

    def secrets(self, raw: Mapping[str, Any]) -> Collection[str]:
        """The ``aicp:`` keys (names without the namespace) this target reads outside the
        config model, given the stack's ``aicp:`` config ``raw`` (unchecked)."""
        ...

    def check_secrets(self, cfg: PlatformConfig, secrets: Secrets) -> None:
        """The rules on those keys (present, well formed), checked before ``check``."""
        ...

    def check(self, cfg: PlatformConfig) -> None:
        """Every rule of this target that ``cfg`` breaks (the first, as ConfigError);
        declares nothing."""
        ...

    def cluster(self, cfg: PlatformConfig) -> ClusterOutputs:
        """Declare the target's component for ``cfg``; what the addon layer builds on."""
        ...

    def load_balancers(self, cfg: PlatformConfig) -> bool:
        """Whether the cluster gives a ``LoadBalancer`` Service an address."""
        ...

    def preflight(self, cfg: PlatformConfig, report: Report) -> None:
        """Ask the cloud's read-only lookups whether the GPU pools can come up; add what
        was checked and warned to ``report``, raise PreflightError for a pool that cannot."""
        ...


# --- from a component's property path to the config key ------------------------------------

_INDEX = re.compile(r'\[(\d+|"(?:[^"\\]|\\.)*")\]')


def pattern(path: str) -> tuple[str, list[str]]:
    """``gpu_pools[2].min_nodes`` → (``gpu_pools[*].min_nodes``, ["2"]); a map key is
    written as a JSON string (``labels["Team"]``)."""
    found: list[str] = []

    def star(match: re.Match[str]) -> str:
        index = match.group(1)
        found.append(json.loads(index) if index.startswith('"') else index)
        return "[*]"

    return _INDEX.sub(star, path), found


def config_key(path: str, keys: Mapping[str, str]) -> str:
    """The config key a component's property path stands for, by the target's ``keys``."""
    shape, indexes = pattern(path)
    return keys[shape].format(*indexes)


def message(error: InputPropertyError, keys: Mapping[str, str]) -> str:
    """A component's refusal as the one line a person reads: the config key, the reason."""
    def name(path: str) -> str:
        return config_key(path, keys)

    reason = error.render(name) if isinstance(error, PropertyError) else error.reason
    return f"{name(error.property_path)}: {reason}"


@contextmanager
def refused(keys: Mapping[str, str]) -> Iterator[None]:
    """Inside: a component's ``InputPropertyError`` becomes a ConfigError naming the key."""
    try:
        yield
    except InputPropertyError as exc:
        raise ConfigError(message(exc, keys)) from None


def pool_requests(cfg: PlatformConfig) -> tuple[GpuPoolRequest, ...]:
    return tuple(
        GpuPoolRequest(
            name=p.name, accelerator=p.accelerator, min_nodes=p.min_nodes,
            max_nodes=p.max_nodes, instance_type=p.instance_type,
            capacity_type=p.capacity_type, capacity_reservation_id=p.capacity_reservation_id,
            allocator=p.allocator, gpus_per_node=p.gpus_per_node)
        for p in cfg.gpu_pools)


# What every target's component refuses in GpuPoolRequest (components/contract.py
# validate_pools) → the config keys of a pool.
POOL_KEYS: Mapping[str, str] = {
    "gpu_pools[*]": "aicp:gpuPools[{}]",
    "gpu_pools[*].name": "aicp:gpuPools[{}].name",
    "gpu_pools[*].accelerator": "aicp:gpuPools[{}].accelerator",
    "gpu_pools[*].instance_type": "aicp:gpuPools[{}].instanceType",
    "gpu_pools[*].min_nodes": "aicp:gpuPools[{}].minNodes",
    "gpu_pools[*].max_nodes": "aicp:gpuPools[{}].maxNodes",
    "gpu_pools[*].capacity_type": "aicp:gpuPools[{}].capacityType",
    "gpu_pools[*].capacity_reservation_id": "aicp:gpuPools[{}].capacityReservationId",
    "gpu_pools[*].allocator": "aicp:gpuPools[{}].allocator",
    "gpu_pools[*].gpus_per_node": "aicp:gpuPools[{}].gpusPerNode",
}


# --- the stack's provider settings, and settings a target does not read ---------------------

# A config path with ``[*]`` for every index (``gpuPools[*].capacityType``).
_STEP = re.compile(r"([^.\[]+)((?:\[\*\])?)")


def _found(values: Any, path: str, key: str = "aicp:") -> Iterator[tuple[str, Any]]:
    """Each place ``path`` names in ``values`` (the ``aicp:`` config as written) that is set:
    its full config key and value. A value of the wrong shape is the model's to report."""
    if not path:
        yield key, values
        return
    match = _STEP.match(path)
    assert match is not None, path
    name, each = match.groups()
    rest = path[match.end():].removeprefix(".")
    if not isinstance(values, Mapping) or values.get(name) is None:
        return
    key = f"{key}{'' if key.endswith(':') else '.'}{name}"
    if each:
        items = values[name]
        if isinstance(items, list):
            for i, item in enumerate(items):
                yield from _found(item, rest, f"{key}[{i}]")
        return
    yield from _found(values[name], rest, key)


def honour(values: Mapping[str, Any], provider_keys: Mapping[str, str],
           provider: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (the ``aicp:`` config as written) with the stack's provider settings that
    decide where resources go (``aws:region``, ``gcp:project``...; ``provider_keys``: that
    key → the ``aicp:`` path that says the same) taken in where aicp's own key is not set.

    Pulumi users set ``pulumi config set aws:region ...``; the explicit providers aicp makes
    read none of the stack's ``aws:*`` settings (https://www.pulumi.com/docs/iac/concepts/
    resources/providers/#explicit-provider-configuration), so one left out would be silently
    overridden by aicp's key. Where both are set and differ, that is refused in one line.
    """
    out = dict(values)
    for setting, path in provider_keys.items():
        given = provider.get(setting)
        if not isinstance(given, str) or not given:
            continue  # unset, or a secret aicp cannot compare
        head, _, leaf = path.rpartition(".")
        here: dict[str, Any] = out
        for part in head.split(".") if head else ():
            inner = here.get(part)
            if inner is not None and not isinstance(inner, Mapping):
                return out  # the model reports the shape
            here[part] = dict(inner or {})
            here = here[part]
        ours = here.get(leaf)
        if ours is None:
            here[leaf] = given
        elif ours != given:
            raise ConfigError(
                f"aicp:{path}: {ours!r} disagrees with the stack's {setting} {given!r}; set "
                f"them alike, or drop one (aicp builds where aicp:{path} says, and takes "
                f"{setting} when aicp:{path} is not set)")
    return out


def unread(values: Mapping[str, Any], keys: Mapping[str, str], target: str) -> None:
    """Refuse the first setting in ``values`` (the ``aicp:`` config as written) that the
    target never reads (``keys``: a path, ``[*]`` for each index → why): a key that changes
    nothing would let a person believe it did."""
    for path, why in keys.items():
        for key, _ in _found(values, path):
            raise ConfigError(f"{key}: does nothing on target {target} ({why}); drop it")


# What every target's component refuses in StorageArgs (components/storage.py) → the keys.
STORAGE_KEYS: Mapping[str, str] = {
    "storage.bucket_name": "aicp:storage.bucket.name",
    "storage.parallel_fs": "aicp:storage.parallelFs.enabled",
    "storage.parallel_fs_capacity_gib": "aicp:storage.parallelFs.capacityGib",
    "storage.default_class": "aicp:storage.block.defaultClass",
    "storage.s3_endpoint": "aicp:storage.s3.endpoint",
    "storage.team_namespaces": "aicp:teams",
    "storage.team_namespaces[*]": "aicp:teams[{}].name",
}


def storage_args(cfg: PlatformConfig) -> StorageArgs:
    """The ``aicp:storage`` block as every target's component takes it."""
    s = cfg.storage
    if s.s3 is not None and cfg.target != "onprem":
        raise ConfigError("aicp:storage.s3: only for target onprem; on a cloud the stack's "
                          "bucket is reached with workload identity, no keys: remove it")
    return StorageArgs(
        block=s.block.enabled, default_class=s.block.default_class,
        bucket=s.bucket.enabled, bucket_name=s.bucket.name,
        workload_namespace=cfg.addons.kueue.namespace,
        team_namespaces=tuple(t.name for t in cfg.teams),  # each team's namespace (#24)
        parallel_fs=s.parallel_fs.enabled, parallel_fs_capacity_gib=s.parallel_fs.capacity_gib,
        local_nvme=s.local_nvme, s3_endpoint=s.s3.endpoint if s.s3 else None,
        s3_secret=s.s3.secret if s.s3 else None)
