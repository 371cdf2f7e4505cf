from datetime import UTC, datetime, timedelta
from itertools import permutations
from uuid import uuid4

import pytest
from payment_service.domain import (
    ChargeCall,
    ChargeResult,
    ConflictingFact,
    Payment,
    PaymentNotDue,
    PaymentStatus,
    RefundCall,
    RefundResult,
    TestCardGateway,
    retry_delay,
)
from shared.events import Event, PaymentFailed, PaymentProcessed, RefundIssued

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
GATEWAY = "test"
LEASE = timedelta(seconds=15)
gateway = TestCardGateway()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def execute(payment: Payment, now: datetime) -> list[Event]:
    """What the executor does with a payment's open intent: claim it, ask the test gateway, record
    the answer. Nothing when no call is due."""
    if payment.pending_call is None:
        return []
    call = payment.claim(now, LEASE)
    if isinstance(call, ChargeCall):
        charge = await gateway.charge(
            token=call.sealed_token, amount=call.amount, currency=call.currency, idempotency_key=call.idempotency_key
        )
        return payment.record_charge(charge, now)
    refund = await gateway.refund(
        payment_id=call.payment_id, amount=call.amount, currency=call.currency, idempotency_key=call.idempotency_key
    )
    return payment.record_refund(refund, now)


async def settle(payment: Payment, now: datetime) -> list[Event]:
    """Every call the payment's intents lead to, answered (a charge cancelled meanwhile: its refund too)."""
    events: list[Event] = []
    while payment.pending_call is not None:
        events += await execute(payment, now)
    return events


def ready_to_charge(token: str = "tok_visa") -> Payment:
    payment = Payment(uuid4())
    payment.record_order(token)
    payment.record_reservation(2550, "EUR")
    return payment


def charging(token: str = "tok_visa") -> Payment:
    payment = ready_to_charge(token)
    assert payment.request_charge(GATEWAY, at(0))
    return payment


# -- deciding the charge ----------------------------------------------------------------------------


def test_the_charge_is_decided_only_once_the_token_and_the_amount_are_known():
    payment = Payment(uuid4())

    payment.record_order("tok_visa")
    assert not payment.request_charge(GATEWAY, at(0))
    assert payment.status is PaymentStatus.AWAITING_DETAILS and payment.pending_call is None

    payment.record_reservation(2550, "EUR")
    assert payment.request_charge(GATEWAY, at(1))

    assert payment.status is PaymentStatus.CHARGING
    assert payment.pending_call == ChargeCall("tok_visa", 2550, "EUR", f"charge:{payment.order_id}")
    assert (payment.gateway, payment.charge_requested_at, payment.next_attempt_at) == (GATEWAY, at(1), at(1))


def test_the_amount_first_then_the_token_decides_the_charge_as_well():
    payment = Payment(uuid4())

    payment.record_reservation(2550, "EUR")
    assert not payment.request_charge(GATEWAY, at(0))
    payment.record_order("tok_visa")

    assert payment.request_charge(GATEWAY, at(1))
    assert payment.status is PaymentStatus.CHARGING


def test_a_charge_is_decided_once_however_often_the_facts_are_told():
    payment = charging()

    payment.record_order("tok_visa")
    payment.record_reservation(2550, "EUR")

    assert not payment.request_charge(GATEWAY, at(5))
    assert payment.charge_requested_at == at(0)


async def test_the_approved_charge_is_recorded_with_the_gateway_payment_id():
    payment = charging()

    [event] = await execute(payment, at(1))

    assert isinstance(event, PaymentProcessed)
    assert (event.order_id, event.amount, event.currency) == (payment.order_id, 2550, "EUR")
    assert payment.status is PaymentStatus.CHARGED
    assert payment.payment_id == event.payment_id and payment.charged_at == at(1)
    assert payment.pending_call is None and payment.next_attempt_at is None


# -- cancellation before, while and after the charge ------------------------------------------------


