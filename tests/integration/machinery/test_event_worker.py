"""The event worker against the real Postgres and Kafka: effectively-once handling across crashes,
dead letters in Spring Kafka's format, retries, unknown event types and graceful shutdown
(docs/architecture.md, "Consuming: the worker").

Every worker has a consumer group of its own, placed where the topic ended when the test began, and
the test looks only at its own keys: the topics are shared and keep the records of earlier runs.
"""

import asyncio
import signal
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from machinery_support import (
    KAFKA,
    alert,
    apply_effect,
    consumer_events,
    event_id_of,
    header,
    published_records,
    unique_keys,
    wait_until,
)
from shared.consumer import EventWorker
from shared.consumer.dead_letter import (
    EXCEPTION_FQCN,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    ORIGINAL_CONSUMER_GROUP,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    read_dlt_headers,
)
from shared.events import Envelope, OrderCancelled
from shared.events.codec import encode
from shared.events.topics import INVENTORY_EVENTS, ORDER_EVENTS, dead_letter_topic
from shared.kafka.security import admin_client_config

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


async def test_a_worker_killed_between_its_database_commit_and_its_offset_commit_gets_the_records_again_and_applies_each_once(  # noqa: E501
    db, make_settings, kafka, publish, spawn, background
):
    (sku,) = unique_keys(1)
    events = [alert(sku, n) for n in range(1, 6)]
    event_ids = {e.event_id for e in events}
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    records = await published_records(kafka, publish, start, *events)
    # A short session: the restarted worker waits for the killed member's session to expire.
    settings = make_settings(consumer_session_timeout_ms=6000, consumer_heartbeat_interval_ms=1000)
    await kafka.place_group(settings.group_id, start)

    crashing = await spawn(
        "worker_process.py", settings, INVENTORY_EVENTS, "LowStockAlert", sku, "--crash-before-offset-commit"
    )
    assert await crashing.exited(timeout=60) == -signal.SIGKILL, crashing.log()
    applied_before_kill = {i: n for i, n in (await db.effects()).items() if i in event_ids}
    committed = await kafka.committed(settings.group_id)

    assert applied_before_kill, "the worker died before it committed any effect"
    assert set(applied_before_kill.values()) == {1}
    first_of_ours = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first_of_ours[tp] = min(first_of_ours.get(tp, record.offset), record.offset)
    assert all(committed.get(tp, start[tp]) <= offset for tp, offset in first_of_ours.items()), (
        "an offset past the test's records was committed before the kill"
    )

    applied_by_successor = set()

    async def recording(session, envelope: Envelope) -> None:
        applied_by_successor.add(envelope.event_id)
        await apply_effect(session, envelope)

    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": recording}, [INVENTORY_EVENTS]).run)
    await kafka.wait_committed_past(settings.group_id, records, worker)
    effects = await db.effects()

    assert {event_id: effects.get(event_id) for event_id in event_ids} == dict.fromkeys(event_ids, 1)
    assert applied_by_successor & event_ids == event_ids - applied_before_kill.keys()
    # At least ours: the shared topic may carry other LowStockAlerts that the killed worker handled too.
    duplicates = consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "duplicate")
    assert duplicates >= len(applied_before_kill)
    await worker.stopped()


def _headers_of(envelope: Envelope, **replace: str | None) -> list[tuple[str, bytes]]:
    """The envelope's record headers with some replaced (a value) or left out (None)."""
    headers = []
    for name, value in encode(envelope).headers:
        if name not in replace:
            headers.append((name, value))
        elif replace[name] is not None:
            headers.append((name, replace[name].encode()))
    return headers


