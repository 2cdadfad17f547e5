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


# What every target's component refuses in StorageArgs (components/storage.py) → the keys.
STORAGE_KEYS: Mapping[str, str] = {
    "storage.bucket_name": "aicp:storage.bucket.name",
    "storage.parallel_fs": "aicp:storage.parallelFs.enabled",
    "storage.parallel_fs_capacity_gib": "aicp:storage.parallelFs.capacityGib",
    "storage.default_class": "aicp:storage.block.defaultClass",
    "storage.s3_endpoint": "aicp:storage.s3.endpoint",
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
        parallel_fs=s.parallel_fs.enabled, parallel_fs_capacity_gib=s.parallel_fs.capacity_gib,
        local_nvme=s.local_nvme, s3_endpoint=s.s3.endpoint if s.s3 else None,
        s3_secret=s.s3.secret if s.s3 else None)
