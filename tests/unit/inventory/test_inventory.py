from uuid import uuid4

import pytest
from inventory_service.domain import (
    MAX_STOCK,
    CatalogEntry,
    InvalidProduct,
    Product,
    ReservationStatus,
    StockInvariantViolated,
    StockLimitExceeded,
    on_payment_processed,
    release,
    reserve,
    sell,
)
from shared.events import (
    LowStockAlert,
    OrderLine,
    PricedLine,
    ReservationFailure,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)


def catalog(*products: Product) -> dict[str, Product]:
    return {product.sku: product for product in products}


def widget(available: int = 10, reorder_level: int = 0) -> Product:
    return Product("WIDGET", "Widget", 250, "EUR", available, reorder_level=reorder_level)


def gadget(available: int = 10, currency: str = "EUR") -> Product:
    return Product("GADGET", "Gadget", 1000, currency, available)


def lines(**quantities: int) -> list[OrderLine]:
    return [OrderLine(sku=sku, quantity=quantity) for sku, quantity in quantities.items()]


def counters(product: Product) -> tuple[int, int, int]:
    return product.available, product.reserved, product.sold


# -- products ---------------------------------------------------------------------------------------


def test_on_hand_counts_available_reserved_and_sold_units():
    product = Product("WIDGET", "Widget", 250, "EUR", available=5, reserved=3, sold=2)
    assert product.on_hand == 10


def test_a_restock_adds_to_the_available_stock_and_refuses_nothing_or_less():
    product = widget(available=3)
    product.restock(7)
    assert product.available == 10
    for quantity in (0, -1):
        with pytest.raises(InvalidProduct):
            product.restock(quantity)


def test_a_restock_beyond_the_stock_limit_is_refused_and_adds_nothing():
    product = widget(available=MAX_STOCK - 5)

    with pytest.raises(StockLimitExceeded, match="exceeds"):
        product.restock(6)

    assert product.available == MAX_STOCK - 5
    product.restock(5)
    assert product.available == MAX_STOCK


def entry(**change) -> CatalogEntry:
    fields = {"name": "Widget", "unit_price": 250, "currency": "EUR", "available": 5, "reorder_level": 0}
    return CatalogEntry(**(fields | change))


def test_a_new_product_is_listed_with_its_entry_and_nothing_reserved_or_sold():
    product = Product.listed("WIDGET", entry(available=7, reorder_level=2))

    assert (product.sku, product.name, product.unit_price, product.currency) == ("WIDGET", "Widget", 250, "EUR")
    assert counters(product) == (7, 0, 0)
    assert product.reorder_level == 2


def test_replacing_a_catalog_entry_keeps_the_reserved_and_sold_units():
    product = Product("WIDGET", "Widget", 250, "EUR", available=5, reserved=3, sold=2, reorder_level=1)

    product.replace_catalog_entry(
        entry(name="Widget v2", unit_price=300, currency="USD", available=20, reorder_level=4)
    )

    assert (product.name, product.unit_price, product.currency) == ("Widget v2", 300, "USD")
    assert counters(product) == (20, 3, 2)
    assert product.reorder_level == 4


@pytest.mark.parametrize(
    "change",
    [
        {"unit_price": -1},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"available": -1},
        {"reorder_level": -1},
        {"name": " "},
    ],
)
def test_a_catalog_entry_that_makes_no_sense_is_refused(change):
    fields = {"name": "Widget", "unit_price": 250, "currency": "EUR", "available": 5, "reorder_level": 0}
    with pytest.raises(InvalidProduct):
        Product("WIDGET", **(fields | change))
    with pytest.raises(InvalidProduct):
        entry(**change)


# -- reserving --------------------------------------------------------------------------------------


def test_a_reservation_holds_every_line_and_prices_it_from_the_catalog():
    products = catalog(widget(available=10), gadget(available=5))
    order_id = uuid4()

    outcome = reserve(order_id, lines(WIDGET=4, GADGET=5), products)

    assert outcome.succeeded
    assert outcome.events == [
        StockReserved(
            order_id=order_id,
            items=(
                PricedLine(sku="WIDGET", quantity=4, unit_price=250),
                PricedLine(sku="GADGET", quantity=5, unit_price=1000),
            ),
            total_amount=4 * 250 + 5 * 1000,
            currency="EUR",
        )
    ]
    assert counters(products["WIDGET"]) == (6, 4, 0)
    assert counters(products["GADGET"]) == (0, 5, 0)
    reservation = outcome.reservation
    assert reservation.status is ReservationStatus.RESERVED
    assert reservation.currency == "EUR" and reservation.total_amount == 6000


