"""The inventory's event worker: reserves on OrderCreated, releases on OrderCancelled, sells on
PaymentProcessed, each batch of them in one unit of work (`handlers.open_batch`). Other event types
on these topics are skipped."""

from shared.consumer import Consumption
from shared.events import OrderCancelled, OrderCreated, PaymentProcessed
from shared.events.topics import ORDER_EVENTS, PAYMENT_EVENTS
from shared.runtime import worker_main
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory_service.service_layer import handlers
from inventory_service.settings import Settings

TOPICS = (ORDER_EVENTS, PAYMENT_EVENTS)


def build_handlers(sessions: async_sessionmaker[AsyncSession] | None = None) -> Consumption:
    return Consumption(
        handlers={
            OrderCreated.event_type: handlers.reserve_stock,
            OrderCancelled.event_type: handlers.release_stock,
            PaymentProcessed.event_type: handlers.sell_stock,
        },
        open_batch=handlers.open_batch,
    )


def main() -> None:
    worker_main(Settings(), build_handlers(), TOPICS)
