"""The event store, the projection and the outbox, written together, against the real Postgres."""

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from order_service.adapters import event_store, projection
from order_service.adapters.event_store import StoredEvent
from order_service.domain import ConcurrencyConflict, Order, OrderNotCancellable, OrderStatus
from order_service.service_layer import handlers, queries
from order_service.service_layer.commands import CancelOrder, Line, PlaceOrder
from order_service.service_layer.errors import IdempotencyKeyReused, OrderNotFound
from order_service.service_layer.unit_of_work import OrderBatch, lock_orders
from sealed_tokens import sealer
from shared.events import (
    Envelope,
    PaymentFailed,
    PaymentProcessed,
    PricedLine,
    ReservationFailure,
    StockReservationFailed,
    StockReserved,
)
from shared.events.base import utc_now

pytestmark = pytest.mark.infra


def from_inventory(event) -> Envelope:
    return Envelope.new(event)


def reserved(order_id: uuid.UUID, unit_price: int = 1000, quantity: int = 2) -> Envelope:
    lines = (PricedLine(sku="SKU-1", quantity=quantity, unit_price=unit_price),)
    return from_inventory(
        StockReserved(order_id=order_id, items=lines, total_amount=unit_price * quantity, currency="EUR")
    )


def paid(order_id: uuid.UUID, amount: int = 2000) -> Envelope:
    return Envelope.new(PaymentProcessed(order_id=order_id, payment_id=uuid.uuid4(), amount=amount, currency="EUR"))


async def stored(sessions, order_id: uuid.UUID) -> list[StoredEvent]:
    async with sessions() as session:
        return await event_store.history(session, order_id)


async def live(sessions, order_id: uuid.UUID):
    async with sessions() as session:
        return await projection.get(session, order_id)


async def fold_of_store(sessions, order_id: uuid.UUID):
    return projection.project(Order.from_history(event_store.recorded_history(await stored(sessions, order_id))))


async def test_a_placed_order_is_its_event_its_projection_row_and_the_same_event_in_the_outbox(
    sessions, place, outbox_events
):
    order_id = await place(("SKU-1", 2))

    (created,) = await stored(sessions, order_id)
    (sent,) = await outbox_events(order_id)

    assert (created.version, created.event_type, created.schema_version) == (1, "OrderCreated", 1)
    assert (sent.event_id, sent.occurred_at, sent.event) == (
        created.event_id,
        created.occurred_at,
        created.recorded().event,
    )
    assert (sent.source, sent.correlation_id, sent.causation_id) == ("order", str(order_id), None)
    row = await live(sessions, order_id)
    assert row.status is OrderStatus.PENDING and row.version == 1
    assert row == await fold_of_store(sessions, order_id)


async def test_the_saga_s_answers_move_the_order_and_each_new_event_names_its_cause(
    sessions, place, handle, outbox_events
):
    order_id = await place(("SKU-1", 2))
    reservation, payment = reserved(order_id), paid(order_id)

    await handle(reservation)
    assert (await live(sessions, order_id)).status is OrderStatus.AWAITING_PAYMENT
    await handle(payment)

    row = await live(sessions, order_id)
    assert (row.status, row.total_amount, row.currency, row.version) == (OrderStatus.CONFIRMED, 2000, "EUR", 3)
    assert row == await fold_of_store(sessions, order_id)
    events = await stored(sessions, order_id)
    sent = await outbox_events(order_id)
    assert [e.event_id for e in sent] == [e.event_id for e in events]
    assert [e.event_type for e in sent] == ["OrderCreated", "OrderUpdated", "OrderConfirmed"]
    assert [e.causation_id for e in sent] == [None, reservation.event_id, payment.event_id]
    assert {e.correlation_id for e in sent} == {str(order_id)}


async def test_a_repeated_or_late_answer_records_nothing(sessions, place, handle, outbox_events):
    order_id = await place()
    await handle(reserved(order_id, quantity=1))
    await handle(paid(order_id, amount=1000))

    await handle(reserved(order_id, quantity=1))  # redelivered, new event id
    await handle(paid(order_id, amount=1000))
    failed = PaymentFailed(order_id=order_id, amount=1000, currency="EUR", reason="card_declined")
    await handle(Envelope.new(failed))

    assert [e.event_type for e in await stored(sessions, order_id)] == [
        "OrderCreated",
        "OrderUpdated",
        "OrderConfirmed",
    ]
    assert len(await outbox_events(order_id)) == 3


async def test_a_failed_reservation_rejects_and_a_failed_payment_cancels(sessions, place, handle):
    rejected_id, declined_id = await place(), await place()
    failure = ReservationFailure(sku="SKU-1", requested=1, available=0, reason="insufficient_stock")
    await handle(from_inventory(StockReservationFailed(order_id=rejected_id, failures=(failure,))))
    await handle(reserved(declined_id, quantity=1))
    failed = PaymentFailed(order_id=declined_id, amount=1000, currency="EUR", reason="card_declined")
    await handle(Envelope.new(failed))

    rejected, declined = await live(sessions, rejected_id), await live(sessions, declined_id)
    assert rejected.status is OrderStatus.REJECTED and "SKU-1" in rejected.rejection_reason
    assert (declined.status, declined.cancellation_reason) == (OrderStatus.CANCELLED, "payment_failed")


