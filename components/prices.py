"""The price catalog: on-demand list prices of the GPU machine types, per hour, in USD.

One place, data only, every row with its source page and the date it was recorded (``as_of``:
list prices change; the page is the authority, re-check a row before relying on it). Prices are
Linux on-demand list prices in one region per cloud (the example stacks' region); other
regions differ, and nothing here is a bill (no discount, no system pool, no disks, no
network). Spot is priced at its on-demand price: spot prices move every few minutes
(https://aws.amazon.com/ec2/spot/pricing/: "adjust gradually based on ... supply and
demand"), so a stack's spend is bounded by what it would cost on demand. Capacity Blocks
and GKE flex-start are paid as reserved or discounted capacity whose rate moves too
(https://aws.amazon.com/ec2/capacityblocks/pricing/: "Reservation prices are updated
regularly"; https://cloud.google.com/compute/gpus-pricing flex-start): they are marked
variable and priced at on-demand as an upper bound.

A machine type with no row has no price: ``aicp plan`` names it instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .accelerators import racked
from .contract import GpuPool

AWS_PAGE = "https://aws.amazon.com/ec2/pricing/on-demand/"
GCP_PAGE = "https://cloud.google.com/compute/vm-instance-pricing#accelerator-optimized"
AZURE_PAGE = "https://azure.microsoft.com/pricing/details/virtual-machines/linux/"
AS_OF = "2026-12-05"


@dataclass(frozen=True)
class Price:
    target: str
    machine_type: str
    usd_per_hour: float
    region: str
    source: str
    as_of: str = AS_OF


PRICES: tuple[Price, ...] = (
    # EC2 On-Demand, Linux, US West (Oregon). P5 and P4d as listed after AWS's June 2025
    # price reduction for NVIDIA GPU instances (AWS What's New, 2025-06).
    Price("aws", "g6.xlarge", 0.8048, "us-west-2", AWS_PAGE),
    Price("aws", "g6.12xlarge", 4.6016, "us-west-2", AWS_PAGE),
    Price("aws", "g6.48xlarge", 13.3504, "us-west-2", AWS_PAGE),
    Price("aws", "g6e.xlarge", 1.861, "us-west-2", AWS_PAGE),
    Price("aws", "g6e.12xlarge", 10.493, "us-west-2", AWS_PAGE),
    Price("aws", "g6e.48xlarge", 30.131, "us-west-2", AWS_PAGE),
    Price("aws", "p5.48xlarge", 55.04, "us-west-2", AWS_PAGE),
    Price("aws", "p4d.24xlarge", 21.96, "us-west-2", AWS_PAGE),
    # Compute Engine on-demand, us-central1; A2/A3/G2 prices include their GPUs.
    Price("gcp", "g2-standard-8", 0.8536, "us-central1", GCP_PAGE),
    Price("gcp", "g2-standard-24", 1.9996, "us-central1", GCP_PAGE),
    Price("gcp", "g2-standard-48", 3.9992, "us-central1", GCP_PAGE),
    Price("gcp", "g2-standard-96", 7.9984, "us-central1", GCP_PAGE),
    Price("gcp", "a2-ultragpu-1g", 5.0688, "us-central1", GCP_PAGE),
    Price("gcp", "a2-ultragpu-8g", 40.5504, "us-central1", GCP_PAGE),
    Price("gcp", "a2-highgpu-8g", 29.3875, "us-central1", GCP_PAGE),
    Price("gcp", "a3-highgpu-8g", 88.2498, "us-central1", GCP_PAGE),
    # Azure pay-as-you-go, Linux, East US 2.
    Price("azure", "Standard_NC4as_T4_v3", 0.526, "eastus2", AZURE_PAGE),
    Price("azure", "Standard_NC24ads_A100_v4", 3.673, "eastus2", AZURE_PAGE),
    Price("azure", "Standard_NC48ads_A100_v4", 7.346, "eastus2", AZURE_PAGE),
    Price("azure", "Standard_NC96ads_A100_v4", 14.692, "eastus2", AZURE_PAGE),
    Price("azure", "Standard_NC40ads_H100_v5", 6.98, "eastus2", AZURE_PAGE),
    Price("azure", "Standard_ND96isr_H100_v5", 98.32, "eastus2", AZURE_PAGE),
    Price("azure", "Standard_ND96asr_v4", 27.197, "eastus2", AZURE_PAGE),
)

_BY_TYPE = {(p.target, p.machine_type): p for p in PRICES}

# Capacity whose rate is not the on-demand list price; priced at on-demand as an upper bound.
VARIABLE = ("spot", "capacity-block", "flex-start", "queued-provisioning")


def price(target: str, machine_type: str) -> Price | None:
    """The on-demand list price of a machine type on a target, or None (no row: unknown)."""
    return _BY_TYPE.get((target, machine_type))


@dataclass(frozen=True)
class PoolCost:
    pool: str
    machine_type: str
    min_nodes: int
    max_nodes: int
    capacity_type: str
    price: Price | None

    @property
    def at_min(self) -> float:
        return self.min_nodes * self.price.usd_per_hour if self.price else 0.0

    @property
    def at_max(self) -> float:
        return self.max_nodes * self.price.usd_per_hour if self.price else 0.0

    @property
    def variable(self) -> bool:
        return self.capacity_type in VARIABLE


def pool_costs(target: str, pools: Sequence[GpuPool]) -> list[PoolCost]:
    """Each pool's cost at min and max nodes, at on-demand list price (spot counted at it).

    On-prem pools are machines you already own: they have no price row and cost nothing new.
    """
    return [PoolCost(p.name, p.machine_type, p.min_nodes, p.max_nodes, p.capacity_type,
                     price(target, p.machine_type)) for p in pools]


def first_up(target: str, pools: Sequence[GpuPool]) -> float:
    """USD per hour of GPU machines a first ``pulumi up`` starts (every pool at minNodes).

    A pool whose type has no price raises LookupError: an unknown cost is never zero. On-prem
    machines are yours already: a first ``up`` starts none.
    """
    if racked(target):
        return 0.0
    total = 0.0
    for cost in pool_costs(target, pools):
        if cost.min_nodes and cost.price is None:
            raise LookupError(f"no price for {cost.machine_type} on {target}")
        total += cost.at_min
    return total
