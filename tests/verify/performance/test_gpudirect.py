"""The performance run on GKE GPUDirect pools (issue #26): two A3 Mega (GPUDirect-TCPXO) or
A3 Ultra (GPUDirect-RDMA) nodes, the pool described as aicp's stack exports it.

The emulated kubelet lets NCCL load the GPUDirect plugin only when each worker carries what
upstream's workload manifests give a pod (``tools.GPUDIRECT_NEEDS``), and then plays back
that plugin's captured NCCL lines; otherwise NCCL falls back to sockets, as it does when its
net plugin cannot start.
"""

from __future__ import annotations

from aicp.components.fabric import LABEL_FABRIC, pool_fabric
from aicp.verify.kube import connect
from aicp.verify.performance import catalog
from aicp.verify.performance.run import Plan, execute
from aicp.verify.probe import Settings, Timing
from aicp.verify.result import Verdict
from tests.kubeapi import objects as o
from tests.kubeapi.controllers import tools
from tests.kubeapi.scenarios import standard_controllers

FAST = Timing(timeout=20.0, poll=0.05)
IMAGES = {"dcgm": "dcgm:test", "pytorch": "pytorch:test", "nccl-efa": "nccl-efa:test",
          "tcpxo-daemon": "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpxo/tcpgpudmarxd-dev:t",
          "tcpx-daemon": "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/tcpgpudmarxd-dev:t"}
MACHINES = {"gpudirect-tcpxo": ("a3-megagpu-8g", "NVIDIA-H100-80GB-HBM3", "mega"),
            "gpudirect-tcpx": ("a3-highgpu-8g", "NVIDIA-H100-80GB-HBM3", "high"),
            "gpudirect-rdma": ("a3-ultragpu-8g", "NVIDIA-H200", "ultra")}


def world(kubeapi_factory, kind: str, hw: tools.Hardware | None = None):
    """Two nodes of the kind's machine type, labelled as aicp's fabric pools are."""
    machine, product, pool = MACHINES[kind]
    kube = kubeapi_factory("empty")
    standard_controllers(kube, dra=False, kueue=False)
    nodes = [o.gpu_node(f"{pool}-{i}", product=product, instance_type=machine,
                        accelerator="h100", pool=pool, ip=f"10.0.2.{i + 10}") for i in range(2)]
    for node in nodes:
        node["metadata"]["labels"][LABEL_FABRIC] = kind
    kube.seed(nodes)
    tools.install(kube, hw or tools.Hardware(gpudirect=kind))
    return kube


def stack_pool(kind: str) -> dict:
    """The pool as the stack's gpuPools output carries it (components/fabric.py)."""
    machine, _, pool = MACHINES[kind]
    return {"name": pool, "labels": {"aicp.dev/gpu-pool": pool}, "allocator": "device-plugin",
            "machineType": machine, "fabric": pool_fabric("gcp", machine, pool)}


def measure(kube, tmp_path, expectations: dict | None):
    client = connect(kube.write_kubeconfig(tmp_path / "kubeconfig.yaml"), None)
    settings = Settings("perf", "", IMAGES, expectations=expectations or {}, timing=FAST)
    return execute(client, settings, Plan(images=IMAGES), log=lambda _: None)


def created_pods(kube) -> dict[str, dict]:
    pods: dict[str, dict] = {}
    kube.on("pods", lambda e: pods.setdefault(e.obj["metadata"]["name"], e.obj))
    return pods


def transport(outcome):
    (found,) = [f for f in outcome.findings if f.metric == "fabric transport"]
    return found


