"""The verdict every accelerator probe owes each GPU world built from upstream captures
(tests/kubeapi/worlds_accelerators.py, ../shared/fixtures). One row per world; a new
real-world layout is a new world and a new row.

Columns: dra_support, secure_accelerator_access, accelerator_metrics (MUSTs), gpu_sharing,
driver_runtime_management, virtualized_accelerator, high_performance_networking
(SHOULDs). Each cell is (verdict, a fragment of the reason that says why). A numbered
comment names the belief about real clusters that its row proves (the probe gave that world
another verdict before it held the belief).
"""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings, Timing
from aicp.verify.probes.accelerator_metrics import AcceleratorMetrics
from aicp.verify.probes.dra_support import DraSupport
from aicp.verify.probes.driver_runtime_management import DriverRuntimeManagement
from aicp.verify.probes.gpu_sharing import GpuSharing
from aicp.verify.probes.high_performance_networking import HighPerformanceNetworking
from aicp.verify.probes.secure_accelerator_access import SecureAcceleratorAccess
from aicp.verify.probes.virtualized_accelerator import VirtualizedAccelerator
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import worlds_accelerators as w
from tests.kubeapi.emulator import KubeAPI
from tests.shared import require_shared
from tests.verify.conftest import mismatches, planned

PROBES = (DraSupport, SecureAcceleratorAccess, AcceleratorMetrics, GpuSharing,
          DriverRuntimeManagement, VirtualizedAccelerator, HighPerformanceNetworking)
P, F, S, E = Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR
NOT_SHARED = (F, "no GPU sharing strategy is configured")
NO_VM = (F, "no virtualized accelerator is exposed")
NO_HPN = (F, "not implemented: no network DRA driver")
NO_DRA = (F, "no DeviceClass exists although resource.k8s.io/v1 is served")

