"""Which event classes exist, looked up by (event type, schema version) when a record is read."""

from .base import Event
from .inventory import LowStockAlert, StockReleased, StockReservationFailed, StockReserved
from .order import OrderCancelled, OrderConfirmed, OrderCreated, OrderRejected, OrderUpdated
from .payment import PaymentFailed, PaymentProcessed, RefundIssued

EVENT_CLASSES: tuple[type[Event], ...] = (
    OrderCreated,
    OrderUpdated,
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    PaymentProcessed,
    PaymentFailed,
    RefundIssued,
    StockReserved,
    StockReservationFailed,
    StockReleased,
    LowStockAlert,
)

EVENT_TYPES: dict[str, type[Event]] = {cls.event_type: cls for cls in EVENT_CLASSES}
