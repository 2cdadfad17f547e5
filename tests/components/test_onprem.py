"""The on-prem target: GPU nodes labelled on a cluster you run, or k3s bootstrapped over SSH."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.errors import InputPropertyError

from aicp.addons.catalog import K3S_INSTALLER_SHA256, K3S_INSTALLER_URL, K3S_VERSIONS
from aicp.cli import offline
from aicp.components.contract import (
    CONFORMANCE_OUTPUT,
    LABEL_ALLOCATOR,
    LABEL_DEVICE_PLUGIN,
    LABEL_POOL,
    GpuPoolRequest,
)
from aicp.components.onprem import (
    FIELD_MANAGER,
    OnPremCluster,
    OnPremClusterArgs,
    validate,
)
from aicp.components.onprem_k3s import K3sHost, K3sRelease
from aicp.stacks.targets import onprem as target
from aicp.stacks.targets.base import message
from tests.schemas import Validator

REPO = Path(__file__).resolve().parents[2]
PATCH = "kubernetes:core/v1:NodePatch"
PROVIDER = "pulumi:providers:kubernetes"
COMMAND = "command:remote:Command"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nplan\n-----END OPENSSH PRIVATE KEY-----\n"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://10.0.0.1:6443"}
contexts:
- name: lab-admin
  context: {cluster: lab, user: admin}
- name: lab-ops
  context: {cluster: lab, user: ops}
current-context: lab-ops
users:
- name: admin
  user: {token: secret-admin}
- name: ops
  user: {token: secret-ops}
"""

A100 = GpuPoolRequest(name="a100", accelerator="a100", min_nodes=2, max_nodes=2,
                      gpus_per_node=8, allocator="dra")
L40S = GpuPoolRequest(name="l40s", accelerator="l40s", min_nodes=1, max_nodes=3,
                      gpus_per_node=4, allocator="device-plugin")


def existing_args(kubeconfig: Path | None, **changes: Any) -> OnPremClusterArgs:
    args = OnPremClusterArgs(
        cluster_name="lab", kubernetes_version="1.35", gpu_pools=(A100, L40S),
        mode="existing", kubeconfig_path=str(kubeconfig) if kubeconfig else None,
        context="lab-admin",
        gpu_nodes={"a100": ("gpu-0", "gpu-1"), "l40s": ("gpu-2",)})
    return dataclasses.replace(args, **changes)


def release(minor: str) -> K3sRelease | None:
    """What the stack hands the component: the catalog's k3s pin for the minor."""
    if minor not in K3S_VERSIONS:
        return None
    return K3sRelease(K3S_VERSIONS[minor], K3S_INSTALLER_URL, K3S_INSTALLER_SHA256)


def on_minor(args: OnPremClusterArgs, minor: str) -> OnPremClusterArgs:
    return dataclasses.replace(args, kubernetes_version=minor, k3s=release(minor))


K3S = OnPremClusterArgs(
    cluster_name="lab", kubernetes_version="1.35", gpu_pools=(A100, L40S), mode="k3s",
    servers=(K3sHost("10.0.0.10"), K3sHost("10.0.0.11", user="ubuntu"),
             K3sHost("10.0.0.12")),
    agents=(K3sHost("10.0.0.20", pool="a100"), K3sHost("10.0.0.21", pool="a100"),
            K3sHost("gpu-l40s.lab.example", user="ubuntu", pool="l40s"),
            K3sHost("10.0.0.30")),
    k3s=release("1.35"))


def build(args: OnPremClusterArgs, config: dict[str, Any] | None = None
          ) -> tuple[offline.Plan, dict[str, Any]]:
    seen: dict[str, Any] = {}

    def program() -> None:
        cluster = OnPremCluster("onprem", args)
        seen["outputs"] = cluster.outputs
        pulumi.export("kubeconfig", cluster.outputs.kubeconfig)
        # Test-only: the text the provider and `aicp verify` receive.
        pulumi.export("kubeconfigText", pulumi.Output.unsecret(cluster.outputs.kubeconfig))

    return offline.run(program, config or {}), seen


@pytest.fixture(scope="module")
def kubeconfig_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(KUBECONFIG)
    return path


@pytest.fixture(scope="module")
def existing(kubeconfig_file) -> tuple[offline.Plan, dict[str, Any]]:
    return build(existing_args(kubeconfig_file))


@pytest.fixture(scope="module")
def k3s() -> tuple[offline.Plan, dict[str, Any]]:
    return build(K3S, {"aicp:sshPrivateKey": SSH_KEY})