def test_one_line_short_of_stock_reserves_nothing_at_all():
    products = catalog(widget(available=10), gadget(available=2))
    order_id = uuid4()

    outcome = reserve(order_id, lines(WIDGET=4, GADGET=3), products)

    assert not outcome.succeeded
    assert outcome.events == [
        StockReservationFailed(
            order_id=order_id,
            failures=(ReservationFailure(sku="GADGET", requested=3, available=2, reason="insufficient_stock"),),
        )
    ]
    assert counters(products["WIDGET"]) == (10, 0, 0)
    assert counters(products["GADGET"]) == (2, 0, 0)
    assert outcome.reservation.status is ReservationStatus.FAILED
    assert outcome.reservation.lines == () and outcome.reservation.currency is None


def test_every_failing_line_is_reported_with_its_own_reason():
    products = catalog(widget(available=1), gadget(available=10, currency="USD"))

    outcome = reserve(uuid4(), lines(WIDGET=2, GADGET=1, GIZMO=3), products)

    [failed] = outcome.events
    assert isinstance(failed, StockReservationFailed)
    assert failed.failures == (
        ReservationFailure(sku="WIDGET", requested=2, available=1, reason="insufficient_stock"),
        ReservationFailure(sku="GADGET", requested=1, available=10, reason="currency_mismatch"),
        ReservationFailure(sku="GIZMO", requested=3, available=0, reason="unknown_sku"),
    )
    assert outcome.reservation.failures == failed.failures
    assert counters(products["WIDGET"]) == (1, 0, 0)


def test_an_unknown_sku_alone_fails_the_reservation():
    outcome = reserve(uuid4(), lines(GIZMO=1), {})

    [failed] = outcome.events
    assert [failure.reason for failure in failed.failures] == ["unknown_sku"]


def test_lines_priced_in_two_currencies_fail_as_a_currency_mismatch():
    products = catalog(widget(), gadget(currency="USD"))

    outcome = reserve(uuid4(), lines(WIDGET=1, GADGET=1), products)

    [failed] = outcome.events
    assert [(failure.sku, failure.reason) for failure in failed.failures] == [("GADGET", "currency_mismatch")]
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_an_order_may_take_the_last_unit():
    products = catalog(widget(available=3))
    assert reserve(uuid4(), lines(WIDGET=3), products).succeeded
    assert counters(products["WIDGET"]) == (0, 3, 0)


# -- low-stock alerts -------------------------------------------------------------------------------


def test_falling_below_the_reorder_level_raises_one_low_stock_alert():
    products = catalog(widget(available=10, reorder_level=5), gadget(available=10))

    outcome = reserve(uuid4(), lines(WIDGET=6, GADGET=1), products)

    assert outcome.events[1:] == [LowStockAlert(sku="WIDGET", available=4, reorder_level=5)]
    assert outcome.events[1].partition_key() == "WIDGET"


def test_reaching_the_reorder_level_exactly_is_not_yet_low():
    products = catalog(widget(available=10, reorder_level=5))
    assert reserve(uuid4(), lines(WIDGET=5), products).events[1:] == []


def test_a_product_that_is_already_low_does_not_alert_again():
    products = catalog(widget(available=10, reorder_level=5))
    first = reserve(uuid4(), lines(WIDGET=6), products)
    second = reserve(uuid4(), lines(WIDGET=1), products)

    assert len(first.events) == 2
    assert second.events[1:] == []


def test_a_product_back_above_its_reorder_level_alerts_again_when_it_falls_again():
    products = catalog(widget(available=10, reorder_level=5))
    first = reserve(uuid4(), lines(WIDGET=6), products)
    release(first.reservation, products)

    again = reserve(uuid4(), lines(WIDGET=6), products)

    assert again.events[1:] == [LowStockAlert(sku="WIDGET", available=4, reorder_level=5)]


def test_a_catalog_entry_that_takes_the_stock_below_its_reorder_level_alerts_once():
    product = widget(available=10, reorder_level=3)

    lowered = product.replace_catalog_entry(entry(available=2, reorder_level=3))
    still_low = product.replace_catalog_entry(entry(available=1, reorder_level=3))

    assert lowered == LowStockAlert(sku="WIDGET", available=2, reorder_level=3)
    assert still_low is None


def test_raising_the_reorder_level_above_the_stock_alerts():
    product = widget(available=4, reorder_level=0)
    assert product.replace_catalog_entry(entry(available=4, reorder_level=5)) == LowStockAlert(
        sku="WIDGET", available=4, reorder_level=5
    )


def test_a_product_listed_below_its_reorder_level_alerts_as_it_is_listed():
    low = Product.listed("WIDGET", entry(available=1, reorder_level=3))
    stocked = Product.listed("GADGET", entry(available=3, reorder_level=3))

    assert low.low_stock_alert(was_low=False) == LowStockAlert(sku="WIDGET", available=1, reorder_level=3)
    assert stocked.low_stock_alert(was_low=False) is None


