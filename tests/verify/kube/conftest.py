"""A ``Kube`` connected to the emulator; ``kube.retries`` keeps every retry message."""

from __future__ import annotations

import pytest

from aicp.verify.kube import connect


@pytest.fixture
def kube(kubeconfig):
    retries: list[str] = []
    k = connect(kubeconfig, on_retry=retries.append)
    k.retries = retries
    yield k
    k.close()
