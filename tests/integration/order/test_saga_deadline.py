"""The saga deadline sweep against the real Postgres: an order nobody answers is cancelled with
reason saga_timeout, in its event store, its projection and its outbox, once, however many sweeps run.

The running order service shares the schema, so the orders here are placed in 2100 and their
OrderCreated is kept out of the outbox: the running saga never hears of them (as if every consumer
had dead-lettered it) and the running service's own sweep (on today's clock) never finds them
overdue. A sweep whose clock says 2100 also finds what other tests left in flight today, so the
tests assert on their own orders only."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from order_service.adapters import event_store, projection
from order_service.adapters.tables import order_events
from order_service.domain import OrderStatus
from order_service.entrypoints.worker import saga_deadline_sweep
from order_service.service_layer import handlers, queries
from order_service.service_layer.unit_of_work import lock_orders
from prometheus_client import REGISTRY
from shared.events import Envelope, OrderCancelled, PaymentProcessed, PricedLine, StockReserved
from sqlalchemy import delete

pytestmark = pytest.mark.infra

PLACED_AT = datetime(2100, 1, 1, tzinfo=UTC)
DEADLINE = timedelta(seconds=1)
SWEPT_AT = PLACED_AT + timedelta(seconds=2)  # the sweep's clock: orders placed before PLACED_AT + 1 s are overdue
BATCH = 1000


@pytest.fixture
def placed_unheard(place_unheard):
    """`await placed_unheard(at=PLACED_AT)`: an order placed then whose OrderCreated reached no one."""

    async def place(at: datetime = PLACED_AT) -> uuid.UUID:
        return await place_unheard(at)

    return place


async def sweep(sessions, now: datetime = SWEPT_AT) -> list[uuid.UUID]:
    async with sessions() as session:
        return await handlers.time_out_overdue_orders(session, DEADLINE, limit=BATCH, now=now)


async def event_types(sessions, order_id: uuid.UUID) -> list[str]:
    async with sessions() as session:
        return [event.event_type for event in await event_store.history(session, order_id)]


async def test_an_order_nobody_answers_is_cancelled_by_one_sweep_as_a_saga_timeout(
    sessions, placed_unheard, outbox_events
):
    order_id = await placed_unheard()

    timed_out = await sweep(sessions)

    assert order_id in timed_out
    history = await event_types(sessions, order_id)
    assert history == ["OrderCreated", "OrderCancelled"]
    (sent,) = await outbox_events(order_id)
    assert sent.event == OrderCancelled(order_id=order_id, reason="saga_timeout")
    assert (sent.source, sent.occurred_at) == ("order", SWEPT_AT)
    async with sessions() as session:
        row = await projection.get(session, order_id)
        stored = await event_store.history(session, order_id)
    assert (row.status, row.cancellation_reason, row.version) == (OrderStatus.CANCELLED, "saga_timeout", 2)
    assert stored[-1].event_id == sent.event_id


async def test_orders_within_their_deadline_or_already_ended_are_left_alone(
    sessions, placed_unheard, handle, outbox_events
):
    not_yet_due = await placed_unheard(at=SWEPT_AT - DEADLINE / 2)
    confirmed = await placed_unheard()
    line = PricedLine(sku="SKU-1", quantity=1, unit_price=500)
    reserved = StockReserved(order_id=confirmed, items=(line,), total_amount=500, currency="EUR")
    paid = PaymentProcessed(order_id=confirmed, payment_id=uuid.uuid4(), amount=500, currency="EUR")
    await handle(Envelope.new(reserved))
    await handle(Envelope.new(paid))

    timed_out = await sweep(sessions)

    assert not_yet_due not in timed_out and confirmed not in timed_out
    assert await event_types(sessions, not_yet_due) == ["OrderCreated"]
    assert await event_types(sessions, confirmed) == ["OrderCreated", "OrderUpdated", "OrderConfirmed"]
    assert "OrderCancelled" not in [e.event_type for e in await outbox_events(confirmed)]


async def test_concurrent_sweeps_cancel_each_overdue_order_exactly_once(sessions, placed_unheard, outbox_events):
    orders = [await placed_unheard() for _ in range(10)]

    first, second = await asyncio.gather(sweep(sessions), sweep(sessions))

    for order_id in orders:
        assert (order_id in first) != (order_id in second), f"{order_id} swept by both or by neither"
        assert await event_types(sessions, order_id) == ["OrderCreated", "OrderCancelled"]
        assert [e.event_type for e in await outbox_events(order_id)] == ["OrderCancelled"]
    assert not set(orders) & set(await sweep(sessions)), "a later sweep found a cancelled order again"


async def test_an_order_whose_row_another_transaction_holds_is_skipped_not_waited_for(sessions, placed_unheard):
    order_id = await placed_unheard()

    async with sessions() as holder, holder.begin():
        await lock_orders(holder, [order_id])  # a worker handling a saga event of this order
        skipped = await asyncio.wait_for(sweep(sessions), timeout=10)

    assert order_id not in skipped
    assert order_id in await sweep(sessions)


async def test_the_worker_s_sweep_loop_times_out_overdue_orders_counts_them_and_stops_when_told(
    sessions, order_settings, placed_unheard, eventually
):
    # The loop runs on today's clock: a deadline of about 24 years makes an order placed in 2001
    # overdue (and only such orders: the running service's own sweep may race it for this one).
    settings = order_settings.model_copy(update={"saga_deadline_s": 24 * 365 * 86400.0, "saga_sweep_interval_s": 0.1})
    order_id = await placed_unheard(at=datetime(2001, 1, 1, tzinfo=UTC))
    counted_before = REGISTRY.get_sample_value("saga_timeouts_total", {"service": "order"}) or 0.0
    stop = asyncio.Event()
    loop = asyncio.create_task(saga_deadline_sweep(settings)(sessions, stop))

    async def cancelled() -> bool:
        return await event_types(sessions, order_id) == ["OrderCreated", "OrderCancelled"]

    await eventually(cancelled, timeout=10, what="the sweep loop cancelled the overdue order")
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    assert REGISTRY.get_sample_value("saga_timeouts_total", {"service": "order"}) >= counted_before + 1


async def test_an_overdue_order_whose_history_cannot_be_folded_is_skipped_and_does_not_stall_the_others(
    sessions, placed_unheard
):
    healthy = await placed_unheard()
    broken = await placed_unheard()
    async with sessions() as session, session.begin():
        await session.execute(delete(order_events).where(order_events.c.order_id == broken))
    try:
        timed_out = await sweep(sessions)

        assert healthy in timed_out and broken not in timed_out
        assert await event_types(sessions, healthy) == ["OrderCreated", "OrderCancelled"]
    finally:  # the schema is shared: leave no order without a history behind
        async with sessions() as session, session.begin():
            await projection.remove(session, [broken])


async def overdue_count(sessions, now: datetime = SWEPT_AT) -> int:
    async with sessions() as session:
        return await queries.count_overdue_orders(session, DEADLINE, now=now)


async def test_the_overdue_count_takes_orders_waiting_past_their_deadline_and_not_the_others(sessions, placed_unheard):
    before = await overdue_count(sessions)
    overdue = [await placed_unheard(), await placed_unheard()]
    await placed_unheard(at=SWEPT_AT - DEADLINE / 2)  # not yet due

    assert await overdue_count(sessions) == before + 2
    assert set(overdue) <= set(await sweep(sessions))
    assert await overdue_count(sessions) <= before  # cancelled: ended orders are not counted


async def test_the_worker_s_sweep_loop_reports_the_overdue_orders_it_could_not_cancel(
    sessions, order_settings, placed_unheard, eventually
):
    # Today's clock and a deadline of about 24 years, as above: only orders placed in 2001 are due.
    settings = order_settings.model_copy(update={"saga_deadline_s": 24 * 365 * 86400.0, "saga_sweep_interval_s": 0.1})
    order_id = await placed_unheard(at=datetime(2001, 1, 1, tzinfo=UTC))

    def reported() -> float | None:
        return REGISTRY.get_sample_value("saga_overdue_orders", {"service": "order"})

    stop = asyncio.Event()
    async with sessions() as holder, holder.begin():
        await lock_orders(holder, [order_id])  # the sweep skips it: it stays overdue
        loop = asyncio.create_task(saga_deadline_sweep(settings)(sessions, stop))

        async def stuck() -> bool:
            return reported() == 1

        await eventually(stuck, timeout=10, what="the sweep reports the order it could not cancel")

    async def cancelled_and_cleared() -> bool:
        return reported() == 0 and await event_types(sessions, order_id) == ["OrderCreated", "OrderCancelled"]

    await eventually(cancelled_and_cleared, timeout=10, what="the released order cancelled, none overdue")
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
