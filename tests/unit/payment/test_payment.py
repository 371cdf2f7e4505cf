from datetime import UTC, datetime, timedelta
from itertools import permutations
from uuid import uuid4

import pytest
from payment_service.domain import (
    ChargeResult,
    ConflictingFact,
    Payment,
    PaymentNotDue,
    PaymentStatus,
    RefundRefused,
    RefundResult,
    TestCardGateway,
)
from shared.events import Event, PaymentFailed, PaymentProcessed, RefundIssued

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
gateway = TestCardGateway()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def settle(payment: Payment, now: datetime) -> list[Event]:
    """What the handler does after recording a fact: charge or refund if due."""
    events: list[Event] = []
    if payment.charge_due:
        charge = await gateway.charge(
            token=payment.payment_token,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.charge_idempotency_key,
        )
        events.append(payment.record_charge(charge, now))
    if payment.refund_due:
        refund = await gateway.refund(
            payment_id=payment.payment_id,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.refund_idempotency_key,
        )
        events.append(payment.record_refund(refund, now))
    return events


def charged_payment(token: str = "tok_visa") -> Payment:
    payment = Payment(uuid4())
    payment.record_order(token)
    payment.record_reservation(2550, "EUR")
    return payment


# -- the facts in every order -----------------------------------------------------------------------


async def test_the_token_first_then_the_amount_charges_once_the_amount_is_known():
    payment = Payment(uuid4())

    payment.record_order("tok_visa")
    assert not payment.charge_due
    payment.record_reservation(2550, "EUR")
    assert payment.charge_due

    [event] = await settle(payment, at(1))

    assert isinstance(event, PaymentProcessed)
    assert (event.order_id, event.amount, event.currency) == (payment.order_id, 2550, "EUR")
    assert payment.status is PaymentStatus.CHARGED
    assert payment.payment_id == event.payment_id and payment.charged_at == at(1)
    assert not payment.charge_due


async def test_the_amount_first_then_the_token_charges_once_the_token_is_known():
    payment = Payment(uuid4())

    payment.record_reservation(2550, "EUR")
    assert not payment.charge_due
    payment.record_order("tok_visa")

    [event] = await settle(payment, at(1))

    assert isinstance(event, PaymentProcessed)
    assert payment.status is PaymentStatus.CHARGED


async def test_a_cancellation_before_the_reservation_voids_the_payment_and_it_is_never_charged():
    payment = Payment(uuid4())
    payment.record_order("tok_visa")

    payment.cancel(at(1))
    payment.record_reservation(2550, "EUR")

    assert payment.status is PaymentStatus.VOIDED
    assert not payment.charge_due and not payment.refund_due
    assert await settle(payment, at(2)) == []
    assert payment.amount == 2550  # kept for the record


async def test_a_cancellation_after_the_charge_makes_a_refund_due_and_refunds_in_full():
    payment = charged_payment()
    [processed] = await settle(payment, at(1))

    payment.cancel(at(2))
    assert payment.refund_due
    [refunded] = await settle(payment, at(3))

    assert refunded == RefundIssued(
        order_id=payment.order_id, payment_id=processed.payment_id, amount=2550, currency="EUR"
    )
    assert payment.status is PaymentStatus.REFUNDED
    assert payment.cancelled_at == at(2) and payment.refunded_at == at(3)
    assert payment.refund_id is not None
    assert not payment.refund_due and not payment.charge_due


async def test_a_cancellation_after_a_decline_has_nothing_to_undo():
    payment = charged_payment("tok_chargeDeclined")
    await settle(payment, at(1))

    payment.cancel(at(2))

    assert payment.status is PaymentStatus.DECLINED
    assert await settle(payment, at(3)) == []


@pytest.mark.parametrize("facts", list(permutations(["order", "reservation", "cancel"])))
async def test_in_any_order_of_the_facts_no_money_stays_taken_and_nothing_is_charged_twice(facts):
    payment = Payment(uuid4())
    events: list[Event] = []

    for minute, fact in enumerate(facts):
        if fact == "order":
            payment.record_order("tok_visa")
        elif fact == "reservation":
            payment.record_reservation(2550, "EUR")
        else:
            payment.cancel(at(minute))
        events += await settle(payment, at(minute))

    charges = [event for event in events if isinstance(event, PaymentProcessed)]
    refunds = [event for event in events if isinstance(event, RefundIssued)]
    assert len(charges) <= 1
    assert len(refunds) == len(charges)
    charged_before_cancel = facts.index("cancel") == 2
    assert payment.status is (PaymentStatus.REFUNDED if charged_before_cancel else PaymentStatus.VOIDED)


