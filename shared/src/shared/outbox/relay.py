"""The outbox relay: publishes committed outbox rows to Kafka, in id order, at least once.

Exactly one relay per service publishes at a time: it holds a Postgres advisory lock on its own
connection; standbys try for the lock every `relay_lock_retry_s` and take over when the holder's
session ends (a crashed relay's connection closes and the lock goes with it).

Per batch: send every row without awaiting each send, await all acks, then mark the batch published
in one statement. A crash between the acks and the mark re-sends the batch with the same event ids;
consumers drop the duplicates. Rows are selected by `published_at IS NULL ORDER BY id`, never by a
high-water mark, because a row with a lower id can commit after one with a higher id.

Draining a backlog, two batches are in flight: the next batch (the unpublished rows not already in
flight) is fetched and sent while the previous one's acks are awaited and it is marked. Each batch is
still marked only after all of its acks, in one statement, in the order the batches were sent; the
producer keeps each partition's records in send order. This keeps the producer busy while Postgres
works on the mark, which is what lets the relay drain close to a plain producer's rate.
"""

import asyncio
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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
    WHERE published_at IS NULL AND id <> ALL($2::bigint[]) ORDER BY id LIMIT $1
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
                # A mark lost in a Postgres crash only means its batch is sent again, which consumers
                # handle anyway: the relay need not wait for the WAL flush of every mark and purge.
                "synchronous_commit": "off",
                # Plan each fetch with its own array of in-flight ids: Postgres then looks them up in
                # a hash table; a generic plan compares every row with every id.
                "plan_cache_mode": "force_custom_plan",
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
        in_flight: _SentBatch | None = None  # sent, not yet confirmed
        rows: list[asyncpg.Record] = []  # fetched, not yet sent
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
            if not rows:
                rows = await self._fetch(conn, exclude=in_flight.ids if in_flight else ())
            if not rows:
                if in_flight is not None:
                    await self._confirm(conn, in_flight)
                    in_flight = None
                await _wait_any(self._wake, stop, timeout=self._settings.relay_poll_interval_s)
                continue
            in_flight, rows = await self._send_next(conn, producer, rows, in_flight)
        if in_flight is not None:
            await self._confirm(conn, in_flight)  # stopping: what was sent is marked, not sent again

    async def publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Send one batch, await every ack, mark it published. Returns how many rows it published."""
        rows = await self._fetch(conn)
        if not rows:
            return 0
        await self._confirm(conn, await self._send(producer, rows))
        return len(rows)

    async def _fetch(self, conn: asyncpg.Connection, *, exclude: Sequence[int] = ()) -> list[asyncpg.Record]:
        """The next batch: the oldest unpublished rows, but for those already in flight (`exclude`)."""
        return await conn.fetch(FETCH_BATCH, self._settings.relay_batch_size, list(exclude))

    async def _send_next(
        self,
        conn: asyncpg.Connection,
        producer: AIOKafkaProducer,
        rows: list[asyncpg.Record],
        in_flight: "_SentBatch | None",
    ) -> tuple["_SentBatch", list[asyncpg.Record]]:
        """Send `rows` while, on the connection, the batch in flight is confirmed (acks, then mark)
        and, when `rows` fill a batch, the batch after it is fetched. Returns the batch now in flight
        and the rows fetched for the next one."""

        async def confirm_and_fetch() -> list[asyncpg.Record]:
            if in_flight is not None:
                await self._confirm(conn, in_flight)
            if len(rows) < self._settings.relay_batch_size:
                return []  # the backlog is drained: the main loop fetches, after it cleared the wake-up
            return await self._fetch(conn, exclude=[row["id"] for row in rows])

        background = asyncio.create_task(confirm_and_fetch())
        try:
            sent = await self._send(producer, rows)
        except BaseException:
            await asyncio.wait([background])  # it uses the connection until it is done
            if not background.cancelled():
                background.exception()  # retrieved; the failed send is the error to report
            raise
        return sent, await background

    async def _send(self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> "_SentBatch":
        """Hand every row to the producer without awaiting its ack."""
        started = time.perf_counter()
        send, loads = producer.send, orjson.loads
        ids, acks, topics = [], [], Counter[str]()
        for row_id, topic, key, value, headers in rows:
            texts = loads(headers) if isinstance(headers, str) else headers  # jsonb comes as text
            ids.append(row_id)
            acks.append(
                await send(topic, value=value, key=key.encode(), headers=[(n, t.encode()) for n, t in texts.items()])
            )
            topics[topic] += 1
        return _SentBatch(ids, acks, topics, started)

    async def _confirm(self, conn: asyncpg.Connection, batch: "_SentBatch") -> None:
        """Await every ack of the batch, then mark it published."""
        failure: BaseException | None = None
        for ack in batch.acks:  # most are done by now: awaiting a done future costs next to nothing
            try:
                await ack
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            # Nothing is marked: the whole batch is sent again, and consumers drop what arrived twice.
            raise failure
        await self.mark_published(conn, batch.ids)
        PUBLISH_BATCH_SECONDS.labels(self._service).observe(time.perf_counter() - batch.started)
        for topic, count in batch.topics.items():
            EVENTS_PUBLISHED.labels(self._service, topic).inc(count)
        self.published += len(batch.ids)

    async def mark_published(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        """One statement for the whole batch (the crash tests stop a relay right before it)."""
        await conn.execute(MARK_PUBLISHED, ids)

    async def _purge(self, conn: asyncpg.Connection) -> None:
        """Delete published rows past their retention, so the table (and its scans) stay small."""
        purged = await conn.execute(PURGE_PUBLISHED, self._settings.relay_published_retention_s)
        if purged != "DELETE 0":
            log.info("purged published outbox rows", result=purged)


@dataclass
class _SentBatch:
    """Rows handed to the producer, not yet marked published."""

    ids: list[int]
    acks: list["asyncio.Future[object]"]
    topics: Counter[str]
    started: float


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
