"""Talking to the cluster, one module per job.

- ``transport``: the client from a kubeconfig, JSON requests, and ``Kube``, the one object
  the runner and probes (``ctx.kube``) talk to the cluster through;
- ``retry``: transient failures (429 with Retry-After, 5xx, dropped connections) retried
  with bounded backoff, ``Lost`` once the cluster stops answering;
- ``paging``: lists read a page at a time, on through an expired continue token;
- ``rbac``: a 403 becomes ``Forbidden`` naming the missing permission;
- ``needs``: a probe's preconditions (``gpu_nodes``, ``api:…``, ``addon:…``) on this cluster;
- ``sweep``: the run's heartbeat, waiting for its namespaces to go, and ``cleanup`` of what
  earlier runs left (everything a run creates carries ``aicp.dev/verify-run=<id>``).
"""

from .needs import GPU_RESOURCES, quantity
from .paging import PAGE
from .rbac import Forbidden, forbidden
from .retry import CONNECTION_ERRORS, Lost, with_retry
from .sweep import ALIVE_SECONDS, HEARTBEAT, Sweep, cleanup
from .transport import ConfigError, Kube, NotJson, connect, default_kubeconfig, from_dict

__all__ = [
    "ALIVE_SECONDS", "CONNECTION_ERRORS", "GPU_RESOURCES", "HEARTBEAT", "PAGE", "ConfigError",
    "Forbidden", "Kube", "Lost", "NotJson", "Sweep", "cleanup", "connect",
    "default_kubeconfig", "forbidden", "from_dict", "quantity", "with_retry",
]
