"""The payment service's use cases, one per event it reacts to. Each runs inside the worker's
per-message transaction (after the dedup row): lock the order's payment, record the new fact, and
when that makes a charge or a refund due, record the intent (status CHARGING or REFUNDING, with its
idempotency key). No handler calls the gateway: the executor does, outside any transaction
(`service_layer/gateway_calls.py`), so a slow or hanging gateway never holds a row lock or a
partition, and a charge is never made before the decision to make it is committed.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, Event, OrderCancelled, OrderCreated, OrderRejected, StockReserved
from shared.events.base import utc_now
from shared.logging import get_logger
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters import repository
from payment_service.domain import ConflictingFact, Payment, PaymentStatus

log = get_logger(__name__)

E = TypeVar("E", bound=Event)
Clock = Callable[[], datetime]
Wake = Callable[[], None]


async def record_order(
    session: AsyncSession, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """OrderCreated: how the customer pays. Decides the charge if the amount is already known."""
    order = _payload(envelope, OrderCreated)
    await _handle(session, order.order_id, lambda p: p.record_order(order.payment_token), gateway, on_intent, clock)


async def record_reservation(
    session: AsyncSession, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """StockReserved: how much to charge. Decides the charge if the token is known and the order
    was not cancelled."""
    reserved = _payload(envelope, StockReserved)
    await _handle(
        session,
        reserved.order_id,
        lambda p: p.record_reservation(reserved.total_amount, reserved.currency),
        gateway,
        on_intent,
        clock,
    )


async def cancel_payment(
    session: AsyncSession, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """OrderCancelled: void the payment so it is never charged, or decide the refund of a charge
    (at once if charged, on the gateway's answer if the charge is in flight). OrderRejected
    (inventory could not reserve) ends the order the same way."""
    ended = _payload(envelope, OrderCancelled, OrderRejected)
    await _handle(session, ended.order_id, lambda p: p.cancel(clock()), gateway, on_intent, clock)


async def _handle(
    session: AsyncSession,
    order_id: UUID,
    record_fact: Callable[[Payment], None],
    gateway: str,
    on_intent: Wake,
    clock: Clock,
) -> None:
    payment = await repository.lock_payment(session, order_id)
    if payment.status is PaymentStatus.CHARGED and payment.gateway is None:
        # Charged before charges recorded their gateway (migration 0002): through the configured
        # one, which is where its refund must go.
        payment.gateway = gateway
    was_open = payment.pending_call is not None
    try:
        record_fact(payment)
    except ConflictingFact as exc:
        # A fact told twice with different values: charging on either value could be wrong.
        raise NonRetryableError(str(exc)) from exc
    payment.request_charge(gateway, clock())
    await repository.save_payment(session, payment)
    if payment.pending_call is not None and not was_open:
        # The executor can claim the intent only once it is committed: wake it then, not now.
        event.listen(session.sync_session, "after_commit", lambda _session: on_intent(), once=True)
    log.debug("payment updated", status=payment.status.value)


def _payload(envelope: Envelope, *expected: type[E]) -> E:
    if not isinstance(envelope.event, expected):
        names = " or ".join(cls.event_type for cls in expected)
        raise NonRetryableError(f"expected {names}, got {envelope.event_type}")
    return envelope.event
