"""The inventory's event worker: reserves on OrderCreated, releases on OrderCancelled, sells on
PaymentProcessed, each batch of them in one unit of work (`unit_of_work.open_batch`). Other event types
on these topics are skipped."""

from shared.events.topics import ORDER_EVENTS, PAYMENT_EVENTS
from shared.runtime import worker_main

from inventory_service.service_layer.handlers import build_handlers
from inventory_service.settings import Settings

TOPICS = (ORDER_EVENTS, PAYMENT_EVENTS)


def main() -> None:
    worker_main(Settings(), build_handlers(), TOPICS)
