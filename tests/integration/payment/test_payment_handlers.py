"""The payment handlers against the real Postgres: each call is one committed unit of work, as the
worker runs it after inserting the dedup row. The facts of one order arrive in any order."""

import asyncio
import uuid

import pytest
from payment_service.domain import RefundRefused
from payment_service.service_layer.handlers import cancel_payment, record_order, record_reservation
from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, OrderRejected, PaymentFailed, PaymentProcessed, RefundIssued

pytestmark = pytest.mark.infra


def incoming(event) -> Envelope:
    return Envelope.new(event, source="integration-tests")


async def test_an_order_is_charged_once_its_token_and_amount_are_known(
    order_id, order_created, stock_reserved, in_transaction, gateway, payment, outbox_events
):
    reserved = stock_reserved(order_id, amount=2500)

    await in_transaction(record_order, order_created(order_id, "tok_visa"))
    assert gateway.charges == []
    await in_transaction(record_reservation, reserved)

    assert gateway.charges == [f"charge:{order_id}"]
    row = await payment(order_id)
    assert row["status"] == "CHARGED" and row["amount"] == 2500 and row["currency"] == "EUR"
    assert row["payment_id"] is not None and row["charged_at"] is not None
    (answer,) = await outbox_events(str(order_id))
    assert answer.event == PaymentProcessed(
        order_id=order_id, payment_id=row["payment_id"], amount=2500, currency="EUR"
    )
    assert answer.causation_id == reserved.event_id
    assert answer.source == "payment" and answer.topic == "payment-events"


async def test_stock_reserved_before_order_created_still_charges_once(
    order_id, order_created, stock_reserved, in_transaction, gateway, payment, outbox_events
):
    await in_transaction(record_reservation, stock_reserved(order_id))
    assert (await payment(order_id))["status"] == "AWAITING_DETAILS"

    await in_transaction(record_order, order_created(order_id))

    assert gateway.charges == [f"charge:{order_id}"]
    assert (await payment(order_id))["status"] == "CHARGED"
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_declined_card_fails_the_payment_with_the_gateway_reason(
    order_id, order_created, stock_reserved, in_transaction, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id, "tok_chargeDeclined"))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=900))

    row = await payment(order_id)
    assert row["status"] == "DECLINED" and row["failure_reason"] == "card_declined" and row["payment_id"] is None
    (answer,) = await outbox_events(str(order_id))
    assert answer.event == PaymentFailed(order_id=order_id, amount=900, currency="EUR", reason="card_declined")


