"""gVisor (``runsc``) on nodes aicp boots itself, where the cloud offers no sandbox (EKS).

What a node needs, from gVisor's own guides:

- the release bundle ``gvisor.tar.bz2`` of a pinned release, checked against the
  ``gvisor.tar.bz2.sha512`` published beside it, holding ``runsc``,
  ``containerd-shim-runsc-v1`` and the ``gvisor-bin/`` helpers runsc starts beside itself
  (https://gvisor.dev/docs/user_guide/install/, "Install from a release"; the release
  store is https://storage.googleapis.com/gvisor/releases/release/<release>/<arch>/). The
  checksum comes from the same origin as the bundle: it proves the download whole, not who
  built it;
- a containerd runtime ``runsc`` of ``runtime_type = "io.containerd.runsc.v1"``
  (https://gvisor.dev/docs/user_guide/containerd/configuration/), under containerd 2's CRI
  runtime plugin ``io.containerd.cri.v1.runtime`` (containerd docs/cri/config.md, config
  version 3). The kubelet asks for it by the RuntimeClass ``handler: runsc``.

runsc's default platform, systrap, needs no KVM (https://gvisor.dev/docs/architecture_guide/
platforms/), so ordinary virtual machines run it.
"""

from __future__ import annotations

import shlex

HANDLER = "runsc"
RUNTIME_CLASS = "gvisor"
INSTALL_DIR = "/usr/local/bin"
RELEASES = "https://storage.googleapis.com/gvisor/releases/release"

# The runtime entry containerd 2 reads (config version 3).
CONTAINERD_RUNTIME = f"""[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{HANDLER}]
  runtime_type = "io.containerd.runsc.v1"
"""


def install_script(release: str) -> str:
    """Shell (bash) that installs the pinned gVisor ``release`` into /usr/local/bin, and
    stops before installing anything when the checksum does not match."""
    url = f"{RELEASES}/{release}/$(uname -m)/gvisor.tar.bz2"
    return "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        'work=$(mktemp -d)',
        """trap 'rm -rf "$work"' EXIT""",
        'cd "$work"',
        f'curl -sfL --proto =https --retry 5 -o gvisor.tar.bz2 "{url}"',
        f'curl -sfL --proto =https --retry 5 -o gvisor.tar.bz2.sha512 "{url}.sha512"',
        # The .sha512 file names the bundle as its publisher saved it.
        "echo \"$(cut -d' ' -f1 gvisor.tar.bz2.sha512)  gvisor.tar.bz2\" | sha512sum -c -",
        "tar -xjf gvisor.tar.bz2",
        f"install -m 0755 runsc containerd-shim-runsc-v1 {INSTALL_DIR}/",
        f"mkdir -p {INSTALL_DIR}/gvisor-bin",
        f"install -m 0755 gvisor-bin/* {INSTALL_DIR}/gvisor-bin/",
        f"{INSTALL_DIR}/runsc --version | grep -qF {shlex.quote(release)}",
        "",
    ])


def eks_user_data(release: str) -> str:
    """MIME multi-part user data for an EKS managed node group on AL2023.

    EKS merges a launch template's user data with its own when the group uses an EKS AMI
    ("MIME multi-part", https://docs.aws.amazon.com/eks/latest/userguide/
    launch-templates.html). The ``application/node.eks.aws`` part is a nodeadm
    ``NodeConfig`` whose ``spec.containerd.config`` is TOML merged into the containerd
    config nodeadm writes before containerd starts (awslabs/amazon-eks-ami
    nodeadm/doc/api.md ``ContainerdOptions.config``; nodeadm/doc/examples.md "Modifying
    containerd config"); the shell part runs after it, from cloud-init, and puts the
    binaries the runtime names on the PATH. containerd looks the shim up when the first
    sandboxed pod starts, not at start-up.
    """
    config = "".join(f"      {line}\n" for line in CONTAINERD_RUNTIME.splitlines())
    return (
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="//"\n\n'
        "--//\nContent-Type: application/node.eks.aws\n\n"
        "---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"
        f"  containerd:\n    config: |\n{config}\n"
        '--//\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n'
        f"{install_script(release)}\n--//--\n")


# k3s renders containerd's config from this template when it exists; ``{{ template "base"
# . }}`` keeps everything k3s would write itself (k3s docs "Advanced Options", "Configuring
# containerd"; containerd 2 reads config-v3.toml.tmpl: k3s-io/k3s pkg/agent/containerd/
# config.go templateGenerations).
K3S_TEMPLATE = "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl"
K3S_MARKER = "# aicp: gVisor runtime"


