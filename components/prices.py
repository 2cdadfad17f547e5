"""The price catalog: on-demand list prices of the GPU machine types, per hour, in USD.

One place, data only, every row with the file it was read from and the date that file states
(``as_of``: list prices change; re-read a row's source before relying on it). Prices are
Linux on-demand list prices in one region per cloud (us-east-1, us-central1, eastus2: the
region the source lists, which the row names); other regions differ, and nothing here is a
bill (no discount, no system pool, no disks, no network). Spot is priced at its on-demand
price: spot prices move every few minutes (https://aws.amazon.com/ec2/spot/pricing/: "adjust
gradually based on ... supply and demand"), so a stack's spend is bounded by what it would
cost on demand. Capacity Blocks and GKE flex-start are paid as reserved or discounted
capacity whose rate moves too (https://aws.amazon.com/ec2/capacityblocks/pricing/:
"Reservation prices are updated regularly"; https://cloud.google.com/compute/gpus-pricing
flex-start): they are marked variable and priced at on-demand as an upper bound.

A machine type with no row has no price: ``aicp plan`` names it instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .accelerators import racked
from .contract import GpuPool

# Where each row was read (2026-12-06). The clouds' pricing pages themselves are not stored
# where this was checked, so every figure comes from public machine-readable price data that
# names its upstream and its date; each row carries the file (repository, commit, path) and
# the date that file states. A figure those files do not give is left out (no row), never
# kept from memory: ``aicp plan`` then names the type as having no price.
#
# AWS: Karpenter's generated on-demand table, read from the AWS Price List API (Linux, shared
# tenancy, no pre-installed software, capacitystatus Used: pkg/providers/pricing/pricing.go),
# "generated at 2026-07-20T13:44:30Z for us-east-1". It lists us-east-1 only, so the rows are
# us-east-1's; the example stacks run in us-west-2 (their headers say which region's price
# they show).
AWS_SOURCE = ("https://github.com/aws/karpenter-provider-aws/blob/"
              "6fc13b5236fd04fd16ff3f9dc7490d0813994099/pkg/providers/pricing/"
              "zz_generated.pricing_aws.go")
AWS_AS_OF = "2026-07-20"
# GCP: Karpenter GCP provider's embedded on-demand prices per region (whole VM, attached GPUs
# included, as Compute Engine bills accelerator-optimized types: cloud.google.com/compute/
# docs/accelerator-optimized-machines "Pricing"), refreshed from the gcloud-compute.com
# machine-types CSV and checked against cloud.google.com/compute/vm-instance-pricing by its
# hack/price_validate; the file states no date, its refresh commit is dated 2026-08-03.
GCP_SOURCE = ("https://github.com/cloudpilot-ai/karpenter-provider-gcp/blob/"
              "373e2baa9665c864d29ae686dfadbc0dd97d8bb8/pkg/providers/pricing/"
              "initial-prices.json")
GCP_AS_OF = "2026-08-03"
# Azure: Karpenter Azure provider's generated pay-as-you-go prices per region, from the Azure
# Retail Prices API (priceType Consumption, Windows and Spot/Low Priority meters left out:
# pkg/providers/pricing/pricing.go), "generated at 2026-06-18T03:43:41Z".
AZURE_SOURCE = ("https://github.com/Azure/karpenter-provider-azure/blob/"
                "2b431da153a6a92b705c18046512c60b1631b682/pkg/providers/pricing/"
                "zz_generated.pricing.go")
AZURE_AS_OF = "2026-06-18"


@dataclass(frozen=True)
class Price:
    target: str
    machine_type: str
    usd_per_hour: float
    region: str
    source: str  # the file the figure was read from (repository, commit, path)
    as_of: str  # the date that source states for its figures


def _aws(machine_type: str, usd_per_hour: float) -> Price:
    return Price("aws", machine_type, usd_per_hour, "us-east-1", AWS_SOURCE, AWS_AS_OF)


def _gcp(machine_type: str, usd_per_hour: float) -> Price:
    return Price("gcp", machine_type, usd_per_hour, "us-central1", GCP_SOURCE, GCP_AS_OF)


def _azure(machine_type: str, usd_per_hour: float) -> Price:
    return Price("azure", machine_type, usd_per_hour, "eastus2", AZURE_SOURCE, AZURE_AS_OF)


PRICES: tuple[Price, ...] = (
    # EC2 On-Demand, Linux, us-east-1 (AWS_SOURCE, its "us-east-1" map). P5 and P4d at the
    # prices after AWS's June 2025 cut for P4d/P4de/P5/P5en, as the 2026-07-20 table lists.
    _aws("g6.xlarge", 0.8048),
    _aws("g6.12xlarge", 4.6016),
    _aws("g6.48xlarge", 13.3504),
    _aws("g6e.xlarge", 1.861),
    _aws("g6e.12xlarge", 10.49264),
    _aws("g6e.48xlarge", 30.13118),
    _aws("p5.48xlarge", 55.04),
    _aws("p4d.24xlarge", 21.957642),
    # Compute Engine on-demand, us-central1 (GCP_SOURCE, prices["us-central1"].on_demand),
    # each VM with its GPUs.
    _gcp("g2-standard-8", 0.853624271),
    _gcp("g2-standard-24", 2.000832574),
    _gcp("g2-standard-48", 4.001665148),
    _gcp("g2-standard-96", 8.003330296),
    _gcp("a2-ultragpu-1g", 5.06879789041096),
    _gcp("a2-ultragpu-8g", 40.5503831232877),
    _gcp("a2-highgpu-8g", 29.38708),
    _gcp("a3-highgpu-8g", 88.4899999025753),
    # Azure pay-as-you-go, Linux, East US 2 (AZURE_SOURCE, initialOnDemandPrices["eastus2"]).
    # Standard_ND96asr_v4 has no row: the source lists it in eastus, not in eastus2.
    _azure("Standard_NC4as_T4_v3", 0.526),
    _azure("Standard_NC24ads_A100_v4", 3.673),
    _azure("Standard_NC48ads_A100_v4", 7.346),
    _azure("Standard_NC96ads_A100_v4", 14.692),
    _azure("Standard_NC40ads_H100_v5", 6.98),
    _azure("Standard_ND96isr_H100_v5", 98.32),
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
