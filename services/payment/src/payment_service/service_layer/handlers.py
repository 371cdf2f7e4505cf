"""The payment service's use cases, one per event it reacts to, and the unit of work they share.

The worker runs a batch of events (many orders, the same order possibly more than once, any mix of
event types) in one transaction, after the dedup rows: `open_batch` creates the payments that do
not exist yet and locks every payment the batch touches, in two statements; each handler records
its fact on the in-memory Payment (the next event of the same order sees the change) and, when
that makes a charge or a refund due, the intent (status CHARGING or REFUNDING, with its
idempotency key); `flush` writes the changed payments back in one statement. A handler that raises
rolls the whole batch back (the worker then redoes it one event at a time), so a failed batch's
in-memory state is simply dropped.

No handler calls the gateway: the executor does, outside any transaction
(`service_layer/gateway_calls.py`), so a slow or hanging gateway never holds a row lock or a
partition, and a charge is never made before the decision to make it is committed.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from shared.consumer import SessionBatch
from shared.consumer.retry import NonRetryableError
from shared.db import DriverConnection, driver_connection
from shared.events import Envelope, Event, OrderCancelled, OrderCreated, OrderRejected, StockReserved
from shared.events.base import utc_now
from shared.logging import get_logger
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters import repository
from payment_service.adapters.repository import LockedPayments
from payment_service.domain import ConflictingFact, Payment, PaymentStatus

log = get_logger(__name__)

E = TypeVar("E", bound=Event)
Clock = Callable[[], datetime]
Wake = Callable[[], None]


class PaymentBatch(SessionBatch):
    """The worker's unit of work: the payments of the batch's orders, locked, and the changed ones
    written back at `flush`."""

    def __init__(self, session: AsyncSession, connection: DriverConnection, payments: LockedPayments) -> None:
        super().__init__(session)
        self.connection = connection  # the session's own, in its transaction
        self.payments = payments
        self._waking: set[Wake] = set()

    def wake_on_commit(self, wake: Wake) -> None:
        """Call `wake` once the batch committed; once, however many intents the batch recorded."""
        if wake not in self._waking:
            self._waking.add(wake)
            self.on_commit(wake)

    async def flush(self) -> None:
        await repository.save_payments(self.connection, self.payments.changed())
        await super().flush()


async def open_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> PaymentBatch:
    """Every payment the events touch, created if missing, locked in ascending order id."""
    order_ids = {order_id for envelope in envelopes if (order_id := getattr(envelope.event, "order_id", None))}
    connection = await driver_connection(session)
    await repository.create_missing_payments(connection, order_ids)
    return PaymentBatch(session, connection, await repository.lock_payments(connection, order_ids))


async def record_order(
    batch: PaymentBatch, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """OrderCreated: how the customer pays. Decides the charge if the amount is already known."""
    order = _payload(envelope, OrderCreated)
    _handle(batch, order.order_id, lambda p: p.record_order(order.payment_token), gateway, on_intent, clock)


async def record_reservation(
    batch: PaymentBatch, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """StockReserved: how much to charge. Decides the charge if the token is known and the order
    was not cancelled."""
    reserved = _payload(envelope, StockReserved)
    _handle(
        batch,
        reserved.order_id,
        lambda p: p.record_reservation(reserved.total_amount, reserved.currency),
        gateway,
        on_intent,
        clock,
    )


async def cancel_payment(
    batch: PaymentBatch, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """OrderCancelled: void the payment so it is never charged, or decide the refund of a charge
    (at once if charged, on the gateway's answer if the charge is in flight). OrderRejected
    (inventory could not reserve) ends the order the same way."""
    ended = _payload(envelope, OrderCancelled, OrderRejected)
    _handle(batch, ended.order_id, lambda p: p.cancel(clock()), gateway, on_intent, clock)


def _handle(
    batch: PaymentBatch,
    order_id: UUID,
    record_fact: Callable[[Payment], None],
    gateway: str,
    on_intent: Wake,
    clock: Clock,
) -> None:
    payment = batch.payments[order_id]  # open_batch locked it
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
    if payment.pending_call is not None and not was_open:
        # The executor can claim the intent only once it is committed: wake it then, not now.
        batch.wake_on_commit(on_intent)
    log.debug("payment updated", status=payment.status.value)


def _payload(envelope: Envelope, *expected: type[E]) -> E:
    if not isinstance(envelope.event, expected):
        names = " or ".join(cls.event_type for cls in expected)
        raise NonRetryableError(f"expected {names}, got {envelope.event_type}")
    return envelope.event
