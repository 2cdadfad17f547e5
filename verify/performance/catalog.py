"""Published figures the performance run measures against, each with its source.

One catalog: GPUs (``GPUS``: dense tensor TFLOP/s per data type, memory bandwidth, GPU-to-GPU
link bandwidth) and machine types' fabrics (``FABRICS``: the GPU network of one node, the
transport NCCL should use over it). Every figure names the page it was read from. Datasheets
quote tensor throughput "with sparsity" (2:4 structured sparsity doubles it, the footnote
``*`` of each table); the run multiplies dense matrices, so the dense figure (half the sparse
one, or the one printed beside it) is kept here.

Reconcile with ``components/accelerators.py``: the provisioning side keeps its own table of
machine types (and may gain one of fabric interfaces). ``verify`` must not import it (layer
contract), so the fabric figures the performance gate uses live here, with their sources.

Default thresholds (``DEFAULT_FRACTIONS``) are fractions of these figures, overridable per
pool. Why fractions and not absolute floors: NVIDIA/aicr gates NCCL bus bandwidth with fixed
floors (>= 300 / 250 / 100 GB/s on EKS / GKE / AKS, recipes/overlays/h100-*-training.yaml),
which false-fail smaller SKUs (NVIDIA/aicr#1256) and had to be recalibrated to production
baselines (NVIDIA/aicr#2784); a fraction of each product's own figure scales with the SKU.
GoogleCloudPlatform/cluster-toolkit's daily A3 Ultra test gates two nodes' nccl-tests "Avg
bus bandwidth" (the mean over all message sizes) at >= 100 GB/s (tools/cloud-build/
daily-tests/ansible_playbooks/test-validation/test-gke-a3-ultra.yml); aicp judges the
largest message size's bus bandwidth instead, where latency no longer counts, so the
fraction compares like with like across message ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

H100_PAGE = "https://www.nvidia.com/en-us/data-center/h100/ (H100 datasheet, specifications)"
H100_PCIE = ("NVIDIA H100 Tensor Core GPU datasheet (2022, H100 PCIe column), "
             "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet")
H200_PAGE = "https://www.nvidia.com/en-us/data-center/h200/ (H200 SXM specifications)"
HGX_PAGE = ("https://www.nvidia.com/en-us/data-center/hgx/ (HGX B200 specifications, "
            "8-GPU totals divided by 8)")
A100_PAGE = "https://www.nvidia.com/en-us/data-center/a100/ (A100 specifications)"
L40S_PAGE = "https://www.nvidia.com/en-us/data-center/l40s/ (L40S specifications)"
L4_PAGE = "https://www.nvidia.com/en-us/data-center/l4/ (L4 specifications)"
A10_PAGE = "https://www.nvidia.com/en-us/data-center/products/a10-gpu/ (A10 specifications)"
T4_PAGE = "https://www.nvidia.com/en-us/data-center/tesla-t4/ (T4 specifications)"


@dataclass(frozen=True)
class Gpu:
    """One GPU product's published figures.

    ``tflops``: dense tensor TFLOP/s per data type (``bf16``, ``fp8``; ``fp16`` where the GPU
    has no bf16). ``memory_gbps``: GPU memory bandwidth, GB/s. ``link_gbps``: what one GPU
    can send to the others of its node in one direction, GB/s (NVLink: half the
    bidirectional figure datasheets print; PCIe: one direction of the slot), the figure a
    node's all-reduce bus bandwidth is judged against. ``sources``: figure -> where it was
    read.
    """

    name: str
    tflops: dict[str, float]
    memory_gbps: float
    link_gbps: float
    link: str
    sources: dict[str, str] = field(default_factory=dict)


def _gpu(name: str, tflops: dict[str, float], memory: float, link: float, link_name: str,
         page: str, note: str = "") -> Gpu:
    sources = {f"{dtype}_tflops": f"{page}{note}" for dtype in tflops}
    sources["memory_gbps"] = page
    sources["link_gbps"] = page
    return Gpu(name, tflops, memory, link, link_name, sources)


_HALF = "; dense = half the figure printed with sparsity"

GPUS: dict[str, Gpu] = {
    # BF16 1,979* / FP8 3,958* TFLOPS (*with sparsity), 3.35 TB/s HBM3, NVLink 900 GB/s.
    "h100-sxm": _gpu("NVIDIA H100 SXM", {"bf16": 989.5, "fp8": 1979.0}, 3350.0, 450.0,
                     "NVLink 4 (900 GB/s bidirectional)", H100_PAGE, _HALF),
    # BF16 1,671* / FP8 3,341*, 3.9 TB/s, NVLink bridge 600 GB/s.
    "h100-nvl": _gpu("NVIDIA H100 NVL", {"bf16": 835.5, "fp8": 1670.5}, 3900.0, 64.0,
                     "PCIe Gen5 x16 (64 GB/s one way; NVLink bridges pair only two)",
                     H100_PAGE, _HALF),
    # BF16 1,513* / FP8 3,026*, 2 TB/s HBM2e, PCIe Gen5 128 GB/s bidirectional.
    "h100-pcie": _gpu("NVIDIA H100 PCIe", {"bf16": 756.5, "fp8": 1513.0}, 2000.0, 64.0,
                      "PCIe Gen5 x16 (128 GB/s bidirectional)", H100_PCIE, _HALF),
    # Same tensor figures as H100 SXM; 4.8 TB/s HBM3e, NVLink 900 GB/s.
    "h200": _gpu("NVIDIA H200 SXM", {"bf16": 989.5, "fp8": 1979.0}, 4800.0, 450.0,
                 "NVLink 4 (900 GB/s bidirectional)", H200_PAGE, _HALF),
    # HGX B200: FP16/BF16 36 PF*, FP8 72 PF* for 8 GPUs; 64 TB/s HBM3e total (8 TB/s each);
    # NVLink 5 1.8 TB/s per GPU.
    "b200": _gpu("NVIDIA B200", {"bf16": 2250.0, "fp8": 4500.0}, 8000.0, 900.0,
                 "NVLink 5 (1.8 TB/s bidirectional)", HGX_PAGE, _HALF),
    # BF16 312 dense (624*), no FP8; 80GB SXM 2,039 GB/s; NVLink 600 GB/s.
    "a100-sxm-80gb": _gpu("NVIDIA A100 SXM 80GB", {"bf16": 312.0}, 2039.0, 300.0,
                          "NVLink 3 (600 GB/s bidirectional)", A100_PAGE),
    "a100-sxm-40gb": _gpu("NVIDIA A100 SXM 40GB", {"bf16": 312.0}, 1555.0, 300.0,
                          "NVLink 3 (600 GB/s bidirectional)", A100_PAGE),
    "a100-pcie-80gb": _gpu("NVIDIA A100 PCIe 80GB", {"bf16": 312.0}, 1935.0, 32.0,
                           "PCIe Gen4 x16 (64 GB/s bidirectional)", A100_PAGE),
    # BF16 362.05 dense (733*), FP8 733 dense (1,466*); 864 GB/s; PCIe Gen4 x16 64 GB/s.
    "l40s": _gpu("NVIDIA L40S", {"bf16": 362.05, "fp8": 733.0}, 864.0, 32.0,
                 "PCIe Gen4 x16 (64 GB/s bidirectional)", L40S_PAGE),
    # BF16 242* / FP8 485* (with sparsity); 300 GB/s; PCIe Gen4 x16.
    "l4": _gpu("NVIDIA L4", {"bf16": 121.0, "fp8": 242.5}, 300.0, 32.0,
               "PCIe Gen4 x16 (64 GB/s bidirectional)", L4_PAGE, _HALF),
    # BF16 125 dense (250*); 600 GB/s; PCIe Gen4.
    "a10": _gpu("NVIDIA A10", {"bf16": 125.0}, 600.0, 32.0,
                "PCIe Gen4 x16 (64 GB/s bidirectional)", A10_PAGE),
    # Turing has no bf16: mixed-precision FP16/FP32 65 TFLOPS; 320+ GB/s; PCIe Gen3 x16.
    "t4": _gpu("NVIDIA T4", {"fp16": 65.0}, 320.0, 16.0,
               "PCIe Gen3 x16 (32 GB/s bidirectional)", T4_PAGE),
}

# Products NVIDIA publishes no datasheet for are left out on purpose: the AWS-only A10G has
# none (AWS's g5 page gives no tensor or memory figure), so its GPUs are measured and
# reported, and their fractions are "no published figure" (SKIP), never guessed.
UNPUBLISHED = {"a10g": "NVIDIA A10G (AWS g5): NVIDIA publishes no datasheet for it"}

# GPU Feature Discovery's ``nvidia.com/gpu.product`` (the NVML name with spaces as dashes,
# NVIDIA/k8s-device-plugin internal/lm/resource.go) or ``nvidia-smi``'s name -> catalog key.
# First match wins: the specific names come before the general ones.
_PRODUCTS: tuple[tuple[str, str], ...] = (
    (r"H100.*NVL", "h100-nvl"), (r"H100.*PCIE", "h100-pcie"), (r"H100", "h100-sxm"),
    (r"GH200|H200", "h200"), (r"B200", "b200"),
    (r"A100.*PCIE.*80|A100.*80.*PCIE", "a100-pcie-80gb"), (r"A100.*40", "a100-sxm-40gb"),
    (r"A100", "a100-sxm-80gb"), (r"L40S", "l40s"), (r"(^|\W)L4($|\W)", "l4"),
    (r"A10G", "a10g"), (r"(^|\W)A10($|\W)", "a10"), (r"T4($|\W)", "t4"),
)


def product_key(product: str) -> str | None:
    """The catalog key for a GPU product name (a GFD label or nvidia-smi's), or None."""
    text = product.upper().replace("-", " ")
    for pattern, key in _PRODUCTS:
        if re.search(pattern, text):
            return key
    return None


@dataclass(frozen=True)
class Fabric:
    """The GPU network of one machine type: the sum of its GPU NICs, and NCCL's transport.

    ``gbps``: what one node can send over its GPU NICs, GB/s (the published Gbit/s over 8).
    ``transports``: the NCCL network names NCCL reports for it (``NCCL INFO Using network
    X``, or the ``NET/X`` prefix of its lines); ``Socket`` is never one of them.
    """

    machine: str
    gbps: float
    interfaces: str
    transports: tuple[str, ...]
    source: str


_P5 = "https://aws.amazon.com/ec2/instance-types/p5/ (network bandwidth: 3200 Gbps EFA)"
_P4 = "https://aws.amazon.com/ec2/instance-types/p4/ (p4d.24xlarge: 400 Gbps EFA)"
_A3 = "https://cloud.google.com/compute/docs/accelerator-optimized-machines#a3-vms"
_ND = "https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/"
# aws-ofi-nccl registers its network as "AWS Libfabric" (NET/OFI lines); GPUDirect-TCPX(O)
# plugins as "GPUDirectTCPX"/"FasTrak"; InfiniBand and RoCE (Google's gIB plugin included)
# as "IB"/"gIB" (NVIDIA/nccl src/transport/net_ib.cc ncclNetIb name "IB").
_OFI = ("AWS Libfabric", "OFI")
_TCPXO = ("FasTrak", "GPUDirectTCPXO")
# The TCPX plugin names its network with its API version: "Using network GPUDirectTCPX_v7"
# (a 2 x a3-highgpu-8g run, plugin v3.1.12: elideng-sg/hypercomputer-internode-deepdive
# assets/lab-18/after_tcpx_transport.txt); TCPXO's is "FasTrak" (the same repository's
# assets/lab-22/tcpxo_transport_fastrak.txt, plugin v1.0.17).
_TCPX = ("GPUDirectTCPX", "GPUDirectTCPX_v7")
_IB = ("IB", "gIB")

FABRICS: dict[str, Fabric] = {f.machine: f for f in (
    Fabric("p5.48xlarge", 400.0, "32 EFA interfaces, 3200 Gbps", _OFI, _P5),
    Fabric("p5e.48xlarge", 400.0, "32 EFA interfaces, 3200 Gbps", _OFI,
           "https://aws.amazon.com/ec2/instance-types/p5/ (p5e.48xlarge: 3200 Gbps EFA)"),
    Fabric("p5en.48xlarge", 400.0, "16 EFAv3 interfaces, 3200 Gbps", _OFI,
           "https://aws.amazon.com/ec2/instance-types/p5/ (p5en.48xlarge: 3200 Gbps EFA)"),
    Fabric("p4d.24xlarge", 50.0, "4 EFA interfaces, 400 Gbps", _OFI, _P4),
    Fabric("a3-megagpu-8g", 200.0, "8 GPU NICs x 200 Gbps (GPUDirect-TCPXO)", _TCPXO,
           f"{_A3} (A3 Mega: 8 x 200 Gbps GPU NICs)"),
    Fabric("a3-highgpu-8g", 100.0, "4 GPU NICs x 200 Gbps (GPUDirect-TCPX)", _TCPX,
           f"{_A3} (A3 High: 4 x 200 Gbps GPU NICs)"),
    Fabric("a3-ultragpu-8g", 400.0, "8 RDMA NICs x 400 Gbps (RoCE)", _IB,
           f"{_A3} (A3 Ultra: 8 x 400 Gbps GPU NICs, GPUDirect RDMA)"),
    Fabric("Standard_ND96isr_H100_v5", 400.0, "8 x 400 Gb/s NDR InfiniBand", _IB,
           f"{_ND}nd-family/nd-h100-v5-series (3.2 Tbps InfiniBand per VM)"),
    Fabric("Standard_ND96isr_H200_v5", 400.0, "8 x 400 Gb/s NDR InfiniBand", _IB,
           f"{_ND}nd-family/nd-h200-v5-series (3.2 Tbps InfiniBand per VM)"),
    Fabric("Standard_ND96asr_v4", 200.0, "8 x 200 Gb/s HDR InfiniBand", _IB,
           f"{_ND}nd-family/nda100v4-series (1.6 Tbps InfiniBand per VM)"),
)}

SOCKET = "Socket"  # NCCL's fallback: its own TCP sockets (NVIDIA/nccl src/transport/net_socket.cc)

# Default thresholds: a measurement passes at or above this fraction of its published figure.
# - bf16/fp8: a tuned dense GEMM reaches 0.6-0.8 of the dense datasheet peak at boost
#   clocks; fp8 through torch._scaled_mm is less tuned, so its floor is lower.
# - memoryBandwidth: a device-to-device copy reaches ~0.8-0.9 of the HBM figure.
# - nodeBusBw / fabricBusBw: aicr's EKS floor of 300 GB/s is 0.75 of p5's 400 GB/s; its GKE
#   and AKS floors are lower, and NVIDIA/aicr#2784 recalibrated to production baselines:
#   0.6 of the published link figure catches a lost NVLink or a degraded NIC without
#   false-failing a healthy node.
# - stragglerShare: a node more than 10% below its pool's median is named (aicr's
#   nccl-all-reduce-bw validator logs the same 10% tolerance).
DEFAULT_FRACTIONS: dict[str, float] = {
    "bf16": 0.6, "fp8": 0.5, "fp16": 0.6, "memoryBandwidth": 0.75, "nodeBusBw": 0.6,
    "fabricBusBw": 0.6, "stragglerShare": 0.10,
}

# dcgmi diag levels (DCGM User Guide, "Run Levels": 1 quick, 2 medium ~2 min, 3 long ~30
# min, 4 extended ~1-2 h) and the seconds the run allows each.
DIAG_SECONDS = {1: 300.0, 2: 900.0, 3: 2700.0, 4: 9000.0}
