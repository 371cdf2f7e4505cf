from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from order_service.adapters.projection import from_row, project, to_row
from order_service.domain import Order, OrderItem, OrderStatus
from shared.events import PaymentProcessed, PricedLine, StockReserved

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PAYMENT_ID = UUID("00000000-0000-0000-0000-00000000beef")


def confirmed_order() -> Order:
    order = Order.place(uuid4(), "customer-1", [OrderItem("SKU-1", 2), OrderItem("SKU-2", 1)], "tok_visa", T0)
    reserved = StockReserved(
        order_id=order.order_id,
        items=(
            PricedLine(sku="SKU-1", quantity=2, unit_price=1000),
            PricedLine(sku="SKU-2", quantity=1, unit_price=550),
        ),
        total_amount=2550,
        currency="EUR",
    )
    order.on_stock_reserved(reserved, T0 + timedelta(seconds=1))
    paid = PaymentProcessed(order_id=order.order_id, payment_id=PAYMENT_ID, amount=2550, currency="EUR")
    order.on_payment_processed(paid, T0 + timedelta(seconds=2))
    return order


def test_a_new_order_projects_to_a_pending_unpriced_row():
    order = Order.place(uuid4(), "customer-1", [OrderItem("SKU-1", 2)], "tok_visa", T0)

    row = project(order)

    assert row.status is OrderStatus.PENDING
    assert row.items == (OrderItem("SKU-1", 2, None),)
    assert (row.total_amount, row.currency, row.payment_id) == (None, None, None)
    assert (row.version, row.created_at, row.updated_at) == (1, T0, T0)


def test_a_confirmed_order_projects_its_prices_payment_and_last_change():
    row = project(confirmed_order())

    assert row.status is OrderStatus.CONFIRMED
    assert row.items == (OrderItem("SKU-1", 2, 1000), OrderItem("SKU-2", 1, 550))
    assert (row.total_amount, row.currency, row.payment_id) == (2550, "EUR", PAYMENT_ID)
    assert (row.version, row.created_at, row.updated_at) == (3, T0, T0 + timedelta(seconds=2))


def test_the_projection_of_the_fold_of_the_stored_events_is_the_projection_of_the_live_order():
    order = confirmed_order()
    assert project(Order.from_history(order.pending_events)) == project(order)


def test_a_row_survives_the_trip_through_the_table_columns():
    row = project(confirmed_order())

    columns = to_row(row)

    assert columns["status"] == "CONFIRMED"
    assert columns["items"] == [
        {"sku": "SKU-1", "quantity": 2, "unit_price": 1000},
        {"sku": "SKU-2", "quantity": 1, "unit_price": 550},
    ]
    assert from_row(columns) == row


def test_a_row_lists_the_fields_in_which_it_differs_from_another():
    row = project(confirmed_order())
    drifted = replace(row, status=OrderStatus.PENDING, version=2)

    assert drifted.differences(row) == [("status", OrderStatus.PENDING, OrderStatus.CONFIRMED), ("version", 2, 3)]
    assert row.differences(row) == []