async def test_a_cancellation_before_the_charge_is_decided_voids_the_payment_for_good():
    payment = Payment(uuid4())
    payment.record_order("tok_visa")

    payment.cancel(at(1))
    payment.record_reservation(2550, "EUR")

    assert not payment.request_charge(GATEWAY, at(2))
    assert payment.status is PaymentStatus.VOIDED and payment.pending_call is None
    assert payment.amount == 2550  # kept for the record


async def test_a_cancellation_while_charging_waits_for_the_answer_and_a_charge_is_refunded_at_once():
    payment = charging()

    payment.cancel(at(1))
    assert payment.status is PaymentStatus.CHARGING  # the gateway may have charged already
    assert payment.pending_call == ChargeCall("tok_visa", 2550, "EUR", f"charge:{payment.order_id}")

    [processed] = await execute(payment, at(2))
    assert isinstance(processed, PaymentProcessed)
    assert payment.status is PaymentStatus.REFUNDING
    assert payment.pending_call == RefundCall(processed.payment_id, 2550, "EUR", f"refund:{payment.order_id}")
    assert payment.next_attempt_at == at(2)  # due at once

    [refunded] = await execute(payment, at(3))
    assert refunded == RefundIssued(
        order_id=payment.order_id, payment_id=processed.payment_id, amount=2550, currency="EUR"
    )
    assert payment.status is PaymentStatus.REFUNDED and payment.cancelled_at == at(1)


async def test_a_cancellation_while_charging_a_card_that_is_declined_ends_declined_with_nothing_to_refund():
    payment = charging("tok_chargeDeclined")

    payment.cancel(at(1))
    [failed] = await execute(payment, at(2))

    assert isinstance(failed, PaymentFailed)
    assert payment.status is PaymentStatus.DECLINED and payment.pending_call is None


async def test_a_cancellation_after_the_charge_decides_the_refund():
    payment = charging()
    [processed] = await execute(payment, at(1))

    payment.cancel(at(2))
    assert payment.status is PaymentStatus.REFUNDING
    assert payment.pending_call == RefundCall(processed.payment_id, 2550, "EUR", f"refund:{payment.order_id}")
    [refunded] = await execute(payment, at(3))

    assert isinstance(refunded, RefundIssued)
    assert payment.status is PaymentStatus.REFUNDED
    assert payment.cancelled_at == at(2) and payment.refunded_at == at(3) and payment.refund_id is not None


async def test_a_cancellation_after_a_decline_has_nothing_to_undo():
    payment = charging("tok_chargeDeclined")
    await execute(payment, at(1))

    payment.cancel(at(2))

    assert payment.status is PaymentStatus.DECLINED and payment.pending_call is None


async def test_a_cancellation_told_again_changes_nothing():
    payment = charging()
    payment.cancel(at(1))
    payment.cancel(at(2))
    assert payment.cancelled_at == at(1)

    await settle(payment, at(3))
    payment.cancel(at(4))

    assert payment.status is PaymentStatus.REFUNDED and payment.cancelled_at == at(1)


@pytest.mark.parametrize("facts", list(permutations(["order", "reservation", "cancel", "gateway answers"])))
async def test_in_any_order_of_facts_and_answers_no_money_stays_taken_and_nothing_is_charged_twice(facts):
    payment = Payment(uuid4())
    events: list[Event] = []

    for minute, fact in enumerate(facts):
        if fact == "order":
            payment.record_order("tok_visa")
        elif fact == "reservation":
            payment.record_reservation(2550, "EUR")
        elif fact == "cancel":
            payment.cancel(at(minute))
        else:
            events += await execute(payment, at(minute))
        payment.request_charge(GATEWAY, at(minute))
    events += await settle(payment, at(9))  # the executor's sweep, eventually

    charges = [event for event in events if isinstance(event, PaymentProcessed)]
    refunds = [event for event in events if isinstance(event, RefundIssued)]
    assert len(charges) <= 1
    assert len(refunds) == len(charges)
    cancelled_before_the_decision = facts.index("cancel") < max(facts.index("order"), facts.index("reservation"))
    assert payment.status is (PaymentStatus.VOIDED if cancelled_before_the_decision else PaymentStatus.REFUNDED)


# -- the executor's claims, failures and retries -----------------------------------------------------


