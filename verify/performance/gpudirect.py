"""What a GKE GPUDirect pool's NCCL workers need beyond the GPUs and the NIC annotations.

A fabric worker on an A3 High (GPUDirect-TCPX) or A3 Mega (GPUDirect-TCPXO) node runs the
receive-datapath daemon (RxDM, the ``tcpgpudmarxd`` image) beside NCCL, gets the GPU devices
into that unprivileged sidecar through the NRI device injector's ``devices.gke.io/
container.<name>`` annotation, mounts the NCCL plugin the installer DaemonSet put under
``/home/kubernetes/bin/nvidia``, and runs NCCL with the plugin's configuration. An A3 Ultra
(GPUDirect-RDMA) worker needs no sidecar: it mounts the gIB plugin and sources its
``set_nccl_env.sh``. Without these NCCL cannot load the plugin and falls back to sockets, so
the run would blame the fabric for its own pod spec.

Sources (each part below names its own):

- TCPXO: GoogleCloudPlatform/container-engine-accelerators@992db81
  ``gpudirect-tcpxo/nccl-test-latest.yaml`` (sidecar, annotations, volumes) and
  ``gpudirect-tcpxo/README.md`` ("NCCL configs": ``NCCL_LIB_DIR`` and
  ``source ${NCCL_LIB_DIR}/nccl-env-profile.sh``); GoogleCloudPlatform/cluster-toolkit@1047080
  ``modules/compute/gke-node-pool/gpu-direct-workload/scripts/enable-tcpxo-in-workload.py``;
  NVIDIA/aicr@bc05c6b ``validators/performance/testdata/h100/gke/runtime.yaml`` (the profile's
  ``NCCL_*``/``CUDA_*`` variables handed to ``mpirun``'s SSH sessions through
  ``~/.ssh/environment``, MPI kept on eth0, the launcher's ``-x`` list) and
  ``docs/integrator/gke-tcpxo-networking.md``.
- TCPX: container-engine-accelerators@992db81 ``gpudirect-tcpx/nccl-test-latest.yaml``
  (sidecar, annotations, volumes) and ``gpudirect-tcpx/nccl-config.yaml`` (``run-nccl.sh``:
  the NCCL variables, passed with ``mpirun -x``; TCPX ships no profile script).
- RDMA: container-engine-accelerators@992db81 ``gpudirect-rdma/nccl-test.yaml`` (the gIB and
  driver mounts, ``source /usr/local/gib/scripts/set_nccl_env.sh``); Google Cloud docs
  ai-hypercomputer/docs/nccl/test-vms ("Enable NCCL/gIB").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TCPX, TCPXO, RDMA = "gpudirect-tcpx", "gpudirect-tcpxo", "gpudirect-rdma"
# The GKE machine types of each kind (the rows of aicp's fabric catalog, components/
# fabric.py; GKE docs gpu-bandwidth-gpudirect-tcpx: A3 High TCPX, A3 Mega TCPXO;
# gpu-bandwidth-gpudirect-rdma: A3 Ultra), for pools the stack does not describe.
KIND_OF_MACHINE = {"a3-highgpu-8g": TCPX, "a3-megagpu-8g": TCPXO, "a3-ultragpu-8g": RDMA}
# The sidecar's image key (verify/images.py PERFORMANCE) and container name per kind.
DAEMONS = {TCPX: "tcpx-daemon", TCPXO: "tcpxo-daemon"}

# The NCCL plugin installer DaemonSet of each kind (kube-system; container-engine-accelerators
# gpudirect-tcpx(o)/nccl-tcpx(o)-installer.yaml, the names aicp's addon keeps), the plugin
# image's name, and the RxDM release each plugin release pairs with: "The tcpxo-daemon
# version is coupled with the NCCL plugin installer version" (gpudirect-tcpxo/README.md).
# Pairs: TCPXO v1.0.14/v1.0.20 and v1.0.15/v1.0.21 (that README's Nov 19, 2025 and Jan 9,
# 2026 releases), v1.0.17/v1.0.22 (a working 2 x A3 Mega run, elideng-sg/
# hypercomputer-internode-deepdive assets/lab-22/tcpxo_allreduce_16gpu.txt); TCPX
# v3.1.9/v2.0.12 (cluster-toolkit@1047080 modules/compute/gke-node-pool/gpu_direct.tf),
# v3.1.12/v2.0.15 (a working 2 x A3 High run, the same repository's
# assets/lab-18/after_tcpx_allreduce.txt).
INSTALLERS = {TCPX: "nccl-tcpx-installer", TCPXO: "nccl-tcpxo-installer"}
PLUGIN_IMAGE = "nccl-plugin-gpudirecttcpx-dev"
RXDM_FOR_PLUGIN = {
    TCPXO: {"v1.0.14": "v1.0.20", "v1.0.15": "v1.0.21", "v1.0.17": "v1.0.22"},
    TCPX: {"v3.1.9": "v2.0.12", "v3.1.12": "v2.0.15"},
}


def installed_plugin(daemonset: dict | None) -> str | None:
    """The plugin release an installer DaemonSet installs (its image's tag), or None."""
    spec = (((daemonset or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        ref = str(container.get("image") or "").split("@", 1)[0]
        name, _, tag = ref.rpartition(":")
        if name.rsplit("/", 1)[-1] == PLUGIN_IMAGE and tag:
            return tag
    return None


def rxdm_image(kind: str, pinned: str, plugin: str | None) -> str | None:
    """The RxDM image for the plugin the nodes run: the pinned one (``pinned``, mirror
    rewriting kept) with the paired tag; ``pinned`` itself when the plugin is unknown to the
    run (no installer found: not aicp's, or not readable); None for a plugin release whose
    pair the run does not know."""
    if plugin is None:
        return pinned
    paired = RXDM_FOR_PLUGIN[kind].get(plugin)
    return None if paired is None else f"{pinned.rsplit(':', 1)[0]}:{paired}"


# Where the installers put the driver and the NCCL plugin on the host, and where upstream's
# workloads mount them.
HOST_NVIDIA = "/home/kubernetes/bin/nvidia"
NVIDIA = "/usr/local/nvidia"
NVIDIA_LIB = f"{NVIDIA}/lib64"


@dataclass(frozen=True)
class WorkerParts:
    """What the run adds to a fabric worker pod and to the launcher's ``mpirun``."""

    annotations: dict[str, str] = field(default_factory=dict)
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # the NCCL container's
    env: dict[str, str] = field(default_factory=dict)  # the NCCL container's
    # Shell run in the worker before its sshd: what NCCL's ranks, started over SSH, inherit.
    prelude: str = ""
    # mpirun options of the launcher, and the LD_LIBRARY_PATH its ranks get ("" = its own).
    mpirun: str = ""
    ld_library_path: str = ""


def kind_of(fabric_kind: str, machine: str) -> str:
    """The pool's GPUDirect kind ("" for none): the stack's ``fabric.kind`` or aicp's node
    label, else the machine type's."""
    if fabric_kind:
        return fabric_kind if fabric_kind in (TCPX, TCPXO, RDMA) else ""
    return KIND_OF_MACHINE.get(machine, "")


def devices_annotation(gpus: int, dmabuf: bool) -> str:
    """The NRI device injector's list (nri_device_injector/README.md: ``- path: ...`` per
    device): every GPU, the control and UVM devices, and TCPXO's dmabuf import helper
    (aicr's ``buildNRIDeviceAnnotation``, validators/performance/nccl_gke_utils.go)."""
    paths = [f"/dev/nvidia{i}" for i in range(gpus)] + ["/dev/nvidiactl", "/dev/nvidia-uvm"]
    if dmabuf:
        paths.append("/dev/dmabuf_import_helper")
    return "".join(f"- path: {p}\n" for p in paths)


def _host(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path}}


_SHM = {"name": "dshm", "emptyDir": {"medium": "Memory"}}
def _to_ssh(env_after_profile: str) -> str:
    """The variables a plugin's profile sets, for the SSH sessions mpirun starts the ranks in:
    aicr's worker runs ``env | grep -E '^NCCL_|^CUDA_' > /root/.ssh/environment`` with
    ``PermitUserEnvironment yes``. NCCL_DEBUG is left to the launcher's ``-x
    NCCL_DEBUG=INFO``, which prints the transport lines the run judges. A profile that is
    not there (no installer on the node) does not stop sshd: NCCL then runs without the
    plugin and the run reports the fallback it sees."""
    return (f"{env_after_profile} | grep -E '^(NCCL|CUDA)_' | grep -v '^NCCL_DEBUG' "
            ">> /root/.ssh/environment; "
            "echo 'PermitUserEnvironment yes' >> /etc/ssh/sshd_config; ")
# MPI's own traffic stays on the pod network (eth0); the GPU NICs are NCCL's (aicr runtime).
_MPI_ON_ETH0 = "--mca oob_tcp_if_include eth0 --mca btl_tcp_if_include eth0 "


def tcpxo(gpus: int, image: str) -> WorkerParts:
    """A3 Mega: the ``tcpxo-daemon`` RxDM sidecar, unprivileged with NET_ADMIN and
    NET_BIND_SERVICE, its devices by NRI annotation, host /sys and /proc/sys as
    /hostsysfs and /hostprocsysfs; the NCCL container with the aperture devices and
    ``NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY``; the plugin's ``nccl-env-profile.sh``."""
    sidecar = {
        "name": DAEMONS[TCPXO], "image": image, "command": ["/bin/sh", "-c"],
        "args": ["set -ex\nchmod 755 /fts/entrypoint_rxdm_container.sh\n"
                 "/fts/entrypoint_rxdm_container.sh --num_hops=2\n"],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]}},
        "volumeMounts": [{"name": "nvidia", "mountPath": NVIDIA, "readOnly": True},
                         {"name": "sys", "mountPath": "/hostsysfs"},
                         {"name": "proc-sys", "mountPath": "/hostprocsysfs"}],
        "env": [{"name": "LD_LIBRARY_PATH", "value": NVIDIA_LIB}]}
    return WorkerParts(
        annotations={f"devices.gke.io/container.{DAEMONS[TCPXO]}": devices_annotation(
            gpus, dmabuf=True)},
        sidecars=[sidecar],
        volumes=[_host("nvidia", HOST_NVIDIA), _host("sys", "/sys"),
                 _host("proc-sys", "/proc/sys"),
                 _host("aperture-devices", "/dev/aperture_devices"), _SHM],
        mounts=[{"name": "nvidia", "mountPath": NVIDIA, "readOnly": True},
                {"name": "aperture-devices", "mountPath": "/dev/aperture_devices"},
                {"name": "dshm", "mountPath": "/dev/shm"}],
        env={"NCCL_LIB_DIR": NVIDIA_LIB,
             "NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY": "/dev/aperture_devices"},
        prelude=_to_ssh(f"(. {NVIDIA_LIB}/nccl-env-profile.sh && env)"),
        mpirun=(_MPI_ON_ETH0 + "-x NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY=/dev/aperture_devices "
                "-x NCCL_DYNAMIC_CHUNK_SIZE=524288 -x CUDA_DEVICE_MAX_CONNECTIONS=1 "),
        # The image's NCCL core first, then the plugin (aicr's runtime: "LD_LIBRARY_PATH=
        # /usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64").
        ld_library_path=f"/usr/lib/x86_64-linux-gnu:{NVIDIA_LIB}")


