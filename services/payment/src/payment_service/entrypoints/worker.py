"""The payment service's worker process: two loops on one database pool.

- The event worker: OrderCreated, OrderCancelled and OrderRejected from `order-events`,
  StockReserved from `inventory-events` (other event types on these topics are skipped). Its
  handlers decide charges and refunds and record them as intents; they never call the gateway.
- The gateway executor: makes those calls, outside any transaction, and records the answers.

A handler that commits a new intent wakes the executor in process; other intents (another worker
process's, a crashed one's) are found by the executor's sweep. If either loop fails, the process
stops and its supervisor restarts it.
"""

import asyncio
from collections.abc import Awaitable

from shared.consumer.worker import EventWorker
from shared.db import create_engine, create_session_factory
from shared.events.topics import INVENTORY_EVENTS, ORDER_EVENTS
from shared.kafka.provisioning import ensure_topics
from shared.logging import configure_logging
from shared.metrics import serve_metrics
from shared.runtime import run_until_signalled

from payment_service.bootstrap import build_gateway, build_handlers
from payment_service.settings import Settings

from .executor import GatewayExecutor

TOPICS = (ORDER_EVENTS, INVENTORY_EVENTS)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers)
    engine = create_engine(settings, role="worker")
    sessions = create_session_factory(engine)
    executor = GatewayExecutor(settings, sessions, build_gateway(settings))
    worker = EventWorker(settings, sessions, build_handlers(settings.gateway, executor.wake), TOPICS)
    try:
        loops = [
            asyncio.create_task(_stopping_all_at_its_end(loop, stop)) for loop in (worker.run(stop), executor.run(stop))
        ]
        await asyncio.wait(loops)  # both wound down, however each ended
        for loop in loops:
            loop.result()  # a failure makes the process exit non-zero
    finally:
        await engine.dispose()


async def _stopping_all_at_its_end(loop: Awaitable[None], stop: asyncio.Event) -> None:
    try:
        await loop
    finally:
        stop.set()  # a loop that ended on its own (a failure) winds the other one down too


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, "worker", level=settings.log_level, fmt=settings.log_format)
    serve_metrics(settings.worker_metrics_port)
    run_until_signalled(lambda stop: run(settings, stop))
