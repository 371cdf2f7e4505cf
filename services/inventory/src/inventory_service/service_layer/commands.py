"""What the HTTP API asks the inventory to do."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PutProduct:
    """Create or replace a catalog entry; reserved and sold units are kept."""

    sku: str
    name: str
    unit_price: int
    currency: str
    available: int
    reorder_level: int


@dataclass(frozen=True)
class Restock:
    sku: str
    quantity: int
