"""The outbox relay: publishes committed outbox rows to Kafka, in id order, at least once.

Exactly one relay per service publishes at a time: it holds a Postgres advisory lock on its own
connection; standbys try for the lock every `relay_lock_retry_s` and take over when the holder's
session ends (a crashed relay's connection closes and the lock goes with it).

Per batch: send every row without awaiting each send, await all acks, then mark the batch published
in one statement. A crash between the acks and the mark re-sends the batch with the same event ids;
consumers drop the duplicates. Rows are selected by `published_at IS NULL ORDER BY id`, never by a
high-water mark, because a row with a lower id can commit after one with a higher id.
"""

import asyncio
import time
import zlib
from collections import Counter

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.logging import get_logger
from shared.metrics import EVENTS_PUBLISHED, PUBLISH_BATCH_SECONDS, RELAY_IS_LEADER, UNPUBLISHED_EVENTS
from shared.settings import ServiceSettings

from .tables import notify_channel

log = get_logger(__name__)

FETCH_BATCH = """
    SELECT id, topic, key, value, headers FROM outbox
    WHERE published_at IS NULL ORDER BY id LIMIT $1
"""
MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"
PURGE_PUBLISHED = """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) LIMIT 10000)
"""
COUNT_UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
BACKLOG_COUNT_INTERVAL_S = 5.0


def advisory_lock_key(schema: str) -> int:
    """A stable 32-bit key per service: two services' relays never compete for one lock."""
    return zlib.crc32(f"outbox-relay:{schema}".encode())


class OutboxRelay:
    def __init__(self, settings: ServiceSettings, dsn: str) -> None:
        self._settings = settings
        self._dsn = dsn
        self._service = settings.service_name
        self._wake = asyncio.Event()
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Publish while leader; wait as a standby otherwise; return once `stop` is set."""
        producer = AIOKafkaProducer(**self._settings.producer_config())
        await producer.start()
        try:
            while not stop.is_set():
                try:
                    await self._lead_when_possible(producer, stop)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
                    # Giving up the lock lets a healthier standby publish while this one backs off.
                    log.warning("relay stopped publishing; will retry", error=repr(exc))
                    await _sleep_unless(stop, self._settings.relay_lock_retry_s)
        finally:
            RELAY_IS_LEADER.labels(self._service).set(0)
            await producer.stop()

    async def _lead_when_possible(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(
            self._dsn,
            server_settings={
                "search_path": self._settings.db_schema,
                "application_name": f"{self._service}-relay",
            },
        )
        try:
            key = advisory_lock_key(self._settings.db_schema)
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    break
                await _sleep_unless(stop, self._settings.relay_lock_retry_s)
            else:
                return
            log.info("relay is now the publisher", lock_key=key)
            RELAY_IS_LEADER.labels(self._service).set(1)
            await conn.add_listener(notify_channel(self._settings.db_schema), self._on_notify)
            try:
                await self._publish_until_stopped(conn, producer, stop)
            finally:
                RELAY_IS_LEADER.labels(self._service).set(0)
        finally:
            await conn.close(timeout=5)  # ends the session, which releases the advisory lock

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _publish_until_stopped(
        self, conn: asyncpg.Connection, producer: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        next_purge = next_backlog_count = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_purge:
                await self._purge(conn)
                next_purge = now + self._settings.relay_purge_interval_s
            if now >= next_backlog_count:
                UNPUBLISHED_EVENTS.labels(self._service).set(await conn.fetchval(COUNT_UNPUBLISHED))
                next_backlog_count = now + BACKLOG_COUNT_INTERVAL_S
            # Clear before reading: a notification that arrives after the read wakes the next wait.
            self._wake.clear()
            published = await self.publish_batch(conn, producer)
            if published == 0:
                await _wait_any(self._wake, stop, timeout=self._settings.relay_poll_interval_s)

    async def publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Send one batch, await every ack, mark it published. Returns how many rows it published."""
        rows = await conn.fetch(FETCH_BATCH, self._settings.relay_batch_size)
        if not rows:
            return 0
        started = time.perf_counter()
        pending = [
            await producer.send(
                row["topic"],
                value=row["value"],
                key=row["key"].encode(),
                headers=[(name, value.encode()) for name, value in _headers(row["headers"]).items()],
            )
            for row in rows
        ]
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Nothing is marked: the whole batch is sent again, and consumers drop what arrived twice.
            raise failures[0]
        await self.mark_published(conn, [row["id"] for row in rows])
        PUBLISH_BATCH_SECONDS.labels(self._service).observe(time.perf_counter() - started)
        for topic, count in Counter(row["topic"] for row in rows).items():
            EVENTS_PUBLISHED.labels(self._service, topic).inc(count)
        self.published += len(rows)
        return len(rows)

    async def mark_published(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        """One statement for the whole batch (the crash tests stop a relay right before it)."""
        await conn.execute(MARK_PUBLISHED, ids)

    async def _purge(self, conn: asyncpg.Connection) -> None:
        """Delete published rows past their retention, so the table (and its scans) stay small."""
        purged = await conn.execute(PURGE_PUBLISHED, self._settings.relay_published_retention_s)
        if purged != "DELETE 0":
            log.info("purged published outbox rows", result=purged)


def _headers(raw: str | dict[str, str]) -> dict[str, str]:
    # asyncpg returns jsonb as text unless a codec is set; accept both.
    return orjson.loads(raw) if isinstance(raw, str) else raw


async def _wait_any(first: asyncio.Event, second: asyncio.Event, *, timeout: float) -> None:
    waiters = [asyncio.create_task(first.wait()), asyncio.create_task(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
