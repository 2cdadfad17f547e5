"""A probe's needs are read from the cluster (verify/kube/needs.py)."""

from __future__ import annotations

from aicp.verify.kube import connect


def test_needs_are_read_from_the_cluster(kubeapi_factory, tmp_path):
    platform = kubeapi_factory("reference-platform")
    k = connect(platform.write_kubeconfig(tmp_path / "kc.yaml"))
    assert k.unmet("gpu_nodes") is None
    assert k.unmet("api:resource.k8s.io/v1") is None
    assert k.unmet("addon:kueue") is None
    assert "volcano not detected" in k.unmet("addon:volcano")
    empty = connect(kubeapi_factory("empty").write_kubeconfig(tmp_path / "e.yaml"))
    assert "no node advertises an accelerator" in empty.unmet("gpu_nodes")


def test_a_dra_only_gpu_pool_counts_as_gpu_nodes(kubeapi_factory, tmp_path):
    platform = kubeapi_factory("reference-platform", gpu_nodes=1)

    def dra_only(node: dict) -> None:
        # The aicp DRA pool: device plugin off, so no extended resource; no GFD label yet.
        node["metadata"]["labels"].pop("nvidia.com/gpu.present", None)
        node["status"]["allocatable"].pop("nvidia.com/gpu", None)
        node["status"]["capacity"].pop("nvidia.com/gpu", None)

    platform.mutate("nodes", "gpu-h100-0", dra_only)
    platform.mutate("nodes", "gpu-h100-0", dra_only, status=True)
    node = platform.find("nodes", "gpu-h100-0")
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]
    assert "nvidia.com/gpu.present" not in node["metadata"]["labels"]
    k = connect(platform.write_kubeconfig(tmp_path / "kc.yaml"))
    assert k.unmet("gpu_nodes") is None
