"""The event worker: one poll loop, shared by every service, around the service's handlers.

Per batch of records, one transaction (transaction.py): claim the events in processed_events (a
conflict means the effect is already committed: skip), open the service's unit of work, run the
handlers (state change plus outbox rows), flush, commit. The Kafka offset is committed only after.

Each assigned partition has a lane (lane.py): a task that handles its records strictly in order,
fed by the poll loop, which never waits for a handler. So partitions progress independently, and
the consumer polls (and keeps its group membership) however long one record takes. The lanes'
batches meet in one transaction at a time (grouping.py), so its fixed costs are shared by every
partition's records; a batch that fails is handled again one record at a time, in its own lane. Finished offsets
are committed every `consumer_commit_interval_ms`, from the poll loop, and when partitions are
revoked or the worker stops, after the records in hand.
"""

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events.base import Envelope
from shared.events.codec import InvalidRecord, UnknownEventType, decode
from shared.logging import get_logger
from shared.metrics import ASSIGNED_PARTITIONS, CONSUMED_EVENTS, HANDLE_SECONDS
from shared.outage import is_database_outage
from shared.settings import ServiceSettings

from .dead_letter import dead_letter_for
from .grouping import GroupedTransactions
from .lane import PartitionLane
from .offsets import PendingOffsets
from .purge import purge_processed_events
from .retry import NonRetryableError, backoff_seconds, conflict_backoff_seconds, is_concurrency_conflict
from .transaction import (
    Applied,
    BatchFailed,
    BatchItem,
    Consumption,
    Handler,
    apply_batch,
    apply_one,
    bind_log_context,
    decode_batch,
)

log = get_logger(__name__)

__all__ = ["Consumption", "EventWorker", "Handler"]


