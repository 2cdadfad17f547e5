"""The fabric addons: the EFA device plugin, GKE's NCCL plugin installers and Network objects,
the NVIDIA Network Operator, and Kueue's topology for fabric pools (issue #19)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from aicp.addons.catalog import CHARTS, IMAGES
from aicp.addons.efa_device_plugin import EfaDevicePlugin
from aicp.addons.efa_dra_driver import EfaDraDriver
from aicp.addons.kueue import Kueue
from aicp.addons.nccl_plugin import NcclPlugin
from aicp.addons.network_operator import NetworkOperator
from aicp.cli import offline
from aicp.components.contract import GpuPoolRequest
from aicp.components.fabric import LABEL_FABRIC
from aicp.components.gcp import with_gke_networks
from tests.addons.conftest import make_cluster
from tests.charts import unknown_value_paths, upstream_values

RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
TOPOLOGY = "kubernetes:kueue.x-k8s.io/v1beta2:Topology"
FLAVOR = "kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present",
                  "effect": "NoSchedule"}


def pools(*specs: tuple[str, str, str]) -> tuple[GpuPoolRequest, ...]:
    return tuple(GpuPoolRequest(name=n, accelerator=a, instance_type=m, max_nodes=2,
                                allocator="device-plugin") for n, a, m in specs)


AWS = pools(("train", "h100", "p5.48xlarge"), ("l4", "l4", "g6.xlarge"))
GCP = pools(("high", "h100", "a3-highgpu-8g"), ("mega", "h100", "a3-megagpu-8g"),
            ("ultra", "h200", "a3-ultragpu-8g"), ("l4", "l4", "g2-standard-8"))
AZURE = pools(("train", "h100", "Standard_ND96isr_H100_v5"),
              ("nc", "h100", "Standard_NC40ads_H100_v5"))


def plan(addon, target: str, gpu_pools) -> offline.Plan:
    def program():
        addon(make_cluster(target, gpu_pools))
    return offline.run(program, {})


# --- EFA device plugin ---------------------------------------------------------------------

def test_efa_device_plugin_runs_on_the_efa_pools_through_their_taint():
    release = plan(lambda c: EfaDevicePlugin("efa", c), "aws", AWS).one(RELEASE)
    chart = CHARTS["efa-device-plugin"]
    assert (release.inputs["chart"], release.inputs["version"]) == (chart.ref, chart.version)
    assert release.inputs["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert release.inputs["namespace"] == "kube-system"
    # The chart's tolerations default to [] (aws/eks-charts values.yaml): without the GPU
    # taint's toleration the plugin never runs on a GPU node.
    assert release.inputs["values"] == {
        "tolerations": [GPU_TOLERATION],
        "nodeSelector": {LABEL_FABRIC: "efa", "aicp.dev/gpu-allocator": "device-plugin"}}


def test_efa_dra_pools_get_the_efa_dra_driver_never_beside_the_device_plugin():
    dra = tuple(replace(p, allocator="dra") for p in AWS)

    def program():
        c = make_cluster("aws", dra)
        EfaDraDriver("efa-dra", c)
        EfaDevicePlugin("efa", c)
    p = offline.run(program, {})
    releases = {r.inputs["chart"]: r.inputs for r in p.of_type(RELEASE)}
    chart = CHARTS["efa-dra-driver"]
    driver = releases[chart.ref]
    assert driver["version"] == chart.version and driver["namespace"] == "kube-system"
    assert driver["values"] == {
        "tolerations": [GPU_TOLERATION],
        "nodeSelector": {LABEL_FABRIC: "efa", "aicp.dev/gpu-allocator": "dra"},
        "deviceClass": {"create": True, "name": "efa.networking.k8s.aws"}}
    # The device plugin selects device-plugin nodes only: on a DRA-only cluster, none.
    plugin = releases[CHARTS["efa-device-plugin"].ref]
    assert plugin["values"]["nodeSelector"]["aicp.dev/gpu-allocator"] == "device-plugin"
    assert plugin["values"]["tolerations"] == []


def test_efa_dra_driver_values_exist_in_the_pinned_chart():
    release = plan(lambda c: EfaDraDriver("efa-dra", c), "aws", AWS).one(RELEASE)
    upstream = upstream_values(f"aws-dranet-{CHARTS['efa-dra-driver'].version}")
    assert unknown_value_paths(release.inputs["values"], upstream) == []


def test_efa_device_plugin_values_exist_in_the_pinned_chart():
    release = plan(lambda c: EfaDevicePlugin("efa", c), "aws", AWS).one(RELEASE)
    upstream = upstream_values(f"aws-efa-k8s-device-plugin-{CHARTS['efa-device-plugin'].version}")
    assert unknown_value_paths(release.inputs["values"], upstream) == []


# --- GKE: NCCL plugin installers and Network objects ---------------------------------------

@pytest.fixture(scope="module")
def gke_plan() -> offline.Plan:
    # The pools as the GKE component hands them over: with the networks it made for them.
    def with_networks(c):
        return replace(c, gpu_pools=tuple(with_gke_networks("aicp", p, ("us-central1-b",))
                                          for p in c.gpu_pools))
    return plan(lambda c: NcclPlugin("nccl", with_networks(c)), "gcp", GCP)


def test_each_gpudirect_kind_gets_its_upstream_installer(gke_plan):
    daemonsets = {d.inputs["metadata"]["name"]: d.inputs["spec"]
                  for d in gke_plan.of_type(DAEMONSET)}
    assert set(daemonsets) == {"nccl-tcpx-installer", "nccl-tcpxo-installer",
                               "nccl-rdma-installer", "device-injector"}
    installers = {n: d for n, d in daemonsets.items() if n != "device-injector"}
    for name, kind, image in (("nccl-tcpx-installer", "gpudirect-tcpx", "nccl-tcpx"),
                              ("nccl-tcpxo-installer", "gpudirect-tcpxo", "nccl-tcpxo"),
                              ("nccl-rdma-installer", "gpudirect-rdma", "nccl-rdma")):
        pod = installers[name]["template"]["spec"]
        assert pod["nodeSelector"] == {LABEL_FABRIC: kind}
        assert pod["tolerations"] == [{"operator": "Exists"}]
        assert pod["hostNetwork"] is True and pod["hostPID"] is True
        assert pod["initContainers"][-1]["image"] == IMAGES[image]
        assert pod["initContainers"][-1]["securityContext"] == {"privileged": True}
    # TCPXO prepares the host first (import-helper, aperture devices) through nsenter.
    tcpxo = installers["nccl-tcpxo-installer"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in tcpxo] == ["pre-installation", "nccl-tcpxo-installer"]
    assert "modprobe import-helper" in tcpxo[0]["command"][-1]


def test_the_nri_device_injector_serves_the_tcpx_and_tcpxo_pools_through_their_taints(
        gke_plan):
    """Upstream's device-injector DaemonSet (container-engine-accelerators
    nri_device_injector/nri-device-injector.yaml): what hands the unprivileged tcpx(o)-daemon
    sidecar the devices its ``devices.gke.io/container.*`` annotation lists."""
    (injector,) = [d for d in gke_plan.of_type(DAEMONSET)
                   if d.inputs["metadata"]["name"] == "device-injector"]
    assert injector.inputs["metadata"]["namespace"] == "kube-system"
    pod = injector.inputs["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    # A3 High and A3 Mega pools; A3 Ultra (RDMA, no sidecar) and the L4 pool are left alone.
    assert term == {"matchExpressions": [{"key": LABEL_FABRIC, "operator": "In",
                                          "values": ["gpudirect-tcpx", "gpudirect-tcpxo"]}]}
    assert pod["tolerations"] == [{"operator": "Exists"}]  # the GPU pools' taints too
    (container,) = pod["containers"]
    assert container["image"] == IMAGES["nri-device-injector"]
    assert container["image"].endswith(
        "@sha256:6e79483d52abdc28454bf186320b10a56b0f117a10e8d65d5c74dbb821a76970")
    assert container["securityContext"] == {"privileged": True}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert {p: paths[n] for p, n in mounts.items()} == {"/dev": "/dev",
                                                        "/var/run/nri": "/var/run/nri"}


def test_a_cluster_without_tcpx_or_tcpxo_pools_runs_no_device_injector():
    ultra = pools(("ultra", "h200", "a3-ultragpu-8g"))

    def with_networks(c):
        return replace(c, gpu_pools=tuple(with_gke_networks("aicp", p, ("us-central1-b",))
                                          for p in c.gpu_pools))
    names = [d.inputs["metadata"]["name"] for d in plan(
        lambda c: NcclPlugin("nccl", with_networks(c)), "gcp", ultra).of_type(DAEMONSET)]
    assert names == ["nccl-rdma-installer"]


def test_the_gib_installer_stops_martian_logging_on_each_rdma_nic_first(gke_plan):
    """cluster-toolkit's A3 Ultra installer (examples/gke-a3-ultragpu/
    nccl-installer.yaml.tftpl): a privileged init container on the host network sets
    ``log_martians=0`` on gpu<i>rdma0 for each of the machine's eight RDMA NICs."""
    (rdma,) = [d.inputs["spec"]["template"]["spec"] for d in gke_plan.of_type(DAEMONSET)
               if d.inputs["metadata"]["name"] == "nccl-rdma-installer"]
    first, installer = rdma["initContainers"]
    assert (first["name"], installer["name"]) == ("disable-log-martian", "nccl-rdma-installer")
    assert first["image"] == IMAGES["nccl-rdma-sysctl"] and ":" in first["image"]
    assert first["securityContext"] == {"privileged": True} and rdma["hostNetwork"] is True
    assert first["command"] == ["/bin/sh"] and first["args"][0] == "-c"
    assert first["args"][1].splitlines() == [
        f"sysctl -w net.ipv4.conf.gpu{i}rdma0.log_martians=0" for i in range(8)]
    # TCPX / TCPXO installers have no such step.
    for d in gke_plan.of_type(DAEMONSET):
        if d.inputs["metadata"]["name"] in ("nccl-tcpx-installer", "nccl-tcpxo-installer"):
            assert "disable-log-martian" not in [
                c["name"] for c in d.inputs["spec"]["template"]["spec"]["initContainers"]]


