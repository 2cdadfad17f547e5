"""disaggregated_inference (issue #25): LeaderWorkerSet and the endpoint picker's
prefill/decode profiles, on by default, pinned, with a key to turn them off."""

from __future__ import annotations

from pathlib import Path

import yaml

from aicp.addons.catalog import CHARTS
from aicp.cli import offline
from aicp.cli.plan import describe, run_stack, stack_config
from tests.addons.conftest import make_cluster
from tests.addons.plan_checks import release_of, unpinned_releases

REPO = Path(__file__).resolve().parents[2]
LWS = CHARTS["leaderworkerset"]


def _lws_plan() -> offline.Plan:
    def program() -> None:
        from aicp.addons.leaderworkerset import LeaderWorkerSet

        LeaderWorkerSet("lws", make_cluster())

    return offline.run(program, {})


def _epp_plan(disaggregated: bool) -> offline.Plan:
    def program() -> None:
        from aicp.addons.inference_extension import (
            InferenceExtension,
            InferenceExtensionArgs,
        )

        InferenceExtension("ie", make_cluster(), InferenceExtensionArgs(
            disaggregated=disaggregated))

    return offline.run(program, {})


def test_leaderworkerset_is_the_pinned_published_chart():
    plan = _lws_plan()
    assert unpinned_releases(plan) == []
    release = release_of(plan, LWS)
    assert release.inputs["chart"] == "oci://registry.k8s.io/lws/charts/lws"
    assert release.inputs["version"] == LWS.version
    assert plan.one("aicp:addons:LeaderWorkerSet").outputs["conformance"] == [
        "disaggregated_inference"]


def test_the_endpoint_picker_loads_prefill_and_decode_profiles_on_the_role_label():
    epp = release_of(_epp_plan(True), CHARTS["endpoint-picker"]).inputs["values"]["router"]
    name = epp["epp"]["pluginsConfigFile"]
    config = yaml.safe_load(epp["epp"]["pluginsCustomConfig"][name])
    assert config["kind"] == "EndpointPickerConfig"
    profiles = {p["name"]: [r["pluginRef"] for r in p["plugins"]]
                for p in config["schedulingProfiles"]}
    assert set(profiles) == {"prefill", "decode"}
    assert "prefill-filter" in profiles["prefill"] and "decode-filter" in profiles["decode"]
    declared = {p["type"] for p in config["plugins"]}
    assert {r for refs in profiles.values() for r in refs} <= declared  # every ref declared
    assert "disagg-profile-handler" in declared


def test_without_the_profiles_the_picker_keeps_its_default_config():
    epp = release_of(_epp_plan(False), CHARTS["endpoint-picker"]).inputs["values"]["router"]
    assert "pluginsConfigFile" not in epp["epp"]
    assert "pluginsCustomConfig" not in epp["epp"]


def test_on_by_default_in_the_example_stacks_and_one_key_turns_it_off():
    raw = stack_config(REPO, "gcp")
    cfg, run = run_stack(raw, "gcp")
    doc = describe(cfg, run, "gcp")
    assert doc["shoulds"]["disaggregated_inference"] == "served"
    assert doc["outputs"]["addons"]["leaderworkerset"] == LWS.version
    raw["aicp:addons"] = {**raw.get("aicp:addons", {}),
                          "disaggregatedInference": {"enabled": False}}
    cfg, run = run_stack(raw, "gcp")
    doc = describe(cfg, run, "gcp")
    assert doc["shoulds"]["disaggregated_inference"] == "not served"
    assert "leaderworkerset" not in doc["outputs"]["addons"]
