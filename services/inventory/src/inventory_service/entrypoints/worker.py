"""The inventory's event worker: reserves on OrderCreated, releases on OrderCancelled, sells on
PaymentProcessed. Other event types on these topics are skipped."""

from collections.abc import Mapping

from shared.consumer.worker import Handler
from shared.events import OrderCancelled, OrderCreated, PaymentProcessed
from shared.events.topics import ORDER_EVENTS, PAYMENT_EVENTS
from shared.runtime import worker_main
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory_service.service_layer import handlers
from inventory_service.settings import Settings

TOPICS = (ORDER_EVENTS, PAYMENT_EVENTS)


def build_handlers(sessions: async_sessionmaker[AsyncSession] | None = None) -> Mapping[str, Handler]:
    return {
        OrderCreated.event_type: handlers.reserve_stock,
        OrderCancelled.event_type: handlers.release_stock,
        PaymentProcessed.event_type: handlers.sell_stock,
    }


def main() -> None:
    worker_main(Settings(), build_handlers, TOPICS, lock_batch=handlers.lock_batch)
