"""The accelerator vendor table (verify/probes/_vendors.py): every row cites its upstream,
and a new row is all a new accelerator needs for the probes to judge it."""

from __future__ import annotations

import dataclasses

import pytest

from aicp.verify.probes import _vendors
from aicp.verify.probes.accelerator_metrics import AcceleratorMetrics
from aicp.verify.probes.secure_accelerator_access import SecureAcceleratorAccess
from aicp.verify.result import Verdict
from tests.kubeapi import worlds_accelerators as w
from tests.kubeapi.controllers import kubelet
from tests.verify.test_accelerator_worlds import started, verdicts

# A made-up NPU with its own device plugin resource and exporter: nothing in the probes
# knows it, only the row added below.
NPU = _vendors.Vendor(
    "Example", "NPU", resources=("example.com/npu",), device_paths=("/dev/npu*",),
    exporter=_vendors.Exporter("Example NPU exporter", images=("npu-exporter",),
                               pod_labels=(("app", "npu-exporter"),), port=9100,
                               utilisation=("npu_core_utilization",),
                               memory=("npu_hbm_used_bytes",), device_labels=("device_id",),
                               source="example"),
    sources=("example",))
SERIES = "".join(f'{m}{{device_id="{i}"}} 0\n' for m in ("npu_core_utilization",
                                                        "npu_hbm_used_bytes")
                 for i in range(4))


def test_every_row_names_its_upstream():
    for vendor in _vendors.VENDORS:
        assert vendor.sources, vendor.name
        assert vendor.exporter is None or vendor.exporter.source, vendor.name
        assert vendor.resources or vendor.dra_drivers, vendor.name
    names = {v.name for v in _vendors.VENDORS}
    assert {"NVIDIA", "AMD", "Intel", "Intel Gaudi", "Google", "AWS"} <= names


def _npu_world(tmp_path, exporter_series: str):
    kube = w.build([w.GpuNode("npu-0", vendor="example", exporter=None,
                              plugin={"example.com/npu": 4})], classes=False)
    started(kube, tmp_path)
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "npu-exporter-npu-0", "namespace": "gpu-operator",
        "labels": {"app": "npu-exporter"}},
        "spec": {"nodeName": "npu-0", "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "exporter", "image": "example/npu-exporter:1.0",
                                 "ports": [{"name": "metrics", "containerPort": 9100}]}]}})
    kube.proxy("pod", "npu-exporter-npu-0",
               lambda *_: (200, {"Content-Type": "text/plain"}, exporter_series),
               namespace="gpu-operator", port=9100)
    kube.settle()
    return kube


def _metrics_verdict(kube):
    import tests.verify.test_accelerator_worlds as table
    probes = table.PROBES
    table.PROBES = (AcceleratorMetrics,)
    try:
        return verdicts(kube)[0]
    finally:
        table.PROBES = probes


@pytest.mark.parametrize("exact", [True, False], ids=["metric-names", "wg-patterns"])
def test_a_new_row_is_all_a_new_accelerator_needs(tmp_path, monkeypatch, exact):
    kube = _npu_world(tmp_path, SERIES)
    try:
        before = _metrics_verdict(kube)
        row = NPU if exact else dataclasses.replace(NPU, exporter=dataclasses.replace(
            NPU.exporter, utilisation=(), memory=()))  # type: ignore[arg-type]
        monkeypatch.setattr(_vendors, "VENDORS", (*_vendors.VENDORS, row))
        after = _metrics_verdict(kube)
    finally:
        kube.stop()
    # Unknown, the node is no accelerator node at all; with its row it is judged by it.
    assert before[0] is Verdict.ERROR and "no GPU node" in before[1]
    assert after[0] is Verdict.PASS, after[1]
    assert "Example NPU exporter" in after[1]


def test_a_row_judges_its_exporter_missing_a_metric(tmp_path, monkeypatch):
    series = "".join(f'npu_core_utilization{{device_id="{i}"}} 0\n' for i in range(4))
    kube = _npu_world(tmp_path, series)
    try:
        monkeypatch.setattr(_vendors, "VENDORS", (*_vendors.VENDORS, NPU))
        verdict, reason = _metrics_verdict(kube)
    finally:
        kube.stop()
    assert verdict is Verdict.FAIL
    assert "npu-0 exports memory npu_hbm_used_bytes per device for all 4 GPUs" in reason


def test_a_new_rows_device_nodes_are_all_the_isolation_check_needs(tmp_path, monkeypatch):
    """With device nodes in its row, the NPU's pods are exercised like any GPU's: left out
    without them, judged (and isolated) with them."""
    import tests.verify.test_accelerator_worlds as table
    monkeypatch.setattr(kubelet, "DEVICE_NODE_RESOURCES", ["example.com/npu"])
    kube, rows = _npu_world(tmp_path, SERIES), _vendors.VENDORS
    try:
        monkeypatch.setattr(table, "PROBES", (SecureAcceleratorAccess,))
        monkeypatch.setattr(_vendors, "VENDORS", (*rows, NPU))
        before = verdicts(kube)[0]
        row = dataclasses.replace(NPU, isolation=_vendors.Isolation("/dev/npu[0-9]*"))
        monkeypatch.setattr(_vendors, "VENDORS", (*rows, row))
        after = verdicts(kube)[0]
    finally:
        kube.stop()
    assert before[0] is Verdict.ERROR
    assert "npu-0: Example NPU: the vendor table gives no device listing" in before[1]
    assert after[0] is Verdict.PASS, after[1]
    assert "device plugin (example.com/npu): /dev/npu0" in after[1]
