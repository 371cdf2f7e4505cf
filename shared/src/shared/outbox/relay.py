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

A batch that fails (a send or an ack error) ends the relay's turn as publisher: it releases the lock,
stops its producer (which first delivers or fails what it still holds) and starts a new one before it
sends again, from the oldest unmarked row. An idempotent producer that lost a batch is not reusable:
see `run`.

Published rows are purged after `relay_published_retention_s`, a chunk per short transaction, one
chunk after each batch until a chunk comes back short, so purging keeps pace with publishing.

Every relay, leader or standby, reports how long the next row to publish has waited
(outbox_oldest_unpublished_age_seconds), on a connection of its own: a relay that cannot reach Kafka
never becomes the leader, and an outbox that backs up because no relay can publish is what the age
is for. The next row is the oldest by id (the order of publishing), found through the partial index
of unpublished rows at any backlog; its created_at is its writer's transaction start.
"""

import asyncio
import contextlib
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import Span, StatusCode

from shared.logging import get_logger
from shared.metrics import (
    EVENTS_PUBLISHED,
    OLDEST_UNPUBLISHED_AGE,
    PUBLISH_BATCH_SECONDS,
    RELAY_IS_LEADER,
    UNPUBLISHED_EVENTS,
)
from shared.settings import ServiceSettings
from shared.tracing import SpanBudget, is_sampled, publish_span

from .tables import notify_channel

log = get_logger(__name__)

FETCH_BATCH = """
    SELECT id, topic, key, value, headers FROM outbox
    WHERE published_at IS NULL AND id <> ALL($2::bigint[]) ORDER BY id LIMIT $1
"""
MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"
# One chunk of published rows past their retention, in its own short transaction. ARRAY(...) runs the
# selection once, through the `outbox_published_at` index, and deletes each id through the primary
# key: a plan that holds whatever the statistics say (`id IN (SELECT ... LIMIT n)` may be planned as
# a join that scans the table again per row; one such chunk ran for minutes).
PURGE_PUBLISHED = """
    DELETE FROM outbox WHERE id = ANY(ARRAY(
        SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) LIMIT $2))
"""
COUNT_UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
BACKLOG_COUNT_INTERVAL_S = 5.0
# Seconds the next row to publish has waited (0 when none waits).
OLDEST_UNPUBLISHED_AGE_SECONDS = """
    SELECT coalesce(extract(epoch FROM now() - (
        SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1)), 0)::float8
"""


def advisory_lock_key(schema: str) -> int:
    """A stable 32-bit key per service: two services' relays never compete for one lock."""
    return zlib.crc32(f"outbox-relay:{schema}".encode())


