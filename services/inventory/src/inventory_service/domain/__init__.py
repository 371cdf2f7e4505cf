"""The inventory's pure domain: the catalog's stock counters and all-or-nothing reservations."""

from .errors import InvalidProduct, InventoryError, StockInvariantViolated, StockLimitExceeded
from .products import MAX_STOCK, CatalogEntry, Product
from .reservations import (
    Reservation,
    ReservationOutcome,
    ReservationStatus,
    on_order_cancelled,
    on_order_created,
    on_payment_processed,
    release,
    reserve,
    sell,
)

__all__ = [
    "MAX_STOCK",
    "CatalogEntry",
    "InvalidProduct",
    "InventoryError",
    "Product",
    "Reservation",
    "ReservationOutcome",
    "ReservationStatus",
    "StockInvariantViolated",
    "StockLimitExceeded",
    "on_order_cancelled",
    "on_order_created",
    "on_payment_processed",
    "release",
    "reserve",
    "sell",
]