@pytest.mark.parametrize(("installer", "kind"), [("nccl-tcpxo", "gpudirect-tcpxo"),
                                                 ("nccl-tcpx", "gpudirect-tcpx")])
def test_the_performance_runs_rxdm_sidecar_matches_the_installer_aicp_pins(installer, kind):
    """``aicp verify --performance`` runs the RxDM sidecar on GPUDirect pools; upstream
    couples its version to the NCCL plugin installer's ("The tcpxo-daemon version is coupled
    with the NCCL plugin installer version", container-engine-accelerators
    gpudirect-tcpxo/README.md). The pinned sidecar is the pair of the installer aicp pins."""
    from aicp.verify.images import PERFORMANCE
    from aicp.verify.performance.gpudirect import DAEMONS, RXDM_FOR_PLUGIN
    plugin = IMAGES[installer].rsplit(":", 1)[1]
    assert PERFORMANCE[DAEMONS[kind]].rsplit(":", 1)[1] == RXDM_FOR_PLUGIN[kind][plugin]


def test_every_gpudirect_network_gets_its_param_set_and_device_network(gke_plan):
    [group] = gke_plan.of_type(CONFIG_GROUP)
    objs = group.inputs["objs"]
    networks = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Network"}
    params = {o["metadata"]["name"]: o for o in objs if o["kind"] == "GKENetworkParamSet"}
    # 4 (A3 High) + 8 (A3 Mega) + 1 gVNIC and 8 RDMA (A3 Ultra); none for the L4 pool.
    assert len(networks) == len(params) == 4 + 8 + 9
    assert set(networks) == set(params)
    for name, network in networks.items():
        assert network["spec"] == {"type": "Device", "parametersRef": {
            "group": "networking.gke.io", "kind": "GKENetworkParamSet", "name": name}}
    modes = {n: p["spec"]["deviceMode"] for n, p in params.items()}
    assert modes["ultra-gvnic"] == "NetDevice"
    assert {modes[f"ultra-rdma-{i}"] for i in range(8)} == {"RDMA"}
    assert {modes[f"mega-nic-{i}"] for i in range(8)} == {"NetDevice"}
    # Each param set names the VPC and subnet the GKE component made for that NIC.
    assert params["mega-nic-3"]["spec"]["vpc"] == params["mega-nic-3"]["spec"]["vpcSubnet"]