def patches(plan: offline.Plan) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in plan.of_type(PATCH)}


def command(plan: offline.Plan, name: str) -> offline.Resource:
    return plan.one(COMMAND, f"onprem-{name}")


# --- existing cluster ----------------------------------------------------------------------

def test_only_the_nodes_named_in_config_are_patched(existing):
    plan, _ = existing
    assert set(patches(plan)) == {"gpu-0", "gpu-1", "gpu-2"}


def test_gpu_nodes_get_their_pool_labels_and_allocator_switch(existing):
    nodes = patches(existing[0])
    for name in ("gpu-0", "gpu-1"):
        labels = nodes[name]["metadata"]["labels"]
        assert labels[LABEL_POOL] == "a100" and labels[LABEL_ALLOCATOR] == "dra"
        # DRA pool: the GPU Operator's device plugin stays off these nodes.
        assert labels[LABEL_DEVICE_PLUGIN] == "false"
        assert labels["nvidia.com/gpu.present"] == "true"
    l40s = nodes["gpu-2"]["metadata"]["labels"]
    assert l40s[LABEL_POOL] == "l40s" and l40s[LABEL_ALLOCATOR] == "device-plugin"
    assert LABEL_DEVICE_PLUGIN not in l40s


def test_gpu_nodes_are_tainted_so_cpu_pods_stay_off(existing):
    for inputs in patches(existing[0]).values():
        assert inputs["spec"] == {"taints": [
            {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}


def test_node_patches_touch_only_labels_and_taints_under_one_field_manager(existing):
    for inputs in patches(existing[0]).values():
        assert set(inputs) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(inputs["metadata"]) == {"name", "labels", "annotations"}
        # Taints are an atomic list: the apply must be forced to take it over.
        assert inputs["metadata"]["annotations"] == {
            "pulumi.com/patchForce": "true", "pulumi.com/patchFieldManager": FIELD_MANAGER}


def test_node_patches_validate_against_the_node_schema(existing):
    validator = Validator("1.35")
    for inputs in patches(existing[0]).values():
        errors = [e for e in validator.errors(inputs) if "is a required property" not in e]
        assert errors == []


def test_node_patches_go_through_the_cluster_provider(existing):
    plan, _ = existing
    provider = plan.one(PROVIDER)
    for r in plan.of_type(PATCH):
        assert r.provider.startswith(provider.urn)


def test_provider_gets_the_kubeconfig_as_a_secret_and_the_context(existing):
    provider = existing[0].one(PROVIDER)
    assert "kubeconfig" in provider.secret_paths
    assert provider.inputs["context"] == "lab-admin"


def test_exported_kubeconfig_is_secret_and_opens_the_configured_context(existing):
    plan, _ = existing
    assert "kubeconfig" in plan.secret_outputs
    doc = yaml.safe_load(plan.outputs["kubeconfigText"])
    assert doc["current-context"] == "lab-admin"
    assert doc["users"][0]["user"]["token"] == "secret-admin"


def test_secret_config_key_stands_in_for_a_kubeconfig_file():
    plan, _ = build(existing_args(None, context=None), {"aicp:kubeconfig": KUBECONFIG})
    assert "kubeconfig" in plan.one(PROVIDER).secret_paths
    assert plan.outputs["kubeconfigText"] == KUBECONFIG


def test_gpu_operator_owns_the_driver_by_default(existing):
    driver = existing[1]["outputs"].gpu_driver
    assert (driver.owner, driver.root) == ("operator", "/run/nvidia/driver")
    assert driver.operator_values["driver"]["enabled"] is True


def test_host_driver_roots_at_slash(kubeconfig_file):
    _, seen = build(existing_args(kubeconfig_file, gpu_driver="host"))
    driver = seen["outputs"].gpu_driver
    assert (driver.owner, driver.root) == ("host", "/")
    assert driver.operator_values["driver"]["enabled"] is False


def test_no_cluster_autoscaler_on_prem_and_it_says_why(existing):
    plan, seen = existing
    out = seen["outputs"]
    assert out.autoscaler == "none" and out.autoscaler_values == {}
    component = plan.one("aicp:onprem:Cluster")
    assert component.outputs[CONFORMANCE_OUTPUT] == []
    assert "autoscal" in component.outputs["notApplicable"]["cluster_autoscaling"]


def test_pools_report_the_configured_gpus_per_node(existing):
    pools = {p.name: p for p in existing[1]["outputs"].gpu_pools}
    assert pools["a100"].gpus_per_node == 8 and pools["a100"].product == "NVIDIA-A100-SXM4-80GB"
    assert (pools["a100"].min_nodes, pools["a100"].max_nodes) == (2, 2)


def test_addons_wait_for_the_gpu_labels(existing):
    plan, seen = existing
    ready = {r._name for r in seen["outputs"].ready}  # noqa: SLF001
    assert ready == {r.name for r in plan.of_type(PATCH)}


def test_a_missing_kubeconfig_file_names_the_key(tmp_path):
    with pytest.raises(InputPropertyError) as err:
        build(existing_args(tmp_path / "absent"))
    assert err.value.property_path == "kubeconfig_path"
    assert message(err.value, target.KEYS).startswith("aicp:onprem.kubeconfig: no file at")


# --- k3s bootstrap -------------------------------------------------------------------------

def test_every_host_installs_the_pinned_k3s_for_the_kubernetes_minor(k3s):
    plan, _ = k3s
    installs = [r for r in plan.of_type(COMMAND) if "install.sh" in r.inputs.get("create", "")]
    assert len(installs) == 7
    for r in installs:
        create = r.inputs["create"]
        assert f"INSTALL_K3S_VERSION={K3S_VERSIONS['1.35']}" in create
        assert K3S_INSTALLER_URL in create and "get.k3s.io" not in create
        # Checked before it runs; set -eu stops the script on a mismatch.
        assert f"printf '%s  %s\\n' {K3S_INSTALLER_SHA256} \"$installer\" | sha256sum -c -" \
            in create
        assert create.startswith("set -eu\n")


def test_install_is_skipped_when_that_version_and_those_flags_are_there(k3s):
    create = command(k3s[0], "agent-0").inputs["create"]
    guard = create.splitlines()[1]
    assert "k3s --version | grep -qF 'k3s version v1.35.8+k3s1 '" in guard
    assert "/etc/rancher/k3s/aicp-install" in guard
    assert create.splitlines()[2].strip().endswith("exit 0")
    # The stamp the guard looks for is written only after a successful install.
    assert create.rstrip().splitlines()[-1].startswith("echo 'v1.35.8+k3s1 ")


def test_install_scripts_are_valid_shell(k3s):
    for r in k3s[0].of_type(COMMAND):
        for key in ("create", "delete"):
            if r.inputs.get(key):
                subprocess.run(["sh", "-n", "-c", r.inputs[key]], check=True)


def test_first_server_initialises_embedded_etcd_hardened(k3s):
    create = command(k3s[0], "server-0").inputs["create"]
    flags = create.split('sh "$installer" ', 1)[1].splitlines()[0].split()
    assert flags[:2] == ["server", "--cluster-init"]
    for flag in ("--disable=traefik", "--secrets-encryption", "--write-kubeconfig-mode=600",
                 "--tls-san=10.0.0.10"):
        assert flag in flags
    assert "--server" not in create and "--token-file" not in create


def test_further_servers_join_the_first_one_by_one(k3s):
    plan, _ = k3s
    s1, s2 = command(plan, "server-1"), command(plan, "server-2")
    assert "--server=https://10.0.0.10:6443" in s1.inputs["create"]
    assert "--tls-san=10.0.0.11" in s1.inputs["create"]
    assert "--secrets-encryption" in s2.inputs["create"]
    assert plan.depends_on(s2, s1) and plan.depends_on(s1, command(plan, "server-0"))
    # Not root: sudo without a password prompt.
    assert "sudo -n env INSTALL_K3S_VERSION" in s1.inputs["create"]


def test_agents_join_with_their_pool_labels_and_the_gpu_taint(k3s):
    plan, _ = k3s
    a100 = command(plan, "agent-0").inputs["create"]
    for flag in ("agent", "--server=https://10.0.0.10:6443",
                 "--token-file=/etc/rancher/k3s/aicp-token",
                 "--node-label=aicp.dev/gpu-pool=a100",
                 "--node-label=aicp.dev/gpu-allocator=dra",
                 "--node-label=nvidia.com/gpu.deploy.device-plugin=false",
                 "--node-taint=nvidia.com/gpu=present:NoSchedule"):
        assert flag in a100.split()
    l40s = command(plan, "agent-2").inputs["create"]
    assert "--node-label=aicp.dev/gpu-pool=l40s" in l40s
    assert "gpu.deploy.device-plugin" not in l40s
    cpu = command(plan, "agent-3").inputs["create"]
    assert "--node-label" not in cpu and "--node-taint" not in cpu


def test_agents_wait_for_every_server(k3s):
    plan, _ = k3s
    for i in range(4):
        for s in range(3):
            assert plan.depends_on(command(plan, f"agent-{i}"), command(plan, f"server-{s}"))


def test_join_token_is_read_from_the_first_server_and_kept_secret(k3s):
    plan, _ = k3s
    reader = command(plan, "token")
    assert reader.inputs["create"].strip() == "cat /var/lib/rancher/k3s/server/node-token"
    assert plan.depends_on(reader, command(plan, "server-0"))
    for name in ("server-1", "server-2", "agent-0", "agent-3"):
        r = command(plan, name)
        # On stdin into a root-only file: never on a command line.
        assert "stdin" in r.secret_paths
        assert "K10plan" not in r.inputs["create"]
        assert "umask 077; cat > /etc/rancher/k3s/aicp-token" in r.inputs["create"]


def test_ssh_private_key_stays_secret(k3s):
    for r in k3s[0].of_type(COMMAND):
        assert "connection" in r.secret_paths
        assert SSH_KEY not in str(r.inputs)


def test_kubeconfig_points_at_the_first_server_and_is_secret(k3s):
    plan, _ = k3s
    assert "kubeconfig" in plan.secret_outputs
    text = plan.outputs["kubeconfigText"]
    assert "server: https://10.0.0.10:6443" in text and "127.0.0.1" not in text
    assert "kubeconfig" in plan.one(PROVIDER).secret_paths


def test_provider_waits_for_the_nodes(k3s):
    plan, _ = k3s
    provider = plan.one(PROVIDER)
    for name in ("server-0", "server-2", "agent-3"):
        assert plan.depends_on(provider, command(plan, name))


def test_deleting_a_host_uninstalls_k3s(k3s):
    plan, _ = k3s
    assert command(plan, "server-0").inputs["delete"].strip() == \
        "if [ -x /usr/local/bin/k3s-uninstall.sh ]; then /usr/local/bin/k3s-uninstall.sh; fi"
    assert "sudo -n /usr/local/bin/k3s-agent-uninstall.sh" in \
        command(plan, "agent-2").inputs["delete"]
    assert "delete" not in command(plan, "token").inputs


def test_only_a_new_host_replaces_a_node(k3s):
    plan, _ = k3s
    assert command(plan, "agent-2").inputs["triggers"] == ["gpu-l40s.lab.example"]


def test_k3s_contract(k3s):
    plan, seen = k3s
    out = seen["outputs"]
    assert out.target == "onprem" and out.autoscaler == "none"
    assert {p.name for p in out.gpu_pools} == {"a100", "l40s"}
    assert plan.one("aicp:onprem:Cluster").outputs[CONFORMANCE_OUTPUT] == []


def test_k3s_minor_follows_kubernetes_version():
    plan, _ = build(on_minor(K3S, "1.36"),
                    {"aicp:sshPrivateKey": SSH_KEY})
    assert "INSTALL_K3S_VERSION=v1.36.4+k3s1" in command(plan, "server-0").inputs["create"]


def test_ssh_key_config_key_can_be_renamed():
    args = dataclasses.replace(K3S, ssh_private_key_key="lab:deployKey")
    plan, _ = build(args, {"lab:deployKey": SSH_KEY})
    assert "connection" in command(plan, "server-0").secret_paths


# --- config errors -------------------------------------------------------------------------

def bad(args: OnPremClusterArgs) -> str:
    """The refusal as the stack reports it: the target names the component's path by its
    config key."""
    with pytest.raises(InputPropertyError) as err:
        validate(args)
    return message(err.value, target.KEYS)


def test_a_pool_without_nodes_is_refused():
    msg = bad(existing_args(None, gpu_nodes={"a100": ("gpu-0", "gpu-1")}))
    assert msg.startswith("aicp:onprem.gpuNodes.l40s: list at least one node")


def test_a_node_in_two_pools_is_refused():
    msg = bad(existing_args(None, gpu_nodes={"a100": ("gpu-0", "gpu-1"),
                                             "l40s": ("gpu-1",)}))
    assert msg.startswith("aicp:onprem.gpuNodes.l40s: node 'gpu-1' is listed also in pool "
                          "'a100'")


def test_nodes_for_an_unknown_pool_are_refused():
    msg = bad(existing_args(None, gpu_nodes={"a100": ("gpu-0", "gpu-1"), "l40s": ("gpu-2",),
                                             "h100": ("gpu-9",)}))
    assert msg.startswith("aicp:onprem.gpuNodes.h100: no GPU pool is named 'h100'")


def test_node_count_must_fit_the_pool_size():
    msg = bad(existing_args(None, gpu_nodes={"a100": ("gpu-0",), "l40s": ("gpu-2",)}))
    assert msg.startswith("aicp:onprem.gpuNodes.a100: 1 node(s) in GPU pool 'a100', outside")


def test_an_agent_in_an_unconfigured_pool_is_refused():
    args = dataclasses.replace(K3S, agents=(*K3S.agents, K3sHost("10.0.0.40", pool="h100")))
    assert bad(args).startswith(
        "aicp:onprem.k3s.agents[4].pool: 'h100' is not a GPU pool; pools: a100, l40s")


def test_a_pool_with_no_k3s_host_is_refused():
    args = dataclasses.replace(K3S, agents=K3S.agents[:2])
    assert bad(args).startswith("aicp:gpuPools[1]: GPU pool 'l40s' has no host")


def test_a_host_that_is_not_a_host_name_never_reaches_a_shell():
    args = dataclasses.replace(K3S, agents=(K3sHost("gpu;rm -rf /", pool="a100"),))
    assert bad(args).startswith("aicp:onprem.k3s.agents[0].host: 'gpu;rm -rf /' is not")


def test_a_host_listed_twice_is_refused():
    args = dataclasses.replace(K3S, agents=(*K3S.agents, K3sHost("10.0.0.10")))
    assert bad(args).startswith("aicp:onprem.k3s.agents[4].host: '10.0.0.10' is listed twice")


def test_k3s_needs_a_server_and_a_pinned_minor():
    assert bad(dataclasses.replace(K3S, servers=())).startswith("aicp:onprem.k3s.servers:")
    assert bad(on_minor(K3S, "1.33")).startswith(
        "aicp:kubernetesVersion: '1.33' has no pinned k3s release")
    mismatch = dataclasses.replace(K3S, kubernetes_version="1.36")
    assert bad(mismatch) == ("aicp:kubernetesVersion: '1.36', but k3s v1.35.8+k3s1 carries "
                             "Kubernetes 1.35")


def test_the_catalog_pins_one_k3s_patch_per_supported_minor():
    from aicp.addons.catalog import KUBERNETES

    assert set(K3S_VERSIONS) == set(KUBERNETES)
    for minor in KUBERNETES:
        assert release(minor).minor == minor
        assert K3S_VERSIONS[minor].endswith("+k3s1")
    assert K3S_INSTALLER_URL.startswith("https://raw.githubusercontent.com/k3s-io/k3s/v")
    assert len(K3S_INSTALLER_SHA256) == 64


def test_config_errors_come_before_any_resource(tmp_path):
    with pytest.raises(InputPropertyError) as err:
        build(existing_args(None, gpu_nodes={"a100": ("gpu-0", "gpu-1")}))
    assert err.value.property_path == 'gpu_nodes["l40s"]'


# --- the example stack ---------------------------------------------------------------------

def test_example_stack_parses_and_passes_the_target_checks():
    from aicp.stacks.config import parse

    raw = yaml.safe_load((REPO / "Pulumi.onprem.yaml").read_text())["config"]
    cfg = parse({k.split(":", 1)[1]: v for k, v in raw.items()})
    assert cfg.target == "onprem" and cfg.onprem is not None
    on = cfg.onprem
    args = OnPremClusterArgs(
        cluster_name=cfg.cluster_name, kubernetes_version=cfg.kubernetes_version,
        gpu_pools=tuple(GpuPoolRequest(
            name=p.name, accelerator=p.accelerator, min_nodes=p.min_nodes,
            max_nodes=p.max_nodes, allocator=p.allocator, gpus_per_node=p.gpus_per_node)
            for p in cfg.gpu_pools),
        mode=on.mode, kubeconfig_path=on.kubeconfig, context=on.context,
        gpu_nodes=dict(on.gpu_nodes),
        gpu_driver=cfg.addons.gpu_operator.driver or "operator")
    validate(args)
    assert args.gpu_nodes == {"a100": ("gpu-0", "gpu-1")}


def _run_on_fake_host(script: str, host: Path, stdin: str = "") -> str:
    """Run an install script against a stand-in host: k3s, curl, sudo are fakes, and
    /etc/rancher/k3s lives under ``host``. Returns what the fakes logged."""
    bin_dir, etc = host / "bin", host / "etc"
    bin_dir.mkdir(exist_ok=True)
    etc.mkdir(exist_ok=True)
    log = host / "log"
    fakes = {
        "k3s": f'[ -f {host}/installed ] && echo "k3s version $(cat {host}/installed) (abc)"',
        "curl": f'echo "curl $*" >> {log}; while [ "$1" != -o ]; do shift; done; '
                f"printf 'echo \"install $*\" >> {log}; "
                f"echo $INSTALL_K3S_VERSION > {host}/installed\\n' > \"$2\"",
        "sha256sum": f'echo "sha256sum $(cat)" >> {log}',
        "sudo": '[ "$1" = -n ] && shift; exec "$@"',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    script = script.replace("/etc/rancher/k3s", str(etc))
    subprocess.run(["sh", "-c", script], input=stdin, text=True, check=True,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return log.read_text() if log.exists() else ""


def test_second_run_on_an_installed_host_changes_nothing(k3s, tmp_path):
    r = command(k3s[0], "agent-2")  # a non-root user: through sudo -n
    first = _run_on_fake_host(r.inputs["create"], tmp_path, stdin="K10token\n")
    assert "install agent --server=https://10.0.0.10:6443" in first
    assert (tmp_path / "etc" / "aicp-token").read_text() == "K10token\n"
    assert oct((tmp_path / "etc" / "aicp-token").stat().st_mode & 0o777) == "0o600"
    again = _run_on_fake_host(r.inputs["create"], tmp_path)
    assert again == first  # nothing downloaded, nothing installed


def test_a_version_bump_reinstalls_in_place(k3s, tmp_path):
    plan, _ = k3s
    _run_on_fake_host(command(plan, "server-0").inputs["create"], tmp_path)
    newer, _ = build(on_minor(K3S, "1.36"),
                     {"aicp:sshPrivateKey": SSH_KEY})
    log = _run_on_fake_host(command(newer, "server-0").inputs["create"], tmp_path)
    assert log.count("install server --cluster-init") == 2
    assert (tmp_path / "installed").read_text().strip() == "v1.36.4+k3s1"


# --- the NVIDIA runtime must register with k3s's own containerd ------------------

def test_on_k3s_the_operator_toolkit_edits_k3s_containerd_not_the_system_one(k3s):
    # NVIDIA GPU Operator getting started (RKE2/k3s): toolkit.env CONTAINERD_CONFIG and
    # CONTAINERD_SOCKET point at k3s's template and socket; with containerd 2 k3s reads
    # config-v3.toml.tmpl (k3s-io/k3s pkg/agent/containerd/config.go).
    env = {e["name"]: e["value"]
           for e in k3s[1]["outputs"].gpu_driver.operator_values["toolkit"]["env"]}
    assert env["CONTAINERD_CONFIG"] == \
        "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl"
    assert env["CONTAINERD_SOCKET"] == "/run/k3s/containerd/containerd.sock"
    assert env["CONTAINERD_RUNTIME_CLASS"] == "nvidia"
    assert k3s[1]["outputs"].gpu_driver.operator_values["operator"]["runtimeClass"] == "nvidia"


def test_k3s_toolkit_values_exist_in_the_pinned_gpu_operator_chart(k3s):
    from tests.charts import unknown_value_paths, upstream_values
    values = k3s[1]["outputs"].gpu_driver.operator_values
    assert unknown_value_paths(values, upstream_values("gpu-operator-v26.7.0")) == []


def test_an_existing_cluster_keeps_the_toolkit_defaults(existing):
    toolkit = existing[1]["outputs"].gpu_driver.operator_values["toolkit"]
    assert "env" not in toolkit  # kubeadm-style hosts: /etc/containerd, /run/containerd


def test_k3s_hosts_with_their_own_toolkit_get_no_toolkit_env():
    _, seen = build(dataclasses.replace(K3S, gpu_driver="host"),
                    {"aicp:sshPrivateKey": SSH_KEY})
    assert seen["outputs"].gpu_driver.operator_values["toolkit"] == {"enabled": False}


def test_bootstrapping_k3s_raises_no_deprecation_warning_of_pulumi_command():
    # pulumi-command 1.2.1 warns about its deprecated CopyFile as soon as pulumi_command.remote
    # is imported, which happens once per process: a fresh one, where that warning fails.
    script = ("from tests.components.test_onprem import K3S, SSH_KEY, build\n"
              "plan, _ = build(K3S, {'aicp:sshPrivateKey': SSH_KEY})\n"
              "assert plan.of_type('command:remote:Command')\n")
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:pulumi_command.remote.copy_file",
         "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