# gpudirect-tcpx/nccl-config.yaml run-nccl.sh, for the four GPU NICs of an A3 High node
# (eth1-eth4; eth0 the pod network). Its CPU bindings are a3-highgpu-8g's cores.
TCPX_NCCL = {
    "NCCL_SOCKET_IFNAME": "eth0", "NCCL_ALGO": "Ring,Tree", "NCCL_PROTO": "Simple",
    "NCCL_CROSS_NIC": "0", "NCCL_NET_GDR_LEVEL": "PIX", "NCCL_P2P_PXN_LEVEL": "0",
    "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME": "eth1,eth2,eth3,eth4",
    "NCCL_GPUDIRECTTCPX_CTRL_DEV": "eth0", "NCCL_DYNAMIC_CHUNK_SIZE": "524288",
    "NCCL_P2P_NET_CHUNKSIZE": "524288", "NCCL_P2P_PCI_CHUNKSIZE": "524288",
    "NCCL_P2P_NVL_CHUNKSIZE": "1048576", "NCCL_BUFFSIZE": "4194304",
    "NCCL_NSOCKS_PERTHREAD": "4", "NCCL_SOCKET_NTHREADS": "1",
    "NCCL_GPUDIRECTTCPX_TX_BINDINGS":
        "eth1:8-21,112-125;eth2:8-21,112-125;eth3:60-73,164-177;eth4:60-73,164-177",
    "NCCL_GPUDIRECTTCPX_RX_BINDINGS":
        "eth1:22-35,126-139;eth2:22-35,126-139;eth3:74-87,178-191;eth4:74-87,178-191",
    "NCCL_GPUDIRECTTCPX_PROGRAM_FLOW_STEERING_WAIT_MICROS": "500000",
}


