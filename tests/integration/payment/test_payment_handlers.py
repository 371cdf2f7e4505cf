"""The payment handlers and the executor against the real Postgres: each handler call is one
committed unit of work, as the worker runs it after inserting the dedup row; `settle()` is the
executor making the gateway calls those decided. The facts of one order arrive in any order."""

import asyncio
import uuid

import pytest
from payment_service.service_layer.handlers import cancel_payment, record_order, record_reservation
from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, OrderRejected, PaymentFailed, PaymentProcessed, RefundIssued

pytestmark = pytest.mark.infra


def incoming(event) -> Envelope:
    return Envelope.new(event)


async def test_a_handler_decides_the_charge_and_the_executor_makes_it(
    order_id, order_created, stock_reserved, in_transaction, settle, gateway, gateway_name, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id, "tok_visa"))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=2500))

    decided = await payment(order_id)
    assert decided["status"] == "CHARGING" and gateway.calls == []  # no gateway call inside a handler
    await settle()

    assert gateway.approved_charges() == [f"charge:{order_id}"]
    row = await payment(order_id)
    assert row["status"] == "CHARGED" and row["amount"] == 2500 and row["currency"] == "EUR"
    assert row["payment_id"] is not None and row["charged_at"] is not None
    assert (row["charge_key"], row["gateway"], row["attempts"]) == (f"charge:{order_id}", gateway_name, 1)
    (answer,) = await outbox_events(str(order_id))
    assert answer.event == PaymentProcessed(
        order_id=order_id, payment_id=row["payment_id"], amount=2500, currency="EUR"
    )
    assert answer.correlation_id == str(order_id)
    assert answer.source == "payment" and answer.topic == "payment-events"


async def test_stock_reserved_before_order_created_still_charges_once(
    order_id, order_created, stock_reserved, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_reservation, stock_reserved(order_id))
    await settle()
    assert (await payment(order_id))["status"] == "AWAITING_DETAILS"

    await in_transaction(record_order, order_created(order_id))
    await settle()

    assert gateway.approved_charges() == [f"charge:{order_id}"]
    assert (await payment(order_id))["status"] == "CHARGED"
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_declined_card_fails_the_payment_with_the_gateway_reason(
    order_id, order_created, stock_reserved, in_transaction, settle, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id, "tok_chargeDeclined"))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=900))
    await settle()

    row = await payment(order_id)
    assert row["status"] == "DECLINED" and row["failure_reason"] == "card_declined" and row["payment_id"] is None
    (answer,) = await outbox_events(str(order_id))
    assert answer.event == PaymentFailed(order_id=order_id, amount=900, currency="EUR", reason="card_declined")