def test_an_a3_mega_pool_is_judged_on_tcpxo_not_reported_as_fallen_back_to_sockets(
        kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory, "gpudirect-tcpxo")
    pods = created_pods(kube)
    outcome = measure(kube, tmp_path, {"gpuPools": [stack_pool("gpudirect-tcpxo")]})
    found = transport(outcome)
    assert (found.verdict, found.measured) == (Verdict.PASS, "FasTrak"), found.reason
    (busbw,) = [f for f in outcome.findings if f.metric == "fabric_busbw"]
    mega = catalog.FABRICS["a3-megagpu-8g"]
    assert (busbw.verdict, busbw.measured, busbw.expected) == (Verdict.PASS, 317.84, mega.gbps)
    assert outcome.pools[0]["fabricKind"] == "gpudirect-tcpxo"
    # Each worker: the RxDM sidecar as upstream's nccl-test-latest.yaml runs it, its devices
    # by NRI annotation (eight GPUs, control, UVM, dmabuf helper), the pool's NIC networks.
    worker = pods["fabric-mega-n1"]
    notes = worker["metadata"]["annotations"]
    assert notes["devices.gke.io/container.tcpxo-daemon"].splitlines() == [
        *(f"- path: /dev/nvidia{i}" for i in range(8)), "- path: /dev/nvidiactl",
        "- path: /dev/nvidia-uvm", "- path: /dev/dmabuf_import_helper"]
    assert notes["networking.gke.io/interfaces"] == stack_pool("gpudirect-tcpxo")[
        "fabric"]["podAnnotations"]["networking.gke.io/interfaces"]
    main, daemon = worker["spec"]["containers"]
    assert (main["name"], daemon["name"]) == ("main", "tcpxo-daemon")
    assert daemon["image"] == IMAGES["tcpxo-daemon"]
    assert "/fts/entrypoint_rxdm_container.sh --num_hops=2" in daemon["args"][0]
    assert daemon["securityContext"] == {"capabilities": {"add": ["NET_ADMIN",
                                                                  "NET_BIND_SERVICE"]}}
    assert "privileged" not in str(worker["spec"])
    assert {"name": "NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY", "value": "/dev/aperture_devices"} \
        in main["env"]
    # The plugin's profile reaches the SSH sessions mpirun starts the ranks in.
    script = main["command"][-1]
    assert script.index(". /usr/local/nvidia/lib64/nccl-env-profile.sh") < script.index(
        "/root/.ssh/environment") < script.index("exec /usr/sbin/sshd -De")
    launcher = pods["fabric-mega-launcher"]["spec"]["containers"][0]["command"][-1]
    assert "-x LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64 " in launcher
    assert "--mca oob_tcp_if_include eth0" in launcher
    # Single-node pods stay as they were: no sidecar, no networks.
    assert [c["name"] for c in pods["bench-n0"]["spec"]["containers"]] == ["main"]
    assert "annotations" not in pods["bench-n0"]["metadata"]


def test_a_tcpxo_pool_that_fell_back_to_sockets_still_fails(kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory, "gpudirect-tcpxo",
                 tools.Hardware(gpudirect="gpudirect-tcpxo", socket=True))
    outcome = measure(kube, tmp_path, {"gpuPools": [stack_pool("gpudirect-tcpxo")]})
    assert outcome.verdict is Verdict.FAIL
    found = transport(outcome)
    assert (found.verdict, found.measured) == (Verdict.FAIL, "Socket")
    assert found.reason.startswith("NCCL fell back to sockets (NET/Socket) on a3-megagpu-8g, "
                                   "whose fabric is 8 GPU NICs x 200 Gbps (GPUDirect-TCPXO): "
                                   "expected FasTrak or GPUDirectTCPXO")


def test_a_gpudirect_pool_without_its_networks_is_an_error_not_a_socket_verdict(
        kubeapi_factory, tmp_path):
    """Without the stack the run cannot name the pool's GPU NIC networks: it says so and
    runs no fabric step, rather than report the fallback its own pods would cause."""
    kube = world(kubeapi_factory, "gpudirect-tcpxo")
    pods = created_pods(kube)
    outcome = measure(kube, tmp_path, None)
    (busbw,) = [f for f in outcome.findings if f.metric == "fabric_busbw"]
    assert busbw.verdict is Verdict.ERROR
    assert "gpuPools[].fabric.podAnnotations" in busbw.reason and "--stack" in busbw.reason
    assert not [f for f in outcome.findings if f.metric == "fabric transport"]
    assert not [n for n in pods if n.startswith("fabric-")]


def test_an_a3_ultra_pool_runs_nccl_on_gib_with_the_plugins_environment(kubeapi_factory,
                                                                       tmp_path):
    kube = world(kubeapi_factory, "gpudirect-rdma")
    pods = created_pods(kube)
    outcome = measure(kube, tmp_path, {"gpuPools": [stack_pool("gpudirect-rdma")]})
    found = transport(outcome)
    assert (found.verdict, found.measured) == (Verdict.PASS, "gIB"), found.reason
    worker = pods["fabric-ultra-n0"]
    assert [c["name"] for c in worker["spec"]["containers"]] == ["main"]  # no sidecar
    paths = {v["hostPath"]["path"] for v in worker["spec"]["volumes"] if "hostPath" in v}
    assert paths == {"/home/kubernetes/bin/nvidia", "/home/kubernetes/bin/gib"}
    script = worker["spec"]["containers"][0]["command"][-1]
    assert script.index("source /usr/local/gib/scripts/set_nccl_env.sh") < script.index(
        "/root/.ssh/environment") < script.index("exec /usr/sbin/sshd -De")
    interfaces = worker["metadata"]["annotations"]["networking.gke.io/interfaces"]
    assert "ultra-rdma-7" in interfaces


