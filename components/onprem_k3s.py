"""k3s over SSH for the on-prem target: the shell each host runs, and the commands that run it.

Why k3s and not RKE2: one binary and one installer for servers and agents, embedded etcd HA
with ``--cluster-init``, and a CNCF-certified distribution whose releases follow upstream
patches within days; it needs nothing on the host but ``curl``, ``sha256sum`` and systemd.
RKE2 (SUSE's other distribution) adds FIPS builds and a CIS-hardened default profile but
ships as a tarball plus an RPM/airgap image bundle, runs the control plane as static pods
and needs more memory per server; choose it when FIPS 140 or CIS benchmark sign-off is a
requirement (not handled here).

Upstream followed: k3s docs (installation/configuration, "High Availability Embedded etcd",
"Node labels and taints", secrets encryption, ``install.sh`` environment variables,
uninstalling), pulumi-command 1.2 ``remote.Command`` (inputs changes re-run ``create``;
``connection`` and ``triggers`` changes replace).

Decisions, each with its reason:

- **Idempotent create.** Each host's script ends by writing the k3s version and a
  fingerprint of its install flags to ``/etc/rancher/k3s/aicp-install``; it exits at once
  when both match. A version bump changes the script, so Pulumi runs it again (an update,
  not a replacement) and the installer upgrades k3s in place — the upgrade k3s documents.
- **Replacement only when the host changes** (``triggers=[host]``). Replacing runs the new
  create before the old delete; on the same host the delete (uninstall) would undo the
  create, so SSH user and key changes are ignored (``ignore_changes``), never replacing.
- **Servers one after another, agents after every server**: etcd members join one at a
  time, and upgrades reach servers before agents (k3s's upgrade order).
- **The join token travels on stdin** into a root-only file (``--token-file``), never on
  a command line (``ps``) or in Pulumi's recorded command text.
- **Node labels and the GPU taint come from the kubelet flags** (``--node-label``,
  ``--node-taint``): the node registers already tainted, so no CPU pod lands on it first.
  k3s applies them only at registration: moving a registered host to another pool means
  ``kubectl delete node`` on it, then ``pulumi up``.
- **``--secrets-encryption``** on every server: Secrets are encrypted at rest in etcd.
- **No Traefik**: the platform brings its own Gateway API implementation (Istio).
- **No kube-apiserver flags**: DRA (``resource.k8s.io/v1``) is on by default from 1.34.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .contract import GpuPool

STATE_FILE = "/etc/rancher/k3s/aicp-install"
TOKEN_FILE = "/etc/rancher/k3s/aicp-token"
KUBECONFIG_FILE = "/etc/rancher/k3s/k3s.yaml"
NODE_TOKEN_FILE = "/var/lib/rancher/k3s/server/node-token"
SERVER_UNINSTALL = "/usr/local/bin/k3s-uninstall.sh"
AGENT_UNINSTALL = "/usr/local/bin/k3s-agent-uninstall.sh"
API_PORT = 6443
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class K3sRelease:
    """The k3s release to install and the installer that fetches it. The stack fills it in
    from the version catalog (``aicp.addons.catalog.K3S_*``); components never read it."""

    version: str  # e.g. "v1.35.8+k3s1"
    installer_url: str
    installer_sha256: str

    @property
    def minor(self) -> str:
        """The Kubernetes minor the release carries ("1.35")."""
        return ".".join(self.version.lstrip("v").split(".")[:2])


@dataclass(frozen=True)
class K3sHost:
    """One machine reached over SSH; ``pool`` names the GPU pool it serves (None: CPU only)."""

    host: str
    user: str = "root"
    pool: str | None = None


def valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def valid_user(user: str) -> bool:
    return bool(_USER.match(user))


def url_host(host: str) -> str:
    """``host`` as it goes into a URL (IPv6 in brackets)."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def server_url(host: str) -> str:
    return f"https://{url_host(host)}:{API_PORT}"


