"""The payment service's use cases, one per event it reacts to, and the worker's table of them
(`build_handlers`, at the end).

The worker runs a batch of events (many orders, the same order possibly more than once, any mix of
event types) in one transaction, on the unit of work `open_batch` opened (`unit_of_work.py`): each
handler records its fact on the in-memory Payment and, when that makes a charge or a refund due,
the intent (status CHARGING or REFUNDING, with its idempotency key). A handler that raises rolls
the whole batch back.

No handler calls the gateway: the executor does, outside any transaction
(`service_layer/gateway_calls.py`), so a slow or hanging gateway never holds a row lock or a
partition, and a charge is never made before the decision to make it is committed.

The payment token arrives sealed to this service's key and is kept sealed; only the executor opens
it, just before the charge. `record_order` tries it first, so a token this service cannot open
(sealed to another key, altered) is dead-lettered with that cause at once rather than found at
charge time.
"""

from collections.abc import Awaitable, Callable
from functools import partial
from uuid import UUID

from shared.consumer import Consumption, Handler, payload
from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, OrderCancelled, OrderCreated, OrderRejected, StockReserved
from shared.events.base import Clock, utc_now
from shared.logging import get_logger
from shared.sealing import Opener
from shared.tracing import current_traceparent

from payment_service.domain import ConflictingFact, Payment, PaymentStatus

from .unit_of_work import PaymentBatch, Wake, open_batch

log = get_logger(__name__)


async def record_order(
    batch: PaymentBatch,
    envelope: Envelope,
    *,
    gateway: str,
    on_intent: Wake,
    opener: Opener,
    clock: Clock = utc_now,
) -> None:
    """OrderCreated: how the customer pays. Decides the charge if the amount is already known.
    Raises NonRetryableError when the token cannot be opened (no retry would open it)."""
    order = payload(envelope, OrderCreated)
    if not opener.can_open(order.payment_token):  # tried, not kept: the plaintext is dropped at once
        raise NonRetryableError("payment token cannot be opened: not sealed to this service's key, or altered")
    _handle(
        batch,
        envelope,
        order.order_id,
        lambda p: p.record_order(order.payment_token, order.customer_id),
        gateway,
        on_intent,
        clock,
    )


async def record_reservation(
    batch: PaymentBatch, envelope: Envelope, *, gateway: str, on_intent: Wake, clock: Clock = utc_now
) -> None:
    """StockReserved: how much to charge. Decides the charge if the token is known and the order
    was not cancelled."""
    reserved = payload(envelope, StockReserved)
    _handle(
        batch,
        envelope,
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
    ended = payload(envelope, OrderCancelled, OrderRejected)
    _handle(batch, envelope, ended.order_id, lambda p: p.cancel(clock()), gateway, on_intent, clock)


def _handle(
    batch: PaymentBatch,
    envelope: Envelope,
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
        # The call and its answer's events continue the trace of the event that decided it (this
        # record's process span).
        payment.traceparent = current_traceparent() or envelope.traceparent
        # The executor can claim the intent only once it is committed: wake it then, not now.
        batch.wake_on_commit(on_intent)
    log.debug("payment updated", status=payment.status.value)


def build_handlers(gateway_name: str, opener: Opener, on_intent: Wake = lambda: None) -> Consumption:
    """The worker's handler per event type, and its unit of work. `gateway_name` is recorded with
    each charge intent; `opener` (this service's private key) tries each payment token as it
    arrives; `on_intent` is called after the commit of every transaction that recorded an intent
    (it wakes the executor)."""

    def bind(handler: Callable[..., Awaitable[None]], **more: object) -> Handler:
        return partial(handler, gateway=gateway_name, on_intent=on_intent, **more)

    return Consumption(
        handlers={
            OrderCreated.event_type: bind(record_order, opener=opener),
            StockReserved.event_type: bind(record_reservation),
            OrderCancelled.event_type: bind(cancel_payment),
            OrderRejected.event_type: bind(cancel_payment),
        },
        open_batch=open_batch,
    )
