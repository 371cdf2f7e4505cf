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
from shared.runtime import BackgroundLoop, run_worker, worker_main
from shared.sealing import Opener
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.adapters.gateway import build_gateway
from payment_service.service_layer.handlers import build_handlers
from payment_service.settings import Settings

from .executor import GatewayExecutor

TOPICS = (ORDER_EVENTS, INVENTORY_EVENTS)


def wiring(settings: Settings) -> tuple[Consumption, list[BackgroundLoop]]:
    """The handlers, and the executor they wake: a batch that commits a new intent sets `intents`,
    and the executor looks for due intents at once instead of at its next sweep."""
    intents = asyncio.Event()
    # The private key of the payment tokens, read once: a missing key stops the worker at start.
    opener = Opener.from_file(settings.payment_token_private_key_file)

    async def execute(sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event) -> None:
        await GatewayExecutor(settings, sessions, build_gateway(settings), opener=opener, woken=intents).run(stop)

    return build_handlers(settings.gateway, opener, intents.set), [execute]


async def run(settings: Settings, stop: asyncio.Event) -> None:
    consumption, background = wiring(settings)
    await run_worker(settings, consumption, TOPICS, stop, background=background)


def main() -> None:
    settings = Settings()
    consumption, background = wiring(settings)
    worker_main(settings, consumption, TOPICS, background=background)
