"""The Azure target (stacks/targets/azure.py): what AKS refuses is refused before anything
is declared, as one line naming the config key; what it accepts is accepted."""

from __future__ import annotations

import pytest

from aicp.cli import fakes
from aicp.components import azure
from aicp.stacks.targets import azure as target
from tests.stacks.test_config import _set

from .cases import accepted, created, planned, refused, stack

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


# --- AKSInfinibandSupport: asked, registered only where the stack opts in (issue #19) --------

FEATURE_LOOKUP = "azure-native:features:getSubscriptionFeatureRegistration"
FEATURE = "azure-native:features:SubscriptionFeatureRegistration"
AGENT_POOL = "azure-native:containerservice:AgentPool"


def opt_in(raw: dict) -> None:
    raw["aicp:azure"] = {**raw.get("aicp:azure", {}), "registerInfinibandFeature": True}


def test_an_infiniband_pool_is_told_where_the_subscription_feature_stands():
    # Azure/aks-rdma-infiniband prerequisites: AKSInfinibandSupport keeps the pool's VMs on
    # one physical InfiniBand network; the canned subscription never registered it.
    p = planned("azure-training")
    assert FEATURE_LOOKUP in {token for token, _ in p.invokes}
    [warning] = [w for w in p.outputs["preflight"]["warnings"] if "AKSInfinibandSupport" in w]
    assert warning.startswith("GPU pools train: Microsoft.ContainerService/"
                              "AKSInfinibandSupport is NotRegistered on this subscription")
    assert "az feature register --namespace Microsoft.ContainerService --name " \
        "AKSInfinibandSupport" in warning and "aicp:azure.registerInfinibandFeature" in warning
    # Subscription-wide: never declared by the stack unless it opts in.
    assert not [r for r in p.resources if r.type == FEATURE]


def test_a_registered_feature_is_checked_and_not_warned(monkeypatch):
    canned = fakes.INVOKES[FEATURE_LOOKUP]

    def registered(args):
        out = canned(args)
        return {**out, "properties": {**out["properties"], "state": "Registered"}}

    monkeypatch.setitem(fakes.INVOKES, FEATURE_LOOKUP, registered)
    report = planned("azure-training").outputs["preflight"]
    assert "Microsoft.ContainerService/AKSInfinibandSupport: Registered" in report["checked"]
    assert not [w for w in report["warnings"] if "AKSInfinibandSupport" in w]


def test_a_lookup_that_fails_is_a_warning_and_the_plan_goes_on(monkeypatch):
    def missing(args):
        raise Exception("SubscriptionFeatureRegistrationNotFound: not found\nmore")

    monkeypatch.setitem(fakes.INVOKES, FEATURE_LOOKUP, missing)
    p = planned("azure-training")
    [warning] = [w for w in p.outputs["preflight"]["warnings"] if "AKSInfinibandSupport" in w]
    assert " is not known (" in warning and "SubscriptionFeatureRegistrationNotFound" in warning
    assert AGENT_POOL in created(p)


def test_opted_in_the_stack_registers_it_keeps_it_and_the_pools_wait_for_it():
    p = planned("azure-training", opt_in)
    [feature] = [r for r in p.resources if r.type == FEATURE]
    assert (feature.inputs["providerNamespace"], feature.inputs["featureName"]) == (
        "Microsoft.ContainerService", "AKSInfinibandSupport")
    # Deleting the registration would unregister it for the whole subscription.
    assert feature.retain_on_delete
    pools = [r for r in p.resources if r.type == AGENT_POOL and "-gpu-" in r.name]
    assert pools and all(feature.urn in r.dependencies for r in pools)
    report = p.outputs["preflight"]
    assert FEATURE_LOOKUP not in {token for token, _ in p.invokes}
    assert "Microsoft.ContainerService/AKSInfinibandSupport: registered by this stack" in \
        report["checked"]


def test_opting_in_without_an_infiniband_pool_is_one_line_naming_the_key():
    # The cheap azure example has no ND-series pool: the key would do nothing.
    message = refused("azure", _set("azure", {"registerInfinibandFeature": True}))
    assert message.startswith("aicp:azure.registerInfinibandFeature: no GPU pool is an "
                              "InfiniBand (ND-series) size"), message