# --- Network Operator ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def aks_plan() -> offline.Plan:
    return plan(lambda c: NetworkOperator("network-operator", c), "azure", AZURE)


def test_network_operator_shares_the_gpu_operators_node_feature_discovery(aks_plan):
    release = aks_plan.one(RELEASE)
    chart = CHARTS["network-operator"]
    assert (release.inputs["chart"], release.inputs["version"]) == (chart.ref, chart.version)
    values = release.inputs["values"]
    assert values["nfd"] == {"enabled": False, "deployNodeFeatureRules": False}
    assert values["operator"]["tolerations"] == [GPU_TOLERATION]


def test_network_operator_values_exist_in_the_pinned_chart(aks_plan):
    upstream = upstream_values(f"network-operator-{CHARTS['network-operator'].version}")
    assert unknown_value_paths(aks_plan.one(RELEASE).inputs["values"], upstream) == []


def test_the_nic_cluster_policy_publishes_the_ib_hcas_of_the_fabric_pools_only(aks_plan):
    [group] = aks_plan.of_type(CONFIG_GROUP)
    assert aks_plan.depends_on(group, aks_plan.one(RELEASE))
    [policy] = group.inputs["objs"]
    assert policy["kind"] == "NicClusterPolicy" and policy["apiVersion"] == "mellanox.com/v1alpha1"
    spec = policy["spec"]
    assert spec["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"] == [{"matchExpressions": [
            {"key": LABEL_FABRIC, "operator": "In", "values": ["infiniband"]}]}]
    assert spec["tolerations"] == [GPU_TOLERATION]
    config = json.loads(spec["rdmaSharedDevicePlugin"]["config"])
    assert config == {"configList": [{"resourceName": "shared_ib", "rdmaHcaMax": 63,
                                      "selectors": {"vendors": ["15b3"],
                                                    "linkTypes": ["infiniband"]}}]}
    assert spec["ofedDriver"]["version"] == IMAGES["doca-driver"]


