"""The executor's use cases: claim the due intents, make one gateway call, record its answer.

Each database step is its own short transaction, and the gateway call happens between them with
no transaction open and no row locked. What makes this safe:

- the intent (status, idempotency key, gateway) is committed before any call, by the handlers;
- a claim sets the intent's next attempt beyond the call's timeout, so another executor does not
  make the same call meanwhile (if it does anyway, after a crash or a very late answer, the
  gateway answers the same key with the same result: no second charge);
- the answer is recorded only if that very call is still the payment's open intent, under the row
  lock: a late or duplicate answer changes nothing.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from shared.events import Envelope
from shared.events.base import utc_now
from shared.logging import get_logger
from shared.outbox.writer import add_to_outbox
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.adapters import repository
from payment_service.domain import (
    ChargeCall,
    ChargeResult,
    GatewayCall,
    GatewayUnavailable,
    PaymentGateway,
    RefundResult,
    retry_delay,
)
from payment_service.metrics import GATEWAY_CALLS
from payment_service.settings import Settings

SOURCE = "payment"

log = get_logger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Claim:
    order_id: UUID
    call: GatewayCall


async def claim_due(
    sessions: async_sessionmaker[AsyncSession],
    gateway: str,
    settings: Settings,
    *,
    limit: int,
    clock: Clock = utc_now,
) -> list[Claim]:
    """Claim up to `limit` due intents at `gateway` for this executor."""
    now = clock()
    async with sessions() as session, session.begin():
        due = await repository.lock_due_intents(session, gateway, now, limit)
        lease = timedelta(seconds=settings.executor_lease_s)
        claims = [Claim(payment.order_id, payment.claim(now, lease)) for payment in due.values()]
        await repository.save_payments(session, due.changed())
    return claims


async def execute(
    sessions: async_sessionmaker[AsyncSession],
    gateway: PaymentGateway,
    claim: Claim,
    settings: Settings,
    *,
    clock: Clock = utc_now,
) -> None:
    """Make the claimed call and record what came of it."""
    kind = "charge" if isinstance(claim.call, ChargeCall) else "refund"
    try:
        async with asyncio.timeout(settings.gateway_timeout_s):
            answer = await _call(gateway, claim.call)
    except TimeoutError:
        GATEWAY_CALLS.labels(kind, "timeout").inc()
        await record_failure(sessions, claim, f"no answer within {settings.gateway_timeout_s:g} s", settings, clock)
    except GatewayUnavailable as exc:
        GATEWAY_CALLS.labels(kind, "unavailable").inc()
        await record_failure(sessions, claim, str(exc), settings, clock)
    except Exception as exc:  # an adapter's bug or an error it did not wrap: same key, later
        GATEWAY_CALLS.labels(kind, "error").inc()
        log.exception("gateway call raised an unexpected error", order_id=str(claim.order_id))
        await record_failure(sessions, claim, repr(exc), settings, clock)
    else:
        GATEWAY_CALLS.labels(kind, _outcome(answer)).inc()
        await record_answer(sessions, claim, answer, clock)


async def record_answer(
    sessions: async_sessionmaker[AsyncSession],
    claim: Claim,
    answer: ChargeResult | RefundResult,
    clock: Clock = utc_now,
) -> None:
    async with sessions() as session, session.begin():
        payment = (await repository.lock_payments(session, [claim.order_id]))[claim.order_id]
        if payment.pending_call != claim.call:
            log.info("gateway answer already recorded", order_id=str(claim.order_id), status=payment.status.value)
            return
        if isinstance(answer, ChargeResult):
            events = payment.record_charge(answer, clock())
        else:
            events = payment.record_refund(answer, clock())
        await repository.save_payments(session, [payment])
        await add_to_outbox(session, *(Envelope.new(event, source=SOURCE) for event in events))
    log.debug(
        "gateway answer recorded",
        order_id=str(claim.order_id),
        status=payment.status.value,
        emitted=[event.event_type for event in events],
    )


async def record_failure(
    sessions: async_sessionmaker[AsyncSession], claim: Claim, error: str, settings: Settings, clock: Clock = utc_now
) -> None:
    async with sessions() as session, session.begin():
        payment = (await repository.lock_payments(session, [claim.order_id]))[claim.order_id]
        if payment.pending_call != claim.call:
            return  # another executor got the answer meanwhile
        retry_in = retry_delay(
            payment.attempts,
            base=timedelta(seconds=settings.gateway_retry_backoff_s),
            cap=timedelta(seconds=settings.gateway_retry_backoff_max_s),
        )
        payment.record_call_failed(error, clock(), retry_in)
        await repository.save_payments(session, [payment])
    log.warning(
        "gateway call failed; asking again later with the same key",
        order_id=str(claim.order_id),
        attempts=payment.attempts,
        retry_in_s=retry_in.total_seconds(),
        error=error,
    )


def _outcome(answer: ChargeResult | RefundResult) -> str:
    if isinstance(answer, ChargeResult):
        return "approved" if answer.approved else "declined"
    return "refunded" if answer.refunded else "refused"


async def _call(gateway: PaymentGateway, call: GatewayCall) -> ChargeResult | RefundResult:
    if isinstance(call, ChargeCall):
        return await gateway.charge(
            token=call.token, amount=call.amount, currency=call.currency, idempotency_key=call.idempotency_key
        )
    return await gateway.refund(
        payment_id=call.payment_id, amount=call.amount, currency=call.currency, idempotency_key=call.idempotency_key
    )
