"""The accelerator catalog: which machine types carry which GPU on each target.

One place, data only. Counts and memory follow the clouds' published machine families
(AWS p5/p5e/p4d/p4de/g6/g6e, GCP A3/A2/G2, Azure ND/NC H100/H200/A100 v4/v5, NCasT4_v3); GKE's
accelerator type names follow the Compute Engine ``acceleratorTypes`` list.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("aws", "gcp", "azure", "onprem")


@dataclass(frozen=True)
class Accelerator:
    name: str  # our short name, used in config and in the aicp.dev/accelerator label
    product: str  # what GPU Feature Discovery reports as nvidia.com/gpu.product
    memory_gib: int


@dataclass(frozen=True)
class Offering:
    target: str
    accelerator: str
    machine_type: str
    gpus: int
    gpu_memory_gib: int
    gke_accelerator: str | None = None  # GKE guest_accelerator type


ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator("h100", "NVIDIA-H100-80GB-HBM3", 80),
        Accelerator("h200", "NVIDIA-H200", 141),
        Accelerator("a100", "NVIDIA-A100-SXM4-80GB", 80),
        Accelerator("l40s", "NVIDIA-L40S", 48),
        Accelerator("l4", "NVIDIA-L4", 24),
        # GFD's product label of a T4 (NVIDIA/k8s-device-plugin gpu-feature-discovery
        # labels the product name with spaces as '-': "Tesla T4" → Tesla-T4).
        Accelerator("t4", "Tesla-T4", 16),
    )
}

# The first offering per (target, accelerator) is the default machine type.
OFFERINGS: tuple[Offering, ...] = (
    Offering("aws", "h100", "p5.48xlarge", 8, 80),
    Offering("aws", "h200", "p5e.48xlarge", 8, 141),
    Offering("aws", "h200", "p5en.48xlarge", 8, 141),
    Offering("aws", "a100", "p4de.24xlarge", 8, 80),
    Offering("aws", "a100", "p4d.24xlarge", 8, 40),
    Offering("aws", "l40s", "g6e.xlarge", 1, 48),
    Offering("aws", "l40s", "g6e.12xlarge", 4, 48),
    Offering("aws", "l40s", "g6e.48xlarge", 8, 48),
    Offering("aws", "l4", "g6.xlarge", 1, 24),
    Offering("aws", "l4", "g6.12xlarge", 4, 24),
    Offering("aws", "l4", "g6.48xlarge", 8, 24),
    Offering("gcp", "h100", "a3-highgpu-8g", 8, 80, "nvidia-h100-80gb"),
    Offering("gcp", "h100", "a3-highgpu-1g", 1, 80, "nvidia-h100-80gb"),
    Offering("gcp", "h100", "a3-megagpu-8g", 8, 80, "nvidia-h100-mega-80gb"),
    Offering("gcp", "h200", "a3-ultragpu-8g", 8, 141, "nvidia-h200-141gb"),
    Offering("gcp", "a100", "a2-ultragpu-1g", 1, 80, "nvidia-a100-80gb"),
    Offering("gcp", "a100", "a2-ultragpu-8g", 8, 80, "nvidia-a100-80gb"),
    Offering("gcp", "a100", "a2-highgpu-8g", 8, 40, "nvidia-tesla-a100"),
    Offering("gcp", "l4", "g2-standard-8", 1, 24, "nvidia-l4"),
    Offering("gcp", "l4", "g2-standard-24", 2, 24, "nvidia-l4"),
    Offering("gcp", "l4", "g2-standard-48", 4, 24, "nvidia-l4"),
    Offering("gcp", "l4", "g2-standard-96", 8, 24, "nvidia-l4"),
    Offering("azure", "h100", "Standard_ND96isr_H100_v5", 8, 80),
    Offering("azure", "h100", "Standard_NC40ads_H100_v5", 1, 94),
    Offering("azure", "h200", "Standard_ND96isr_H200_v5", 8, 141),
    Offering("azure", "a100", "Standard_NC24ads_A100_v4", 1, 80),
    Offering("azure", "a100", "Standard_NC48ads_A100_v4", 2, 80),
    Offering("azure", "a100", "Standard_NC96ads_A100_v4", 4, 80),
    Offering("azure", "a100", "Standard_ND96asr_v4", 8, 40),
    # NCasT4_v3: one T4 on the smallest size, Azure's least expensive NVIDIA GPU VM
    # (https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/ncast4v3-series).
    Offering("azure", "t4", "Standard_NC4as_T4_v3", 1, 16),
)


def racked(target: str) -> bool:
    """A target of your own machines (on-prem): no machine types in the catalog, any
    accelerator, the GPU count per node given with each pool."""
    return not any(o.target == target for o in OFFERINGS)


def offered(target: str) -> list[str]:
    """Accelerators a target offers, in catalog order. On-prem runs whatever is racked."""
    if racked(target):
        return list(ACCELERATORS)
    return list(dict.fromkeys(o.accelerator for o in OFFERINGS if o.target == target))


def machine_types(target: str, accelerator: str) -> list[Offering]:
    return [o for o in OFFERINGS if o.target == target and o.accelerator == accelerator]


def offering(target: str, accelerator: str, machine_type: str | None = None) -> Offering:
    """The offering for a pool; the first listed when no machine type is given."""
    options = machine_types(target, accelerator)
    if not options:
        raise LookupError(f"{target} offers no {accelerator}")
    if machine_type is None:
        return options[0]
    for o in options:
        if o.machine_type == machine_type:
            return o
    raise LookupError(f"{machine_type} does not carry {accelerator} on {target}")
