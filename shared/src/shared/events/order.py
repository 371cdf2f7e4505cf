"""Events the order service publishes on `order-events`, keyed by order id.

They are also the order's event-sourced history: the order service's event store holds exactly
these, and its projection can be rebuilt from the store or from the topic.
"""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from .base import Currency, Event, MinorUnits, Quantity, Sku, UtcDatetime
from .topics import ORDER_EVENTS


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    sku: Sku
    quantity: Quantity


class PricedLine(OrderLine):
    unit_price: MinorUnits


class _OrderEvent(Event):
    topic = ORDER_EVENTS
    order_id: UUID


class OrderCreated(_OrderEvent):
    """A customer placed an order; it is PENDING until inventory answers."""

    customer_id: str
    items: tuple[OrderLine, ...]
    payment_token: str = Field(
        description=(
            "The customer's payment token sealed to the payment service's public key (a libsodium sealed "
            "box, crypto_box_seal), in url-safe base64 with padding (RFC 4648 section 5). Only the payment "
            "service can open it; no one else ever sees the token in clear."
        )
    )
    created_at: UtcDatetime


class OrderUpdated(_OrderEvent):
    """Inventory reserved the stock: the order's lines now carry catalog prices. `status` is the
    order's status after this event (CONFIRMED when the payment's answer overtook the reservation,
    which can happen because topics are not ordered with respect to each other)."""

    status: Literal["AWAITING_PAYMENT", "CONFIRMED"]
    items: tuple[PricedLine, ...]
    total_amount: MinorUnits
    currency: Currency


class OrderConfirmed(_OrderEvent):
    """The payment went through: the order is final."""

    payment_id: UUID
    amount: MinorUnits
    currency: Currency


class OrderRejected(_OrderEvent):
    """Inventory could not reserve every line; nothing is held and nothing was charged."""

    reason: str


class OrderCancelled(_OrderEvent):
    """The order is cancelled (by the customer, because the payment failed, or by the saga deadline)."""

    reason: Literal["customer_request", "payment_failed", "saga_timeout"]
