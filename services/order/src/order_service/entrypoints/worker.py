"""The order worker: reacts to inventory's and payment's events (other event types are skipped)."""

from shared.events.topics import INVENTORY_EVENTS, PAYMENT_EVENTS
from shared.runtime import worker_main

from order_service.service_layer.handlers import build_handlers
from order_service.settings import Settings

TOPICS = (INVENTORY_EVENTS, PAYMENT_EVENTS)


def main() -> None:
    worker_main(Settings(), build_handlers, TOPICS)
