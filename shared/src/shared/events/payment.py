"""Events the payment service publishes on `payment-events`, keyed by order id."""

from uuid import UUID

from .base import Currency, Event, MinorUnits
from .topics import PAYMENT_EVENTS


class _PaymentEvent(Event):
    topic = PAYMENT_EVENTS
    order_id: UUID


class PaymentProcessed(_PaymentEvent):
    """The order's total was charged (once, ever)."""

    payment_id: UUID
    amount: MinorUnits
    currency: Currency


class PaymentFailed(_PaymentEvent):
    """The gateway declined the charge; nothing was taken."""

    amount: MinorUnits
    currency: Currency
    reason: str


class RefundIssued(_PaymentEvent):
    """A charged order was cancelled and its charge refunded in full."""

    payment_id: UUID
    amount: MinorUnits
    currency: Currency
