"""The worker's unit of work against the real Postgres: a transaction of many events, of any mix of
types and orders, ends where handling them one at a time ends, in the same few statements whatever
its size."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from order_service.adapters import event_store, projection
from order_service.domain import Order
from order_service.service_layer import handlers
from order_service.service_layer.commands import CancelOrder
from shared.events import (
    Envelope,
    PaymentFailed,
    PaymentProcessed,
    PricedLine,
    ReservationFailure,
    StockReservationFailed,
    StockReserved,
)
from statement_log import statement_kinds, statements_sent

pytestmark = pytest.mark.infra

PAYMENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def reserved(order_id: uuid.UUID) -> Envelope:
    line = PricedLine(sku="SKU-1", quantity=2, unit_price=700)
    return Envelope.new(StockReserved(order_id=order_id, items=(line,), total_amount=1400, currency="EUR"))


def out_of_stock(order_id: uuid.UUID) -> Envelope:
    failure = ReservationFailure(sku="SKU-1", requested=2, available=0, reason="insufficient_stock")
    return Envelope.new(StockReservationFailed(order_id=order_id, failures=(failure,)))


def paid(order_id: uuid.UUID) -> Envelope:
    event = PaymentProcessed(order_id=order_id, payment_id=PAYMENT_ID, amount=1400, currency="EUR")
    return Envelope.new(event)


def declined(order_id: uuid.UUID) -> Envelope:
    event = PaymentFailed(order_id=order_id, amount=1400, currency="EUR", reason="card_declined")
    return Envelope.new(event)


# Each story is what one order hears, in order; in a batch the stories' events are interleaved.
STORIES = {
    "answered in order": [reserved, paid],
    "paid before priced": [paid, reserved],
    "out of stock": [out_of_stock],
    "declined": [reserved, declined],
    "reservation redelivered, then a late failure": [reserved, reserved, out_of_stock],
    "declined, then a late payment": [reserved, declined, paid],
}


def interleaved(stories: list[list[Envelope]]) -> list[Envelope]:
    """The first event of every story, then the second of every story, and so on."""
    longest = max(len(story) for story in stories)
    return [story[i] for i in range(longest) for story in stories if i < len(story)]


async def state(sessions, order_id: uuid.UUID) -> tuple:
    """What an order ended as, without what differs between two orders told the same story."""
    async with sessions() as session:
        row = await projection.get(session, order_id)
        history = await event_store.history(session, order_id)
    assert row == projection.project(Order.from_history(event_store.recorded_history(history)))
    return (
        row.status,
        row.items,
        row.total_amount,
        row.version,
        row.cancellation_reason,
        row.rejection_reason,
        row.payment_id,
        [(e.version, e.event_type) for e in history],
    )


async def test_a_batch_of_many_orders_and_mixed_events_ends_as_handling_them_one_at_a_time(
    sessions, place_unheard, handle, outbox_events
):
    one_by_one = {name: await place_unheard() for name in STORIES}
    batched = {name: await place_unheard() for name in STORIES}
    cancelled_first = await place_unheard()
    async with sessions() as session:
        await handlers.cancel_order(session, CancelOrder(cancelled_first))
    unknown = uuid.uuid4()

    for name, story in STORIES.items():
        for tell in story:
            await handle(tell(one_by_one[name]))
    batch = interleaved([[tell(batched[name]) for tell in story] for name, story in STORIES.items()])
    await handle(*batch[:3], reserved(unknown), paid(cancelled_first), *batch[3:])

    for name in STORIES:
        assert await state(sessions, batched[name]) == await state(sessions, one_by_one[name]), name
    assert [e.event_type for e in await outbox_events(cancelled_first)] == ["OrderCancelled"]
    async with sessions() as session:
        assert await event_store.history(session, unknown) == []
    # Every new event is caused by the event of the batch that produced it.
    answered = batched["answered in order"]
    sent = await outbox_events(answered)
    causes = {e.event_id: e for e in batch if e.event.order_id == answered}
    assert [causes[e.causation_id].event_type for e in sent] == ["StockReserved", "PaymentProcessed"]


async def test_a_batch_of_fifty_events_runs_the_statements_a_batch_of_one_runs(sessions, place_unheard, handle):
    lone = await place_unheard()
    orders = [await place_unheard() for _ in range(25)]
    fifty = [tell(order_id) for order_id in orders for tell in (reserved, paid)]

    with statements_sent(sessions) as for_one:
        await handle(reserved(lone))
    with statements_sent(sessions) as for_fifty:
        await handle(*fifty)

    # Lock the rows, load the histories; append the events, update the rows, add the outbox rows.
    assert statement_kinds(for_one) == ["BEGIN", "SELECT", "SELECT", "INSERT", "UPDATE", "INSERT", "COMMIT"]
    # The very same texts, whatever the batch's size: each is prepared once per connection.
    assert for_one == for_fifty


async def test_the_saga_deadline_sweep_runs_the_same_statements_for_one_overdue_order_or_twenty(
    sessions, place_unheard, round_trips
):
    # Placed in the future: the running order worker's own sweep (real clock) never finds these
    # overdue, so it cannot take them from under this test's sweeps; leftovers of earlier tests
    # (placed today) are overdue at this clock and are swept first.
    far_ahead = datetime(2100, 1, 1, tzinfo=UTC)

    async def overdue(count: int) -> set[uuid.UUID]:
        return {await place_unheard(far_ahead) for _ in range(count)}

    async def sweep() -> list[uuid.UUID]:
        async with sessions() as session:
            return await handlers.time_out_overdue_orders(
                session, timedelta(seconds=1), limit=1000, now=far_ahead + timedelta(seconds=2)
            )

    while await sweep():  # what earlier tests left in flight
        pass
    one = await overdue(1)
    with round_trips() as for_one:
        assert set(await sweep()) == one
    twenty = await overdue(20)
    with round_trips() as for_twenty:
        assert set(await sweep()) == twenty

    assert for_one == for_twenty == ["BEGIN", "SELECT", "SELECT", "INSERT", "UPDATE", "INSERT", "COMMIT"]
