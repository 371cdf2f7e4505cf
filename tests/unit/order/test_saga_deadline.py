"""The saga deadline: an order still waiting for inventory or payment too long after it was placed
is cancelled (reason saga_timeout), which drives the same compensations as a customer's cancel."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from order_service.domain import SAGA_TIMEOUT, Order, OrderItem, OrderStatus
from shared.events import (
    OrderCancelled,
    PaymentFailed,
    PaymentProcessed,
    PricedLine,
    ReservationFailure,
    StockReservationFailed,
    StockReserved,
)

PLACED = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DEADLINE = timedelta(minutes=2)
AT_THE_DEADLINE = PLACED + DEADLINE
JUST_BEFORE = AT_THE_DEADLINE - timedelta(milliseconds=1)


def placed_order() -> Order:
    return Order.place(uuid4(), "customer-1", [OrderItem("SKU-1", 2)], "tok_visa", PLACED)


def reserved(order: Order) -> StockReserved:
    line = PricedLine(sku="SKU-1", quantity=2, unit_price=1000)
    return StockReserved(order_id=order.order_id, items=(line,), total_amount=2000, currency="EUR")


def paid(order: Order) -> PaymentProcessed:
    payment_id = UUID("00000000-0000-0000-0000-00000000beef")
    return PaymentProcessed(order_id=order.order_id, payment_id=payment_id, amount=2000, currency="EUR")


def awaiting_payment() -> Order:
    order = placed_order()
    order.on_stock_reserved(reserved(order), PLACED + timedelta(seconds=1))
    return order


def confirmed() -> Order:
    order = awaiting_payment()
    order.on_payment_processed(paid(order), PLACED + timedelta(seconds=2))
    return order


def rejected() -> Order:
    order = placed_order()
    failure = ReservationFailure(sku="SKU-1", requested=2, available=0, reason="insufficient_stock")
    order.on_stock_reservation_failed(StockReservationFailed(order_id=order.order_id, failures=(failure,)), PLACED)
    return order


def cancelled_by_customer() -> Order:
    order = placed_order()
    order.cancel(PLACED + timedelta(seconds=1))
    return order


@pytest.mark.parametrize("waiting", [placed_order, awaiting_payment], ids=["PENDING", "AWAITING_PAYMENT"])
def test_an_order_still_waiting_at_its_deadline_is_cancelled_as_a_saga_timeout(waiting):
    order = waiting()

    assert order.is_overdue(AT_THE_DEADLINE, DEADLINE)
    [event] = order.time_out(AT_THE_DEADLINE, DEADLINE)

    assert event == OrderCancelled(order_id=order.order_id, reason=SAGA_TIMEOUT)
    assert (order.status, order.cancellation_reason) == (OrderStatus.CANCELLED, "saga_timeout")
    assert order.pending_events[-1].occurred_at == AT_THE_DEADLINE


@pytest.mark.parametrize("waiting", [placed_order, awaiting_payment], ids=["PENDING", "AWAITING_PAYMENT"])
def test_an_order_within_its_deadline_is_left_alone(waiting):
    order = waiting()
    version = order.version

    assert not order.is_overdue(JUST_BEFORE, DEADLINE)
    assert order.time_out(JUST_BEFORE, DEADLINE) == []
    assert order.status is not OrderStatus.CANCELLED and order.version == version


@pytest.mark.parametrize("ended", [confirmed, rejected, cancelled_by_customer])
def test_an_order_that_ended_is_never_timed_out_however_late_it_is(ended):
    order = ended()
    status, version = order.status, order.version
    long_after = PLACED + timedelta(days=30)

    assert not order.is_overdue(long_after, DEADLINE)
    assert order.time_out(long_after, DEADLINE) == []
    assert (order.status, order.version) == (status, version)


def test_an_order_is_timed_out_once():
    order = placed_order()
    order.time_out(AT_THE_DEADLINE, DEADLINE)

    assert order.time_out(AT_THE_DEADLINE + timedelta(seconds=5), DEADLINE) == []
    assert order.version == 2


def test_a_payment_that_lands_after_the_timeout_leaves_the_order_cancelled_because_payment_refunds_it():
    order = awaiting_payment()
    order.time_out(AT_THE_DEADLINE, DEADLINE)

    assert order.on_payment_processed(paid(order), AT_THE_DEADLINE + timedelta(seconds=1)) == []
    assert (order.status, order.payment_id) == (OrderStatus.CANCELLED, None)


def test_late_answers_of_inventory_and_payment_change_nothing_after_the_timeout():
    order = placed_order()
    order.time_out(AT_THE_DEADLINE, DEADLINE)
    later = AT_THE_DEADLINE + timedelta(seconds=1)
    declined = PaymentFailed(order_id=order.order_id, amount=2000, currency="EUR", reason="card_declined")

    assert order.on_stock_reserved(reserved(order), later) == []
    assert order.on_payment_failed(declined, later) == []
    assert (order.status, order.cancellation_reason, order.version) == (OrderStatus.CANCELLED, "saga_timeout", 2)


def test_a_timed_out_order_loads_from_its_history_as_it_was_recorded():
    order = awaiting_payment()
    order.time_out(AT_THE_DEADLINE, DEADLINE)

    loaded = Order.from_history(order.pending_events)

    assert (loaded.status, loaded.cancellation_reason, loaded.version) == (OrderStatus.CANCELLED, "saga_timeout", 3)
    assert loaded.updated_at == AT_THE_DEADLINE
