"""An order whose events were stored under an older schema version still loads from the real event
store: its rows are upcast to the version the domain folds. Each test writes its rows in a
transaction it rolls back, so no other reader of the store (the running service, a rebuild) ever
sees a history in a made-up old shape."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service.adapters import projection, upcasting
from order_service.adapters.tables import order_events
from order_service.domain import CorruptHistory, Order, OrderItem, OrderStatus
from order_service.service_layer import queries
from order_service.service_layer.unit_of_work import locked_orders
from shared.events import PricedLine, StockReserved
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.infra

PLACED_AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
RESERVED_AT = PLACED_AT + timedelta(seconds=1)


def order_created_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A made-up first shape of OrderCreated: `customer`, `lines` of `qty` and `placed_at`."""
    return {
        "order_id": data["order_id"],
        "customer_id": data["customer"],
        "items": [{"sku": line["sku"], "quantity": line["qty"]} for line in data["lines"]],
        "payment_token": data["payment_token"],
        "created_at": data["placed_at"],
    }


def the_order_as_recorded(order_id: uuid.UUID) -> Order:
    """What the old events recorded, recorded today: placed, then priced by inventory."""
    order = Order.place(order_id, "customer-of-2025", [OrderItem("SKU-1", 2)], "tok_visa", PLACED_AT)
    lines = (PricedLine(sku="SKU-1", quantity=2, unit_price=700),)
    order.on_stock_reserved(
        StockReserved(order_id=order_id, items=lines, total_amount=1400, currency="EUR"), RESERVED_AT
    )
    return order


async def store_an_old_history(session: AsyncSession, order_id: uuid.UUID) -> None:
    """Its OrderCreated as a release that wrote schema version 0 stored it, then an OrderUpdated of
    today's version."""
    created_v0 = {
        "order_id": str(order_id),
        "customer": "customer-of-2025",
        "lines": [{"sku": "SKU-1", "qty": 2}],
        "payment_token": "tok_visa",
        "placed_at": PLACED_AT.isoformat(),
    }
    (_, recorded_update) = the_order_as_recorded(order_id).pending_events
    rows = [
        ("OrderCreated", 0, created_v0, PLACED_AT),
        ("OrderUpdated", 1, recorded_update.event.model_dump(mode="json"), RESERVED_AT),
    ]
    await session.execute(
        insert(order_events),
        [
            {
                "order_id": order_id,
                "version": version,
                "event_id": uuid.uuid4(),
                "event_type": event_type,
                "schema_version": schema_version,
                "data": data,
                "occurred_at": occurred_at,
            }
            for version, (event_type, schema_version, data, occurred_at) in enumerate(rows, start=1)
        ],
    )


@pytest.fixture
async def rolled_back(sessions) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that is rolled back at the end of the test."""
    async with sessions() as session:
        await session.begin()
        try:
            yield session
        finally:
            await session.rollback()


async def test_an_order_stored_with_an_older_order_created_still_folds_into_the_order_it_recorded(
    rolled_back, monkeypatch
):
    monkeypatch.setitem(upcasting.UPCASTERS, ("OrderCreated", 0), order_created_v0_to_v1)
    order_id = uuid.uuid4()
    await store_an_old_history(rolled_back, order_id)

    loaded = (await locked_orders(rolled_back, [order_id])).get(order_id)  # as the worker loads it
    placed = await queries.get_order_at(rolled_back, order_id, version=1)  # time travel

    assert loaded is not None
    assert projection.project(loaded) == projection.project(the_order_as_recorded(order_id))
    assert (loaded.status, loaded.total_amount, loaded.version) == (OrderStatus.AWAITING_PAYMENT, 1400, 2)
    assert (placed.status, placed.customer_id, placed.created_at) == (
        OrderStatus.PENDING,
        "customer-of-2025",
        PLACED_AT,
    )


async def test_a_stored_version_no_upcaster_reaches_fails_naming_the_order_its_type_and_version(rolled_back):
    order_id = uuid.uuid4()
    await store_an_old_history(rolled_back, order_id)
    batch = await locked_orders(rolled_back, [order_id])

    with pytest.raises(CorruptHistory) as refused:
        batch.get(order_id)

    assert str(order_id) in str(refused.value)
    assert "OrderCreated stored as schema version 0" in str(refused.value)
    assert "no upcaster from version 0" in str(refused.value)
