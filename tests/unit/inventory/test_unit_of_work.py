"""The worker's batch as the handlers see it, before any flush: in-memory state that each event
changes for the next, and a refusal to answer for a row it was not opened on. No database: nothing
here reaches the session."""

from uuid import uuid4

import pytest
from inventory_service.domain import Product, ReservationStatus
from inventory_service.service_layer.handlers import release_stock, reserve_stock, sell_stock
from inventory_service.service_layer.unit_of_work import InventoryBatch, NotLoaded
from shared.events import Envelope, OrderCancelled, OrderCreated, OrderLine, PaymentProcessed
from shared.events.base import utc_now


def created(order_id, **quantities: int) -> Envelope:
    lines = tuple(OrderLine(sku=sku, quantity=n) for sku, n in quantities.items())
    order = OrderCreated(order_id=order_id, customer_id="c", items=lines, payment_token="tok", created_at=utc_now())
    return Envelope.new(order)


def batch_on(order_ids, *products: Product) -> InventoryBatch:
    """A batch opened on these orders (none has a reservation yet) and products."""
    skus = {product.sku for product in products}
    return InventoryBatch(None, None, [], {p.sku: p for p in products}, order_ids=set(order_ids), skus=skus)  # type: ignore[arg-type]


async def test_each_event_of_a_batch_sees_what_the_events_before_it_changed():
    mug = Product(sku="MUG", name="Mug", unit_price=1000, currency="EUR", available=5)
    first, second = uuid4(), uuid4()
    batch = batch_on([first, second], mug)

    await reserve_stock(batch, created(first, MUG=4))
    await reserve_stock(batch, created(second, MUG=2))  # only 1 left after the first
    cancelled = OrderCancelled(order_id=first, reason="customer_request")
    await release_stock(batch, Envelope.new(cancelled))

    assert batch.reservation(first).status is ReservationStatus.RELEASED
    assert batch.reservation(second).status is ReservationStatus.FAILED
    assert (mug.available, mug.reserved) == (5, 0)


async def test_a_payment_for_an_order_created_in_the_same_batch_sells_its_units():
    mug = Product(sku="MUG", name="Mug", unit_price=1000, currency="EUR", available=5)
    order_id = uuid4()
    batch = batch_on([order_id], mug)

    await reserve_stock(batch, created(order_id, MUG=2))
    paid = PaymentProcessed(order_id=order_id, payment_id=uuid4(), amount=2000, currency="EUR")
    await sell_stock(batch, Envelope.new(paid))

    assert batch.reservation(order_id).status is ReservationStatus.SOLD
    assert (mug.available, mug.reserved, mug.sold) == (3, 0, 2)


async def test_a_handler_asking_for_a_row_the_batch_was_not_opened_on_is_refused():
    batch = batch_on([uuid4()])

    with pytest.raises(NotLoaded):
        batch.reservation(uuid4())
    with pytest.raises(NotLoaded):
        batch.products(["NOT-LOOKED-UP"])
