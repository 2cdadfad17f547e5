"""The gVisor install script a sandbox node runs (components/gvisor.py), run here under bash
with ``curl``, ``install`` and ``mkdir`` replaced by stand-ins: the release bundle is a real
tar.bz2 made in the test, so ``sha512sum -c`` and ``tar`` do their real work."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from aicp.components import gvisor

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha512sum")
                                is None, reason="needs bash and coreutils' sha512sum")


def bundle(path: Path) -> bytes:
    """gvisor.tar.bz2 as a release holds it: runsc, the shim, gvisor-bin/ (the same bytes
    on every call: tar entries carry mtime 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for name in ("runsc", "containerd-shim-runsc-v1", "gvisor-bin/gvisor_sentry"):
            data = b"#!/bin/sh\n"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def run(tmp_path: Path, published_sha512: str) -> tuple[int, list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    bundle(tmp_path / "release.tar.bz2")
    (tmp_path / "release.sha512").write_text(f"{published_sha512}  gvisor.tar.bz2\n")
    log = tmp_path / "installed.log"
    # curl -o FILE URL: the bundle or its checksum, by the URL's ending.
    (stubs / "curl").write_text(
        '#!/bin/bash\nwhile [ "$1" != -o ]; do shift; done; out=$2; url=${@: -1}\n'
        f'case "$url" in *.sha512) cp {tmp_path}/release.sha512 "$out";; '
        f'*) cp {tmp_path}/release.tar.bz2 "$out";; esac\n')
    (stubs / "install").write_text(f'#!/bin/sh\necho "install $*" >> {log}\n')
    (stubs / "mkdir").write_text(f'#!/bin/sh\necho "mkdir $*" >> {log}\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    proc = subprocess.run(["bash", "-c", gvisor.install_script("20260928.0")],
                          env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def test_a_bundle_whose_checksum_does_not_match_installs_nothing(tmp_path):
    code, installed = run(tmp_path, "0" * 128)
    assert code != 0
    assert installed == []


def test_a_matching_bundle_installs_runsc_the_shim_and_its_helpers(tmp_path):
    data = bundle(tmp_path / "probe.tar.bz2")
    code, installed = run(tmp_path, hashlib.sha512(data).hexdigest())
    # The last step asks the installed runsc its version (absent here, so it stops there).
    assert code != 0
    assert installed[0] == "install -m 0755 runsc containerd-shim-runsc-v1 /usr/local/bin/"
    assert "mkdir -p /usr/local/bin/gvisor-bin" in installed
    assert installed[-1] == "install -m 0755 gvisor-bin/gvisor_sentry /usr/local/bin/gvisor-bin/"
