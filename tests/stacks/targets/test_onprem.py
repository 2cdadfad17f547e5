"""The on-prem target (stacks/targets/onprem.py): what a cluster of your own machines cannot
be is refused before anything is declared, as one line naming the config key."""

from __future__ import annotations

import pytest

from tests.stacks.test_config import DELETE, _set

from .cases import refused, stack

BAD = [
    ("no GPU count", _set("gpuPools[0].gpusPerNode", DELETE),
     "aicp:gpuPools[0].gpusPerNode: required on onprem"),
    ("no onprem section", _set("onprem", DELETE),
     "aicp:onprem: required for target onprem (mode: existing or k3s)"),
    ("a reservation", _set("gpuPools[0].capacityReservationId", "cr-0123456789abcdef0"),
     "aicp:gpuPools[0].capacityReservationId: onprem has no capacity reservations"),
    ("nodes for no pool", _set("onprem.gpuNodes", {"a100": ["gpu-0", "gpu-1"],
                                                   "h100": ["gpu-2"]}),
     "aicp:onprem.gpuNodes.h100: no GPU pool is named 'h100'"),
]


@pytest.mark.parametrize("change,expected", [(c, e) for _, c, e in BAD],
                         ids=[n for n, _, _ in BAD])
def test_what_onprem_refuses_is_one_line_naming_the_key(change, expected):
    message = refused("onprem", change)
    assert message.startswith(expected), message


def test_preflight_asks_nothing_of_machines_in_a_rack():
    from aicp.stacks.config import parse
    from aicp.stacks.preflight import Report
    from aicp.stacks.targets import target

    report = Report()
    target("onprem").preflight(parse(stack("onprem")), report)
    assert report.export() == {"checked": [], "warnings": []}


# --- the secrets are the on-prem target's, not the config model's -------------------------

def test_the_config_model_reads_no_secret():
    from aicp.stacks.config import ConfigError, parse

    with pytest.raises(ConfigError, match=r"^aicp:kubeconfig: unknown key; allowed here: "):
        parse({**stack("onprem"), "kubeconfig": "apiVersion: v1"})


def test_a_secret_is_claimed_by_the_target_that_reads_it_and_no_other_loads_for_none():
    from aicp.stacks.targets import owners

    assert owners(stack("aws")) == {}
    assert owners({**stack("aws"), "regoin": "us-west-2"}) == {}  # a typo stays the model's
    assert owners({**stack("aws"), "sshPrivateKey": "k", "kubeconfig": "c"}) == {
        "kubeconfig": "onprem", "sshPrivateKey": "onprem"}
    named = {**stack("onprem"), "onprem": {"mode": "k3s", "k3s": {
        "servers": [{"host": "10.0.0.10"}], "sshPrivateKeyKey": "aicp:deployKey"}}}
    assert owners({**named, "deployKey": "k"}) == {"deployKey": "onprem"}


def test_a_secret_on_a_cloud_is_refused_before_the_clouds_own_rules():
    from aicp.stacks.config import ConfigError
    from aicp.stacks.program import read

    with pytest.raises(ConfigError) as err:
        read({**stack("aws"), "region": "Iowa", "kubeconfig": "apiVersion: v1"})
    assert str(err.value) == "aicp:kubeconfig: only read on target onprem; drop the key"