def test_a_claim_counts_the_attempt_and_keeps_other_executors_away_for_the_lease():
    payment = charging()

    call = payment.claim(at(1), LEASE)

    assert call == payment.pending_call
    assert payment.attempts == 1 and payment.next_attempt_at == at(1) + LEASE


def test_a_failed_call_keeps_the_intent_open_with_the_same_key_and_retries_later():
    payment = charging()
    first = payment.claim(at(1), LEASE)

    payment.record_call_failed("no answer within 5 s", at(2), timedelta(seconds=4))

    assert payment.status is PaymentStatus.CHARGING and payment.last_error == "no answer within 5 s"
    assert payment.next_attempt_at == at(2) + timedelta(seconds=4)
    assert payment.claim(at(3), LEASE) == first  # same idempotency key: the same charge at the gateway
    assert payment.attempts == 2


async def test_an_answer_clears_the_last_error():
    payment = charging()
    payment.claim(at(1), LEASE)
    payment.record_call_failed("gateway down", at(2), timedelta(seconds=1))

    await execute(payment, at(3))

    assert payment.last_error is None and payment.next_attempt_at is None and payment.attempts == 2


def test_the_retry_delay_doubles_from_its_base_up_to_its_cap():
    delays = [retry_delay(n, base=timedelta(seconds=1), cap=timedelta(seconds=15)) for n in range(1, 7)]

    assert [d.total_seconds() for d in delays] == [1, 2, 4, 8, 15, 15]


@pytest.mark.parametrize("attempts", [48, 100, 10_000])
def test_the_retry_delay_stays_at_its_cap_however_long_the_gateway_fails(attempts):
    # 48 failed calls are about 12 minutes of a gateway outage; the doubling must not outgrow a timedelta.
    assert retry_delay(attempts, base=timedelta(seconds=1), cap=timedelta(seconds=15)) == timedelta(seconds=15)


def test_nothing_can_be_claimed_or_failed_without_an_open_intent():
    payment = ready_to_charge()

    with pytest.raises(PaymentNotDue):
        payment.claim(at(1), LEASE)
    with pytest.raises(PaymentNotDue):
        payment.record_call_failed("x", at(1), timedelta(seconds=1))


# -- refunds ----------------------------------------------------------------------------------------


async def test_a_refused_refund_ends_refund_refused_for_a_human_with_the_reason():
    payment = charging()
    await execute(payment, at(1))
    payment.cancel(at(2))
    payment.claim(at(3), LEASE)

    events = payment.record_refund(RefundResult(refunded=False, failure_reason="charge_disputed"), at(3))

    assert events == []
    assert payment.status is PaymentStatus.REFUND_REFUSED and payment.failure_reason == "charge_disputed"
    assert payment.pending_call is None  # the same key would get the same refusal: not asked again


# -- the test cards ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard", "tok_amex", "tok_visa_3f9a2c"])
async def test_the_approving_test_cards_are_charged(token):
    [event] = await execute(charging(token), at(1))
    assert isinstance(event, PaymentProcessed)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("tok_chargeDeclinedExpiredCard", "expired_card"),
        ("tok_chargeDeclined_3f9a2c", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds_3f9a2c", "insufficient_funds"),
        ("tok_somethingElse", "invalid_token"),
        ("tok_visa3f9a2c", "invalid_token"),
    ],
)
async def test_the_declining_test_cards_fail_with_their_reason_and_are_never_charged_again(token, reason):
    payment = charging(token)

    [event] = await execute(payment, at(1))

    assert event == PaymentFailed(order_id=payment.order_id, amount=2550, currency="EUR", reason=reason)
    assert payment.status is PaymentStatus.DECLINED and payment.failure_reason == reason
    assert payment.payment_id is None
    assert not payment.request_charge(GATEWAY, at(2)) and payment.pending_call is None


# -- idempotency ------------------------------------------------------------------------------------


