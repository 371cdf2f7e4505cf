"""Events the inventory service publishes on `inventory-events`."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .base import Currency, Event, MinorUnits, Sku
from .order import OrderLine, PricedLine
from .topics import INVENTORY_EVENTS


class _InventoryEvent(Event):
    topic = INVENTORY_EVENTS


class StockReserved(_InventoryEvent):
    """Every line of the order is held, priced from the catalog."""

    order_id: UUID
    items: tuple[PricedLine, ...]
    total_amount: MinorUnits
    currency: Currency


class ReservationFailure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    sku: Sku
    requested: int
    available: int
    reason: Literal["insufficient_stock", "unknown_sku", "currency_mismatch"]


class StockReservationFailed(_InventoryEvent):
    """At least one line could not be reserved, so none was (all-or-nothing)."""

    order_id: UUID
    failures: tuple[ReservationFailure, ...] = Field(min_length=1)


class StockReleased(_InventoryEvent):
    """A cancelled order's stock is available again (reserved or already sold)."""

    order_id: UUID
    items: tuple[OrderLine, ...]


class LowStockAlert(_InventoryEvent):
    """A product's available stock fell below its reorder level. Keyed by SKU, not by order."""

    sku: Sku
    available: int
    reorder_level: int

    key_field = "sku"