TABLE: dict[str, tuple[tuple[Verdict, str], ...]] = {
    # 1: the chart lists compute-domain-daemon.nvidia.com first; 4: its channel class
    # is no network.
    "stock-dra": (
        (P, "DeviceClass gpu.nvidia.com got gpu.nvidia.com/gpu-dra-"),
        (P, "DRA (DeviceClass gpu.nvidia.com)"),
        (P, "on each of 2 GPU node(s)"), NOT_SHARED,
        (P, "run driver 580.126.20, CUDA 13.0.0 (source: DRA ResourceSlice attributes)"),
        (F, "DeviceClasses vfio.gpu.nvidia.com exist but publish no device"),
        (F, "ComputeDomain devices and DeviceClasses alone do not count")),
    # 2: two device-plugin nodes, one field-selector value per term.
    "device-plugin-only": (
        NO_DRA, (P, "device plugin (nvidia.com/gpu)"), (P, "on each of 2 GPU node(s)"),
        NOT_SHARED, (P, "run driver 580.65.06, CUDA 13.0 (source: GPU Feature Discovery"),
        NO_VM, NO_HPN),
    # 6: 12.8.0 (DRA) and 12.8 (GFD) are one CUDA version.
    "mixed": (
        (P, "1 GPU nodes publish DRA devices"), (P, "device plugin (nvidia.com/gpu)"),
        (P, "on each of 2 GPU node(s)"), NOT_SHARED,
        (P, "run driver 570.124.06, CUDA 12.8 (source: DRA ResourceSlice attributes, GPU "
            "Feature Discovery labels)"), NO_VM, NO_HPN),
    # 5: no GPU_UTIL for MIG, gpu.count counts MIG devices.
    "mig-single": (
        NO_DRA, (P, "device plugin (nvidia.com/gpu)"), (P, "on each of 1 GPU node(s)"),
        (P, "more schedulable units (4) than physical GPUs (2)"),
        (P, "run driver 580.65.06"), NO_VM, NO_HPN),
    # 5: nvidia.com/mig-<profile> is a GPU resource (allocatable nvidia.com/gpu 0).
    "mig-mixed": (
        NO_DRA, (P, "device plugin (nvidia.com/mig-1g.5gb)"), (P, "on each of 1 GPU node(s)"),
        (P, "MIG mixed strategy (nvidia.com/mig-1g.5gb=4)"), (P, "run driver 580.65.06"),
        NO_VM, NO_HPN),
    "time-slicing": (
        NO_DRA, (P, "device plugin (nvidia.com/gpu)"), (P, "on each of 1 GPU node(s)"),
        (P, "more schedulable units (32) than physical GPUs (8)"), (P, "run driver 580.65.06"),
        NO_VM, NO_HPN),
    # 5: the renamed nvidia.com/gpu.shared and its nvidia.com/gpu.shared.* labels.
    "time-slicing-renamed": (
        NO_DRA, (P, "device plugin (nvidia.com/gpu.shared)"), (P, "on each of 1 GPU node(s)"),
        (P, "32 nvidia.com/gpu.shared on 8 GPUs"), (P, "run driver 580.65.06"), NO_VM, NO_HPN),
    # 4: EFA's device plugin resource.
    "eks-efa": (
        NO_DRA, (P, "device plugin (nvidia.com/gpu)"), (P, "on each of 1 GPU node(s)"),
        NOT_SHARED, (P, "run driver 580.65.06"), NO_VM,
        (P, "network device plugin vpc.amazonaws.com/efa")),
    # 7: VM hosts carry gpu.present but no exporter, GFD or driver.
    "vm-hosts": (
        (P, "left out 1 VM GPU host(s) (gpu-vm-0"), (P, "left out 1 VM GPU host(s)"),
        (P, "on each of 1 GPU node(s)"), NOT_SHARED, (P, "all 1 GPU nodes run driver"),
        (P, "gpu-vm-0: nvidia.com/gpu.workload.config=vm-passthrough"), NO_HPN),
    # 8: app=nvidia-dcgm-exporter-dra beside app=nvidia-dcgm-exporter.
    "exporters-both-modes": (
        (P, "2 GPU nodes publish DRA devices"), (P, "DRA (DeviceClass gpu.nvidia.com)"),
        (P, "on each of 2 GPU node(s)"), NOT_SHARED, (P, "all 2 GPU nodes run driver"),
        (F, "DeviceClasses vfio.gpu.nvidia.com exist"), NO_HPN),
    # Issue #22. 9: each vendor is judged by its own row of the vendor table: AMD's nodes
    # by AMD's Device Metrics Exporter (gpu_gfx_activity/gpu_*_vram per gpu_id), never by
    # DCGM or /dev/nvidia*; its isolation by its /dev/dri/renderD* and /dev/kfd nodes
    # (ROCm/k8s-device-plugin Allocate), as the WG suite judges by device path; types
    # without driver facts are left out, named.
    "amd-beside-nvidia": (
        NO_DRA, (P, "; device plugin (amd.com/gpu): /dev/dri/renderD128"),
        (P, "the vendors' exporters (AMD Device Metrics Exporter, DCGM exporter) on each "
            "of 2 accelerator node(s)"), NOT_SHARED,
        (P, "gpu-amd-0: AMD GPU: the vendor table names no driver version source"),
        NO_VM, NO_HPN),
    # 10: GKE's sharing labels are sharing; a GKE device-plugin pool (no
    # gke-no-default-nvidia-gpu-device-plugin=true) needs no DRA devices when DRA works in
    # the other pool; the physical count is allocatable / max-shared-clients; a pool
    # publishing no driver version (no GFD on GKE) is the WG test's WARNING, not a FAIL.
    "gke-time-sharing": (
        (P, "1 node(s) of device-plugin pools need no DRA devices (gke-l4-ts-0: GKE's "
            "device plugin"), (P, "device plugin (nvidia.com/gpu)"),
        (P, "on each of 2 GPU node(s)"),
        (P, "GKE time-sharing (cloud.google.com/gke-max-shared-clients-per-gpu=2: 4 "
            "nvidia.com/gpu on 2 GPUs)"),
        (P, "gke-l4-ts-0 publish no driver version (pools cloud.google.com/gke-nodepool="
            "l4-time-sharing)"), (F, "no virtualized accelerator"),
        (F, "not implemented: no network DRA driver")),
    # 11: one driver per pool (the GPU Operator's NVIDIADriver), each node running the one
    # its DRA devices report.
    "two-driver-pools": (
        (P, "2 GPU nodes publish DRA devices"), (P, "DRA (DeviceClass gpu.nvidia.com)"),
        (P, "on each of 2 GPU node(s)"), NOT_SHARED,
        (P, "each of the 2 GPU nodes runs the driver its pool reports: 570.124.6 on "
            "gpu-a-0; 580.126.20 on gpu-b-0"), (F, "no virtualized accelerator"),
        (F, "not implemented: no network DRA driver")),
    # 12: cordoned and NotReady nodes are left out of every-node checks, named.
    "cordoned-and-not-ready": (
        (P, "left out 2 cordoned or NotReady node(s) (gpu-dra-1: cordoned "
            "(spec.unschedulable); gpu-dra-2: NotReady (NodeStatusUnknown))"),
        (P, "left out 2 cordoned or NotReady node(s)"),
        (P, "on each of 1 GPU node(s)"), NOT_SHARED, (P, "all 1 GPU nodes run driver"),
        (F, "no virtualized accelerator"), (F, "not implemented: no network DRA driver")),
    # 13 (issue #25 item 3): a DRA sharing strategy in the NVIDIA driver's opaque
    # GpuConfig is a configured strategy ...
    "dra-mps": (
        (P, "2 GPU nodes publish DRA devices"), (P, "DRA (DeviceClass gpu.nvidia.com)"),
        (P, "on each of 2 GPU node(s)"),
        (P, "a DRA GPU sharing strategy is configured: ResourceClaimTemplate "
            "inference/mps-gpu: gpu.nvidia.com MPS"),
        (P, "all 2 GPU nodes run driver"), (F, "no virtualized accelerator"),
        (F, "not implemented: no network DRA driver")),
    # ... and a claim several pods share is not (every DRA cluster has them).
    "dra-shared-claim-only": (
        (P, "2 GPU nodes publish DRA devices"), (P, "DRA (DeviceClass gpu.nvidia.com)"),
        (P, "on each of 2 GPU node(s)"), NOT_SHARED, (P, "all 2 GPU nodes run driver"),
        (F, "no virtualized accelerator"), (F, "not implemented: no network DRA driver")),
    # 14: TPU and Neuron nodes the table has no exporter/isolation facts for are left out
    # with the reason, the NVIDIA node judged. 15: the Neuron row's device nodes
    # (/dev/neuron<N>, aws-neuron-sdk) judge the Neuron node beside it; the TPU node, whose
    # device plugin's container paths are unpublished (only its DRA driver's are), stays
    # left out.
    "tpu-and-neuron": (
        NO_DRA, (P, "device plugin (aws.amazon.com/neuron): /dev/neuron0; left out 1 node(s) "
                    "the vendor table has no facts for here (tpu-v5e-0: Google TPU: the "
                    "vendor table has isolation facts for its DRA driver only"),
        (P, "tpu-v5e-0: Google TPU: the vendor table knows no per-device metrics exporter"),
        NOT_SHARED, (P, "all 1 GPU nodes run driver 580.65.06"), NO_VM, NO_HPN),
}
# A cluster at rest with no GPU node cannot exercise the accelerator MUSTs: ERROR, not N/A
# (the checklist's N/A needs a justification that a requirement does not apply:
# cncf/k8s-ai-conformance docs/AIConformance-1.35.yaml, status and notes).
NO_GPU = ((E, "no GPU node to exercise: scale a pool up (or run with --long)"),) * 3 + (
    (S, "not applicable: no GPU node"),) * 3 + (NO_HPN,)


