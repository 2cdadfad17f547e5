"""Every target hands the addon layer the same contract, so addons need no per-cloud code."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from aicp.cli import offline
from aicp.components.contract import (
    GPU_TAINT,
    LABEL_ACCELERATOR,
    LABEL_ALLOCATOR,
    LABEL_GPU_PRESENT,
    LABEL_POOL,
    ClusterOutputs,
    GpuDriver,
    GpuPool,
)
from aicp.stacks.config import parse
from aicp.stacks.targets import target

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("aws", "gcp", "azure", "onprem")


def example(target: str, tmp: Path) -> dict:
    doc = yaml.safe_load((REPO / f"Pulumi.{target}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v for k, v in doc.items() if k.startswith("aicp:")}
    if target == "onprem":
        (tmp / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
        raw["onprem"] = {**raw["onprem"], "kubeconfig": str(tmp / "kubeconfig")}
    return raw


@pytest.fixture(scope="module", params=TARGETS)
def handed_over(request, tmp_path_factory):
    cfg = parse(example(request.param, tmp_path_factory.mktemp(request.param)))
    seen: dict = {}

    def program():
        outputs = target(cfg.target).cluster(cfg)
        seen["outputs"] = outputs
        secret = outputs.kubeconfig.is_secret()
        return pulumi.Output.from_input(secret).apply(lambda s: seen.update(secret=s))

    plan = offline.run(program, {})
    return request.param, cfg, seen["outputs"], seen["secret"], plan


def test_every_target_returns_the_cluster_contract(handed_over):
    target, cfg, out, kubeconfig_secret, _ = handed_over
    assert isinstance(out, ClusterOutputs)
    assert out.target == target
    assert out.kubernetes_version == cfg.kubernetes_version
    assert isinstance(out.provider, k8s.Provider)
    assert kubeconfig_secret is True
    assert isinstance(out.gpu_driver, GpuDriver) and out.gpu_driver.root.startswith("/")
    assert out.autoscaler in ("cluster-autoscaler", "gke", "aks", "none")
    assert (out.autoscaler == "cluster-autoscaler") == bool(out.autoscaler_values)


def test_every_target_describes_its_gpu_pools_the_same_way(handed_over):
    _, cfg, out, _, _ = handed_over
    assert [p.name for p in out.gpu_pools] == [p.name for p in cfg.gpu_pools]
    for pool, asked in zip(out.gpu_pools, cfg.gpu_pools, strict=True):
        assert isinstance(pool, GpuPool)
        assert pool.gpus_per_node >= 1
        assert (pool.min_nodes, pool.max_nodes) == (asked.min_nodes, asked.max_nodes)
        assert pool.labels[LABEL_POOL] == asked.name
        assert pool.labels[LABEL_ACCELERATOR] == asked.accelerator
        assert pool.labels[LABEL_ALLOCATOR] == asked.allocator
        assert pool.labels[LABEL_GPU_PRESENT] == "true"
        assert GPU_TAINT in pool.taints
        assert set(pool.export()) >= {"name", "accelerator", "gpusPerNode", "minNodes",
                                      "maxNodes", "labels", "taints"}


def test_provider_kubeconfig_is_secret_on_every_target(handed_over):
    _, _, _, _, plan = handed_over
    providers = plan.of_type("pulumi:providers:kubernetes")
    assert providers and all("kubeconfig" in p.secret_paths for p in providers)
