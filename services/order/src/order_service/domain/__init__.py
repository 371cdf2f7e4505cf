"""The order's pure domain: an event-sourced aggregate whose events are the shared order events."""

from .errors import ConcurrencyConflict, CorruptHistory, InvalidOrder, OrderError, OrderNotCancellable
from .order import (
    AWAITING_AN_ANSWER,
    MAX_LINES,
    ORDER_EVENT_CLASSES,
    SAGA_TIMEOUT,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    RecordedEvent,
    RequestedLine,
    require_payment_token,
    state_at,
)

__all__ = [
    "AWAITING_AN_ANSWER",
    "MAX_LINES",
    "ORDER_EVENT_CLASSES",
    "SAGA_TIMEOUT",
    "ConcurrencyConflict",
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
    "require_payment_token",
    "state_at",
]
