"""The order aggregate, event-sourced: its state is a fold of the shared order events.

Every change goes through `_record`, which numbers the event, applies it and keeps it in
`pending_events` for the caller to persist (event store + projection in one transaction). The
aggregate never reads the clock: commands and reactions take `now` from the caller.

Reactions to other services' events are idempotent and tolerate cross-topic reordering: the
worker may see PaymentProcessed before StockReserved, because topics are not ordered with respect
to each other. A reaction that has nothing to do returns an empty list instead of raising, so a
late or repeated message is simply acknowledged.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import takewhile
from typing import Final, Literal, Protocol, get_args
from uuid import UUID

from shared.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderLine,
    OrderRejected,
    OrderUpdated,
    PaymentFailed,
    PaymentProcessed,
    ReservationFailure,
    StockReservationFailed,
    StockReserved,
)
from shared.events.base import require_aware

from .errors import CorruptHistory, InvalidOrder, OrderNotCancellable

MAX_LINES = 50
MAX_QUANTITY = 10_000
MAX_CUSTOMER_ID_LENGTH = 128

OrderEvent = OrderCreated | OrderUpdated | OrderConfirmed | OrderRejected | OrderCancelled
ORDER_EVENT_CLASSES: tuple[type[OrderEvent], ...] = get_args(OrderEvent)


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


# States in which the order ended without a sale: nothing more can happen to it.
_ENDED_WITHOUT_SALE = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED})
# States in which the saga is still running: the order waits for inventory or payment, and a
# deadline keeps it from waiting for ever.
AWAITING_AN_ANSWER = frozenset({OrderStatus.PENDING, OrderStatus.AWAITING_PAYMENT})

SAGA_TIMEOUT: Final = "saga_timeout"  # Final, so typed as the literal an OrderCancelled reason is


class RequestedLine(Protocol):
    """What a customer asks for; the API's request model, an OrderLine or an OrderItem fit."""

    @property
    def sku(self) -> str: ...

    @property
    def quantity(self) -> int: ...


@dataclass(frozen=True)
class OrderItem:
    """One line of the order. `unit_price` is None until inventory priced it from its catalog."""

    sku: str
    quantity: int
    unit_price: int | None = None


@dataclass(frozen=True)
class RecordedEvent:
    """One event of an order's history: its place in the history and when it happened."""

    version: int
    event: OrderEvent
    occurred_at: datetime


