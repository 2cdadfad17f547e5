"""`pulumi up` reads config through the same model and target checks: stacks/program.py
``configured`` (config.from_pulumi, then ``read``).

The engine hands the program every config value as text, secrets decrypted and marked
secret (pulumi/runtime/config.py ``set_all_config(config, secret_keys)``). These tests set
config exactly so, run the real program under Pulumi's mocks, and check that k3s and the
documented secrets hold there as they do for ``aicp plan``.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.runtime.config import set_all_config

from aicp.cli import offline
from aicp.stacks.config import ConfigError, PlatformConfig
from aicp.stacks.program import configured
from aicp.stacks.program import main as program

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
KUBECONFIG = json.dumps({  # a kubeconfig may be JSON: it must reach the provider as written
    "apiVersion": "v1", "kind": "Config", "current-context": "lab",
    "clusters": [{"name": "lab", "cluster": {"server": "https://10.0.0.10:6443"}}],
    "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
    "users": [{"name": "admin", "user": {"token": "t"}}]})

BASE: dict[str, Any] = {
    "aicp:target": "onprem", "aicp:clusterName": "lab", "aicp:kubernetesVersion": "1.35",
    "aicp:gpuPools": [{"name": "a100", "accelerator": "a100", "gpusPerNode": 8,
                       "minNodes": 2, "maxNodes": 2, "allocator": "dra"}],
}
K3S = {**BASE, "aicp:onprem": {"mode": "k3s", "k3s": {
    "servers": [{"host": "10.0.0.10", "user": "ubuntu"}],
    "agents": [{"host": "10.0.0.20", "pool": "a100"}, {"host": "10.0.0.21", "pool": "a100"}]}}}
EXISTING = {**BASE, "aicp:onprem": {"mode": "existing", "context": "lab",
                                    "gpuNodes": {"a100": ["gpu-0", "gpu-1"]}}}


def from_pulumi() -> PlatformConfig:
    """The config the running program was given, checked as ``pulumi up`` checks it."""
    return configured()[0]


def engine_config(config: dict[str, Any], secrets: dict[str, str]) -> None:
    """Config as the Pulumi engine hands it to the program: text, secrets marked."""
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    set_all_config({**values, **secrets}, list(secrets))


def up(config: dict[str, Any], secrets: dict[str, str]) -> offline.Plan:
    def program_as_the_engine_runs_it() -> None:
        engine_config(config, secrets)
        program()

    return offline.run(program_as_the_engine_runs_it, {**config, **secrets}, stack="lab")


def test_from_pulumi_reads_k3s_and_the_secret_ssh_key():
    engine_config(K3S, {"aicp:sshPrivateKey": KEY})
    cfg = from_pulumi()
    assert cfg.onprem is not None and cfg.onprem.k3s is not None
    assert [h.host for h in cfg.onprem.k3s.agents] == ["10.0.0.20", "10.0.0.21"]
    assert KEY not in repr(cfg)  # the model keeps no secret


def test_from_pulumi_without_the_ssh_key_is_one_line_not_pulumis_two():
    engine_config(K3S, {})
    with pytest.raises(ConfigError) as err:
        from_pulumi()
    assert str(err.value) == (
        "aicp:sshPrivateKey: required for aicp:onprem.mode k3s (the SSH private key of the "
        "hosts); set it with: pulumi config set --secret aicp:sshPrivateKey < "
        "~/.ssh/id_ed25519")


def test_from_pulumi_reads_an_ssh_key_held_in_another_namespace():
    config = {**K3S, "aicp:onprem": {**K3S["aicp:onprem"], "k3s": {
        **K3S["aicp:onprem"]["k3s"], "sshPrivateKeyKey": "lab:deployKey"}}}
    engine_config(config, {"lab:deployKey": KEY})
    assert from_pulumi().target == "onprem"
    engine_config(config, {"aicp:sshPrivateKey": KEY})  # the default key is not the one named
    with pytest.raises(ConfigError, match=r"^lab:deployKey: required for aicp:onprem.mode k3s"):
        from_pulumi()


def test_up_bootstraps_k3s_with_the_secret_key_on_every_connection():
    plan = up(K3S, {"aicp:sshPrivateKey": KEY})
    commands = plan.of_type("command:remote:Command")
    assert len(commands) >= 3  # server, two agents (and the readers)
    for command in commands:
        # The SDK marks the whole connection secret once one field in it is.
        assert {"connection", "connection.privateKey"} & set(command.secret_paths), command.name
        assert KEY not in json.dumps(command.inputs)
    assert "kubeconfig" in plan.secret_outputs


def test_up_without_the_ssh_key_stops_with_one_line():
    with pytest.raises(pulumi.RunError) as err:
        up(K3S, {})
    assert str(err.value).startswith("aicp:sshPrivateKey: required for aicp:onprem.mode k3s")
    assert "\n" not in str(err.value)


def test_up_reads_the_secret_kubeconfig_of_an_existing_cluster():
    plan = up(EXISTING, {"aicp:kubeconfig": KUBECONFIG})
    provider = plan.one("pulumi:providers:kubernetes", "lab-k8s")
    assert "kubeconfig" in provider.secret_paths
    assert provider.inputs["context"] == "lab"
    assert {r.name for r in plan.of_type("kubernetes:core/v1:NodePatch")} == {
        "lab-node-gpu-0", "lab-node-gpu-1"}


@pytest.mark.parametrize("secrets,expected", [
    ({}, "aicp:kubeconfig: required when aicp:onprem.kubeconfig is not given; set it with: "
         "pulumi config set --secret aicp:kubeconfig \"$(cat kubeconfig)\", or give "
         "aicp:onprem.kubeconfig: <path>"),
    ({"aicp:kubeconfig": "clusters: ["},
     "aicp:kubeconfig: not a kubeconfig: not valid YAML at line 1 (expected the node content, "
     "but found '<stream end>')"),
    ({"aicp:kubeconfig": KUBECONFIG.replace('"name": "lab", "context"', '"name": "x", '
                                            '"context"')},
     "aicp:onprem.context: 'lab' is not a context of aicp:kubeconfig; it has x"),
])
def test_up_refuses_a_missing_or_broken_secret_kubeconfig_in_one_line(secrets, expected):
    with pytest.raises(pulumi.RunError) as err:
        up(EXISTING, secrets)
    assert str(err.value) == expected
