"""Process entry points shared by every service: the relay and the worker main functions.

Each builds its connections inside `main` (never at import), stops cleanly on SIGTERM/SIGINT, and
serves Prometheus metrics on its own port and sets up its traces (shared.tracing).
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence

import uvloop
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.consumer.worker import Consumption, EventWorker
from shared.db import asyncpg_dsn, create_engine, create_session_factory
from shared.kafka.provisioning import check_topics
from shared.logging import configure_logging, get_logger
from shared.metrics import serve_metrics
from shared.outbox.relay import OutboxRelay
from shared.settings import ServiceSettings
from shared.tracing import configure_tracing

log = get_logger(__name__)

# A loop a worker process runs next to its event worker (e.g. the order service's saga deadline
# sweep): given the process's session factory and the stop event, it returns once `stop` is set.
BackgroundLoop = Callable[[async_sessionmaker[AsyncSession], asyncio.Event], Awaitable[None]]


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on uvloop; SIGTERM or SIGINT sets `stop` and `main` winds down by itself."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    uvloop.run(runner())


def relay_main(settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, "relay", level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name, "relay")
    serve_metrics(settings.relay_metrics_port, settings.metrics_host)

    async def main(stop: asyncio.Event) -> None:
        await check_topics(settings.kafka_client_config())
        await OutboxRelay(settings, asyncpg_dsn(settings.database_url)).run(stop)

    run_until_signalled(main)


async def run_worker(
    settings: ServiceSettings,
    consumption: Consumption,
    topics: Sequence[str],
    stop: asyncio.Event,
    *,
    background: Sequence[BackgroundLoop] = (),
) -> None:
    """A worker process's loops on one database pool: the event worker (the service's `consumption`:
    its handlers and their unit of work), and `background` loops beside it. A loop that ends on its
    own (a failure) sets `stop`, so the others wind down as on SIGTERM (records in hand finished,
    offsets committed); then its failure is raised, and the process exits non-zero for its
    supervisor to restart it."""
    await check_topics(settings.kafka_client_config())
    engine = create_engine(settings, role="worker")
    sessions = create_session_factory(engine)
    try:
        worker = EventWorker(settings, sessions, consumption, topics)
        loops = [worker.run(stop), *(loop(sessions, stop) for loop in background)]
        tasks = [asyncio.create_task(_stopping_all_at_its_end(loop, stop)) for loop in loops]
        await asyncio.wait(tasks)  # every loop wound down, however each ended
        for task in tasks:
            task.result()
    finally:
        await engine.dispose()


async def _stopping_all_at_its_end(loop: Awaitable[None], stop: asyncio.Event) -> None:
    try:
        await loop
    finally:
        stop.set()


def worker_main(
    settings: ServiceSettings,
    consumption: Consumption,
    topics: Sequence[str],
    background: Sequence[BackgroundLoop] = (),
) -> None:
    """The worker process: logging, metrics, and `run_worker` until SIGTERM."""
    configure_logging(settings.service_name, "worker", level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name, "worker")
    serve_metrics(settings.worker_metrics_port, settings.metrics_host)
    run_until_signalled(lambda stop: run_worker(settings, consumption, topics, stop, background=background))
