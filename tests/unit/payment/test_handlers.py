"""The worker's table of payment handlers (service_layer/handlers.py's build_handlers)."""

from payment_service.service_layer.handlers import build_handlers
from payment_service.service_layer.unit_of_work import open_batch


def test_the_worker_reacts_to_the_order_its_reservation_and_its_end():
    consumption = build_handlers("test")

    assert set(consumption.handlers) == {"OrderCreated", "StockReserved", "OrderCancelled", "OrderRejected"}


def test_the_worker_handles_its_events_in_the_payment_unit_of_work():
    assert build_handlers("test").open_batch is open_batch
