"""The stack's provider settings that decide where resources go (``aws:region``,
``gcp:project``, ``gcp:region``, ``azure-native:location``) are honoured, not silently
overridden by aicp's own key (#27 item 3): taken in where aicp's key is not set, refused in
one line where the two disagree (tests/stacks/test_config_errors.py holds those lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicp.cli import offline
from aicp.cli.plan import stack_config
from aicp.stacks.program import main as program
from aicp.stacks.program import read

REPO = Path(__file__).resolve().parents[2]


def aicp_keys(config: dict) -> dict:
    return {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("aicp:")}


def without(config: dict, key: str, inner: str | None = None) -> dict:
    out = dict(config)
    if inner is None:
        del out[key]
    else:
        out[key] = {k: v for k, v in out[key].items() if k != inner}
    return out


@pytest.mark.parametrize(("stack", "drop", "setting", "value", "read_back"), [
    ("aws", ("aicp:region", None), "aws:region", "eu-central-1", lambda c: c.region),
    ("gcp", ("aicp:region", None), "gcp:region", "europe-west4", lambda c: c.region),
    ("gcp", ("aicp:gcp", "project"), "gcp:project", "team-ml-123", lambda c: c.gcp.project),
    ("azure", ("aicp:region", None), "azure-native:location", "westeurope",
     lambda c: c.region),
])
def test_a_provider_setting_is_taken_where_aicp_key_is_not_set(stack, drop, setting, value,
                                                                 read_back):
    config = without(stack_config(REPO, stack), *drop)
    if stack == "aws":
        # The example's zones name its own region; the new region's go with it.
        config["aicp:zones"] = [f"{value}a", f"{value}b"]
    elif stack == "gcp" and drop[0] == "aicp:region":
        config = without(config, "aicp:zones")
    cfg, _ = read(aicp_keys(config), {setting: value})
    assert read_back(cfg) == value


def test_agreeing_settings_are_accepted():
    config = stack_config(REPO, "aws")
    cfg, _ = read(aicp_keys(config), {"aws:region": config["aicp:region"]})
    assert cfg.region == config["aicp:region"]


def test_the_planned_aws_provider_builds_in_the_stacks_aws_region():
    config = without(stack_config(REPO, "aws"), "aicp:region")
    config["aicp:zones"] = ["eu-central-1a", "eu-central-1b"]
    config["aws:region"] = "eu-central-1"
    plan = offline.run(program, config, stack="aws")
    [provider] = plan.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "eu-central-1"


def test_a_secret_provider_setting_is_not_compared():
    # A secure value cannot be read before the engine decrypts it: aicp's own key stands.
    config = stack_config(REPO, "aws")
    cfg, _ = read(aicp_keys(config), {"aws:region": {"secure": "AAABA..."}})
    assert cfg.region == config["aicp:region"]
