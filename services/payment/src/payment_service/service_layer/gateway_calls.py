"""The executor's use cases: claim the due intents, make their gateway calls, record what came of
them. Each database step is a short transaction for a whole set of intents (the claim for as many
as there is room for, a recording for the outcomes that arrived together), and the gateway calls
happen between them with no transaction open and no row locked. What makes this safe:

- the intent (status, idempotency key, gateway) is committed before any call, by the handlers;
- a claim sets the intent's next attempt beyond the call's timeout, so another executor does not
  make the same call meanwhile (if it does anyway, after a crash or a very late answer, the
  gateway answers the same key with the same result: no second charge);
- an outcome is recorded only if that very call is still the payment's open intent, under the row
  lock: a late or duplicate answer changes nothing;
- an outcome not recorded yet (its call in flight, its answer waiting for a recording transaction,
  the transaction failed, the process died) leaves the intent open, and once its lease runs out the
  call is made again with the same key: the gateway's answer is the first one, nothing is lost.

The payment token stays sealed in the payment row and in the claim; `call_gateway` opens it right
before the charge, and the plaintext lives only in that call (recording the answer clears the
sealed token too). An error that repeats it (an adapter's message) has it replaced by `[redacted]`
before it is logged or stored. A token that cannot be opened (the key it was sealed to is gone)
cannot be charged: the charge is declined here, `payment_token_unreadable`, without calling the
gateway (no money moved, certainly), and the order is cancelled like any declined one.
"""

import asyncio
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from shared.db import driver_connection
from shared.events import Envelope, Event
from shared.events.base import Clock, utc_now
from shared.logging import get_logger
from shared.metrics import GATEWAY_CALLS
from shared.outbox.writer import add_to_outbox
from shared.sealing import CannotOpen, Opener
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.adapters import repository
from payment_service.domain import (
    ChargeCall,
    ChargeResult,
    GatewayCall,
    GatewayUnavailable,
    Payment,
    PaymentGateway,
    RefundResult,
    retry_delay,
)
from payment_service.settings import Settings

log = get_logger(__name__)

UNREADABLE_TOKEN = "payment_token_unreadable"
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Claim:
    order_id: UUID
    call: GatewayCall
    # The trace the call and its answer's events continue (shared.tracing): where the intent was
    # decided, then the call's own span once the executor makes it.
    traceparent: str | None = None


@dataclass(frozen=True)
class Answered:
    """The gateway answered the claimed call."""

    claim: Claim
    answer: ChargeResult | RefundResult


@dataclass(frozen=True)
class Unanswered:
    """No answer (timeout, gateway down, an adapter's error): the same call is made again later."""

    claim: Claim
    error: str


Outcome = Answered | Unanswered


async def claim_due(
    sessions: async_sessionmaker[AsyncSession],
    gateway: str,
    settings: Settings,
    *,
    limit: int,
    clock: Clock = utc_now,
) -> list[Claim]:
    """Claim up to `limit` due intents at `gateway` for this executor, in one transaction of two
    statements: lock the due rows (skipping those another executor is claiming), write the leases."""
    now = clock()
    lease = timedelta(seconds=settings.executor_lease_s)
    async with sessions() as session, session.begin():
        connection = await driver_connection(session)
        due = await repository.lock_due_intents(connection, gateway, now, limit)
        claims = [Claim(payment.order_id, payment.claim(now, lease), payment.traceparent) for payment in due.values()]
        await repository.save_payments(connection, due.changed())
    return claims


