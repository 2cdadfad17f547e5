"""The Azure target (stacks/targets/azure.py): what AKS refuses is refused before anything
is declared, as one line naming the config key; what it accepts is accepted."""

from __future__ import annotations

import pytest

from aicp.components import azure
from aicp.stacks.targets import azure as target
from tests.stacks.test_config import _set

from .cases import accepted, planned, refused, stack

BAD = [
    ("zone not 1-3", _set("zones", ["eastus2-a"]),
     "aicp:zones[0]: 'eastus2-a' is not an Azure zone"),
    ("two node subnets", _set("network", {"subnetIds": ["/subscriptions/a", "/subscriptions/b"]}),
     "aicp:network.subnetIds: AKS takes one node subnet"),
    ("price expander", _set("addons.autoscaler.expander", "price"),
     "aicp:addons.autoscaler.expander: 'price' is not offered by AKS"),
    ("slash in a tag name", _set("tags", {"team/name": "ml"}),
     "aicp:tags.team/name: Azure tag names cannot contain"),
    ("l4 is not offered on azure", _set("gpuPools[0].accelerator", "l4"),
     "aicp:gpuPools[0].accelerator: 'l4' is not one of h100, h200, a100, t4 on azure"),
    ("the AKS system pool's name", _set("gpuPools[0].name", "system"),
     "aicp:gpuPools[0].name: 'system' is the name of the AKS system pool"),
    ("VNet over the service range", _set("network", {"vpcCidr": "10.96.0.0/12"}),
     "aicp:network.vpcCidr: '10.96.0.0/12' overlaps the AKS service range 10.96.0.0/16"),
    ("a reservation that is no ARM id", _set("gpuPools[0].capacityReservationId", "h100-crg"),
     "aicp:gpuPools[0].capacityReservationId: 'h100-crg' is not an Azure capacity "
     "reservation id (like /subscriptions/"),
]


@pytest.mark.parametrize("change,expected", [(c, e) for _, c, e in BAD],
                         ids=[n for n, _, _ in BAD])
def test_what_aks_refuses_is_one_line_naming_the_key(change, expected):
    message = refused("azure", change)
    assert message.startswith(expected), message


GOOD = [
    (_set("region", "westeurope"), _set("gpuPools[0].maxNodes", 1000)),
    (_set("gpuPools[0].capacityReservationId",
          "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/"
          "capacityReservationGroups/h100-crg"),
     _set("network", {"vpcCidr": "10.0.0.0/16"})),
]


@pytest.mark.parametrize("first,second", GOOD, ids=[f"azure-{i}" for i in range(len(GOOD))])
def test_what_aks_accepts_is_accepted(first, second):
    assert accepted("azure", first, second).target == "azure"


def test_aks_pool_names_are_the_components_rule():
    # Stated once, in the component; the target names the keys of both pools.
    pools = _set("gpuPools", [{"name": n, "accelerator": "a100", "minNodes": 1, "maxNodes": 1}
                              for n in ("gpu-pool-number-1", "gpu-pool-number-2")])
    assert refused("azure", pools) == (
        "aicp:gpuPools[1].name: 'gpu-pool-number-2' and aicp:gpuPools[0].name "
        "'gpu-pool-number-1' both become AKS pool name 'gpupoolnumbe' (letters and digits, "
        "at most 12); rename one")
    assert azure.agent_pool_name("gpu-pool-number-1") == "gpupoolnumbe"


def test_the_args_follow_the_config():
    from aicp.stacks.config import parse

    args = target.args(parse(stack("azure")))
    assert args.vnet_cidr == "10.0.0.0/16" and args.subnet_id is None
    # AKS's defaults for the overlay: the VNet check is against these.
    fields = azure.AksClusterArgs.__dataclass_fields__
    assert (args.pod_cidr, args.service_cidr) == (fields["pod_cidr"].default,
                                                  fields["service_cidr"].default)


def test_preflight_says_azure_is_not_asked():
    # pulumi-azure-native 3.29 has no read-only lookup of resource SKUs or compute usage.
    p = planned("azure")
    assert p.outputs["preflight"] == {"checked": [], "warnings": [
        "GPU VM sizes and quota are not checked on azure (pulumi-azure-native has no "
        "read-only SKU or usage lookup); see the quota note in the example"]}
