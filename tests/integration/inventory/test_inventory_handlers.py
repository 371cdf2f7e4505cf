"""The inventory's event handlers against the real Postgres, each event handled alone: one committed
worker transaction (dedup row, the batch opened on that one event, the handler, flush), as the
worker's one-at-a-time path runs it."""

import asyncio
import uuid

import pytest
from shared.consumer.retry import NonRetryableError
from shared.events import (
    LowStockAlert,
    OrderCancelled,
    OrderCreated,
    OrderLine,
    PaymentProcessed,
    PricedLine,
    ReservationFailure,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from shared.events.base import utc_now

pytestmark = pytest.mark.infra


def cancelled(order_id: uuid.UUID) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, reason="customer_request")


def paid(order_id: uuid.UUID, amount: int) -> PaymentProcessed:
    return PaymentProcessed(order_id=order_id, payment_id=uuid.uuid4(), amount=amount, currency="EUR")


async def test_an_order_holds_every_line_at_catalog_prices_and_answers_stock_reserved(
    new_sku, add_product, order_created, handle, stock, reservation, outbox_events
):
    mug, tee = new_sku("MUG"), new_sku("TEE")
    await add_product(mug, available=10, unit_price=1250)
    await add_product(tee, available=3, unit_price=1999)
    created = order_created({mug: 2, tee: 3})
    order_id = created.event.order_id

    await handle(created)

    assert await stock(mug) == (8, 2, 0)
    assert await stock(tee) == (0, 3, 0)
    held = await reservation(order_id)
    assert held.status == "RESERVED"
    assert held.total_amount == 2 * 1250 + 3 * 1999 and held.currency == "EUR"
    assert held.items == (
        PricedLine(sku=mug, quantity=2, unit_price=1250),
        PricedLine(sku=tee, quantity=3, unit_price=1999),
    )
    (answer,) = await outbox_events(str(order_id))
    assert answer.event == StockReserved(
        order_id=order_id,
        items=(PricedLine(sku=mug, quantity=2, unit_price=1250), PricedLine(sku=tee, quantity=3, unit_price=1999)),
        total_amount=2 * 1250 + 3 * 1999,
        currency="EUR",
    )
    assert answer.causation_id == created.event_id
    assert answer.correlation_id == str(order_id)
    assert answer.source == "inventory"


async def test_an_order_short_of_one_line_holds_nothing_and_names_every_failing_sku(
    new_sku, add_product, order_created, handle, stock, reservation, outbox_events
):
    plenty, scarce, unknown = new_sku("PLENTY"), new_sku("SCARCE"), new_sku("UNKNOWN")
    await add_product(plenty, available=10)
    await add_product(scarce, available=1)
    created = order_created({plenty: 2, scarce: 2, unknown: 1})
    order_id = created.event.order_id

    await handle(created)

    assert await stock(plenty) == (10, 0, 0)
    assert await stock(scarce) == (1, 0, 0)
    failed = await reservation(order_id)
    assert failed.status == "FAILED"
    assert failed.items == () and failed.total_amount is None and failed.currency is None
    (answer,) = await outbox_events(str(order_id))
    assert answer.event == StockReservationFailed(
        order_id=order_id,
        failures=(
            ReservationFailure(sku=scarce, requested=2, available=1, reason="insufficient_stock"),
            ReservationFailure(sku=unknown, requested=1, available=0, reason="unknown_sku"),
        ),
    )


async def test_the_same_order_told_twice_under_another_event_id_is_answered_once(
    new_sku, add_product, order_created, handle, stock, outbox_events
):
    sku = new_sku()
    await add_product(sku, available=5)
    first = order_created({sku: 2})
    again = order_created({sku: 2}, order_id=first.event.order_id)
    assert again.event_id != first.event_id

    await handle(first)
    await handle(again)

    assert await stock(sku) == (3, 2, 0)
    assert [e.event_type for e in await outbox_events(str(first.event.order_id))] == ["StockReserved"]


async def test_a_failed_order_told_again_after_a_restock_stays_failed(
    new_sku, add_product, order_created, handle, stock, reservation
):
    sku = new_sku()
    await add_product(sku, available=1)
    first = order_created({sku: 2})
    await handle(first)
    await add_product(sku, available=10)

    await handle(order_created({sku: 2}, order_id=first.event.order_id))

    assert (await reservation(first.event.order_id)).status == "FAILED"
    assert await stock(sku) == (10, 0, 0)


async def test_concurrent_orders_for_the_same_skus_never_oversell_and_never_deadlock(
    new_sku, add_product, order_created, handle, stock, reservation
):
    a, b = new_sku("A"), new_sku("B")
    await add_product(a, available=7)
    await add_product(b, available=100)
    # Half the orders list the SKUs one way round, half the other: a naive lock order would deadlock.
    orders = [order_created({a: 1, b: 1} if i % 2 else {b: 1, a: 1}) for i in range(20)]

    await asyncio.gather(*(handle(order) for order in orders))

    statuses = [(await reservation(order.event.order_id)).status for order in orders]
    assert statuses.count("RESERVED") == 7
    assert statuses.count("FAILED") == 13
    assert await stock(a) == (0, 7, 0)
    assert await stock(b) == (93, 7, 0)


