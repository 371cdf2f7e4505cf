"""The HTTP API's request and response bodies (separate from the tables and the domain)."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from shared.api_types import JsonInt, NonBlankText
from shared.events.base import Sku

from order_service.adapters.event_store import StoredEvent
from order_service.adapters.projection import ProjectedOrder
from order_service.domain import MAX_LINES, OrderStatus
from order_service.domain.order import MAX_CUSTOMER_ID_LENGTH, MAX_QUANTITY
from order_service.service_layer.commands import Line, PlaceOrder

CustomerId = Annotated[NonBlankText, Field(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH)]
PaymentToken = Annotated[NonBlankText, Field(min_length=1, max_length=256)]

REDACTED = "[redacted]"
# Event fields the audit trail does not show: a payment token lets its holder charge the customer.
SECRET_FIELDS = frozenset({"payment_token"})


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Annotated[JsonInt, Field(ge=1, le=MAX_QUANTITY)]


class PlaceOrderIn(BaseModel):
    """A customer's order. Prices are not given: inventory prices the lines from its catalog. A SKU
    on several lines is ordered once, with the quantities added up (at most 10000 in all)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [{"sku": "SKU-1", "quantity": 2}], "payment_token": "tok_visa"}]},
    )

    # The customer is the caller (the token's subject); the field may repeat it, never name another.
    customer_id: CustomerId | None = Field(
        default=None, description="Optional: the caller's own id (the token's subject); another is refused (403)"
    )
    items: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    payment_token: PaymentToken

    def to_command(self, customer_id: str, idempotency_key: str | None) -> PlaceOrder:
        return PlaceOrder(
            customer_id=customer_id,
            items=merged_lines(self.items),
            payment_token=self.payment_token,
            idempotency_key=idempotency_key,
        )


class ItemOut(BaseModel):
    sku: str
    quantity: int
    unit_price: int | None = Field(description="Catalog price in minor units; null until inventory reserved the line")


class OrderOut(BaseModel):
    order_id: UUID
    customer_id: str
    status: OrderStatus
    items: list[ItemOut]
    total_amount: int | None = Field(description="Minor units; null until the order is priced")
    currency: str | None
    version: int = Field(description="Number of events in the order's history")
    cancellation_reason: str | None
    rejection_reason: str | None
    payment_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: ProjectedOrder) -> "OrderOut":
        return cls.model_validate(order, from_attributes=True)


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class EventOut(BaseModel):
    version: int
    event_id: UUID = Field(description="The same id as the event's record on the order-events topic")
    event_type: str
    schema_version: int
    occurred_at: datetime
    data: dict[str, Any] = Field(description="The event as published, with the payment token redacted")

    @classmethod
    def of(cls, stored: StoredEvent) -> "EventOut":
        return cls(
            version=stored.version,
            event_id=stored.event_id,
            event_type=stored.event_type,
            schema_version=stored.schema_version,
            occurred_at=stored.occurred_at,
            data=redacted(stored.data),
        )


def merged_lines(items: list[LineIn]) -> tuple[Line, ...]:
    """One line per SKU, in the order of first appearance. JSON Schema cannot say "unique by SKU", so
    rather than refuse a body the schema admits, a repeated SKU is read as one line of the sum."""
    quantities: dict[str, int] = {}
    for item in items:
        quantities[item.sku] = quantities.get(item.sku, 0) + item.quantity
    return tuple(Line(sku, quantity) for sku, quantity in quantities.items())


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    return {name: REDACTED if name in SECRET_FIELDS else value for name, value in data.items()}


def parse_as_of(text: str) -> datetime:
    """An ISO-8601 time with a UTC offset ('Z' or '+01:00'). Raises ValueError saying what is wrong."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        hint = ""
        if " " in text.strip():
            hint = " (a '+' in a URL query means a space: write the offset as %2B01:00, or use Z)"
        raise ValueError(f"as_of {text!r} is not an ISO-8601 time{hint}") from None
    if moment.tzinfo is None:
        raise ValueError(f"as_of {text!r} has no UTC offset; add Z or +HH:MM")
    return moment