# --- Kueue topology -----------------------------------------------------------------------

@pytest.mark.parametrize("target,gpu_pools,levels", [
    ("aws", AWS, {"train": ["topology.k8s.aws/network-node-layer-1",
                            "topology.k8s.aws/network-node-layer-2",
                            "topology.k8s.aws/network-node-layer-3",
                            "kubernetes.io/hostname"]}),
    # A3 High carries no gce-topology labels: no Topology, so its gangs are still admitted.
    ("gcp", GCP, {p: ["cloud.google.com/gce-topology-block",
                      "cloud.google.com/gce-topology-subblock",
                      "cloud.google.com/gce-topology-host", "kubernetes.io/hostname"]
                  for p in ("mega", "ultra")}),
    ("azure", AZURE, {"train": ["kubernetes.azure.com/agentpool", "kubernetes.io/hostname"]}),
])
def test_fabric_pools_get_a_kueue_topology_and_their_flavor_names_it(target, gpu_pools, levels):
    p = plan(lambda c: Kueue("kueue", c), target, gpu_pools)
    topologies = {t.inputs["metadata"]["name"]:
                  [lv["nodeLabel"] for lv in t.inputs["spec"]["levels"]]
                  for t in p.of_type(TOPOLOGY)}
    assert topologies == levels
    flavors = {f.inputs["metadata"]["name"]: f.inputs["spec"] for f in p.of_type(FLAVOR)}
    for name, spec in flavors.items():
        assert spec.get("topologyName") == (name if name in levels else None), name
    release = p.one(RELEASE, "kueue-release")
    assert all(p.depends_on(t, release) for t in p.of_type(TOPOLOGY))


def test_kueue_maps_the_efa_device_class_so_claims_on_it_stay_admissible():
    dra = tuple(replace(p, allocator="dra", min_nodes=1) for p in AWS)
    p = plan(lambda c: Kueue("kueue", c), "aws", dra)
    values = p.one(RELEASE, "kueue-release").inputs["values"]
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    assert config["resources"]["deviceClassMappings"] == [
        {"name": "aicp.dev/dra-gpu", "deviceClassNames": ["gpu.nvidia.com"]},
        {"name": "aicp.dev/fabric-devices", "deviceClassNames": ["efa.networking.k8s.aws"]}]
    # No quota on it: IgnoreUndeclared admits on the GPU quota alone.
    assert config["resources"]["quotaCheckStrategy"] == "IgnoreUndeclared"
    queue = p.one("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue").inputs["spec"]
    assert all("aicp.dev/fabric-devices" not in g["coveredResources"]
               for g in queue["resourceGroups"])


def test_kueue_config_is_unchanged_without_fabric_claims():
    p = plan(lambda c: Kueue("kueue", c), "aws", AWS)  # device-plugin EFA: no claim
    values = p.one(RELEASE, "kueue-release").inputs["values"]
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    assert "deviceClassMappings" not in config["resources"]