def tcpx(gpus: int, image: str) -> WorkerParts:
    """A3 High: the ``tcpx-daemon`` RxDM sidecar (NET_ADMIN, devices by NRI annotation)
    serving NCCL through its Unix socket directory ``/run/tcpx``, which the NCCL container
    mounts at ``/tmp`` as upstream's does; the plugin's libraries at /usr/local/nvidia/lib64;
    the NCCL variables of ``run-nccl.sh`` passed by ``mpirun -x``."""
    sidecar = {
        "name": DAEMONS[TCPX], "image": image,
        "command": ["/tcpgpudmarxd/build/app/tcpgpudmarxd", "--gpu_nic_preset", "a3vm",
                    "--gpu_shmem_type", "fd", "--uds_path", "/run/tcpx",
                    "--setup_param", "\\\"--verbose 128 2 0 \\\""],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
        "volumeMounts": [{"name": "libraries", "mountPath": NVIDIA_LIB},
                         {"name": "tcpx-socket", "mountPath": "/run/tcpx"},
                         {"name": "sys", "mountPath": "/hostsysfs"},
                         {"name": "proc-sys", "mountPath": "/hostprocsysfs"}],
        "env": [{"name": "LD_LIBRARY_PATH", "value": NVIDIA_LIB}]}
    return WorkerParts(
        annotations={f"devices.gke.io/container.{DAEMONS[TCPX]}": devices_annotation(
            gpus, dmabuf=False)},
        sidecars=[sidecar],
        volumes=[_host("libraries", f"{HOST_NVIDIA}/lib64"), _host("tcpx-socket", "/run/tcpx"),
                 _host("sys", "/sys"), _host("proc-sys", "/proc/sys"), _SHM],
        mounts=[{"name": "libraries", "mountPath": NVIDIA_LIB},
                {"name": "tcpx-socket", "mountPath": "/tmp"},
                {"name": "dshm", "mountPath": "/dev/shm"}],
        mpirun=_MPI_ON_ETH0 + "".join(f"-x {k}={v} " for k, v in TCPX_NCCL.items()),
        ld_library_path=f"/usr/lib/x86_64-linux-gnu:{NVIDIA_LIB}")


