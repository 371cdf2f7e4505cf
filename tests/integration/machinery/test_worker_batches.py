"""The event worker handles a poll's records of one partition in batches: one transaction per batch
(at most `consumer_max_batch_size` records), dedup for the whole batch in one statement, the
handlers called in order. A batch that fails is handled again one record at a time, so a bad record
neither loses nor reorders the others.

Each test writes to one partition of a topic of its own (the `own_topic` fixture, with its DLT) before the worker
starts, so the worker's first poll holds all of the test's records.
"""

import uuid

import pytest
from aiokafka import TopicPartition
from machinery_support import alert, apply_effect, consumer_events, send_to_partition, unique_keys
from shared.consumer import EventWorker
from shared.events import Envelope
from sqlalchemy import text

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


class Recording:
    """The tests' handler: applies the effect and notes, per call, the event and its transaction."""

    def __init__(self, fails_for: set[uuid.UUID] = frozenset()) -> None:
        self.fails_for = fails_for
        self.calls: list[tuple[uuid.UUID, int]] = []  # (event id, transaction id), in call order

    async def __call__(self, batch, envelope: Envelope) -> None:
        txid = (await batch.session.execute(text("SELECT txid_current()"))).scalar()
        self.calls.append((envelope.event_id, txid))
        await apply_effect(batch, envelope)
        if envelope.event_id in self.fails_for:
            raise RuntimeError(f"bad record {envelope.event_id}")

    def transactions_of(self, event_id: uuid.UUID) -> list[int]:
        return [txid for called, txid in self.calls if called == event_id]


async def start_worker(db, make_settings, kafka, background, topic: str, handler, **overrides):
    settings = make_settings(**overrides)
    await kafka.place_group(settings.group_id, {TopicPartition(topic, p): 0 for p in (0, 1)})
    return settings, background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [topic]).run)


async def test_a_partitions_records_are_handled_in_batches_of_at_most_the_configured_size_one_transaction_each(
    db, make_settings, kafka, own_topic, background
):
    (sku,) = unique_keys(1)
    events = [alert(sku, n) for n in range(25)]
    records = await send_to_partition(own_topic, 0, *events)
    handler = Recording()
    settings, worker = await start_worker(
        db, make_settings, kafka, background, own_topic, handler, consumer_max_batch_size=10
    )
    await kafka.wait_committed_past(settings.group_id, records, worker)

    in_order = [event_id for event_id, _ in handler.calls]
    transactions = [txid for _, txid in handler.calls]
    sizes = sorted(transactions.count(txid) for txid in set(transactions))

    assert in_order == [e.event_id for e in events], "the handlers ran once each, in the partition's order"
    assert sizes == [5, 10, 10]
    assert (await db.effects()) == dict.fromkeys((e.event_id for e in events), 1)
    await worker.stopped()


async def test_a_bad_record_in_a_batch_is_retried_and_dead_lettered_alone_and_the_records_around_it_are_applied_once_in_order(  # noqa: E501
    db, make_settings, kafka, own_topic, background
):
    (sku,) = unique_keys(1)
    events = [alert(sku, n) for n in range(8)]
    bad = events[3]
    records = await send_to_partition(own_topic, 0, *events)
    handler = Recording(fails_for={bad.event_id})
    settings, worker = await start_worker(
        db,
        make_settings,
        kafka,
        background,
        own_topic,
        handler,
        consumer_retry_attempts=2,
        consumer_retry_backoff_s=0.05,
    )
    await kafka.wait_committed_past(settings.group_id, records, worker)
    effects = await db.effects()
    good = [e for e in events if e is not bad]

    assert bad.event_id not in effects
    assert {e.event_id: effects.get(e.event_id) for e in good} == dict.fromkeys((e.event_id for e in good), 1)
    # Its batch's failure counts as the bad record's first attempt: 1 + 2 retries, then dead-lettered.
    assert len(handler.transactions_of(bad.event_id)) == 3
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "retried") == 2
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "dead_lettered") == 1
    # The committed applications (each good record's last call) happened in the partition's order.
    last_call = {event_id: n for n, (event_id, _) in enumerate(handler.calls)}
    assert sorted(good, key=lambda e: last_call[e.event_id]) == good
    await worker.stopped()


async def test_an_event_twice_in_one_batch_and_an_event_processed_before_are_applied_once_and_counted_as_duplicates(
    db, make_settings, kafka, own_topic, background
):
    (sku,) = unique_keys(1)
    first, again, before = alert(sku, 1), alert(sku, 2), alert(sku, 3)
    handler = Recording()
    settings = make_settings()
    await db.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)",
        consumer=settings.group_id,
        event_id=before.event_id,
    )
    records = await send_to_partition(own_topic, 0, first, again, again, before, first)
    await kafka.place_group(settings.group_id, {TopicPartition(own_topic, p): 0 for p in (0, 1)})
    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [own_topic]).run)
    await kafka.wait_committed_past(settings.group_id, records, worker)

    assert [event_id for event_id, _ in handler.calls] == [first.event_id, again.event_id]
    assert len({txid for _, txid in handler.calls}) == 1, "one batch"
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "duplicate") == 3
    assert before.event_id not in await db.effects()
    await worker.stopped()


async def test_a_batch_size_of_one_handles_each_record_in_a_transaction_of_its_own(
    db, make_settings, kafka, own_topic, background
):
    (sku,) = unique_keys(1)
    events = [alert(sku, n) for n in range(5)]
    records = await send_to_partition(own_topic, 0, *events)
    handler = Recording()
    settings, worker = await start_worker(
        db, make_settings, kafka, background, own_topic, handler, consumer_max_batch_size=1
    )
    await kafka.wait_committed_past(settings.group_id, records, worker)

    assert len({txid for _, txid in handler.calls}) == 5
    await worker.stopped()


class Deadlocked:
    """The tests' handler: Postgres aborts its transaction as a deadlock victim (SQLSTATE 40P01,
    raised by the server itself) the first `times` calls, then applies the effect."""

    def __init__(self, times: int) -> None:
        self.left = times

    async def __call__(self, batch, envelope: Envelope) -> None:
        if self.left > 0:
            self.left -= 1
            await batch.session.execute(text("DO $$ BEGIN RAISE EXCEPTION 'as if' USING ERRCODE = '40P01'; END $$"))
        await apply_effect(batch, envelope)


async def test_a_record_whose_transaction_keeps_losing_deadlocks_is_applied_once_and_never_dead_lettered(
    db, make_settings, kafka, own_topic, background
):
    (sku,) = unique_keys(1)
    event = alert(sku)
    records = await send_to_partition(own_topic, 0, event)
    settings, worker = await start_worker(
        db, make_settings, kafka, background, own_topic, Deadlocked(times=6), consumer_retry_attempts=2
    )
    await kafka.wait_committed_past(settings.group_id, records, worker)

    assert (await db.effects()) == {event.event_id: 1}
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "conflict_retried") == 6
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "dead_lettered") == 0
    await worker.stopped()
