"""The worker's unit of work against the real Postgres: a transaction handling many events (many
orders, the same order more than once, any mix of types) loads and locks their payments up front,
applies the facts in memory and writes the changed payments back, in as many statements for fifty
events as for one, and ends in the state handling them one at a time gives."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from payment_service.service_layer.handlers import cancel_payment, record_order, record_reservation
from payment_service.service_layer.unit_of_work import open_batch
from sealed_tokens import opener, opener_for
from shared.events import Envelope, OrderRejected

pytestmark = pytest.mark.infra

COMPARED = ("status", "amount", "currency", "gateway", "attempts", "last_error", "failure_reason")
DECIDED_AT = ("charge_requested_at", "cancelled_at", "next_attempt_at")


@pytest.fixture
def facts(order_created, stock_reserved, order_cancelled) -> Callable[[UUID], list[list[tuple[Any, Envelope]]]]:
    """`facts(first_order_id)`: the facts of eight orders, each order's in the order they arrive,
    covering every path of the handlers (the order ids derive from the first one)."""

    def build(first: UUID) -> list[list[tuple[Any, Envelope]]]:
        ids = [uuid.UUID(int=first.int + n) for n in range(8)]
        created = lambda n, token="tok_visa": (record_order, order_created(ids[n], token))  # noqa: E731
        reserved = lambda n, amount=2500: (record_reservation, stock_reserved(ids[n], amount=amount))  # noqa: E731
        cancelled = lambda n: (cancel_payment, order_cancelled(ids[n]))  # noqa: E731
        rejected = (cancel_payment, Envelope.new(OrderRejected(order_id=ids[5], reason="x")))
        return [
            [created(0), reserved(0)],  # charge decided
            [reserved(1), created(1), created(1), reserved(1)],  # told twice, decided once
            [created(2), cancelled(2), reserved(2)],  # voided before the amount
            [cancelled(3)],  # voided before anything
            [reserved(4), cancelled(4), created(4)],
            [created(5), rejected],
            [created(6), reserved(6), cancelled(6)],  # cancelled while charging: waits for the answer
            [created(7, "tok_chargeDeclined")],  # still awaiting the amount
        ]

    return build


def opened_token(row: dict[str, Any]) -> str | None:
    return row["payment_token"] and opener().open(row["payment_token"])


def interleaved(orders: list[list[tuple[Any, Envelope]]]) -> list[tuple[Any, Envelope]]:
    """One event of each order in turn: each order's facts in their order, the orders mixed."""
    mixed = []
    for turn in range(max(len(facts) for facts in orders)):
        mixed.extend(facts[turn] for facts in orders if turn < len(facts))
    return mixed


async def test_a_batch_of_many_orders_events_ends_as_handling_them_one_at_a_time_does(
    facts, in_transaction, in_batch, payment
):
    one_at_a_time, batched = facts(uuid.uuid4()), facts(uuid.uuid4())
    for order in one_at_a_time:
        for handler, envelope in order:
            await in_transaction(handler, envelope)

    await in_batch(interleaved(batched))

    for alone, together in zip(one_at_a_time, batched, strict=True):
        expected, got = await payment(alone[0][1].event.order_id), await payment(together[0][1].event.order_id)
        assert {k: got[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}
        assert opened_token(got) == opened_token(expected)  # each order's token is sealed apart
        assert {k: got[k] is None for k in DECIDED_AT} == {k: expected[k] is None for k in DECIDED_AT}
    statuses = [(await payment(order[0][1].event.order_id))["status"] for order in batched]
    assert statuses == ["CHARGING", "CHARGING", "VOIDED", "VOIDED", "VOIDED", "VOIDED", "CHARGING", "AWAITING_DETAILS"]


async def test_a_batch_of_fifty_events_runs_as_many_statements_as_a_batch_of_one(
    order_created, stock_reserved, order_cancelled, in_batch, count_statements, payment
):
    one = [(record_order, order_created(uuid.uuid4()))]
    orders = [uuid.uuid4() for _ in range(20)]
    fifty = [
        *((record_order, order_created(order_id)) for order_id in orders),
        *((record_reservation, stock_reserved(order_id)) for order_id in orders),
        *((cancel_payment, order_cancelled(order_id)) for order_id in orders[:10]),
    ]

    with count_statements() as for_one:
        await in_batch(one)
    with count_statements() as for_fifty:
        await in_batch(fifty)

    assert len(fifty) == 50
    assert len(for_fifty) == len(for_one) == 3, for_fifty  # create the missing, lock, write back
    assert for_fifty == for_one  # the same texts: each prepared once per connection, whatever the size
    assert (await payment(orders[0]))["status"] == "CHARGING" and (await payment(orders[-1]))["status"] == "CHARGING"


async def test_a_batch_that_decides_many_charges_wakes_the_executor_once_after_its_commit(
    order_created, stock_reserved, sessions, gateway_name
):
    orders = [uuid.uuid4() for _ in range(5)]
    envelopes = [
        (handler, build(order_id))
        for order_id in orders
        for handler, build in ((record_order, order_created), (record_reservation, stock_reserved))
    ]
    wakes: list[str] = []

    def wake() -> None:
        wakes.append("woken")

    async with sessions() as session:
        async with session.begin():
            batch = await open_batch(session, [envelope for _, envelope in envelopes])
            for handler, envelope in envelopes:
                await handler(batch, envelope, gateway=gateway_name, on_intent=wake, **opener_for(handler))
            await batch.flush()
            assert wakes == []  # not before the commit: the executor could not see the intents yet
        batch.committed()

    assert wakes == ["woken"]


async def test_concurrent_batches_creating_and_locking_the_same_orders_in_any_order_do_not_deadlock(
    order_created, stock_reserved, in_batch, payment
):
    orders = [uuid.uuid4() for _ in range(300)]
    # Each batch meets the orders in another order; each creates the payments missing at its start.
    created = [(record_order, order_created(order_id)) for order_id in orders]
    reserved = [(record_reservation, stock_reserved(order_id)) for order_id in reversed(orders)]
    reserved_again = [(record_reservation, stock_reserved(order_id)) for order_id in orders[1::2] + orders[::2]]

    await asyncio.wait_for(asyncio.gather(in_batch(created), in_batch(reserved), in_batch(reserved_again)), timeout=30)

    assert {(await payment(order_id))["status"] for order_id in orders} == {"CHARGING"}
