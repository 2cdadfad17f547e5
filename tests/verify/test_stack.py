"""``aicp verify --stack``: the stack's GPU pools and addons checked against the cluster.

A fake ``pulumi`` on PATH prints what ``stacks/program.py`` exports (pools exported by the
contract's ``GpuPool.export``), so the shape is the real one.
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from aicp.components.contract import GpuPoolRequest, resolve_pool
from aicp.verify import session, stack
from aicp.verify.kube import connect
from tests.verify.conftest import require_shared, submission

ALLOCATOR = "aicp.dev/gpu-allocator"


def outputs(kubeconfig, *, pools, addons, not_applicable=None) -> dict:
    return {"target": "onprem", "clusterName": "lab", "kubernetesVersion": "1.35",
            "checklistVersion": "1.35", "kubeconfig": kubeconfig.read_text(),
            "gpuPools": [p.export() for p in pools], "autoscaler": "none",
            "addons": addons, "notApplicable": not_applicable or {}}


def h100(allocator="dra", min_nodes=1, name="h100", accelerator="h100"):
    return resolve_pool("onprem", GpuPoolRequest(name, accelerator, max_nodes=4,
                                                 min_nodes=min_nodes, allocator=allocator,
                                                 gpus_per_node=8,
                                                 instance_type="dgx-h100"))


@pytest.fixture
def world(tmp_path, kubeapi_factory, monkeypatch):
    kube = kubeapi_factory("reference-platform", gpu_nodes=2)
    for node in ("gpu-h100-0", "gpu-h100-1"):  # what the onprem target labels its nodes with
        kube.mutate("nodes", node, lambda n: n["metadata"]["labels"].update(h100().labels))
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f'#!/bin/sh\n[ "$6" = lab ] && cat {tmp_path}/outputs.json && exit 0\n'
                      'echo "error: no stack named \'$6\' found" >&2; exit 255\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def write(**kwargs):
        (tmp_path / "outputs.json").write_text(json.dumps(outputs(kubeconfig, **kwargs)))
    return kube, kubeconfig, tmp_path, write


def checked(kubeconfig, stack_name="lab"):
    read = stack.read(stack_name)
    kube = connect(kubeconfig)
    return read, stack.check(read.expectations, kube)


def test_the_real_output_shape_parses_with_not_applicable(world):
    _, kubeconfig, _, write = world
    write(pools=[h100()], addons={"kuberay": "1.7.0"},
          not_applicable={"cluster_autoscaling": "the onprem target has no node autoscaler"})
    read = stack.read("lab")
    assert read.checklist_version == "1.35"
    assert read.expectations["gpuPools"][0]["labels"][ALLOCATOR] == "dra"
    assert read.not_applicable == {
        "cluster_autoscaling": "the onprem target has no node autoscaler"}


def test_visible_pools_and_served_addons_raise_nothing(world):
    _, kubeconfig, _, write = world
    write(pools=[h100()], addons={"kuberay": "1.7.0", "kueue": "0.19.2",
                                   "gateway-api": "v1.6.1", "cluster-autoscaler": "9.46.0"})
    _, found = checked(kubeconfig)
    assert found.problems == []
    assert found.notes == ["addon cluster-autoscaler 9.46.0: serves no API of its own, "
                           "not checked"]


def test_a_pool_whose_nodes_do_not_advertise_its_allocator_is_a_problem(world):
    kube, kubeconfig, _, write = world
    for s in kube.list("resourceslices.resource.k8s.io"):
        kube.delete("resourceslices.resource.k8s.io", s["metadata"]["name"])
    write(pools=[h100()], addons={})
    _, found = checked(kubeconfig)
    assert len(found.problems) == 1
    assert found.problems[0].startswith("GPU pool h100 (h100, dra allocator, minNodes 1): "
                                        "no node with labels")
    assert "publishes DRA ResourceSlices (2 nodes carry the labels)" in found.problems[0]


def test_a_missing_accelerator_is_a_problem_but_a_pool_at_zero_is_a_note(world):
    _, kubeconfig, _, write = world
    write(pools=[h100(), h100(name="h200", accelerator="h200", min_nodes=0),
                 h100(name="a100", accelerator="a100", min_nodes=1,
                      allocator="device-plugin")], addons={})
    _, found = checked(kubeconfig)
    assert found.notes == ["GPU pool h200 (h200, dra allocator, minNodes 0): no node now; "
                           "the pool scales from zero"]
    assert [p.split(":")[0] for p in found.problems] == [
        "GPU pool a100 (a100, device-plugin allocator, minNodes 1)"]
    assert "advertises nvidia.com/gpu (0 nodes carry the labels)" in found.problems[0]


def test_an_addon_whose_api_is_not_served_is_a_problem(world):
    _, kubeconfig, _, write = world
    write(pools=[], addons={"jobset": "0.11.1", "metrics-adapter": "5.3.0", "kuberay": "1.7.0"})
    _, found = checked(kubeconfig)
    assert found.problems == [
        "addon jobset 0.11.1: jobset.x-k8s.io/v1alpha2 not served",
        "addon metrics-adapter 5.3.0: custom.metrics.k8s.io/v1beta1 not served"]


def test_verify_stack_prints_the_checks_and_reports_not_applicable_as_na(world):
    _, _, tmp_path, write = world
    write(pools=[h100(), h100(name="h200", accelerator="h200", min_nodes=0)],
          addons={"jobset": "0.11.1", "kuberay": "1.7.0"},
          not_applicable={"cluster_autoscaling": "the onprem target has no node autoscaler"})
    out = tmp_path / "results"
    log = tmp_path / "verify.log"
    code = session.run(session.Options(
        stack="lab", only=["cluster_autoscaling"], output=["json", "checklist"],
        output_dir=out, checklist_template=require_shared("conformance",
                                                          "AIConformance-1.35.yaml")),
        Console(file=open(log, "w"), width=300))
    assert code == 3  # --only: the other MUSTs did not run, so no conformance result
    text = log.read_text()
    assert "stack lab: problem: addon jobset 0.11.1: jobset.x-k8s.io/v1alpha2 not served" \
        in text
    assert "stack lab: note: GPU pool h200 (h200, dra allocator, minNodes 0)" in text
    doc = json.loads((submission(out) / "results" / "aicp-results.json").read_text())
    autoscaling = next(r for r in doc["requirements"] if r["id"] == "cluster_autoscaling")
    assert autoscaling["verdict"] == "SKIP"
    assert autoscaling["reason"] == ("not applicable (stack lab): the onprem target has no "
                                     "node autoscaler")
    assert doc["cluster"]["stack"].startswith("lab: 1 problems; problem: addon jobset")
    product = (submission(out) / "PRODUCT.yaml").read_text()
    assert "the onprem target has no node autoscaler" in product


@pytest.mark.parametrize("key, value, line", [
    ("addons", ["kueue"], "stack lab: the 'addons' output is not a mapping of addon names to "
                          "versions, as aicp's stack exports it (got a list); fix the output "
                          "or pass --kubeconfig"),
    ("gpuPools", {"h100": 1}, "stack lab: the 'gpuPools' output is not a list of GPU pools "
                              "(mappings), as aicp's stack exports it (got a mapping); fix the "
                              "output or pass --kubeconfig"),
    ("autoscaler", 3, "stack lab: the 'autoscaler' output is not a string, as aicp's stack "
                      "exports it (got a number); fix the output or pass --kubeconfig"),
    # Once blamed on the cluster ("checklist ... not supported by the cluster").
    ("checklistVersion", "banana", "stack lab: the 'checklistVersion' output 'banana' is not a "
                                   "checklist version (like \"1.35\"); fix the stack's output "
                                   "or pass --checklist"),
])
def test_outputs_of_the_wrong_shape_are_one_line_naming_the_output(world, key, value, line):
    # `addons` as a list once gave a 50-line traceback (#27, "Also").
    kube, kubeconfig, tmp_path, write = world
    write(pools=[h100()], addons={"kuberay": "1.7.0"})
    doc = json.loads((tmp_path / "outputs.json").read_text())
    doc[key] = value
    (tmp_path / "outputs.json").write_text(json.dumps(doc))
    with pytest.raises(stack.ConfigError) as err:
        stack.read("lab")
    assert str(err.value) == line
    with open(tmp_path / "out", "w") as out:
        code = session.run(session.Options(stack="lab"), Console(file=out))
    assert code == 2