async def test_poison_records_land_in_the_dead_letter_topic_with_their_original_bytes_and_cause_an_unknown_event_type_is_skipped_and_the_record_behind_them_is_processed(  # noqa: E501
    db, make_settings, kafka, background
):
    order_id = uuid.uuid4()
    key = str(order_id).encode()

    def cancelled() -> Envelope:
        return Envelope.new(OrderCancelled(order_id=order_id, reason="customer_request"))

    valid = cancelled()
    unknown_type = f"MachineryTestEvent{uuid.uuid4().hex[:8]}"
    poison = {
        # name: (value, headers, exception class, words of its message)
        "garbage bytes": (
            b"\x00\xff\xfe\x80 definitely not json",
            _headers_of(cancelled()),
            "shared.events.codec.MalformedPayload",
            "not JSON",
        ),
        "JSON of the wrong shape": (
            b'{"orderId": 42, "why": ["not", "an", "OrderCancelled"]}',
            _headers_of(cancelled()),
            "shared.events.codec.PayloadValidationError",
            "payload is invalid",
        ),
        "unknown schema version": (
            encode(valid).value,
            _headers_of(cancelled(), schemaVersion="99"),
            "shared.events.codec.UnsupportedSchemaVersion",
            "schema version 99 is not supported",
        ),
        "missing eventId header": (
            encode(valid).value,
            _headers_of(cancelled(), eventId=None),
            "shared.events.codec.MissingHeader",
            "'eventId' is missing",
        ),
        # Its time in UTC is before year 1: once an error the codec did not catch, a crash loop.
        "occurredAt out of range": (
            encode(valid).value,
            _headers_of(cancelled(), occurredAt="0001-01-01T00:00:00+01:00"),
            "shared.events.codec.InvalidHeader",
            "out of range",
        ),
    }
    skipped = cancelled()
    settings = make_settings(consumer_retry_attempts=3)
    start = await kafka.end_offsets(ORDER_EVENTS)
    dlt_start = await kafka.end_offsets(dead_letter_topic(ORDER_EVENTS))
    await kafka.place_group(settings.group_id, start)

    # One key, so one partition, in this order: the poison, an unknown event type, a valid event.
    producer = AIOKafkaProducer(**admin_client_config(KAFKA), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = {}
        for name, (value, headers, _, _) in poison.items():
            sent[name] = await (await producer.send(ORDER_EVENTS, value=value, key=key, headers=headers))
        sent_skipped = await (
            await producer.send(
                ORDER_EVENTS,
                value=encode(skipped).value,
                key=key,
                headers=_headers_of(skipped, eventType=unknown_type),
            )
        )
        sent_valid = await (
            await producer.send(ORDER_EVENTS, value=encode(valid).value, key=key, headers=encode(valid).headers)
        )
    finally:
        await producer.stop()
    partition = sent_valid.partition
    assert {m.partition for m in sent.values()} == {partition}
    assert sent_skipped.partition == partition

    worker = background.start(EventWorker(settings, db.sessions, {"OrderCancelled": apply_effect}, [ORDER_EVENTS]).run)

    async def valid_record_handled() -> bool:
        worker.check()
        return (await db.effects()).get(valid.event_id) == 1

    await wait_until(valid_record_handled, timeout=60, what="the valid record behind the poison is processed")
    # Dead letters are acknowledged before the worker moves on, so they are all on the DLT by now.
    dead_letters = await kafka.read_to_end(
        dlt_start,
        keep=lambda r: r.key == key and header(r, ORIGINAL_CONSUMER_GROUP) == settings.group_id.encode(),
    )

    by_offset = {read_dlt_headers(r.headers)[ORIGINAL_OFFSET]: r for r in dead_letters}
    assert sorted(by_offset) == sorted(m.offset for m in sent.values()), "exactly the poison records are dead"
    for name, (value, headers, fqcn, words) in poison.items():
        letter = by_offset[sent[name].offset]
        cause = read_dlt_headers(letter.headers)
        assert letter.topic == dead_letter_topic(ORDER_EVENTS), name
        assert letter.partition == partition, name
        assert (letter.key, letter.value) == (key, value), f"{name}: the original bytes"
        assert [tuple(h) for h in letter.headers[: len(headers)]] == headers, f"{name}: original headers first"
        assert cause[ORIGINAL_TOPIC] == ORDER_EVENTS, name
        assert cause[ORIGINAL_PARTITION] == partition, name
        assert cause[ORIGINAL_OFFSET] == sent[name].offset, name
        assert cause[ORIGINAL_TIMESTAMP] == sent[name].timestamp, name
        assert cause[ORIGINAL_CONSUMER_GROUP] == settings.group_id, name
        assert cause[EXCEPTION_FQCN] == fqcn, name
        assert words in cause[EXCEPTION_MESSAGE], f"{name}: {cause[EXCEPTION_MESSAGE]}"
        assert fqcn.rsplit(".", 1)[1] in cause[EXCEPTION_STACKTRACE], name
    assert consumer_events(settings.service_name, ORDER_EVENTS, unknown_type, "skipped") == 1
    assert consumer_events(settings.service_name, ORDER_EVENTS, unknown_type, "dead_lettered") == 0
    assert skipped.event_id not in await db.effects()
    await worker.stopped()


async def test_a_handler_that_always_raises_is_retried_the_configured_number_of_times_then_dead_lettered_and_the_next_record_is_processed(  # noqa: E501
    db, make_settings, kafka, publish, background
):
    (sku,) = unique_keys(1)
    doomed, next_one = alert(sku, 1), alert(sku, 2)
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    dlt_start = await kafka.end_offsets(dead_letter_topic(INVENTORY_EVENTS))
    records = await published_records(kafka, publish, start, doomed, next_one)
    settings = make_settings(consumer_retry_attempts=3, consumer_retry_backoff_s=0.05)
    await kafka.place_group(settings.group_id, start)
    calls: dict[uuid.UUID, int] = {}

    async def handler(session, envelope: Envelope) -> None:
        calls[envelope.event_id] = calls.get(envelope.event_id, 0) + 1
        await apply_effect(session, envelope)  # rolled back with the failing transaction
        if envelope.event_id == doomed.event_id:
            raise RuntimeError(f"handler always fails for {envelope.event_id}")

    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [INVENTORY_EVENTS]).run)
    await kafka.wait_committed_past(settings.group_id, records, worker)
    (letter,) = await kafka.read_to_end(dlt_start, keep=lambda r: r.key == sku.encode())
    cause = read_dlt_headers(letter.headers)
    effects = await db.effects()

    assert calls[doomed.event_id] == 1 + 3
    assert consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "retried") == 3
    assert event_id_of(letter) == doomed.event_id
    assert letter.value == records[0].value
    assert cause[ORIGINAL_OFFSET] == records[0].offset
    assert cause[EXCEPTION_FQCN] == "builtins.RuntimeError"
    assert cause[EXCEPTION_MESSAGE] == f"handler always fails for {doomed.event_id}"
    assert doomed.event_id not in effects, "a failed attempt's effect was committed"
    assert effects.get(next_one.event_id) == 1
    assert calls[next_one.event_id] == 1
    processed = await db.fetchval(
        "SELECT count(*) FROM processed_events WHERE event_id = :event_id", event_id=doomed.event_id
    )
    assert processed == 0, "a dead-lettered event must not count as processed"
    await worker.stopped()


