"""The order worker: reacts to inventory's and payment's events (other event types are skipped), and
every few seconds cancels the orders whose saga passed its deadline, then counts those still overdue
(saga_overdue_orders: above 0 for long, the sweep cannot cancel them or keep up)."""

import asyncio
import contextlib
from datetime import timedelta

from shared.events.topics import INVENTORY_EVENTS, PAYMENT_EVENTS
from shared.logging import get_logger
from shared.metrics import SAGA_OVERDUE_ORDERS, SAGA_TIMEOUTS
from shared.outage import is_database_outage
from shared.runtime import BackgroundLoop, worker_main
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_service.service_layer.handlers import build_handlers, time_out_overdue_orders
from order_service.service_layer.queries import count_overdue_orders
from order_service.settings import Settings

TOPICS = (INVENTORY_EVENTS, PAYMENT_EVENTS)

log = get_logger(__name__)


def saga_deadline_sweep(settings: Settings) -> BackgroundLoop:
    """A loop that times out overdue orders until the worker stops. Any number of workers may run it:
    each batch skips the orders another one holds."""
    deadline = timedelta(seconds=settings.saga_deadline_s)
    batch_size = settings.saga_sweep_batch_size

    async def sweep(sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event) -> None:
        while not stop.is_set():
            timed_out = 0
            try:
                async with sessions() as session:
                    timed_out = len(await time_out_overdue_orders(session, deadline, limit=batch_size))
                    overdue = await count_overdue_orders(session, deadline)
                SAGA_OVERDUE_ORDERS.labels(settings.service_name).set(overdue)
            except Exception as exc:  # the sweep must outlive any one failure; the next run retries
                if is_database_outage(exc):
                    log.warning("saga deadline sweep: database unavailable; retrying", error=str(exc))
                else:
                    log.exception("saga deadline sweep failed; retrying")
            SAGA_TIMEOUTS.labels(settings.service_name).inc(timed_out)
            if timed_out < batch_size:  # a full batch means more may be overdue: go on at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=settings.saga_sweep_interval_s)

    return sweep


def main() -> None:
    settings = Settings()
    worker_main(settings, build_handlers(), TOPICS, background=[saga_deadline_sweep(settings)])