async def test_a_retried_charge_gets_the_same_payment_id_from_the_gateway():
    key = charging().pending_call.idempotency_key

    first = await gateway.charge(token="tok_visa", amount=2550, currency="EUR", idempotency_key=key)
    retry = await gateway.charge(token="tok_visa", amount=2550, currency="EUR", idempotency_key=key)
    other = await gateway.charge(
        token="tok_visa", amount=2550, currency="EUR", idempotency_key=charging().pending_call.idempotency_key
    )

    assert first == retry
    assert first.payment_id != other.payment_id


async def test_a_retried_refund_gets_the_same_refund_id_from_the_gateway():
    payment = charging()
    await execute(payment, at(1))
    payment.cancel(at(2))
    call = payment.pending_call
    refund = {
        "payment_id": call.payment_id,
        "amount": 2550,
        "currency": "EUR",
        "idempotency_key": call.idempotency_key,
    }
    assert await gateway.refund(**refund) == await gateway.refund(**refund)


def test_a_fact_told_again_with_another_value_is_refused():
    payment = ready_to_charge()
    with pytest.raises(ConflictingFact):
        payment.record_order("tok_mastercard")
    with pytest.raises(ConflictingFact):
        payment.record_reservation(2551, "EUR")
    with pytest.raises(ConflictingFact):
        payment.record_reservation(2550, "USD")
    assert (payment.payment_token, payment.amount, payment.currency) == ("tok_visa", 2550, "EUR")


def test_an_answer_to_a_call_that_is_not_open_cannot_be_recorded():
    payment = ready_to_charge()
    approved = ChargeResult(approved=True, payment_id=uuid4())

    with pytest.raises(PaymentNotDue):
        payment.record_charge(approved, at(1))
    with pytest.raises(PaymentNotDue):
        payment.record_refund(RefundResult(refunded=True, refund_id=uuid4()), at(1))

    payment.request_charge(GATEWAY, at(1))
    payment.record_charge(approved, at(2))
    with pytest.raises(PaymentNotDue):
        payment.record_charge(approved, at(3))


def test_times_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        ready_to_charge().request_charge(GATEWAY, datetime(2025, 1, 1, 12, 0))


def test_a_gateway_answer_must_be_complete():
    with pytest.raises(ValueError):
        ChargeResult(approved=True)
    with pytest.raises(ValueError):
        ChargeResult(approved=False)
    with pytest.raises(ValueError):
        RefundResult(refunded=True)
    with pytest.raises(ValueError):
        RefundResult(refunded=False)


# -- the token is kept only while a charge may still need it ----------------------------------------


@pytest.mark.parametrize("token", ["tok_visa", "tok_chargeDeclined"])
async def test_the_token_is_forgotten_once_the_charge_is_answered_approved_or_declined(token):
    payment = charging(token)
    await execute(payment, at(1))
    assert payment.status in (PaymentStatus.CHARGED, PaymentStatus.DECLINED)
    assert payment.payment_token is None


async def test_a_refund_needs_no_token():
    payment = charging()
    await execute(payment, at(1))
    payment.cancel(at(2))
    [refunded] = await settle(payment, at(3))
    assert isinstance(refunded, RefundIssued) and payment.payment_token is None


def test_a_voided_payment_forgets_its_token_and_keeps_none_told_later():
    known_first = Payment(uuid4())
    known_first.record_order("tok_visa")
    known_first.cancel(at(1))
    told_later = Payment(uuid4())
    told_later.cancel(at(1))
    told_later.record_order("tok_visa")
    assert known_first.payment_token is None and told_later.payment_token is None


async def test_a_token_told_again_after_the_charge_is_not_kept():
    payment = charging()
    await execute(payment, at(1))
    payment.record_order("tok_visa")  # OrderCreated redelivered after its dedup row was purged
    assert payment.payment_token is None and payment.status is PaymentStatus.CHARGED


def test_the_order_s_customer_is_kept_so_the_api_can_show_a_customer_only_its_own_payments():
    payment = Payment(uuid4())
    payment.record_order("tok_visa", "alice")
    payment.record_order("tok_visa", "alice")  # redelivered

    assert payment.customer_id == "alice"
    with pytest.raises(ConflictingFact):
        payment.record_order("tok_visa", "mallory")