class Order:
    """Build one with `Order.place` (a new order) or `Order.from_history` (a stored one)."""

    order_id: UUID
    customer_id: str
    status: OrderStatus
    items: tuple[OrderItem, ...]
    total_amount: int | None
    currency: str | None
    payment_id: UUID | None
    cancellation_reason: str | None
    rejection_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    def __init__(self, order_id: UUID) -> None:
        # An empty shell that exists only until its OrderCreated is applied; not for callers.
        self.order_id = order_id
        self.customer_id = ""
        self.status = OrderStatus.PENDING
        self.items = ()
        self.total_amount = None
        self.currency = None
        self.payment_id = None
        self.cancellation_reason = None
        self.rejection_reason = None
        self.version = 0
        self._pending: list[RecordedEvent] = []

    def __repr__(self) -> str:
        return f"Order({self.order_id}, {self.status}, version={self.version})"

    # -- creating and loading -------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        order_id: UUID,
        customer_id: str,
        items: Sequence[RequestedLine],
        payment_token: str,
        now: datetime,
    ) -> "Order":
        """A new PENDING order with its OrderCreated pending. Raises InvalidOrder. `payment_token` is
        the token as the payment service will read it: sealed to its key, opaque here."""
        require_aware(now)
        lines = _validated_lines(items)
        _validate_customer_id(customer_id)
        require_payment_token(payment_token)
        order = cls(order_id)
        order._record(
            OrderCreated(
                order_id=order_id,
                customer_id=customer_id,
                items=lines,
                payment_token=payment_token,
                created_at=now,
            ),
            now,
        )
        return order

    @classmethod
    def from_history(cls, history: Iterable[RecordedEvent]) -> "Order":
        """The order as its stored events left it. Raises CorruptHistory on an impossible history."""
        order: Order | None = None
        for recorded in history:
            if order is None:
                if not isinstance(recorded.event, OrderCreated):
                    raise CorruptHistory(f"history starts with {recorded.event.event_type}, not OrderCreated")
                order = cls(recorded.event.order_id)
            order._apply(recorded)
        if order is None:
            raise CorruptHistory("an order's history has at least its OrderCreated")
        return order

    # -- what the caller persists ---------------------------------------------------------------

    @property
    def pending_events(self) -> tuple[RecordedEvent, ...]:
        """Events recorded since the order was placed or loaded, to append to the event store."""
        return tuple(self._pending)

    @property
    def persisted_version(self) -> int:
        """The version the store held when this order was loaded: the expected version when
        appending `pending_events` (a unique (order_id, version) catches a concurrent writer)."""
        return self.version - len(self._pending)

    @property
    def is_priced(self) -> bool:
        return self.total_amount is not None

    # -- reactions to the other services ----------------------------------------------------------

    def on_stock_reserved(self, event: StockReserved, now: datetime) -> list[OrderEvent]:
        self._check_is_mine(event.order_id)
        if self.status is OrderStatus.PENDING:
            return [self._record(_priced(event, "AWAITING_PAYMENT"), now)]
        if self.status is OrderStatus.CONFIRMED and not self.is_priced:
            # The payment's answer overtook the reservation: record the prices, stay CONFIRMED.
            return [self._record(_priced(event, "CONFIRMED"), now)]
        # Already priced (a repeat), or the order ended: a held stock is released by inventory,
        # which sees the OrderCancelled / never reserved for a REJECTED order.
        return []

    def on_stock_reservation_failed(self, event: StockReservationFailed, now: datetime) -> list[OrderEvent]:
        self._check_is_mine(event.order_id)
        if self.status is not OrderStatus.PENDING:
            return []
        reason = "; ".join(_describe(failure) for failure in event.failures)
        return [self._record(OrderRejected(order_id=self.order_id, reason=reason), now)]

    def on_payment_processed(self, event: PaymentProcessed, now: datetime) -> list[OrderEvent]:
        self._check_is_mine(event.order_id)
        if self.status not in AWAITING_AN_ANSWER:
            # A charge for a cancelled order is refunded by the payment service, which sees the
            # OrderCancelled too; the order itself stays cancelled.
            return []
        confirmed = OrderConfirmed(
            order_id=self.order_id, payment_id=event.payment_id, amount=event.amount, currency=event.currency
        )
        return [self._record(confirmed, now)]

    def on_payment_failed(self, event: PaymentFailed, now: datetime) -> list[OrderEvent]:
        self._check_is_mine(event.order_id)
        if self.status not in AWAITING_AN_ANSWER:
            return []
        return [self._record(OrderCancelled(order_id=self.order_id, reason="payment_failed"), now)]

    # -- customer commands ------------------------------------------------------------------------

    def cancel(self, now: datetime) -> list[OrderEvent]:
        """The customer cancels. A confirmed order is cancelled too: payment refunds the charge
        and inventory returns the sold stock. Raises OrderNotCancellable once it has ended."""
        if self.status in _ENDED_WITHOUT_SALE:
            raise OrderNotCancellable(self.status)
        return [self._record(OrderCancelled(order_id=self.order_id, reason="customer_request"), now)]

    # -- the saga deadline ------------------------------------------------------------------------

    def is_overdue(self, now: datetime, deadline: timedelta) -> bool:
        """Still waiting for inventory or payment `deadline` after it was placed."""
        return self.status in AWAITING_AN_ANSWER and now - self.created_at >= deadline

    def time_out(self, now: datetime, deadline: timedelta) -> list[OrderEvent]:
        """Cancel an overdue order, as a customer's cancel would: its OrderCancelled is what makes
        inventory release the stock and payment refund or never charge. An answer that was only
        late (a payment in flight) is then handled as an answer to a cancelled order. Nothing when
        the order is not overdue, so a sweep may call it on a stale list."""
        if not self.is_overdue(now, deadline):
            return []
        return [self._record(OrderCancelled(order_id=self.order_id, reason=SAGA_TIMEOUT), now)]

    # -- the fold ---------------------------------------------------------------------------------

    def _record(self, event: OrderEvent, now: datetime) -> OrderEvent:
        require_aware(now)
        recorded = RecordedEvent(version=self.version + 1, event=event, occurred_at=now)
        self._apply(recorded)
        self._pending.append(recorded)
        return event

    def _apply(self, recorded: RecordedEvent) -> None:
        """Change the state as the event says. Events are facts: no rule is checked here beyond
        the history being well formed, so an old history always loads."""
        if recorded.version != self.version + 1:
            raise CorruptHistory(f"order {self.order_id}: version {recorded.version} after {self.version}")
        event = recorded.event
        if event.order_id != self.order_id:
            raise CorruptHistory(f"an event of order {event.order_id} in the history of {self.order_id}")
        match event:
            case OrderCreated():
                if self.version != 0:
                    raise CorruptHistory(f"order {self.order_id} created twice")
                self.customer_id = event.customer_id
                self.items = tuple(OrderItem(line.sku, line.quantity) for line in event.items)
                self.created_at = event.created_at
            case OrderUpdated():
                self.status = OrderStatus(event.status)
                self.items = tuple(OrderItem(line.sku, line.quantity, line.unit_price) for line in event.items)
                self.total_amount = event.total_amount
                self.currency = event.currency
            case OrderConfirmed():
                self.status = OrderStatus.CONFIRMED
                self.payment_id = event.payment_id
            case OrderRejected():
                self.status = OrderStatus.REJECTED
                self.rejection_reason = event.reason
            case OrderCancelled():
                self.status = OrderStatus.CANCELLED
                self.cancellation_reason = event.reason
        self.version = recorded.version
        self.updated_at = recorded.occurred_at

    def _check_is_mine(self, order_id: UUID) -> None:
        # Routing someone else's event here would corrupt two orders; fail loudly instead.
        if order_id != self.order_id:
            raise ValueError(f"an event of order {order_id} given to order {self.order_id}")


