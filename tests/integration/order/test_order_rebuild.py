"""Rebuilding the orders projection from the event store and from the order-events topic.

Drift is made in a scratch copy: temporary tables named like the real ones shadow them on one
connection (Postgres searches pg_temp first), so the real handlers write there and the live
projection, which other tests and a running service share, is never disturbed."""

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from order_service.adapters import order_topic, projection
from order_service.adapters.tables import order_events, orders
from order_service.domain import OrderStatus
from order_service.service_layer import handlers, unit_of_work
from order_service.service_layer.commands import CancelOrder, Line, PlaceOrder
from order_service.service_layer.rebuild import TopicHistories, fold, rebuild_from_store, rebuild_from_topic
from sealed_tokens import sealer
from shared.db import asyncpg_dsn, create_engine
from shared.events import Envelope, PricedLine, StockReserved
from shared.events.base import utc_now
from shared.outbox.relay import OutboxRelay
from shared.outbox.tables import outbox
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[3]
SHADOWED = ("order_events", "orders", "idempotency_keys", "outbox")


@pytest.fixture
async def scratch(order_settings, migrated) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on one connection whose order tables are empty temporary copies of the real ones."""
    engine = create_engine(order_settings, role="tests-scratch")
    async with engine.connect() as connection:
        for table in SHADOWED:
            await connection.execute(text(f"CREATE TEMP TABLE {table} (LIKE orders.{table} INCLUDING ALL)"))
        await connection.commit()
        try:
            yield async_sessionmaker(bind=connection, expire_on_commit=False)
        finally:
            await connection.rollback()
            await connection.execute(text("DISCARD TEMP"))
            await connection.commit()
    await engine.dispose()


async def place(sessions, customer: str = "it-rebuild") -> uuid.UUID:
    async with sessions() as session:
        placed = await handlers.place_order(session, PlaceOrder(customer, (Line("SKU-1", 2),), "tok_visa"), sealer())
    return placed.order.order_id


async def reserve(sessions, order_id: uuid.UUID) -> None:
    lines = (PricedLine(sku="SKU-1", quantity=2, unit_price=500),)
    event = StockReserved(order_id=order_id, items=lines, total_amount=1000, currency="EUR")
    envelope = Envelope.new(event)
    async with sessions() as session, session.begin():
        batch = await unit_of_work.open_batch(session, [envelope])
        await handlers.on_stock_reserved(batch, envelope)
        await batch.flush()


async def three_orders(sessions) -> list[uuid.UUID]:
    pending, priced, cancelled = await place(sessions), await place(sessions), await place(sessions)
    await reserve(sessions, priced)
    async with sessions() as session:
        await handlers.cancel_order(session, CancelOrder(cancelled))
    return [pending, priced, cancelled]


async def execute(sessions, statement: Any) -> None:
    async with sessions() as session, session.begin():
        await session.execute(statement)


async def test_a_projection_kept_by_the_handlers_equals_its_rebuild_from_the_store(scratch):
    await three_orders(scratch)

    report = await rebuild_from_store(scratch)

    assert (report.compared, report.equal, report.ok) == (3, 3, True), report.render()
    assert "3 orders compared, 3 equal, 0 differing" in report.render()


async def test_drift_is_reported_order_by_order_and_apply_repairs_it_in_one_go(scratch):
    pending, priced, cancelled = await three_orders(scratch)
    async with scratch() as session:
        copy = replace(await projection.get(session, pending), order_id=uuid.uuid4())
    await execute(scratch, update(orders).where(orders.c.order_id == priced).values(status="PENDING"))
    await execute(scratch, delete(orders).where(orders.c.order_id == cancelled))
    await execute(scratch, insert(orders).values(projection.to_row(copy)))  # a row without events

    report = await rebuild_from_store(scratch)

    assert (report.compared, report.equal, len(report.differences)) == (4, 1, 3)
    problems = {d.order_id: d for d in report.differences}
    assert problems[priced].fields[0] == ("status", OrderStatus.PENDING, OrderStatus.AWAITING_PAYMENT)
    assert problems[cancelled].problem == "missing from the projection"
    assert "DIFFERS" in report.render() and str(priced) in report.render()

    applied = await rebuild_from_store(scratch, apply=True)
    assert applied.applied and not applied.ok
    after = await rebuild_from_store(scratch)
    assert (after.compared, after.equal, after.ok) == (3, 3, True), after.render()
    async with scratch() as session:
        assert (await projection.get(session, priced)).status is OrderStatus.AWAITING_PAYMENT
        assert (await projection.get(session, cancelled)).status is OrderStatus.CANCELLED


async def test_a_history_that_cannot_be_folded_is_reported_and_its_row_left_alone(scratch):
    pending, *_ = await three_orders(scratch)
    gap = {
        "order_id": pending,
        "version": 5,
        "event_id": uuid.uuid4(),
        "event_type": "OrderRejected",
        "schema_version": 1,
        "data": {"order_id": str(pending), "reason": "a version after a gap"},
        "occurred_at": utc_now(),
    }
    await execute(scratch, insert(order_events).values(gap))

    report = await rebuild_from_store(scratch, apply=True)

    (difference,) = report.differences
    assert difference.order_id == pending and "cannot be folded" in difference.problem
    async with scratch() as session:
        assert (await projection.get(session, pending)).version == 1


async def test_the_live_projection_equals_its_rebuild_from_the_store(sessions):
    await place(sessions)

    report = await rebuild_from_store(sessions)

    assert report.ok, report.render()
    assert report.compared >= 1 and report.equal == report.compared


async def test_the_rebuild_command_exits_0_and_says_so_when_the_projection_is_equal():
    result = await asyncio.to_thread(
        subprocess.run,
        [str(REPO / ".venv/bin/order-rebuild"), "--from", "store"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "EQUALS" in result.stdout


@pytest.fixture
async def relay(order_settings) -> AsyncIterator[None]:
    """An outbox relay in process: it publishes, or stands by while a running order-relay does."""
    stop = asyncio.Event()
    task = asyncio.create_task(OutboxRelay(order_settings, asyncpg_dsn(order_settings.database_url)).run(stop))
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def test_an_order_s_published_events_read_back_from_the_topic_fold_to_its_live_row(
    sessions, order_settings, relay, eventually
):
    order_id = await place(sessions)
    await reserve(sessions, order_id)

    async def published() -> bool:
        async with sessions() as session:
            rows = await session.execute(select(outbox.c.published_at).where(outbox.c.key == str(order_id)))
            times = [row.published_at for row in rows]
        return len(times) == 2 and all(times)

    await eventually(published, timeout=60, what=f"the events of order {order_id} published")

    histories = TopicHistories()
    async for record in order_topic.read_to_end(order_settings.kafka_client_config()):
        histories.add_record(record.value, record.headers or ())
    async with sessions() as session:
        live = await projection.get(session, order_id)
    assert fold(histories.histories[order_id]) == live

    report = await rebuild_from_topic(sessions, order_settings.kafka_client_config())
    assert report.ok, report.render()
    assert report.compared >= 1
