"""One realistic instance of every event class, with fixed ids and times.

Tests round-trip them through the codec, and the AsyncAPI document shows them as examples, so every
class in the registry must have one here (a test checks it).
"""

from datetime import UTC, datetime
from uuid import UUID

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
from .topics import WRITERS

ORDER_ID = UUID("0b6f6d4e-2f1c-4c1a-9d51-6c7a3e1f0a01")
PAYMENT_ID = UUID("7d3c2b1a-5e4f-4a6b-8c9d-0e1f2a3b4c5d")
CAUSING_EVENT_ID = UUID("9a8b7c6d-5e4f-4321-8fed-cba987654321")
EVENT_ID = UUID("3f2e1d0c-b9a8-4765-9432-10fedcba9876")
AT = datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

_LINES = (OrderLine(sku="MUG-BLUE", quantity=2), OrderLine(sku="TEE-L", quantity=1))
_PRICED = (
    PricedLine(sku="MUG-BLUE", quantity=2, unit_price=1250),
    PricedLine(sku="TEE-L", quantity=1, unit_price=1999),
)
_TOTAL = 2 * 1250 + 1999

# What an OrderCreated carries: "tok_visa" sealed to a throwaway key (shared/sealing.py), never a token in clear.
_SEALED_TOKEN = "1I5NKEDcforJyjOqTBv7-qBsUE2O-NHCJj6Wv5t85V4wt1ejyL7BKAZ-x95Lb_xJnCUBOx7XK3E="

_SAMPLES: tuple[Event, ...] = (
    OrderCreated(
        order_id=ORDER_ID, customer_id="customer-42", items=_LINES, payment_token=_SEALED_TOKEN, created_at=AT
    ),
    OrderUpdated(order_id=ORDER_ID, status="AWAITING_PAYMENT", items=_PRICED, total_amount=_TOTAL, currency="EUR"),
    OrderConfirmed(order_id=ORDER_ID, payment_id=PAYMENT_ID, amount=_TOTAL, currency="EUR"),
    OrderRejected(order_id=ORDER_ID, reason="insufficient_stock: TEE-L"),
    OrderCancelled(order_id=ORDER_ID, reason="customer_request"),
    PaymentProcessed(order_id=ORDER_ID, payment_id=PAYMENT_ID, amount=_TOTAL, currency="EUR"),
    PaymentFailed(order_id=ORDER_ID, amount=_TOTAL, currency="EUR", reason="card_declined"),
    RefundIssued(order_id=ORDER_ID, payment_id=PAYMENT_ID, amount=_TOTAL, currency="EUR"),
    StockReserved(order_id=ORDER_ID, items=_PRICED, total_amount=_TOTAL, currency="EUR"),
    StockReservationFailed(
        order_id=ORDER_ID,
        failures=(ReservationFailure(sku="TEE-L", requested=1, available=0, reason="insufficient_stock"),),
    ),
    StockReleased(order_id=ORDER_ID, items=_LINES),
    LowStockAlert(sku="TEE-L", available=3, reorder_level=10),
)

SAMPLE_EVENTS: dict[tuple[str, int], Event] = {(e.event_type, e.schema_version): e for e in _SAMPLES}


def sample_event(cls: type[Event]) -> Event:
    """The sample of this class; a KeyError means a new event class still needs one above."""
    return SAMPLE_EVENTS[cls.event_type, cls.schema_version]


def sample_envelope(event: Event) -> Envelope:
    """The sample event wrapped as a reaction to another event, so every optional header is set."""
    return Envelope(
        event=event,
        event_id=EVENT_ID,
        occurred_at=AT,
        correlation_id=event.correlation_id(),
        causation_id=CAUSING_EVENT_ID,
        traceparent=TRACEPARENT,
        source=WRITERS[event.topic],
    )
