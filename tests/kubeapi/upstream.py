"""Upstream captures in ``../shared/fixtures`` (see its README), parsed for the emulator.

The data is upstream's: each file's header names its source. Builders here only copy it
onto emulated nodes (a node name, a GPU index, a UUID made unique per node); they never
invent a field the capture does not show. Each loader skips the calling test, with the
reason, when ``../shared`` is absent (``tests.shared.require_shared``).
"""

from __future__ import annotations

import copy
import functools
import re

import yaml

from tests.shared import require_shared

_SERIES = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _text(name: str) -> str:
    return require_shared("fixtures", name).read_text()


@functools.cache
def _docs(name: str) -> tuple:
    return tuple(d for d in yaml.safe_load_all(_text(name)) if d is not None)


def device_classes() -> list[dict]:
    """Every DeviceClass the NVIDIA DRA chart installs with default values, listed by name
    (nvidia-dra-deviceclasses.yaml: dra-driver-nvidia-gpu v0.4.1 templates)."""
    return [copy.deepcopy(d) for d in _docs("nvidia-dra-deviceclasses.yaml")
            if d.get("kind") == "DeviceClass"]


def _slice_doc() -> dict:
    return next(d for d in _docs("nvidia-dra-resourceslice.yaml")
                if isinstance(d, dict) and d.get("kind") == "ResourceSlice")


def gpu_device() -> dict:
    """The full-GPU device of the driver's v1 ResourceSlice reference (doc 2)."""
    return copy.deepcopy(next(d for d in _slice_doc()["spec"]["devices"]
                              if d["attributes"]["type"]["string"] == "gpu"))


def mig_device() -> dict:
    """The MIG device of the driver's v1 ResourceSlice reference (doc 2)."""
    return copy.deepcopy(next(d for d in _slice_doc()["spec"]["devices"]
                              if d["attributes"]["type"]["string"] == "mig"))


def real_gpu_attributes() -> dict:
    """Doc 1: attributes a real GB200 node published (v1beta1 ``basic:`` unwrapped); its
    ``cudaDriverVersion`` is the semver ``12.8.0``."""
    doc = next(d for d in _docs("nvidia-dra-resourceslice.yaml") if isinstance(d, list))
    return copy.deepcopy(doc[0]["basic"]["attributes"])


def _uuid(node: str, index: int, prefix: str = "GPU") -> str:
    import hashlib
    h = hashlib.sha1(f"{node}-{index}".encode()).hexdigest()
    return f"{prefix}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def gpu_uuid(node: str, index: int) -> str:
    """The UUID the emulator gives GPU ``index`` of ``node`` (DRA devices, device plugin,
    DCGM series and ``nvidia-smi -L`` agree on it)."""
    return _uuid(node, index)


def gpu_slice(node: str, gpus: int, *, migs_per_gpu: int = 0, attributes: dict | None = None,
              driver: str = "gpu.nvidia.com") -> dict:
    """A ResourceSlice the GPU kubelet plugin would publish for ``node``: the reference
    device copied per GPU (``gpu-N``; with ``migs_per_gpu`` its MIG devices
    ``gpu-N-mig-<profile>-M`` instead, as the driver names them), UUIDs made unique.
    ``attributes`` overrides (e.g. ``real_gpu_attributes()``'s versions)."""
    devices = []
    for i in range(gpus):
        parent = gpu_uuid(node, i)
        if migs_per_gpu:
            for m in range(migs_per_gpu):
                d = mig_device()
                profile = d["attributes"]["profile"]["string"]
                d["name"] = f"gpu-{i}-mig-{profile}-{m}"
                d["attributes"]["parentUUID"] = {"string": parent}
                d["attributes"]["uuid"] = {"string": _uuid(node, i * 100 + m, "MIG")}
                d["attributes"].update(copy.deepcopy(attributes or {}))
                devices.append(d)
            continue
        d = gpu_device()
        d["name"] = f"gpu-{i}"
        d["attributes"]["uuid"] = {"string": parent}
        d["attributes"].update(copy.deepcopy(attributes or {}))
        devices.append(d)
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-{driver}"},
            "spec": {"driver": driver, "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}}


def gfd_labels(which: str) -> dict[str, str]:
    """GPU Feature Discovery labels (gfd-node-labels.yaml): ``mig-single-real`` (doc 1, a
    real GPU Operator node), ``mig-single`` (doc 2a), ``time-slicing`` (2b), ``renamed``
    (2c), ``versions`` (2d)."""
    index = {"mig-single-real": 0, "mig-single": 1, "time-slicing": 2, "renamed": 3,
             "versions": 4}[which]
    return {k: str(v) for k, v in _docs("gfd-node-labels.yaml")[index].items()}


def exporter_pod_labels() -> dict[str, dict[str, str]]:
    """How the GPU Operator labels its DCGM exporter pods, by mode: ``device-plugin``
    (ClusterPolicy) and ``dra`` (GPUCluster), from gpu-operator-dcgm-exporter-pods.yaml."""
    docs = _docs("gpu-operator-dcgm-exporter-pods.yaml")
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in docs]
    return {"device-plugin": dict(labels[0]), "dra": dict(labels[1])}


def exporter_pod_template(mode: str) -> dict:
    docs = _docs("gpu-operator-dcgm-exporter-pods.yaml")
    return copy.deepcopy(docs[0 if mode == "device-plugin" else 1]["spec"]["template"])


def dcgm_series(part: int) -> list[tuple[str, dict[str, str], str]]:
    """(metric, labels, value) of dcgm-exporter-metrics.txt part 1 (idle L40S) or 2 (MIG)."""
    out, current = [], 0
    for line in _text("dcgm-exporter-metrics.txt").splitlines():
        if line.startswith("# --- part"):
            current = int(line.split("part")[1].split()[0])
            continue
        m = _SERIES.match(line.strip())
        if m and current == part:
            out.append((m["name"], dict(_LABEL.findall(m["labels"])), m["value"]))
    return out


def nvidia_smi_mig_lines() -> list[str]:
    """The MIG part of nvidia-smi-L.txt, as printed (parent ``GPU N:`` lines and indented
    ``MIG ... Device N:`` lines)."""
    text = _text("nvidia-smi-L.txt")
    part = text.split("--- MIG", 1)[1]
    return [line for line in part.splitlines() if line.strip()]
