"""Which event classes exist, looked up by (event type, schema version) when a record is read.

A breaking change to an event gets a new class next to the old one, e.g.

    class OrderCreatedV2(_OrderEvent):
        event_type = "OrderCreated"
        schema_version = 2

and both are listed in EVENT_CLASSES, so records written by a not yet upgraded producer stay readable.
"""

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


def _by_type_and_version(classes: tuple[type[Event], ...]) -> dict[tuple[str, int], type[Event]]:
    versions: dict[tuple[str, int], type[Event]] = {}
    for cls in classes:
        identity = (cls.event_type, cls.schema_version)
        if identity in versions:
            raise TypeError(f"{cls.__name__} and {versions[identity].__name__} both claim {identity}")
        versions[identity] = cls
    return versions


EVENT_VERSIONS: dict[tuple[str, int], type[Event]] = _by_type_and_version(EVENT_CLASSES)


def event_class(event_type: str, schema_version: int) -> type[Event] | None:
    """The class that reads this (type, version), or None when this code does not know it."""
    return EVENT_VERSIONS.get((event_type, schema_version))


def supported_versions(event_type: str) -> tuple[int, ...]:
    """The schema versions of `event_type` this code can read, oldest first (empty if unknown type)."""
    return tuple(sorted(version for known_type, version in EVENT_VERSIONS if known_type == event_type))


# What a producer writes: the newest version of each event type.
EVENT_TYPES: dict[str, type[Event]] = {
    event_type: EVENT_VERSIONS[event_type, max(supported_versions(event_type))] for event_type, _ in EVENT_VERSIONS
}