class EventWorker:
    def __init__(
        self,
        settings: ServiceSettings,
        session_factory: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler] | Consumption,
        topics: Sequence[str],
    ) -> None:
        consumption = handlers if isinstance(handlers, Consumption) else Consumption(handlers)
        self._settings = settings
        self._open_batch = consumption.open_batch
        self._sessions = session_factory
        self._handlers = dict(consumption.handlers)
        self._topics = list(topics)
        self.service = settings.service_name
        self._consumer_name = settings.group_id
        self._lanes: dict[TopicPartition, PartitionLane] = {}
        self._offsets = PendingOffsets()
        self.rebalancing = False
        self._crashed: BaseException | None = None
        self._leftovers: set[asyncio.Task[None]] = set()  # lanes detached while their record ran on

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set: then finish the records in hand, commit, leave the group."""
        consumer = AIOKafkaConsumer(**self._settings.consumer_config())
        producer = AIOKafkaProducer(**self._settings.producer_config())
        self._consumer, self._producer = consumer, producer
        self._stop = stop
        self._grouped = GroupedTransactions(
            self._apply_group,
            max_records=self._settings.consumer_max_batch_size,
            in_flight=self._settings.consumer_transactions_in_flight,
            slow_after_s=self._settings.consumer_slow_transaction_ms / 1000,
        )
        await producer.start()
        await consumer.start()
        consumer.subscribe(self._topics, listener=_HandOverOnRebalance(self))
        log.info("worker consuming", topics=self._topics, group=self._consumer_name)
        stopper = asyncio.create_task(self._stop_lanes_when_set(stop))
        purger = asyncio.create_task(self._purge_processed_events_now_and_then())
        try:
            await self._poll_until(stop)
        finally:
            # Each step runs even if the one before failed (a broker down while stopping).
            try:
                stopper.cancel()
                purger.cancel()
                await self.hand_over(list(self._lanes))
            finally:
                try:
                    await consumer.stop()  # leaves the group, so partitions move on at once
                finally:
                    await producer.stop()
                    await self._grouped.close()
                    for leftover in self._leftovers:
                        leftover.cancel()
                    await asyncio.gather(*self._leftovers, return_exceptions=True)
                    log.info("worker stopped")

    async def _poll_until(self, stop: asyncio.Event) -> None:
        interval = self._settings.consumer_commit_interval_ms
        next_commit = time.monotonic()
        while not stop.is_set():
            fetched = await self._consumer.getmany(timeout_ms=interval)
            if self._crashed is not None:
                raise self._crashed
            if not self.rebalancing:  # else the new assignment re-reads them from the committed offsets
                for tp, records in fetched.items():
                    self._lane_for(tp).feed(records)
            if time.monotonic() >= next_commit:
                await self.commit()
                next_commit = time.monotonic() + interval / 1000

    def _lane_for(self, tp: TopicPartition) -> PartitionLane:
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = PartitionLane(
                tp,
                self._consumer,
                self.handle_batch,
                self._offsets.finished,
                read_ahead=self._settings.consumer_max_poll_records,
                worker_stop=self._stop,
            )
            lane.task.add_done_callback(self._lane_ended)
        return lane

    def _lane_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._crashed is None:
            self._crashed = task.exception()  # the poll loop raises it: the process restarts

    async def _stop_lanes_when_set(self, stop: asyncio.Event) -> None:
        await stop.wait()
        for lane in self._lanes.values():
            lane.stop()

    async def hand_over(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop the partitions' lanes after their records in hand, commit, and forget the partitions."""
        lanes = [self._lanes.pop(tp) for tp in partitions if tp in self._lanes]
        for lane in lanes:
            lane.stop()
        if lanes:
            _, still_running = await asyncio.wait(
                [lane.task for lane in lanes], timeout=self._settings.consumer_handoff_grace_s
            )
            for lane in lanes:
                if lane.task in still_running:
                    log.warning(
                        "record in hand outlived the hand-over; its next owner redelivers it", partition=lane.tp
                    )
                    lane.detach()
                    self._leftovers.add(lane.task)
        try:
            await self.commit()
        finally:
            self._offsets.forget([lane.tp for lane in lanes])

    async def commit(self) -> None:
        offsets = self._offsets.snapshot()
        if not offsets:
            return
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
        except KafkaError as exc:
            # Kept pending and tried again with the next commit. If the partitions have moved to
            # another member meanwhile, that member re-reads these records and the processed-events
            # table turns them into no-ops.
            log.warning("offset commit failed; offsets kept for the next commit", error=repr(exc))
            return
        self._offsets.committed(offsets)

    async def handle_batch(self, records: list[ConsumerRecord], lane: PartitionLane) -> None:
        """Handle a partition's records in order, in transactions shared with the other lanes' batches
        (at most `consumer_max_batch_size` records each). A batch that fails is handled again one
        record at a time (its transaction rolled back), so a bad record neither loses nor reorders
        the others and gets its retries and dead letter."""
        size = self._settings.consumer_max_batch_size
        for start in range(0, len(records), size):
            if lane.stopping:
                return  # the rest is fetched again by whoever owns the partition next
            chunk = records[start : start + size]
            failure: BatchFailed | None = None
            items = decode_batch(chunk, self._handlers)
            if items is not None:
                try:
                    self._finish(await self._grouped.apply(items), lane)
                    continue
                except BatchFailed as failed:
                    failure = failed
                    log.info("batch failed; handling its records one at a time", error=repr(failed.cause))
            await self._handle_one_at_a_time(chunk, lane, failure)

    async def _handle_one_at_a_time(
        self, records: list[ConsumerRecord], lane: PartitionLane, failure: BatchFailed | None
    ) -> None:
        """Each record in its own transaction, with its retries; stops early once the lane is stopping."""
        for index, record in enumerate(records):
            if lane.stopping:
                return
            # The batch's failure counts as the first attempt of the record that raised it.
            first_failure = failure.cause if failure is not None and failure.index == index else None
            if await self.handle(record, lane, first_failure=first_failure):
                lane.finished(record)

    async def _apply_group(self, items: Sequence[BatchItem]) -> list[Applied]:
        return await apply_batch(self._sessions, self._consumer_name, items, self._open_batch)

    def _finish(self, applied: list[Applied], lane: PartitionLane) -> None:
        for done in applied:
            if done.outcome == "processed":
                HANDLE_SECONDS.labels(self.service, done.item.event_type).observe(done.seconds)
            self._count(done.item.record.topic, done.item.event_type, done.outcome)
            lane.finished(done.item.record)

    async def handle(self, record: ConsumerRecord, lane: PartitionLane, first_failure: Exception | None = None) -> bool:
        """Handle one record to the end: processed, skipped as duplicate or unknown, or dead-lettered.
        False if the lane was told to stop before the record could be finished: it stays uncommitted.
        `first_failure`: how its first attempt already failed (in a batch)."""
        try:
            envelope = decode(record.value, record.headers or ())
        except UnknownEventType as exc:
            self._count(record.topic, str(exc.event_type), "skipped")
            return True
        except InvalidRecord as exc:
            await self._dead_letter(record, exc, "unreadable")
            return True
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            self._count(record.topic, envelope.event_type, "skipped")  # not an event this service reacts to
            return True
        bind_log_context(envelope)
        return await self._handle_with_retries(record, envelope, handler, lane, first_failure)

    async def _handle_with_retries(
        self,
        record: ConsumerRecord,
        envelope: Envelope,
        handler: Handler,
        lane: PartitionLane,
        first_failure: Exception | None,
    ) -> bool:
        attempt = conflicts = 0
        while True:
            started = time.perf_counter()
            try:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure
                outcome = await apply_one(self._sessions, self._consumer_name, envelope, handler, self._open_batch)
            except NonRetryableError as exc:
                await self._dead_letter(record, exc, envelope.event_type)
                return True
            except Exception as exc:
                if is_database_outage(exc):
                    # Not this record's fault: it waits for the database without spending its budget.
                    self._count(record.topic, envelope.event_type, "waited_for_database")
                    log.warning("database unreachable; the record waits without spending its budget", error=repr(exc))
                    delay = self._settings.consumer_outage_retry_s
                elif is_concurrency_conflict(exc):
                    # Postgres aborted this transaction so that another could go on: not the record's fault.
                    conflicts += 1
                    self._count(record.topic, envelope.event_type, "conflict_retried")
                    log.info("transaction conflicted with another; retrying", conflicts=conflicts, error=repr(exc))
                    delay = conflict_backoff_seconds(conflicts)
                else:
                    attempt += 1
                    if attempt > self._settings.consumer_retry_attempts:
                        await self._dead_letter(record, exc, envelope.event_type)
                        return True
                    self._count(record.topic, envelope.event_type, "retried")
                    log.warning("handler failed; retrying", attempt=attempt, error=repr(exc))
                    delay = backoff_seconds(
                        attempt,
                        base=self._settings.consumer_retry_backoff_s,
                        multiplier=self._settings.consumer_retry_backoff_multiplier,
                        cap=self._settings.consumer_retry_backoff_max_s,
                    )
                if not await lane.wait_unless_stopping(delay):
                    # Stopping or revoked between attempts: neither committed nor dead-lettered, so
                    # the partition's next owner gets the record again with a full budget.
                    log.info("record left uncommitted for the partition's next owner", offset=record.offset)
                    return False
                continue
            HANDLE_SECONDS.labels(self.service, envelope.event_type).observe(time.perf_counter() - started)
            self._count(record.topic, envelope.event_type, outcome)
            return True

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
        CONSUMED_EVENTS.labels(self.service, topic, event_type, outcome).inc()

    async def _purge_processed_events_now_and_then(self) -> None:
        """A task of its own: a purge that fails (the database away) is logged and tried again later,
        and never stops the worker."""
        settings = self._settings
        while True:
            try:
                deleted = await purge_processed_events(
                    self._sessions,
                    self._consumer_name,
                    retention_s=settings.consumer_processed_retention_s,
                    batch_size=settings.consumer_purge_batch_size,
                )
                if deleted:
                    log.info("processed events purged", deleted=deleted)
                delay = settings.consumer_purge_interval_s
            except Exception as exc:
                log.warning("purging processed events failed; will try again", error=repr(exc))
                delay = min(settings.consumer_purge_interval_s, 60.0)
            await asyncio.sleep(delay)


# aiokafka ships no types, so its base class is Any to mypy; subscribe() insists on an instance of it.
class _HandOverOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move (aiokafka revokes all of them at every rebalance, then assigns the new
    set): stop their lanes after the records in hand and commit what is finished, the partitions the
    worker keeps included, so nothing is re-read and nothing is handled after the revoke."""

    def __init__(self, worker: EventWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._worker.rebalancing = True
        ASSIGNED_PARTITIONS.labels(self._worker.service).set(0)
        await self._worker.hand_over(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._worker.rebalancing = False
        ASSIGNED_PARTITIONS.labels(self._worker.service).set(len(assigned))
