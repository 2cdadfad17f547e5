"""The on-prem kubeconfig, checked before it is handed to the Kubernetes provider.

A kubeconfig is a YAML (or JSON) mapping whose ``clusters``, ``contexts`` and ``users`` are
lists of named entries (kubernetes/client-go tools/clientcmd/api/v1/types.go, ``Config``;
``kind: Config``). Anything else would surface much later, inside the provider, as a
traceback; here it is one line naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

# Planning offline needs no cluster: this stands in for a kubeconfig that is not on this
# machine (or is an encrypted secret), and `aicp plan` says that it did so.
STAND_IN_SERVER = "https://kubernetes.invalid:6443"


def stand_in(context: str | None) -> str:
    """A kubeconfig that names ``context`` (or ``aicp-plan``) and reaches nothing."""
    name = context or "aicp-plan"
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {name}\n  cluster:\n    server: {STAND_IN_SERVER}\n"
        f"contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
        f"current-context: {name}\n"
        f"users:\n- name: {name}\n  user:\n    token: stand-in\n")


def check_kubeconfig(text: str, context: str | None, key: str) -> None:
    """Raise ConfigError (naming ``key``) unless ``text`` is a kubeconfig with ``context``."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{key}: not a kubeconfig: not valid YAML{where} "
                          f"({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{key}: not a kubeconfig: expected a mapping with clusters, "
                          f"contexts and users, got {type(doc).__name__}")
    if doc.get("kind", "Config") != "Config":
        raise ConfigError(f"{key}: not a kubeconfig: kind is {doc['kind']!r}, not Config")
    for part in ("clusters", "contexts", "users"):
        entries = doc.get(part) or []
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries):
            raise ConfigError(f"{key}: not a kubeconfig: {part} must be a list of named "
                              "entries")
    if context is not None:
        names = [c["name"] for c in doc.get("contexts") or []]
        if context not in names:
            raise ConfigError(
                f"aicp:onprem.context: {context!r} is not a context of {key}; it has "
                f"{', '.join(names) or 'none'}")


def read_kubeconfig(path: str, context: str | None) -> str | None:
    """The checked text of the kubeconfig file at ``path``, or None when there is none."""
    key = "aicp:onprem.kubeconfig"
    file = Path(os.path.expanduser(path))
    if not file.is_file():
        return None
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {file}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key}: {file} is not a kubeconfig: byte 0x{data[exc.start]:02x} "
                          f"at offset {exc.start} is not UTF-8") from None
    check_kubeconfig(text, context, f"{key} ({file})")
    return text
