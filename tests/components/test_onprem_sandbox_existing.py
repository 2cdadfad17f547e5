"""workload_sandboxing on an existing on-prem cluster (issue #25): gVisor on the CPU nodes
named in ``aicp:onprem.sandbox.nodes``, installed by a DaemonSet, with a RuntimeClass whose
``scheduling`` lands pods there.

The plan tests read what Pulumi would send under mocks. The script tests run the installer's
host script itself (bash) against containerd config files of both versions in a temporary
directory, with ``systemctl`` and ``runsc`` stubbed, and read what it wrote.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from aicp.addons.catalog import GVISOR_RELEASE, IMAGES
from aicp.components import gvisor
from aicp.stacks.config import ConfigError
from tests.stacks.test_k137 import config, plan

NODE_PATCH = "kubernetes:core/v1:NodePatch"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"
LABEL = {"aicp.dev/sandbox": "gvisor"}


def _onprem(tmp_path, **extra) -> dict:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    return {"mode": "existing", "kubeconfig": str(kubeconfig),
            "gpuNodes": {"a100": ["gpu-0", "gpu-1"]}, **extra}


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    return plan("onprem", tmp, onprem=_onprem(tmp, sandbox={"nodes": ["cpu-0", "cpu-1"]}))


def test_the_named_nodes_are_labelled_and_nothing_else(sandboxed):
    run, _ = sandboxed
    patches = {r.inputs["metadata"]["name"]: r.inputs for r in run.resources
               if r.type == NODE_PATCH and r.name.startswith("aicp-onprem-sandbox-node-")}
    assert set(patches) == {"cpu-0", "cpu-1"}
    for patch in patches.values():
        assert patch["metadata"]["labels"] == LABEL
        assert "spec" not in patch  # no taints replaced on your nodes


def test_a_daemon_set_installs_gvisor_through_the_host(sandboxed):
    run, _ = sandboxed
    ds = next(r for r in run.resources if r.type == DAEMON_SET
              and r.inputs["metadata"]["name"] == "aicp-gvisor-installer")
    pod = ds.inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == LABEL and pod["hostPID"] is True
    (init,) = pod["initContainers"]
    assert init["image"] == IMAGES["gvisor-installer"]
    assert init["securityContext"]["privileged"] is True
    assert init["command"][:3] == ["nsenter", "--target", "1"]
    assert init["command"][-1] == gvisor.existing_script(GVISOR_RELEASE)
    assert [c["image"] for c in pod["containers"]] == [IMAGES["pause"]]
    namespace = next(r for r in run.resources if r.type == "kubernetes:core/v1:Namespace"
                     and r.inputs["metadata"]["name"] == "aicp-sandbox")
    assert namespace.inputs["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "privileged"


def test_the_runtime_class_lands_pods_on_the_labelled_nodes_once_installed(sandboxed):
    run, doc = sandboxed
    (rc,) = [r for r in run.resources if r.type == RUNTIME_CLASS]
    assert rc.inputs["metadata"]["name"] == "gvisor" and rc.inputs["handler"] == "runsc"
    assert rc.inputs["scheduling"]["nodeSelector"] == LABEL
    ds = next(r for r in run.resources if r.type == DAEMON_SET
              and r.inputs["metadata"]["name"] == "aicp-gvisor-installer")
    assert ds.urn in rc.dependencies
    assert doc["shoulds"]["workload_sandboxing"] == "served"


def test_without_named_nodes_an_existing_cluster_gets_no_sandbox(tmp_path):
    run, doc = plan("onprem", tmp_path, onprem=_onprem(tmp_path))
    assert not [r for r in run.resources if r.type in (RUNTIME_CLASS, DAEMON_SET)
                and "gvisor" in str(r.inputs.get("metadata", {}).get("name"))]
    assert doc["shoulds"]["workload_sandboxing"] == "not served"


@pytest.mark.parametrize(("onprem", "changes", "key", "says"), [
    ({"sandbox": {"nodes": ["gpu-0"]}}, {}, "aicp:onprem.sandbox.nodes[0]",
     "is in GPU pool 'a100'"),
    ({"sandbox": {"nodes": ["cpu-0", "cpu-0"]}}, {}, "aicp:onprem.sandbox.nodes[1]",
     "listed twice"),
    ({"sandbox": {"nodes": ["Not_A_Node"]}}, {}, "aicp:onprem.sandbox.nodes[0]",
     "not a Kubernetes node name"),
    ({"sandbox": {"nodes": ["cpu-0"]}}, {"addons": {"sandbox": {"enabled": False}}},
     "aicp:onprem.sandbox.nodes", "the sandbox is off"),
])
def test_a_wrong_sandbox_is_one_line_naming_the_key(tmp_path, onprem, changes, key, says):
    with pytest.raises(ConfigError) as err:
        config("onprem", onprem=_onprem(tmp_path, **onprem), **changes)
    text = str(err.value)
    assert text.startswith(f"{key}: ") and says in text and "\n" not in text


def test_k3s_refuses_named_sandbox_nodes():
    with pytest.raises(ConfigError) as err:
        config("onprem", sshPrivateKey="key", onprem={
            "mode": "k3s", "sandbox": {"nodes": ["cpu-0"]},
            "k3s": {"servers": [{"host": "10.0.0.10"}],
                    "agents": [{"host": "10.0.0.20", "pool": "a100"},
                               {"host": "10.0.0.21", "pool": "a100"}]}})
    assert str(err.value).startswith("aicp:onprem.sandbox.nodes: only read on an existing")


# --- the host script, run -------------------------------------------------------------------

@pytest.fixture
def host(tmp_path):
    """The script with its paths moved under tmp_path, runsc reporting the pinned release,
    systemctl recording its calls."""
    if shutil.which("bash") is None:
        pytest.skip("no bash on this machine")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "runsc").write_text(f"#!/bin/sh\necho 'runsc version "
                                            f"release-{GVISOR_RELEASE}'\n")
    (tmp_path / "bin" / "systemctl").write_text(
        f"#!/bin/sh\necho \"$*\" >> {tmp_path}/systemctl.log\n")
    for stub in ("runsc", "systemctl"):
        (tmp_path / "bin" / stub).chmod(0o755)
    script = (gvisor.existing_script(GVISOR_RELEASE)
              .replace(gvisor.EXISTING_CONFIG, f"{tmp_path}/config.toml")
              .replace(gvisor.EXISTING_DROP_IN, f"{tmp_path}/conf.d/aicp-gvisor.toml")
              .replace(f"{gvisor.INSTALL_DIR}/runsc", f"{tmp_path}/bin/runsc"))

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              env={"PATH": f"{tmp_path}/bin:/usr/bin:/bin"}, check=False)
    return tmp_path, run


def _restarts(tmp) -> int:
    log = tmp / "systemctl.log"
    return log.read_text().count("restart containerd") if log.exists() else 0


@pytest.mark.parametrize(("before", "imports", "plugin"), [
    ('version = 3\nroot = "/var/lib/containerd"\n\n[plugins."io.containerd.cri.v1.images"]\n',
     '["{drop}"]', "'io.containerd.cri.v1.runtime'"),
    ('version = 2\nimports = []\n[plugins."io.containerd.grpc.v1.cri"]\n',
     '["{drop}"]', '"io.containerd.grpc.v1.cri"'),
    ('version = 2\nimports = ["/etc/containerd/other.toml"]\n',
     '["{drop}", "/etc/containerd/other.toml"]', '"io.containerd.grpc.v1.cri"'),
])
def test_the_runtime_goes_into_a_drop_in_containerd_imports(host, before, imports, plugin):
    import tomllib

    tmp, run = host
    (tmp / "config.toml").write_text(before)
    first = run()
    assert first.returncode == 0, first.stderr
    drop = f"{tmp}/conf.d/aicp-gvisor.toml"
    conf = tomllib.loads((tmp / "config.toml").read_text())
    assert conf["imports"] == tomllib.loads(f"imports = {imports.format(drop=drop)}")["imports"]
    assert conf["version"] == int(before[10])
    runtime = tomllib.loads((tmp / "conf.d" / "aicp-gvisor.toml").read_text())
    path = tomllib.loads(f"[plugins.{plugin}.containerd.runtimes.runsc]\nx = 1\n")
    key = next(iter(path["plugins"]))
    assert runtime["plugins"][key]["containerd"]["runtimes"]["runsc"] == {
        "runtime_type": "io.containerd.runsc.v1"}
    assert _restarts(tmp) == 1
    # A second run (the pod restarted) finds everything in place and restarts nothing.
    again = run()
    assert again.returncode == 0 and "already configured" in again.stdout
    assert _restarts(tmp) == 1


@pytest.mark.parametrize(("before", "says"), [
    (None, "no {conf} on this node"),
    ("version = 1\n", "has version '1'"),
])
def test_a_config_it_cannot_take_stops_with_one_line(host, before, says):
    tmp, run = host
    if before is not None:
        (tmp / "config.toml").write_text(before)
    result = run()
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert says.format(conf=f"{tmp}/config.toml") in result.stderr
    assert not (tmp / "conf.d").exists() and _restarts(tmp) == 0


# --- Kata through kata-deploy, where the nodes have KVM ------------------------------------

@pytest.fixture(scope="module")
def kata(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kata")
    return plan("onprem", tmp, onprem=_onprem(
        tmp, sandbox={"runtime": "kata", "nodes": ["kvm-0"]}))


def test_kata_deploy_installs_the_qemu_shim_on_the_named_nodes(kata):
    from aicp.addons.catalog import CHARTS

    run, doc = kata
    patch = next(r for r in run.resources if r.type == NODE_PATCH
                 and r.inputs["metadata"]["name"] == "kvm-0")
    assert patch.inputs["metadata"]["labels"] == {"aicp.dev/sandbox": "kata"}
    chart = CHARTS["kata-deploy"]
    release = next(r for r in run.resources if r.type == "kubernetes:helm.sh/v3:Release"
                   and r.inputs["chart"] == chart.ref)
    assert release.inputs["version"] == "4.1.0" and release.inputs["namespace"] == "kata-system"
    values = release.inputs["values"]
    assert values["nodeSelector"] == {"aicp.dev/sandbox": "kata"}
    assert values["shims"] == {"disableAll": True, "qemu": {"enabled": True}}
    assert values["runtimeClasses"] == {"enabled": True, "createDefault": False}
    # The chart makes the RuntimeClass (kata-qemu); aicp makes none, and no gVisor installer.
    assert not [r for r in run.resources if r.type in (RUNTIME_CLASS, DAEMON_SET)]
    assert doc["shoulds"]["workload_sandboxing"] == "served"
    sandbox = run.outputs["addons"]["sandbox"]
    assert sandbox == "kata-deploy 4.1.0"