async def call_gateway(gateway: PaymentGateway, claim: Claim, settings: Settings, opener: Opener) -> Outcome:
    """Make the claimed call, cut by the timeout; a charge's token is opened only now. Every failure
    is an outcome, not an exception."""
    kind = "charge" if isinstance(claim.call, ChargeCall) else "refund"
    token = None
    if isinstance(claim.call, ChargeCall):
        try:
            token = opener.open(claim.call.sealed_token)
        except CannotOpen:  # the key it was sealed to is gone: no one can charge it, ever
            log.warning("payment token cannot be opened; the charge is declined", order_id=str(claim.order_id))
            return Answered(claim, ChargeResult(approved=False, decline_reason=UNREADABLE_TOKEN))
    try:
        async with asyncio.timeout(settings.gateway_timeout_s):
            answer = await _call(gateway, claim.call, token)
    except TimeoutError:
        GATEWAY_CALLS.labels(kind, "timeout").inc()
        return Unanswered(claim, f"no answer within {settings.gateway_timeout_s:g} s")
    except GatewayUnavailable as exc:
        GATEWAY_CALLS.labels(kind, "unavailable").inc()
        return Unanswered(claim, _redacted(str(exc), token))
    except Exception as exc:  # an adapter's bug or an error it did not wrap: same key, later
        GATEWAY_CALLS.labels(kind, "error").inc()
        log.error(
            "gateway call raised an unexpected error",
            order_id=str(claim.order_id),
            exception=_redacted("".join(traceback.format_exception(exc)), token),
        )
        return Unanswered(claim, _redacted(repr(exc), token))
    GATEWAY_CALLS.labels(kind, _outcome(answer)).inc()
    return Answered(claim, answer)


def _redacted(text: str, token: str | None) -> str:
    """`text` without the plaintext token (an adapter's error may quote its request)."""
    return text.replace(token, REDACTED) if token else text


async def record_outcomes(
    sessions: async_sessionmaker[AsyncSession],
    outcomes: Sequence[Outcome],
    settings: Settings,
    *,
    clock: Clock = utc_now,
) -> None:
    """Record many calls' outcomes in one transaction: lock their payments (ascending order id),
    apply each outcome whose call is still its payment's open intent, in the order they came, then
    write the changed payments and the events in one statement each."""
    now = clock()
    applied: list[tuple[Outcome, Payment]] = []
    envelopes: list[Envelope] = []
    async with sessions() as session, session.begin():
        connection = await driver_connection(session)
        locked = await repository.lock_payments(connection, [outcome.claim.order_id for outcome in outcomes])
        for outcome in outcomes:
            payment = locked[outcome.claim.order_id]
            if payment.pending_call != outcome.claim.call:
                # Another executor (or an earlier call of this one) got the answer meanwhile.
                log.info("gateway outcome already settled", order_id=str(payment.order_id), status=payment.status.value)
                continue
            # Each outcome's events in its own order's trace: one transaction records many orders'.
            events = _apply(payment, outcome, settings, now)
            envelopes.extend(Envelope.new(event, traceparent=outcome.claim.traceparent) for event in events)
            applied.append((outcome, payment))
        await repository.save_payments(connection, locked.changed())
        await add_to_outbox(session, *envelopes)
    for outcome, payment in applied:
        _log_recorded(outcome, payment)


def _apply(payment: Payment, outcome: Outcome, settings: Settings, now: datetime) -> list[Event]:
    if isinstance(outcome, Unanswered):
        retry_in = retry_delay(
            payment.attempts,
            base=timedelta(seconds=settings.gateway_retry_backoff_s),
            cap=timedelta(seconds=settings.gateway_retry_backoff_max_s),
        )
        payment.record_call_failed(outcome.error, now, retry_in)
        return []
    if isinstance(outcome.answer, ChargeResult):
        return payment.record_charge(outcome.answer, now)
    return payment.record_refund(outcome.answer, now)


def _log_recorded(outcome: Outcome, payment: Payment) -> None:
    order_id = str(payment.order_id)
    if isinstance(outcome, Unanswered):
        log.warning(
            "gateway call failed; asking again later with the same key",
            order_id=order_id,
            attempts=payment.attempts,
            next_attempt_at=payment.next_attempt_at and payment.next_attempt_at.isoformat(),
            error=outcome.error,
        )
    else:
        log.debug("gateway answer recorded", order_id=order_id, status=payment.status.value)


def _outcome(answer: ChargeResult | RefundResult) -> str:
    if isinstance(answer, ChargeResult):
        return "approved" if answer.approved else "declined"
    return "refunded" if answer.refunded else "refused"


async def _call(gateway: PaymentGateway, call: GatewayCall, token: str | None) -> ChargeResult | RefundResult:
    if isinstance(call, ChargeCall):
        assert token is not None  # opened by call_gateway
        return await gateway.charge(
            token=token, amount=call.amount, currency=call.currency, idempotency_key=call.idempotency_key
        )
    return await gateway.refund(
        payment_id=call.payment_id, amount=call.amount, currency=call.currency, idempotency_key=call.idempotency_key
    )