async def test_a_worker_stopped_mid_stream_commits_what_it_finished_and_leaves_the_group_and_its_successor_resumes_without_reprocessing(  # noqa: E501
    db, make_settings, kafka, publish, background
):
    (sku,) = unique_keys(1)
    events = [alert(sku, n) for n in range(1, 31)]
    event_ids = {e.event_id for e in events}
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    records = await published_records(kafka, publish, start, *events)
    (tp,) = {(r.topic, r.partition) for r in records}
    # The transaction in hand is finished on a stop: with 5 records per transaction, the 10th ends one.
    settings = make_settings(consumer_max_batch_size=5)
    await kafka.place_group(settings.group_id, start)
    stop = asyncio.Event()
    finished = []

    async def handler(session, envelope: Envelope) -> None:
        await apply_effect(session, envelope)
        if envelope.event_id in event_ids:
            finished.append(envelope.event_id)
            if len(finished) == 10:
                stop.set()  # as SIGTERM does, in the middle of the stream

    first = EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [INVENTORY_EVENTS])
    await asyncio.wait_for(first.run(stop), timeout=60)
    committed = {(t.topic, t.partition): offset for t, offset in (await kafka.committed(settings.group_id)).items()}
    state, members = await kafka.group_members(settings.group_id)

    assert len(finished) == 10
    assert committed[tp] == records[9].offset + 1, "the finished records, and only those, are committed"
    assert (state, members) == ("Empty", 0), "the stopped worker left the group"
    assert set((await db.effects()).keys()) & event_ids == set(finished)

    successor = EventWorker(settings, db.sessions, {"LowStockAlert": apply_effect}, [INVENTORY_EVENTS])
    running = background.start(successor.run)
    await kafka.wait_committed_past(settings.group_id, records, running)
    await running.stopped()
    effects = await db.effects()

    assert {event_id: effects.get(event_id) for event_id in event_ids} == dict.fromkeys(event_ids, 1)
    assert consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "duplicate") == 0
