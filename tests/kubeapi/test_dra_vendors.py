"""The emulator's DRA drivers and runtimes as each vendor's are: the structured allocator's
``allocationMode: All`` (every matching device of a node, or no allocation), the TPU DRA
driver's refusal of claims for part of a node, and each vendor's devices and tools only in
containers given that vendor's devices."""

from __future__ import annotations

import pytest

from . import objects as o
from . import worlds_accelerators as w
from .emulator import KubeAPI

ANY = [{"operator": "Exists"}]
NVIDIA_SCRIPT = ('count=0; for device in /dev/nvidia[0-9]*; do [ -e "$device" ] || continue; '
                 'count=$((count + 1)); done; echo "RESULT: ACCELERATOR_COUNT=$count"; '
                 "nvidia-smi -L 2>&1 || true")


def script(globs: str, access: str = "") -> str:
    """A vendor-neutral device listing, as a container would run it."""
    text = (f'count=0; for device in {globs}; do [ -e "$device" ] || continue; '
            'count=$((count + 1)); echo "RESULT: DEVICE=$device"; done; '
            'echo "RESULT: ACCELERATOR_COUNT=$count"')
    if access:
        text += (f'; access=0; for path in {access}; do [ -e "$path" ] && '
                 'access=$((access + 1)); done; echo "RESULT: ACCESS_COUNT=$access"')
    return text


def template(name: str, device_class: str, *, all_devices: bool = False) -> dict:
    mode = {"allocationMode": "All"} if all_devices else {"allocationMode": "ExactCount",
                                                          "count": 1}
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                "deviceClassName": device_class, **mode}}]}}}}


@pytest.fixture
def world():
    started: list[KubeAPI] = []

    def make(name: str) -> KubeAPI:
        kube = w.dra_world(name)
        kube.start()
        started.append(kube)
        kube.create(o.namespace("t"))
        return kube
    yield make
    for kube in started:
        kube.stop()


def run(kube: KubeAPI, name: str, tpl: str, command: str, *,
        restart: str = "Never") -> dict:
    kube.create(o.pod(name, "t", command=["sh", "-c", command], claims={"gpu": tpl},
                      tolerations=ANY, restart_policy=restart))
    kube.settle()
    return kube.get("pods", name, "t")


def claim_of(kube: KubeAPI, pod: dict) -> dict:
    name = pod["status"]["resourceClaimStatuses"][0]["resourceClaimName"]
    return kube.get("resourceclaims.resource.k8s.io", name, "t")


def results(claim: dict) -> list[str]:
    return [r["device"] for r in ((claim.get("status") or {}).get("allocation") or {}).get(
        "devices", {}).get("results") or []]


def test_allocation_mode_all_gets_every_matching_device_of_the_node(world):
    kube = world("amd-dra-pool")
    kube.create(template("all", "gpu.amd.com", all_devices=True))
    pod = run(kube, "all", "all", script("/dev/dri/renderD*", "/dev/kfd"))
    assert results(claim_of(kube, pod)) == [f"gpu-{8 * i}-{128 + 8 * i}" for i in range(8)]
    log = kube.logs[("t", "all", "main")]
    assert "RESULT: ACCELERATOR_COUNT=8" in log and "RESULT: ACCESS_COUNT=1" in log


def test_allocation_mode_all_waits_while_one_matching_device_is_taken(world):
    kube = world("amd-dra-pool")
    kube.create(template("one", "gpu.amd.com"))
    kube.create(template("all", "gpu.amd.com", all_devices=True))
    holder = run(kube, "holder", "one", "sleep 3600", restart="Always")
    assert results(claim_of(kube, holder)) == ["gpu-0-128"]
    pod = run(kube, "all", "all", "true")
    # Not the 7 free devices: no allocation at all, and the pod is not placed.
    assert results(claim_of(kube, pod)) == []
    assert not pod["spec"].get("nodeName")


def test_the_tpu_driver_refuses_a_claim_for_part_of_a_node(world):
    kube = world("tpu-dra-pool")
    kube.create(template("one", "tpu.google.com"))
    pod = run(kube, "one-chip", "one", "true")
    assert results(claim_of(kube, pod)) == ["0"]
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    event = next(e for e in kube.list("events", "t")
                 if e["reason"] == "FailedPrepareDynamicResources")
    assert ("claim requests partial tpu devices (1), only requests for all tpu devices (4) "
            "on the node are supported") in event["message"]


def test_a_tpu_claim_shows_its_chips_and_no_nvidia_tools(world):
    kube = world("tpu-dra-pool")
    kube.create(template("all", "tpu.google.com", all_devices=True))
    first = run(kube, "vfio", "all", script("/dev/vfio/[0-9]* /dev/accel[0-9]*",
                                            "/dev/vfio/vfio"))
    # The node's chips are free again once the first claim is gone.
    kube.delete("resourceclaims.resource.k8s.io", claim_of(kube, first)["metadata"]["name"],
                "t")
    run(kube, "smi", "all", NVIDIA_SCRIPT)
    vfio, smi = kube.logs[("t", "vfio", "main")], kube.logs[("t", "smi", "main")]
    assert [f"/dev/vfio/{i}" for i in range(4)] == [
        line.split("=", 1)[1] for line in vfio.splitlines() if line.startswith("RESULT: DEV")]
    assert "RESULT: ACCESS_COUNT=1" in vfio
    assert smi.splitlines() == ["RESULT: ACCELERATOR_COUNT=0", "sh: nvidia-smi: not found"]


def test_an_amd_dra_gpu_is_its_render_node_and_no_nvidia_gpu(world):
    kube = world("amd-dra-pool")
    kube.create(template("one", "gpu.amd.com"))
    run(kube, "dri", "one", script("/dev/dri/renderD*", "/dev/kfd"))
    run(kube, "smi", "one", NVIDIA_SCRIPT)
    dri, smi = kube.logs[("t", "dri", "main")], kube.logs[("t", "smi", "main")]
    assert "RESULT: DEVICE=/dev/dri/renderD128" in dri
    assert "RESULT: ACCELERATOR_COUNT=1" in dri and "RESULT: ACCESS_COUNT=1" in dri
    assert "RESULT: ACCELERATOR_COUNT=0" in smi and "GPU 0" not in smi