class OutboxRelay:
    def __init__(
        self, settings: ServiceSettings, dsn: str, *, backlog_age_interval_s: float = BACKLOG_COUNT_INTERVAL_S
    ) -> None:
        self._settings = settings
        self._backlog_age_interval_s = backlog_age_interval_s
        self._dsn = dsn
        self._service = settings.service_name
        self._wake = asyncio.Event()
        self._span_budget = SpanBudget(settings.relay_trace_spans_per_s)
        self.published = 0
        self.producers_started = 0
        self.purged = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Publish while leader; wait as a standby otherwise; return once `stop` is set. Leader or
        not, report the age of the oldest unpublished row meanwhile."""
        age_reporter = asyncio.create_task(self._report_backlog_age(stop))
        try:
            await self._publish_when_leader(stop)
        finally:
            age_reporter.cancel()
            await asyncio.wait([age_reporter])

    async def _report_backlog_age(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                try:
                    conn = conn or await asyncpg.connect(
                        self._dsn,
                        ssl=self._settings.db_ssl,
                        server_settings={
                            "search_path": self._settings.db_schema,
                            "application_name": f"{self._service}-relay-backlog-age",
                        },
                    )
                    OLDEST_UNPUBLISHED_AGE.labels(self._service).set(
                        await conn.fetchval(OLDEST_UNPUBLISHED_AGE_SECONDS)
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("could not measure the outbox backlog's age; will retry", error=repr(exc))
                    if conn is not None:
                        conn.terminate()
                        conn = None
                await _sleep_unless(stop, self._backlog_age_interval_s)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=5)

    async def _publish_when_leader(self, stop: asyncio.Event) -> None:
        producer: AIOKafkaProducer | None = None
        try:
            while not stop.is_set():
                try:
                    producer = producer or await self._start_producer()
                    await self._lead_when_possible(producer, stop)
                except KafkaError as exc:
                    # An idempotent producer whose batch failed may never deliver to that partition
                    # again: a batch that expired unsent (its partition had no leader) used sequence
                    # numbers the broker never saw, and every later batch fails with
                    # OutOfOrderSequenceNumber. A new producer (new id, sequences from 0) starts clean.
                    if producer is None:
                        log.warning("could not start a producer; will retry", error=repr(exc))
                    else:
                        log.warning("publishing failed; the relay replaces its producer", error=repr(exc))
                        await self._retire(producer)
                        producer = None
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    # Giving up the lock lets a healthier standby publish while this one backs off.
                    log.warning("relay stopped publishing; will retry", error=repr(exc))
                await _sleep_unless(stop, self._settings.relay_lock_retry_s)
        finally:
            RELAY_IS_LEADER.labels(self._service).set(0)
            if producer is not None:
                await producer.stop()

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self._settings.producer_config())
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producers_started += 1
        return producer

    async def _retire(self, producer: AIOKafkaProducer) -> None:
        """Stop a producer after a failure, before its successor sends anything. `stop()` waits until
        every record it still holds is delivered or has failed, so the two producers never send at
        once. (A request already on the wire may still be written later: its rows are unmarked, so
        they are re-sent anyway, and the broker took it only if the same producer's earlier records
        of that partition are written before it, so one key's first copies stay in id order.)
        This waits as long as the cluster cannot take the records; the advisory lock is released
        already, so another relay may publish meanwhile."""
        started = time.monotonic()
        await producer.stop()
        log.info("stopped the failed producer", seconds=round(time.monotonic() - started, 3))

    async def _lead_when_possible(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(
            self._dsn,
            ssl=self._settings.db_ssl,
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
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_purge:
                    # A full chunk means more rows are due: the next chunk follows the next batch, so
                    # purging keeps pace with publishing without ever stalling it for long.
                    more = await self.purge(conn)
                    next_purge = now if more else now + self._settings.relay_purge_interval_s
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
                    if next_purge > now:  # else purge the next chunk at once
                        await _wait_any(self._wake, stop, timeout=self._settings.relay_poll_interval_s)
                    continue
                in_flight, rows = await self._send_next(conn, producer, rows, in_flight)
        except BaseException:
            if in_flight is not None:
                in_flight.abandon()
            raise
        if in_flight is not None:
            await self._confirm(conn, in_flight)  # stopping: what was sent is marked, not sent again

    async def _fetch(self, conn: asyncpg.Connection, *, exclude: Sequence[int] = ()) -> list[asyncpg.Record]:
        """The next batch: the oldest unpublished rows, but for those already in flight (`exclude`)."""
        rows: list[asyncpg.Record] = await conn.fetch(FETCH_BATCH, self._settings.relay_batch_size, list(exclude))
        return rows

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
        try:
            return sent, await background
        except BaseException:
            sent.abandon()
            raise

    async def _send(self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> "_SentBatch":
        """Hand every row to the producer without awaiting its ack."""
        started = time.perf_counter()
        send, loads = producer.send, orjson.loads
        ids: list[int] = []
        acks: list[asyncio.Future[object]] = []
        topics = Counter[str]()
        batch = _SentBatch(ids, acks, topics, started)
        try:
            for row_id, topic, key, value, headers in rows:
                texts = loads(headers) if isinstance(headers, str) else headers  # jsonb comes as text
                ids.append(row_id)
                span = _publish_span(texts, topic, key, self._span_budget)
                try:
                    ack = await send(
                        topic, value=value, key=key.encode(), headers=[(n, t.encode()) for n, t in texts.items()]
                    )
                except BaseException:
                    if span is not None:
                        span.end()
                    raise
                if span is not None:
                    ack.add_done_callback(partial(_end_on_ack, span))
                acks.append(ack)
                topics[topic] += 1
        except BaseException:
            batch.abandon()
            raise
        return batch

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

    async def purge(self, conn: asyncpg.Connection) -> bool:
        """Delete one chunk of published rows past their retention, so the table (and its scans)
        stays small. Returns whether the chunk was full, i.e. more rows are due."""
        chunk = self._settings.relay_purge_chunk_size
        result = await conn.execute(PURGE_PUBLISHED, self._settings.relay_published_retention_s, chunk)
        purged = int(result.rsplit(" ", 1)[-1])
        self.purged += purged
        if purged:
            log.debug("purged published outbox rows", rows=purged)
        return purged == chunk


@dataclass
class _SentBatch:
    """Rows handed to the producer, not yet marked published."""

    ids: list[int]
    acks: list["asyncio.Future[object]"]
    topics: Counter[str]
    started: float

    def abandon(self) -> None:
        """Give up on the acks: the rows stay unmarked and are sent again. Their outcomes are still
        retrieved when they come, so asyncio does not log every failed one as never retrieved."""
        for ack in self.acks:
            ack.add_done_callback(_retrieve)


def _publish_span(headers: dict[str, str], topic: str, key: str, budget: SpanBudget) -> Span | None:
    """A row written in a recorded trace is published in it (shared.tracing): a span from the send
    to the broker's ack, the child of the row's traceparent. A row without one, or of a trace not
    sampled (no exporter, or sampled out where the trace started), gets none: nothing would record
    it. Nor does a row past the span budget (`relay_trace_spans_per_s`): the relay is the
    throughput-critical path, and a recorded span costs more than publishing the row."""
    traceparent = headers.get("traceparent")
    if traceparent is None or not is_sampled(traceparent) or not budget.take():
        return None
    return publish_span(traceparent=traceparent, topic=topic, key=key, event_id=headers.get("eventId", ""))


def _end_on_ack(span: Span, ack: "asyncio.Future[object]") -> None:
    if ack.cancelled():
        span.set_status(StatusCode.ERROR, "abandoned")
    elif (error := ack.exception()) is not None:
        span.record_exception(error)
        span.set_status(StatusCode.ERROR, type(error).__name__)
    span.end()


def _retrieve(ack: "asyncio.Future[object]") -> None:
    if not ack.cancelled():
        ack.exception()


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
