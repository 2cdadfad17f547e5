"""The verdict secure_accelerator_access owes each non-GPU accelerator world of issue #22
(tests/kubeapi/worlds_accelerators.py ``ISOLATION_WORLDS``): Gaudi and Neuron pools are
judged by their own rows' device nodes, a TPU pool through the TPU DRA driver by its
chips' nodes with whole-node claims, a TPU device-plugin pool is left out with the reason.

The verdicts come from the requirement ("only a container given an accelerator can reach
one") and the strictest peer, the WG suite (kubernetes-sigs/ai-conformance
test/ai_conformance_test.go ``TestSecureAcceleratorAccess``: a container given a device sees
it, a container of the same pod or another pod without one sees none, judged by ``ls
<DevicePath>``): a runtime that opens every device for a container that asked for none
fails it; a type without published facts cannot be judged (ERROR, never PASS or FAIL).
"""

from __future__ import annotations

import pytest

from aicp.verify import images
from aicp.verify.kube import connect
from aicp.verify.probe import Settings
from aicp.verify.probes.secure_accelerator_access import SecureAcceleratorAccess
from aicp.verify.result import Verdict
from aicp.verify.runner import Runner
from tests.kubeapi import worlds_accelerators as w
from tests.verify.conftest import planned
from tests.verify.test_accelerator_worlds import FAST, started

P, F, E = Verdict.PASS, Verdict.FAIL, Verdict.ERROR
TPU_LEFT_OUT = ("tpu-v5e-0: Google TPU: the vendor table has isolation facts for its DRA "
                "driver only (its device plugin's container device paths are not published)")

TABLE: dict[str, tuple[Verdict, tuple[str, ...]]] = {
    # Each allocated Gaudi is its /dev/accel/accel<N> (the plugin mounts it at its host
    # path): one for the holder, none for its second container and the bare pod, another
    # for the second pod holding at the same time.
    "gaudi-pool": (P, ("device plugin (habana.ai/gaudi): /dev/accel/accel0",)),
    # HABANA_VISIBLE_DEVICES=all honoured in a container that requested no Gaudi.
    "gaudi-visible-all": (F, (
        "the holding pod's second container, without a request (Intel Gaudi Gaudi), sees no "
        "GPU", "8 /dev/accel/accel[0-9]* device node(s)")),
    # The whole-device resource is exercised (aws.amazon.com/neuron, not neuroncore).
    "neuron-pool": (P, ("device plugin (aws.amazon.com/neuron): /dev/neuron0",)),
    # AWS_NEURON_VISIBLE_DEVICES=ALL honoured in a container that requested no device.
    "neuron-visible-all": (F, (
        "without a request (AWS Neuron), sees no GPU",
        "16 /dev/neuron[0-9]* device node(s)")),
    # No published container paths for GKE's TPU device plugin: not judgeable alone.
    "tpu-pool": (E, ("no accelerator node can be judged", TPU_LEFT_OUT)),
    # The TPU DRA driver prepares only whole-node claims: the holder claims all 4 chips
    # (allocationMode All) and sees their /dev/vfio/<n>; no one else sees any.
    "tpu-dra-pool": (P, ("DRA (DeviceClass tpu.google.com): /dev/vfio/0; /dev/vfio/1; "
                         "/dev/vfio/2; /dev/vfio/3",)),
    "tpu-dra-visible-all": (F, (
        "the holding pod's second container, without a claim (Google TPU), sees no GPU",
        "4 /dev/vfio/[0-9]* /dev/accel[0-9]* device node(s), 1 of /dev/vfio/vfio")),
    # Beside judged pools the TPU node is left out, named, and each vendor is judged.
    "gaudi-neuron-tpu": (P, ("device plugin (aws.amazon.com/neuron): /dev/neuron0",
                             "device plugin (habana.ai/gaudi): /dev/accel/accel0",
                             TPU_LEFT_OUT)),
}


# Where two holders can run at once (one device each), they must see different devices.
DIFFERENT = {"gaudi-pool": "/dev/accel/accel0 vs /dev/accel/accel1",
             "neuron-pool": "/dev/neuron0 vs /dev/neuron1"}


@pytest.mark.parametrize("name", list(TABLE))
def test_secure_accelerator_access_owes_each_accelerator_world_its_verdict(name, tmp_path):
    kube = started(w.isolation_world(name), tmp_path)
    try:
        result = _result(kube)
    finally:
        kube.stop()
    want, fragments = TABLE[name]
    assert result.verdict is want, result.reason
    for fragment in fragments:
        assert fragment in result.reason, (fragment, result.reason)
    if name in DIFFERENT:
        check = next(c for c in result.evidence.checks
                     if c.name.startswith("two pods holding a GPU at the same time"))
        assert check.passed and check.observed == DIFFERENT[name]


def _result(kube):
    client = connect(kube.write_kubeconfig(kube.__dict__["kubeconfig_path"]))
    report = Runner(client, Settings("w1", "1.37", images.catalog(), timing=FAST),
                    cleanup_timeout=10).run(planned(SecureAcceleratorAccess))
    assert report.leftovers == []
    return report.outcomes[0].result


def test_every_isolation_world_has_a_verdict():
    assert set(TABLE) == set(w.ISOLATION_WORLDS)
