"""A redrive (ecommerce_ops, what `ecommerce dlt redrive` runs) against a real worker, Postgres and
Kafka: the dead-lettered event was never recorded as processed (its transaction rolled back), so
the redriven record is processed once its cause is fixed; the same record sent again is a duplicate
that the processed-events table absorbs."""

import uuid

import pytest
from aiokafka import TopicPartition
from ecommerce_ops.dead_letters import REDRIVE_COUNT, plan_redrive, select
from ecommerce_ops.dlt import read_dead_letters, send
from ecommerce_ops.kafka_reading import KafkaReader, started, writer
from machinery_support import KAFKA, alert, apply_effect, consumer_events, send_to_partition, unique_keys, wait_until
from shared.consumer import EventWorker
from shared.events import Envelope
from shared.events.topics import dead_letter_topic

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


async def test_a_redriven_dead_letter_is_processed_once_its_cause_is_fixed_and_sent_again_is_absorbed_as_a_duplicate(
    db, make_settings, kafka, own_topic, background
):
    (sku,) = unique_keys(1)
    event = alert(sku)
    settings = make_settings(consumer_retry_attempts=1, consumer_retry_backoff_s=0.05)
    await kafka.place_group(settings.group_id, {TopicPartition(own_topic, p): 0 for p in (0, 1)})
    cause_fixed = False

    async def handler(batch, envelope: Envelope) -> None:
        await apply_effect(batch, envelope)  # rolled back with the failing transaction
        if not cause_fixed:
            raise RuntimeError("the warehouse table is read-only")

    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [own_topic]).run)
    await send_to_partition(own_topic, 1, event)

    async def dead_letters():
        async with KafkaReader(KAFKA) as reader:
            return await read_dead_letters(reader, [dead_letter_topic(own_topic)])

    (letter,) = await wait_until(dead_letters, timeout=60, what="the event dead-lettered")
    assert letter.event_id == str(event.event_id)
    assert await db.effects() == {}
    assert await processed(db, event.event_id) == 0, "a dead-lettered event is not recorded as processed"

    cause_fixed = True
    plan = plan_redrive(select([letter], event_ids=[str(event.event_id)]))
    async with started(writer(KAFKA)) as producer:
        (first,) = await send(producer, plan.redrives)
    assert (first.topic, first.partition) == (own_topic, 1), "back where it was, in its key's partition"
    await kafka.wait_committed_past(settings.group_id, [first], worker)
    assert await db.effects() == {event.event_id: 1}, "the redrive processed the event"
    assert await processed(db, event.event_id) == 1

    async with started(writer(KAFKA)) as producer:
        (again,) = await send(producer, plan.redrives)
    await kafka.wait_committed_past(settings.group_id, [again], worker)
    assert await db.effects() == {event.event_id: 1}, "the second copy changed nothing"
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "duplicate") == 1
    assert dict(plan.redrives[0].headers)[REDRIVE_COUNT] == b"1"
    await worker.stopped()


async def processed(db, event_id: uuid.UUID) -> int:
    return await db.fetchval("SELECT count(*) FROM processed_events WHERE event_id = :event_id", event_id=event_id)
