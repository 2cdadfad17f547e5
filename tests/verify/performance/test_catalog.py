"""The datasheet and fabric tables: every figure carries its source, names map to products."""

from __future__ import annotations

import pytest

from aicp.verify.performance import catalog


@pytest.mark.parametrize("key", sorted(catalog.GPUS))
def test_every_gpu_figure_names_its_source(key):
    gpu = catalog.GPUS[key]
    figures = [f"{d}_tflops" for d in gpu.tflops] + ["memory_gbps", "link_gbps"]
    assert sorted(gpu.sources) == sorted(figures)
    assert all(s.startswith("https://") or "https://" in s for s in gpu.sources.values())
    assert gpu.memory_gbps > 0 and gpu.link_gbps > 0 and all(v > 0 for v in gpu.tflops.values())


@pytest.mark.parametrize("machine", sorted(catalog.FABRICS))
def test_every_fabric_figure_names_its_source_and_never_accepts_sockets(machine):
    fabric = catalog.FABRICS[machine]
    assert "https://" in fabric.source and fabric.gbps > 0
    assert catalog.SOCKET not in fabric.transports


@pytest.mark.parametrize(("label", "key"), [
    # GPU Feature Discovery's nvidia.com/gpu.product values and nvidia-smi names
    ("NVIDIA-H100-80GB-HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA-H100-NVL", "h100-nvl"), ("NVIDIA-H200", "h200"), ("NVIDIA-B200", "b200"),
    ("NVIDIA-A100-SXM4-40GB", "a100-sxm-40gb"), ("NVIDIA-A100-SXM4-80GB", "a100-sxm-80gb"),
    ("NVIDIA-A100-PCIE-80GB", "a100-pcie-80gb"), ("NVIDIA-L40S", "l40s"), ("NVIDIA-L4", "l4"),
    ("NVIDIA-A10G", "a10g"), ("NVIDIA-A10", "a10"), ("Tesla-T4", "t4"),
])
def test_product_names_map_to_catalog_entries(label, key):
    assert catalog.product_key(label) == key


def test_a10g_has_no_invented_figure():
    assert "a10g" not in catalog.GPUS and "a10g" in catalog.UNPUBLISHED
    assert catalog.product_key("NVIDIA-RTX-PRO-6000") is None


def test_default_floors_are_fractions():
    assert all(0 < v <= 1 for v in catalog.DEFAULT_FRACTIONS.values())
