"""The GCP target (stacks/targets/gcp.py): what GKE refuses is refused before anything is
declared, as one line naming the config key; what it accepts is accepted."""

from __future__ import annotations

import pytest

from aicp.cli import fakes
from tests.stacks.test_config import DELETE, _set

from .cases import accepted, refused, refused_by_preflight

BAD = [
    ("no project", _set("gcp", DELETE), "aicp:gcp.project: required for target gcp"),
    ("uppercase label", _set("tags", {"Team": "ml"}),
     "aicp:tags.Team: GCP labels are lowercase"),
    ("l40s is not offered on gcp", _set("gpuPools[0].accelerator", "l40s"),
     "aicp:gpuPools[0].accelerator: 'l40s' is not one of h100, h200, a100, l4 on gcp"),
    # Flex-start VMs are obtained without reservations (GKE provisioningrequest how-to:
    # --reservation-affinity=none); the example's h100 pool is flex-start.
    ("a reservation on a flex-start pool",
     _set("gpuPools[0].capacityReservationId", "projects/my-project/reservations/a3-res"),
     "aicp:gpuPools[0].capacityReservationId: flex-start pools take no reservation "
     "(--reservation-affinity=none); drop it or set aicp:gpuPools[0].capacityType: on-demand"),
    ("capacity blocks are EC2's", _set("gpuPools[1].capacityType", "capacity-block"),
     "aicp:gpuPools[1].capacityType: 'capacity-block' is not sold on gcp; use one of "
     "on-demand, spot, flex-start, queued-provisioning"),
    ("a queued-provisioning pool starts empty",
     _set("gpuPools[1]", {"name": "l4", "accelerator": "l4", "minNodes": 1, "maxNodes": 3,
                          "capacityType": "queued-provisioning", "allocator": "dra"}),
     "aicp:gpuPools[1].minNodes: 1: a queued-provisioning pool starts at 0 nodes"),
    ("VPC smaller than /20", _set("network", {"vpcCidr": "10.0.0.0/21"}),
     "aicp:network.vpcCidr: '10.0.0.0/21' is too small on gcp: give /20 or larger"),
]


@pytest.mark.parametrize("change,expected", [(c, e) for _, c, e in BAD],
                         ids=[n for n, _, _ in BAD])
def test_what_gke_refuses_is_one_line_naming_the_key(change, expected):
    message = refused("gcp", change)
    assert message.startswith(expected), message


GOOD = [
    (_set("region", "northamerica-northeast1"),
     _set("zones", ["northamerica-northeast1-a", "northamerica-northeast1-b"])),
    (_set("gcp.masterIpv4CidrBlock", "172.16.0.16/28"),
     _set("gpuPools[1].capacityReservationId", "projects/my-project/reservations/g2-res")),
    (_set("zones", []), _set("gpuPools[0].maxNodes", 4000)),
    (_set("tags", {"team": "ml-infra_2"}), _set("network", {"vpcCidr": "10.0.0.0/20"})),
]


@pytest.mark.parametrize("first,second", GOOD, ids=[f"gcp-{i}" for i in range(len(GOOD))])
def test_what_gke_accepts_is_accepted(first, second):
    assert accepted("gcp", first, second).target == "gcp"


# --- preflight: what Compute Engine answers before the first resource ------------------

MACHINE_TYPES = "gcp:compute/getMachineTypes:getMachineTypes"


def test_gce_machine_type_missing_in_a_zone_fails_the_same_way(monkeypatch):
    def machine_types(args):
        out = fakes._gce_machine_types(args)
        if args.get("zone") == "us-central1-c" and "a3-highgpu-8g" in args.get("filter", ""):
            out["machineTypes"] = []
        return out

    monkeypatch.setitem(fakes.INVOKES, MACHINE_TYPES, machine_types)
    assert refused_by_preflight("gcp") == (
        "aicp:gpuPools[0]: a3-highgpu-8g (pool h100) is not offered in us-central1-c "
        "(us-central1); of the configured zones it is offered in us-central1-a")
