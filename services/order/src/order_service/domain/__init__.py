"""The order's pure domain: an event-sourced aggregate whose events are the shared order events."""

from .errors import CorruptHistory, InvalidOrder, OrderError, OrderNotCancellable
from .order import (
    MAX_LINES,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    RecordedEvent,
    RequestedLine,
    state_at,
)

__all__ = [
    "MAX_LINES",
    "CorruptHistory",
    "InvalidOrder",
    "Order",
    "OrderError",
    "OrderEvent",
    "OrderItem",
    "OrderNotCancellable",
    "OrderStatus",
    "RecordedEvent",
    "RequestedLine",
    "state_at",
]