async def test_concurrent_orders_cancellations_and_payments_keep_every_unit_accounted_for(
    new_sku, add_product, order_created, handle, incoming, stock, reservation
):
    skus = [new_sku(f"S{i}") for i in range(3)]
    for sku in skus:
        await add_product(sku, available=15)
    orders = [order_created({skus[i % 3]: 2, skus[(i + 1) % 3]: 1}) for i in range(20)]
    await asyncio.gather(*(handle(order) for order in orders))

    async def settle(index: int, order) -> None:
        order_id = order.event.order_id
        if index % 3 == 0:
            await handle(incoming(cancelled(order_id)))
        elif index % 3 == 1:
            await handle(incoming(paid(order_id, 3000)))
        else:  # paid, then cancelled: a refunded order gives its sold units back
            await handle(incoming(paid(order_id, 3000)))
            await handle(incoming(cancelled(order_id)))

    await asyncio.gather(*(settle(i, order) for i, order in enumerate(orders)))

    sold_by_sku = dict.fromkeys(skus, 0)
    for i, order in enumerate(orders):
        held = await reservation(order.event.order_id)
        if held.status == "SOLD":
            assert i % 3 == 1
            for line in held.items:
                sold_by_sku[line.sku] += line.quantity
        else:
            assert held.status in ("RELEASED", "FAILED")
    for sku in skus:
        available, reserved, sold = await stock(sku)
        assert reserved == 0
        assert sold == sold_by_sku[sku]
        assert available + reserved + sold == 15


async def test_a_payment_turns_the_held_units_into_sold_ones(
    new_sku, add_product, order_created, handle, incoming, stock, reservation, outbox_events
):
    sku = new_sku()
    await add_product(sku, available=5)
    created = order_created({sku: 2})
    order_id = created.event.order_id
    await handle(created)

    await handle(incoming(paid(order_id, 2000)))

    assert await stock(sku) == (3, 0, 2)
    assert (await reservation(order_id)).status == "SOLD"
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["StockReserved"]


async def test_a_cancellation_releases_the_held_units_once(
    new_sku, add_product, order_created, handle, incoming, stock, reservation, outbox_events
):
    sku = new_sku()
    await add_product(sku, available=5)
    created = order_created({sku: 2})
    order_id = created.event.order_id
    await handle(created)

    await handle(incoming(cancelled(order_id)))
    await handle(incoming(cancelled(order_id)))

    assert await stock(sku) == (5, 0, 0)
    assert (await reservation(order_id)).status == "RELEASED"
    reserved, released = await outbox_events(str(order_id))
    assert released.event == StockReleased(order_id=order_id, items=(OrderLine(sku=sku, quantity=2),))
    assert reserved.event_type == "StockReserved"


async def test_cancelling_a_paid_order_returns_its_sold_units(
    new_sku, add_product, order_created, handle, incoming, stock, reservation
):
    sku = new_sku()
    await add_product(sku, available=5)
    created = order_created({sku: 2})
    order_id = created.event.order_id
    await handle(created)
    await handle(incoming(paid(order_id, 2000)))

    await handle(incoming(cancelled(order_id)))

    assert await stock(sku) == (5, 0, 0)
    assert (await reservation(order_id)).status == "RELEASED"


async def test_a_payment_after_the_cancellation_sells_nothing(
    new_sku, add_product, order_created, handle, incoming, stock, reservation
):
    sku = new_sku()
    await add_product(sku, available=5)
    created = order_created({sku: 2})
    order_id = created.event.order_id
    await handle(created)
    await handle(incoming(cancelled(order_id)))

    await handle(incoming(paid(order_id, 2000)))

    assert await stock(sku) == (5, 0, 0)
    assert (await reservation(order_id)).status == "RELEASED"


async def test_cancelling_an_order_that_failed_or_that_inventory_never_saw_releases_nothing(
    new_sku, add_product, order_created, handle, incoming, stock, outbox_events
):
    sku = new_sku()
    await add_product(sku, available=1)
    failed = order_created({sku: 2})
    await handle(failed)
    never_seen = uuid.uuid4()

    await handle(incoming(cancelled(failed.event.order_id)))
    await handle(incoming(cancelled(never_seen)))

    assert await stock(sku) == (1, 0, 0)
    assert [e.event_type for e in await outbox_events(str(failed.event.order_id))] == ["StockReservationFailed"]
    assert await outbox_events(str(never_seen)) == []


async def test_a_reservation_that_takes_stock_below_the_reorder_level_alerts_once_keyed_by_sku(
    new_sku, add_product, order_created, handle, outbox_events
):
    sku = new_sku()
    await add_product(sku, available=10, reorder_level=5)

    first = order_created({sku: 4})  # 6 left: not low yet
    second = order_created({sku: 2})  # 4 left: crosses the level
    third = order_created({sku: 1})  # 3 left: still low, no second alert
    for created in (first, second, third):
        await handle(created)

    (alert,) = await outbox_events(sku)
    assert alert.event == LowStockAlert(sku=sku, available=4, reorder_level=5)
    assert alert.causation_id == second.event_id
    assert alert.topic == "inventory-events"


async def test_an_order_without_lines_is_refused_for_the_dead_letter_topic(handle, incoming):
    empty = OrderCreated(
        order_id=uuid.uuid4(), customer_id="c", items=(), payment_token="tok_visa", created_at=utc_now()
    )
    with pytest.raises(NonRetryableError):
        await handle(incoming(empty))


async def test_an_order_created_redriven_after_its_cancellation_reserves_nothing_and_leaves_the_stock_untouched(
    new_sku, add_product, order_created, handle, incoming, stock, reservation, outbox_events
):
    sku = new_sku()
    await add_product(sku, available=5)
    late = order_created({sku: 2})  # dead-lettered on its way here, redriven after the cancellation
    order_id = late.event.order_id

    await handle(incoming(cancelled(order_id)))
    await handle(late)
    await handle(incoming(paid(order_id, 2000)))

    assert await stock(sku) == (5, 0, 0)
    tombstone = await reservation(order_id)
    assert tombstone is not None
    assert (tombstone.status, tombstone.items, tombstone.total_amount) == ("RELEASED", (), None)
    assert await outbox_events(str(order_id)) == []
