"""The order service's use cases that change state: the customer's commands (from the API), the
reactions to inventory's and payment's events and the saga deadline (from the worker). A new order
is one statement; every other change works on an OrderBatch (unit_of_work.py), the unit of work of
its transaction: the orders it touches locked and folded up front, the domain's rule applied in
memory, then the new events, the projection rows and the outbox rows written together. A command
opens its own transaction; a reaction runs in the worker's. None of them touches Kafka."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from pydantic import ValidationError
from shared.consumer import Consumption, payload
from shared.events import (
    Envelope,
    PaymentFailed,
    PaymentProcessed,
    StockReservationFailed,
    StockReserved,
)
from shared.events.base import utc_now
from shared.logging import get_logger
from shared.sealing import Sealer
from shared.tracing import continued
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.adapters import idempotency, projection
from order_service.adapters.idempotency import Claim
from order_service.adapters.projection import ProjectedOrder
from order_service.adapters.repository import insert_new
from order_service.domain import CorruptHistory, Order, OrderEvent, require_payment_token

from .commands import CancelOrder, PlaceOrder
from .errors import IdempotencyKeyReused, OrderNotFound
from .idempotency import request_hash
from .unit_of_work import OrderBatch, lock_orders, locked_orders, open_batch

log = get_logger(__name__)


@dataclass(frozen=True)
class Placed:
    order: ProjectedOrder
    replayed: bool  # True when an earlier request with the same Idempotency-Key created it


# -- commands (the API) ---------------------------------------------------------------------------


async def place_order(
    session: AsyncSession, command: PlaceOrder, sealer: Sealer, now: datetime | None = None
) -> Placed:
    """A new PENDING order and its OrderCreated. Raises InvalidOrder (nothing is written) or
    IdempotencyKeyReused.

    The payment token is sealed to the payment service's key first: the order, its event store, its
    outbox (so `order-events`, its DLT and inventory) hold only the sealed box, which only the
    payment service can open."""
    sealed_token = sealer.seal(require_payment_token(command.payment_token))
    order = Order.place(uuid4(), command.customer_id, command.items, sealed_token, now or utc_now())
    key = command.idempotency_key
    claim = None if key is None else Claim(key, request_hash(command), order.order_id)
    async with session.begin():
        if await insert_new(session, order, claim):  # one statement: the order and its key's claim
            return Placed(projection.project(order), replayed=False)
        assert claim is not None  # only a key claimed already stops a new order
        earlier, existing = await idempotency.earlier_claim(session, claim.key)
    if earlier.request_hash != claim.request_hash:
        raise IdempotencyKeyReused(claim.key)
    if existing is None:  # the claim and the order commit together, so this is a bug
        raise RuntimeError(f"idempotency key {claim.key!r} points to no order")
    return Placed(existing, replayed=True)


async def cancel_order(session: AsyncSession, command: CancelOrder, now: datetime | None = None) -> ProjectedOrder:
    """Cancel at the customer's request. Raises OrderNotFound (also for another customer's order,
    so that its existence does not leak) or OrderNotCancellable."""
    async with session.begin():
        orders = await lock_orders(session, [command.order_id])
        order = orders.get(command.order_id)
        if order is None or command.owner not in (None, order.customer_id):
            raise OrderNotFound(command.order_id)
        order.cancel(now or utc_now())
        orders.record(order)
        await orders.flush()
    return projection.project(order)


# -- the saga deadline (the worker's periodic sweep) -----------------------------------------------


async def time_out_overdue_orders(
    session: AsyncSession, deadline: timedelta, *, limit: int, now: datetime | None = None
) -> list[UUID]:
    """Cancel, with reason saga_timeout, up to `limit` orders still waiting for inventory or payment
    `deadline` after they were placed, oldest first; return their ids. One transaction: each order
    is locked and folded, and all of them saved together (events, projection, outbox) in the
    statements a customer's cancel runs, whatever their number."""
    now = now or utc_now()
    timed_out: list[UUID] = []
    async with session.begin():
        overdue = await projection.lock_overdue(session, placed_before=now - deadline, limit=limit)
        orders = await locked_orders(session, overdue)
        for order_id in overdue:
            try:
                order = orders.get(order_id)  # folds its history
            except (CorruptHistory, ValidationError):
                # Nothing is written for this order; skip it so it cannot stall every other one.
                log.exception(
                    "overdue order has a history that cannot be folded; not timed out", order_id=str(order_id)
                )
                continue
            if order is not None and order.time_out(now, deadline):
                # Its OrderCancelled continues the order's trace: a span of its own, the child of the
                # order's last event's, that the new event names (Envelope.new).
                with continued(
                    orders.last_traceparent(order_id), "saga deadline", attributes={"order.id": str(order_id)}
                ):
                    orders.record(order)
                timed_out.append(order_id)
        await orders.flush()
    if timed_out:
        log.warning("orders cancelled by the saga deadline", count=len(timed_out), deadline_s=deadline.total_seconds())
    return timed_out


# -- reactions (the worker; a batch of events in one transaction) ---------------------------------


async def on_stock_reserved(batch: OrderBatch, envelope: Envelope) -> None:
    event = payload(envelope, StockReserved)
    _react(batch, envelope, event.order_id, lambda order, now: order.on_stock_reserved(event, now))


async def on_stock_reservation_failed(batch: OrderBatch, envelope: Envelope) -> None:
    event = payload(envelope, StockReservationFailed)
    _react(batch, envelope, event.order_id, lambda order, now: order.on_stock_reservation_failed(event, now))


async def on_payment_processed(batch: OrderBatch, envelope: Envelope) -> None:
    event = payload(envelope, PaymentProcessed)
    _react(batch, envelope, event.order_id, lambda order, now: order.on_payment_processed(event, now))


async def on_payment_failed(batch: OrderBatch, envelope: Envelope) -> None:
    event = payload(envelope, PaymentFailed)
    _react(batch, envelope, event.order_id, lambda order, now: order.on_payment_failed(event, now))


def _react(
    batch: OrderBatch,
    envelope: Envelope,
    order_id: UUID,
    react: Callable[[Order, datetime], list[OrderEvent]],
) -> None:
    order = batch.get(order_id)
    if order is None:
        # Our OrderCreated is published only after the order committed, so inventory and payment
        # cannot know an order we lack; such an event was produced by someone else (a test, another
        # environment). Acknowledged and logged rather than dead-lettered.
        log.warning("event about an unknown order skipped", order_id=str(order_id))
        return
    if react(order, utc_now()):
        batch.record(order, caused_by=envelope)


def build_handlers() -> Consumption:
    """The worker's handlers and their unit of work (the worker opens one per transaction)."""
    return Consumption(
        handlers={
            StockReserved.event_type: on_stock_reserved,
            StockReservationFailed.event_type: on_stock_reservation_failed,
            PaymentProcessed.event_type: on_payment_processed,
            PaymentFailed.event_type: on_payment_failed,
        },
        open_batch=open_batch,
    )