def test_an_a3_high_pool_runs_nccl_on_gpudirect_tcpx_beside_its_tcpx_daemon(kubeapi_factory,
                                                                            tmp_path):
    """A3 High: the workers and the launcher upstream's gpudirect-tcpx/nccl-test-latest.yaml
    and nccl-config.yaml describe; the plugin reports itself as GPUDirectTCPX_v7. The
    world's bus bandwidth is the 2 GB row of the same A3 High run's capture
    (elideng-sg/hypercomputer-internode-deepdive assets/lab-18/after_tcpx_allreduce.txt)."""
    kube = world(kubeapi_factory, "gpudirect-tcpx",
                 tools.Hardware(gpudirect="gpudirect-tcpx", fabric_busbw=83.27))
    pods = created_pods(kube)
    outcome = measure(kube, tmp_path, {"gpuPools": [stack_pool("gpudirect-tcpx")]})
    found = transport(outcome)
    assert (found.verdict, found.measured) == (Verdict.PASS, "GPUDirectTCPX_v7"), found.reason
    (busbw,) = [f for f in outcome.findings if f.metric == "fabric_busbw"]
    assert (busbw.verdict, busbw.measured, busbw.expected) == (
        Verdict.PASS, 83.27, catalog.FABRICS["a3-highgpu-8g"].gbps)
    worker = pods["fabric-high-n0"]
    main, daemon = worker["spec"]["containers"]
    assert daemon["name"] == "tcpx-daemon" and daemon["image"] == IMAGES["tcpx-daemon"]
    assert daemon["command"][:3] == ["/tcpgpudmarxd/build/app/tcpgpudmarxd",
                                     "--gpu_nic_preset", "a3vm"]
    notes = worker["metadata"]["annotations"]
    assert "dmabuf" not in notes["devices.gke.io/container.tcpx-daemon"]
    sockets = {v["name"] for v in worker["spec"]["volumes"]
               if v.get("hostPath", {}).get("path") == "/run/tcpx"}
    assert {m["mountPath"] for c in (main, daemon) for m in c["volumeMounts"]
            if m["name"] in sockets} == {"/tmp", "/run/tcpx"}
    launcher = pods["fabric-high-launcher"]["spec"]["containers"][0]["command"][-1]
    assert "-x NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2,eth3,eth4 " in launcher
    assert "-x NCCL_GPUDIRECTTCPX_CTRL_DEV=eth0 " in launcher


def installer(name: str, image: str) -> dict:
    """The installer DaemonSet as upstream ships it (container-engine-accelerators
    gpudirect-tcpxo/nccl-tcpxo-installer.yaml: the plugin image in an init container)."""
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"k8s-app": name}},
                     "template": {"metadata": {"labels": {"k8s-app": name}}, "spec": {
                         "initContainers": [{"name": name, "image": image}],
                         "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]
                     }}}}


def test_the_rxdm_sidecar_follows_the_plugin_release_the_cluster_installed(kubeapi_factory,
                                                                          tmp_path):
    """A cluster whose installer runs plugin v1.0.17 (a working A3 Mega run paired it with
    RxDM v1.0.22) gets that sidecar, not the pinned v1.0.21."""
    kube = world(kubeapi_factory, "gpudirect-tcpxo")
    kube.seed([installer("nccl-tcpxo-installer", "us-docker.pkg.dev/gce-ai-infra/"
                         "gpudirect-tcpxo/nccl-plugin-gpudirecttcpx-dev:v1.0.17")])
    pods = created_pods(kube)
    outcome = measure(kube, tmp_path, {"gpuPools": [stack_pool("gpudirect-tcpxo")]})
    assert transport(outcome).verdict is Verdict.PASS
    daemon = pods["fabric-mega-n0"]["spec"]["containers"][1]
    assert daemon["image"] == IMAGES["tcpxo-daemon"].rsplit(":", 1)[0] + ":v1.0.22"


def test_a_plugin_release_without_a_known_rxdm_pair_is_an_error_before_any_worker(
        kubeapi_factory, tmp_path):
    kube = world(kubeapi_factory, "gpudirect-tcpxo")
    kube.seed([installer("nccl-tcpxo-installer", "us-docker.pkg.dev/gce-ai-infra/"
                         "gpudirect-tcpxo/nccl-plugin-gpudirecttcpx-dev:v9.9.9")])
    pods = created_pods(kube)
    outcome = measure(kube, tmp_path, {"gpuPools": [stack_pool("gpudirect-tcpxo")]})
    (busbw,) = [f for f in outcome.findings if f.metric == "fabric_busbw"]
    assert busbw.verdict is Verdict.ERROR
    assert busbw.reason.startswith("kube-system/nccl-tcpxo-installer installs NCCL plugin "
                                   "v9.9.9, whose RxDM (tcpgpudmarxd) release the run does "
                                   "not know")
    assert not [n for n in pods if n.startswith("fabric-")]

