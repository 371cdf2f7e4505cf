"""OrderCreated and OrderCancelled in either order. The cancellation normally follows the creation
in the same partition, but an OrderCreated that was dead-lettered and redriven later arrives after
it: the cancellation must leave a tombstone so that the late creation reserves nothing."""

from uuid import uuid4

from inventory_service.domain import Product, ReservationStatus, on_order_cancelled, on_order_created, sell
from shared.events import OrderLine, StockReleased, StockReserved

WIDGET_LINES = (OrderLine(sku="WIDGET", quantity=4),)


def catalog() -> dict[str, Product]:
    return {"WIDGET": Product("WIDGET", "Widget", 250, "EUR", available=10)}


def counters(product: Product) -> tuple[int, int, int]:
    return product.available, product.reserved, product.sold


def test_a_cancellation_of_an_order_inventory_never_reserved_for_leaves_a_tombstone_holding_nothing():
    order_id = uuid4()

    outcome = on_order_cancelled(None, order_id, {})

    assert outcome is not None and outcome.events == []
    tombstone = outcome.reservation
    assert (tombstone.order_id, tombstone.status) == (order_id, ReservationStatus.RELEASED)
    assert (tombstone.lines, tombstone.currency, tombstone.failures) == ((), None, ())


def test_an_order_created_after_its_cancellation_reserves_nothing_and_says_nothing():
    products = catalog()
    order_id = uuid4()
    tombstone = on_order_cancelled(None, order_id, products).reservation

    assert on_order_created(tombstone, order_id, WIDGET_LINES, products) is None

    assert tombstone.status is ReservationStatus.RELEASED and tombstone.lines == ()
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_a_tombstone_is_neither_released_again_nor_sold():
    products = catalog()
    order_id = uuid4()
    tombstone = on_order_cancelled(None, order_id, products).reservation

    assert on_order_cancelled(tombstone, order_id, products) is None
    assert sell(tombstone, products) is False
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_the_usual_order_still_reserves_on_creation_and_releases_on_cancellation():
    products = catalog()
    order_id = uuid4()

    created = on_order_created(None, order_id, WIDGET_LINES, products)
    assert created is not None and isinstance(created.events[0], StockReserved)
    assert counters(products["WIDGET"]) == (6, 4, 0)

    cancelled = on_order_cancelled(created.reservation, order_id, products)

    assert cancelled is not None and cancelled.reservation is created.reservation
    assert cancelled.events == [StockReleased(order_id=order_id, items=WIDGET_LINES)]
    assert cancelled.reservation.status is ReservationStatus.RELEASED
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_an_order_answered_before_is_not_reserved_again():
    products = catalog()
    order_id = uuid4()
    first = on_order_created(None, order_id, WIDGET_LINES, products)
    assert first is not None

    assert on_order_created(first.reservation, order_id, WIDGET_LINES, products) is None
    assert counters(products["WIDGET"]) == (6, 4, 0)


def test_a_cancellation_seen_twice_releases_once():
    products = catalog()
    order_id = uuid4()
    created = on_order_created(None, order_id, WIDGET_LINES, products)
    assert created is not None
    on_order_cancelled(created.reservation, order_id, products)

    assert on_order_cancelled(created.reservation, order_id, products) is None
    assert counters(products["WIDGET"]) == (10, 0, 0)
