"""The payment service's event worker: OrderCreated, OrderCancelled and OrderRejected from
`order-events`, StockReserved from `inventory-events`. Other event types on these topics are skipped."""

from shared.events.topics import INVENTORY_EVENTS, ORDER_EVENTS
from shared.runtime import worker_main

from payment_service.bootstrap import build_gateway, build_handlers
from payment_service.settings import Settings

TOPICS = (ORDER_EVENTS, INVENTORY_EVENTS)


def main() -> None:
    settings = Settings()
    gateway = build_gateway(settings)
    worker_main(settings, lambda sessions: build_handlers(gateway), TOPICS)
