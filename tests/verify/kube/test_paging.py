"""Lists are read a page at a time, on through an expired snapshot (verify/kube/paging.py)."""

from __future__ import annotations

import pytest

from aicp.verify.kube import connect
from aicp.verify.probe import ProbeError


def _config_maps(kubeapi, count: int, prefix: str = "c") -> list[str]:
    names = [f"{prefix}{i:04d}" for i in range(count)]
    kubeapi.seed({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": n, "namespace": "default"}} for n in names)
    return names


def test_lists_are_read_a_page_at_a_time_and_walk_every_item(kubeapi, kube):
    names = _config_maps(kubeapi, 1_203)
    kubeapi.requests.clear()
    listed = [c["metadata"]["name"] for c in kube.items("/api/v1/namespaces/default/configmaps")]
    assert listed == names
    pages = kubeapi.requests.matching(verb="list", resource="configmaps")
    assert [r.query.get("limit") for r in pages] == ["500"] * 3
    assert [bool(r.query.get("continue")) for r in pages] == [False, True, True]


def test_a_listing_whose_snapshot_expired_goes_on_from_the_token_the_410_offers(
        kubeapi_factory, tmp_path):
    kubeapi = kubeapi_factory("empty", history=10)
    names = _config_maps(kubeapi, 9)
    k = connect(kubeapi.write_kubeconfig(tmp_path / "kc.yaml"))
    listing = k.items("/api/v1/namespaces/default/configmaps", page=3)
    seen = [next(listing)["metadata"]["name"] for _ in range(3)]
    _config_maps(kubeapi, 30, prefix="later")  # compacts the history the first page came from
    seen += [c["metadata"]["name"] for c in listing]
    assert kubeapi.requests.count(verb="list", status=410) == 1
    assert seen[:9] == names and len(seen) == len(set(seen))  # on from where it stopped


def test_an_expired_listing_without_a_way_on_is_one_clear_error(kubeapi, kube):
    _config_maps(kubeapi, 4)
    listing = kube.items("/api/v1/namespaces/default/configmaps", page=2)
    next(listing)
    kubeapi.faults.error(410, verbs=["list"], resource="configmaps")
    with pytest.raises(ProbeError, match="expired the listing after some pages"):
        list(listing)