# The emulator answers in milliseconds: every probe polls often and gives up early.
FAST = Timing(timeout=10.0, poll=0.05, overrides={"unschedulable_grace": 2.0})


def verdicts(kube: KubeAPI) -> list[tuple[Verdict, str]]:
    client = connect(kube.write_kubeconfig(kube.__dict__["kubeconfig_path"]))
    out = []
    for probe in PROBES:  # one at a time: each gets the cluster's GPUs to itself
        report = Runner(client, Settings("w1", "1.37", images.catalog(), timing=FAST),
                        cleanup_timeout=10).run(planned(probe))
        assert report.leftovers == [], probe.id
        result = report.outcomes[0].result
        out.append((result.verdict, result.reason))
    return out


def started(kube: KubeAPI, tmp_path) -> KubeAPI:
    kube.__dict__["kubeconfig_path"] = tmp_path / "kubeconfig.yaml"
    kube.start()
    w.start_exporters(kube)
    return kube


@pytest.mark.parametrize("name", list(TABLE))
def test_every_accelerator_probe_owes_each_world_its_verdict(name, tmp_path):
    require_shared("fixtures")
    kube = started(w.world(name, minor="1.35"), tmp_path)
    try:
        got = verdicts(kube)
    finally:
        kube.stop()
    assert mismatches(PROBES, got, TABLE[name]) == []


def test_a_cluster_without_gpu_nodes(tmp_path):
    require_shared("fixtures")
    kube = started(w.build([], classes=True), tmp_path)
    try:
        got = verdicts(kube)
    finally:
        kube.stop()
    assert mismatches(PROBES, got, NO_GPU) == []


def test_every_world_is_a_named_scenario():
    # The scenarios registry lists the worlds by hand (it cannot import them at load):
    # a world added here without a scenario name is caught.
    from tests.kubeapi.scenarios import SCENARIOS
    assert {f"gpu-{name}" for name in w.WORLDS} <= set(SCENARIOS)
    assert set(TABLE) == set(w.WORLDS)


@pytest.mark.kubeapi("gpu-mig-single")
def test_a_world_runs_as_a_scenario_with_its_exporters(kubeapi):
    require_shared("fixtures")
    kubeapi.settle()
    exporter = kubeapi.find("pods", "nvidia-dcgm-exporter-gpu-mig-0", "gpu-operator")
    assert exporter is not None and exporter["status"]["phase"] == "Running"
