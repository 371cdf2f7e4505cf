"""What callers ask the order service to do, independent of HTTP."""

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    items: tuple[Line, ...]
    payment_token: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class CancelOrder:
    order_id: UUID
    # The customer asking: another customer's order is not found (None: anyone's, for the tests and tools).
    owner: str | None = None
