"""The inventory's pure domain: the catalog's stock counters and all-or-nothing reservations."""

from .errors import InvalidProduct, InventoryError, StockInvariantViolated
from .products import Product
from .reservations import (
    Reservation,
    ReservationOutcome,
    ReservationStatus,
    on_order_cancelled,
    on_order_created,
    release,
    reserve,
    sell,
)

__all__ = [
    "InvalidProduct",
    "InventoryError",
    "Product",
    "Reservation",
    "ReservationOutcome",
    "ReservationStatus",
    "StockInvariantViolated",
    "on_order_cancelled",
    "on_order_created",
    "release",
    "reserve",
    "sell",
]
