"""The payment service's worker process: two loops on one database pool.

- The event worker: OrderCreated, OrderCancelled and OrderRejected from `order-events`,
  StockReserved from `inventory-events` (other event types on these topics are skipped). Its
  handlers decide charges and refunds and record them as intents; they never call the gateway.
- The gateway executor: makes those calls, outside any transaction, and records the answers.

A batch that commits a new intent wakes the executor in process; other intents (another worker
process's, a crashed one's) are found by the executor's sweep. If either loop fails, the process
stops and its supervisor restarts it.
"""

import asyncio

from shared.consumer import Consumption
from shared.events.topics import INVENTORY_EVENTS, ORDER_EVENTS
from shared.runtime import BackgroundLoop, HandlerWiring, run_worker, worker_main
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.bootstrap import build_gateway, build_handlers
from payment_service.settings import Settings

from .executor import GatewayExecutor

TOPICS = (ORDER_EVENTS, INVENTORY_EVENTS)


def wiring(settings: Settings) -> tuple[HandlerWiring, list[BackgroundLoop]]:
    """The handlers and the executor they wake. The executor needs the session factory, which exists
    when the handlers are wired, before the background loops start."""
    built: list[GatewayExecutor] = []

    def handlers(sessions: async_sessionmaker[AsyncSession]) -> Consumption:
        built.append(GatewayExecutor(settings, sessions, build_gateway(settings)))
        return build_handlers(settings.gateway, built[0].wake)

    async def execute(_sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event) -> None:
        await built[0].run(stop)

    return handlers, [execute]


async def run(settings: Settings, stop: asyncio.Event) -> None:
    handlers, background = wiring(settings)
    await run_worker(settings, handlers, TOPICS, stop, background=background)


def main() -> None:
    settings = Settings()
    handlers, background = wiring(settings)
    worker_main(settings, handlers, TOPICS, background=background)
