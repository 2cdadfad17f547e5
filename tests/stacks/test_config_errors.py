"""`aicp plan` under bad stack files: each is one exact line on stderr, exit 2, no traceback.

Every case is an example stack (``Pulumi.<target>.yaml``) with one mistake, written to a
fresh project folder and planned through the real CLI entry. Cases the clouds would refuse
at create time must not plan cleanly; the rule each one breaks is cited beside
its check in stacks/targets/<target>.py or in the target's component.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aicp.cli.main import app

REPO = Path(__file__).resolve().parents[2]

Change = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    name: str
    stack: str
    expected: str  # the whole of stderr, one line
    config: Change | None = None  # applied to the example's config: map
    text: Callable[[str], str] | None = None  # applied to the example's text
    raw: bytes | None = None  # the file, as written
    kubeconfig: str | None = None  # on-prem: a kubeconfig file with this text


def at(path: str, value: Any) -> Change:
    """Set ``aicp:<path>`` (dots and [i]) to ``value``; ``DROP`` deletes it."""
    def change(config: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        node: Any = config
        first = f"aicp:{parts[0]}"
        if len(parts) == 1:
            if value is DROP:
                del config[first]
            else:
                config[first] = value
            return
        node = config.setdefault(first, {})
        for part in parts[1:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is DROP:
            del node[last]
        else:
            node[last] = value
    return change


def rename(path: str, old: str, new: str) -> Change:
    def change(config: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        node: Any = config[f"aicp:{parts[0]}"]
        for part in parts[1:]:
            node = node[int(part)] if part.isdigit() else node[part]
        node[new] = node.pop(old)
    return change


DROP = object()

K3S = {"mode": "k3s", "k3s": {
    "servers": [{"host": "10.0.0.10", "user": "ubuntu"}],
    "agents": [{"host": "10.0.0.20", "pool": "a100"}, {"host": "10.0.0.21", "pool": "a100"}]}}
SECURE = {"secure": "v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBBBBBB"}  # as pulumi writes it


def both(config: dict[str, Any], first: Change, second: Change) -> None:
    first(config)
    second(config)


def k3s(config: dict[str, Any]) -> None:
    config["aicp:onprem"] = dict(K3S)


def k3s_with_key(config: dict[str, Any]) -> None:
    k3s(config)
    config["aicp:sshPrivateKey"] = SECURE


def secret_kubeconfig_only(config: dict[str, Any]) -> None:
    del config["aicp:onprem"]["kubeconfig"]


CASES = [
    # --- the file itself -----------------------------------------------------------------
    Case("stack file is a YAML list", "aws",
         "error: Pulumi.aws.yaml: expected a mapping with a config: section at the top, "
         "got a list",
         raw=b"- config:\n    aicp:target: aws\n"),
    Case("non-UTF-8 bytes", "aws",
         "error: Pulumi.aws.yaml line 2: byte 0xe9 is not UTF-8; save the file as UTF-8",
         raw=b"config:\n  aicp:clusterName: caf\xe9\n  aicp:target: aws\n"),
    Case("duplicate YAML key", "aws",
         "error: Pulumi.aws.yaml line 4: key 'aicp:region' is given twice (first at line 3); "
         "keep one",
         raw=b"config:\n  aicp:target: aws\n  aicp:region: us-west-2\n"
             b"  aicp:region: us-east-1\n"),
    Case("duplicate key inside a pool", "aws",
         "error: Pulumi.aws.yaml line 6: key 'maxNodes' is given twice (first at line 5); "
         "keep one",
         raw=b"config:\n  aicp:target: aws\n  aicp:gpuPools:\n    - name: l4\n"
             b"      maxNodes: 2\n      maxNodes: 20\n"),
    Case("a key that is a list", "aws",
         "error: Pulumi.aws.yaml line 3: a key must be a plain name, not ['a']",
         raw=b"config:\n  aicp:target: aws\n  ? [a]\n  : b\n"),
    Case("config that is a list", "aws",
         "error: Pulumi.aws.yaml: 'config' must be a mapping of keys",
         raw=b"config: []\n"),
    Case("key without the aicp: namespace", "aws",
         "error: Pulumi.aws.yaml: config key 'target' is not <namespace>:<name>; write it as "
         "aicp:target",
         text=lambda t: t.replace("  aicp:target: aws", "  target: aws")),
    # --- keys and values -----------------------------------------------------------------
    Case("typo maxNode", "aws",
         "error: aicp:gpuPools[0].maxNode: unknown key; did you mean maxNodes? allowed here: "
         "name, accelerator, instanceType, minNodes, maxNodes, capacityType, "
         "capacityReservationId, allocator, gpusPerNode",
         config=rename("gpuPools[0]", "maxNodes", "maxNode")),
    Case("empty clusterName", "aws",
         "error: aicp:clusterName: has no value (an empty key in YAML); give a value or leave "
         "the key out",
         text=lambda t: t.replace("aicp:clusterName: aicp-aws", "aicp:clusterName:")),
    Case("vpcCidr /33", "aws",
         "error: aicp:network.vpcCidr: '10.0.0.0/33' is not an IPv4 CIDR block (like "
         "10.0.0.0/16)",
         config=at("network.vpcCidr", "10.0.0.0/33")),
    Case("GKE VPC too small (was GkeClusterArgs.vpc_cidr)", "gcp",
         "error: aicp:network.vpcCidr: '10.0.0.0/24' is too small on gcp: give /20 or larger "
         "(nodes, services and pods are carved from it)",
         config=at("network.vpcCidr", "10.0.0.0/24")),
    Case("AKS pool named system (was AksClusterArgs.gpu_pools ... repeat)", "azure",
         "error: aicp:gpuPools[0].name: 'system' is the name of the AKS system pool; pick "
         "another name",
         config=at("gpuPools[0].name", "system")),
    Case("AKS pool names that collide once shortened", "azure",
         "error: aicp:gpuPools[1].name: 'a100-pool-one-a-2' and aicp:gpuPools[0].name "
         "'a100-pool-one-a' both become AKS pool name 'a100poolonea' (letters and digits, at "
         "most 12); rename one",
         config=at("gpuPools", [
             {"name": "a100-pool-one-a", "accelerator": "a100", "minNodes": 1, "maxNodes": 2},
             {"name": "a100-pool-one-a-2", "accelerator": "a100", "minNodes": 1,
              "maxNodes": 2}])),
    # --- what the clouds refuse ----------------------------------------------------------
    Case("maxNodes 1000000 on aws", "aws",
         "error: aicp:gpuPools[0].maxNodes: 1000000 is more than AWS allows: 450 nodes per "
         "managed node group (EKS quota)",
         config=at("gpuPools[0].maxNodes", 1000000)),
    Case("maxNodes 1000000 on gcp", "gcp",
         "error: aicp:gpuPools[0].maxNodes: 1000000 is more than GCP allows: 2000 nodes per "
         "node pool in 2 zone(s) (1000 per zone)",
         config=lambda c: both(c, at("zones", ["us-central1-a", "us-central1-c"]),
                               at("gpuPools[0].maxNodes", 1000000))),
    Case("maxNodes 1000000 on azure", "azure",
         "error: aicp:systemPool.maxNodes: 1000000 is more than Azure allows: 1000 nodes per "
         "node pool",
         config=at("systemPool.maxNodes", 1000000)),
    Case("region display name", "aws",
         "error: aicp:region: 'US West (Oregon)' is not an AWS region code (like us-west-2)",
         config=at("region", "US West (Oregon)")),
    Case("gcp region display name", "gcp",
         "error: aicp:region: 'Iowa' is not a GCP region code (like us-central1)",
         config=at("region", "Iowa")),
    Case("azure region display name", "azure",
         "error: aicp:region: 'East US 2' is not an Azure region code (like eastus2)",
         config=at("region", "East US 2")),
    Case("aws zone outside the region", "aws",
         "error: aicp:zones[1]: 'us-east-1b' is not a zone of region us-west-2 (like "
         "us-west-2a)",
         config=at("zones", ["us-west-2a", "us-east-1b"])),
    Case("gcp zone outside the region", "gcp",
         "error: aicp:zones[0]: 'europe-west4-a' is not a zone of region us-central1 (like "
         "us-central1-a)",
         config=at("zones", ["europe-west4-a", "us-central1-c"])),
    Case("zone repeated", "aws",
         "error: aicp:zones[1]: 'us-west-2a' is listed twice (also aicp:zones[0])",
         config=at("zones", ["us-west-2a", "us-west-2a"])),
    Case("azure zone repeated", "azure",
         "error: aicp:zones[2]: '1' is listed twice (also aicp:zones[0])",
         config=at("zones", ["1", "2", "1"])),
    Case("publicAccessCidrs banana", "aws",
         "error: aicp:endpoint.publicAccessCidrs[0]: 'banana' is not an IPv4 CIDR block (like "
         "203.0.113.0/24)",
         config=at("endpoint.publicAccessCidrs", ["banana"])),
    Case("EKS with both endpoints off", "aws",
         "error: aicp:endpoint: privateAccess and publicAccess are both false; EKS needs at "
         "least one of them on",
         config=at("endpoint", {"privateAccess": False, "publicAccess": False})),
    Case("GKE master CIDR not /28", "gcp",
         "error: aicp:gcp.masterIpv4CidrBlock: '172.16.0.0/24' is a /24; GKE's control plane "
         "range must be a /28 (like 172.16.0.0/28)",
         config=at("gcp.masterIpv4CidrBlock", "172.16.0.0/24")),
    Case("waitForPodsReadyTimeout in words", "aws",
         "error: aicp:addons.kueue.waitForPodsReadyTimeout: 'ten minutes' is not a duration; "
         "write it like 10m, 90s or 1h30m",
         config=at("addons.kueue.waitForPodsReadyTimeout", "ten minutes")),
    Case("capacityReservationId on onprem", "onprem",
         "error: aicp:gpuPools[0].capacityReservationId: onprem has no capacity reservations "
         "(its nodes are your own machines); drop the key",
         config=at("gpuPools[0].capacityReservationId", "cr-0123456789abcdef0")),
    Case("capacityReservationId of another cloud", "aws",
         "error: aicp:gpuPools[0].capacityReservationId: 'my-reservation' is not an AWS "
         "capacity reservation id (like cr-0123456789abcdef0)",
         config=at("gpuPools[0].capacityReservationId", "my-reservation")),
    Case("AKS VNet over the pod range", "azure",
         "error: aicp:network.vpcCidr: '10.244.0.0/14' overlaps the AKS pod range "
         "10.244.0.0/16; pick a range outside 10.244.0.0/16 and 10.96.0.0/16",
         config=at("network.vpcCidr", "10.244.0.0/14")),
    # A target's own argument check that no config rule covers: named by its config key.
    Case("seven zones on aws (was AwsClusterArgs.zones)", "aws",
         "error: aicp:zones: at most six zones",
         config=at("zones", [f"us-west-2{z}" for z in "abcdefg"])),
    # --- on-prem: kubeconfig and secrets -------------------------------------------------
    Case("on-prem kubeconfig that is not YAML", "onprem",
         "error: aicp:onprem.kubeconfig ({kubeconfig}): not a kubeconfig: not valid YAML at "
         "line 2 (expected the node content, but found '<stream end>')",
         kubeconfig="clusters: [\n"),
    Case("on-prem kubeconfig that is a list", "onprem",
         "error: aicp:onprem.kubeconfig ({kubeconfig}): not a kubeconfig: expected a mapping "
         "with clusters, contexts and users, got list",
         kubeconfig="- a\n- b\n"),
    Case("k3s without its SSH key secret", "onprem",
         "error: aicp:sshPrivateKey: required for aicp:onprem.mode k3s (the SSH private key "
         "of the hosts); set it with: pulumi config set --secret aicp:sshPrivateKey < "
         "~/.ssh/id_ed25519",
         config=k3s),
    Case("existing without a kubeconfig file or secret", "onprem",
         "error: aicp:kubeconfig: required when aicp:onprem.kubeconfig is not given; set it "
         "with: pulumi config set --secret aicp:kubeconfig \"$(cat kubeconfig)\", or give "
         "aicp:onprem.kubeconfig: <path>",
         config=secret_kubeconfig_only),
    Case("kubeconfig secret on a cloud", "aws",
         "error: aicp:kubeconfig: only read on target onprem; drop the key",
         config=at("kubeconfig", SECURE)),
    # --- the providers' own settings, and settings that do nothing (#27 item 3) ---------
    Case("aws:region that disagrees with aicp:region", "aws",
         "error: aicp:region: 'us-west-2' disagrees with the stack's aws:region "
         "'eu-central-1'; set them alike, or drop one (aicp builds where aicp:region says, "
         "and takes aws:region when aicp:region is not set)",
         config=lambda c: c.update({"aws:region": "eu-central-1"})),
    Case("gcp:project that disagrees with aicp:gcp.project", "gcp",
         "error: aicp:gcp.project: 'my-gcp-project' disagrees with the stack's gcp:project "
         "'other-project'; set them alike, or drop one (aicp builds where aicp:gcp.project "
         "says, and takes gcp:project when aicp:gcp.project is not set)",
         config=lambda c: c.update({"gcp:project": "other-project"})),
    Case("azure-native:location that disagrees with aicp:region", "azure",
         "error: aicp:region: 'eastus2' disagrees with the stack's azure-native:location "
         "'westeurope'; set them alike, or drop one (aicp builds where aicp:region says, "
         "and takes azure-native:location when aicp:region is not set)",
         config=lambda c: c.update({"azure-native:location": "westeurope"})),
    Case("a gcp block on an aws stack", "aws",
         "error: aicp:gcp: does nothing on target aws (the GCP settings are read on target "
         "gcp); drop it",
         config=at("gcp", {"project": "my-ml-project"})),
    Case("spot on on-prem", "onprem",
         "error: aicp:gpuPools[0].capacityType: does nothing on target onprem (spot and "
         "on-demand are cloud capacity; on-prem nodes are the machines you racked); drop it",
         config=at("gpuPools[0].capacityType", "spot")),
    Case("autoscaler settings on gke", "gcp",
         "error: aicp:addons.autoscaler: does nothing on target gcp (GKE's own cluster "
         "autoscaler scales the node pools; aicp installs no cluster-autoscaler there); "
         "drop it",
         config=at("addons.autoscaler", {"expander": "random"})),
    Case("price expander on aws", "aws",
         "error: aicp:addons.autoscaler.expander: 'price' does not work with "
         "cluster-autoscaler on AWS (price works only on GCE, GKE and Equinix Metal); use "
         "one of least-waste, most-pods, random",
         config=at("addons.autoscaler", {"expander": "price"})),
    Case("priority expander with no priorities", "aws",
         "error: aicp:addons.autoscaler.expander: 'priority' needs a priority list (the "
         "ConfigMap cluster-autoscaler-priority-expander) that aicp does not write; use one "
         "of least-waste, most-pods, random",
         config=at("addons.autoscaler", {"expander": "priority"})),
    # --- the clouds' limits on names, tags and counts (#27, "Also") ---------------------
    Case("an AWS tag value over 256 characters", "aws",
         "error: aicp:tags.owner: a tag value is at most 256 characters on AWS (this one has "
         "300)",
         config=at("tags", {"owner": "x" * 300})),
    Case("more than 30 managed node groups", "aws",
         "error: aicp:gpuPools: 30 GPU pools and the system node group are 31 managed node "
         "groups; EKS allows 30 per cluster",
         config=at("gpuPools", [{"name": f"p{i}", "accelerator": "l4", "minNodes": 1,
                                 "maxNodes": 1} for i in range(30)])),
    Case("a GCP project id outside GCP's form", "gcp",
         "error: aicp:gcp.project: 'My_Project' is not a GCP project id (6 to 30 lowercase "
         "letters, digits or '-', starting with a letter, like my-ml-project)",
         config=at("gcp.project", "My_Project")),
    Case("an Azure resource group with a slash", "azure",
         "error: aicp:azure.resourceGroup: 'ml/rg*' is not a resource group name (1 to 90 "
         "letters, digits, '_', '-', '.', '(' or ')', not ending in '.')",
         config=at("azure", {"resourceGroup": "ml/rg*"})),
    Case("a system instance type that is no EC2 type", "aws",
         "error: aicp:systemPool.instanceType: 'not-a-real.type' is not an EC2 instance type "
         "(like m7i.xlarge)",
         config=at("systemPool.instanceType", "not-a-real.type")),
    Case("a system machine type that is no GCE type", "gcp",
         "error: aicp:systemPool.instanceType: 'not a type' is not a GCE machine type (like "
         "e2-standard-4)",
         config=at("systemPool.instanceType", "not a type")),
    Case("a system VM size that is no Azure size", "azure",
         "error: aicp:systemPool.instanceType: 'D4s_v5' is not an Azure VM size (like "
         "Standard_D4s_v5)",
         config=at("systemPool.instanceType", "D4s_v5")),
    Case("a 10,000-character value is not echoed whole", "aws",
         "error: aicp:clusterName: '" + "a" * 99 + "…[10002 characters]…aaaaaaaaaaa' must "
         "be a lowercase DNS label of at most 32 characters (letters, digits, '-')",
         config=at("clusterName", "a" * 10000)),
]


def write_project(tmp: Path, case: Case) -> Path:
    shutil.copy(REPO / "Pulumi.yaml", tmp / "Pulumi.yaml")
    target = tmp / f"Pulumi.{case.stack}.yaml"
    text = (REPO / f"Pulumi.{case.stack}.yaml").read_text()
    if case.raw is not None:
        target.write_bytes(case.raw)
        return target
    if case.kubeconfig is not None:
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(case.kubeconfig)
        text = text.replace("~/.kube/config", str(kubeconfig))
    if case.config is not None:
        doc = yaml.safe_load(text)
        case.config(doc["config"])
        text = yaml.safe_dump(doc, sort_keys=False)
    if case.text is not None:
        text = case.text(text)
    target.write_bytes(text.encode("utf-8", "surrogateescape"))
    return target


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_stack_is_one_exact_line_exit_2(case: Case, tmp_path: Path):
    write_project(tmp_path, case)
    result = CliRunner().invoke(app, ["plan", "--stack", case.stack, "--project-dir",
                                      str(tmp_path)])
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == case.expected.format(kubeconfig=tmp_path / "kubeconfig") + "\n"


def test_a_bad_stack_prints_no_traceback_from_the_installed_entry(tmp_path: Path):
    case = next(c for c in CASES if c.name == "on-prem kubeconfig that is not YAML")
    write_project(tmp_path, case)
    run = subprocess.run([sys.executable, "-m", "aicp.cli.main", "plan", "--stack", "onprem",
                          "--project-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == case.expected.format(kubeconfig=tmp_path / "kubeconfig") + "\n"


# --- what must plan: k3s, secrets, no kubeconfig on this machine --------------------------

GOOD = [
    Case("k3s with its SSH key as a secret", "onprem", "", config=k3s_with_key),
    Case("existing with the kubeconfig as a secret", "onprem",
         "note: aicp:kubeconfig is an encrypted secret; planned with a stand-in kubeconfig "
         "(pulumi up decrypts the real one)",
         config=lambda c: both(c, secret_kubeconfig_only, at("kubeconfig", SECURE))),
]


@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_documented_onprem_routes_plan(case: Case, tmp_path: Path):
    write_project(tmp_path, case)
    result = CliRunner().invoke(app, ["plan", "--stack", case.stack, "--project-dir",
                                      str(tmp_path), "--output", "json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == (case.expected + "\n" if case.expected else "")
    assert '"target": "onprem"' in result.stdout


def test_plan_onprem_needs_no_kubeconfig_on_this_machine(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "aicp.cli.main", "plan", "--stack", "onprem",
                          "--project-dir", str(REPO)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == (f"note: aicp:onprem.kubeconfig: no file at {home}/.kube/config; "
                          "planned with a stand-in kubeconfig (pulumi up needs the real one)\n")
    assert run.stdout.strip().splitlines()[-1].startswith("Every MUST requirement")
    assert list(home.iterdir()) == []  # nothing written to the empty home
