from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from order_service.domain import (
    MAX_LINES,
    CorruptHistory,
    InvalidOrder,
    Order,
    OrderItem,
    OrderNotCancellable,
    OrderStatus,
    RecordedEvent,
    state_at,
)
from shared.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderRejected,
    OrderUpdated,
    PaymentFailed,
    PaymentProcessed,
    PricedLine,
    ReservationFailure,
    StockReservationFailed,
    StockReserved,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PAYMENT_ID = UUID("00000000-0000-0000-0000-00000000beef")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def placed_order() -> Order:
    return Order.place(
        order_id=uuid4(),
        customer_id="customer-1",
        items=[OrderItem("SKU-1", 2), OrderItem("SKU-2", 1)],
        payment_token="tok_visa",
        now=T0,
    )


def reserved(order: Order) -> StockReserved:
    return StockReserved(
        order_id=order.order_id,
        items=(
            PricedLine(sku="SKU-1", quantity=2, unit_price=1000),
            PricedLine(sku="SKU-2", quantity=1, unit_price=550),
        ),
        total_amount=2550,
        currency="EUR",
    )


def paid(order: Order) -> PaymentProcessed:
    return PaymentProcessed(order_id=order.order_id, payment_id=PAYMENT_ID, amount=2550, currency="EUR")


def declined(order: Order) -> PaymentFailed:
    return PaymentFailed(order_id=order.order_id, amount=2550, currency="EUR", reason="card_declined")


def out_of_stock(order: Order) -> StockReservationFailed:
    return StockReservationFailed(
        order_id=order.order_id,
        failures=(
            ReservationFailure(sku="SKU-1", requested=5, available=2, reason="insufficient_stock"),
            ReservationFailure(sku="SKU-2", requested=1, available=0, reason="unknown_sku"),
        ),
    )


def reload(order: Order) -> Order:
    return Order.from_history(order.pending_events)


# -- placing an order -------------------------------------------------------------------------------


def test_a_placed_order_is_pending_with_unpriced_lines_and_one_order_created_event():
    order = placed_order()

    assert order.status is OrderStatus.PENDING
    assert order.items == (OrderItem("SKU-1", 2), OrderItem("SKU-2", 1))
    assert order.total_amount is None and order.currency is None
    assert order.version == 1
    assert order.created_at == order.updated_at == T0
    [recorded] = order.pending_events
    assert recorded.version == 1 and recorded.occurred_at == T0
    assert isinstance(recorded.event, OrderCreated)
    assert recorded.event.payment_token == "tok_visa"
    assert recorded.event.created_at == T0
    assert order.persisted_version == 0


@pytest.mark.parametrize(
    ("items", "reason_part"),
    [
        ([], "at least one line"),
        ([OrderItem(f"SKU-{n}", 1) for n in range(MAX_LINES + 1)], "at most 50 lines"),
        ([OrderItem("SKU-1", 1), OrderItem("SKU-1", 2)], "appears twice"),
        ([OrderItem("SKU-1", 0)], "quantity"),
        ([OrderItem("SKU-1", 10_001)], "quantity"),
        ([OrderItem("not a sku!", 1)], "not a valid SKU"),
    ],
)
def test_an_order_with_bad_lines_is_refused(items, reason_part):
    with pytest.raises(InvalidOrder) as refused:
        Order.place(uuid4(), "customer-1", items, "tok_visa", T0)
    assert reason_part in refused.value.reason


def test_fifty_lines_and_ten_thousand_pieces_are_still_accepted():
    items = [OrderItem(f"SKU-{n}", 10_000) for n in range(MAX_LINES)]
    assert Order.place(uuid4(), "customer-1", items, "tok_visa", T0).status is OrderStatus.PENDING


@pytest.mark.parametrize("customer_id", ["", "   ", "c" * 129])
def test_an_order_without_a_sensible_customer_id_is_refused(customer_id):
    with pytest.raises(InvalidOrder):
        Order.place(uuid4(), customer_id, [OrderItem("SKU-1", 1)], "tok_visa", T0)


def test_an_order_without_a_payment_token_is_refused():
    with pytest.raises(InvalidOrder):
        Order.place(uuid4(), "customer-1", [OrderItem("SKU-1", 1)], " ", T0)


def test_the_domain_refuses_a_naive_time_because_every_time_is_utc():
    with pytest.raises(ValueError):
        Order.place(uuid4(), "customer-1", [OrderItem("SKU-1", 1)], "tok_visa", datetime(2025, 1, 1))


# -- the happy path ---------------------------------------------------------------------------------