def k3s_script(sudo: str, release: str) -> str:
    """Shell for a k3s server: gVisor installed, the runsc runtime in k3s's containerd
    template, k3s restarted to render it. It refuses to overwrite a template it did not
    write (another tool's runtimes would be lost), and does nothing when both are in place.
    """
    template = f'{{{{ template "base" . }}}}\n\n{K3S_MARKER}\n{CONTAINERD_RUNTIME}'
    quoted = shlex.quote(template)
    return "\n".join([
        "set -eu",
        f"tmpl={K3S_TEMPLATE}",
        f'if {sudo}test -f "$tmpl" && ! {sudo}grep -qF {shlex.quote(K3S_MARKER)} "$tmpl"; '
        "then",
        '  echo "$tmpl exists and was not written by aicp: add the runsc runtime to it '
        'yourself (see https://gvisor.dev/docs/user_guide/containerd/configuration/)" >&2',
        "  exit 1",
        "fi",
        f"if {INSTALL_DIR}/runsc --version 2>/dev/null | grep -qF {shlex.quote(release)} && "
        f"printf '%s' {quoted} | {sudo}cmp -s - \"$tmpl\"; then",
        f"  echo {shlex.quote(f'gVisor {release} already configured')}; exit 0",
        "fi",
        f"{sudo}bash -c {shlex.quote(install_script(release))}",
        f'{sudo}mkdir -p "$(dirname "$tmpl")"',
        f"printf '%s' {quoted} | {sudo}tee \"$tmpl\" >/dev/null",
        f"{sudo}systemctl restart k3s",
        "",
    ])


# --- existing on-prem clusters (issue #25) -------------------------------------------------
# On a cluster aicp did not build, gVisor reaches the nodes you label through a DaemonSet:
# its privileged init container enters the host's namespaces (``nsenter -t 1``, hostPID)
# and runs ``existing_script`` there, then a pause container keeps the pod (and so the
# DaemonSet's readiness) as the sign the node is done. The script follows gVisor's
# "containerd quick start" (https://gvisor.dev/docs/user_guide/containerd/quick_start/):
# install runsc and its shim, add the ``runsc`` runtime to containerd's config, restart
# containerd. containerd reads extra files named in the top-level ``imports`` of
# /etc/containerd/config.toml and merges their plugin tables (containerd docs/man/
# containerd-config.toml.5.md, "imports"), so the runtime goes into a drop-in of aicp's own
# and the only edit to your file is adding that drop-in to ``imports``. The plugin path
# follows the file's ``version``: 3 (containerd 2, as CONTAINERD_RUNTIME above) or 2
# (containerd 1.7: ``plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc``,
# gvisor.dev containerd configuration guide). Restarting containerd leaves running
# containers running: each lives under its own shim (containerd docs/ops.md, "Shim").
EXISTING_CONFIG = "/etc/containerd/config.toml"
EXISTING_DROP_IN = "/etc/containerd/conf.d/aicp-gvisor.toml"
# The node label the DaemonSet and the RuntimeClass select (you name the nodes).
EXISTING_LABEL = "aicp.dev/sandbox"
_PLUGIN_BY_VERSION = {"3": "'io.containerd.cri.v1.runtime'", "2": '"io.containerd.grpc.v1.cri"'}


def existing_script(release: str) -> str:
    """Bash for a node of an existing cluster (run in the host's namespaces): gVisor
    ``release`` installed, the ``runsc`` runtime in an aicp drop-in imported by containerd,
    containerd restarted; nothing is touched when both are already in place. It stops with
    one line naming the file when containerd's config is missing or of another version."""
    cases = "\n".join(
        f"  {v}) plugin={shlex.quote(p)} ;;" for v, p in _PLUGIN_BY_VERSION.items())
    runtime = ('version = %s\\n[plugins.%s.containerd.runtimes.' + HANDLER + ']\\n'
               '  runtime_type = \\"io.containerd.runsc.v1\\"\\n')
    return "\n".join([
        "set -euo pipefail",
        f"conf={EXISTING_CONFIG}",
        f"drop={EXISTING_DROP_IN}",
        'if [ ! -f "$conf" ]; then echo "aicp gVisor installer: no $conf on this node; '
        'containerd must run with that config file" >&2; exit 1; fi',
        "v=$(sed -n 's/^version *= *\\([0-9][0-9]*\\).*/\\1/p' \"$conf\" | head -n 1)",
        'case "$v" in',
        cases,
        '  *) echo "aicp gVisor installer: $conf has version \'$v\'; only containerd config '
        'versions 2 and 3 are supported" >&2; exit 1 ;;',
        "esac",
        f'want=$(printf "{runtime}" "$v" "$plugin")',
        f"installed=$({INSTALL_DIR}/runsc --version 2>/dev/null | "
        f"grep -cF {shlex.quote(release)} || true)",
        'if [ "$installed" != 0 ] && [ "$(cat "$drop" 2>/dev/null)" = "$want" ] && '
        'grep -qF "$drop" "$conf"; then',
        f"  echo {shlex.quote(f'gVisor {release} already configured')}; exit 0",
        "fi",
        f'if [ "$installed" = 0 ]; then bash -c {shlex.quote(install_script(release))}; fi',
        'mkdir -p "$(dirname "$drop")"',
        'printf \'%s\\n\' "$want" > "$drop"',
        'if ! grep -qF "$drop" "$conf"; then',
        "  if grep -q '^imports *= *\\[ *\\]' \"$conf\"; then",
        "    sed -i \"s|^imports *= *\\[ *\\]|imports = [\\\"$drop\\\"]|\" \"$conf\"",
        "  elif grep -q '^imports *= *\\[' \"$conf\"; then",
        "    sed -i \"s|^imports *= *\\[|imports = [\\\"$drop\\\", |\" \"$conf\"",
        "  else",
        "    sed -i \"0,/^version *=.*/s||&\\nimports = [\\\"$drop\\\"]|\" \"$conf\"",
        "  fi",
        "fi",
        "systemctl restart containerd",
        f"echo {shlex.quote(f'gVisor {release} configured')}",
        "",
    ])
