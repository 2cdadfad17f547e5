"""The offline validator is as strict as the API server, and no stricter."""

from __future__ import annotations

from tests.schemas import Validator, shared_crds
from tests.shared import require_shared


def gateway(**status) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "g"},
            "spec": {"gatewayClassName": "istio",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
            "status": status}


def test_a_field_a_oneof_branch_constrains_is_not_taken_for_an_unknown_one():
    validator = Validator("1.35", shared_crds(require_shared("crds")))
    assert validator.errors(gateway(addresses=[{"type": "Hostname",
                                                "value": "gw.example.com"}])) == []


def test_a_misspelled_field_is_still_rejected():
    validator = Validator("1.35", shared_crds(require_shared("crds")))
    bad = gateway()
    bad["spec"]["gatewayClassNamee"] = "istio"
    assert validator.errors(bad) == ["spec.gatewayClassNamee: unknown field"]