def test_reserved_stock_prices_the_order_and_waits_for_payment():
    order = placed_order()

    [event] = order.on_stock_reserved(reserved(order), at(1))

    assert isinstance(event, OrderUpdated) and event.status == "AWAITING_PAYMENT"
    assert order.status is OrderStatus.AWAITING_PAYMENT
    assert order.items == (OrderItem("SKU-1", 2, 1000), OrderItem("SKU-2", 1, 550))
    assert (order.total_amount, order.currency) == (2550, "EUR")
    assert order.version == 2 and order.updated_at == at(1)


def test_a_processed_payment_confirms_an_order_awaiting_payment():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))

    [event] = order.on_payment_processed(paid(order), at(2))

    assert event == OrderConfirmed(order_id=order.order_id, payment_id=PAYMENT_ID, amount=2550, currency="EUR")
    assert order.status is OrderStatus.CONFIRMED
    assert order.payment_id == PAYMENT_ID
    assert [recorded.version for recorded in order.pending_events] == [1, 2, 3]


# -- reordering across topics -------------------------------------------------------------------------


def test_payment_overtaking_the_reservation_still_confirms_the_order():
    order = placed_order()

    [confirmed] = order.on_payment_processed(paid(order), at(1))
    assert isinstance(confirmed, OrderConfirmed)
    assert order.status is OrderStatus.CONFIRMED and not order.is_priced

    [priced] = order.on_stock_reserved(reserved(order), at(2))

    assert isinstance(priced, OrderUpdated) and priced.status == "CONFIRMED"
    assert order.status is OrderStatus.CONFIRMED
    assert (order.total_amount, order.currency) == (2550, "EUR")
    assert order.items[0].unit_price == 1000


def test_a_failed_payment_overtaking_the_reservation_cancels_and_the_late_reservation_changes_nothing():
    order = placed_order()

    [cancelled] = order.on_payment_failed(declined(order), at(1))
    assert cancelled == OrderCancelled(order_id=order.order_id, reason="payment_failed")

    assert order.on_stock_reserved(reserved(order), at(2)) == []
    assert order.status is OrderStatus.CANCELLED and not order.is_priced


# -- rejection and cancellation ---------------------------------------------------------------------


def test_a_failed_reservation_rejects_the_order_with_a_readable_reason():
    order = placed_order()

    [event] = order.on_stock_reservation_failed(out_of_stock(order), at(1))

    assert isinstance(event, OrderRejected)
    assert order.status is OrderStatus.REJECTED
    assert order.rejection_reason == ("insufficient_stock: SKU-1 (requested 5, available 2); unknown_sku: SKU-2")


def test_a_declined_payment_cancels_an_order_awaiting_payment():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))

    [event] = order.on_payment_failed(declined(order), at(2))

    assert event == OrderCancelled(order_id=order.order_id, reason="payment_failed")
    assert order.status is OrderStatus.CANCELLED
    assert order.cancellation_reason == "payment_failed"


@pytest.mark.parametrize("reach", ["pending", "awaiting_payment", "confirmed"])
def test_the_customer_can_cancel_an_order_that_did_not_end(reach):
    order = placed_order()
    if reach in ("awaiting_payment", "confirmed"):
        order.on_stock_reserved(reserved(order), at(1))
    if reach == "confirmed":
        order.on_payment_processed(paid(order), at(2))

    [event] = order.cancel(at(3))

    assert event == OrderCancelled(order_id=order.order_id, reason="customer_request")
    assert order.status is OrderStatus.CANCELLED
    assert order.cancellation_reason == "customer_request"


def test_a_cancelled_or_rejected_order_cannot_be_cancelled():
    cancelled = placed_order()
    cancelled.cancel(at(1))
    rejected = placed_order()
    rejected.on_stock_reservation_failed(out_of_stock(rejected), at(1))

    for order in (cancelled, rejected):
        with pytest.raises(OrderNotCancellable) as refused:
            order.cancel(at(2))
        assert refused.value.status == order.status


def test_a_payment_for_a_cancelled_order_leaves_it_cancelled_because_payment_refunds_it():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))
    order.cancel(at(2))

    assert order.on_payment_processed(paid(order), at(3)) == []
    assert order.status is OrderStatus.CANCELLED and order.payment_id is None


def test_answers_that_come_after_the_order_ended_change_nothing():
    rejected = placed_order()
    rejected.on_stock_reservation_failed(out_of_stock(rejected), at(1))
    confirmed = placed_order()
    confirmed.on_stock_reserved(reserved(confirmed), at(1))
    confirmed.on_payment_processed(paid(confirmed), at(2))

    assert rejected.on_stock_reserved(reserved(rejected), at(3)) == []
    assert rejected.on_payment_processed(paid(rejected), at(3)) == []
    assert rejected.on_payment_failed(declined(rejected), at(3)) == []
    assert confirmed.on_payment_failed(declined(confirmed), at(3)) == []
    assert confirmed.on_stock_reservation_failed(out_of_stock(confirmed), at(3)) == []
    assert rejected.status is OrderStatus.REJECTED and confirmed.status is OrderStatus.CONFIRMED


