"""Checklist 1.37 on every target (issue #25): the minor each cloud offers, the sandbox
runtime and its RuntimeClass per target, and every SHOULD served or N/A with the reason.

Each test plans the real program under Pulumi's mocks (``aicp plan``'s engine) and looks at
what Pulumi would send: the pool resources, the RuntimeClass, the stack outputs.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from aicp.cli.conformance import LEVELS
from aicp.cli.plan import describe, run_stack, stack_config
from aicp.stacks.config import ConfigError
from aicp.stacks.program import checked

REPO = Path(__file__).resolve().parents[2]
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"


def example(stack: str, tmp: Path | None = None, **changes) -> dict:
    raw = stack_config(REPO, stack)
    if stack == "onprem" and tmp is not None:
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
        raw["aicp:onprem"] = {**raw["aicp:onprem"], "kubeconfig": str(kubeconfig)}
    raw.update({f"aicp:{k}": v for k, v in changes.items()})
    return raw


def plan(stack: str, tmp: Path | None = None, **changes):
    cfg, run = run_stack(example(stack, tmp, **changes), stack)
    return run, describe(cfg, run, stack)


def config(stack: str, **changes):
    return checked({k.split(":", 1)[1]: v for k, v in example(stack, **changes).items()
                    if k.startswith("aicp:")})


@pytest.fixture(scope="module")
def gcp():
    return plan("gcp")


@pytest.fixture(scope="module")
def azure():
    return plan("azure")


@pytest.fixture(scope="module")
def aws():
    return plan("aws")


# --- the minor each cloud offers --------------------------------------------------------

def test_gke_plans_1_37_on_the_rapid_channel(gcp):
    run, doc = gcp
    assert doc["checklistVersion"] == "1.37"
    cluster = next(r for r in run.resources if r.type == "gcp:container/cluster:Cluster")
    assert cluster.inputs["minMasterVersion"] == "1.37"
    assert cluster.inputs["releaseChannel"] == {"channel": "RAPID"}


def test_gke_1_37_on_another_channel_is_one_line_naming_the_key():
    with pytest.raises(ConfigError) as err:
        config("gcp", gcp={"project": "p", "releaseChannel": "REGULAR"})
    assert str(err.value).startswith("aicp:gcp.releaseChannel: REGULAR does not offer "
                                     "Kubernetes 1.37 yet; set it to RAPID")
    assert "\n" not in str(err.value)


def test_eks_refuses_1_37_in_one_line_and_says_what_it_offers():
    with pytest.raises(ConfigError) as err:
        config("aws", kubernetesVersion="1.37")
    assert str(err.value).startswith("aicp:kubernetesVersion: '1.37' on aws: Amazon EKS "
                                     "does not offer Kubernetes 1.37 yet")
    assert 'use "1.36"' in str(err.value) and "\n" not in str(err.value)


def test_aks_and_on_prem_example_stacks_plan_at_1_37(azure, tmp_path):
    assert azure[1]["checklistVersion"] == "1.37"
    pool = next(r for r in azure[0].resources
                if r.type == "azure-native:containerservice:AgentPool"
                and r.inputs.get("agentPoolName") == "sandbox")
    assert pool.inputs["orchestratorVersion"] == "1.37"
    assert plan("onprem", tmp_path)[1]["checklistVersion"] == "1.37"


def test_k3s_bootstraps_the_1_37_release():
    from aicp.addons.catalog import K3S_VERSIONS
    from aicp.stacks.targets.onprem import args

    cfg = config("onprem", kubernetesVersion="1.37", sshPrivateKey="key", onprem={
        "mode": "k3s", "k3s": {"servers": [{"host": "10.0.0.10"}],
                               "agents": [{"host": "10.0.0.20", "pool": "a100"},
                                          {"host": "10.0.0.21", "pool": "a100"}]}})
    release = args(cfg).k3s
    assert release is not None and release.version == K3S_VERSIONS["1.37"] == "v1.37.0+k3s1"


# --- every 1.37 SHOULD served or N/A with the reason ------------------------------------

@pytest.mark.parametrize("stack", ["gcp", "azure"])
def test_plan_lists_every_1_37_should_served_or_na_with_the_reason(stack, gcp, azure):
    doc = {"gcp": gcp, "azure": azure}[stack][1]
    shoulds = {rid for rid, level in LEVELS["1.37"].items() if level == "SHOULD"}
    assert set(doc["shoulds"]) == shoulds
    assert doc["shoulds"]["workload_sandboxing"] == "served"
    assert doc["shoulds"]["virtualized_accelerator"].startswith("N/A: ")
    assert "passthrough" in doc["shoulds"]["virtualized_accelerator"] \
        or "passed through" in doc["shoulds"]["virtualized_accelerator"]
    assert doc["outputs"]["notApplicable"]["virtualized_accelerator"]


def test_the_table_says_each_should(gcp):
    from aicp.cli.plan import render_table

    text = render_table(gcp[1])
    assert "N/A virtualized_accelerator: GKE's GPU VMs get whole GPUs in passthrough mode" \
        in text
    assert "SHOULD workload_sandboxing: served" in text


# --- the sandbox runtime and its RuntimeClass per target ---------------------------------

def test_gke_runs_a_gvisor_pool_beside_the_system_pool_and_gke_makes_the_class(gcp):
    run, doc = gcp
    pools = {r.inputs["name"]: r for r in run.resources
             if r.type == "gcp:container/nodePool:NodePool"}
    assert "system" in pools  # GKE Sandbox needs a pool without it
    sandbox = pools["sandbox"].inputs
    assert sandbox["nodeConfig"]["sandboxConfig"] == {"type": "gvisor"}
    assert sandbox["nodeConfig"]["imageType"] == "COS_CONTAINERD"
    assert "guestAccelerators" not in sandbox["nodeConfig"]
    assert sandbox["autoscaling"]["totalMinNodeCount"] == 0  # nothing starts on `up`
    # GKE creates RuntimeClass gvisor itself: aicp declares none.
    assert [r for r in run.resources if r.type == RUNTIME_CLASS] == []
    addon = next(r for r in run.resources if r.type == "aicp:addons:Sandbox")
    assert (addon.outputs["runtimeClass"], addon.outputs["handler"],
            addon.outputs["createdBy"]) == ("gvisor", "gvisor", "cloud")
    assert addon.outputs["conformance"] == ["workload_sandboxing"]


def test_aks_runs_kata_on_an_azure_linux_pool_with_nested_virtualization(azure):
    run, _ = azure
    pool = next(r for r in run.resources if r.type == "azure-native:containerservice:AgentPool"
                and r.inputs.get("agentPoolName") == "sandbox").inputs
    assert (pool["osSKU"], pool["workloadRuntime"]) == ("AzureLinux", "KataVmIsolation")
    assert pool["vmSize"] == "Standard_D4s_v5"  # Gen2 Dsv5: nested virtualization
    assert (pool["mode"], pool["minCount"], pool["count"]) == ("User", 0, 0)
    assert [r for r in run.resources if r.type == RUNTIME_CLASS] == []
    addon = next(r for r in run.resources if r.type == "aicp:addons:Sandbox")
    assert (addon.outputs["runtimeClass"], addon.outputs["handler"]) == (
        "kata-vm-isolation", "kata")
    assert addon.outputs["nodeSelector"] == {"kubernetes.azure.com/kata-vm-isolation": "true"}


def test_eks_installs_gvisor_on_a_tainted_group_and_its_runtime_class_lands_there(aws):
    from aicp.addons.catalog import GVISOR_RELEASE

    run, _ = aws
    group = next(r for r in run.resources if r.type == "aws:eks/nodeGroup:NodeGroup"
                 and r.name.endswith("-sandbox")).inputs
    assert group["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["scalingConfig"]["minSize"] == 0
    assert group["taints"] == [{"key": "sandbox.aicp.dev/runtime", "value": "gvisor",
                                "effect": "NO_SCHEDULE"}]
    assert group["labels"]["sandbox.aicp.dev/runtime"] == "gvisor"
    template = next(r for r in run.resources if r.type == "aws:ec2/launchTemplate:LaunchTemplate"
                    and r.name.endswith("-sandbox")).inputs
    user_data = base64.b64decode(template["userData"]).decode()
    assert "Content-Type: application/node.eks.aws" in user_data
    assert "kind: NodeConfig" in user_data
    assert ("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc]"
            in user_data)
    assert 'runtime_type = "io.containerd.runsc.v1"' in user_data
    assert f"/gvisor/releases/release/{GVISOR_RELEASE}/" in user_data
    assert "sha512sum -c" in user_data
    # The RuntimeClass the WG test finds (name gvisor, handler runsc) schedules onto the
    # group: its nodeSelector is the group's label, its toleration the group's taint.
    rc = next(r for r in run.resources if r.type == RUNTIME_CLASS).inputs
    assert (rc["metadata"]["name"], rc["handler"]) == ("gvisor", "runsc")
    assert rc["scheduling"]["nodeSelector"] == {"sandbox.aicp.dev/runtime": "gvisor"}
    assert all(group["labels"][k] == v for k, v in rc["scheduling"]["nodeSelector"].items())
    assert rc["scheduling"]["tolerations"] == [{
        "key": "sandbox.aicp.dev/runtime", "operator": "Equal", "value": "gvisor",
        "effect": "NoSchedule"}]
    # cluster-autoscaler can wake the group from zero: its template knows label and taint.
    tags = {r.inputs["tag"]["key"]: r.inputs["tag"]["value"] for r in run.resources
            if r.type == "aws:autoscaling/tag:Tag" and "-sandbox" in r.name}
    assert tags["k8s.io/cluster-autoscaler/node-template/taint/sandbox.aicp.dev/runtime"] \
        == "gvisor:NoSchedule"
    assert tags["k8s.io/cluster-autoscaler/node-template/label/sandbox.aicp.dev/runtime"] \
        == "gvisor"


def test_sandbox_off_builds_no_pool_and_serves_nothing():
    run, doc = plan("gcp", addons={"sandbox": {"enabled": False}})
    assert not [r for r in run.resources if r.type == "gcp:container/nodePool:NodePool"
                and r.inputs["name"] == "sandbox"]
    assert doc["shoulds"]["workload_sandboxing"] == "not served"


K3S = {"mode": "k3s", "k3s": {"servers": [{"host": "10.0.0.10"}],
                              "agents": [{"host": "10.0.0.20", "pool": "a100"},
                                         {"host": "10.0.0.21", "pool": "a100"}]}}


def test_k3s_servers_get_gvisor_in_the_containerd_template_and_the_class_selects_them():
    from aicp.addons.catalog import GVISOR_RELEASE

    run, doc = plan("onprem", sshPrivateKey="key", onprem=K3S)
    commands = [r for r in run.resources if r.type == "command:remote:Command"
                and "-gvisor-" in r.name]
    assert len(commands) == 1  # the one server; never the GPU agents
    script = commands[0].inputs["create"]
    assert "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl" in script
    # What the shell writes to the template: the printf argument, parsed as sh parses it.
    write = script[script.rindex("printf '%s' "):script.index(' | tee "$tmpl"')]
    template = shlex.split(write)[2]
    assert template.startswith('{{ template "base" . }}\n')
    assert ("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc]\n"
            '  runtime_type = "io.containerd.runsc.v1"') in template
    assert f"/gvisor/releases/release/{GVISOR_RELEASE}/" in script
    assert "systemctl restart k3s" in script
    assert "was not written by aicp" in script  # never overwrites another template
    server = next(r for r in run.resources if r.type == "command:remote:Command"
                  and r.name.endswith("-server-0"))
    assert server.urn in commands[0].dependencies
    rc = next(r for r in run.resources if r.type == RUNTIME_CLASS).inputs
    assert (rc["metadata"]["name"], rc["handler"]) == ("gvisor", "runsc")
    assert rc["scheduling"]["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}
    assert doc["shoulds"]["workload_sandboxing"] == "served"


def test_no_k3s_sandbox_when_a_server_is_a_gpu_node():
    servers = {"mode": "k3s", "k3s": {"servers": [{"host": "10.0.0.10", "pool": "a100"},
                                                  {"host": "10.0.0.11", "pool": "a100"}]}}
    run, doc = plan("onprem", sshPrivateKey="key", onprem=servers)
    assert not [r for r in run.resources if r.type == "command:remote:Command"
                and "-gvisor-" in r.name]
    assert [r for r in run.resources if r.type == RUNTIME_CLASS] == []
    assert doc["shoulds"]["workload_sandboxing"] == "not served"
