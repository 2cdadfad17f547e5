"""virtualized_accelerator on-prem (issue #25): served where ``aicp:onprem.virtualization``
declares KubeVirt on some GPU pools, else N/A with the reason.

Each test plans the on-prem example under Pulumi's mocks and reads what Pulumi would send:
the node patches (the GPU Operator's workload label), the GPU Operator's values (checked
against the pinned chart's values.yaml in ``../shared``), and ``aicp plan``'s SHOULD list.
"""

from __future__ import annotations

import pytest

from aicp.stacks.config import ConfigError
from tests.charts import unknown_value_paths, upstream_values
from tests.stacks.test_k137 import config, plan

NODE_PATCH = "kubernetes:core/v1:NodePatch"
RELEASE = "kubernetes:helm.sh/v3:Release"
PASSTHROUGH = {"mode": "existing", "gpuNodes": {"a100": ["gpu-0", "gpu-1"]},
               "virtualization": {"layer": "kubevirt", "pools": ["a100"]}}
POOLS = [{"name": "a100", "accelerator": "a100", "gpusPerNode": 8, "minNodes": 2,
          "maxNodes": 2, "allocator": "device-plugin"}]


def _kubeconfig(tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    return str(path)


def _plan(tmp_path, onprem, pools=POOLS):
    return plan("onprem", tmp_path, onprem={**onprem, "kubeconfig": _kubeconfig(tmp_path)},
                gpuPools=pools)


def _operator_values(run) -> dict:
    release = next(r for r in run.resources if r.type == RELEASE
                   and r.inputs["chart"] == "gpu-operator")
    return release.inputs["values"]


@pytest.fixture(scope="module")
def passthrough(tmp_path_factory):
    return _plan(tmp_path_factory.mktemp("vm"), PASSTHROUGH)


def test_kubevirt_pools_serve_virtualized_accelerator(passthrough):
    run, doc = passthrough
    assert doc["shoulds"]["virtualized_accelerator"] == "served"
    assert "virtualized_accelerator" not in doc["notApplicable"]
    assert "virtualized_accelerator" not in run.outputs["notApplicable"]


def test_the_gpu_operator_deploys_its_sandbox_operands(passthrough):
    values = _operator_values(passthrough[0])
    assert values["sandboxWorkloads"] == {"enabled": True, "defaultWorkload": "container",
                                          "mode": "kubevirt"}
    assert "vgpuManager" not in values
    assert unknown_value_paths(values, upstream_values("gpu-operator-v26.7.0")) == []


def test_the_pools_nodes_carry_the_workload_label(passthrough):
    patches = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
               for r in passthrough[0].resources if r.type == NODE_PATCH}
    assert set(patches) == {"gpu-0", "gpu-1"}
    assert all(labels["nvidia.com/gpu.workload.config"] == "vm-passthrough"
               for labels in patches.values())


def test_vgpu_takes_your_vgpu_manager_image(tmp_path):
    run, doc = _plan(tmp_path, {**PASSTHROUGH, "virtualization": {
        "layer": "kubevirt", "pools": ["a100"], "workload": "vm-vgpu",
        "vgpuManagerImage": "registry.lab.example:5000/nvidia/vgpu-manager:580.95.02"}})
    values = _operator_values(run)
    assert values["vgpuManager"] == {"enabled": True,
                                     "repository": "registry.lab.example:5000/nvidia",
                                     "image": "vgpu-manager", "version": "580.95.02"}
    assert unknown_value_paths(values, upstream_values("gpu-operator-v26.7.0")) == []
    assert doc["shoulds"]["virtualized_accelerator"] == "served"


def test_without_a_layer_it_is_na_with_the_reason(tmp_path):
    run, doc = plan("onprem", tmp_path)
    status = doc["shoulds"]["virtualized_accelerator"]
    assert status.startswith("N/A: no virtualization layer is configured")
    assert "aicp:onprem.virtualization" in status
    assert "sandboxWorkloads" not in _operator_values(run)


@pytest.mark.parametrize(("virtualization", "pools", "key", "says"), [
    ({"layer": "kubevirt", "pools": ["h100"]}, POOLS,
     "aicp:onprem.virtualization.pools[0]", "'h100' is not a GPU pool"),
    ({"layer": "kubevirt", "pools": ["a100"]}, [{**POOLS[0], "allocator": "dra"}],
     "aicp:onprem.virtualization.pools[0]", "allocator: device-plugin"),
    ({"layer": "kubevirt", "pools": ["a100"], "workload": "vm-vgpu"}, POOLS,
     "aicp:onprem.virtualization.vgpuManagerImage", "NVIDIA publishes none"),
    ({"layer": "kubevirt", "pools": ["a100"], "vgpuManagerImage": "r.example/v/m:1"}, POOLS,
     "aicp:onprem.virtualization.vgpuManagerImage", "only read with workload vm-vgpu"),
    ({"layer": "kubevirt", "pools": []}, POOLS,
     "aicp:onprem.virtualization.pools", "name the GPU pools"),
])
def test_a_wrong_layer_is_one_line_naming_the_key(virtualization, pools, key, says,
                                                  tmp_path):
    with pytest.raises(ConfigError) as err:
        config("onprem", gpuPools=pools,
               onprem={**PASSTHROUGH, "virtualization": virtualization,
                       "kubeconfig": _kubeconfig(tmp_path)})
    text = str(err.value)
    assert text.startswith(f"{key}: ") and says in text and "\n" not in text
