"""The worker's table of payment handlers (service_layer/handlers.py's build_handlers)."""

from nacl.public import PrivateKey
from payment_service.service_layer.handlers import build_handlers
from payment_service.service_layer.unit_of_work import open_batch
from shared.sealing import Opener

OPENER = Opener(bytes(PrivateKey.generate()))


def test_the_worker_reacts_to_the_order_its_reservation_and_its_end():
    consumption = build_handlers("test", OPENER)

    assert set(consumption.handlers) == {"OrderCreated", "StockReserved", "OrderCancelled", "OrderRejected"}


def test_the_worker_handles_its_events_in_the_payment_unit_of_work():
    assert build_handlers("test", OPENER).open_batch is open_batch