def rdma() -> WorkerParts:
    """A3 Ultra: the driver and gIB directories the installer fills, shared memory, and the
    plugin's ``set_nccl_env.sh`` (``NCCL_NET=gIB`` and its tuning) handed to the ranks."""
    return WorkerParts(
        volumes=[_host("nvidia", HOST_NVIDIA), _host("gib", "/home/kubernetes/bin/gib"), _SHM],
        mounts=[{"name": "nvidia", "mountPath": NVIDIA},
                {"name": "gib", "mountPath": "/usr/local/gib"},
                {"name": "dshm", "mountPath": "/dev/shm"}],
        # upstream sources it from bash (``/bin/bash -c``), so the run does too
        prelude=_to_ssh("bash -c 'source /usr/local/gib/scripts/set_nccl_env.sh && env'"),
        mpirun=_MPI_ON_ETH0,
        # "The /usr/local/gib/lib64 directory is in your LD_LIBRARY_PATH" (Google Cloud docs,
        # https://docs.cloud.google.com/ai-hypercomputer/docs/nccl/test-vms, "Enable
        # NCCL/gIB"); the gIB package bundles its own NCCL core there.
        ld_library_path=f"/usr/local/gib/lib64:{NVIDIA_LIB}")


def worker_parts(kind: str, gpus: int, images: dict[str, str]) -> WorkerParts | None:
    """The parts of a pool's GPUDirect kind (None: not a GKE GPUDirect pool). ``images``:
    the run's image references by key (``tcpx-daemon``, ``tcpxo-daemon``)."""
    if kind == TCPXO:
        return tcpxo(gpus, images[DAEMONS[TCPXO]])
    if kind == TCPX:
        return tcpx(gpus, images[DAEMONS[TCPX]])
    if kind == RDMA:
        return rdma()
    return None
