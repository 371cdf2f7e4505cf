"""The payment service's use cases, one per event it reacts to. Each runs inside the worker's
per-message transaction (after the dedup row): lock the order's payment, record the new fact, charge
or refund through the gateway when that became due, save, and add the answer to the outbox.

The gateway is called inside the transaction, with the order's row locked. A crash after the
gateway answered but before the commit redelivers the message; the retried call carries the same
idempotency key, so the gateway answers with the first result instead of moving money again. The
status rules (a charge is due only while AWAITING_DETAILS) make a second charge impossible anyway.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, Event, OrderCancelled, OrderCreated, OrderRejected, StockReserved
from shared.events.base import utc_now
from shared.logging import get_logger
from shared.outbox.writer import add_to_outbox
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters import repository
from payment_service.domain import ConflictingFact, Payment, PaymentGateway, PaymentNotDue

SOURCE = "payment"

log = get_logger(__name__)

E = TypeVar("E", bound=Event)
Clock = Callable[[], datetime]


async def record_order(
    session: AsyncSession, envelope: Envelope, *, gateway: PaymentGateway, clock: Clock = utc_now
) -> None:
    """OrderCreated: how the customer pays. Charges if the amount is already known."""
    order = _payload(envelope, OrderCreated)
    await _handle(session, envelope, order.order_id, gateway, clock, lambda p: p.record_order(order.payment_token))


async def record_reservation(
    session: AsyncSession, envelope: Envelope, *, gateway: PaymentGateway, clock: Clock = utc_now
) -> None:
    """StockReserved: how much to charge. Charges if the token is known and the order not cancelled."""
    reserved = _payload(envelope, StockReserved)
    await _handle(
        session,
        envelope,
        reserved.order_id,
        gateway,
        clock,
        lambda p: p.record_reservation(reserved.total_amount, reserved.currency),
    )


async def cancel_payment(
    session: AsyncSession, envelope: Envelope, *, gateway: PaymentGateway, clock: Clock = utc_now
) -> None:
    """OrderCancelled: refund a charge, or void the payment so it is never charged. OrderRejected
    (inventory could not reserve) ends the order the same way: the payment is voided, not left
    awaiting an amount that will never come."""
    ended = _payload(envelope, OrderCancelled, OrderRejected)
    await _handle(session, envelope, ended.order_id, gateway, clock, lambda p: p.cancel(clock()))


async def _handle(
    session: AsyncSession,
    envelope: Envelope,
    order_id: UUID,
    gateway: PaymentGateway,
    clock: Clock,
    record_fact: Callable[[Payment], None],
) -> None:
    payment = await repository.lock_payment(session, order_id)
    try:
        record_fact(payment)
        events = await settle(payment, gateway, clock)
    except (ConflictingFact, PaymentNotDue) as exc:
        # A fact told twice with different values, or a bug: no retry can make charging safe.
        raise NonRetryableError(str(exc)) from exc
    await repository.save_payment(session, payment)
    await add_to_outbox(session, *(Envelope.new(event, source=SOURCE, caused_by=envelope) for event in events))
    log.info("payment updated", status=payment.status.value, emitted=[event.event_type for event in events])


async def settle(payment: Payment, gateway: PaymentGateway, clock: Clock = utc_now) -> list[Event]:
    """Charge or refund through the gateway when the recorded facts make it due; the answers."""
    events: list[Event] = []
    if payment.charge_due:
        assert payment.payment_token is not None and payment.amount is not None and payment.currency is not None
        charge = await gateway.charge(
            token=payment.payment_token,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.charge_idempotency_key,
        )
        events.append(payment.record_charge(charge, clock()))
    if payment.refund_due:
        assert payment.payment_id is not None and payment.amount is not None and payment.currency is not None
        # A refused refund raises RefundRefused: retried, then dead-lettered for a human.
        refund = await gateway.refund(
            payment_id=payment.payment_id,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.refund_idempotency_key,
        )
        events.append(payment.record_refund(refund, clock()))
    return events


def _payload(envelope: Envelope, *expected: type[E]) -> E:
    if not isinstance(envelope.event, expected):
        names = " or ".join(cls.event_type for cls in expected)
        raise NonRetryableError(f"expected {names}, got {envelope.event_type}")
    return envelope.event
