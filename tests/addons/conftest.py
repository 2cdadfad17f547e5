"""A world for addon tests: a cluster contract as a target would hand it over, under mocks."""

from __future__ import annotations

import pulumi
import pytest

from aicp.components.contract import ClusterOutputs, GpuDriver, GpuPoolRequest, resolve_pool

POOLS = (
    GpuPoolRequest(name="h100", accelerator="h100", min_nodes=0, max_nodes=2,
                   allocator="device-plugin"),
    GpuPoolRequest(name="l4", accelerator="l4", min_nodes=1, max_nodes=3, allocator="dra"),
)


def make_cluster(target: str = "aws", pools=POOLS, *, minor: str = "1.35",
                 autoscaler: str = "cluster-autoscaler", driver_owner: str = "host",
                 driver_root: str = "/", features=None) -> ClusterOutputs:
    """Build a ClusterOutputs inside a running mocked program (call it from the program)."""
    import pulumi_kubernetes as k8s

    kubeconfig = pulumi.Output.secret("apiVersion: v1\nkind: Config\n")
    provider = k8s.Provider("test-cluster", kubeconfig=kubeconfig)
    autoscaler_values = {"cloudProvider": "aws", "awsRegion": "us-west-2",
                         "autoDiscovery": {"clusterName": "aicp"}} \
        if autoscaler == "cluster-autoscaler" else {}
    return ClusterOutputs(
        target=target, name="aicp", kubernetes_version=minor, kubeconfig=kubeconfig,
        provider=provider, gpu_pools=tuple(resolve_pool(target, p) for p in pools),
        gpu_driver=GpuDriver(owner=driver_owner, root=driver_root),
        autoscaler=autoscaler, autoscaler_values=autoscaler_values,
        features=features or {})


@pytest.fixture
def cluster_factory():
    return make_cluster
