"""Pytest fixtures for the emulator; load with ``pytest_plugins = ["tests.kubeapi.fixtures"]``.

``kubeapi`` is a started emulator built from a scenario (``empty`` unless the test is
marked ``@pytest.mark.kubeapi("reference-platform", gpu_nodes=3)``); ``kube_client`` an
``ApiClient`` for it; ``kubeconfig`` a kubeconfig file pointing at it; ``kubeapi_factory``
starts more clusters, each stopped at teardown. ``RUNNING`` lists the clusters the current
test started, for helpers that settle them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes.client
import pytest

from tests.shared import require_shared

from . import scenarios
from .emulator import KubeAPI

RUNNING: list[KubeAPI] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kubeapi(scenario, **options): the scenario the kubeapi fixture builds")


@pytest.fixture
def kubeapi_factory() -> Iterator[Callable[..., KubeAPI]]:
    started: list[KubeAPI] = []

    def start(scenario: str = "empty", **options) -> KubeAPI:
        if scenario.replace("_", "-") != "empty":
            # The platform scenarios install the addons' real CRDs from ../shared.
            require_shared("crds")
        kube = scenarios.build(scenario, **options).start()
        started.append(kube)
        RUNNING.append(kube)
        return kube

    yield start
    for kube in reversed(started):
        RUNNING.remove(kube)
        kube.stop()


@pytest.fixture
def kubeapi(request: pytest.FixtureRequest, kubeapi_factory) -> KubeAPI:
    marker = request.node.get_closest_marker("kubeapi")
    if marker is None:
        return kubeapi_factory("empty")
    return kubeapi_factory(*marker.args, **marker.kwargs)


@pytest.fixture
def kube_client(kubeapi: KubeAPI) -> Iterator[kubernetes.client.ApiClient]:
    with kubeapi.client() as client:
        yield client


@pytest.fixture
def kubeconfig(kubeapi: KubeAPI, tmp_path: Path) -> Path:
    return kubeapi.write_kubeconfig(tmp_path / "kubeconfig.yaml")