async def test_facts_told_again_never_charge_twice(
    order_id, order_created, stock_reserved, in_transaction, settle, gateway, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))  # while CHARGING
    await settle()

    await in_transaction(record_reservation, stock_reserved(order_id))  # after CHARGED
    await in_transaction(record_order, order_created(order_id))
    await settle()

    assert gateway.calls == [f"charge:{order_id}"]
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_cancellation_before_the_amount_is_known_means_it_is_never_charged(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(cancel_payment, order_cancelled(order_id))

    await in_transaction(record_reservation, stock_reserved(order_id))
    await settle()

    assert gateway.calls == []
    row = await payment(order_id)
    assert row["status"] == "VOIDED" and row["amount"] == 2500  # kept for the record
    assert await outbox_events(str(order_id)) == []


async def test_a_cancellation_before_anything_else_voids_the_payment_for_good(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle, gateway, payment
):
    await in_transaction(cancel_payment, order_cancelled(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    await in_transaction(record_order, order_created(order_id))
    await settle()

    assert gateway.calls == []
    assert (await payment(order_id))["status"] == "VOIDED"


async def test_a_cancellation_after_the_charge_refunds_it_once(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=2500))
    await settle()

    await in_transaction(cancel_payment, order_cancelled(order_id))
    assert (await payment(order_id))["status"] == "REFUNDING"
    await in_transaction(cancel_payment, order_cancelled(order_id))
    await settle()

    assert gateway.calls == [f"charge:{order_id}", f"refund:{order_id}"]
    row = await payment(order_id)
    assert row["status"] == "REFUNDED" and row["refunded_at"] is not None and row["refund_id"] is not None
    processed, refunded = await outbox_events(str(order_id))
    assert refunded.event == RefundIssued(
        order_id=order_id, payment_id=processed.event.payment_id, amount=2500, currency="EUR"
    )


async def test_cancelling_a_declined_payment_moves_no_money(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id, "tok_chargeDeclined"))
    await in_transaction(record_reservation, stock_reserved(order_id))
    await settle()

    await in_transaction(cancel_payment, order_cancelled(order_id))
    await settle()

    assert gateway.refunds == {}
    assert (await payment(order_id))["status"] == "DECLINED"
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentFailed"]


async def test_a_refused_refund_ends_refund_refused_for_a_human_and_is_not_asked_again(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    await settle()
    gateway.refuse_refunds = True

    await in_transaction(cancel_payment, order_cancelled(order_id))
    await settle()
    await settle()

    row = await payment(order_id)
    assert row["status"] == "REFUND_REFUSED" and row["failure_reason"] == "charge_disputed"
    assert gateway.calls.count(f"refund:{order_id}") == 1
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_different_amount_for_the_same_order_is_refused_for_the_dead_letter_topic(
    order_id, stock_reserved, in_transaction, payment
):
    await in_transaction(record_reservation, stock_reserved(order_id, amount=2500))

    with pytest.raises(NonRetryableError):
        await in_transaction(record_reservation, stock_reserved(order_id, amount=2600))

    assert (await payment(order_id))["amount"] == 2500


async def test_facts_of_many_orders_arriving_at_once_charge_each_order_exactly_once(
    order_created, stock_reserved, in_transaction, running_executor, gateway, payment, outbox_events, eventually
):
    orders = [uuid.uuid4() for _ in range(20)]
    # Every fact of every order at the same moment, some of them twice, with the executor running:
    # the row lock serializes one order's facts, whatever order they commit in.
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

    async def all_charged() -> bool:
        return all([(await payment(order_id))["status"] == "CHARGED" for order_id in orders])

    await eventually(all_charged, timeout=10, what="every order charged")
    assert sorted(gateway.calls) == sorted(f"charge:{order_id}" for order_id in orders)
    for order_id in orders:
        assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_cancellation_racing_the_amount_either_voids_or_refunds_never_keeps_money(
    order_created, stock_reserved, order_cancelled, in_transaction, running_executor, gateway, payment, eventually
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

    async def all_ended() -> bool:
        return all([(await payment(order_id))["status"] in {"VOIDED", "REFUNDED"} for order_id in orders])

    await eventually(all_ended, timeout=10, what="every payment voided or refunded")
    for order_id in orders:
        status = (await payment(order_id))["status"]
        charged = f"charge:{order_id}" in gateway.charges
        refunded = f"refund:{order_id}" in gateway.refunds
        assert (status, charged, refunded) in {("VOIDED", False, False), ("REFUNDED", True, True)}


async def test_a_rejected_order_voids_its_payment_instead_of_leaving_it_awaiting_an_amount(
    order_id, order_created, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))

    await in_transaction(cancel_payment, incoming(OrderRejected(order_id=order_id, reason="insufficient_stock: X")))
    await settle()

    assert (await payment(order_id))["status"] == "VOIDED"
    assert gateway.calls == [] and await outbox_events(str(order_id)) == []


async def test_an_event_the_handler_was_not_written_for_is_refused_for_the_dead_letter_topic(
    order_id, stock_reserved, in_transaction
):
    with pytest.raises(NonRetryableError, match="OrderCancelled or OrderRejected"):
        await in_transaction(cancel_payment, stock_reserved(order_id))
