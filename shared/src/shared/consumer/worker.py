"""The event worker: one loop, shared by every service, around the service's handlers.

Per message, one transaction: insert `(consumer, event_id)` into processed_events (a conflict means
the effect is already committed: skip), run the handler (state change plus outbox rows), commit.
The Kafka offset is committed only after that. Partitions of one poll are handled concurrently,
the messages of one partition strictly in order.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events.base import Envelope
from shared.events.codec import InvalidRecord, UnknownEventType, decode
from shared.logging import bind_context, get_logger
from shared.metrics import CONSUMED_EVENTS, HANDLE_SECONDS
from shared.outbox.tables import processed_events
from shared.settings import ServiceSettings

from .dead_letter import dead_letter_for
from .retry import NonRetryableError, backoff_seconds, is_infrastructure_outage

log = get_logger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class EventWorker:
    def __init__(
        self,
        settings: ServiceSettings,
        session_factory: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        topics: Sequence[str],
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._handlers = dict(handlers)
        self._topics = list(topics)
        self._service = settings.service_name
        self._consumer_name = settings.group_id
        self._done: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._stop = asyncio.Event()
        self._next_purge = 0.0  # monotonic time of the next processed-events purge

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set: then finish the messages in hand, commit, leave the group."""
        self._stop = stop
        consumer = AIOKafkaConsumer(**self._settings.consumer_config())
        producer = AIOKafkaProducer(**self._settings.producer_config())
        self._consumer, self._producer = consumer, producer
        await producer.start()
        await consumer.start()
        consumer.subscribe(self._topics, listener=_CommitOnRevoke(self))
        log.info("worker consuming", topics=self._topics, group=self._consumer_name)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                if batches:
                    await asyncio.gather(*(self._handle_partition(tp, msgs) for tp, msgs in batches.items()))
                    await self.commit()
                await self._purge_processed_events_now_and_then()
        finally:
            # Each step runs even if the one before failed (a broker down while stopping).
            try:
                await self.commit()
            finally:
                try:
                    await consumer.stop()  # leaves the group, so partitions move on at once
                finally:
                    await producer.stop()
                    log.info("worker stopped")

    async def commit(self) -> None:
        if not self._done:
            return
        offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in self._done.items()}
        self._done.clear()
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved to another member during a rebalance: it re-reads these records
            # and the processed-events table turns them into no-ops.
            log.warning("offset commit failed; records will be redelivered", error=repr(exc))

    async def _handle_partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            if self._stop.is_set():
                return  # the rest is fetched again by whoever owns the partition next
            await self.handle(record)
            self._done[tp] = record.offset + 1

    async def handle(self, record: ConsumerRecord) -> None:
        """Handle one record to the end: processed, skipped as duplicate or unknown, or dead-lettered."""
        try:
            envelope = decode(record.value, record.headers or ())
        except UnknownEventType as exc:
            self._count(record.topic, str(exc.event_type), "skipped")
            return
        except InvalidRecord as exc:
            await self._dead_letter(record, exc, "unreadable")
            return
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            self._count(record.topic, envelope.event_type, "skipped")  # not an event this service reacts to
            return
        bind_context(
            event_id=str(envelope.event_id),
            event_type=envelope.event_type,
            correlation_id=envelope.correlation_id,
            order_id=getattr(envelope.event, "order_id", None) and str(envelope.event.order_id),  # type: ignore[attr-defined]
        )
        await self._handle_with_retries(record, envelope, handler)

    async def _handle_with_retries(self, record: ConsumerRecord, envelope: Envelope, handler: Handler) -> None:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                outcome = await self._apply_once(envelope, handler)
            except NonRetryableError as exc:
                await self._dead_letter(record, exc, envelope.event_type)
                return
            except Exception as exc:
                if is_infrastructure_outage(exc) and not self._stop.is_set():
                    log.warning("database unreachable; retrying without spending the budget", error=repr(exc))
                    await asyncio.sleep(self._settings.consumer_retry_backoff_max_s)
                    continue
                attempt += 1
                if attempt > self._settings.consumer_retry_attempts:
                    await self._dead_letter(record, exc, envelope.event_type)
                    return
                self._count(record.topic, envelope.event_type, "retried")
                log.warning("handler failed; retrying", attempt=attempt, error=repr(exc))
                await asyncio.sleep(
                    backoff_seconds(
                        attempt,
                        base=self._settings.consumer_retry_backoff_s,
                        multiplier=self._settings.consumer_retry_backoff_multiplier,
                        cap=self._settings.consumer_retry_backoff_max_s,
                    )
                )
                continue
            HANDLE_SECONDS.labels(self._service, envelope.event_type).observe(time.perf_counter() - started)
            self._count(record.topic, envelope.event_type, outcome)
            return

    async def _apply_once(self, envelope: Envelope, handler: Handler) -> str:
        async with self._sessions() as session, session.begin():
            claimed = await session.execute(
                pg_insert(processed_events)
                .values(consumer=self._consumer_name, event_id=envelope.event_id)
                .on_conflict_do_nothing()
                .returning(processed_events.c.event_id)
            )
            if claimed.first() is None:
                return "duplicate"
            await handler(session, envelope)
        return "processed"

    async def _dead_letter(self, record: ConsumerRecord, exc: BaseException, event_type: str) -> None:
        letter = dead_letter_for(record, exc, self._consumer_name)
        # Awaited to the broker's ack before the offset can be committed: a dead letter is never lost.
        await (
            await self._producer.send(
                letter.topic, value=letter.value, key=letter.key, headers=letter.headers, partition=letter.partition
            )
        )
        self._count(record.topic, event_type, "dead_lettered")
        log.error(
            "record dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            dead_letter_topic=letter.topic,
            error=repr(exc),
        )

    def _count(self, topic: str, event_type: str, outcome: str) -> None:
        CONSUMED_EVENTS.labels(self._service, topic, event_type, outcome).inc()

    async def _purge_processed_events_now_and_then(self) -> None:
        """Dedup rows older than the topics' retention can never match a redelivery again."""
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + 3600
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(processed_events).where(
                    processed_events.c.consumer == self._consumer_name,
                    processed_events.c.processed_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self._settings.consumer_processed_retention_s),
                )
            )


class _CommitOnRevoke(ConsumerRebalanceListener):
    """Commit what is done before partitions move to another member, so it re-reads as little as possible."""

    def __init__(self, worker: EventWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.commit()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None