async def test_facts_told_again_never_charge_twice(
    order_id, order_created, stock_reserved, in_transaction, gateway, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))

    await in_transaction(record_reservation, stock_reserved(order_id))
    await in_transaction(record_order, order_created(order_id))

    assert gateway.charges == [f"charge:{order_id}"]
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_cancellation_before_the_amount_is_known_means_it_is_never_charged(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(cancel_payment, order_cancelled(order_id))

    await in_transaction(record_reservation, stock_reserved(order_id))

    assert gateway.charges == []
    row = await payment(order_id)
    assert row["status"] == "VOIDED" and row["amount"] == 2500  # kept for the record
    assert await outbox_events(str(order_id)) == []


async def test_a_cancellation_before_anything_else_voids_the_payment_for_good(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment
):
    await in_transaction(cancel_payment, order_cancelled(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    await in_transaction(record_order, order_created(order_id))

    assert gateway.charges == []
    assert (await payment(order_id))["status"] == "VOIDED"


async def test_a_cancellation_after_the_charge_refunds_it_once(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=2500))
    cancelled = order_cancelled(order_id)

    await in_transaction(cancel_payment, cancelled)
    await in_transaction(cancel_payment, order_cancelled(order_id))

    assert gateway.charges == [f"charge:{order_id}"]
    assert gateway.refunds == [f"refund:{order_id}"]
    row = await payment(order_id)
    assert row["status"] == "REFUNDED" and row["refunded_at"] is not None and row["refund_id"] is not None
    processed, refunded = await outbox_events(str(order_id))
    assert refunded.event == RefundIssued(
        order_id=order_id, payment_id=processed.event.payment_id, amount=2500, currency="EUR"
    )
    assert refunded.causation_id == cancelled.event_id


async def test_cancelling_a_declined_payment_moves_no_money(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id, "tok_chargeDeclined"))
    await in_transaction(record_reservation, stock_reserved(order_id))

    await in_transaction(cancel_payment, order_cancelled(order_id))

    assert gateway.refunds == []
    assert (await payment(order_id))["status"] == "DECLINED"
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentFailed"]


async def test_a_charge_whose_transaction_is_lost_is_answered_by_the_gateway_again_not_charged_again(
    order_id, order_created, stock_reserved, in_transaction, sessions, gateway, payment, outbox_events
):
    """The worker crashes after the gateway charged but before the commit; the message comes again."""
    await in_transaction(record_order, order_created(order_id))
    reserved = stock_reserved(order_id)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with sessions() as session, session.begin():
            await record_reservation(session, reserved, gateway=gateway)
            raise Crash
    assert (await payment(order_id))["status"] == "AWAITING_DETAILS"

    await in_transaction(record_reservation, reserved)

    # The second call carries the same idempotency key, which a real gateway answers with the
    # first charge; the test gateway derives the same payment id from it.
    assert gateway.charges == [f"charge:{order_id}"] * 2
    (processed,) = await outbox_events(str(order_id))
    first_answer = await gateway.inner.charge(
        token="tok_visa", amount=2500, currency="EUR", idempotency_key=f"charge:{order_id}"
    )
    assert processed.event.payment_id == first_answer.payment_id == (await payment(order_id))["payment_id"]


async def test_a_refused_refund_fails_the_message_and_keeps_the_refund_due(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    gateway.refuse_refunds = True

    with pytest.raises(RefundRefused):  # retried by the worker, then dead-lettered for a human
        await in_transaction(cancel_payment, order_cancelled(order_id))

    row = await payment(order_id)
    assert row["status"] == "CHARGED" and row["cancelled_at"] is None
    gateway.refuse_refunds = False
    await in_transaction(cancel_payment, order_cancelled(order_id))
    assert (await payment(order_id))["status"] == "REFUNDED"


async def test_a_different_amount_for_the_same_order_is_refused_for_the_dead_letter_topic(
    order_id, stock_reserved, in_transaction, payment
):
    await in_transaction(record_reservation, stock_reserved(order_id, amount=2500))

    with pytest.raises(NonRetryableError):
        await in_transaction(record_reservation, stock_reserved(order_id, amount=2600))

    assert (await payment(order_id))["amount"] == 2500


async def test_facts_of_many_orders_arriving_at_once_charge_each_order_exactly_once(
    order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment, outbox_events
):
    orders = [uuid.uuid4() for _ in range(20)]
    # Every fact of every order at the same moment, some of them twice: the row lock serializes
    # one order's facts, whatever order they commit in.
    facts = [
        (handler, envelope)
        for order_id in orders
        for handler, envelope in (
            (record_order, order_created(order_id)),
            (record_reservation, stock_reserved(order_id)),
            (record_reservation, stock_reserved(order_id)),
        )
    ]

    await asyncio.gather(*(in_transaction(handler, envelope) for handler, envelope in facts))

    assert sorted(gateway.charges) == sorted(f"charge:{order_id}" for order_id in orders)
    for order_id in orders:
        assert (await payment(order_id))["status"] == "CHARGED"
        assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_cancellation_racing_the_amount_either_voids_or_refunds_never_keeps_money(
    order_created, stock_reserved, order_cancelled, in_transaction, gateway, payment
):
    orders = [uuid.uuid4() for _ in range(20)]
    for order_id in orders:
        await in_transaction(record_order, order_created(order_id))

    await asyncio.gather(
        *(
            in_transaction(handler, envelope)
            for order_id in orders
            for handler, envelope in (
                (record_reservation, stock_reserved(order_id)),
                (cancel_payment, order_cancelled(order_id)),
            )
        )
    )

    for order_id in orders:
        status = (await payment(order_id))["status"]
        charged = gateway.charges.count(f"charge:{order_id}")
        refunded = gateway.refunds.count(f"refund:{order_id}")
        assert (status, charged, refunded) in {("VOIDED", 0, 0), ("REFUNDED", 1, 1)}


async def test_a_rejected_order_voids_its_payment_instead_of_leaving_it_awaiting_an_amount(
    order_id, order_created, in_transaction, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))

    await in_transaction(cancel_payment, incoming(OrderRejected(order_id=order_id, reason="insufficient_stock: X")))

    assert (await payment(order_id))["status"] == "VOIDED"
    assert gateway.charges == [] and await outbox_events(str(order_id)) == []


async def test_an_event_the_handler_was_not_written_for_is_refused_for_the_dead_letter_topic(
    order_id, stock_reserved, in_transaction
):
    with pytest.raises(NonRetryableError, match="OrderCancelled or OrderRejected"):
        await in_transaction(cancel_payment, stock_reserved(order_id))