async def test_an_answer_about_an_unknown_order_is_acknowledged_without_a_trace(sessions, handle):
    order_id = uuid.uuid4()

    await handle(reserved(order_id))

    assert await stored(sessions, order_id) == []
    assert await live(sessions, order_id) is None


async def test_appending_a_version_another_writer_appended_first_is_a_concurrency_conflict(sessions, place):
    order_id = await place()
    async with sessions() as first, sessions() as second:
        # The first writer locks the order, which also holds off the running saga's own worker
        # (the order is live: its OrderCreated was published). The second loads the same version
        # without the lock, as a writer that forgot it would.
        locked = await lock_orders(first, [order_id])
        unlocked = OrderBatch(second)
        history = await event_store.history(second, order_id)
        orders = [locked.get(order_id), Order.from_history(event_store.recorded_history(history))]
        assert orders[0].version == orders[1].version
        for batch, order in zip([locked, unlocked], orders, strict=True):
            order.cancel(utc_now())
            batch.record(order)
        await locked.flush()
        await first.commit()
        with pytest.raises(ConcurrencyConflict) as conflict:
            await unlocked.flush()
        await second.rollback()

    assert conflict.value.order_id == order_id

    versions = [e.version for e in await stored(sessions, order_id)]
    assert versions == list(range(1, len(versions) + 1))
    assert (await live(sessions, order_id)).version == len(versions)
    assert [e.event_type for e in await stored(sessions, order_id)].count("OrderCancelled") == 1


async def test_concurrent_cancels_of_one_order_record_one_cancellation(sessions, place):
    order_id = await place()

    async def cancel() -> str:
        async with sessions() as session:
            try:
                await handlers.cancel_order(session, CancelOrder(order_id))
            except OrderNotCancellable:
                return "refused"
        return "cancelled"

    outcomes = await asyncio.gather(*(cancel() for _ in range(8)))

    assert sorted(outcomes) == ["cancelled"] + ["refused"] * 7
    assert [e.event_type for e in await stored(sessions, order_id)] == ["OrderCreated", "OrderCancelled"]


async def test_an_idempotency_key_creates_one_order_however_many_times_it_is_sent(sessions, place, customer):
    key = f"it-{uuid.uuid4()}"

    order_ids = await asyncio.gather(*(place(("SKU-1", 2), key=key) for _ in range(6)))

    assert len(set(order_ids)) == 1
    with pytest.raises(IdempotencyKeyReused):
        await place(("SKU-1", 3), key=key)
    assert [e.event_type for e in await stored(sessions, order_ids[0])].count("OrderCreated") == 1
    async with sessions() as session:  # the requests that lost the key wrote nothing at all
        rows, _ = await projection.page(session, limit=10, customer_id=customer)
    assert [row.order_id for row in rows] == [order_ids[0]]


async def test_placing_an_order_is_one_statement_in_its_transaction_and_a_replay_reads_once_more(
    sessions, customer, round_trips
):
    command = PlaceOrder(customer, (Line("SKU-1", 2),), "tok_visa", f"it-{uuid.uuid4()}")

    async def place(command: PlaceOrder) -> handlers.Placed:
        async with sessions() as session:
            return await handlers.place_order(session, command, sealer())

    with round_trips() as first:
        placed = await place(command)
    with round_trips() as again:
        replayed = await place(command)
    with round_trips() as other_body, pytest.raises(IdempotencyKeyReused):
        await place(replace(command, items=(Line("SKU-1", 3),)))
    with round_trips() as without_key:
        await place(replace(command, idempotency_key=None))

    assert (replayed.order, replayed.replayed, placed.replayed) == (placed.order, True, False)
    # The claim, the event, the projection row and the outbox row: one statement.
    assert first == without_key == ["BEGIN", "WITH", "COMMIT"]
    assert again == other_body == ["BEGIN", "WITH", "SELECT", "COMMIT"]


async def test_time_travel_folds_the_store_up_to_a_version_or_a_moment(sessions, place, handle):
    order_id = await place(("SKU-1", 2))
    await handle(reserved(order_id))
    events = await stored(sessions, order_id)

    async with sessions() as session:
        at_creation = await queries.get_order_at(session, order_id, as_of=events[0].occurred_at)
        at_v2 = await queries.get_order_at(session, order_id, version=2)
        before = events[0].occurred_at - timedelta(microseconds=1)
        with pytest.raises(OrderNotFound):
            await queries.get_order_at(session, order_id, as_of=before)

    assert (at_creation.status, at_creation.version, at_creation.total_amount) == (OrderStatus.PENDING, 1, None)
    assert at_v2 == await live(sessions, order_id)