# -- the test cards ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard", "tok_amex"])
async def test_the_approving_test_cards_are_charged(token):
    payment = charged_payment(token)
    [event] = await settle(payment, at(1))
    assert isinstance(event, PaymentProcessed)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("tok_chargeDeclinedExpiredCard", "expired_card"),
        ("tok_somethingElse", "invalid_token"),
    ],
)
async def test_the_declining_test_cards_fail_with_their_reason_and_are_never_charged_again(token, reason):
    payment = charged_payment(token)

    [event] = await settle(payment, at(1))

    assert event == PaymentFailed(order_id=payment.order_id, amount=2550, currency="EUR", reason=reason)
    assert payment.status is PaymentStatus.DECLINED and payment.failure_reason == reason
    assert payment.payment_id is None
    assert not payment.charge_due
    assert await settle(payment, at(2)) == []


# -- idempotency ------------------------------------------------------------------------------------


async def test_a_retried_charge_gets_the_same_payment_id_from_the_gateway():
    payment = charged_payment()
    key = payment.charge_idempotency_key

    first = await gateway.charge(token="tok_visa", amount=2550, currency="EUR", idempotency_key=key)
    retry = await gateway.charge(token="tok_visa", amount=2550, currency="EUR", idempotency_key=key)
    other = await gateway.charge(
        token="tok_visa",
        amount=2550,
        currency="EUR",
        idempotency_key=charged_payment().charge_idempotency_key,
    )

    assert first == retry
    assert first.payment_id != other.payment_id


async def test_a_retried_refund_gets_the_same_refund_id_from_the_gateway():
    payment = charged_payment()
    await settle(payment, at(1))
    refund = {
        "payment_id": payment.payment_id,
        "amount": 2550,
        "currency": "EUR",
        "idempotency_key": payment.refund_idempotency_key,
    }
    assert await gateway.refund(**refund) == await gateway.refund(**refund)


async def test_repeated_facts_change_nothing():
    payment = charged_payment()
    payment.record_order("tok_visa")
    payment.record_reservation(2550, "EUR")
    await settle(payment, at(1))

    payment.record_order("tok_visa")
    payment.record_reservation(2550, "EUR")
    assert await settle(payment, at(2)) == []

    payment.cancel(at(3))
    payment.cancel(at(4))
    assert payment.cancelled_at == at(3)
    assert len(await settle(payment, at(5))) == 1
    payment.cancel(at(6))
    assert payment.status is PaymentStatus.REFUNDED
    assert await settle(payment, at(7)) == []


def test_a_fact_told_again_with_another_value_is_refused():
    payment = charged_payment()
    with pytest.raises(ConflictingFact):
        payment.record_order("tok_mastercard")
    with pytest.raises(ConflictingFact):
        payment.record_reservation(2551, "EUR")
    with pytest.raises(ConflictingFact):
        payment.record_reservation(2550, "USD")
    assert (payment.payment_token, payment.amount, payment.currency) == ("tok_visa", 2550, "EUR")


def test_a_charge_or_refund_that_is_not_due_cannot_be_recorded():
    payment = Payment(uuid4())
    payment.record_order("tok_visa")
    approved = ChargeResult(approved=True, payment_id=uuid4())

    with pytest.raises(PaymentNotDue):
        payment.record_charge(approved, at(1))
    with pytest.raises(PaymentNotDue):
        payment.record_refund(RefundResult(refunded=True, refund_id=uuid4()), at(1))

    payment.record_reservation(2550, "EUR")
    payment.record_charge(approved, at(2))
    with pytest.raises(PaymentNotDue):
        payment.record_charge(approved, at(3))


def test_a_refused_refund_keeps_the_refund_due_so_it_is_not_forgotten():
    payment = charged_payment()
    payment.record_charge(ChargeResult(approved=True, payment_id=uuid4()), at(1))
    payment.cancel(at(2))

    with pytest.raises(RefundRefused):
        payment.record_refund(RefundResult(refunded=False, failure_reason="gateway_unavailable"), at(3))

    assert payment.status is PaymentStatus.CHARGED and payment.refund_due


def test_a_gateway_answer_must_be_complete():
    with pytest.raises(ValueError):
        ChargeResult(approved=True)
    with pytest.raises(ValueError):
        ChargeResult(approved=False)
    with pytest.raises(ValueError):
        RefundResult(refunded=True)
    with pytest.raises(ValueError):
        RefundResult(refunded=False)