def _sudo(user: str) -> str:
    return "" if user == "root" else "sudo -n "


def node_flags(pool: GpuPool | None) -> list[str]:
    """Labels and taints a node registers with: its pool's, or none for a CPU node."""
    if pool is None:
        return []
    flags = [f"--node-label={k}={v}" for k, v in sorted(pool.labels.items())]
    flags += [f"--node-taint={t.key}={t.value}:{t.effect}" for t in pool.taints]
    return flags


def server_flags(host: K3sHost, pool: GpuPool | None, first: K3sHost | None) -> list[str]:
    """k3s server flags; ``first`` is None for the server that initialises etcd."""
    flags = ["server"]
    flags += ["--cluster-init"] if first is None else [
        f"--server={server_url(first.host)}", f"--token-file={TOKEN_FILE}"]
    flags += ["--disable=traefik", "--secrets-encryption", "--write-kubeconfig-mode=600",
              f"--tls-san={host.host}"]
    return flags + node_flags(pool)


def agent_flags(first: K3sHost, pool: GpuPool | None) -> list[str]:
    return ["agent", f"--server={server_url(first.host)}", f"--token-file={TOKEN_FILE}",
            *node_flags(pool)]


def fingerprint(version: str, flags: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join([version, *flags]).encode()).hexdigest()[:16]
    return f"{version} {digest}"


def install_script(host: K3sHost, release: K3sRelease, flags: Sequence[str], *,
                   token_on_stdin: bool) -> str:
    """Shell that installs (or upgrades to) the k3s ``release`` with ``flags``; a no-op when
    the host already runs exactly that."""
    sudo = _sudo(host.user)
    version = release.version
    stamp = fingerprint(version, flags)
    lines = [
        "set -eu",
        f"if command -v k3s >/dev/null 2>&1 && k3s --version | grep -qF "
        f"{shlex.quote(f'k3s version {version} ')} && "
        f"{sudo}grep -qxF {shlex.quote(stamp)} {STATE_FILE} 2>/dev/null; then",
        f"  echo {shlex.quote(f'k3s {version} already installed with these flags')}; exit 0",
        "fi",
        f"{sudo}mkdir -p /etc/rancher/k3s",
    ]
    if token_on_stdin:
        lines.append(f"{sudo}sh -c {shlex.quote(f'umask 077; cat > {TOKEN_FILE}')}")
    lines += [
        # A private temporary file: a fixed /tmp name could be swapped by another user.
        'installer=$(mktemp)',
        """trap 'rm -f "$installer"' EXIT""",
        f'curl -sfL --proto =https -o "$installer" {shlex.quote(release.installer_url)}',
        f"printf '%s  %s\\n' {shlex.quote(release.installer_sha256)} \"$installer\""
        " | sha256sum -c -",
        f'{sudo}env INSTALL_K3S_VERSION={shlex.quote(version)} sh "$installer" '
        + " ".join(shlex.quote(f) for f in flags),
        f"echo {shlex.quote(stamp)} | {sudo}tee {STATE_FILE} >/dev/null",
    ]
    return "\n".join(lines) + "\n"


def uninstall_script(host: K3sHost, *, agent: bool) -> str:
    sudo = _sudo(host.user)
    script = AGENT_UNINSTALL if agent else SERVER_UNINSTALL
    return f"if [ -x {script} ]; then {sudo}{script}; fi\n"


def read_script(host: K3sHost, path: str) -> str:
    return f"{_sudo(host.user)}cat {path}\n"


def public_kubeconfig(text: str, first: K3sHost) -> str:
    """k3s writes its kubeconfig for 127.0.0.1; point it at the first server."""
    return text.replace(f"https://127.0.0.1:{API_PORT}", server_url(first.host))


def pool_of(host: K3sHost, pools: Mapping[str, GpuPool]) -> GpuPool | None:
    return pools[host.pool] if host.pool is not None else None
