"""The event schemas every service speaks."""

from .base import Envelope, Event
from .inventory import (
    LowStockAlert,
    ReservationFailure,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from .order import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderRejected,
    OrderUpdated,
    PricedLine,
)
from .payment import PaymentFailed, PaymentProcessed, RefundIssued
from .registry import EVENT_CLASSES, EVENT_TYPES

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "Envelope",
    "Event",
    "LowStockAlert",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderCreated",
    "OrderLine",
    "OrderRejected",
    "OrderUpdated",
    "PaymentFailed",
    "PaymentProcessed",
    "PricedLine",
    "RefundIssued",
    "ReservationFailure",
    "StockReleased",
    "StockReservationFailed",
    "StockReserved",
]
