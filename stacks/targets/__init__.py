"""The targets a stack can build on, one module each, and the registry that picks one.

A target module (``aws``, ``gcp``, ``azure``, ``onprem``) holds everything the stack knows
about that cloud: its rules (``check``), how config becomes its component's arguments
(``cluster``), what it asks the cloud before the first resource (``preflight``), the keys
it reads outside the config model (``secrets``, ``check_secrets``), and ``KEYS``, which
names each property path its component may refuse with the config key a person sets
(``base.Target``). The stack picks one target, once (``stacks/program.py``); a
target's module is imported only when it is chosen, so a plan for AWS never loads the GCP
or Azure SDKs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config import KEYS
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


def owners(raw: Mapping[str, Any]) -> dict[str, str]:
    """Each key of ``raw`` (the stack's ``aicp:`` config, names without the namespace) that a
    target reads outside the config model → that target, in name order.

    The target ``raw`` names is asked first. Only a key that is neither the model's nor
    claimed yet makes the next target load and be asked, so a plan loads no other target
    unless a key of one is set (and then refused as that target's: "only read on target
    onprem"); a key no target reads is left for the model to call unknown.
    """
    found: dict[str, str] = {}
    named = raw.get("target")
    for name in sorted(TARGETS, key=lambda n: n != named):
        if all(key in KEYS or key in found for key in raw):
            break
        for key in TARGETS[name]().secrets(raw):
            if key in raw:
                found.setdefault(key, name)
    return dict(sorted(found.items()))