def test_a_failed_reservation_raises_no_alert():
    products = catalog(widget(available=10, reorder_level=5), gadget(available=0))
    outcome = reserve(uuid4(), lines(WIDGET=6, GADGET=1), products)
    assert [type(event) for event in outcome.events] == [StockReservationFailed]


# -- selling and releasing --------------------------------------------------------------------------


def test_a_paid_reservation_becomes_sold_stock():
    products = catalog(widget(available=10))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation

    assert sell(reservation, products) is True

    assert reservation.status is ReservationStatus.SOLD
    assert counters(products["WIDGET"]) == (6, 0, 4)


def test_a_cancelled_reservation_returns_its_held_units():
    products = catalog(widget(available=10))
    order_id = uuid4()
    reservation = reserve(order_id, lines(WIDGET=4), products).reservation

    events = release(reservation, products)

    assert events == [StockReleased(order_id=order_id, items=(OrderLine(sku="WIDGET", quantity=4),))]
    assert reservation.status is ReservationStatus.RELEASED
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_a_cancelled_order_that_was_already_sold_returns_its_sold_units():
    products = catalog(widget(available=10))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation
    sell(reservation, products)

    [released] = release(reservation, products)

    assert isinstance(released, StockReleased)
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_a_second_release_releases_nothing():
    products = catalog(widget(available=10))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation
    release(reservation, products)

    assert release(reservation, products) == []
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_releasing_a_failed_reservation_releases_nothing():
    products = catalog(widget(available=1))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation

    assert release(reservation, products) == []
    assert reservation.status is ReservationStatus.FAILED
    assert counters(products["WIDGET"]) == (1, 0, 0)


def test_a_payment_arriving_after_the_release_sells_nothing():
    products = catalog(widget(available=10))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation
    release(reservation, products)

    assert sell(reservation, products) is False
    assert reservation.status is ReservationStatus.RELEASED
    assert counters(products["WIDGET"]) == (10, 0, 0)


def test_selling_twice_sells_once():
    products = catalog(widget(available=10))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation

    assert sell(reservation, products) is True
    assert sell(reservation, products) is False
    assert counters(products["WIDGET"]) == (6, 0, 4)


def test_a_failed_reservation_sells_nothing():
    products = catalog(widget(available=1))
    reservation = reserve(uuid4(), lines(WIDGET=4), products).reservation
    assert sell(reservation, products) is False


def test_a_payment_sells_what_the_order_holds_and_nothing_once_it_was_released():
    products = catalog(widget(available=10))
    paid = reserve(uuid4(), lines(WIDGET=4), products).reservation
    cancelled = reserve(uuid4(), lines(WIDGET=2), products).reservation
    release(cancelled, products)

    sold = on_payment_processed(paid, products)

    assert sold is not None and sold.reservation is paid and sold.events == []
    assert paid.status is ReservationStatus.SOLD
    assert on_payment_processed(cancelled, products) is None
    assert on_payment_processed(None, products) is None
    assert counters(products["WIDGET"]) == (6, 0, 4)


def test_stock_moves_never_drive_a_counter_below_zero():
    product = widget(available=2)
    for move in (product.hold, product.unhold, product.sell_held, product.take_back_sold):
        with pytest.raises(StockInvariantViolated):
            move(3)
    assert counters(product) == (2, 0, 0)


# -- conservation -----------------------------------------------------------------------------------


def test_stock_on_hand_is_conserved_through_every_reserve_sell_and_release():
    products = catalog(widget(available=20, reorder_level=5), gadget(available=8))
    on_hand = {sku: product.on_hand for sku, product in products.items()}

    def assert_conserved() -> None:
        assert {sku: product.on_hand for sku, product in products.items()} == on_hand

    sold_then_cancelled = reserve(uuid4(), lines(WIDGET=5, GADGET=3), products).reservation
    assert_conserved()
    kept = reserve(uuid4(), lines(WIDGET=10), products).reservation
    cancelled = reserve(uuid4(), lines(GADGET=5), products).reservation
    refused = reserve(uuid4(), lines(WIDGET=6, GADGET=1), products).reservation
    assert refused.status is ReservationStatus.FAILED
    assert_conserved()

    sell(sold_then_cancelled, products)
    sell(kept, products)
    assert_conserved()
    release(cancelled, products)
    release(sold_then_cancelled, products)
    release(refused, products)
    sell(cancelled, products)
    assert_conserved()

    assert counters(products["WIDGET"]) == (10, 0, 10)
    assert counters(products["GADGET"]) == (8, 0, 0)
