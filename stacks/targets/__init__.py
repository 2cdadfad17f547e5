"""The targets a stack can build on, one module each, and the registry that picks one.

A target module (``aws``, ``gcp``, ``azure``, ``onprem``) holds everything the stack knows
about that cloud: its rules (``check``), how config becomes its component's arguments
(``cluster``), what it asks the cloud before the first resource (``preflight``), and
``KEYS``, which names each property path its component may refuse with the config key a
person sets (``base.Target``). The stack picks one target, once (``stacks/program.py``); a
target's module is imported only when it is chosen, so a plan for AWS never loads the GCP
or Azure SDKs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import ConfigError
from .base import Target


def _aws() -> Target:
    from . import aws
    return aws


def _gcp() -> Target:
    from . import gcp
    return gcp


def _azure() -> Target:
    from . import azure
    return azure


def _onprem() -> Target:
    from . import onprem
    return onprem


# Target name (``aicp:target``) → its module, imported on first use.
TARGETS: Mapping[str, Callable[[], Target]] = {
    "aws": _aws, "gcp": _gcp, "azure": _azure, "onprem": _onprem}


def target(name: str) -> Target:
    try:
        load = TARGETS[name]
    except KeyError:
        raise ConfigError(f"aicp:target: {name!r} is not one of {', '.join(TARGETS)}") \
            from None
    return load()
