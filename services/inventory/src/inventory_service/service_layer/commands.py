"""What the HTTP API asks the inventory to do."""

from dataclasses import dataclass

from inventory_service.domain import CatalogEntry


@dataclass(frozen=True)
class PutProduct:
    """Create or replace a catalog entry; reserved and sold units are kept."""

    sku: str
    entry: CatalogEntry


@dataclass(frozen=True)
class Restock:
    sku: str
    quantity: int