def state_at(
    history: Iterable[RecordedEvent], *, version: int | None = None, as_of: datetime | None = None
) -> Order | None:
    """Time travel: the order after its first `version` events and/or as of `as_of`; None when
    the order did not exist yet. The history must be in version order.

    `as_of` keeps the prefix of events that happened by then and stops at the first later one,
    rather than filtering: with clocks of several workers a later version could carry an earlier
    time, and skipping a version would fold a state that never existed."""
    events: Iterable[RecordedEvent] = history
    if version is not None:
        events = takewhile(lambda recorded: recorded.version <= version, events)
    if as_of is not None:
        events = takewhile(lambda recorded: recorded.occurred_at <= as_of, events)
    folded = list(events)
    return Order.from_history(folded) if folded else None


def _validated_lines(items: Sequence[RequestedLine]) -> tuple[OrderLine, ...]:
    if not items:
        raise InvalidOrder("an order has at least one line")
    if len(items) > MAX_LINES:
        raise InvalidOrder(f"an order has at most {MAX_LINES} lines, got {len(items)}")
    seen: set[str] = set()
    lines = []
    for item in items:
        if item.sku in seen:
            raise InvalidOrder(f"SKU {item.sku} appears twice; order it once with the total quantity")
        seen.add(item.sku)
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise InvalidOrder(f"quantity of {item.sku} must be 1..{MAX_QUANTITY}, got {item.quantity}")
        try:
            # The shared schema is the one definition of a valid SKU.
            lines.append(OrderLine(sku=item.sku, quantity=item.quantity))
        except ValueError:
            raise InvalidOrder(f"{item.sku!r} is not a valid SKU") from None
    return tuple(lines)


def require_payment_token(payment_token: str) -> str:
    """The token, if there is one. Raises InvalidOrder. The service layer asks before it seals the
    token (a sealed blank is not blank); an order holds only the sealed token."""
    if not payment_token.strip():
        raise InvalidOrder("a payment token is required")
    return payment_token


def _validate_customer_id(customer_id: str) -> None:
    if not customer_id.strip():
        raise InvalidOrder("a customer id is required")
    if len(customer_id) > MAX_CUSTOMER_ID_LENGTH:
        raise InvalidOrder(f"a customer id has at most {MAX_CUSTOMER_ID_LENGTH} characters")


def _priced(event: StockReserved, status: Literal["AWAITING_PAYMENT", "CONFIRMED"]) -> OrderUpdated:
    return OrderUpdated(
        order_id=event.order_id,
        status=status,
        items=event.items,
        total_amount=event.total_amount,
        currency=event.currency,
    )


def _describe(failure: ReservationFailure) -> str:
    if failure.reason == "insufficient_stock":
        counts = f"requested {failure.requested}, available {failure.available}"
        return f"{failure.reason}: {failure.sku} ({counts})"
    return f"{failure.reason}: {failure.sku}"