def test_a_reservation_failure_after_a_customer_cancellation_does_not_reject_the_order():
    order = placed_order()
    order.cancel(at(1))

    assert order.on_stock_reservation_failed(out_of_stock(order), at(2)) == []
    assert order.status is OrderStatus.CANCELLED


# -- idempotency ------------------------------------------------------------------------------------


def test_every_reaction_seen_twice_records_its_event_once():
    order = placed_order()
    assert len(order.on_stock_reserved(reserved(order), at(1))) == 1
    assert order.on_stock_reserved(reserved(order), at(2)) == []
    assert len(order.on_payment_processed(paid(order), at(3))) == 1
    assert order.on_payment_processed(paid(order), at(4)) == []

    rejected = placed_order()
    assert len(rejected.on_stock_reservation_failed(out_of_stock(rejected), at(1))) == 1
    assert rejected.on_stock_reservation_failed(out_of_stock(rejected), at(2)) == []

    cancelled = placed_order()
    assert len(cancelled.on_payment_failed(declined(cancelled), at(1))) == 1
    assert cancelled.on_payment_failed(declined(cancelled), at(2)) == []

    assert order.version == 3 and rejected.version == 2 and cancelled.version == 2


def test_the_late_reservation_after_an_overtaking_payment_prices_the_order_only_once():
    order = placed_order()
    order.on_payment_processed(paid(order), at(1))
    order.on_stock_reserved(reserved(order), at(2))

    assert order.on_stock_reserved(reserved(order), at(3)) == []
    assert order.version == 3


def test_an_event_of_another_order_is_refused():
    order = placed_order()
    other = placed_order()
    with pytest.raises(ValueError):
        order.on_payment_processed(paid(other), at(1))


# -- event sourcing and time travel -----------------------------------------------------------------


def test_an_order_loaded_from_its_history_equals_the_one_that_recorded_it():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))
    order.on_payment_processed(paid(order), at(2))

    loaded = reload(order)

    assert vars(loaded) | {"_pending": []} == vars(order) | {"_pending": []}
    assert loaded.pending_events == ()
    assert loaded.persisted_version == loaded.version == 3


def test_a_loaded_order_records_only_its_new_events_from_the_stored_version_on():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))
    loaded = reload(order)

    loaded.on_payment_processed(paid(loaded), at(2))

    [recorded] = loaded.pending_events
    assert recorded.version == 3 and recorded.occurred_at == at(2)
    assert loaded.persisted_version == 2


def test_a_history_with_a_gap_or_without_its_creation_does_not_load():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))
    order.on_payment_processed(paid(order), at(2))
    first, second, third = order.pending_events

    for broken in ([first, third], [second, third], []):
        with pytest.raises(CorruptHistory):
            Order.from_history(broken)


def test_a_history_mixing_two_orders_does_not_load():
    order = placed_order()
    stranger = RecordedEvent(2, OrderCancelled(order_id=uuid4(), reason="customer_request"), at(1))
    with pytest.raises(CorruptHistory):
        Order.from_history([*order.pending_events, stranger])


def test_time_travel_by_version_folds_only_the_first_events():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(1))
    order.on_payment_processed(paid(order), at(2))
    history = order.pending_events

    assert state_at(history, version=0) is None
    assert state_at(history, version=1).status is OrderStatus.PENDING
    assert state_at(history, version=2).status is OrderStatus.AWAITING_PAYMENT
    assert state_at(history, version=3).status is OrderStatus.CONFIRMED
    assert state_at(history, version=99).version == 3


def test_time_travel_by_time_shows_the_order_as_it_was_then():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(10))
    order.cancel(at(20))
    history = order.pending_events

    assert state_at(history, as_of=T0 - timedelta(seconds=1)) is None
    assert state_at(history, as_of=T0).status is OrderStatus.PENDING
    as_of_15 = state_at(history, as_of=at(15))
    assert as_of_15.status is OrderStatus.AWAITING_PAYMENT and as_of_15.updated_at == at(10)
    assert state_at(history, as_of=at(20)).status is OrderStatus.CANCELLED
    assert state_at(history, as_of=at(20), version=2).status is OrderStatus.AWAITING_PAYMENT


def test_time_travel_never_skips_a_version_when_clocks_disagree():
    order = placed_order()
    order.on_stock_reserved(reserved(order), at(10))
    order.on_payment_processed(paid(order), at(5))  # recorded by a worker whose clock lags

    as_of_7 = state_at(order.pending_events, as_of=at(7))

    assert as_of_7.version == 1 and as_of_7.status is OrderStatus.PENDING
